//! The seam between the backend-independent statements and the two backends.
//!
//! [`SqlStore`] holds a pool and runs SQL written once; [`Dialect`] is what each backend
//! supplies where SQL cannot be shared (JSON set functions, `FOR UPDATE SKIP LOCKED`, whose
//! clock decides leases). Because the statement text is an associated constant of the
//! backend type, no caller can run PostgreSQL SQL on SQLite or the other way round.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use sqlx::database::HasStatementCache;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{ColumnIndex, Connection, Database, Decode, Encode, Executor, IntoArguments, Pool};
use sqlx::{Postgres, Sqlite, Type};

use super::autocommit::Autocommit;
use super::counters::Counters;
use super::error::StorageError;
use crate::domain::Timestamp;

/// sqlx's query type of a backend.
pub(crate) type SqlxQuery<'q, DB> = sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// What differs per backend. Shared code is generic over `DB: Dialect` and needs no other
/// bound: what it does with sqlx goes through [`Query`], [`RowGet`] and [`RowsAffected`],
/// whose bounds are stated once, here.
pub(crate) trait Dialect:
    Driver + Database<Row: RowGet, QueryResult: RowsAffected, Connection: Send>
{
    const NAME: &'static str;
    /// How a write transaction starts. SQLite: `BEGIN IMMEDIATE`, taking the write lock
    /// up front; a deferred transaction that reads first cannot upgrade to a write after
    /// another connection (a `refresh` beside the daemon) committed, and fails with
    /// `SQLITE_BUSY_SNAPSHOT` that no busy timeout waits out.
    const BEGIN: &'static str;
    /// PostgreSQL: lease times and written timestamps come from the server's clock.
    /// SQLite: one daemon per file, so its local clock is the only one.
    const DATABASE_CLOCK: bool;
    /// `SELECT` of the server's clock, where it has one that matters.
    const NOW: Option<&'static str>;

    /// Whether `CLAIM_*` return whole stored rows (PostgreSQL joins them in the same
    /// statement) or only `project_id`, to be read with `LOAD_MANY` (SQLite).
    const CLAIM_RETURNS_STORED: bool;
    /// Claims: `$1` cutoff, `$2` the cycle's start (a project polled since is not
    /// claimed again in the same cycle), then limit, owner, lease expiry (see
    /// [`Dialect::bind_expiry`]) and now (see [`Dialect::bind_now`]). `--all` is a due
    /// claim whose cutoff is the end of time.
    const CLAIM_DUE: &'static str;
    const CLAIM_ONCE: &'static str;
    /// Requested projects, oldest request first (binds as `CLAIM_DUE`; `$1`, `$2` unused).
    const CLAIM_REQUESTED: &'static str;
    /// `$1` JSON array of IDs, then owner, expiry, now: claims those not leased by
    /// another live claim, due or not.
    const CLAIM_IDS: &'static str;
    /// Poll requests: `$1` JSON array of IDs, `$2` the request time; returns the enabled
    /// tracked projects among them, now requested.
    const REQUEST_IDS: &'static str;
    /// The enabled tracked projects among the JSON array `$1` (nothing written).
    const ENABLED_AMONG: &'static str;
    /// Run in a request's transaction when something was requested: PostgreSQL's
    /// `pg_notify`, delivered to every listening replica at commit.
    const REQUEST_NOTIFY: Option<&'static str>;
    /// The age in seconds of the oldest request on a project no live claim holds (NULL
    /// when a requested claim would find nothing), and whether any request is pending at
    /// all, claimable or not. Then now (see [`Dialect::bind_now`]).
    const REQUESTS_PENDING: &'static str;
    /// What a waiting `refresh` reads of the projects in the JSON array `$1`.
    const REQUEST_STATES: &'static str;
    /// `$1` owner, then expiry.
    const RENEW_LEASES: &'static str;
    /// Stored state of the tracked projects in the JSON array `$1`.
    const LOAD_MANY: &'static str;
    /// Unchanged polls, `$1` a JSON array of touches: one statement on the narrow
    /// `tracked_projects` rows alone, returning the IDs applied (the others were fenced).
    const TOUCH: &'static str;
    /// `$1` JSON array of IDs, `$2` the time they become due (if not due earlier).
    const MARK_DUE: &'static str;
    /// `sync.projects` reconciliation against a temporary table `config_ids` of this
    /// transaction: created by `CONFIG_STAGE`, filled a chunk at a time by
    /// `CONFIG_STAGE_IDS` (`$1` a JSON array of IDs), then `CONFIG_ADD` (`$1` now, `$2` the
    /// due time) and `CONFIG_DISABLE`, and dropped by `CONFIG_UNSTAGE` where the backend
    /// does not drop it at commit.
    const CONFIG_STAGE: &'static [&'static str];
    const CONFIG_STAGE_IDS: &'static str;
    const CONFIG_ADD: &'static str;
    const CONFIG_DISABLE: &'static str;
    const CONFIG_UNSTAGE: Option<&'static str>;
    /// `track add/import` and `track remove` of a whole chunk in one statement, `$1` a
    /// JSON array of IDs; the insert binds `$2` now, `$3` the source, `$4` the due time.
    /// A row already tracked by hand (`cli` or `import`) keeps its source: only a
    /// disabled row or one another source owns (`config`, discovered) changes hands.
    const TRACK_ADD_MANY: &'static str;
    const TRACK_REMOVE_MANY: &'static str;
    /// How a plan is asked for: the prefix, a statement run first in the same transaction
    /// (PostgreSQL: no sequential scans, so a tiny table still shows whether an index can
    /// serve), and the column of the plan's text.
    const EXPLAIN: &'static str;
    const EXPLAIN_SETUP: Option<&'static str>;
    const EXPLAIN_COLUMN: usize;
    /// Appends a history row and announces it in one statement (PostgreSQL: the row,
    /// `pg_notify`, and the outbox row when `$14` is true; `$13` the payload), or `None`:
    /// the shared `INSERT_HISTORY`, then `OUTBOX_ENQUEUE` when the webhook is on (SQLite,
    /// whose CTEs cannot write).
    const INSERT_HISTORY_ANNOUNCED: Option<&'static str>;
    /// The webhook's next rows: each project's lowest `seq` that is due and not leased
    /// by another replica. `$1` owner, `$2` lease expiry ([`Dialect::bind_expiry`]),
    /// `$3` limit, then now ([`Dialect::bind_now`]).
    const OUTBOX_CLAIM: &'static str;
    /// A failed delivery: `$1` project, `$2` seq, `$3` owner, `$4` error, `$5` the next
    /// attempt ([`Dialect::bind_expiry`] with the backoff).
    const OUTBOX_RETRY: &'static str;
    /// List mode's sweep (migration 0010). `SWEEP_TAKE`: `$1` owner, then expiry: leases
    /// the sweep in progress to `$1` unless another live lease holds it, returning the
    /// cursor (`sweep_columns`). `SWEEP_START`: `$1` start, `$2` params, `$3` filter, `$4`
    /// owner, then expiry: a new sweep at page one unless one is in progress.
    /// `SWEEP_ADVANCE`: `$1` id, `$2` owner, `$3` next token, `$4` marked, `$5` discovered,
    /// `$6` now, then expiry: one page processed, the lease renewed, fenced on the owner.
    /// `SWEEP_RENEW`: `$1` id, `$2` owner, then expiry.
    const SWEEP_TAKE: &'static str;
    const SWEEP_START: &'static str;
    const SWEEP_ADVANCE: &'static str;
    const SWEEP_RENEW: &'static str;
    /// Moves every due and attempt time by `$1` seconds (text, e.g. `-600.000`) after a
    /// clock step, so "due" and "polled in this cycle" stay right on the new clock.
    const SHIFT_DUE_TIMES: Option<&'static str>;
    /// Run first in each retention batch's transaction (`storage::retention`).
    /// PostgreSQL: a generic plan, because planning a custom one probes the time index's
    /// end, stepping over every entry the previous batches deleted (268 ms per batch
    /// at 5M deleted rows, more than the delete itself).
    const PRUNE_SETUP: Option<&'static str> = None;

    /// Binds a value: one line per backend, where the concrete type proves it encodes.
    fn bind_value<'q, T: Value<'q>>(q: SqlxQuery<'q, Self>, value: T) -> SqlxQuery<'q, Self>;
    /// Binds the lease expiry: PostgreSQL computes it from its own clock and the TTL.
    fn bind_expiry(q: Query<'_, Self>, now: Timestamp, ttl: Duration) -> Query<'_, Self>;
    /// Binds "now" for lease comparisons; PostgreSQL uses its own clock instead.
    fn bind_now(q: Query<'_, Self>, now: Timestamp) -> Query<'_, Self>;
}

/// One backend's pool and the counters of what was sent through it.
#[derive(Debug)]
pub(crate) struct SqlStore<DB: Database> {
    pub(crate) pool: Pool<DB>,
    pub(crate) counters: Arc<Counters>,
    /// Set while the webhook is on: history rows are also queued in `webhook_outbox`,
    /// and this is poked after each commit that queued any.
    pub(crate) feed: Option<Arc<tokio::sync::Notify>>,
    /// Poked after a commit that queued poll requests, so this process's own request
    /// signal wakes at once (SQLite has no NOTIFY; other processes' requests are found by
    /// the signal's short poll).
    pub(crate) requests: Arc<tokio::sync::Notify>,
    /// PostgreSQL: the settings it was opened with, for the direct connections that
    /// migrations and `LISTEN` need behind a transaction pooler.
    pub(crate) settings: Option<Arc<crate::config::DatabaseSettings>>,
}

impl<DB: Database> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            counters: self.counters.clone(),
            feed: self.feed.clone(),
            requests: self.requests.clone(),
            settings: self.settings.clone(),
        }
    }
}

