//! The raw layer: what the file and the `ICE_SYNC__*` variables may say, with the
//! built-in defaults, before any meaning is attached.
//!
//! Plain serde structs that reject unknown keys, so a typo is an error rather than a
//! silently ignored setting. Values stay strings here; `settings` and the per-section
//! files turn them into domain types.

use std::collections::BTreeMap;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSettings {
    pub database: RawDatabase,
    pub ice: RawIce,
    pub sync: RawSync,
    pub log: RawLog,
    pub metrics: RawMetrics,
    pub callback: RawCallback,
    pub webhook: RawWebhook,
    pub retention: super::retention::RawRetention,
    pub jobs: RawJobs,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDatabase {
    /// May carry a password: never shown except through `DatabaseUrl`.
    pub url: String,
    pub max_connections: u32,
    /// PostgreSQL TLS, as libpq's parameters of the same names (see `config::postgres`).
    pub sslmode: Option<String>,
    pub sslrootcert: Option<String>,
    pub sslcert: Option<String>,
    pub sslkey: Option<String>,
    pub pooler: String,
    /// May carry a password, like `url`.
    pub direct_url: Option<String>,
    /// A file holding the URL (a password kept out of config.toml); replaces `url`.
    pub url_file: Option<PathBuf>,
}

impl std::fmt::Debug for RawDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawDatabase")
            .field("url", &super::DatabaseUrl::new(self.url.clone()))
            .field("max_connections", &self.max_connections)
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .field("sslcert", &self.sslcert)
            .field("sslkey", &self.sslkey)
            .field("pooler", &self.pooler)
            .field(
                "direct_url",
                &self.direct_url.clone().map(super::DatabaseUrl::new),
            )
            .field("url_file", &self.url_file)
            .finish()
    }
}

impl Default for RawDatabase {
    fn default() -> Self {
        Self {
            url: "sqlite://ice-sync.db?mode=rwc".into(),
            max_connections: 5,
            sslmode: None,
            sslrootcert: None,
            sslcert: None,
            sslkey: None,
            pooler: "none".into(),
            direct_url: None,
            url_file: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawIce {
    pub region: String,
    pub endpoint: Option<String>,
    pub request_source: Option<String>,
    pub timeout: String,
    pub max_response_bytes: u64,
    pub access_key_id: Option<String>,
    pub access_key_secret: Option<SecretString>,
    pub access_key_secret_file: Option<PathBuf>,
    pub security_token: Option<SecretString>,
    // Other credential sources (see `credentials`): a role to assume, a profile of the
    // shared files, where STS and the ECS metadata service are.
    pub role_arn: Option<String>,
    pub role_session_name: Option<String>,
    pub role_external_id: Option<String>,
    pub profile: Option<String>,
    pub credentials_file: Option<PathBuf>,
    pub cli_config_file: Option<PathBuf>,
    pub sts_endpoint: Option<String>,
    pub ecs_metadata_endpoint: Option<String>,
    pub ecs_role_name: Option<String>,
    /// One start that rewrites the database's recorded region (see `app::region`).
    pub rewrite_database_region: bool,
}

impl Default for RawIce {
    fn default() -> Self {
        Self {
            region: "cn-shanghai".into(),
            endpoint: None,
            request_source: None,
            timeout: "10s".into(),
            max_response_bytes: crate::ice::DEFAULT_MAX_RESPONSE_BYTES as u64,
            access_key_id: None,
            access_key_secret: None,
            access_key_secret_file: None,
            security_token: None,
            role_arn: None,
            role_session_name: None,
            role_external_id: None,
            profile: None,
            credentials_file: None,
            cli_config_file: None,
            sts_endpoint: None,
            ecs_metadata_endpoint: None,
            ecs_role_name: None,
            rewrite_database_region: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSync {
    pub schedule: String,
    pub projects: Vec<String>,
    pub projects_file: Option<PathBuf>,
    pub concurrency: usize,
    pub max_qps: u32,
    pub max_retries: u32,
    pub shutdown_timeout: String,
    pub cycle_timeout: Option<String>,
    pub removal_confirmations: u32,
    pub settled_interval: String,
    pub intervals: BTreeMap<String, String>,
    pub error_backoff_max: String,
    pub lease_ttl: String,
    pub replica_id: Option<String>,
    pub mode: String,
    pub discover: bool,
    pub full_refresh_interval: String,
    pub list_sweep_share: f64,
    pub list: RawListFilter,
}

/// `[sync.list]`: which projects a list sweep asks for.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawListFilter {
    pub project_type: Option<String>,
    pub create_source: Option<String>,
    pub created_within: Option<String>,
}

impl Default for RawSync {
    fn default() -> Self {
        Self {
            schedule: "0 */5 * * * *".into(),
            projects: Vec::new(),
            projects_file: None,
            concurrency: 16,
            max_qps: 20,
            max_retries: 5,
            shutdown_timeout: "20s".into(),
            cycle_timeout: None,
            removal_confirmations: 2,
            settled_interval: "1h".into(),
            intervals: Default::default(),
            error_backoff_max: "1h".into(),
            lease_ttl: "60s".into(),
            replica_id: None,
            mode: "get".into(),
            discover: false,
            full_refresh_interval: "24h".into(),
            list_sweep_share: 0.5,
            list: RawListFilter::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    pub format: Option<String>,
    pub level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: None,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMetrics {
    pub listen: Option<String>,
    pub refresh_token_file: Option<PathBuf>,
}

/// `[callback]` (see `config::callback`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCallback {
    pub listen: Option<String>,
    pub path: Option<String>,
    pub url: Option<String>,
    pub auth_key: Option<RawAuthKeys>,
    pub auth_key_file: Option<PathBuf>,
    pub max_skew: String,
    pub track_unknown: Option<bool>,
    pub max_body_bytes: usize,
}

impl Default for RawCallback {
    fn default() -> Self {
        Self {
            listen: None,
            path: None,
            url: None,
            auth_key: None,
            auth_key_file: None,
            max_skew: "5m".into(),
            track_unknown: None,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// `callback.auth_key`: one key, or a list while a key is being rotated.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawAuthKeys {
    One(SecretString),
    Many(Vec<SecretString>),
}
/// `[webhook]`: the change feed's outbound webhook (`config::webhook`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawWebhook {
    pub url: Option<String>,
    pub secret: Option<SecretString>,
    pub secret_file: Option<PathBuf>,
    pub timeout: String,
    pub max_backoff: String,
    pub max_pending_age: String,
}

impl Default for RawWebhook {
    fn default() -> Self {
        Self {
            url: None,
            secret: None,
            secret_file: None,
            timeout: "10s".into(),
            max_backoff: "5m".into(),
            max_pending_age: "7d".into(),
        }
    }
}

/// `[jobs]`: producing jobs (`config::jobs`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawJobs {
    pub enabled: bool,
}

impl Default for RawJobs {
    fn default() -> Self {
        Self {
            enabled: super::jobs::DEFAULT_JOBS_ENABLED,
        }
    }
}
