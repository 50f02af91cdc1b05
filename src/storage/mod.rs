//! Storage: the tables of SPEC.md on SQLite or PostgreSQL, behind one [`Store`].
//!
//! Which backend `database.url` names is sealed inside this module: callers see
//! capabilities (claim, apply, touch, ...), never a pool or a backend variant. The SQL is
//! written once ([`sql`]) and run by a store generic over the sqlx backend; what must
//! differ per backend is that backend's `Dialect` ([`postgres`], [`sqlite`]).
//!
//! One file per concern: [`claims`] (claims, leases, the database clock), [`writes`]
//! (plans, touches, failures), [`tracking`] (what is tracked), [`runs`] (`sync_runs`),
//! `sweeps` (list mode's cursor and its lease), [`reads`] (status, history), [`requests`] (the poll-request queue and its wake-up
//! signal), [`callbacks`] (ICE event callbacks: dedupe and the poll they queue),
//! [`adhoc`] (arbitrary SQL for the demo and tests),
//! [`inspect`] (read-only inspection for `check`), [`outbox`] (the webhook's queue),
//! `retention` (pruning bookkeeping by age), `identity` (the region this database mirrors),
//! `producing_jobs` (`media_producing_jobs` and its queued lookups).
//! PostgreSQL's connection (TLS, the messages of a failed connection, `check`'s TLS
//! line) is `pg_connect`; behind a transaction pooler (`database.pooler`) a statement
//! outside a transaction gets one of its own (`autocommit`) and every statement is sent
//! unnamed.
//! Errors are typed ([`StorageError`]).
//!
//! The rules this module enforces: a plan is applied in one transaction or not at all
//! (a batch commits whole or not at all); every write of a claimed project is fenced on
//! its claim token, so a replica whose claim was taken over writes nothing; and a
//! connection that saw an error inside a transaction is closed, never reused.

pub mod adhoc;
mod autocommit;
mod backend;
pub mod callbacks;
pub mod claims;
mod counters;
pub mod error;
pub mod facts;
mod identity;
pub mod inspect;
pub mod listing;
mod migrations;
pub mod outbox;
mod pg_connect;
mod postgres;
mod producing_jobs;
pub mod read_only;
pub mod reads;
pub mod requests;
mod retention;
mod rows;
mod runs;
pub mod sql;
mod sqlite;
mod sweeps;
mod timestamp;
pub mod tracking;
mod writes;

use std::time::Duration;

pub use adhoc::{Cell, CellTable, TextTable};
pub use callbacks::{CallbackEvent, CallbackRecord};
pub use claims::ClaimRequest;
pub use counters::StorageCounters;
pub use error::{StorageError, StorageErrorKind};
pub use identity::DatabaseIdentity;
pub use listing::{ProjectStatus, StatusQuery};
pub use outbox::{OutboxClaim, OutboxRow, OutboxStats};
pub use read_only::{open_read_only, ReadOnlyError};
pub use reads::{HistoryRow, OldestObservations, StaleRow, StatusRow};
pub use requests::{
    PendingRequests, RequestOutcome, RequestSignal, RequestSource, RequestState, RequestTarget,
};
pub use retention::PruneTarget;
/// The file behind a `sqlite:` URL (`None`: in memory).
pub use sqlite::file_path as sqlite_file;
pub use sqlite::lock_writer;
pub use tracking::TrackedRow;

use backend::SqlStore;

use crate::config::{DatabaseKind, DatabaseSettings};
use crate::contract::{
    Applied, ClaimScope, FailureJob, JobObservation, JobRequest, RunTotals, Stored, StoredJob,
    SweepCursor, SweepEnd, SweepStart, SweepStatus, SweepStep, TouchJob, WriteJob,
};
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