impl<DB: Database> SqlStore<DB> {
    pub(crate) fn new(pool: Pool<DB>) -> Self {
        Self {
            pool,
            counters: Arc::default(),
            feed: None,
            requests: Arc::default(),
            settings: None,
        }
    }

    /// Where a statement outside [`SqlStore::transaction`] runs: the pool, or behind a
    /// transaction pooler a transaction of its own (see [`Autocommit`]).
    pub(crate) fn exec(&self) -> Autocommit<'_, DB> {
        Autocommit {
            pool: &self.pool,
            wrap: self.counters.transaction_pooled,
        }
    }
}

impl<DB: Dialect> SqlStore<DB> {
    /// `sqlx::query`, counted.
    pub(crate) fn query<'q>(&self, sql: &'q str) -> Query<'q, DB> {
        counted(&self.counters, sql)
    }

    /// Runs `f` in a transaction on a connection of its own. On any error the
    /// connection is closed rather than returned to the pool: a connection whose
    /// COMMIT failed (a full disk, say) may still hold a transaction open, and handing it
    /// back would wedge every later cycle.
    pub(crate) async fn transaction<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        F: for<'c> FnOnce(
            &'c mut DB::Connection,
            &'c Counters,
        ) -> BoxFuture<'c, Result<T, StorageError>>,
        T: Send,
    {
        let mut pooled = self.pool.acquire().await?;
        let result = async {
            let mut tx = Connection::begin_with(&mut *pooled, DB::BEGIN).await?;
            let value = f(&mut tx, &self.counters).await?;
            tx.commit().await?;
            self.counters.committed();
            Ok(value)
        }
        .await;
        Self::settle(pooled, result).await
    }

    /// Returns a connection to the pool after a transaction, or closes it if the
    /// transaction failed (see [`SqlStore::transaction`]).
    pub(crate) async fn settle<T>(
        pooled: sqlx::pool::PoolConnection<DB>,
        result: Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        if result.is_err() {
            // Best effort: the pool opens a replacement when it next needs one.
            let _ = pooled.close().await;
        }
        result
    }
}

