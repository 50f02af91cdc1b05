//! The validated settings: [`Settings`] and the small `[log]` and `[metrics]` sections
//! (raw form, defaults, validation and the `[metrics]` reload lines), [`ConfigError`],
//! and the value parsers the section conversions share.
//!
//! [`Settings::from_raw`] only composes: each section converts itself
//! (`DatabaseSettings::from_raw`, `IceSettings::from_raw`, `SyncSettings::from_raw`, ...),
//! so a newcomer changing one key reads one function. Every error names the key and
//! the value at fault, on one line.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::raw::RawSettings;
use super::reload::Diff;
use super::{CallbackSettings, DatabaseSettings, IceSettings, SyncSettings, WebhookSettings};

/// `[log]` as the file and the `ICE_SYNC__LOG__*` variables may say it, with the defaults.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawLog {
    pub(crate) format: Option<String>,
    pub(crate) level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: None,
            level: "info".into(),
        }
    }
}

/// `[metrics]` as the file and the variables may say it.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawMetrics {
    pub(crate) listen: Option<String>,
    pub(crate) refresh_token_file: Option<std::path::PathBuf>,
}

/// A configuration value that cannot be used, with the key, the value and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl ConfigError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub(crate) ice: IceSettings,
    pub(crate) sync: SyncSettings,
    pub(crate) log: LogSettings,
    pub(crate) metrics: MetricsSettings,
    pub(crate) callback: CallbackSettings,
    pub webhook: WebhookSettings,
    pub(crate) retention: super::retention::RetentionSettings,
    pub(crate) jobs: super::JobsSettings,
}

impl Settings {
    pub(crate) fn from_raw(raw: RawSettings) -> Result<Self, ConfigError> {
        super::bounds::check_counts(&raw)?;
        let database = DatabaseSettings::from_raw(raw.database)?;
        let ice = IceSettings::from_raw(raw.ice)?;
        let sync = SyncSettings::from_raw(raw.sync)?;
        let log = LogSettings::from_raw(raw.log)?;
        let metrics = MetricsSettings::from_raw(raw.metrics)?;
        // `callback.track_unknown` defaults to `sync.discover`.
        let callback = CallbackSettings::from_raw(raw.callback, sync.discover)?;
        let retention = super::retention::RetentionSettings::from_raw(raw.retention)?;
        Ok(Settings {
            database,
            ice,
            sync,
            log,
            metrics,
            callback,
            webhook: WebhookSettings::from_raw(raw.webhook)?,
            retention,
            jobs: super::JobsSettings::from_raw(raw.jobs)?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
    /// One plain line per event, no colours, no timestamp (journald adds its own).
    Plain,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub format: Option<LogFormat>,
    pub level: String,
}

impl LogSettings {
    pub(crate) fn from_raw(raw: RawLog) -> Result<Self, ConfigError> {
        let format = raw
            .format
            .as_deref()
            .map(|f| match f {
                "pretty" => Ok(LogFormat::Pretty),
                "json" => Ok(LogFormat::Json),
                "plain" | "journald" => Ok(LogFormat::Plain),
                other => Err(ConfigError::new(format!(
                    "log.format = {other:?}: must be \"pretty\", \"json\" or \"plain\""
                ))),
            })
            .transpose()?;
        tracing_subscriber::EnvFilter::try_new(&raw.level).map_err(|e| {
            ConfigError::new(format!(
                "log.level = {:?} is not a level or filter ({e})",
                raw.level
            ))
        })?;
        Ok(Self {
            format,
            level: raw.level,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    pub(crate) listen: Option<SocketAddr>,
    /// The bearer token of `POST /refresh` (read at start-up; without it, and without the
    /// systemd credential `refresh-token`, the endpoint is not served).
    pub(crate) refresh_token_file: Option<std::path::PathBuf>,
}

/// A `*.listen` key: an IP address and port, such as `example`.
pub(crate) fn parse_listen(
    key: &str,
    value: Option<&str>,
    example: &str,
) -> Result<Option<SocketAddr>, ConfigError> {
    value
        .map(|l| {
            l.parse::<SocketAddr>().map_err(|_| {
                ConfigError::new(format!("{key} = {l:?} is not an address such as {example}"))
            })
        })
        .transpose()
}

impl MetricsSettings {
    pub(crate) fn from_raw(raw: RawMetrics) -> Result<Self, ConfigError> {
        let listen = parse_listen("metrics.listen", raw.listen.as_deref(), "127.0.0.1:9187")?;
        if let (Some(file), None) = (&raw.refresh_token_file, listen) {
            return Err(ConfigError::new(format!(
                "metrics.refresh_token_file = {:?} needs metrics.listen: POST /refresh is \
                 served on the metrics listener (set metrics.listen, e.g. \"127.0.0.1:9187\")",
                file.display().to_string()
            )));
        }
        Ok(Self {
            listen,
            refresh_token_file: raw.refresh_token_file,
        })
    }
}

/// A positive duration such as "10s" or "2m", within its key's range (`bounds`).
pub(crate) fn parse_duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    let d = humantime::parse_duration(value.trim()).map_err(|e| {
        ConfigError::new(format!(
            "{key} = {value:?} is not a duration ({e}); use e.g. \"10s\", \"2m\""
        ))
    })?;
    if d.is_zero() {
        return Err(ConfigError::new(format!(
            "{key} = {value:?} must be greater than zero"
        )));
    }
    super::bounds::check_duration(key, value, d)?;
    Ok(d)
}

/// Collapses a multi-line message (the `config` and `cron` crates write several) into one.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `[metrics]` in a reload summary: all fixed (the listener is bound once).
pub(super) fn metrics_changes(d: &mut Diff, a: &MetricsSettings, b: &MetricsSettings) {
    let MetricsSettings {
        listen,
        refresh_token_file,
    } = a;
    d.value("metrics.listen", listen, &b.listen, |l| {
        l.map_or("(unset)".to_string(), |l| l.to_string())
    });
    d.value(
        "metrics.refresh_token_file",
        refresh_token_file,
        &b.refresh_token_file,
        |f| {
            f.as_ref()
                .map_or("(unset)".to_string(), |f| f.display().to_string())
        },
    );
}
