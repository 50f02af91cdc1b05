//! SQLite: connecting, migrating, the single-writer lock, and its [`Dialect`].
//!
//! WAL journal so readers (`ice-sync status`, a BI tool) never block the daemon;
//! `synchronous = NORMAL`, which in WAL mode keeps the file consistent through a crash
//! or power loss but may lose the last commits on power loss (the next cycle
//! re-observes them); a generous busy timeout because writers queue on one lock; a
//! small page cache per connection, because memory matters more than cache hits here.
//!
//! One daemon per file (the lock file enforces it), so the local clock is the only one
//! that matters: leases and due times are compared with the time the engine binds.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Sqlite;

use super::backend::{Dialect, Query, SqlStore, SqlxQuery, Value};
use super::error::{StorageContext, StorageError};
use crate::config::{DatabaseSettings, DatabaseUrl};
use crate::domain::Timestamp;

pub(crate) fn options(url: &DatabaseUrl) -> Result<SqliteConnectOptions, StorageError> {
    Ok(SqliteConnectOptions::from_str(url.expose_secret())
        .map_err(|e| {
            StorageError::Unavailable(format!(
                "database.url = {url:?} is not a SQLite URL ({})",
                url.scrub(&e.to_string())
            ))
        })?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true)
        // 512 KiB of page cache per connection instead of SQLite's 2 MiB default: writes go
        // through one writer anyway, and the pool's caches were most of the daemon's RSS.
        .pragma("cache_size", "-512"))
}

pub(crate) async fn connect(settings: &DatabaseSettings) -> Result<SqlStore<Sqlite>, StorageError> {
    let pool = SqlitePoolOptions::new()
        // SQLite has one writer; a second connection lets reads (`status`) proceed beside
        // it. More only add page caches: `database.max_connections` caps at 2 here.
        .max_connections(settings.max_connections.min(2))
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options(&settings.url)?)
        .await
        .with_ctx(|| {
            format!(
                "cannot open database.url = {:?}: does the directory exist and is it writable? \
                 (add ?mode=rwc to create the file)",
                settings.url
            )
        })?;
    Ok(SqlStore::new(pool))
}

/// Takes the single-writer lock of a SQLite database: an advisory lock on `PATH.lock`
/// beside the file, released by the kernel when the process exits, however it exits
/// (so a crashed daemon never blocks its own restart). `None` for PostgreSQL and for
/// in-memory databases.
pub fn lock_writer(settings: &DatabaseSettings) -> anyhow::Result<Option<std::fs::File>> {
    if settings.kind != crate::config::DatabaseKind::Sqlite {
        return Ok(None);
    }
    let Some(path) = file_path(settings.url.expose_secret()) else {
        return Ok(None);
    };
    let lock_path = format!("{path}.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| {
            format!("cannot create the lock file {lock_path}: is the directory writable?")
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another ice-sync daemon is already syncing into {path} (it holds {lock_path}); \
             SQLite takes one daemon per database file: stop the other one, or use PostgreSQL \
             to run several replicas"
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {lock_path}"))
        }
    }
}

/// The file behind a `sqlite:` URL, or `None` for an in-memory database.
pub fn file_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| path.to_string())
}

/// Applies the pending migrations.
pub(crate) async fn migrate(pool: &SqlitePool) -> anyhow::Result<usize> {
    let migrator = sqlx::migrate!("./migrations/sqlite");
    let before = applied(pool).await;
    migrator
        .run(pool)
        .await
        .context("applying SQLite migrations")?;
    Ok(applied(pool).await.saturating_sub(before))
}

async fn applied(pool: &SqlitePool) -> usize {
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .map_or(0, |n| n as usize)
}

/// The due projects in `$order` (see `storage::postgres`), not leased by a live claim;
/// the claim clears `requested_at` too.
macro_rules! sqlite_claim {
    ($due:literal, $order:literal, $limit:literal, $owner:literal, $expiry:literal, $now:literal) => {
        concat!(
            "UPDATE tracked_projects SET lease_owner = ",
            $owner,
            ", lease_expires_at = ",
            $expiry,
            ",
    claim_token = claim_token + 1, requested_at = NULL
WHERE project_id IN (
    SELECT project_id FROM tracked_projects
    WHERE enabled AND ",
            $due,
            "
      AND (lease_expires_at IS NULL OR lease_expires_at <= ",
            $now,
            ")
    ORDER BY ",
            $order,
            ", project_id
    LIMIT ",
            $limit,
            ")
RETURNING project_id"
        )
    };
}

/// The fields of one touch in `json_each($1)`.
macro_rules! touch_values {
    () => {
        "(SELECT value ->> 'project_id' AS project_id, value ->> 'token' AS token,
             value ->> 'polled_at' AS polled_at, value ->> 'attempted_at' AS attempted_at,
             value ->> 'request_id' AS request_id,
             value ->> 'next_poll_at' AS next_poll_at, value ->> 'every_tick' AS every_tick
      FROM json_each($1)) AS v"
    };
}

impl Dialect for Sqlite {
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    const NAME: &'static str = "sqlite";
    const DATABASE_CLOCK: bool = false;
    const NOW: Option<&'static str> = None;
    const CLAIM_RETURNS_STORED: bool = false;

    const CLAIM_DUE: &'static str = sqlite_claim!(
        "next_poll_at <= $1 AND (last_attempt_at IS NULL OR last_attempt_at < $2)",
        "next_poll_at",
        "$3",
        "$4",
        "$5",
        "$6"
    );
    const CLAIM_ONCE: &'static str = sqlite_claim!(
        "(next_poll_at <= $1 OR every_tick) AND (last_attempt_at IS NULL OR last_attempt_at < $2)",
        "next_poll_at",
        "$3",
        "$4",
        "$5",
        "$6"
    );
    // `$1` and `$2` are bound like every claim's but not needed (see `storage::postgres`).
    const CLAIM_REQUESTED: &'static str = sqlite_claim!(
        "requested_at IS NOT NULL",
        "requested_at",
        "$3",
        "$4",
        "$5",
        "$6"
    );
    const CLAIM_IDS: &'static str = "\
UPDATE tracked_projects SET lease_owner = $2, lease_expires_at = $3, claim_token = claim_token + 1,
    requested_at = NULL
