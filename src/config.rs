//! Configuration: built-in defaults < TOML file < `ICE_SYNC__SECTION__KEY` variables.
//!
//! The `config` crate merges the layers into [`RawSettings`] (plain serde structs that
//! reject unknown keys); [`Settings::from_raw`] then parses every value into a domain
//! type once, so the rest of the program never re-checks a string. Every error names
//! the key and the value at fault.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{anyhow, bail};
use secrecy::SecretString;
use serde::Deserialize;

use crate::credentials::CredentialConfig;
use crate::domain::ProjectId;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/ice-sync/config.toml";

// ---------------------------------------------------------------------------------
// Raw layer: what the files and variables say, before any meaning is attached.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSettings {
    pub database: RawDatabase,
    pub ice: RawIce,
    pub sync: RawSync,
    pub log: RawLog,
    pub metrics: RawMetrics,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDatabase {
    pub url: String,
    pub max_connections: u32,
}

impl Default for RawDatabase {
    fn default() -> Self {
        Self {
            url: "sqlite://ice-sync.db?mode=rwc".into(),
            max_connections: 5,
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
    pub access_key_id: Option<String>,
    pub access_key_secret: Option<SecretString>,
    pub access_key_secret_file: Option<PathBuf>,
    pub security_token: Option<SecretString>,
}

impl Default for RawIce {
    fn default() -> Self {
        Self {
            region: "cn-shanghai".into(),
            endpoint: None,
            request_source: None,
            timeout: "10s".into(),
            access_key_id: None,
            access_key_secret: None,
            access_key_secret_file: None,
            security_token: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSync {
    pub schedule: String,
    pub projects: Vec<String>,
    pub concurrency: usize,
    pub max_qps: u32,
    pub max_retries: u32,
    pub shutdown_timeout: String,
    pub cycle_timeout: Option<String>,
    pub removal_confirmations: u32,
    pub settled_interval: String,
    pub intervals: std::collections::BTreeMap<String, String>,
    pub error_backoff_max: String,
    pub lease_ttl: String,
    pub replica_id: Option<String>,
    pub mode: String,
    pub discover: bool,
    pub full_refresh_interval: String,
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
}

// ---------------------------------------------------------------------------------
// Parsed layer: what the program runs on.

#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub ice: IceSettings,
    pub sync: SyncSettings,
    pub log: LogSettings,
    pub metrics: MetricsSettings,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: String,
    pub kind: DatabaseKind,
    pub max_connections: u32,
}

#[derive(Debug, Clone)]
pub struct IceSettings {
    pub region: String,
    pub endpoint: reqwest::Url,
    pub request_source: Option<String>,
    pub timeout: Duration,
    pub credentials: CredentialConfig,
}

#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub schedule: Schedule,
    pub projects: Vec<ProjectId>,
    pub concurrency: usize,
    /// `None` when `sync.max_qps = 0` (no client-side limit).
    pub max_qps: Option<NonZeroU32>,
    pub max_retries: u32,
    pub shutdown_timeout: Duration,
    /// A cycle running longer stops claiming work and is recorded as `partial`.
    /// Defaults to one schedule period.
    pub cycle_timeout: Option<Duration>,
    /// Consecutive "not found" answers, in separate cycles, before a project is marked
    /// removed. The API's "not found" is a generic InvalidParameter, so one is not proof.
    pub removal_confirmations: u32,
    /// How often settled projects (Produced, LiveFinished, removed, ...) are polled.
    pub settled_interval: Duration,
    /// Per-status overrides of the polling interval, keyed by Status or BusinessStatus.
    pub intervals: std::collections::HashMap<String, Duration>,
    /// The longest a failing project waits before its next try.
    pub error_backoff_max: Duration,
    /// How long a replica's claim on a project lasts before others may take it over.
    pub lease_ttl: Duration,
    /// Names this daemon in `sync_runs` and in leases; default `HOST:PID`.
    pub replica_id: String,
    pub mode: SyncMode,
    /// List mode: track projects the list shows that are not tracked yet.
    pub discover: bool,
    /// List mode: every tracked project still gets a GetEditingProject this often.
    pub full_refresh_interval: Duration,
    pub list: ListFilter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// `GetEditingProject` for every due project.
    Get,
    /// Page through `ListEditingProjects`, fetch only what changed, refresh the rest slowly.
    List,
}

/// Filters of a list sweep, as `ListEditingProjects` parameters.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub project_type: Option<String>,
    pub create_source: Option<String>,
    /// Only projects created this recently (the API filters on creation time).
    pub created_within: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
    /// One plain line per event, no colours, no timestamp (journald adds its own).
    Plain,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: Option<LogFormat>,
    pub level: String,
}

#[derive(Debug, Clone)]
pub struct MetricsSettings {
    pub listen: Option<SocketAddr>,
}

/// A cron schedule with the text it came from, for messages.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub expression: String,
    pub cron: cron::Schedule,
}

impl Schedule {
    pub fn parse(expression: &str) -> anyhow::Result<Self> {
        let cron = cron::Schedule::from_str(expression).map_err(|e| {
            anyhow!(
                "sync.schedule = {expression:?} is not a cron expression ({}); \
                 six fields, seconds first, e.g. \"0 */5 * * * *\"",
                one_line(&e.to_string())
            )
        })?;
        if cron.upcoming(chrono::Utc).next().is_none() {
            bail!("sync.schedule = {expression:?} never fires");
        }
        Ok(Self {
            expression: expression.to_string(),
            cron,
        })
    }

