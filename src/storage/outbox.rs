//! The webhook's outbox (`webhook_outbox`, migration 0008): what the deliverer claims,
//! acknowledges, retries and gives back. Rows are queued by `writes` in the history
//! row's own transaction; this file only moves them on.
//!
//! Per project, only the row with the lowest `seq` is ever claimable, so a project's
//! transitions go out in order and the next one waits for the previous acknowledgement;
//! a failing project's backoff sits on that row alone and holds up no other project.
//! Claims are short leases (the database's clock on PostgreSQL, as for projects), so
//! replicas sharing a database never send the same row at the same time.

use std::time::Duration;

use super::backend::{Dialect, RowGet, RowsAffected, SqlStore};
use super::error::{StorageContext, StorageError};
use super::rows::project_id;
use super::sql;
use crate::domain::{ProjectId, Timestamp};

/// One row to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutboxRow {
    pub(crate) project_id: ProjectId,
    pub(crate) seq: i64,
    /// The exact body to POST and sign.
    pub(crate) payload: String,
    /// Failed attempts so far.
    pub(crate) attempts: i64,
}

/// What is waiting for the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct OutboxStats {
    pub(crate) pending: i64,
    /// `observed_at` of the oldest row waiting.
    pub(crate) oldest: Option<Timestamp>,
}

/// A claim of the outbox's next rows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutboxClaim<'a> {
    pub(crate) owner: &'a str,
    pub(crate) lease: Duration,
    /// The local clock (it decides on SQLite; PostgreSQL uses its own).
    pub(crate) now: Timestamp,
    pub(crate) limit: usize,
}

impl<DB: Dialect> SqlStore<DB> {
    pub(crate) async fn outbox_claim(
        &self,
        c: &OutboxClaim<'_>,
    ) -> Result<Vec<OutboxRow>, StorageError> {
        let q = self.query(DB::OUTBOX_CLAIM).bind(c.owner.to_string());
        let q = DB::bind_expiry(q, c.now, c.lease).bind(c.limit.min(i64::MAX as usize) as i64);
        let rows = DB::bind_now(q, c.now)
            .fetch_all(self.exec())
            .await
            .ctx("claiming webhook deliveries from webhook_outbox")?;
        rows.iter()
            .map(|r| {
                Ok(OutboxRow {
                    project_id: project_id(r.try_get("project_id")?)?,
                    seq: r.try_get("seq")?,
                    payload: r.try_get("payload")?,
                    attempts: r.try_get("attempts")?,
                })
            })
            .collect()
    }

    pub(crate) async fn outbox_delivered(
        &self,
        id: &ProjectId,
        seq: i64,
    ) -> Result<bool, StorageError> {
        let r = self
            .query(sql::OUTBOX_DELIVERED)
            .bind(id.as_str().to_string())
            .bind(seq)
            .execute(self.exec())
            .await
            .ctx("removing an acknowledged delivery from webhook_outbox")?;
        Ok(r.rows_affected_of() > 0)
    }

    pub(crate) async fn outbox_retry(
        &self,
        row: &OutboxRow,
        owner: &str,
        error: &str,
        now: Timestamp,
        delay: Duration,
    ) -> Result<bool, StorageError> {
        let q = self
            .query(DB::OUTBOX_RETRY)
            .bind(row.project_id.as_str().to_string())
            .bind(row.seq)
            .bind(owner.to_string())
            .bind(error.to_string());
        let r = DB::bind_expiry(q, now, delay)
            .execute(self.exec())
            .await
            .ctx("recording a failed delivery in webhook_outbox")?;
        Ok(r.rows_affected_of() > 0)
    }

    pub(crate) async fn outbox_release(&self, owner: &str) -> Result<u64, StorageError> {
        let r = self
            .query(sql::OUTBOX_RELEASE)
            .bind(owner.to_string())
            .execute(self.exec())
            .await
            .ctx("releasing webhook deliveries")?;
        Ok(r.rows_affected_of())
    }

    pub(crate) async fn outbox_lease_owners(
        &self,
        pattern: &str,
    ) -> Result<Vec<String>, StorageError> {
        let rows = self
            .query(sql::OUTBOX_LEASE_OWNERS)
            .bind(pattern.to_string())
            .fetch_all(self.exec())
            .await
            .ctx("listing webhook delivery leases")?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>(0usize)?))
            .collect()
    }

    pub(crate) async fn outbox_stats(&self) -> Result<OutboxStats, StorageError> {
        let row = self
            .query(sql::OUTBOX_STATS)
            .fetch_one(self.exec())
            .await
            .ctx("counting webhook_outbox")?;
        Ok(OutboxStats {
            pending: row.try_get::<i64, _>(0usize)?,
            oldest: row.try_get::<Option<Timestamp>, _>(1usize)?,
        })
    }
}

/// The webhook's queue.
/// (`Store::outbox`)
#[derive(Clone, Copy, Debug)]
pub(crate) struct Outbox<'a>(pub(super) &'a super::Backend);

impl Outbox<'_> {
    /// Leases the webhook's next rows: per project the lowest `seq`, if it is due.
    pub(crate) async fn outbox_claim(
        &self,
        claim: &OutboxClaim<'_>,
    ) -> Result<Vec<OutboxRow>, StorageError> {
        dispatch!(self.0, s => s.outbox_claim(claim).await)
    }

    /// The receiver acknowledged the row: it is removed (false: already gone).
    pub(crate) async fn outbox_delivered(
        &self,
        id: &ProjectId,
        seq: i64,
    ) -> Result<bool, StorageError> {
        dispatch!(self.0, s => s.outbox_delivered(id, seq).await)
    }

    /// A failed attempt: counted, retried after `delay`, lease given back (false: the
    /// lease had passed to another replica, which now decides).
    pub(crate) async fn outbox_retry(
        &self,
        row: &OutboxRow,
        owner: &str,
        error: &str,
        now: Timestamp,
        delay: Duration,
    ) -> Result<bool, StorageError> {
        dispatch!(self.0, s => s.outbox_retry(row, owner, error, now, delay).await)
    }

    /// Gives back every outbox lease `owner` holds.
    pub(crate) async fn outbox_release(&self, owner: &str) -> Result<u64, StorageError> {
        dispatch!(self.0, s => s.outbox_release(owner).await)
    }

    /// Holders of outbox leases whose id matches a `LIKE` pattern.
    pub(crate) async fn outbox_lease_owners(
        &self,
        pattern: &str,
    ) -> Result<Vec<String>, StorageError> {
        dispatch!(self.0, s => s.outbox_lease_owners(pattern).await)
    }

    /// How many rows wait for the receiver, and since when.
    pub(crate) async fn outbox_stats(&self) -> Result<OutboxStats, StorageError> {
        dispatch!(self.0, s => s.outbox_stats().await)
    }
}