/// `ice_sync_poll_requests_total{source}`: projects requested, once per request.
fn count_requests(source: RequestSource, outcome: &RequestOutcome) {
    metrics::counter!(crate::metric_names::POLL_REQUESTS, "source" => source.as_str())
        .increment(outcome.requested.len() as u64);
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
            Backend::Sqlite(s) => sqlite::migrate(&s.pool, None).await,
            Backend::Postgres(s) => postgres::migrate(s).await,
        }
    }

    /// Applies the migrations numbered up to `last` only: tests and benchmarks build the
    /// schema an older release left, fill it, then [`Store::migrate`] as an upgrade would.
    #[cfg(feature = "testkit")]
    pub async fn migrate_through(&self, last: i64) -> anyhow::Result<usize> {
        match &self.backend {
            Backend::Sqlite(s) => sqlite::migrate(&s.pool, Some(last)).await,
            Backend::Postgres(s) => postgres::run_migrations(&s.pool, Some(last)).await,
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

    /// This store with the change feed's webhook on: every history row is also queued
    /// in `webhook_outbox` in its own transaction, and `signal` is poked after each
    /// commit that queued any (the deliverer wakes on it).
    pub fn with_feed(self, signal: std::sync::Arc<tokio::sync::Notify>) -> Store {
        let backend = match self.backend {
            Backend::Sqlite(mut s) => {
                s.feed = Some(signal);
                Backend::Sqlite(s)
            }
            Backend::Postgres(mut s) => {
                s.feed = Some(signal);
                Backend::Postgres(s)
            }
        };
        Store { backend }
    }

    /// What [`Store::with_feed`] pokes, if the webhook is on.
    pub fn feed_signal(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        dispatch!(self, s => s.feed.clone())
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

    /// Asks for an immediate poll of `target`'s enabled projects (see [`requests`]): marks
    /// them requested at `at` and, on PostgreSQL, notifies every replica at commit.
    pub async fn request_polls(
        &self,
        target: &RequestTarget,
        source: RequestSource,
        at: Timestamp,
    ) -> Result<RequestOutcome, StorageError> {
        let outcome = dispatch!(self, s => s.request_polls(target, at, None).await)?;
        count_requests(source, &outcome);
        Ok(outcome)
    }

    /// Tracks these projects under `track_source` (as `track add` would: re-enabling a
    /// disabled one) and requests a poll of them, in one transaction: for a callback naming
    /// a project not tracked yet.
    pub async fn track_and_request(
        &self,
        ids: &[ProjectId],
        track_source: &str,
        source: RequestSource,
        at: Timestamp,
    ) -> Result<RequestOutcome, StorageError> {
        let target = RequestTarget::Projects {
            ids: ids.to_vec(),
            all_or_nothing: false,
        };
        let outcome = dispatch!(self, s => s.request_polls(&target, at, Some(track_source)).await)?;
        count_requests(source, &outcome);
        Ok(outcome)
    }

    /// Whether a requested cycle would find work at `now`, and whether any request waits.
    pub async fn pending_requests(&self, now: Timestamp) -> Result<PendingRequests, StorageError> {
        dispatch!(self, s => s.pending_requests(now).await)
    }

    /// Where the requests for these projects stand (for `ice-sync refresh`).
    pub async fn request_states(
        &self,
        ids: &[ProjectId],
    ) -> Result<Vec<RequestState>, StorageError> {
        dispatch!(self, s => s.request_states(ids).await)
    }

    /// The wake-up of a daemon's requested cycles: `LISTEN` on PostgreSQL, a short poll
    /// of the queue on SQLite (comparing leases with `clock`) and behind a transaction
    /// pooler without `database.direct_url`, where no connection can listen.
    pub async fn request_signal(&self, clock: crate::clock::SharedClock) -> RequestSignal {
        match &self.backend {
            Backend::Sqlite(s) => RequestSignal::sqlite(s.clone(), clock).await,
            Backend::Postgres(s) => match postgres::listen_options(s) {
                Some(options) => RequestSignal::postgres(options).await,
                None => RequestSignal::postgres_polling(s.clone(), clock),
            },
        }
    }

    /// List mode: these projects changed, so they are due by `at`.
    pub async fn mark_due(&self, ids: &[ProjectId], at: Timestamp) -> Result<u64, StorageError> {
        dispatch!(self, s => s.mark_due(ids, at).await)
    }

    /// List mode: leases the sweep in progress to `owner` unless another replica's lease
    /// on it is live. `None`: no sweep in progress, or someone else is sweeping.
    pub async fn sweep_take(
        &self,
        owner: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Option<SweepCursor>, StorageError> {
        dispatch!(self, s => s.sweep_take(owner, ttl, now).await)
    }

    /// Starts a sweep at page one, leased to `owner`; `None` if one is in progress.
    pub async fn sweep_start(
        &self,
        start: &SweepStart,
        owner: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Option<SweepCursor>, StorageError> {
        dispatch!(self, s => s.sweep_start(start, owner, ttl, now).await)
    }

    /// Records a processed page and renews the lease; `false` if the lease was lost.
    pub async fn sweep_advance(
        &self,
        id: i64,
        owner: &str,
        step: &SweepStep,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        dispatch!(self, s => s.sweep_advance(id, owner, step, ttl, now).await)
    }

    /// Extends the lease on sweep `id`; `false` if it is no longer `owner`'s.
    pub async fn sweep_renew(
        &self,
        id: i64,
        owner: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        dispatch!(self, s => s.sweep_renew(id, owner, ttl, now).await)
    }

    /// Ends sweep `id` (with the last page's counts, if `last`); `false` if the lease
    /// was lost.
    pub async fn sweep_finish(
        &self,
        id: i64,
        owner: &str,
        end: SweepEnd,
        last: Option<&SweepStep>,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        dispatch!(self, s => s.sweep_finish(id, owner, end, last, now).await)
    }

    /// Gives back `owner`'s lease on the sweep in progress.
    pub async fn sweep_release(&self, owner: &str) -> Result<(), StorageError> {
        dispatch!(self, s => s.sweep_release(owner).await)
    }

    /// The sweep in progress and the last completed one.
    pub async fn sweep_status(&self) -> Result<SweepStatus, StorageError> {
        dispatch!(self, s => s.sweep_status().await)
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

    /// Records a verified ICE event callback and queues a poll of its project, in one
    /// transaction: at most once per (EventType, JobId) across every replica.
    pub async fn record_callback(
        &self,
        event: &CallbackEvent,
        at: Timestamp,
    ) -> Result<CallbackRecord, StorageError> {
        let record = dispatch!(self, s => s.record_callback(event, at).await)?;
        if matches!(record, CallbackRecord::Queued | CallbackRecord::Tracked) {
            metrics::counter!(
                crate::metric_names::POLL_REQUESTS,
                "source" => RequestSource::Callback.as_str()
            )
            .increment(1);
        }
        Ok(record)
    }

    /// Opens a `sync_runs` row; `trigger` says what started the cycle.
    pub async fn begin_run(
        &self,
        at: Timestamp,
        replica_id: &str,
        trigger: &str,
    ) -> Result<i64, StorageError> {
        dispatch!(self, s => s.begin_run(at, replica_id, trigger).await)
    }

    pub async fn finish_run(
        &self,
        id: i64,
        at: Timestamp,
        totals: &RunTotals,
    ) -> Result<(), StorageError> {
        dispatch!(self, s => s.finish_run(id, at, totals).await)
    }

    /// Deletes a run still `running` that did nothing worth a row.
    pub async fn discard_run(&self, id: i64) -> Result<(), StorageError> {
        dispatch!(self, s => s.discard_run(id).await)
    }

    /// Closes as `aborted` the runs still `running` under exactly `replica_id`.
    pub async fn abandon_runs(&self, replica_id: &str) -> Result<u64, StorageError> {
        dispatch!(self, s => s.abandon_runs(replica_id).await)
    }

    /// The replica ids that have a run still `running`.
    pub async fn running_replicas(&self) -> Result<Vec<String>, StorageError> {
        dispatch!(self, s => s.running_replicas().await)
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

    /// Leases the webhook's next rows: per project the lowest `seq`, if it is due.
    pub async fn outbox_claim(
        &self,
        claim: &OutboxClaim<'_>,
    ) -> Result<Vec<OutboxRow>, StorageError> {
        dispatch!(self, s => s.outbox_claim(claim).await)
    }

    /// The receiver acknowledged the row: it is removed (false: already gone).
    pub async fn outbox_delivered(&self, id: &ProjectId, seq: i64) -> Result<bool, StorageError> {
        dispatch!(self, s => s.outbox_delivered(id, seq).await)
    }

    /// A failed attempt: counted, retried after `delay`, lease given back (false: the
    /// lease had passed to another replica, which now decides).
    pub async fn outbox_retry(
        &self,
        row: &OutboxRow,
        owner: &str,
        error: &str,
        now: Timestamp,
        delay: Duration,
    ) -> Result<bool, StorageError> {
        dispatch!(self, s => s.outbox_retry(row, owner, error, now, delay).await)
    }

    /// Gives back every outbox lease `owner` holds.
    pub async fn outbox_release(&self, owner: &str) -> Result<u64, StorageError> {
        dispatch!(self, s => s.outbox_release(owner).await)
    }

    /// Holders of outbox leases whose id matches a `LIKE` pattern.
    pub async fn outbox_lease_owners(&self, pattern: &str) -> Result<Vec<String>, StorageError> {
        dispatch!(self, s => s.outbox_lease_owners(pattern).await)
    }

    /// How many rows wait for the receiver, and since when.
    pub async fn outbox_stats(&self) -> Result<OutboxStats, StorageError> {
        dispatch!(self, s => s.outbox_stats().await)
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

    /// Deletes at most `limit` of `target`'s rows older than `before` and not older than
    /// `from` (oldest first); returns how many, and the newest one's time, where the next
    /// batch may start. History and current rows are never a target.
    pub async fn prune_batch(
        &self,
        target: PruneTarget,
        before: Timestamp,
        from: Timestamp,
        limit: u32,
    ) -> Result<(u64, Option<Timestamp>), StorageError> {
        dispatch!(self, s => s.prune_batch(target, before, from, limit).await)
    }

    /// How many rows [`Store::prune_batch`] would delete at `before`, all batches together.
    pub async fn count_prunable(
        &self,
        target: PruneTarget,
        before: Timestamp,
    ) -> Result<u64, StorageError> {
        dispatch!(self, s => s.count_prunable(target, before).await)
    }

    /// Which region (and account) this database mirrors, if recorded.
    pub async fn identity(&self) -> Result<Option<DatabaseIdentity>, StorageError> {
        dispatch!(self, s => s.identity().await)
    }

    /// Records `id` unless something is recorded (`replace`: whatever is); returns what
    /// is recorded afterwards.
    pub async fn record_identity(
        &self,
        id: &DatabaseIdentity,
        replace: bool,
    ) -> Result<Option<DatabaseIdentity>, StorageError> {
        dispatch!(self, s => s.record_identity(id, replace).await)
    }

    /// Stores producing jobs and marks `done` handled, in one transaction.
    pub async fn write_jobs(
        &self,
        jobs: &[JobObservation],
        done: Option<&JobRequest>,
    ) -> Result<u64, StorageError> {
        dispatch!(self, s => s.write_jobs(jobs, done).await)
    }

    /// A job ICE no longer knows: counted (polling stops after a repeat), row kept.
    pub async fn job_not_found(
        &self,
        job_id: &str,
        at: Timestamp,
        done: Option<&JobRequest>,
    ) -> Result<(), StorageError> {
        dispatch!(self, s => s.job_not_found(job_id, at, done).await)
    }

    /// Queues a producing-job lookup (idempotent).
    pub async fn request_job(
        &self,
        request: &JobRequest,
        at: Timestamp,
    ) -> Result<(), StorageError> {
        dispatch!(self, s => s.request_job(request, at).await)
    }

    /// Drops every queued producing-job lookup (jobs are off).
    pub async fn clear_job_requests(&self) -> Result<u64, StorageError> {
        dispatch!(self, s => s.clear_job_requests().await)
    }

    pub async fn job_requests(&self, limit: i64) -> Result<Vec<JobRequest>, StorageError> {
        dispatch!(self, s => s.job_requests(limit).await)
    }

    pub async fn unfinished_jobs(&self, limit: i64) -> Result<Vec<String>, StorageError> {
        dispatch!(self, s => s.unfinished_jobs(limit).await)
    }

    pub async fn project_job_statuses(
        &self,
        project: &ProjectId,
    ) -> Result<Vec<(String, Option<String>)>, StorageError> {
        dispatch!(self, s => s.project_job_statuses(project).await)
    }

    pub async fn tracked_after(
        &self,
        after: &str,
        limit: i64,
    ) -> Result<Vec<ProjectId>, StorageError> {
        dispatch!(self, s => s.tracked_after(after, limit).await)
    }

    /// Stored jobs: all (`filter` empty), a project's, or one job.
    pub async fn stored_jobs(
        &self,
        filter: &str,
        limit: i64,
    ) -> Result<Vec<StoredJob>, StorageError> {
        dispatch!(self, s => s.stored_jobs(filter, limit).await)
    }

    /// Streams the projects `query` selects to `each` (false stops); returns how many
    /// were handed over. Memory does not grow with the number of projects.
    pub async fn status_each(
        &self,
        query: &StatusQuery,
        each: &mut dyn FnMut(ProjectStatus) -> bool,
    ) -> Result<u64, StorageError> {
        dispatch!(self, s => s.status_each(query, each).await)
    }

    /// Streams `tracked_projects` in ID order to `each` (false stops).
    pub async fn track_list_each(
        &self,
        each: &mut dyn FnMut(TrackedRow) -> bool,
    ) -> Result<u64, StorageError> {
        dispatch!(self, s => s.track_list_each(each).await)
    }

    /// The tracked rows among `ids`, whatever their state; untracked IDs are absent.
    pub async fn tracked_among(&self, ids: &[ProjectId]) -> Result<Vec<TrackedRow>, StorageError> {
        dispatch!(self, s => s.tracked_among(ids).await)
    }

    pub async fn close(&self) {
        dispatch!(self, s => s.pool.close().await)
    }
}