WHERE enabled AND project_id IN (SELECT value FROM json_each($1))
  AND (lease_expires_at IS NULL OR lease_expires_at <= $4)
RETURNING project_id";
    const REQUEST_IDS: &'static str = "\
UPDATE tracked_projects SET requested_at = COALESCE(requested_at, $2)
WHERE enabled AND project_id IN (SELECT value FROM json_each($1))
RETURNING project_id";
    const ENABLED_AMONG: &'static str = "\
SELECT project_id FROM tracked_projects
WHERE enabled AND project_id IN (SELECT value FROM json_each($1))";
    // One daemon per file, polling `REQUESTS_PENDING`: nobody to notify.
    const REQUEST_NOTIFY: Option<&'static str> = None;
    const REQUESTS_PENDING: &'static str = "\
SELECT (SELECT (julianday($1) - julianday(requested_at)) * 86400.0
        FROM tracked_projects
        WHERE requested_at IS NOT NULL AND enabled
          AND (lease_expires_at IS NULL OR lease_expires_at <= $1)
        ORDER BY requested_at LIMIT 1),
       EXISTS (SELECT 1 FROM tracked_projects WHERE requested_at IS NOT NULL AND enabled)";
    const REQUEST_STATES: &'static str = concat!(
        super::sql::request_state_columns!(),
        "WHERE t.project_id IN (SELECT value FROM json_each($1)) ORDER BY t.project_id"
    );
    const RENEW_LEASES: &'static str =
        "UPDATE tracked_projects SET lease_expires_at = $2 WHERE lease_owner = $1";
    const LOAD_MANY: &'static str = concat!(
        super::sql::stored_columns!(),
        "WHERE t.project_id IN (SELECT value FROM json_each($1)) \
         ORDER BY t.next_poll_at, t.project_id"
    );
    const TOUCH: &'static str = concat!(
        "UPDATE tracked_projects AS t SET last_attempt_at = v.attempted_at,
    next_poll_at = v.next_poll_at, every_tick = v.every_tick, consecutive_failures = 0,
    not_found_count = 0, last_error = NULL, last_error_at = NULL, lease_owner = NULL,
    lease_expires_at = NULL, claim_token = claim_token + 1,
    last_polled_at = v.polled_at, last_request_id = v.request_id
FROM ",
        touch_values!(),
        "