    /// The typical gap between two ticks, measured on the next two.
    pub fn period(&self) -> Duration {
        let mut next = self.cron.upcoming(chrono::Utc);
        match (next.next(), next.next()) {
            (Some(a), Some(b)) => (b - a).to_std().unwrap_or(Duration::from_secs(300)),
            _ => Duration::from_secs(300),
        }
    }
}

fn parse_duration(key: &str, value: &str) -> anyhow::Result<Duration> {
    let d = humantime::parse_duration(value.trim()).map_err(|e| {
        anyhow!("{key} = {value:?} is not a duration ({e}); use e.g. \"10s\", \"2m\"")
    })?;
    if d.is_zero() {
        bail!("{key} = {value:?} must be greater than zero");
    }
    Ok(d)
}

impl Settings {
    pub fn from_raw(raw: RawSettings) -> anyhow::Result<Self> {
        let url = raw.database.url.trim().to_string();
        let kind = if url.starts_with("sqlite:") {
            DatabaseKind::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            DatabaseKind::Postgres
        } else {
            bail!(
                "database.url = {:?} is not supported: use sqlite://PATH?mode=rwc or postgres://USER@HOST/DB",
                redact_url(&url)
            );
        };
        if raw.database.max_connections == 0 {
            bail!("database.max_connections = 0: must be at least 1");
        }

        let region = raw.ice.region.trim().to_string();
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            bail!("ice.region = {region:?} is not a region ID such as cn-shanghai");
        }
        let endpoint_text = raw
            .ice
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://ice.{region}.aliyuncs.com"));
        let endpoint = reqwest::Url::parse(&endpoint_text)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| {
                anyhow!("ice.endpoint = {endpoint_text:?} is not an http(s) URL such as https://ice.cn-shanghai.aliyuncs.com")
            })?;
        if let Some(source) = &raw.ice.request_source {
            if source != "OpenAPI" && source != "WebSDK" {
                bail!("ice.request_source = {source:?}: must be \"OpenAPI\" or \"WebSDK\"");
            }
        }
        let timeout = parse_duration("ice.timeout", &raw.ice.timeout)?;

