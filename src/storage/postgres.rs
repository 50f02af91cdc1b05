//! PostgreSQL: connecting, migrating, and its [`Dialect`]: claims with
//! `FOR UPDATE SKIP LOCKED` the way Postgres job queues do, and leases on the server's
//! clock, so replicas whose clocks disagree still agree on who holds what.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres};

use super::backend::{Dialect, Query, SqlStore, SqlxQuery, Value};
use super::counters::Counters;
use super::error::StorageError;
use super::pg_connect::{self, Route};
use crate::config::DatabaseSettings;
use crate::domain::Timestamp;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn connect(
    settings: &DatabaseSettings,
) -> Result<SqlStore<Postgres>, StorageError> {
    for key in unknown_parameters(settings.url.expose_secret()) {
        // The driver's own warning quotes the value and is filtered out (`telemetry`).
        tracing::warn!(
            parameter = %key,
            "database.url: ignoring connect parameter {key:?}, which the PostgreSQL driver does not know (its value is not shown)"
        );
    }
    let store = open(settings, settings.max_connections, CONNECT_TIMEOUT).await?;
    warn_if_plaintext(&store).await;
    Ok(store)
}

/// Says so at start when the connection to a server on another host is not encrypted:
/// under the default `sslmode=prefer` that happens silently when the server offers no TLS.
async fn warn_if_plaintext(store: &SqlStore<Postgres>) {
    let options = store.pool.connect_options();
    let host = options.get_host();
    if host.starts_with('/') || ["localhost", "127.0.0.1", "::1"].contains(&host) {
        return;
    }
    let status = super::Store::from(super::Backend::Postgres(store.clone()))
        .tls_status()
        .await;
    if let Some((false, line)) = status {
        tracing::warn!("database.url: {line}");
    }
}

/// A store of `max_connections` on `database.url`, giving up after `timeout`.
pub(crate) async fn open(
    settings: &DatabaseSettings,
    max_connections: u32,
    timeout: Duration,
) -> Result<SqlStore<Postgres>, StorageError> {
    let pool = open_pool(settings, Route::Pooled, max_connections, timeout).await?;
    let mut store = SqlStore::new(pool);
    if pg_connect::transaction_pooled(settings, Route::Pooled) {
        store.counters = Arc::new(Counters::transaction_pooled());
    }
    store.settings = Some(Arc::new(settings.clone()));
    Ok(store)
}

/// A pool on `route`, after one plain connection: a pool retries a failed connection
/// until its timeout and then reports only the timeout, hiding the cause (a TLS
/// failure, say) that the operator needs to see.
pub(crate) async fn open_pool(
    settings: &DatabaseSettings,
    route: Route,
    max_connections: u32,
    timeout: Duration,
) -> Result<PgPool, StorageError> {
    let options = pg_connect::options(settings, route).map_err(StorageError::Unavailable)?;
    let fail = |e: String| {
        StorageError::Unavailable(pg_connect::connect_error(settings, route, &options, &e))
    };
    match tokio::time::timeout(timeout, PgConnection::connect_with(&options)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
        }
        Ok(Err(e)) => return Err(fail(e.to_string())),
        Err(_) => return Err(fail(format!("no answer within {}s", timeout.as_secs()))),
    }
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(timeout)
        .connect_with(options.clone())
        .await
        .map_err(|e| fail(e.to_string()))
}

