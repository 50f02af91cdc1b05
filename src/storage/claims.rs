//! Claims: handing due projects to a replica under a lease and a fresh claim token, and
//! keeping or giving back those leases.

use std::time::Duration;

use super::backend::{Dialect, RowGet, SqlStore};
use super::error::{StorageContext, StorageError};
use super::rows::ids_json;
use crate::contract::{ClaimScope, Stored};
use crate::domain::{ProjectId, Timestamp};

/// How one claim statement is asked.
#[derive(Debug, Clone)]
pub struct ClaimRequest<'a> {
    pub scope: ClaimScope,
    /// When the claiming cycle started: projects polled since are not claimed again.
    pub cycle_start: Timestamp,
    pub limit: i64,
    /// The replica the lease is recorded for.
    pub owner: &'a str,
    pub lease_ttl: Duration,
    /// The claimer's idea of now: SQLite compares leases with it; PostgreSQL ignores it
    /// and uses its own clock.
    pub now: Timestamp,
}

/// The claim statement of `scope` and the cutoff it binds first. `--all` is a due claim
/// whose cutoff is the end of time; a requested claim ignores the cutoff.
fn statement<DB: super::backend::Dialect>(scope: ClaimScope) -> (&'static str, Timestamp) {
    match scope {
        ClaimScope::DueBy(t) => (DB::CLAIM_DUE, t),
        ClaimScope::Once(t) => (DB::CLAIM_ONCE, t),
        ClaimScope::All => (DB::CLAIM_DUE, Timestamp::END_OF_TIME),
        ClaimScope::Refresh => (DB::CLAIM_REQUESTED, Timestamp::END_OF_TIME),
    }
}

impl<DB: Dialect> SqlStore<DB> {
    /// The next batch of due projects, most overdue first, each with a new claim token.
    /// One statement on PostgreSQL; two on SQLite (its only writer is this process, so
    /// nothing can come between them).
    pub(crate) async fn claim(&self, r: &ClaimRequest<'_>) -> Result<Vec<Stored>, StorageError> {
        let (sql, cutoff) = statement::<DB>(r.scope);
        let q = self
            .query(sql)
            .bind(cutoff)
            .bind(r.cycle_start)
            .bind(r.limit)
            .bind(r.owner.to_string());
        let q = DB::bind_now(DB::bind_expiry(q, r.now, r.lease_ttl), r.now);
        let rows = q
            .fetch_all(self.exec())
            .await
            .ctx("claiming due projects")?;
        self.claimed(rows).await
    }

    /// The plan of the claim statement `claim` would run (nothing is claimed), one line
    /// per step: tests require it to read `tracked_projects` in index order.
    pub(crate) async fn explain_claim(
        &self,
        r: &ClaimRequest<'_>,
    ) -> Result<Vec<String>, StorageError> {
        let (sql, cutoff) = statement::<DB>(r.scope);
        let explain = format!("{}{sql}", DB::EXPLAIN);
        let (limit, owner, ttl, now, cycle_start) = (
            r.limit,
            r.owner.to_string(),
            r.lease_ttl,
            r.now,
            r.cycle_start,
        );
        self.transaction(move |conn, counters| {
            Box::pin(async move {
                if let Some(setup) = DB::EXPLAIN_SETUP {
                    super::backend::counted::<DB>(counters, setup)
                        .execute(&mut *conn)
                        .await?;
                }
                let q = super::backend::counted::<DB>(counters, &explain)
                    .bind(cutoff)
                    .bind(cycle_start)
                    .bind(limit)
                    .bind(owner);
                let q = DB::bind_now(DB::bind_expiry(q, now, ttl), now);
                let rows = q.fetch_all(&mut *conn).await.ctx("explaining the claim")?;
                rows.iter()
                    .map(|r| {
                        r.try_get::<String, _>(DB::EXPLAIN_COLUMN)
                            .map_err(StorageError::from)
                    })
                    .collect()
            })
        })
        .await
    }

    /// Claims these projects whether due or not (single polls), except those another
    /// live claim holds.
    pub(crate) async fn claim_ids(
        &self,
        ids: &[ProjectId],
        owner: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Vec<Stored>, StorageError> {
        let q = self
            .query(DB::CLAIM_IDS)
            .bind(ids_json(ids))
            .bind(owner.to_string());
        let q = DB::bind_now(DB::bind_expiry(q, now, ttl), now);
        let rows = q.fetch_all(self.exec()).await.ctx("claiming projects")?;
        self.claimed(rows).await
    }

    /// The stored state of what a claim statement returned.
    async fn claimed(&self, rows: Vec<DB::Row>) -> Result<Vec<Stored>, StorageError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        if DB::CLAIM_RETURNS_STORED {
            return Self::stored_rows(&rows);
        }
        let ids: Vec<String> = rows
            .iter()
            .map(|r| r.try_get::<String, _>(0usize))
            .collect::<Result<_, _>>()?;
        let json = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".to_string());
        let rows = self
            .query(DB::LOAD_MANY)
            .bind(json)
            .fetch_all(self.exec())
            .await
            .ctx("reading claimed projects")?;
        Self::stored_rows(&rows)
    }