/// `sqlx::query`, counted, for use inside [`SqlStore::transaction`].
pub(crate) fn counted<'q, DB: Dialect>(counters: &Counters, sql: &'q str) -> Query<'q, DB> {
    counters.statement();
    Query(sqlx::query::<DB>(sql).persistent(!counters.transaction_pooled))
}

/// A value both backends bind (strings, integers, booleans, [`Timestamp`], their options).
pub(crate) trait Value<'q>:
    'q + Send + Encode<'q, Sqlite> + Type<Sqlite> + Encode<'q, Postgres> + Type<Postgres>
{
}

impl<'q, T> Value<'q> for T where
    T: 'q + Send + Encode<'q, Sqlite> + Type<Sqlite> + Encode<'q, Postgres> + Type<Postgres>
{
}

/// A value both backends read back from a column.
pub(crate) trait Column:
    for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

impl<T> Column for T where
    T: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

/// How a column is named: by position (`usize`) or by name (`&str`).
pub(crate) trait ColumnName: ColumnIndex<SqliteRow> + ColumnIndex<PgRow> {}

impl<I: ColumnIndex<SqliteRow> + ColumnIndex<PgRow>> ColumnName for I {}

/// `sqlx::Row::try_get` for shared code: one line per backend.
pub(crate) trait RowGet {
    fn try_get<T: Column, I: ColumnName>(&self, index: I) -> Result<T, sqlx::Error>;
}