/// Applies pending migrations. Behind a transaction pooler they run over
/// `database.direct_url`: the migrator holds a session-level advisory lock, which a
/// transaction pooler cannot keep. Without a direct URL nothing pending is fine, and
/// anything pending is refused with what to do.
pub(crate) async fn migrate(store: &SqlStore<Postgres>) -> anyhow::Result<usize> {
    let Some(settings) = store
        .settings
        .as_deref()
        .filter(|_| store.counters.transaction_pooled)
    else {
        return run_migrations(&store.pool).await;
    };
    if settings.postgres.direct_url.is_some() {
        let pool = open_pool(settings, Route::Direct, 1, CONNECT_TIMEOUT).await?;
        let applied = run_migrations(&pool).await;
        pool.close().await;
        return applied;
    }
    let state = super::Store::from(super::Backend::Postgres(store.clone()))
        .migration_state()
        .await?;
    if state.pending == 0 {
        return Ok(0);
    }
    anyhow::bail!(
        "{} of {} migrations are pending, and database.url goes through a transaction pooler \
         (database.pooler = \"transaction\"), which cannot hold the lock migrations take: run \
         `ice-sync migrate` against the direct URL (set database.direct_url to the server \
         itself, or run ICE_SYNC__DATABASE__URL=<direct URL> ICE_SYNC__DATABASE__POOLER=none \
         ice-sync migrate once), then start again",
        state.pending,
        state.known
    )
}

/// Options for a direct connection (`LISTEN`), or `None` behind a transaction pooler
/// without `database.direct_url`: then there is no connection that can listen.
pub(crate) fn listen_options(store: &SqlStore<Postgres>) -> Option<PgConnectOptions> {
    match store.settings.as_deref() {
        Some(settings) if store.counters.transaction_pooled => {
            settings.postgres.direct_url.as_ref()?;
            pg_connect::options(settings, Route::Direct).ok()
        }
        _ => Some((*store.pool.connect_options()).clone()),
    }
}

/// Applies the pending migrations.
pub(crate) async fn run_migrations(pool: &PgPool) -> anyhow::Result<usize> {
    use anyhow::Context;
    let migrator = sqlx::migrate!("./migrations/postgres");
    let before = applied(pool).await;
    migrator
        .run(pool)
        .await
        .context("applying PostgreSQL migrations")?;
    Ok(applied(pool).await.saturating_sub(before))
}

async fn applied(pool: &PgPool) -> usize {
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .map_or(0, |n| n as usize)
}

/// The due projects in `$order` (most overdue first for `next_poll_at`, the order of
/// `tracked_projects_due_idx`; oldest request first for `requested_at`), not leased by a
/// live claim; rows other replicas are claiming right now are skipped. A claim also
/// clears `requested_at`: the poll it starts serves any pending request.
macro_rules! pg_claim {
    ($due:literal, $order:literal, $limit:literal, $owner:literal, $ttl:literal) => {
        concat!(
            "WITH due AS (
    SELECT project_id, ",
            $order,
            " AS claim_order FROM tracked_projects
    WHERE enabled AND ",
            $due,
            "
      AND (lease_expires_at IS NULL OR lease_expires_at <= clock_timestamp())
    ORDER BY ",
            $order,
            ", project_id
    LIMIT ",
            $limit,
            "
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE tracked_projects t SET lease_owner = ",
            $owner,
            ",
        lease_expires_at = clock_timestamp() + make_interval(secs => ",
            $ttl,
            "::float8),
        claim_token = t.claim_token + 1, requested_at = NULL
    FROM due WHERE t.project_id = due.project_id
    RETURNING t.project_id, t.not_found_count, t.consecutive_failures, t.claim_token,
              due.claim_order, t.last_polled_at
)
SELECT c.project_id, c.not_found_count, c.consecutive_failures, c.claim_token,
       p.status, p.business_status, p.modified_time,
       COALESCE(c.last_polled_at, p.last_polled_at) AS last_polled_at, p.removed_at,
       p.history_seq, p.content_hash
FROM claimed c LEFT JOIN editing_project_rows p ON p.project_id = c.project_id
ORDER BY c.claim_order, c.project_id"
        )
    };
}

impl Dialect for Postgres {
    const BEGIN: &'static str = "BEGIN";
    const NAME: &'static str = "postgres";
    const DATABASE_CLOCK: bool = true;
    const NOW: Option<&'static str> = Some("SELECT clock_timestamp()");
    const CLAIM_RETURNS_STORED: bool = true;

