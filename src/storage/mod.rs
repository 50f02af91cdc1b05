//! Storage: the tables of SPEC.md on SQLite or PostgreSQL, behind one [`Store`].
//!
//! Which backend `database.url` names is sealed inside this module: callers see
//! capabilities (claim, apply, touch, ...), never a pool or a backend variant. The SQL is
//! written once ([`sql`]) and run by a store generic over the sqlx backend; what must
//! differ per backend is that backend's `Dialect` ([`postgres`], [`sqlite`]).
//!
//! One file per concern: [`claims`] (claims, leases, the database clock), [`writes`]
//! (plans, touches, failures; `write_rows` are the rows they bind), [`tracking`] (what
//! is tracked), [`runs`] (`sync_runs`), `sweeps` (list mode's cursor and its lease), [`reads`] (status, history),
//! [`refresh_queue`] (the refresh queue; `refresh_signal` wakes a daemon when it fills), [`callbacks`] (ICE event
//! callbacks: dedupe and the refresh they queue), [`adhoc`] (arbitrary SQL for the facts
//! check, the demo and the tests' exact-row checks),
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

/// Runs `$e` on whichever backend `$backend` (a `&Backend`) holds, as `$s`.
macro_rules! dispatch {
    ($backend:expr, $s:ident => $e:expr) => {
        match $backend {
            $crate::storage::Backend::Sqlite($s) => $e,
            $crate::storage::Backend::Postgres($s) => $e,
        }
    };
}

pub(crate) mod adhoc;
mod autocommit;
mod backend;
pub(crate) mod callbacks;
pub(crate) mod claims;
mod counters;
pub(crate) mod error;
pub(crate) mod facts;
mod identity;
pub(crate) mod inspect;
pub(crate) mod listing;
pub(crate) mod outbox;
mod pg_connect;
mod postgres;
mod producing_jobs;
pub(crate) mod read_only;
pub(crate) mod reads;
pub(crate) mod refresh_queue;
mod refresh_signal;
mod retention;
mod rows;
mod runs;
pub mod sql;
mod sqlite;
mod sweeps;
mod timestamp;
pub(crate) mod tracking;
mod write_rows;
mod writes;

pub use adhoc::{Cell, CellTable, TextTable};
pub(crate) use callbacks::{CallbackEvent, CallbackRecord, Callbacks};
pub use claims::{ClaimRequest, Claims};
pub use counters::StorageCounters;
pub use error::{StorageError, StorageErrorKind};
pub(crate) use identity::DatabaseIdentity;
pub(crate) use listing::{ProjectStatus, StatusQuery};
pub(crate) use outbox::{Outbox, OutboxClaim, OutboxRow};
pub(crate) use producing_jobs::Jobs;
pub(crate) use read_only::{open_read_only, ReadOnlyError};
pub use reads::{HistoryRow, OldestObservations, Reads, StaleRow, StatusRow};
pub use refresh_queue::{
    PendingRefreshes, RefreshOutcome, RefreshQueue, RefreshSource, RefreshState, RefreshTarget,
};
pub use refresh_signal::RefreshSignal;
pub use retention::{PruneTarget, Retention};
pub use runs::Runs;
/// The file behind a `sqlite:` URL (`None`: in memory).
pub use sqlite::file_path as sqlite_file;
pub use sqlite::lock_writer;
pub use sweeps::Sweeps;
pub use tracking::{TrackedRow, Tracking};
pub use writes::Writes;

use backend::SqlStore;

use crate::config::{DatabaseKind, DatabaseSettings};
use crate::domain::Timestamp;

/// The storage every command uses, whichever backend `database.url` names.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone, Debug)]
pub(crate) enum Backend {
    Sqlite(SqlStore<sqlx::Sqlite>),
    Postgres(SqlStore<sqlx::Postgres>),
}

/// `ice_sync_poll_requests_total{source}`: projects requested, once per request.
pub(crate) fn count_refreshes(source: RefreshSource, outcome: &RefreshOutcome) {
    metrics::counter!(crate::metric_names::POLL_REQUESTS, "source" => source.as_str())
        .increment(outcome.requested.len() as u64);
}

