//! `ice-sync check`: is this installation able to run? One line per check, each failure
//! saying what to fix, exit code 0 only if every check passed. A failure `run` would
//! refuse to start on with exit 2 (a bad configuration, a start-up check of
//! [`crate::preflight`], a schema it must not migrate) exits 2 here too, with the same
//! text; other failures (the database or ICE unreachable, credentials) exit 1.
//!
//! The checks, in order: the configuration loads; the database connects and its
//! migration state is known; credentials resolve (where from is printed, the secret
//! never); one signed `GetEditingProject` call is accepted by ICE. `check` changes
//! nothing: it applies no migration and never creates a SQLite file, so running it as
//! root cannot leave root-owned files behind for the service's user.
//!
//! What it leaves to others: loading config (`config`), finding credentials
//! (`credentials`), calling ICE (`ice`). This module only runs them and reports.

use std::path::Path;
use std::time::Duration;

use crate::config::{self, Settings};
use crate::credentials::{self, CredentialProvider, Credentials};
use crate::ice::{ClientOptions, ErrorClass, IceClient};
use crate::storage::inspect::{self, MigrationState, OpenError};

/// Regions where ICE is offered (its endpoint page, 2026). Another region is not an
/// error by itself, only a hint when its endpoint cannot be reached.
pub(crate) const ICE_REGIONS: &[&str] = &[
    "cn-shanghai",
    "cn-beijing",
    "cn-hangzhou",
    "cn-shenzhen",
    "ap-southeast-1",
    "us-west-1",
];

/// Probed when no project is tracked: ICE answers an unknown ID only after it has
/// accepted the signature and the RAM permission, which is all `check` needs to know.
const PROBE_ID: &str = "00000000000000000000000000000000";
const DB_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Ok,
    /// Worth knowing, not a failure.
    Warn,
    Fail,
    /// Not attempted because an earlier check failed.
    Skip,
}

impl Level {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
            Level::Skip => "skip",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub(crate) what: &'static str,
    pub(crate) level: Level,
    pub(crate) detail: String,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub(crate) lines: Vec<Line>,
    /// The configuration itself did not load (exit code 2, as for every command).
    pub(crate) config_failed: bool,
    /// A failure `run` refuses to start on with exit 2 (a restart cannot fix it: a
    /// missing file, a port in use, the SQLite location, a schema from a newer binary):
    /// `check` exits 2 too, so it predicts what the unit will do.
    pub(crate) refuses_start: bool,
}

impl Report {
    fn push(&mut self, what: &'static str, level: Level, detail: impl Into<String>) {
        self.lines.push(Line {
            what,
            level,
            detail: detail.into(),
        });
    }

    pub(crate) fn passed(&self) -> bool {
        self.lines
            .iter()
            .all(|l| matches!(l.level, Level::Ok | Level::Warn))
    }

    pub(crate) fn exit_code(&self) -> u8 {
        match (self.passed(), self.config_failed || self.refuses_start) {
            (true, _) => 0,
            (false, true) => 2,
            (false, false) => 1,
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::from("ice-sync check\n");
        for l in &self.lines {
            out.push_str(&format!(
                "  {:<5} {:<12} {}\n",
                l.level.label(),
                l.what,
                // Details quote ICE's and the database's messages: escaped for the terminal.
                crate::text::printable(&l.detail)
            ));
        }
        let failed = self
            .lines
            .iter()
            .filter(|l| matches!(l.level, Level::Fail | Level::Skip))
            .count();
        if failed == 0 {
            out.push_str("all checks passed\n");
        } else {
            out.push_str(&format!(
                "{failed} of {} checks did not pass\n",
                self.lines.len()
            ));
        }
        out
    }
}

impl Report {
    /// `check --output json`: one document (field names are a contract: docs/cli.md).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let checks: Vec<serde_json::Value> = self
            .lines
            .iter()
            .map(|l| {
                serde_json::json!({
                    "check": l.what,
                    "level": l.level.label().to_ascii_lowercase(),
                    "detail": l.detail,
                })
            })
            .collect();
        serde_json::json!({
            "passed": self.passed(),
            "exit_code": self.exit_code(),
            "checks": checks,
        })
    }
}