    const CLAIM_DUE: &'static str = pg_claim!(
        "next_poll_at <= $1 AND (last_attempt_at IS NULL OR last_attempt_at < $2)",
        "next_poll_at",
        "$3",
        "$4",
        "$5"
    );
    const CLAIM_ONCE: &'static str = pg_claim!(
        "(next_poll_at <= $1 OR every_tick) AND (last_attempt_at IS NULL OR last_attempt_at < $2)",
        "next_poll_at",
        "$3",
        "$4",
        "$5"
    );
    // `$1` and `$2` are bound (typed) like every claim's but not needed: a request is
    // served whatever the project's due time or last poll.
    const CLAIM_REQUESTED: &'static str =
        pg_claim!("requested_at IS NOT NULL", "requested_at", "$3", "$4", "$5");
    const CLAIM_IDS: &'static str = "\
WITH claimed AS (
    UPDATE tracked_projects SET lease_owner = $2,
        lease_expires_at = clock_timestamp() + make_interval(secs => $3::float8),
        claim_token = claim_token + 1, requested_at = NULL
    WHERE project_id IN (
        SELECT project_id FROM tracked_projects
        WHERE enabled AND project_id IN (SELECT jsonb_array_elements_text($1::jsonb))
          AND (lease_expires_at IS NULL OR lease_expires_at <= clock_timestamp())
        FOR UPDATE SKIP LOCKED)
    RETURNING project_id, not_found_count, consecutive_failures, claim_token, next_poll_at,
              last_polled_at
)
SELECT c.project_id, c.not_found_count, c.consecutive_failures, c.claim_token,
       p.status, p.business_status, p.modified_time,
       COALESCE(c.last_polled_at, p.last_polled_at) AS last_polled_at, p.removed_at,
       p.history_seq, p.content_hash
FROM claimed c LEFT JOIN editing_project_rows p ON p.project_id = c.project_id
ORDER BY c.next_poll_at, c.project_id";
    const REQUEST_IDS: &'static str = "\
UPDATE tracked_projects SET requested_at = COALESCE(requested_at, $2)
WHERE enabled AND project_id IN (SELECT jsonb_array_elements_text($1::jsonb))
RETURNING project_id";
    const ENABLED_AMONG: &'static str = "\
SELECT project_id FROM tracked_projects
WHERE enabled AND project_id IN (SELECT jsonb_array_elements_text($1::jsonb))";
    const REQUEST_NOTIFY: Option<&'static str> =
        Some("SELECT pg_notify('ice_sync_poll_requests', '')");
    const REQUESTS_PENDING: &'static str = "\
SELECT (SELECT EXTRACT(EPOCH FROM clock_timestamp() - requested_at)::float8
        FROM tracked_projects
        WHERE requested_at IS NOT NULL AND enabled
          AND (lease_expires_at IS NULL OR lease_expires_at <= clock_timestamp())
        ORDER BY requested_at LIMIT 1),
       EXISTS (SELECT 1 FROM tracked_projects WHERE requested_at IS NOT NULL AND enabled)";
    const REQUEST_STATES: &'static str = concat!(
        super::sql::request_state_columns!(),
        "WHERE t.project_id IN (SELECT jsonb_array_elements_text($1::jsonb)) \
         ORDER BY t.project_id"
    );
    const RENEW_LEASES: &'static str = "\
UPDATE tracked_projects
SET lease_expires_at = clock_timestamp() + make_interval(secs => $2::float8)
WHERE lease_owner = $1";
    const LOAD_MANY: &'static str = concat!(
        super::sql::stored_columns!(),
        "WHERE t.project_id IN (SELECT jsonb_array_elements_text($1::jsonb)) \
         ORDER BY t.next_poll_at, t.project_id"
    );
    const TOUCH: &'static str = "\
UPDATE tracked_projects t SET last_attempt_at = v.attempted_at, next_poll_at = v.next_poll_at,
    every_tick = v.every_tick, consecutive_failures = 0, not_found_count = 0,
    last_error = NULL, last_error_at = NULL, lease_owner = NULL, lease_expires_at = NULL,
    claim_token = t.claim_token + 1, last_polled_at = v.polled_at, last_request_id = v.request_id
