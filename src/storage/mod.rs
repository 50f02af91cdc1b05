//! Storage: the tables of SPEC.md on SQLite or PostgreSQL, behind one [`Store`].
//!
//! Which backend `database.url` names is sealed inside this module: callers see
//! capabilities (claim, apply, touch, ...), never a pool or a backend variant. The SQL is
//! written once ([`sql`]) and run by a store generic over the sqlx backend; what must
//! differ per backend is that backend's `Dialect` ([`postgres`], [`sqlite`]).
//!
//! One file per concern: [`claims`] (claims, leases, the database clock), [`writes`]
//! (plans, touches, failures), [`tracking`] (what is tracked), [`runs`] (`sync_runs`),
//! [`reads`] (status, history), [`adhoc`] (arbitrary SQL for the demo and tests),
//! [`inspect`] (read-only inspection for `check`). Errors are typed ([`StorageError`]).
//!
//! The rules this module enforces: a plan is applied in one transaction or not at all
//! (a batch commits whole or not at all); every write of a claimed project is fenced on
//! its claim token, so a replica whose claim was taken over writes nothing; and a
//! connection that saw an error inside a transaction is closed, never reused.

pub mod adhoc;
mod backend;
pub mod claims;
mod counters;
pub mod error;
pub mod inspect;
mod postgres;
pub mod reads;
mod rows;
mod runs;
pub mod sql;
mod sqlite;
mod timestamp;
pub mod tracking;
mod writes;

use std::time::Duration;

pub use adhoc::{Cell, CellTable, TextTable};
pub use claims::ClaimRequest;
pub use counters::StorageCounters;
pub use error::{StorageError, StorageErrorKind};
pub use reads::{HistoryRow, OldestObservations, StaleRow, StatusRow};
pub use sqlite::lock_writer;
pub use tracking::TrackedRow;

use backend::SqlStore;

use crate::config::{DatabaseKind, DatabaseSettings};
use crate::contract::{Applied, ClaimScope, FailureJob, RunTotals, Stored, TouchJob, WriteJob};
use crate::domain::{ProjectId, Timestamp};

/// The storage every command uses, whichever backend `database.url` names.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone, Debug)]
enum Backend {
    Sqlite(SqlStore<sqlx::Sqlite>),
    Postgres(SqlStore<sqlx::Postgres>),
}

impl From<Backend> for Store {
    fn from(backend: Backend) -> Self {
        Store { backend }
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match &$self.backend {
            Backend::Sqlite($s) => $e,
            Backend::Postgres($s) => $e,
        }
    };
}