        let schedule = Schedule::parse(&raw.sync.schedule)?;
        let projects = raw
            .sync
            .projects
            .iter()
            .map(|p| ProjectId::parse(p).map_err(|e| anyhow!("sync.projects: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if raw.sync.concurrency == 0 {
            bail!("sync.concurrency = 0: must be at least 1");
        }
        let shutdown_timeout = parse_duration("sync.shutdown_timeout", &raw.sync.shutdown_timeout)?;
        let cycle_timeout = raw
            .sync
            .cycle_timeout
            .as_deref()
            .map(|v| parse_duration("sync.cycle_timeout", v))
            .transpose()?;
        if raw.sync.removal_confirmations == 0 {
            bail!("sync.removal_confirmations = 0: must be at least 1");
        }
        let settled_interval = parse_duration("sync.settled_interval", &raw.sync.settled_interval)?;
        let intervals = raw
            .sync
            .intervals
            .iter()
            .map(|(status, v)| {
                Ok((
                    status.clone(),
                    parse_duration(&format!("sync.intervals.{status}"), v)?,
                ))
            })
            .collect::<anyhow::Result<_>>()?;
        let error_backoff_max =
            parse_duration("sync.error_backoff_max", &raw.sync.error_backoff_max)?;
        let lease_ttl = parse_duration("sync.lease_ttl", &raw.sync.lease_ttl)?;
        let mode = match raw.sync.mode.as_str() {
            "get" => SyncMode::Get,
            "list" => SyncMode::List,
            other => bail!("sync.mode = {other:?}: must be \"get\" or \"list\""),
        };
        let full_refresh_interval = parse_duration(
            "sync.full_refresh_interval",
            &raw.sync.full_refresh_interval,
        )?;
        let list = ListFilter {
            project_type: raw.sync.list.project_type.clone(),
            create_source: raw.sync.list.create_source.clone(),
            created_within: raw
                .sync
                .list
                .created_within
                .as_deref()
                .map(|v| parse_duration("sync.list.created_within", v))
                .transpose()?,
        };
        if raw.sync.discover && mode != SyncMode::List {
            bail!(
                "sync.discover = true needs sync.mode = \"list\": discovery reads the project list"
            );
        }
        let replica_id = match raw.sync.replica_id.as_deref().map(str::trim) {
            Some("") => {
                bail!("sync.replica_id is empty: remove it to use HOST:PID, or name this replica")
            }
            Some(id) => id.to_string(),
            None => format!("{}:{}", hostname(), std::process::id()),
        };

        let format = raw
            .log
            .format
            .as_deref()
            .map(|f| match f {
                "pretty" => Ok(LogFormat::Pretty),
                "json" => Ok(LogFormat::Json),
                "plain" | "journald" => Ok(LogFormat::Plain),
                other => Err(anyhow!(
                    "log.format = {other:?}: must be \"pretty\", \"json\" or \"plain\""
                )),
            })
            .transpose()?;
        tracing_subscriber::EnvFilter::try_new(&raw.log.level).map_err(|e| {
            anyhow!(
                "log.level = {:?} is not a level or filter ({e})",
                raw.log.level
            )
        })?;

        let listen = raw
            .metrics
            .listen
            .as_deref()
            .map(|l| {
                l.parse::<SocketAddr>().map_err(|_| {
                    anyhow!("metrics.listen = {l:?} is not an address such as 127.0.0.1:9187")
                })
            })
            .transpose()?;

        Ok(Settings {
            database: DatabaseSettings {
                url,
                kind,
                max_connections: raw.database.max_connections,
            },
            ice: IceSettings {
                region,
                endpoint,
                request_source: raw.ice.request_source,
                timeout,
                credentials: CredentialConfig {
                    access_key_id: raw.ice.access_key_id,
                    access_key_secret: raw.ice.access_key_secret,
                    access_key_secret_file: raw.ice.access_key_secret_file,
                    security_token: raw.ice.security_token,
                    ..Default::default()
                },
            },
            sync: SyncSettings {
                schedule,
                projects,
                concurrency: raw.sync.concurrency,
                max_qps: NonZeroU32::new(raw.sync.max_qps),
                max_retries: raw.sync.max_retries,
                shutdown_timeout,
                cycle_timeout,
                removal_confirmations: raw.sync.removal_confirmations,
                settled_interval,
                intervals,
                error_backoff_max,
                lease_ttl,
                replica_id,
                mode,
                discover: raw.sync.discover,
                full_refresh_interval,
                list,
            },
            log: LogSettings {
                format,
                level: raw.log.level,
            },
            metrics: MetricsSettings { listen },
        })
    }
}

/// Which file to read: `--config`, else `$ICE_SYNC_CONFIG`, else the system path if it
/// exists, else none (built-in defaults and variables only).
pub fn config_path(
    explicit: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = env("ICE_SYNC_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let default = Path::new(DEFAULT_CONFIG_PATH);
    default.exists().then(|| default.to_path_buf())
}

/// Reads the layers. `env` is the list of variables to consider (the process
/// environment in production; a fixed list in tests).
pub fn load_from(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<Settings> {
    let mut builder = config::Config::builder();
    if let Some(path) = path {
        if !path.exists() {
            bail!("config file {} does not exist", path.display());
        }
        builder = builder.add_source(
            config::File::from(path)
                .format(config::FileFormat::Toml)
                .required(true),
        );
    }
    let vars: config::Map<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("ICE_SYNC__"))
        .collect();
    builder = builder.add_source(
        config::Environment::with_prefix("ICE_SYNC")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("sync.projects")
            .source(Some(vars)),
    );
    let where_ = path
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "environment".to_string());
    let raw: RawSettings = builder
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| {
            anyhow!(
                "invalid configuration in {where_}: {}",
                one_line(&e.to_string())
            )
        })?;
    Settings::from_raw(raw).map_err(|e| {
        anyhow!(
            "invalid configuration in {where_}: {}",
            one_line(&format!("{e:#}"))
        )
    })
}