FROM jsonb_to_recordset($1::jsonb) AS v(
    project_id text, token bigint, polled_at timestamptz, attempted_at timestamptz,
    request_id text, next_poll_at timestamptz, every_tick boolean)
WHERE t.project_id = v.project_id AND t.claim_token = v.token
RETURNING t.project_id";
    const MARK_DUE: &'static str = "\
UPDATE tracked_projects SET next_poll_at = LEAST(next_poll_at, $2)
WHERE enabled AND project_id IN (SELECT jsonb_array_elements_text($1::jsonb))";
    const CONFIG_STAGE: &'static [&'static str] =
        &["CREATE TEMP TABLE config_ids (project_id TEXT PRIMARY KEY) ON COMMIT DROP"];
    const CONFIG_STAGE_IDS: &'static str = "\
INSERT INTO config_ids (project_id) SELECT jsonb_array_elements_text($1::jsonb)
ON CONFLICT (project_id) DO NOTHING";
    const CONFIG_ADD: &'static str = "\
INSERT INTO tracked_projects (project_id, added_at, source, enabled, next_poll_at)
SELECT project_id, $1, 'config', TRUE, $2 FROM config_ids
ON CONFLICT (project_id) DO UPDATE SET enabled = TRUE
WHERE tracked_projects.source = 'config' AND NOT tracked_projects.enabled";
    // NOT EXISTS, not NOT IN: an anti-join, where NOT IN over a million IDs that do not fit
    // in work_mem is a scan of the list per tracked row.
    const CONFIG_DISABLE: &'static str = "\
UPDATE tracked_projects SET enabled = FALSE
WHERE source = 'config' AND enabled
  AND NOT EXISTS (SELECT 1 FROM config_ids c WHERE c.project_id = tracked_projects.project_id)";
    const CONFIG_UNSTAGE: Option<&'static str> = None;
    const TRACK_ADD_MANY: &'static str = "\
INSERT INTO tracked_projects (project_id, added_at, source, enabled, next_poll_at)
SELECT DISTINCT id, $2, $3, TRUE, $4 FROM jsonb_array_elements_text($1::jsonb) AS ids(id)
ON CONFLICT (project_id) DO UPDATE SET enabled = TRUE, source = excluded.source
WHERE NOT tracked_projects.enabled
   OR (tracked_projects.source <> excluded.source AND excluded.source IN ('cli', 'import')
       AND tracked_projects.source NOT IN ('cli', 'import'))";
    const TRACK_REMOVE_MANY: &'static str = "\
DELETE FROM tracked_projects WHERE project_id IN (SELECT jsonb_array_elements_text($1::jsonb))";
    const SHIFT_DUE_TIMES: Option<&'static str> = None;
    const PRUNE_SETUP: Option<&'static str> =
        Some("SET LOCAL plan_cache_mode = force_generic_plan");
    // `pg_notify` inside the write transaction: PostgreSQL delivers it at COMMIT and
    // drops it on ROLLBACK, so listeners hear of committed rows only.
    const INSERT_HISTORY_ANNOUNCED: Option<&'static str> = Some(concat!(
        "WITH h AS (\n",
        super::sql::insert_history!(),
        "
    RETURNING project_id, seq, observed_at
), queued AS (
    INSERT INTO webhook_outbox (project_id, seq, payload, observed_at)
    SELECT project_id, seq, $13, observed_at FROM h WHERE $14
)
SELECT pg_notify('ice_sync_transition', $13) FROM h"
    ));
    // Rows other replicas are claiming right now are skipped; a row another replica
    // leased and acknowledged meanwhile is gone, so its successor is never taken early.
    const OUTBOX_CLAIM: &'static str = "\
WITH heads AS (
    SELECT o.project_id, o.seq FROM webhook_outbox o
    WHERE (o.next_attempt_at IS NULL OR o.next_attempt_at <= clock_timestamp())
      AND (o.lease_expires_at IS NULL OR o.lease_expires_at <= clock_timestamp()
           OR o.lease_owner = $1)
      AND NOT EXISTS (SELECT 1 FROM webhook_outbox e
                      WHERE e.project_id = o.project_id AND e.seq < o.seq)
    ORDER BY o.observed_at, o.project_id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_outbox w SET lease_owner = $1,
    lease_expires_at = clock_timestamp() + make_interval(secs => $2::float8)
