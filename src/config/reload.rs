//! What a reload would change: [`ReloadPlan::between`] compares the halves a process
//! runs on (`config::halves`) with freshly loaded ones: every difference in the
//! [`Fixed`] half needs a restart, every one in the [`Live`] half applies now, each with
//! a one-line description that never shows a secret.
//!
//! Each half is destructured without `..`, so a key added to a half does not compile
//! until it is described here. Pure: reading the layers again is [`reload`] (or
//! `load`/`load_from`, which keep no state); applying the plan belongs to the daemon. Credentials are compared as config keys only:
//! the files and variables behind them can change without any key changing, so a
//! reload re-resolves credentials whatever this plan says.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::halves::{Fixed, FixedIce, FixedSync, Live, LiveIce, LiveSync};
use super::{
    load, CallbackSettings, DatabaseSettings, MetricsSettings, PostgresOptions, RetentionSettings,
    Settings, WebhookSecret, WebhookSettings,
};
use crate::credentials::CredentialConfig;
use crate::domain::ProjectId;

/// When a change can take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    /// While running: the next cycle (or the next request) uses the new value.
    Now,
    /// Only after `systemctl restart ice-sync`; until then the old value stays in use.
    AfterRestart,
}

/// One changed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The config key, e.g. `sync.max_qps` or `sync.intervals.Producing`.
    pub key: String,
    pub applies: Applies,
    /// One line for the log: old and new value, or "changed" for secrets.
    pub description: String,
}

/// The project IDs `sync.projects` gained and lost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectsDelta {
    pub added: Vec<ProjectId>,
    pub removed: Vec<ProjectId>,
}

/// Every difference between two configurations, in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadPlan {
    pub changes: Vec<Change>,
    /// Set when `sync.projects` changed (also listed in `changes`).
    pub projects: Option<ProjectsDelta>,
}

impl ReloadPlan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Changes the daemon applies while running.
    pub fn live(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.applies == Applies::Now)
    }

    /// Changes that wait for a restart.
    pub fn needs_restart(&self) -> impl Iterator<Item = &Change> {
        self.changes
            .iter()
            .filter(|c| c.applies == Applies::AfterRestart)
    }

    /// One line for the log, e.g. `2 change(s) applied: ...; 1 need(s) a restart: ...`.
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return "configuration unchanged".to_string();
        }
        let join = |it: &mut dyn Iterator<Item = &Change>| {
            it.map(|c| c.description.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        };
        let live = join(&mut self.live());
        let restart = join(&mut self.needs_restart());
        match (live.is_empty(), restart.is_empty()) {
            (false, true) => format!("applied: {live}"),
            (true, false) => format!("not applied until a restart: {restart}"),
            _ => format!("applied: {live}; not applied until a restart: {restart}"),
        }
    }
}

/// Re-reads the layers as `load(explicit)` does and compares with `old`. An invalid new
/// configuration is an error: the caller keeps running on `old` and logs it.
pub fn reload(old: &Settings, explicit: Option<&Path>) -> anyhow::Result<(Settings, ReloadPlan)> {
    let new = load(explicit)?;
    let plan = changes(old, &new);
    Ok((new, plan))
}

/// Everything that differs from `old` to `new`.
pub fn changes(old: &Settings, new: &Settings) -> ReloadPlan {
    let (fixed, live) = old.split();
    let (new_fixed, new_live) = new.split();
    ReloadPlan::between((&fixed, &live), (&new_fixed, &new_live))
}

impl ReloadPlan {
    /// What differs between the halves a process runs on and freshly loaded ones: every
    /// difference in the [`Fixed`] half needs a restart, every one in the [`Live`] half
    /// applies now. A daemon passes the `Fixed` half it started with, so a restart-only
    /// change is reported on every reload until the process restarts.
    pub fn between(running: (&Fixed, &Live), new: (&Fixed, &Live)) -> ReloadPlan {
        let mut diff = Diff {
            applies: Applies::AfterRestart,
            plan: ReloadPlan::default(),
        };
        fixed_changes(&mut diff, running.0, new.0);
        diff.applies = Applies::Now;
        live_changes(&mut diff, running.1, new.1);
        diff.plan
    }
}

/// Collects the changes of one half.
struct Diff {
    applies: Applies,
    plan: ReloadPlan,
}

impl Diff {
    fn push(&mut self, key: &str, description: String) {
        // Whatever the caller described: a secret key's change shows no value.
        let description = if super::secrets::hides_whole_value(key) {
            format!("{key} changed")
        } else {
            description
        };
        let description = match self.applies {
            Applies::Now => description,
            Applies::AfterRestart => format!("{description} (needs a restart)"),
        };
        self.plan.changes.push(Change {
            key: key.to_string(),
            applies: self.applies,
            description,
        });
    }

    /// `key: was -> now` when `a` and `b` differ.
    fn value<T: PartialEq + ?Sized>(
        &mut self,
        key: &str,
        a: &T,
        b: &T,
        show: impl Fn(&T) -> String,
    ) {
        if a != b {
            self.push(key, format!("{key}: {} -> {}", show(a), show(b)));
        }
    }