/// Loads with the real process environment.
pub fn load(explicit: Option<&Path>) -> anyhow::Result<Settings> {
    let path = config_path(explicit, |k| std::env::var(k).ok());
    load_from(path.as_deref(), std::env::vars())
}

/// The host name, for the default replica id.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Hides a password in a database URL before it is shown anywhere.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_toml(toml: &str) -> anyhow::Result<Settings> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, toml).expect("write");
        load_from(Some(&path), Vec::new())
    }

    fn err(toml: &str) -> String {
        format!("{:#}", load_toml(toml).expect_err(toml))
    }

    #[test]
    fn defaults_match_the_spec() {
        let s = load_from(None, Vec::new()).expect("defaults");
        assert_eq!(s.database.url, "sqlite://ice-sync.db?mode=rwc");
        assert_eq!(s.database.max_connections, 5);
        assert_eq!(
            s.ice.endpoint.as_str(),
            "https://ice.cn-shanghai.aliyuncs.com/"
        );
        assert_eq!(s.ice.timeout, Duration::from_secs(10));
        assert_eq!(s.sync.schedule.expression, "0 */5 * * * *");
        assert_eq!(s.sync.schedule.period(), Duration::from_secs(300));
        assert_eq!(s.sync.concurrency, 16);
        assert_eq!(s.sync.max_qps.map(|q| q.get()), Some(20));
        assert_eq!(s.sync.max_retries, 5);
        assert_eq!(s.sync.shutdown_timeout, Duration::from_secs(20));
        assert_eq!(s.log.level, "info");
        assert!(s.metrics.listen.is_none());
    }

    #[test]
    fn file_then_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[ice]\nregion = \"cn-beijing\"\ntimeout = \"3s\"\n[sync]\nprojects = [\"aaa\"]\n",
        )
        .expect("write");
        let env = vec![
            ("ICE_SYNC__ICE__TIMEOUT".to_string(), "7s".to_string()),
            ("ICE_SYNC__SYNC__PROJECTS".to_string(), "p1,p2".to_string()),
            (
                "ICE_SYNC__DATABASE__URL".to_string(),
                "postgres://u@h/db".to_string(),
            ),
            ("ICE_SYNC_CONFIG".to_string(), "ignored".to_string()),
        ];
        let s = load_from(Some(&path), env).expect("loads");
        assert_eq!(
            s.ice.endpoint.as_str(),
            "https://ice.cn-beijing.aliyuncs.com/"
        );
        assert_eq!(s.ice.timeout, Duration::from_secs(7));
        assert_eq!(
            s.sync
                .projects
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>(),
            vec!["p1", "p2"]
        );
        assert_eq!(s.database.kind, DatabaseKind::Postgres);
    }

    #[test]
    fn each_bad_input_names_its_key_and_value() {
        let cases = [
            ("[sync]\nshedule = \"x\"\n", "shedule"),
            ("[nope]\nx = 1\n", "nope"),
            (
                "[ice]\ntimeout = \"ten seconds\"\n",
                "ice.timeout = \"ten seconds\"",
            ),
            (
                "[sync]\nshutdown_timeout = \"0s\"\n",
                "sync.shutdown_timeout",
            ),
            (
                "[sync]\nschedule = \"every minute\"\n",
                "sync.schedule = \"every minute\"",
            ),
            (
                "[database]\nurl = \"mysql://x\"\n",
                "database.url = \"mysql://x\"",
            ),
            (
                "[ice]\nendpoint = \"not a url\"\n",
                "ice.endpoint = \"not a url\"",
            ),
            ("[ice]\nregion = \"CN Shanghai\"\n", "ice.region"),
            ("[sync]\nprojects = [\"ok1\", \"bad id!\"]\n", "bad id!"),
            (
                "[metrics]\nlisten = \"localhost\"\n",
                "metrics.listen = \"localhost\"",
            ),
            ("[log]\nformat = \"xml\"\n", "log.format = \"xml\""),
            (
                "[ice]\nrequest_source = \"Console\"\n",
                "ice.request_source",
            ),
            ("[sync]\nconcurrency = 0\n", "sync.concurrency"),
            (
                "[sync.intervals]\nProduced = \"often\"\n",
                "sync.intervals.Produced",
            ),
            ("[sync]\nlease_ttl = \"-1s\"\n", "sync.lease_ttl"),
            ("[sync]\nmode = \"poll\"\n", "sync.mode = \"poll\""),
            ("[sync]\ndiscover = true\n", "sync.discover"),
            (
                "[sync.list]\ncreated_within = \"ages\"\n",
                "sync.list.created_within",
            ),
        ];
        for (toml, needle) in cases {
            let e = err(toml);
            assert!(
                e.contains(needle),
                "{toml:?} gave {e:?}, which does not name {needle:?}"
            );
            assert!(!e.contains('\n'), "one line please: {e:?}");
        }
    }

    #[test]
    fn unknown_environment_key_is_rejected() {
        let env = vec![("ICE_SYNC__SYNC__CONCURENCY".to_string(), "3".to_string())];
        let e = format!("{:#}", load_from(None, env).expect_err("typo"));
        assert!(e.contains("concurency"), "{e}");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let s = load_toml("[ice]\naccess_key_id = \"AK\"\naccess_key_secret = \"hunter2\"\nsecurity_token = \"tok-xyz\"\n")
            .expect("loads");
        let debug = format!("{s:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("tok-xyz"),
            "{debug}"
        );
    }

    #[test]
    fn the_annotated_example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ice-sync.example.toml");
        let s = load_from(Some(&path), Vec::new()).expect("example config is valid");
        assert_eq!(s.database.kind, DatabaseKind::Sqlite);
    }

    #[test]
    fn database_password_is_redacted() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
    }
}