    /// Extends every lease `owner` holds: called while fetches are still in flight, so a
    /// slow, throttled fetch never loses its project to another replica.
    pub(crate) async fn renew_leases(
        &self,
        owner: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<u64, StorageError> {
        use super::backend::RowsAffected;
        let q = DB::bind_expiry(
            self.query(DB::RENEW_LEASES).bind(owner.to_string()),
            now,
            ttl,
        );
        let r = q.execute(self.exec()).await.ctx("renewing leases")?;
        Ok(r.rows_affected_of())
    }

    pub(crate) async fn release_leases(&self, owner: &str) -> Result<u64, StorageError> {
        use super::backend::RowsAffected;
        let r = self
            .query(super::sql::RELEASE_LEASES)
            .bind(owner.to_string())
            .execute(self.exec())
            .await
            .ctx("releasing claims")?;
        Ok(r.rows_affected_of())
    }

    pub(crate) async fn lease_owners(&self, pattern: &str) -> Result<Vec<String>, StorageError> {
        let rows = self
            .query(super::sql::LEASE_OWNERS)
            .bind(pattern.to_string())
            .fetch_all(self.exec())
            .await
            .ctx("listing lease owners")?;
        Ok(rows
            .iter()
            .map(|r| r.try_get::<String, _>(0usize))
            .collect::<Result<_, _>>()?)
    }

    /// The server's clock, on backends where it decides order and time.
    pub(crate) async fn database_now(&self) -> Result<Option<Timestamp>, StorageError> {
        let Some(sql) = DB::NOW else { return Ok(None) };
        let row = self
            .query(sql)
            .fetch_one(self.exec())
            .await
            .ctx("reading the database clock")?;
        Ok(Some(row.try_get::<Timestamp, _>(0usize)?))
    }

    /// After the local clock stepped by `delta`, moves every due time with it, so
    /// projects stay due when they were meant to be (SQLite; PostgreSQL's own clock
    /// did not step). Returns the rows moved.
    pub(crate) async fn shift_due_times(
        &self,
        delta: chrono::Duration,
    ) -> Result<u64, StorageError> {
        use super::backend::RowsAffected;
        let Some(sql) = DB::SHIFT_DUE_TIMES else {
            return Ok(0);
        };
        let seconds = format!("{:+.3}", delta.num_milliseconds() as f64 / 1000.0);
        let r = self
            .query(sql)
            .bind(seconds)
            .execute(self.exec())
            .await
            .ctx("moving due times after a clock step")?;
        Ok(r.rows_affected_of())
    }
}

/// Claims: leases on due projects, renewed and given back.
/// (`Store::claims`)
#[derive(Clone, Copy, Debug)]
pub struct Claims<'a>(pub(super) &'a super::Backend);

impl Claims<'_> {
    /// The next batch of projects for this cycle, most overdue first, each leased to
    /// `request.owner` with a fresh claim token.
    pub async fn claim(&self, request: &ClaimRequest<'_>) -> Result<Vec<Stored>, StorageError> {
        dispatch!(self.0, s => s.claim(request).await)
    }

    /// How many projects a claim of `scope` would find at `now` (due, not leased): one
    /// `count(*)`, for a cycle's progress total.
    pub async fn count_due(&self, scope: ClaimScope, now: Timestamp) -> Result<u64, StorageError> {
        dispatch!(self.0, s => s.count_due(scope, now).await)
    }

    /// The plan of the claim `request` describes (nothing is claimed).
    pub async fn explain_claim(
        &self,
        request: &ClaimRequest<'_>,
    ) -> Result<Vec<String>, StorageError> {
        dispatch!(self.0, s => s.explain_claim(request).await)
    }

    /// Claims these projects whatever their due time (a single poll, a refresh request),
    /// skipping those another live claim holds.
    pub async fn claim_ids(
        &self,
        ids: &[ProjectId],
        owner: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Vec<Stored>, StorageError> {
        dispatch!(self.0, s => s.claim_ids(ids, owner, ttl, now).await)
    }

    pub(crate) async fn renew_leases(
        &self,
        owner: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<u64, StorageError> {
        dispatch!(self.0, s => s.renew_leases(owner, ttl, now).await)
    }

    /// Gives back claims this replica did not get to poll.
    pub(crate) async fn release_leases(&self, owner: &str) -> Result<u64, StorageError> {
        dispatch!(self.0, s => s.release_leases(owner).await)
    }

    /// Replicas holding leases whose id matches a `LIKE` pattern.
    pub(crate) async fn lease_owners(&self, pattern: &str) -> Result<Vec<String>, StorageError> {
        dispatch!(self.0, s => s.lease_owners(pattern).await)
    }

    /// After a step of the local clock: moves due times with it (only where the local
    /// clock is the one that decides).
    pub(crate) async fn shift_due_times(
        &self,
        delta: chrono::Duration,
    ) -> Result<u64, StorageError> {
        dispatch!(self.0, s => s.shift_due_times(delta).await)
    }
}