    /// `key changed`, never the values, when they differ.
    fn changed(&mut self, key: &str, differs: bool) {
        if differs {
            self.push(key, format!("{key} changed"));
        }
    }
}

fn fixed_changes(d: &mut Diff, a: &Fixed, b: &Fixed) {
    let Fixed {
        database,
        ice,
        sync,
        log_format,
        metrics,
        callback,
        webhook,
        retention,
    } = a;
    database_changes(d, database, &b.database);
    fixed_ice_changes(d, ice, &b.ice);
    fixed_sync_changes(d, sync, &b.sync);
    d.value("log.format", log_format, &b.log_format, |f| {
        format!("{f:?}")
    });
    metrics_changes(d, metrics, &b.metrics);
    callback_changes(d, callback, &b.callback);
    webhook_changes(d, webhook, &b.webhook);
    retention_changes(d, retention, &b.retention);
}

fn live_changes(d: &mut Diff, a: &Live, b: &Live) {
    let Live {
        ice,
        sync,
        log_level,
        jobs,
    } = a;
    live_ice_changes(d, ice, &b.ice);
    live_sync_changes(d, sync, &b.sync);
    d.value("log.level", log_level, &b.log_level, String::clone);
    let super::JobsSettings { enabled } = jobs;
    d.value("jobs.enabled", enabled, &b.jobs.enabled, bool::to_string);
}

/// `[database]`. `database.url_file` is resolved into `url` at load: a new file or new
/// content shows as a changed `database.url`.
fn database_changes(d: &mut Diff, a: &DatabaseSettings, b: &DatabaseSettings) {
    let DatabaseSettings {
        url,
        // Derived from the URL's scheme: not a key of its own.
        kind: _,
        max_connections,
        postgres,
    } = a;
    if *url != b.url {
        let (was, now) = (url.to_string(), b.url.to_string());
        let description = if was == now {
            "database.url changed (a secret in it differs)".to_string()
        } else {
            format!("database.url: {was} -> {now}")
        };
        d.push("database.url", description);
    }
    d.value(
        "database.max_connections",
        max_connections,
        &b.max_connections,
        u32::to_string,
    );
    let PostgresOptions {
        sslmode,
        sslrootcert,
        sslcert,
        sslkey,
        pooler,
        direct_url,
    } = postgres;
    let pb = &b.postgres;
    let mode = |m: &Option<super::SslMode>| format!("{:?}", m.map(|m| m.as_str()));
    d.value("database.sslmode", sslmode, &pb.sslmode, mode);
    d.value("database.sslrootcert", sslrootcert, &pb.sslrootcert, debug);
    d.value("database.sslcert", sslcert, &pb.sslcert, debug);
    d.value("database.sslkey", sslkey, &pb.sslkey, debug);
    d.value("database.pooler", pooler, &pb.pooler, |p| {
        p.as_str().to_string()
    });
    d.changed("database.direct_url", *direct_url != pb.direct_url);
}

fn fixed_ice_changes(d: &mut Diff, a: &FixedIce, b: &FixedIce) {
    let FixedIce {
        region,
        endpoint,
        request_source,
        timeout,
        rewrite_database_region,
    } = a;
    d.value("ice.region", region, &b.region, String::clone);
    d.value(
        "ice.endpoint",
        endpoint,
        &b.endpoint,
        reqwest::Url::to_string,
    );
    d.value(
        "ice.request_source",
        request_source,
        &b.request_source,
        |s| or_unset(s.as_deref()).to_string(),
    );
    d.value("ice.timeout", timeout, &b.timeout, |t| dur(*t));
    d.value(
        "ice.rewrite_database_region",
        rewrite_database_region,
        &b.rewrite_database_region,
        bool::to_string,
    );
}

fn live_ice_changes(d: &mut Diff, a: &LiveIce, b: &LiveIce) {
    let LiveIce {
        max_response_bytes,
        credentials,
    } = a;
    d.value(
        "ice.max_response_bytes",
        max_response_bytes,
        &b.max_response_bytes,
        usize::to_string,
    );
    credential_changes(d, credentials, &b.credentials);
}