/// Runs every check with the process environment and prints the report; returns the
/// exit code. `offline`: nothing that needs the database or the network.
pub(crate) async fn run(
    explicit_config: Option<&Path>,
    offline: bool,
    output: crate::cli::output::OutputFormat,
) -> anyhow::Result<u8> {
    use std::io::Write;
    let env: Vec<(String, String)> = std::env::vars().collect();
    let report = check_with(explicit_config, &env, offline).await;
    let mut out = crate::cli::output::stdout();
    match output {
        crate::cli::output::OutputFormat::Table => {
            out.write_all(report.render().as_bytes())?;
            out.flush()?;
        }
        crate::cli::output::OutputFormat::Json => {
            crate::cli::output::json_document(&mut out, &report.to_json())?
        }
    }
    Ok(report.exit_code())
}

/// Every check, with the environment given (tests pass their own).
pub async fn check(explicit_config: Option<&Path>, env: &[(String, String)]) -> Report {
    check_with(explicit_config, env, false).await
}

/// [`check`], or with `offline` only what needs neither database nor network: the
/// configuration and [`crate::preflight`]'s checks.
pub(crate) async fn check_with(
    explicit_config: Option<&Path>,
    env: &[(String, String)],
    offline: bool,
) -> Report {
    let lookup = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let mut report = Report::default();

    let path = config::config_path(explicit_config, lookup);
    let settings = match config::load_from(path.as_deref(), env.iter().cloned()) {
        Ok(s) => s,
        Err(e) => {
            report.config_failed = true;
            report.push(
                "config",
                Level::Fail,
                format!("{e:#}; fix that key and run `ice-sync check` again"),
            );
            for what in ["database", "credentials", "ice api"] {
                report.push(what, Level::Skip, "needs a valid configuration");
            }
            return report;
        }
    };
    report.push(
        "config",
        Level::Ok,
        describe_config(&settings, path.as_deref()),
    );
    let cx = crate::preflight::Context {
        env: &lookup,
        caller: crate::preflight::Caller::Check,
    };
    for f in crate::preflight::run_all(&settings, &cx) {
        // Sizing is judged below with the database's count, when there is one.
        if f.what != "sizing" || offline {
            report.refuses_start |= f.level == Level::Fail;
            report.push(f.what, f.level, f.detail);
        }
    }
    if offline {
        for what in ["database", "credentials", "ice api"] {
            report.push(what, Level::Skip, "not checked (--offline)");
        }
        return report;
    }

    let (tracked, enabled) = check_database(&settings, &mut report).await;
    let projects = enabled
        .unwrap_or(0)
        .max(settings.sync.projects.len() as u64);
    if let Some(f) = crate::preflight::sizing(&settings, projects) {
        report.push(f.what, f.level, f.detail);
    }
    check_credentials_and_api(&settings, &lookup, tracked, &mut report).await;
    report
}

/// Credentials resolve (where from is printed, the secret never), then one signed call
/// for `tracked` (or the first `sync.projects` entry, or a placeholder).
async fn check_credentials_and_api(
    settings: &Settings,
    lookup: &dyn Fn(&str) -> Option<String>,
    tracked: Option<String>,
    report: &mut Report,
) {
    let resolved = match credentials::default_chain(&settings.ice.credentials, lookup) {
        Ok(provider) => match provider.credentials().await {
            Ok(c) => Ok((provider, c)),
            Err(e) => Err(anyhow::Error::from(e)),
        },
        Err(e) => Err(e),
    };
    let provider = match resolved {
        Ok((provider, c)) => {
            report.push(
                "credentials",
                Level::Ok,
                describe_credentials(&provider, &c),
            );
            provider
        }
        Err(e) => {
            report.push(
                "credentials",
                Level::Fail,
                credentials_hint(&format!("{e:#}")),
            );
            report.push("ice api", Level::Skip, "needs credentials");
            return;
        }
    };
    let probe = settings
        .sync
        .projects
        .first()
        .map(|p| p.to_string())
        .or(tracked);
    let (level, detail) = check_api(settings, provider, probe).await;
    report.push("ice api", level, detail);
}

