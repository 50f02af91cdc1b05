//! `list_sweeps`: list mode's cursor over `ListEditingProjects` pages, kept between
//! cycles, and the lease on it that lets one replica at a time sweep.
//!
//! Every change to the sweep in progress is fenced on its lease owner: a replica whose
//! lease was taken over (it stalled past the expiry) learns so from its next advance,
//! which matches nothing, and stops; the items it marked due stay marked, which is
//! harmless.

use std::time::Duration;

use super::backend::{Dialect, RowGet, RowsAffected, SqlStore};
use super::error::{StorageContext, StorageError};
use super::sql;
use crate::contract::{SweepCursor, SweepEnd, SweepStart, SweepStatus, SweepStep};
use crate::domain::Timestamp;

impl<DB: Dialect> SqlStore<DB> {
    fn sweep_cursor(row: &DB::Row) -> Result<SweepCursor, StorageError> {
        Ok(SweepCursor {
            id: row.try_get("id")?,
            started_at: row.try_get("started_at")?,
            pages: row.try_get("pages")?,
            next_token: row.try_get("next_token")?,
            params: row.try_get("params")?,
            filter: row.try_get("filter")?,
        })
    }

    /// Leases the sweep in progress to `owner`, unless another replica's lease on it is
    /// still live. `None`: no sweep in progress, or another replica is sweeping.
    pub(crate) async fn sweep_take(
        &self,
        owner: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Option<SweepCursor>, StorageError> {
        let q = DB::bind_expiry(self.query(DB::SWEEP_TAKE).bind(owner.to_string()), now, ttl);
        // `fetch_all`: a write's RETURNING read to the end, so the statement is done (and
        // SQLite's write lock released) before the connection goes back to the pool.
        let rows = q
            .fetch_all(self.exec())
            .await
            .ctx("taking the list sweep's lease")?;
        rows.first().map(Self::sweep_cursor).transpose()
    }

    /// Starts a sweep at page one, leased to `owner`. `None` if one is in progress
    /// already (another replica started it first).
    pub(crate) async fn sweep_start(
        &self,
        start: &SweepStart,
        owner: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Option<SweepCursor>, StorageError> {
        let q = self
            .query(DB::SWEEP_START)
            .bind(start.started_at)
            .bind(start.params.clone())
            .bind(start.filter.clone())
            .bind(owner.to_string());
        let rows = DB::bind_expiry(q, now, ttl)
            .fetch_all(self.exec())
            .await
            .ctx("starting a list sweep")?;
        rows.first().map(Self::sweep_cursor).transpose()
    }

    /// Records one processed page and renews the lease. `false`: the lease is no
    /// longer `owner`'s, nothing was recorded.
    pub(crate) async fn sweep_advance(
        &self,
        id: i64,
        owner: &str,
        step: &SweepStep,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        let q = self
            .query(DB::SWEEP_ADVANCE)
            .bind(id)
            .bind(owner.to_string())
            .bind(step.next_token.clone())
            .bind(step.marked)
            .bind(step.discovered)
            .bind(now);
        let r = DB::bind_expiry(q, now, ttl)
            .execute(self.exec())
            .await
            .ctx("recording the list sweep's position")?;
        Ok(r.rows_affected_of() == 1)
    }

    /// Extends `owner`'s lease on the sweep `id`. `false`: it is no longer `owner`'s.
    pub(crate) async fn sweep_renew(
        &self,
        id: i64,
        owner: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        let q = self.query(DB::SWEEP_RENEW).bind(id).bind(owner.to_string());
        let r = DB::bind_expiry(q, now, ttl)
            .execute(self.exec())
            .await
            .ctx("renewing the list sweep's lease")?;
        Ok(r.rows_affected_of() == 1)
    }

    /// Ends the sweep `id`, adding `last` (the final page's counts, if any) to it.
    /// `false`: the lease is no longer `owner`'s, nothing was recorded.
    pub(crate) async fn sweep_finish(
        &self,
        id: i64,
        owner: &str,
        end: SweepEnd,
        last: Option<&SweepStep>,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        let (pages, marked, discovered) = last.map_or((0, 0, 0), |s| (1, s.marked, s.discovered));
        let r = self
            .query(sql::SWEEP_FINISH)
            .bind(id)
            .bind(owner.to_string())
            .bind(end.as_str().to_string())
            .bind(now)
            .bind(pages as i64)
            .bind(marked)
            .bind(discovered)
            .execute(self.exec())
            .await
            .ctx("recording the end of a list sweep")?;
        Ok(r.rows_affected_of() == 1)
    }

    /// Gives back `owner`'s lease on the sweep in progress, if it holds it.
    pub(crate) async fn sweep_release(&self, owner: &str) -> Result<(), StorageError> {
        self.query(sql::SWEEP_RELEASE)
            .bind(owner.to_string())
            .execute(self.exec())
            .await
            .ctx("releasing the list sweep's lease")?;
        Ok(())
    }

    pub(crate) async fn sweep_status(&self) -> Result<SweepStatus, StorageError> {
        let running = self
            .query(sql::SWEEP_RUNNING)
            .fetch_optional(self.exec())
            .await
            .ctx("reading the list sweep in progress")?
            .map(|r| Ok::<_, StorageError>((r.try_get("started_at")?, r.try_get("pages")?)))
            .transpose()?;
        let last_completed = self
            .query(sql::SWEEP_LAST_COMPLETED)
            .fetch_optional(self.exec())
            .await
            .ctx("reading the last completed list sweep")?
            .map(|r| {
                Ok::<_, StorageError>((
                    r.try_get("started_at")?,
                    r.try_get("finished_at")?,
                    r.try_get("pages")?,
                ))
            })
            .transpose()?;
        Ok(SweepStatus {
            running,
            last_completed,
        })
    }
}

/// List mode's sweep and its lease.
/// (`Store::sweeps`)
#[derive(Clone, Copy, Debug)]
pub struct Sweeps<'a>(pub(super) &'a super::Backend);

impl Sweeps<'_> {
    /// List mode: leases the sweep in progress to `owner` unless another replica's lease
    /// on it is live. `None`: no sweep in progress, or someone else is sweeping.
    pub async fn sweep_take(
        &self,
        owner: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Option<SweepCursor>, StorageError> {
        dispatch!(self.0, s => s.sweep_take(owner, ttl, now).await)
    }

    /// Starts a sweep at page one, leased to `owner`; `None` if one is in progress.
    pub(crate) async fn sweep_start(
        &self,
        start: &SweepStart,
        owner: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Option<SweepCursor>, StorageError> {
        dispatch!(self.0, s => s.sweep_start(start, owner, ttl, now).await)
    }

    /// Records a processed page and renews the lease; `false` if the lease was lost.
    pub(crate) async fn sweep_advance(
        &self,
        id: i64,
        owner: &str,
        step: &SweepStep,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        dispatch!(self.0, s => s.sweep_advance(id, owner, step, ttl, now).await)
    }

    /// Extends the lease on sweep `id`; `false` if it is no longer `owner`'s.
    pub(crate) async fn sweep_renew(
        &self,
        id: i64,
        owner: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        dispatch!(self.0, s => s.sweep_renew(id, owner, ttl, now).await)
    }

    /// Ends sweep `id` (with the last page's counts, if `last`); `false` if the lease
    /// was lost.
    pub(crate) async fn sweep_finish(
        &self,
        id: i64,
        owner: &str,
        end: SweepEnd,
        last: Option<&SweepStep>,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        dispatch!(self.0, s => s.sweep_finish(id, owner, end, last, now).await)
    }

    /// Gives back `owner`'s lease on the sweep in progress.
    pub(crate) async fn sweep_release(&self, owner: &str) -> Result<(), StorageError> {
        dispatch!(self.0, s => s.sweep_release(owner).await)
    }

    /// The sweep in progress and the last completed one.
    pub(crate) async fn sweep_status(&self) -> Result<SweepStatus, StorageError> {
        dispatch!(self.0, s => s.sweep_status().await)
    }
}