/// Credential keys: never their values, only that they changed.
fn credential_changes(d: &mut Diff, a: &CredentialConfig, b: &CredentialConfig) {
    let CredentialConfig {
        access_key_id,
        access_key_secret,
        access_key_secret_file,
        security_token,
        role_arn,
        role_session_name,
        role_external_id,
        profile,
        credentials_file,
        cli_config_file,
        sts_endpoint,
        ecs_metadata_endpoint,
        ecs_role_name,
    } = a;
    let secret = |s: &Option<SecretString>| s.as_ref().map(|s| s.expose_secret().to_string());
    for (key, differs) in [
        ("ice.access_key_id", *access_key_id != b.access_key_id),
        (
            "ice.access_key_secret",
            secret(access_key_secret) != secret(&b.access_key_secret),
        ),
        (
            "ice.access_key_secret_file",
            *access_key_secret_file != b.access_key_secret_file,
        ),
        (
            "ice.security_token",
            secret(security_token) != secret(&b.security_token),
        ),
        ("ice.role_arn", *role_arn != b.role_arn),
        (
            "ice.role_session_name",
            *role_session_name != b.role_session_name,
        ),
        (
            "ice.role_external_id",
            *role_external_id != b.role_external_id,
        ),
        ("ice.profile", *profile != b.profile),
        (
            "ice.credentials_file",
            *credentials_file != b.credentials_file,
        ),
        ("ice.cli_config_file", *cli_config_file != b.cli_config_file),
        ("ice.sts_endpoint", *sts_endpoint != b.sts_endpoint),
        (
            "ice.ecs_metadata_endpoint",
            *ecs_metadata_endpoint != b.ecs_metadata_endpoint,
        ),
        ("ice.ecs_role_name", *ecs_role_name != b.ecs_role_name),
    ] {
        d.changed(key, differs);
    }
}

fn fixed_sync_changes(d: &mut Diff, a: &FixedSync, b: &FixedSync) {
    let FixedSync {
        shutdown_timeout,
        cycle_timeout,
        lease_ttl,
        replica_id,
        mode,
        discover,
        full_refresh_interval,
        list_sweep_share,
        list,
    } = a;
    let show_dur = |t: &Duration| dur(*t);
    d.value(
        "sync.shutdown_timeout",
        shutdown_timeout,
        &b.shutdown_timeout,
        show_dur,
    );
    d.value("sync.lease_ttl", lease_ttl, &b.lease_ttl, show_dur);
    d.value(
        "sync.full_refresh_interval",
        full_refresh_interval,
        &b.full_refresh_interval,
        show_dur,
    );
    d.value("sync.cycle_timeout", cycle_timeout, &b.cycle_timeout, |t| {
        t.map_or("(one schedule period)".to_string(), dur)
    });
    d.value("sync.replica_id", replica_id, &b.replica_id, String::clone);
    d.value("sync.mode", mode, &b.mode, |m| {
        format!("{m:?}").to_lowercase()
    });
    d.value("sync.discover", discover, &b.discover, bool::to_string);
    d.value(
        "sync.list_sweep_share",
        list_sweep_share,
        &b.list_sweep_share,
        f64::to_string,
    );
    d.value("sync.list", list, &b.list, debug);
}

fn live_sync_changes(d: &mut Diff, a: &LiveSync, b: &LiveSync) {
    let LiveSync {
        schedule,
        projects,
        concurrency,
        max_qps,
        max_retries,
        removal_confirmations,
        settled_interval,
        intervals,
        error_backoff_max,
    } = a;
    if *schedule != b.schedule {
        let (was, now) = (&schedule.expression, &b.schedule.expression);
        d.push(
            "sync.schedule",
            format!("sync.schedule: {was:?} -> {now:?} (UTC)"),
        );
    }
    projects_change(d, projects, &b.projects);
    d.value(
        "sync.concurrency",
        concurrency,
        &b.concurrency,
        usize::to_string,
    );
    d.value("sync.max_qps", max_qps, &b.max_qps, |q| {
        q.map_or("0 (unlimited)".to_string(), |q| q.to_string())
    });
    d.value(
        "sync.max_retries",
        max_retries,
        &b.max_retries,
        u32::to_string,
    );
    d.value(
        "sync.removal_confirmations",
        removal_confirmations,
        &b.removal_confirmations,
        u32::to_string,
    );
    let show_dur = |t: &Duration| dur(*t);
    d.value(
        "sync.settled_interval",
        settled_interval,
        &b.settled_interval,
        show_dur,
    );
    d.value(
        "sync.error_backoff_max",
        error_backoff_max,
        &b.error_backoff_max,
        show_dur,
    );
    for (key, was, now) in interval_changes(intervals, &b.intervals) {
        d.push(&key, format!("{key}: {was} -> {now}"));
    }
}

/// `sync.projects`: the IDs added and removed, also kept as [`ReloadPlan::projects`].
fn projects_change(d: &mut Diff, a: &[ProjectId], b: &[ProjectId]) {
    let before: BTreeSet<&ProjectId> = a.iter().collect();
    let after: BTreeSet<&ProjectId> = b.iter().collect();
    if before == after {
        return;
    }
    let delta = ProjectsDelta {
        added: after.difference(&before).map(|p| (*p).clone()).collect(),
        removed: before.difference(&after).map(|p| (*p).clone()).collect(),
    };
    let mut parts = Vec::new();
    if !delta.added.is_empty() {
        parts.push(format!(
            "{} added ({})",
            delta.added.len(),
            ids(&delta.added)
        ));
    }
    if !delta.removed.is_empty() {
        parts.push(format!(
            "{} removed ({})",
            delta.removed.len(),
            ids(&delta.removed)
        ));
    }
    d.push(
        "sync.projects",
        format!("sync.projects: {}", parts.join(", ")),
    );
    d.plan.projects = Some(delta);
}