impl Store {
    /// Connects (creating a SQLite file if the URL says `mode=rwc`). Does not migrate.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Store, StorageError> {
        let backend = match settings.kind {
            DatabaseKind::Sqlite => Backend::Sqlite(sqlite::connect(settings).await?),
            DatabaseKind::Postgres => Backend::Postgres(postgres::connect(settings).await?),
        };
        Ok(Store { backend })
    }

    /// Applies pending migrations; returns how many were applied.
    pub async fn migrate(&self) -> anyhow::Result<usize> {
        match &self.backend {
            Backend::Sqlite(s) => sqlite::migrate(&s.pool).await,
            Backend::Postgres(s) => postgres::migrate(&s.pool).await,
        }
    }

    pub fn backend(&self) -> &'static str {
        use backend::Dialect;
        match &self.backend {
            Backend::Sqlite(_) => sqlx::Sqlite::NAME,
            Backend::Postgres(_) => sqlx::Postgres::NAME,
        }
    }

    /// Whether order and time come from the database server (PostgreSQL) rather than
    /// from this process (SQLite, one daemon per file).
    pub fn uses_database_clock(&self) -> bool {
        use backend::Dialect;
        match &self.backend {
            Backend::Sqlite(_) => sqlx::Sqlite::DATABASE_CLOCK,
            Backend::Postgres(_) => sqlx::Postgres::DATABASE_CLOCK,
        }
    }

    /// Whether several daemons may share this database (claims contend and need sizing
    /// by lease); SQLite takes one daemon per file.
    pub fn shared_by_replicas(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Statements and transactions sent through this store so far.
    pub fn counters(&self) -> StorageCounters {
        dispatch!(self, s => s.counters.snapshot())
    }

    pub async fn ping(&self) -> Result<(), StorageError> {
        dispatch!(self, s => s.ping().await)
    }

    /// The database server's clock, where it is the one that decides (PostgreSQL).
    pub async fn database_now(&self) -> Result<Option<Timestamp>, StorageError> {
        dispatch!(self, s => s.database_now().await)
    }

    /// The next batch of projects for this cycle, most overdue first, each leased to
    /// `request.owner` with a fresh claim token.
    pub async fn claim(&self, request: &ClaimRequest<'_>) -> Result<Vec<Stored>, StorageError> {
        dispatch!(self, s => s.claim(request).await)
    }

    /// How many projects a claim of `scope` would find at `now` (due, not leased): one
    /// `count(*)`, for a cycle's progress total.
    pub async fn count_due(&self, scope: ClaimScope, now: Timestamp) -> Result<u64, StorageError> {
        dispatch!(self, s => s.count_due(scope, now).await)
    }

    /// The plan of the claim `request` describes (nothing is claimed).
    pub async fn explain_claim(
        &self,
        request: &ClaimRequest<'_>,
    ) -> Result<Vec<String>, StorageError> {
        dispatch!(self, s => s.explain_claim(request).await)
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
        dispatch!(self, s => s.claim_ids(ids, owner, ttl, now).await)
    }

    pub async fn renew_leases(
        &self,
        owner: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<u64, StorageError> {
        dispatch!(self, s => s.renew_leases(owner, ttl, now).await)
    }

    /// Gives back claims this replica did not get to poll.
    pub async fn release_leases(&self, owner: &str) -> Result<u64, StorageError> {
        dispatch!(self, s => s.release_leases(owner).await)
    }

    /// Replicas holding leases whose id matches a `LIKE` pattern.
    pub async fn lease_owners(&self, pattern: &str) -> Result<Vec<String>, StorageError> {
        dispatch!(self, s => s.lease_owners(pattern).await)
    }

    /// After a step of the local clock: moves due times with it (only where the local
    /// clock is the one that decides).
    pub async fn shift_due_times(&self, delta: chrono::Duration) -> Result<u64, StorageError> {
        dispatch!(self, s => s.shift_due_times(delta).await)
    }

    /// Applies one job in its own transaction.
    pub async fn apply(
        &self,
        job: &WriteJob,
        run_id: Option<i64>,
    ) -> Result<Applied, StorageError> {
        let applied = self.apply_batch(std::slice::from_ref(job), run_id).await?;
        Ok(applied.first().copied().unwrap_or(Applied::Fenced))
    }

    /// Applies many jobs in one transaction: all of them or none.
    pub async fn apply_batch(
        &self,
        jobs: &[WriteJob],
        run_id: Option<i64>,
    ) -> Result<Vec<Applied>, StorageError> {
        dispatch!(self, s => s.apply_batch(jobs, run_id).await)
    }

    /// Records the polls of unchanged projects; returns the IDs applied.
    pub async fn touch(&self, jobs: &[TouchJob]) -> Result<Vec<ProjectId>, StorageError> {
        dispatch!(self, s => s.touch(jobs).await)
    }

    pub async fn record_failure(&self, job: &FailureJob) -> Result<Applied, StorageError> {
        dispatch!(self, s => s.record_failure(job).await)
    }

    /// List mode: these projects changed, so they are due by `at`.
    pub async fn mark_due(&self, ids: &[ProjectId], at: Timestamp) -> Result<u64, StorageError> {
        dispatch!(self, s => s.mark_due(ids, at).await)
    }

    pub async fn load(&self, id: &ProjectId) -> Result<Option<Stored>, StorageError> {
        dispatch!(self, s => s.load(id).await)
    }

    /// Stored state of the tracked projects among `ids` (untracked ones are absent).
    pub async fn load_many(&self, ids: &[ProjectId]) -> Result<Vec<Stored>, StorageError> {
        dispatch!(self, s => s.load_many(ids).await)
    }

    pub async fn track_add(
        &self,
        ids: &[ProjectId],
        source: &str,
        now: Timestamp,
    ) -> Result<u64, StorageError> {
        dispatch!(self, s => s.track_add(ids, source, now).await)
    }

    pub async fn track_remove(&self, ids: &[ProjectId]) -> Result<u64, StorageError> {
        dispatch!(self, s => s.track_remove(ids).await)
    }

    pub async fn track_list(&self) -> Result<Vec<TrackedRow>, StorageError> {
        dispatch!(self, s => s.track_list().await)
    }

    /// How many tracked projects are enabled: a `count(*)`, nothing read back per project.
    pub async fn count_tracked(&self) -> Result<u64, StorageError> {
        dispatch!(self, s => s.count_tracked().await)
    }

    /// The enabled project with the lowest ID, if any (one row read, whatever is tracked).
    pub async fn first_tracked(&self) -> Result<Option<ProjectId>, StorageError> {
        dispatch!(self, s => s.first_tracked().await)
    }

    /// Makes the `source = 'config'` rows match `sync.projects`. Returns (added, disabled).
    pub async fn sync_config_projects(
        &self,
        ids: &[ProjectId],
        now: Timestamp,
    ) -> Result<(u64, u64), StorageError> {
        dispatch!(self, s => s.sync_config_projects(ids, now).await)
    }

    pub async fn begin_run(&self, at: Timestamp, replica_id: &str) -> Result<i64, StorageError> {
        dispatch!(self, s => s.begin_run(at, replica_id).await)
    }

    pub async fn finish_run(
        &self,
        id: i64,
        at: Timestamp,
        totals: &RunTotals,
    ) -> Result<(), StorageError> {
        dispatch!(self, s => s.finish_run(id, at, totals).await)
    }

    pub async fn abandon_runs(&self, replica_pattern: &str) -> Result<u64, StorageError> {
        dispatch!(self, s => s.abandon_runs(replica_pattern).await)
    }

    pub async fn status(&self) -> Result<Vec<StatusRow>, StorageError> {
        dispatch!(self, s => s.status().await)
    }

    /// The oldest observations among enabled projects (index probes: cheap per scrape).
    pub async fn oldest_observations(&self) -> Result<OldestObservations, StorageError> {
        dispatch!(self, s => s.oldest_observations().await)
    }

    /// Enabled projects not polled since `before`, oldest first.
    pub async fn stale(&self, before: Timestamp) -> Result<Vec<StaleRow>, StorageError> {
        dispatch!(self, s => s.stale(before).await)
    }

    pub async fn history(&self, id: &ProjectId) -> Result<Vec<HistoryRow>, StorageError> {
        dispatch!(self, s => s.history(id).await)
    }

    /// Runs statements without parameters or results (tests, fixtures).
    pub async fn execute_script(&self, sql: &str) -> Result<(), StorageError> {
        dispatch!(self, s => s.execute_script(sql).await)
    }

    /// The first column of the first row of `sql`, as an integer.
    pub async fn query_i64(&self, sql: &str) -> Result<i64, StorageError> {
        let table = self.query_cells(sql).await?;
        match table.rows.first().and_then(|r| r.first()) {
            Some(Cell::Int(v)) => Ok(*v),
            other => Err(StorageError::Invalid(format!(
                "expected an integer from {sql:?}, got {other:?}"
            ))),
        }
    }

    /// Any query's rows, decoded by SQL type.
    pub async fn query_cells(&self, sql: &str) -> Result<CellTable, StorageError> {
        dispatch!(self, s => s.query_cells(sql).await)
    }

    /// Any query's rows, rendered as text.
    pub async fn query_table(&self, sql: &str) -> Result<TextTable, StorageError> {
        Ok(self.query_cells(sql).await?.into())
    }

    /// The plan of a query (`$1`, if any, bound to `bind`): PostgreSQL's `EXPLAIN` with
    /// sequential scans disabled, SQLite's `EXPLAIN QUERY PLAN` details.
    pub async fn explain(
        &self,
        sql: &str,
        bind: Option<&str>,
    ) -> Result<Vec<String>, StorageError> {
        dispatch!(self, s => s.explain(sql, bind, false).await)
    }

    /// The plan as executed (PostgreSQL `EXPLAIN (ANALYZE, BUFFERS)`; SQLite's plan).
    pub async fn explain_analyze(
        &self,
        sql: &str,
        bind: Option<&str>,
    ) -> Result<Vec<String>, StorageError> {
        dispatch!(self, s => s.explain(sql, bind, true).await)
    }

    /// Runs a query (`$1` bound to `bind`) and counts its rows: for timing queries.
    pub async fn fetch_count(&self, sql: &str, bind: Option<&str>) -> Result<usize, StorageError> {
        dispatch!(self, s => s.fetch_count(sql, bind).await)
    }

    pub async fn close(&self) {
        dispatch!(self, s => s.pool.close().await)
    }
}
