//! What a reload would change: [`changes`] compares the running [`Settings`] with freshly
//! loaded ones and sorts every difference into what can apply at run time and what
//! needs a restart, each with a one-line description that never shows a secret.
//!
//! Pure: reading the layers again is [`reload`] (or `load`/`load_from`, which keep no
//! state); applying the plan belongs to the daemon. Keys that the daemon cannot apply
//! while running are reported as needing a restart, so an operator is never told a
//! change took effect when it did not. Credentials are compared as config keys only:
//! the files and variables behind them can change without any key changing, so a
//! reload re-resolves credentials whatever this plan says.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use secrecy::ExposeSecret;

use super::{load, Settings};
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
    use Applies::{AfterRestart, Now};
    let mut plan = ReloadPlan::default();
    let mut push = |key: &str, applies: Applies, description: String| {
        // Whatever the line below was given: a secret key's change shows no value.
        let description = if super::secrets::hides_whole_value(key) {
            format!("{key} changed")
        } else {
            description
        };
        let description = match applies {
            Now => description,
            AfterRestart => format!("{description} (needs a restart)"),
        };
        plan.changes.push(Change {
            key: key.to_string(),
            applies,
            description,
        });
    };

    // [database] (`database.url_file` is resolved into `url` at load: a new file or new
    // content shows as a changed database.url, which needs a restart)
    let (a, b) = (&old.database, &new.database);
    if a.url != b.url {
        let (was, now) = (a.url.to_string(), b.url.to_string());
        let description = if was == now {
            "database.url changed (a secret in it differs)".to_string()
        } else {
            format!("database.url: {was} -> {now}")
        };
        push("database.url", AfterRestart, description);
    }
    if a.max_connections != b.max_connections {
        push(
            "database.max_connections",
            AfterRestart,
            format!(
                "database.max_connections: {} -> {}",
                a.max_connections, b.max_connections
            ),
        );
    }

    // TLS and the pooler shape every connection: they apply when the pool is built.
    let (pa, pb) = (&a.postgres, &b.postgres);
    let shown = |o: &crate::config::PostgresOptions| {
        [
            (
                "database.sslmode",
                format!("{:?}", o.sslmode.map(|m| m.as_str())),
            ),
            ("database.sslrootcert", format!("{:?}", o.sslrootcert)),
            ("database.sslcert", format!("{:?}", o.sslcert)),
            ("database.sslkey", format!("{:?}", o.sslkey)),
            ("database.pooler", o.pooler.as_str().to_string()),
        ]
    };
    for ((key, was), (_, now)) in shown(pa).into_iter().zip(shown(pb)) {
        if was != now {
            push(key, AfterRestart, format!("{key}: {was} -> {now}"));
        }
    }
    if pa.direct_url != pb.direct_url {
        push(
            "database.direct_url",
            AfterRestart,
            "database.direct_url changed".to_string(),
        );
    }

    // [ice]
    let (a, b) = (&old.ice, &new.ice);
    if a.region != b.region {
        push(
            "ice.region",
            AfterRestart,
            format!("ice.region: {} -> {}", a.region, b.region),
        );
    }
    if a.endpoint != b.endpoint {
        push(
            "ice.endpoint",
            AfterRestart,
            format!("ice.endpoint: {} -> {}", a.endpoint, b.endpoint),
        );
    }
    if a.request_source != b.request_source {
        push(
            "ice.request_source",
            AfterRestart,
            format!(
                "ice.request_source: {} -> {}",
                or_unset(a.request_source.as_deref()),
                or_unset(b.request_source.as_deref())
            ),
        );
    }
    if a.timeout != b.timeout {
        push(
            "ice.timeout",
            AfterRestart,
            format!("ice.timeout: {} -> {}", dur(a.timeout), dur(b.timeout)),
        );
    }
    if a.max_response_bytes != b.max_response_bytes {
        push(
            "ice.max_response_bytes",
            Now,
            format!(
                "ice.max_response_bytes: {} -> {}",
                a.max_response_bytes, b.max_response_bytes
            ),
        );
    }
    let (ca, cb) = (&a.credentials, &b.credentials);
    // Credential keys: never their values, only that they changed.
    let secret =
        |s: &Option<secrecy::SecretString>| s.as_ref().map(|s| s.expose_secret().to_string());
    for (key, differs) in [
        ("ice.access_key_id", ca.access_key_id != cb.access_key_id),
        (
            "ice.access_key_secret",
            secret(&ca.access_key_secret) != secret(&cb.access_key_secret),
        ),
        (
            "ice.access_key_secret_file",
            ca.access_key_secret_file != cb.access_key_secret_file,
        ),
        (
            "ice.security_token",
            secret(&ca.security_token) != secret(&cb.security_token),
        ),
        ("ice.role_arn", ca.role_arn != cb.role_arn),
        (
            "ice.role_session_name",
            ca.role_session_name != cb.role_session_name,
        ),
        (
            "ice.role_external_id",
            ca.role_external_id != cb.role_external_id,
        ),
        ("ice.profile", ca.profile != cb.profile),
        (
            "ice.credentials_file",
            ca.credentials_file != cb.credentials_file,
        ),
        (
            "ice.cli_config_file",
            ca.cli_config_file != cb.cli_config_file,
        ),
        ("ice.sts_endpoint", ca.sts_endpoint != cb.sts_endpoint),
        (
            "ice.ecs_metadata_endpoint",
            ca.ecs_metadata_endpoint != cb.ecs_metadata_endpoint,
        ),
        ("ice.ecs_role_name", ca.ecs_role_name != cb.ecs_role_name),
    ] {
        if differs {
            push(key, Now, format!("{key} changed"));
        }
    }

    // [sync]
    let (a, b) = (&old.sync, &new.sync);
    if a.schedule != b.schedule {
        push(
            "sync.schedule",
            Now,
            format!(
                "sync.schedule: {:?} -> {:?} (UTC)",
                a.schedule.expression, b.schedule.expression
            ),
        );
    }
    let before: BTreeSet<&ProjectId> = a.projects.iter().collect();
    let after: BTreeSet<&ProjectId> = b.projects.iter().collect();
    if before != after {
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
        push(
            "sync.projects",
            Now,
            format!("sync.projects: {}", parts.join(", ")),
        );
        plan.projects = Some(delta);
    }
    if a.concurrency != b.concurrency {
        push(
            "sync.concurrency",
            Now,
            format!("sync.concurrency: {} -> {}", a.concurrency, b.concurrency),
        );
    }
    if a.max_qps != b.max_qps {
        let qps = |q: Option<std::num::NonZeroU32>| {
            q.map_or("0 (unlimited)".to_string(), |q| q.to_string())
        };
        push(
            "sync.max_qps",
            Now,
            format!("sync.max_qps: {} -> {}", qps(a.max_qps), qps(b.max_qps)),
        );
    }
    if a.max_retries != b.max_retries {
        push(
            "sync.max_retries",
            Now,
            format!("sync.max_retries: {} -> {}", a.max_retries, b.max_retries),
        );
    }
    for (key, x, y, applies) in [
        (
            "sync.settled_interval",
            a.settled_interval,
            b.settled_interval,
            Now,
        ),
        (
            "sync.error_backoff_max",
            a.error_backoff_max,
            b.error_backoff_max,
            Now,
        ),
        (
            "sync.shutdown_timeout",
            a.shutdown_timeout,
            b.shutdown_timeout,
            AfterRestart,
        ),
        ("sync.lease_ttl", a.lease_ttl, b.lease_ttl, AfterRestart),
        (
            "sync.full_refresh_interval",
            a.full_refresh_interval,
            b.full_refresh_interval,
            AfterRestart,
        ),
    ] {
        if x != y {
            push(key, applies, format!("{key}: {} -> {}", dur(x), dur(y)));
        }
    }
    for (key, was, now) in interval_changes(&a.intervals, &b.intervals) {
        push(&key, Now, format!("{key}: {was} -> {now}"));
    }
    if a.cycle_timeout != b.cycle_timeout {
        let show = |d: Option<Duration>| d.map_or("(one schedule period)".to_string(), dur);
        push(
            "sync.cycle_timeout",
            AfterRestart,
            format!(
                "sync.cycle_timeout: {} -> {}",
                show(a.cycle_timeout),
                show(b.cycle_timeout)
            ),
        );
    }
    if a.removal_confirmations != b.removal_confirmations {
        push(
            "sync.removal_confirmations",
            AfterRestart,
            format!(
                "sync.removal_confirmations: {} -> {}",
                a.removal_confirmations, b.removal_confirmations
            ),
        );
    }
    if a.replica_id != b.replica_id {
        push(
            "sync.replica_id",
            AfterRestart,
            format!("sync.replica_id: {} -> {}", a.replica_id, b.replica_id),
        );
    }
    if a.mode != b.mode {
        push(
            "sync.mode",
            AfterRestart,
            format!("sync.mode: {:?} -> {:?}", a.mode, b.mode).to_lowercase(),
        );
    }
    if a.discover != b.discover {
        push(
            "sync.discover",
            AfterRestart,
            format!("sync.discover: {} -> {}", a.discover, b.discover),
        );
    }
    if a.list_sweep_share != b.list_sweep_share {
        push(
            "sync.list_sweep_share",
            AfterRestart,
            format!(
                "sync.list_sweep_share: {} -> {}",
                a.list_sweep_share, b.list_sweep_share
            ),
        );
    }
    if a.list != b.list {
        push(
            "sync.list",
            AfterRestart,
            format!("sync.list: {:?} -> {:?}", a.list, b.list),
        );
    }

    // [log], [metrics]
    if old.log.level != new.log.level {
        push(
            "log.level",
            Now,
            format!("log.level: {} -> {}", old.log.level, new.log.level),
        );
    }
    if old.log.format != new.log.format {
        push(
            "log.format",
            AfterRestart,
            format!("log.format: {:?} -> {:?}", old.log.format, new.log.format),
        );
    }
    if old.metrics.listen != new.metrics.listen {
        let show =
            |l: Option<std::net::SocketAddr>| l.map_or("(unset)".to_string(), |l| l.to_string());
        push(
            "metrics.listen",
            AfterRestart,
            format!(
                "metrics.listen: {} -> {}",
                show(old.metrics.listen),
                show(new.metrics.listen)
            ),
        );
    }
    if old.metrics.refresh_token_file != new.metrics.refresh_token_file {
        let show = |f: &Option<std::path::PathBuf>| {
            f.as_ref()
                .map_or("(unset)".to_string(), |f| f.display().to_string())
        };
        push(
            "metrics.refresh_token_file",
            AfterRestart,
            format!(
                "metrics.refresh_token_file: {} -> {}",
                show(&old.metrics.refresh_token_file),
                show(&new.metrics.refresh_token_file)
            ),
        );
    }

    // [callback]: the listener and its keys are set up once, at start-up.
    let (a, b) = (&old.callback, &new.callback);
    let keys = |c: &super::CallbackSettings| {
        c.auth_keys
            .iter()
            .map(|k| k.expose_secret().to_string())
            .collect::<Vec<_>>()
    };
    for (key, differs, shown) in [
        (
            "callback.listen",
            a.listen != b.listen,
            Some((format!("{:?}", a.listen), format!("{:?}", b.listen))),
        ),
        (
            "callback.path",
            a.path != b.path,
            Some((a.path.clone(), b.path.clone())),
        ),
        (
            "callback.url",
            a.url != b.url,
            Some((format!("{:?}", a.url), format!("{:?}", b.url))),
        ),
        ("callback.auth_key", keys(a) != keys(b), None),
        (
            "callback.auth_key_file",
            a.auth_key_file != b.auth_key_file,
            None,
        ),
        (
            "callback.max_skew",
            a.max_skew != b.max_skew,
            Some((dur(a.max_skew), dur(b.max_skew))),
        ),
        (
            "callback.track_unknown",
            a.track_unknown != b.track_unknown,
            Some((a.track_unknown.to_string(), b.track_unknown.to_string())),
        ),
        (
            "callback.max_body_bytes",
            a.max_body_bytes != b.max_body_bytes,
            Some((a.max_body_bytes.to_string(), b.max_body_bytes.to_string())),
        ),
    ] {
        if differs {
            let description = match shown {
                Some((was, now)) => format!("{key}: {was} -> {now}"),
                None => format!("{key} changed"),
            };
            push(key, AfterRestart, description);
        }
    }

    // [webhook]: the deliverer is wired at start-up. Values are not shown: the URL may
    // carry a token.
    let (a, b) = (&old.webhook, &new.webhook);
    let secret_key = |w: &super::WebhookSettings| match &w.secret {
        super::WebhookSecret::Inline(s) => format!("inline:{}", s.expose_secret()),
        super::WebhookSecret::File(p) => format!("file:{}", p.display()),
        super::WebhookSecret::Credential => "credential".to_string(),
    };
    for (key, differs) in [
        ("webhook.url", a.url != b.url),
        ("webhook.secret", secret_key(a) != secret_key(b)),
        ("webhook.timeout", a.timeout != b.timeout),
        ("webhook.max_backoff", a.max_backoff != b.max_backoff),
    ] {
        if differs {
            push(key, AfterRestart, format!("{key} changed"));
        }
    }
    if a.max_pending_age != b.max_pending_age {
        push(
            "webhook.max_pending_age",
            AfterRestart,
            format!(
                "webhook.max_pending_age: {} -> {}",
                dur(a.max_pending_age),
                dur(b.max_pending_age)
            ),
        );
    }

    // [retention]: the daemon's prune reads the settings it started with.
    let (a, b) = (&old.retention, &new.retention);
    for (key, x, y) in [
        ("retention.sync_runs", a.sync_runs, b.sync_runs),
        ("retention.list_sweeps", a.list_sweeps, b.list_sweeps),
        (
            "retention.callback_events",
            a.callback_events,
            b.callback_events,
        ),
    ] {
        if x != y {
            push(
                key,
                AfterRestart,
                format!("{key}: {} -> {}", dur(x), dur(y)),
            );
        }
    }
    if old.ice.rewrite_database_region != new.ice.rewrite_database_region {
        push(
            "ice.rewrite_database_region",
            AfterRestart,
            format!(
                "ice.rewrite_database_region: {} -> {}",
                old.ice.rewrite_database_region, new.ice.rewrite_database_region
            ),
        );
    }

    // [jobs]: part of the engine's options, which a reload replaces.
    if old.jobs.enabled != new.jobs.enabled {
        let (was, now) = (old.jobs.enabled, new.jobs.enabled);
        push("jobs.enabled", Now, format!("jobs.enabled: {was} -> {now}"));
    }
    plan
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
