//! Every restart-only key (the product's `config::Fixed` half) with a valid other value:
//! the one table the tests that change them all share, the reload diff's unit tests
//! (`src/config/reload.rs`) and the daemon's SIGHUP test (`tests/it/ops/reload.rs`).

/// One restart-only key, changed: the key a reload names, and the TOML line (in its
/// table) that changes it. `{dir}` is a directory holding the files `keys` and `token`,
/// `{callback_port}` a free port and `{db_url}` a PostgreSQL URL, filled in by the test.
#[derive(Debug, Clone, Copy)]
pub struct FixedKey {
    pub key: &'static str,
    pub table: &'static str,
    pub line: &'static str,
    /// Refused with a SQLite URL: only on PostgreSQL.
    pub postgres_only: bool,
}

impl FixedKey {
    /// The `ICE_SYNC__*` variable and value that say what [`FixedKey::line`] says.
    pub fn variable(&self) -> (String, String) {
        let (name, value) = self.line.split_once('=').unwrap_or((self.line, ""));
        let path = format!("{}.{}", self.table, name.trim());
        let var = format!("ICE_SYNC__{}", path.replace('.', "__").to_ascii_uppercase());
        (var, value.trim().trim_matches('"').to_string())
    }
}

const fn key(key: &'static str, table: &'static str, line: &'static str) -> FixedKey {
    FixedKey {
        key,
        table,
        line,
        postgres_only: false,
    }
}

const fn postgres(key: &'static str, line: &'static str) -> FixedKey {
    FixedKey {
        key,
        table: "database",
        line,
        postgres_only: true,
    }
}

/// Every key of the fixed half, each with a valid other value.
pub const FIXED_KEYS: &[FixedKey] = &[
    key(
        "database.url",
        "database",
        "url = \"postgres://u@h:6432/other\"",
    ),
    key(
        "database.max_connections",
        "database",
        "max_connections = 3",
    ),
    postgres("database.sslmode", "sslmode = \"disable\""),
    postgres("database.sslrootcert", "sslrootcert = \"{dir}/keys\""),
    postgres("database.sslcert", "sslcert = \"{dir}/keys\""),
    postgres("database.sslkey", "sslkey = \"{dir}/keys\""),
    postgres("database.pooler", "pooler = \"transaction\""),
    postgres("database.direct_url", "direct_url = \"{db_url}\""),
    key("ice.region", "ice", "region = \"cn-beijing\""),
    key("ice.endpoint", "ice", "endpoint = \"http://127.0.0.1:9/\""),
    key("ice.request_source", "ice", "request_source = \"WebSDK\""),
    key("ice.timeout", "ice", "timeout = \"7s\""),
    key(
        "ice.rewrite_database_region",
        "ice",
        "rewrite_database_region = true",
    ),
    key("sync.shutdown_timeout", "sync", "shutdown_timeout = \"9s\""),
    key("sync.lease_ttl", "sync", "lease_ttl = \"90s\""),
    key(
        "sync.full_refresh_interval",
        "sync",
        "full_refresh_interval = \"2h\"",
    ),
    key("sync.cycle_timeout", "sync", "cycle_timeout = \"45s\""),
    key("sync.replica_id", "sync", "replica_id = \"other-replica\""),
    key("sync.mode", "sync", "mode = \"list\""),
    key("sync.discover", "sync", "discover = true"),
    key("sync.list_sweep_share", "sync", "list_sweep_share = 0.25"),
    key("sync.list", "sync.list", "created_within = \"7d\""),
    key("log.format", "log", "format = \"pretty\""),
    key("metrics.listen", "metrics", "listen = \"127.0.0.1:9187\""),
    key(
        "metrics.refresh_token_file",
        "metrics",
        "refresh_token_file = \"{dir}/token\"",
    ),
    key(
        "callback.listen",
        "callback",
        "listen = \"127.0.0.1:{callback_port}\"",
    ),
    key("callback.path", "callback", "path = \"/events2\""),
    key(
        "callback.url",
        "callback",
        "url = \"https://a.example.com/events2\"",
    ),
    key("callback.auth_key", "callback", "auth_key = \"NewKey002\""),
    key(
        "callback.auth_key_file",
        "callback",
        "auth_key_file = \"{dir}/keys\"",
    ),
    key("callback.max_skew", "callback", "max_skew = \"2m\""),
    key("callback.track_unknown", "callback", "track_unknown = true"),
    key(
        "callback.max_body_bytes",
        "callback",
        "max_body_bytes = 32768",
    ),
    key(
        "webhook.url",
        "webhook",
        "url = \"https://hooks.example.com/x\"",
    ),
    key("webhook.secret", "webhook", "secret = \"hook-secret\""),
    key("webhook.timeout", "webhook", "timeout = \"5s\""),
    key("webhook.max_backoff", "webhook", "max_backoff = \"1m\""),
    key(
        "webhook.max_pending_age",
        "webhook",
        "max_pending_age = \"1d\"",
    ),
    key("retention.sync_runs", "retention", "sync_runs = \"30d\""),
    key(
        "retention.list_sweeps",
        "retention",
        "list_sweeps = \"10d\"",
    ),
    key(
        "retention.callback_events",
        "retention",
        "callback_events = \"2d\"",
    ),
];