impl RowGet for SqliteRow {
    fn try_get<T: Column, I: ColumnName>(&self, index: I) -> Result<T, sqlx::Error> {
        sqlx::Row::try_get(self, index)
    }
}

impl RowGet for PgRow {
    fn try_get<T: Column, I: ColumnName>(&self, index: I) -> Result<T, sqlx::Error> {
        sqlx::Row::try_get(self, index)
    }
}

/// A statement with its binds: `sqlx::query` whose `bind` takes any [`Value`] and whose
/// runs take any [`On`].
pub(crate) struct Query<'q, DB: Database>(SqlxQuery<'q, DB>);

impl<'q, DB: Dialect> Query<'q, DB> {
    pub(crate) fn bind<T: Value<'q>>(self, value: T) -> Self {
        Query(DB::bind_value(self.0, value))
    }

    pub(crate) async fn execute<'e>(
        self,
        on: impl Into<On<'e, DB>>,
    ) -> Result<DB::QueryResult, sqlx::Error>
    where
        'q: 'e,
    {
        DB::execute(self.0, on.into()).await
    }

    pub(crate) async fn fetch_all<'e>(
        self,
        on: impl Into<On<'e, DB>>,
    ) -> Result<Vec<DB::Row>, sqlx::Error>
    where
        'q: 'e,
    {
        DB::fetch_all(self.0, on.into()).await
    }

    pub(crate) async fn fetch_one<'e>(
        self,
        on: impl Into<On<'e, DB>>,
    ) -> Result<DB::Row, sqlx::Error>
    where
        'q: 'e,
    {
        DB::fetch_optional(self.0, on.into())
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    pub(crate) async fn fetch_optional<'e>(
        self,
        on: impl Into<On<'e, DB>>,
    ) -> Result<Option<DB::Row>, sqlx::Error>
    where
        'q: 'e,
    {
        DB::fetch_optional(self.0, on.into()).await
    }

    /// The rows one at a time, for reads whose size memory must not follow.
    pub(crate) fn fetch<'e>(
        self,
        on: impl Into<On<'e, DB>>,
    ) -> BoxStream<'e, Result<DB::Row, sqlx::Error>>
    where
        'q: 'e,
    {
        DB::fetch(self.0, on.into())
    }
}