FROM heads WHERE w.project_id = heads.project_id AND w.seq = heads.seq
RETURNING w.project_id, w.seq, w.payload, w.attempts";
    const OUTBOX_RETRY: &'static str = "\
UPDATE webhook_outbox SET attempts = attempts + 1, last_error = $4,
    next_attempt_at = clock_timestamp() + make_interval(secs => $5::float8),
    lease_owner = NULL, lease_expires_at = NULL
WHERE project_id = $1 AND seq = $2 AND lease_owner = $3";
    const SWEEP_TAKE: &'static str = concat!(
        "UPDATE list_sweeps SET lease_owner = $1,
    lease_expires_at = clock_timestamp() + make_interval(secs => $2::float8)
WHERE outcome = 'running'
  AND (lease_owner IS NULL OR lease_owner = $1 OR lease_expires_at <= clock_timestamp())
RETURNING ",
        super::sql::sweep_columns!()
    );
    const SWEEP_START: &'static str = concat!(
        "INSERT INTO list_sweeps (started_at, updated_at, outcome, pages, params, filter,
    replica_id, lease_owner, lease_expires_at)
VALUES ($1, $1, 'running', 0, $2, $3, $4, $4,
        clock_timestamp() + make_interval(secs => $5::float8))
ON CONFLICT DO NOTHING
RETURNING ",
        super::sql::sweep_columns!()
    );
    const SWEEP_ADVANCE: &'static str = "\
UPDATE list_sweeps SET pages = pages + 1, next_token = $3, marked = marked + $4,
    discovered = discovered + $5, updated_at = $6, replica_id = $2,
    lease_expires_at = clock_timestamp() + make_interval(secs => $7::float8)
WHERE id = $1 AND outcome = 'running' AND lease_owner = $2";
    const SWEEP_RENEW: &'static str = "\
UPDATE list_sweeps SET lease_expires_at = clock_timestamp() + make_interval(secs => $3::float8)
WHERE id = $1 AND outcome = 'running' AND lease_owner = $2";
    const EXPLAIN: &'static str = "EXPLAIN ";
    const EXPLAIN_SETUP: Option<&'static str> = Some("SET LOCAL enable_seqscan = off");
    const EXPLAIN_COLUMN: usize = 0;

    fn bind_value<'q, T: Value<'q>>(q: SqlxQuery<'q, Self>, value: T) -> SqlxQuery<'q, Self> {
        q.bind(value)
    }

    fn bind_expiry(q: Query<'_, Self>, _now: Timestamp, ttl: Duration) -> Query<'_, Self> {
        q.bind(ttl.as_secs_f64())
    }

    fn bind_now(q: Query<'_, Self>, _now: Timestamp) -> Query<'_, Self> {
        q
    }
}

/// The query parameters of `url` the driver ignores (names only; values may be secrets).
fn unknown_parameters(url: &str) -> Vec<String> {
    // sqlx-postgres 0.8's `PgConnectOptions::parse_from_url`.
    const KNOWN: &[&str] = &[
        "sslmode",
        "ssl-mode",
        "sslrootcert",
        "ssl-root-cert",
        "ssl-ca",
        "sslcert",
        "ssl-cert",
        "sslkey",
        "ssl-key",
        "statement-cache-capacity",
        "host",
        "hostaddr",
        "port",
        "dbname",
        "user",
        "password",
        "application_name",
        "options",
    ];
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return Vec::new();
    };
    parsed
        .query_pairs()
        .map(|(k, _)| k.into_owned())
        .filter(|k| !KNOWN.contains(&k.as_str()) && !k.starts_with("options["))
        .collect()
}