fn describe_config(s: &Settings, path: Option<&Path>) -> String {
    let source = match path {
        Some(p) => p.display().to_string(),
        None => "no config file (built-in defaults and ICE_SYNC__* variables)".to_string(),
    };
    let metrics = match s.metrics.listen {
        Some(addr) => format!("/metrics and /healthz on {addr}"),
        None => "metrics.listen not set (no /metrics, no /healthz)".to_string(),
    };
    format!(
        "{source}: schedule {:?} (UTC, every {}s), {} project(s) in sync.projects, {metrics}",
        s.sync.schedule.expression,
        s.sync.schedule.period().as_secs(),
        s.sync.projects.len()
    )
}

/// Connects without creating or migrating anything and reports the schema. Returns the
/// first tracked project ID, if any, for the API check, and how many are enabled.
async fn check_database(settings: &Settings, report: &mut Report) -> (Option<String>, Option<u64>) {
    let (store, place) = match inspect::open_existing(&settings.database, DB_TIMEOUT).await {
        Ok(opened) => opened,
        Err(OpenError::NotCreatedYet(detail)) => {
            report.push("database", Level::Warn, detail);
            return (None, None);
        }
        Err(OpenError::Failed(detail)) => {
            report.push("database", Level::Fail, detail);
            return (None, None);
        }
    };
    let result = store.migration_state().await;
    // A count and one ID, not every tracked row: `check` stays quick at a million.
    let tracked = match &result {
        Ok(state) if state.pending == 0 && !refused_by_run(state) => {
            match (
                store.tracking().count_tracked().await,
                store.tracking().first_tracked().await,
            ) {
                (Ok(enabled), Ok(first)) => Some((enabled, first)),
                _ => None,
            }
        }
        _ => None,
    };
    let tls = store.tls_status().await;
    store.close().await;
    match result {
        Err(e) => {
            report.push("database", Level::Fail, format!("{place}: {e:#}"));
            (None, None)
        }
        Ok(state) if refused_by_run(&state) => {
            // Exactly the line `run` exits 2 with (`app::open_store`).
            let why = crate::storage::read_only::schema_mismatch(&state).unwrap_or_default();
            report.refuses_start = true;
            report.push("database", Level::Fail, why);
            (None, None)
        }
        Ok(state) => {
            let schema = describe(&state);
            let projects = match &tracked {
                Some((enabled, _)) => format!(", {enabled} tracked project(s) enabled"),
                None => String::new(),
            };
            report.push(
                "database",
                Level::Ok,
                format!("{place} reachable; {schema}{projects}"),
            );
            push_tls(report, tls);
            let enabled = tracked.as_ref().map(|(enabled, _)| *enabled);
            (
                tracked.and_then(|(_, first)| first.map(|id| id.to_string())),
                enabled,
            )
        }
    }
}

/// The connection's encryption, PostgreSQL only: unencrypted is a warning, not a
/// failure (a server on this machine or a private network may be fine without TLS).
fn push_tls(report: &mut Report, tls: Option<(bool, String)>) {
    if let Some((encrypted, detail)) = tls {
        let level = if encrypted { Level::Ok } else { Level::Warn };
        report.push("database tls", level, detail);
    }
}

/// Whether `run` refuses this schema at start (exit 2) rather than migrating it: the
/// same test as `app::open_store`.
fn refused_by_run(state: &MigrationState) -> bool {
    state.dirty.is_some() || !state.unknown.is_empty() || !state.changed.is_empty()
}

/// What a schema `run` accepts means for the operator (see [`refused_by_run`]).
fn describe(state: &MigrationState) -> String {
    if state.pending == 0 {
        format!(
            "schema up to date ({} of {} migrations applied)",
            state.applied, state.known
        )
    } else {
        format!(
            "{} of {} migrations applied; the daemon applies the other {} when it starts \
             (or run `ice-sync migrate`)",
            state.applied, state.known, state.pending
        )
    }
}

fn describe_credentials(provider: &CredentialProvider, c: &Credentials) -> String {
    let token = if c.security_token.is_some() {
        " with an STS security token"
    } else {
        ""
    };
    format!(
        "from {}: AccessKey ID {}{token} (the secret is not shown)",
        provider.source(),
        mask(&c.access_key_id)
    )
}

/// Enough of an AccessKey ID to tell two apart, not enough to use one.
fn mask(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 8 {
        return "****".to_string();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 3..].iter().collect();
    format!("{head}****{tail}")
}