/// Where a statement runs: a connection (inside a transaction), the pool, or
/// [`SqlStore::exec`].
pub(crate) enum On<'e, DB: Database> {
    Connection(&'e mut DB::Connection),
    Pool(&'e Pool<DB>),
    Autocommit(Autocommit<'e, DB>),
}

impl<'e, DB: Database> From<&'e mut DB::Connection> for On<'e, DB> {
    fn from(c: &'e mut DB::Connection) -> Self {
        On::Connection(c)
    }
}

impl<'e, DB: Database> From<&'e Pool<DB>> for On<'e, DB> {
    fn from(p: &'e Pool<DB>) -> Self {
        On::Pool(p)
    }
}

impl<'e, DB: Database> From<Autocommit<'e, DB>> for On<'e, DB> {
    fn from(a: Autocommit<'e, DB>) -> Self {
        On::Autocommit(a)
    }
}

/// Running statements: the one place the sqlx executor bounds are written. Implemented
/// for every backend sqlx can run statements on; shared code reaches it through [`Query`].
pub(crate) trait Driver: Database + HasStatementCache {
    fn execute<'e, 'q: 'e>(
        q: SqlxQuery<'q, Self>,
        on: On<'e, Self>,
    ) -> BoxFuture<'e, Result<Self::QueryResult, sqlx::Error>>;
    fn fetch_all<'e, 'q: 'e>(
        q: SqlxQuery<'q, Self>,
        on: On<'e, Self>,
    ) -> BoxFuture<'e, Result<Vec<Self::Row>, sqlx::Error>>;
    fn fetch_optional<'e, 'q: 'e>(
        q: SqlxQuery<'q, Self>,
        on: On<'e, Self>,
    ) -> BoxFuture<'e, Result<Option<Self::Row>, sqlx::Error>>;
    fn fetch<'e, 'q: 'e>(
        q: SqlxQuery<'q, Self>,
        on: On<'e, Self>,
    ) -> BoxStream<'e, Result<Self::Row, sqlx::Error>>;
}

impl<DB> Driver for DB
where
    DB: Database + HasStatementCache,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
{
    fn execute<'e, 'q: 'e>(
        q: SqlxQuery<'q, DB>,
        on: On<'e, DB>,
    ) -> BoxFuture<'e, Result<DB::QueryResult, sqlx::Error>> {
        match on {
            On::Connection(c) => Box::pin(q.execute(c)),
            On::Pool(p) => Box::pin(q.execute(p)),
            On::Autocommit(a) => Box::pin(q.execute(a)),
        }
    }

    fn fetch_all<'e, 'q: 'e>(
        q: SqlxQuery<'q, DB>,
        on: On<'e, DB>,
    ) -> BoxFuture<'e, Result<Vec<DB::Row>, sqlx::Error>> {
        match on {
            On::Connection(c) => Box::pin(q.fetch_all(c)),
            On::Pool(p) => Box::pin(q.fetch_all(p)),
            On::Autocommit(a) => Box::pin(q.fetch_all(a)),
        }
    }

    fn fetch_optional<'e, 'q: 'e>(
        q: SqlxQuery<'q, DB>,
        on: On<'e, DB>,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>> {
        match on {
            On::Connection(c) => Box::pin(q.fetch_optional(c)),
            On::Pool(p) => Box::pin(q.fetch_optional(p)),
            On::Autocommit(a) => Box::pin(q.fetch_optional(a)),
        }
    }

    fn fetch<'e, 'q: 'e>(
        q: SqlxQuery<'q, DB>,
        on: On<'e, DB>,
    ) -> BoxStream<'e, Result<DB::Row, sqlx::Error>> {
        match on {
            On::Connection(c) => q.fetch(c),
            On::Pool(p) => q.fetch(p),
            On::Autocommit(a) => q.fetch(a),
        }
    }
}

/// `rows_affected` has no common trait in sqlx; each backend's result type has it.
pub(crate) trait RowsAffected {
    fn rows_affected_of(&self) -> u64;
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected_of(&self) -> u64 {
        self.rows_affected()
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected_of(&self) -> u64 {
        self.rows_affected()
    }
}