impl From<Backend> for Store {
    fn from(backend: Backend) -> Self {
        Store { backend }
    }
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
            Backend::Postgres(s) => postgres::migrate(s).await,
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
    pub(crate) fn shared_by_replicas(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// This store with the change feed's webhook on: every history row is also queued
    /// in `webhook_outbox` in its own transaction, and `signal` is poked after each
    /// commit that queued any (the deliverer wakes on it).
    pub(crate) fn with_feed(self, signal: std::sync::Arc<tokio::sync::Notify>) -> Store {
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
    pub(crate) fn feed_signal(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        dispatch!(&self.backend, s => s.feed.clone())
    }

    /// Statements and transactions sent through this store so far.
    pub fn counters(&self) -> StorageCounters {
        dispatch!(&self.backend, s => s.counters.snapshot())
    }

    pub(crate) async fn ping(&self) -> Result<(), StorageError> {
        dispatch!(&self.backend, s => s.ping().await)
    }

    /// The database server's clock, where it is the one that decides (PostgreSQL).
    pub async fn database_now(&self) -> Result<Option<Timestamp>, StorageError> {
        dispatch!(&self.backend, s => s.database_now().await)
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
        dispatch!(&self.backend, s => s.query_cells(sql).await)
    }

    /// Any query's rows, rendered as text.
    pub async fn query_table(&self, sql: &str) -> Result<TextTable, StorageError> {
        Ok(self.query_cells(sql).await?.into())
    }

    /// Which region (and account) this database mirrors, if recorded.
    pub(crate) async fn identity(&self) -> Result<Option<DatabaseIdentity>, StorageError> {
        dispatch!(&self.backend, s => s.identity().await)
    }

    /// Records `id` unless something is recorded (`replace`: whatever is); returns what
    /// is recorded afterwards.
    pub(crate) async fn record_identity(
        &self,
        id: &DatabaseIdentity,
        replace: bool,
    ) -> Result<Option<DatabaseIdentity>, StorageError> {
        dispatch!(&self.backend, s => s.record_identity(id, replace).await)
    }

    pub async fn close(&self) {
        dispatch!(&self.backend, s => s.pool.close().await)
    }

    /// Claims: leases on due projects, renewed and given back.
    pub fn claims(&self) -> Claims<'_> {
        Claims(&self.backend)
    }

    /// Writes of poll results, fenced on their claims.
    pub fn writes(&self) -> Writes<'_> {
        Writes(&self.backend)
    }

    /// The poll-request queue: asking, waiting, waking.
    pub fn refresh_queue(&self) -> RefreshQueue<'_> {
        RefreshQueue(&self.backend)
    }

    /// ICE event callbacks: recorded once, each queueing a poll.
    pub(crate) fn callbacks(&self) -> Callbacks<'_> {
        Callbacks(&self.backend)
    }

    /// List mode's sweep and its lease.
    pub fn sweeps(&self) -> Sweeps<'_> {
        Sweeps(&self.backend)
    }

    /// What is tracked, and the stored state of tracked projects.
    pub fn tracking(&self) -> Tracking<'_> {
        Tracking(&self.backend)
    }

    /// `sync_runs`: one row per cycle.
    pub fn runs(&self) -> Runs<'_> {
        Runs(&self.backend)
    }

    /// What `status`, `history`, `stale` and the gauges read.
    pub fn reads(&self) -> Reads<'_> {
        Reads(&self.backend)
    }

    /// The webhook's queue.
    pub(crate) fn outbox(&self) -> Outbox<'_> {
        Outbox(&self.backend)
    }

    /// Pruning bookkeeping rows by age.
    pub(crate) fn retention(&self) -> Retention<'_> {
        Retention(&self.backend)
    }

    /// `media_producing_jobs` and its queued lookups.
    pub fn jobs(&self) -> Jobs<'_> {
        Jobs(&self.backend)
    }
}