fn credentials_hint(message: &str) -> String {
    let env_file = Path::new("/etc/ice-sync/credentials.env");
    if env_file.exists() {
        format!(
            "{message}. The service reads {}, this shell did not: run \
             `sudo sh -c 'set -a; . {0}; exec ice-sync check'`",
            env_file.display()
        )
    } else {
        message.to_string()
    }
}

/// One signed `GetEditingProject`: proves endpoint, clock, AccessKey and RAM permission.
async fn check_api(
    settings: &Settings,
    credentials: CredentialProvider,
    tracked: Option<String>,
) -> (Level, String) {
    let endpoint = settings.ice.endpoint.clone();
    // The daemon's client (`app::client_options`), but a diagnosis should not take
    // minutes: no rate limit, one retry for a blip, a short backoff.
    let options = ClientOptions {
        max_qps: None,
        max_retries: 1,
        backoff_cap: Duration::from_secs(1),
        ..crate::app::client_options(settings)
    };
    let client = match IceClient::new(options, credentials) {
        Ok(c) => c,
        Err(e) => return (Level::Fail, format!("cannot build the HTTP client: {e:#}")),
    };
    let (id, probing) = match tracked {
        Some(id) => (id, false),
        None => (PROBE_ID.to_string(), true),
    };
    match client.get_editing_project(&id).await {
        Ok(fetched) => (
            Level::Ok,
            format!(
                "GetEditingProject via {endpoint} accepted: project {id} is {} (request id {})",
                fetched.value.status.as_deref().unwrap_or("(no status)"),
                fetched.request_id.as_deref().unwrap_or("-")
            ),
        ),
        Err(e) if e.class() == ErrorClass::NotFound => {
            let what = if probing {
                "no project is tracked yet, so a placeholder ID was asked for".to_string()
            } else {
                format!("but project {id} does not exist there (wrong region, or deleted?)")
            };
            (
                Level::Ok,
                format!(
                    "GetEditingProject via {endpoint}: signature and permission accepted; {what} (request id {})",
                    e.request_id().unwrap_or("-")
                ),
            )
        }
        Err(e) => {
            let mut detail = e.to_string();
            if let Some(hint) = region_hint(settings) {
                if matches!(e.class(), ErrorClass::Retryable) {
                    detail.push_str("; ");
                    detail.push_str(&hint);
                }
            }
            (Level::Fail, detail)
        }
    }
}

/// When the endpoint is the one derived from `ice.region` and that region is not one
/// ICE is offered in, the region is the likely culprit.
fn region_hint(settings: &Settings) -> Option<String> {
    let region = &settings.ice.region;
    let derived = format!("ice.{region}.aliyuncs.com");
    let derived_endpoint = settings.ice.endpoint.host_str() == Some(derived.as_str());
    (derived_endpoint && !ICE_REGIONS.contains(&region.as_str())).then(|| {
        format!(
            "ice.region = {region:?} is not a region ICE is offered in ({}); use the region your projects \
             were created in, or set ice.endpoint",
            ICE_REGIONS.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_access_key_ids() {
        assert_eq!(mask("LTAI5tSimulatorKey0001"), "LTAI****001");
        assert_eq!(mask("short"), "****");
    }

    #[test]
    fn region_hint_only_for_derived_unknown_regions() {
        let load = |pairs: &[(&str, &str)]| {
            config::load_from(
                None,
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>(),
            )
            .expect("settings")
        };
        assert!(region_hint(&load(&[])).is_none());
        let hint = region_hint(&load(&[("ICE_SYNC__ICE__REGION", "xx-nowhere-9")]));
        assert!(hint.is_some_and(|h| h.contains("xx-nowhere-9") && h.contains("cn-shanghai")));
        assert!(region_hint(&load(&[
            ("ICE_SYNC__ICE__REGION", "xx-nowhere-9"),
            ("ICE_SYNC__ICE__ENDPOINT", "http://127.0.0.1:1"),
        ]))
        .is_none());
    }

    #[test]
    fn report_exit_codes() {
        let mut r = Report::default();
        r.push("config", Level::Ok, "fine");
        r.push("database", Level::Warn, "not created yet");
        assert_eq!(r.exit_code(), 0);
        assert!(r.render().contains("all checks passed"));
        r.push("ice api", Level::Fail, "rejected");
        assert_eq!(r.exit_code(), 1);
        assert!(r.render().contains("1 of 3 checks did not pass"));
    }
}