fn metrics_changes(d: &mut Diff, a: &MetricsSettings, b: &MetricsSettings) {
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

fn callback_changes(d: &mut Diff, a: &CallbackSettings, b: &CallbackSettings) {
    let CallbackSettings {
        listen,
        path,
        url,
        auth_keys,
        auth_key_file,
        max_skew,
        track_unknown,
        max_body_bytes,
    } = a;
    let keys = |k: &[SecretString]| {
        k.iter()
            .map(|k| k.expose_secret().to_string())
            .collect::<Vec<_>>()
    };
    d.value("callback.listen", listen, &b.listen, debug);
    d.value("callback.path", path, &b.path, String::clone);
    d.value("callback.url", url, &b.url, debug);
    d.changed("callback.auth_key", keys(auth_keys) != keys(&b.auth_keys));
    d.changed("callback.auth_key_file", *auth_key_file != b.auth_key_file);
    d.value("callback.max_skew", max_skew, &b.max_skew, |t| dur(*t));
    d.value(
        "callback.track_unknown",
        track_unknown,
        &b.track_unknown,
        bool::to_string,
    );
    d.value(
        "callback.max_body_bytes",
        max_body_bytes,
        &b.max_body_bytes,
        usize::to_string,
    );
}

/// `[webhook]`. Values are not shown: the URL may carry a token.
fn webhook_changes(d: &mut Diff, a: &WebhookSettings, b: &WebhookSettings) {
    let WebhookSettings {
        url,
        secret,
        timeout,
        max_backoff,
        max_pending_age,
    } = a;
    let secret_key = |s: &WebhookSecret| match s {
        WebhookSecret::Inline(s) => format!("inline:{}", s.expose_secret()),
        WebhookSecret::File(p) => format!("file:{}", p.display()),
        WebhookSecret::Credential => "credential".to_string(),
    };
    d.changed("webhook.url", *url != b.url);
    d.changed(
        "webhook.secret",
        secret_key(secret) != secret_key(&b.secret),
    );
    d.changed("webhook.timeout", *timeout != b.timeout);
    d.changed("webhook.max_backoff", *max_backoff != b.max_backoff);
    d.value(
        "webhook.max_pending_age",
        max_pending_age,
        &b.max_pending_age,
        |t| dur(*t),
    );
}

fn retention_changes(d: &mut Diff, a: &RetentionSettings, b: &RetentionSettings) {
    let RetentionSettings {
        sync_runs,
        list_sweeps,
        callback_events,
    } = a;
    let show_dur = |t: &Duration| dur(*t);
    d.value("retention.sync_runs", sync_runs, &b.sync_runs, show_dur);
    d.value(
        "retention.list_sweeps",
        list_sweeps,
        &b.list_sweeps,
        show_dur,
    );
    d.value(
        "retention.callback_events",
        callback_events,
        &b.callback_events,
        show_dur,
    );
}

/// `sync.intervals.STATUS` keys whose value changed, was added or was removed.
fn interval_changes(
    a: &HashMap<String, Duration>,
    b: &HashMap<String, Duration>,
) -> Vec<(String, String, String)> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let show = |d: Option<&Duration>| d.map_or("(unset)".to_string(), |d| dur(*d));
    let sorted: BTreeMap<&String, (Option<&Duration>, Option<&Duration>)> = keys
        .into_iter()
        .map(|k| (k, (a.get(k), b.get(k))))
        .collect();
    sorted
        .into_iter()
        .filter(|(_, (x, y))| x != y)
        .map(|(k, (x, y))| (format!("sync.intervals.{k}"), show(x), show(y)))
        .collect()
}

/// At most five IDs, then a count: a reload that tracks thousands stays one line.
fn ids(list: &[ProjectId]) -> String {
    const SHOWN: usize = 5;
    let mut out = list
        .iter()
        .take(SHOWN)
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if list.len() > SHOWN {
        out.push_str(&format!(" and {} more", list.len() - SHOWN));
    }
    out
}