WHERE t.project_id = v.project_id AND t.claim_token = v.token
RETURNING project_id"
    );
    const MARK_DUE: &'static str = "\
UPDATE tracked_projects SET next_poll_at = MIN(next_poll_at, $2)
WHERE enabled AND project_id IN (SELECT value FROM json_each($1))";
    // A temporary table lives in the connection's own temp database and goes with a
    // rollback; it is dropped at the end, as SQLite has no ON COMMIT DROP.
    const CONFIG_STAGE: &'static [&'static str] = &[
        "DROP TABLE IF EXISTS temp.config_ids",
        "CREATE TEMP TABLE config_ids (project_id TEXT PRIMARY KEY)",
    ];
    const CONFIG_STAGE_IDS: &'static str = "\
INSERT INTO temp.config_ids (project_id) SELECT value FROM json_each($1) WHERE TRUE
ON CONFLICT (project_id) DO NOTHING";
    const CONFIG_ADD: &'static str = "\
INSERT INTO tracked_projects (project_id, added_at, source, enabled, next_poll_at)
SELECT project_id, $1, 'config', TRUE, $2 FROM temp.config_ids WHERE TRUE
ON CONFLICT (project_id) DO UPDATE SET enabled = TRUE
WHERE tracked_projects.source = 'config' AND NOT tracked_projects.enabled";
    const CONFIG_DISABLE: &'static str = "\
UPDATE tracked_projects SET enabled = FALSE
WHERE source = 'config' AND enabled
  AND NOT EXISTS (SELECT 1 FROM temp.config_ids c WHERE c.project_id = tracked_projects.project_id)";
    const CONFIG_UNSTAGE: Option<&'static str> = Some("DROP TABLE temp.config_ids");
    // `WHERE TRUE`: SQLite's parser needs it between a SELECT and its upsert clause.
    const TRACK_ADD_MANY: &'static str = "\
INSERT INTO tracked_projects (project_id, added_at, source, enabled, next_poll_at)
SELECT DISTINCT value, $2, $3, TRUE, $4 FROM json_each($1) WHERE TRUE
ON CONFLICT (project_id) DO UPDATE SET enabled = TRUE, source = excluded.source
WHERE NOT tracked_projects.enabled
   OR (tracked_projects.source <> excluded.source AND excluded.source IN ('cli', 'import')
       AND tracked_projects.source NOT IN ('cli', 'import'))";
    const TRACK_REMOVE_MANY: &'static str =
        "DELETE FROM tracked_projects WHERE project_id IN (SELECT value FROM json_each($1))";
    const INSERT_HISTORY_ANNOUNCED: Option<&'static str> = None;
    const OUTBOX_CLAIM: &'static str = "\
UPDATE webhook_outbox SET lease_owner = $1, lease_expires_at = $2
WHERE (project_id, seq) IN (
    SELECT o.project_id, o.seq FROM webhook_outbox o
    WHERE (o.next_attempt_at IS NULL OR o.next_attempt_at <= $4)
      AND (o.lease_expires_at IS NULL OR o.lease_expires_at <= $4 OR o.lease_owner = $1)
      AND NOT EXISTS (SELECT 1 FROM webhook_outbox e
                      WHERE e.project_id = o.project_id AND e.seq < o.seq)
    ORDER BY o.observed_at, o.project_id
    LIMIT $3)
RETURNING project_id, seq, payload, attempts";
    const OUTBOX_RETRY: &'static str = "\
UPDATE webhook_outbox SET attempts = attempts + 1, last_error = $4, next_attempt_at = $5,
    lease_owner = NULL, lease_expires_at = NULL
WHERE project_id = $1 AND seq = $2 AND lease_owner = $3";
    // One daemon per file (the lock file): a lease left by an earlier process of this
    // file is always stale, so taking the sweep over needs no expiry check.
    const SWEEP_TAKE: &'static str = concat!(
        "UPDATE list_sweeps SET lease_owner = $1, lease_expires_at = $2
WHERE outcome = 'running'
RETURNING ",
        super::sql::sweep_columns!()
    );
    const SWEEP_START: &'static str = concat!(
        "INSERT INTO list_sweeps (started_at, updated_at, outcome, pages, params, filter,
    replica_id, lease_owner, lease_expires_at)
VALUES ($1, $1, 'running', 0, $2, $3, $4, $4, $5)
ON CONFLICT DO NOTHING
RETURNING ",
        super::sql::sweep_columns!()
    );
    const SWEEP_ADVANCE: &'static str = "\
UPDATE list_sweeps SET pages = pages + 1, next_token = $3, marked = marked + $4,
    discovered = discovered + $5, updated_at = $6, replica_id = $2, lease_expires_at = $7
WHERE id = $1 AND outcome = 'running' AND lease_owner = $2";
    const SWEEP_RENEW: &'static str = "\
UPDATE list_sweeps SET lease_expires_at = $3
WHERE id = $1 AND outcome = 'running' AND lease_owner = $2";
    const EXPLAIN: &'static str = "EXPLAIN QUERY PLAN ";
    const EXPLAIN_SETUP: Option<&'static str> = None;
    const EXPLAIN_COLUMN: usize = 3;
    const SHIFT_DUE_TIMES: Option<&'static str> = Some(
        "UPDATE tracked_projects SET
    next_poll_at = strftime('%Y-%m-%dT%H:%M:%fZ', next_poll_at, $1 || ' seconds'),
    last_attempt_at = strftime('%Y-%m-%dT%H:%M:%fZ', last_attempt_at, $1 || ' seconds'),
    lease_owner = NULL, lease_expires_at = NULL",
    );

    fn bind_value<'q, T: Value<'q>>(q: SqlxQuery<'q, Self>, value: T) -> SqlxQuery<'q, Self> {
        q.bind(value)
    }

    fn bind_expiry(q: Query<'_, Self>, now: Timestamp, ttl: Duration) -> Query<'_, Self> {
        let expiry = chrono::Duration::from_std(ttl)
            .ok()
            .and_then(|ttl| now.as_datetime().checked_add_signed(ttl))
            .unwrap_or_else(|| now.as_datetime());
        q.bind(Timestamp::from(expiry))
    }

    fn bind_now(q: Query<'_, Self>, now: Timestamp) -> Query<'_, Self> {
        q.bind(now)
    }
}