fn dur(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn debug<T: std::fmt::Debug>(v: &T) -> String {
    format!("{v:?}")
}

fn or_unset(v: Option<&str>) -> &str {
    v.unwrap_or("(unset)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_from;

    fn settings(env: &[(&str, &str)]) -> Settings {
        load_from(
            None,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .expect("valid settings")
    }

    #[test]
    fn loading_twice_changes_nothing() {
        let env = [("ICE_SYNC__SYNC__PROJECTS", "p1,p2")];
        let plan = changes(&settings(&env), &settings(&env));
        assert!(plan.is_empty(), "{plan:?}");
        assert_eq!(plan.summary(), "configuration unchanged");
    }

    #[test]
    fn run_time_changes_are_live() {
        let old = settings(&[
            ("ICE_SYNC__SYNC__PROJECTS", "p1,p2,p3"),
            ("ICE_SYNC__SYNC__INTERVALS__Producing", "5m"),
        ]);
        let new = settings(&[
            ("ICE_SYNC__SYNC__PROJECTS", "p3,p2,p4"),
            ("ICE_SYNC__SYNC__SCHEDULE", "0 */1 * * * *"),
            ("ICE_SYNC__SYNC__INTERVALS__Producing", "1m"),
            ("ICE_SYNC__SYNC__INTERVALS__Editing", "10m"),
            ("ICE_SYNC__SYNC__SETTLED_INTERVAL", "30m"),
            ("ICE_SYNC__SYNC__ERROR_BACKOFF_MAX", "10m"),
            ("ICE_SYNC__SYNC__MAX_QPS", "0"),
            ("ICE_SYNC__SYNC__CONCURRENCY", "4"),
            ("ICE_SYNC__SYNC__MAX_RETRIES", "2"),
            ("ICE_SYNC__LOG__LEVEL", "debug"),
        ]);
        let plan = changes(&old, &new);
        assert_eq!(plan.needs_restart().count(), 0, "{plan:?}");
        let lines: Vec<&str> = plan.live().map(|c| c.description.as_str()).collect();
        for expected in [
            "sync.schedule: \"0 */5 * * * *\" -> \"0 */1 * * * *\" (UTC)",
            "sync.projects: 1 added (p4), 1 removed (p1)",
            "sync.concurrency: 16 -> 4",
            "sync.max_qps: 20 -> 0 (unlimited)",
            "sync.max_retries: 5 -> 2",
            "sync.settled_interval: 1h -> 30m",
            "sync.error_backoff_max: 1h -> 10m",
            "sync.intervals.Editing: (unset) -> 10m",
            "sync.intervals.Producing: 5m -> 1m",
            "log.level: info -> debug",
        ] {
            assert!(lines.contains(&expected), "{expected:?} not in {lines:#?}");
        }
        assert_eq!(lines.len(), 10, "{lines:#?}");
        let delta = plan.projects.clone().expect("projects changed");
        assert_eq!(delta.added, vec![ProjectId::parse("p4").expect("id")]);
        assert_eq!(delta.removed, vec![ProjectId::parse("p1").expect("id")]);
        assert!(!plan.summary().contains('\n'));
    }

    #[test]
    fn restart_changes_are_marked_and_never_show_secrets() {
        let old = settings(&[
            (
                "ICE_SYNC__DATABASE__URL",
                "postgres://u:pw1secret@h/a?password=pw2secret",
            ),
            ("ICE_SYNC__ICE__ACCESS_KEY_SECRET", "ak-secret-1"),
        ]);
        let new = settings(&[
            (
                "ICE_SYNC__DATABASE__URL",
                "postgres://u:pw3secret@h/b?password=pw4secret",
            ),
            ("ICE_SYNC__ICE__ACCESS_KEY_SECRET", "ak-secret-2"),
            ("ICE_SYNC__METRICS__LISTEN", "127.0.0.1:9187"),
            ("ICE_SYNC__SYNC__MODE", "list"),
        ]);
        let plan = changes(&old, &new);
        let restart: Vec<&str> = plan.needs_restart().map(|c| c.key.as_str()).collect();
        assert_eq!(restart, ["database.url", "sync.mode", "metrics.listen"]);
        let live: Vec<&str> = plan.live().map(|c| c.key.as_str()).collect();
        assert_eq!(live, ["ice.access_key_secret"]);
        let text = format!("{} {plan:?}", plan.summary());
        for secret in [
            "pw1secret",
            "pw2secret",
            "pw3secret",
            "pw4secret",
            "ak-secret",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(
            text.contains("database.url: postgres://u:***@h/a?password=*** -> postgres://u:***@h/b?password=*** (needs a restart)"),
            "{text}"
        );
        assert!(
            text.contains("sync.mode: get -> list (needs a restart)"),
            "{text}"
        );
        assert!(text.contains("ice.access_key_secret changed"), "{text}");
    }

    /// A file that exists, for the keys that must name one.
    const MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");

    /// Every key of the fixed half, each changed to a valid other value, with the diff
    /// key it is reported under. PostgreSQL, so the `database` TLS and pooler keys count.
    const FIXED_CHANGES: &[(&str, &str, &str)] = &[
        (
            "database.url",
            "ICE_SYNC__DATABASE__URL",
            "postgres://u@h:6432/other",
        ),
        (
            "database.max_connections",
            "ICE_SYNC__DATABASE__MAX_CONNECTIONS",
            "3",
        ),
        ("database.sslmode", "ICE_SYNC__DATABASE__SSLMODE", "disable"),
        (
            "database.sslrootcert",
            "ICE_SYNC__DATABASE__SSLROOTCERT",
            MANIFEST,
        ),
        ("database.sslcert", "ICE_SYNC__DATABASE__SSLCERT", MANIFEST),
        ("database.sslkey", "ICE_SYNC__DATABASE__SSLKEY", MANIFEST),
        (
            "database.pooler",
            "ICE_SYNC__DATABASE__POOLER",
            "transaction",
        ),
        (
            "database.direct_url",
            "ICE_SYNC__DATABASE__DIRECT_URL",
            "postgres://u@h:5432/a",
        ),
        ("ice.region", "ICE_SYNC__ICE__REGION", "cn-beijing"),
        (
            "ice.endpoint",
            "ICE_SYNC__ICE__ENDPOINT",
            "http://127.0.0.1:9/",
        ),
        (
            "ice.request_source",
            "ICE_SYNC__ICE__REQUEST_SOURCE",
            "WebSDK",
        ),
        ("ice.timeout", "ICE_SYNC__ICE__TIMEOUT", "7s"),
        (
            "ice.rewrite_database_region",
            "ICE_SYNC__ICE__REWRITE_DATABASE_REGION",
            "true",
        ),
        (
            "sync.shutdown_timeout",
            "ICE_SYNC__SYNC__SHUTDOWN_TIMEOUT",
            "9s",
        ),
        ("sync.lease_ttl", "ICE_SYNC__SYNC__LEASE_TTL", "90s"),
        (
            "sync.full_refresh_interval",
            "ICE_SYNC__SYNC__FULL_REFRESH_INTERVAL",
            "2h",
        ),
        ("sync.cycle_timeout", "ICE_SYNC__SYNC__CYCLE_TIMEOUT", "45s"),
        (
            "sync.replica_id",
            "ICE_SYNC__SYNC__REPLICA_ID",
            "other-replica",
        ),
        ("sync.mode", "ICE_SYNC__SYNC__MODE", "list"),
        ("sync.discover", "ICE_SYNC__SYNC__DISCOVER", "true"),
        (
            "sync.list_sweep_share",
            "ICE_SYNC__SYNC__LIST_SWEEP_SHARE",
            "0.25",
        ),
        ("sync.list", "ICE_SYNC__SYNC__LIST__CREATED_WITHIN", "7d"),
        ("log.format", "ICE_SYNC__LOG__FORMAT", "pretty"),
        (
            "metrics.listen",
            "ICE_SYNC__METRICS__LISTEN",
            "127.0.0.1:9187",
        ),
        (
            "metrics.refresh_token_file",
            "ICE_SYNC__METRICS__REFRESH_TOKEN_FILE",
            "/run/token",
        ),
        (
            "callback.listen",
            "ICE_SYNC__CALLBACK__LISTEN",
            "127.0.0.1:9188",
        ),
        ("callback.path", "ICE_SYNC__CALLBACK__PATH", "/events2"),
        (
            "callback.url",
            "ICE_SYNC__CALLBACK__URL",
            "https://a.example.com/events2",
        ),
        (
            "callback.auth_key",
            "ICE_SYNC__CALLBACK__AUTH_KEY",
            "NewKey002",
        ),
        (
            "callback.auth_key_file",
            "ICE_SYNC__CALLBACK__AUTH_KEY_FILE",
            "/run/keys",
        ),
        ("callback.max_skew", "ICE_SYNC__CALLBACK__MAX_SKEW", "2m"),
        (
            "callback.track_unknown",
            "ICE_SYNC__CALLBACK__TRACK_UNKNOWN",
            "true",
        ),
        (
            "callback.max_body_bytes",
            "ICE_SYNC__CALLBACK__MAX_BODY_BYTES",
            "32768",
        ),
        (
            "webhook.url",
            "ICE_SYNC__WEBHOOK__URL",
            "https://hooks.example.com/x",
        ),
        ("webhook.secret", "ICE_SYNC__WEBHOOK__SECRET", "hook-secret"),
        ("webhook.timeout", "ICE_SYNC__WEBHOOK__TIMEOUT", "5s"),
        (
            "webhook.max_backoff",
            "ICE_SYNC__WEBHOOK__MAX_BACKOFF",
            "1m",
        ),
        (
            "webhook.max_pending_age",
            "ICE_SYNC__WEBHOOK__MAX_PENDING_AGE",
            "1d",
        ),
        (
            "retention.sync_runs",
            "ICE_SYNC__RETENTION__SYNC_RUNS",
            "30d",
        ),
        (
            "retention.list_sweeps",
            "ICE_SYNC__RETENTION__LIST_SWEEPS",
            "10d",
        ),
        (
            "retention.callback_events",
            "ICE_SYNC__RETENTION__CALLBACK_EVENTS",
            "2d",
        ),
    ];

    /// Every key of the live half, changed, with the diff key it is reported under.
    const LIVE_CHANGES: &[(&str, &str, &str)] = &[
        (
            "ice.max_response_bytes",
            "ICE_SYNC__ICE__MAX_RESPONSE_BYTES",
            "65536",
        ),
        (
            "ice.access_key_id",
            "ICE_SYNC__ICE__ACCESS_KEY_ID",
            "LTAI-other",
        ),
        (
            "ice.role_arn",
            "ICE_SYNC__ICE__ROLE_ARN",
            "acs:ram::1:role/x",
        ),
        ("sync.schedule", "ICE_SYNC__SYNC__SCHEDULE", "0 */1 * * * *"),
        ("sync.projects", "ICE_SYNC__SYNC__PROJECTS", "p1"),
        ("sync.concurrency", "ICE_SYNC__SYNC__CONCURRENCY", "4"),
        ("sync.max_qps", "ICE_SYNC__SYNC__MAX_QPS", "0"),
        ("sync.max_retries", "ICE_SYNC__SYNC__MAX_RETRIES", "2"),
        (
            "sync.removal_confirmations",
            "ICE_SYNC__SYNC__REMOVAL_CONFIRMATIONS",
            "3",
        ),
        (
            "sync.settled_interval",
            "ICE_SYNC__SYNC__SETTLED_INTERVAL",
            "30m",
        ),
        (
            "sync.error_backoff_max",
            "ICE_SYNC__SYNC__ERROR_BACKOFF_MAX",
            "10m",
        ),
        (
            "sync.intervals.Producing",
            "ICE_SYNC__SYNC__INTERVALS__Producing",
            "1m",
        ),
        ("log.level", "ICE_SYNC__LOG__LEVEL", "debug"),
        ("jobs.enabled", "ICE_SYNC__JOBS__ENABLED", "false"),
    ];

    fn with(base: &[(&'static str, &'static str)], extra: &[(&str, &str, &str)]) -> Settings {
        let mut env: Vec<(&str, &str)> = base.to_vec();
        for (_, var, value) in extra {
            env.retain(|(k, _)| k != var);
            env.push((var, value));
        }
        settings(&env)
    }

    const PG_BASE: &[(&str, &str)] = &[("ICE_SYNC__DATABASE__URL", "postgres://u@h:6432/a")];

    #[test]
    fn every_fixed_key_needs_a_restart() {
        let old = with(PG_BASE, &[]);
        let new = with(PG_BASE, FIXED_CHANGES);
        let plan = changes(&old, &new);
        let restart: Vec<&str> = plan.needs_restart().map(|c| c.key.as_str()).collect();
        let mut expected: Vec<&str> = FIXED_CHANGES.iter().map(|(k, _, _)| *k).collect();
        let mut got = restart.clone();
        expected.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, expected);
        assert_eq!(plan.live().count(), 0, "{plan:?}");
        for change in plan.needs_restart() {
            assert!(
                change.description.ends_with("(needs a restart)"),
                "{change:?}"
            );
        }
        let text = format!("{plan:?}");
        for secret in ["NewKey002", "hook-secret", "hooks.example.com"] {
            assert!(!text.contains(secret), "{secret} shown: {text}");
        }
    }

    #[test]
    fn every_live_key_applies_now() {
        let old = with(&[], &[]);
        let new = with(&[], LIVE_CHANGES);
        let plan = changes(&old, &new);
        let mut got: Vec<&str> = plan.live().map(|c| c.key.as_str()).collect();
        let mut expected: Vec<&str> = LIVE_CHANGES.iter().map(|(k, _, _)| *k).collect();
        got.sort_unstable();
        expected.sort_unstable();
        assert_eq!(got, expected);
        assert_eq!(plan.needs_restart().count(), 0, "{plan:?}");
        assert!(plan
            .live()
            .any(|c| c.description == "sync.removal_confirmations: 2 -> 3"));
    }

    /// What the daemon does: the fixed half stays as started, the live half follows
    /// the latest applied reload.
    #[test]
    fn a_restart_only_change_is_reported_on_every_later_reload() {
        let (start_fixed, start_live) = settings(&[]).split();
        let first = settings(&[("ICE_SYNC__ICE__ENDPOINT", "http://127.0.0.1:9/")]);
        let (fixed1, live1) = first.split();
        let plan = ReloadPlan::between((&start_fixed, &start_live), (&fixed1, &live1));
        assert_eq!(
            plan.summary(),
            "not applied until a restart: ice.endpoint: https://ice.cn-shanghai.aliyuncs.com/ \
             -> http://127.0.0.1:9/ (needs a restart)"
        );
        // Only log.level differs from the file of the first reload.
        let second = settings(&[
            ("ICE_SYNC__ICE__ENDPOINT", "http://127.0.0.1:9/"),
            ("ICE_SYNC__LOG__LEVEL", "debug"),
        ]);
        let (fixed2, live2) = second.split();
        let plan = ReloadPlan::between((&start_fixed, &live1), (&fixed2, &live2));
        assert_eq!(
            plan.summary(),
            "applied: log.level: info -> debug; not applied until a restart: ice.endpoint: \
             https://ice.cn-shanghai.aliyuncs.com/ -> http://127.0.0.1:9/ (needs a restart)"
        );
    }

    #[test]
    fn jobs_enabled_applies_at_once() {
        let old = settings(&[]);
        let new = settings(&[("ICE_SYNC__JOBS__ENABLED", "false")]);
        let plan = changes(&old, &new);
        assert_eq!(plan.changes.len(), 1, "{plan:?}");
        assert_eq!(plan.changes[0].key, "jobs.enabled");
        assert_eq!(plan.changes[0].applies, Applies::Now);
        assert_eq!(plan.changes[0].description, "jobs.enabled: true -> false");
    }

    #[test]
    fn a_password_only_change_is_reported_without_the_password() {
        let old = settings(&[("ICE_SYNC__DATABASE__URL", "postgres://u:old-pw@h/db")]);
        let new = settings(&[("ICE_SYNC__DATABASE__URL", "postgres://u:new-pw@h/db")]);
        let plan = changes(&old, &new);
        assert_eq!(plan.changes.len(), 1, "{plan:?}");
        assert_eq!(
            plan.changes[0].description,
            "database.url changed (a secret in it differs) (needs a restart)"
        );
    }

    #[test]
    fn callback_changes_wait_for_a_restart_and_hide_keys() {
        let old = settings(&[
            ("ICE_SYNC__CALLBACK__LISTEN", "127.0.0.1:9188"),
            (
                "ICE_SYNC__CALLBACK__URL",
                "https://a.example.com/ice/events",
            ),
            ("ICE_SYNC__CALLBACK__AUTH_KEY", "OldKey001"),
        ]);
        let new = settings(&[
            ("ICE_SYNC__CALLBACK__LISTEN", "127.0.0.1:9188"),
            (
                "ICE_SYNC__CALLBACK__URL",
                "https://a.example.com/ice/events",
            ),
            ("ICE_SYNC__CALLBACK__AUTH_KEY", "NewKey002"),
            ("ICE_SYNC__CALLBACK__MAX_SKEW", "2m"),
        ]);
        let plan = changes(&old, &new);
        let restart: Vec<&str> = plan.needs_restart().map(|c| c.key.as_str()).collect();
        assert_eq!(restart, ["callback.auth_key", "callback.max_skew"]);
        let text = format!("{} {plan:?}", plan.summary());
        assert!(
            !text.contains("OldKey001") && !text.contains("NewKey002"),
            "{text}"
        );
        assert!(
            text.contains("callback.auth_key changed (needs a restart)"),
            "{text}"
        );
        assert!(text.contains("callback.max_skew: 5m -> 2m"), "{text}");
    }

    #[test]
    fn retention_and_region_changes_wait_for_a_restart() {
        let old = settings(&[]);
        let new = settings(&[
            ("ICE_SYNC__RETENTION__SYNC_RUNS", "30d"),
            ("ICE_SYNC__RETENTION__LIST_SWEEPS", "10d"),
            ("ICE_SYNC__RETENTION__CALLBACK_EVENTS", "2d"),
            ("ICE_SYNC__WEBHOOK__MAX_PENDING_AGE", "1d"),
            ("ICE_SYNC__ICE__REWRITE_DATABASE_REGION", "true"),
        ]);
        let plan = changes(&old, &new);
        let keys: Vec<&str> = plan.needs_restart().map(|c| c.key.as_str()).collect();
        for key in [
            "retention.sync_runs",
            "retention.list_sweeps",
            "retention.callback_events",
            "webhook.max_pending_age",
            "ice.rewrite_database_region",
        ] {
            assert!(keys.contains(&key), "{key}: {keys:?}");
        }
        assert_eq!(plan.live().count(), 0);
    }

    #[test]
    fn many_projects_stay_one_line() {
        let many: Vec<String> = (0..40).map(|i| format!("p{i:02}")).collect();
        let old = settings(&[]);
        let new = settings(&[("ICE_SYNC__SYNC__PROJECTS", &many.join(","))]);
        let plan = changes(&old, &new);
        assert_eq!(
            plan.changes[0].description,
            "sync.projects: 40 added (p00, p01, p02, p03, p04 and 35 more)"
        );
    }

    #[test]
    fn tls_and_pooler_keys_need_a_restart_and_hide_the_direct_password() {
        let old = settings(&[("ICE_SYNC__DATABASE__URL", "postgres://u@h:6432/a")]);
        let new = settings(&[
            ("ICE_SYNC__DATABASE__URL", "postgres://u@h:6432/a"),
            ("ICE_SYNC__DATABASE__SSLMODE", "verify-full"),
            ("ICE_SYNC__DATABASE__POOLER", "transaction"),
            (
                "ICE_SYNC__DATABASE__DIRECT_URL",
                "postgres://u:directsecret@h:5432/a",
            ),
        ]);
        let plan = changes(&old, &new);
        let restart: Vec<&str> = plan.needs_restart().map(|c| c.key.as_str()).collect();
        assert_eq!(
            restart,
            ["database.sslmode", "database.pooler", "database.direct_url"]
        );
        let text = format!("{} {plan:?}", plan.summary());
        assert!(!text.contains("directsecret"), "{text}");
        assert!(
            text.contains("database.pooler: none -> transaction (needs a restart)"),
            "{text}"
        );
    }
}
