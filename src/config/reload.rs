//! What a reload would change: [`ReloadPlan::between`] compares the halves a process
//! runs on (`config::halves`) with freshly loaded ones: every difference in the
//! [`Fixed`] half needs a restart, every one in the [`Live`] half applies now, each with
//! a one-line description that never shows a secret.
//!
//! Each half is destructured without `..`, so a key added to a half does not compile
//! until it is described. This file holds the machinery ([`Diff`]) and the assembly;
//! each section describes its own keys in its own file (`config::sync::live_changes`,
//! `config::ice::fixed_changes`, `config::database::changes`, ...). Pure: reading the
//! layers again is [`reload`] (or `load`/`load_from`, which keep no state); applying the
//! plan belongs to the daemon. Credentials are compared as config keys only: the files
//! and variables behind them can change without any key changing, so a reload
//! re-resolves credentials whatever this plan says.

use std::time::Duration;

use super::halves::{Fixed, Live};
#[cfg(test)]
use super::Settings;
use crate::domain::ProjectId;

/// When a change can take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applies {
    /// While running: the next cycle (or the next request) uses the new value.
    Now,
    /// Only after `systemctl restart ice-sync`; until then the old value stays in use.
    AfterRestart,
}

/// One changed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    /// The config key, e.g. `sync.max_qps` or `sync.intervals.Producing`.
    pub(crate) key: String,
    pub(crate) applies: Applies,
    /// One line for the log: old and new value, or "changed" for secrets.
    pub(crate) description: String,
}

/// The project IDs `sync.projects` gained and lost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProjectsDelta {
    pub(crate) added: Vec<ProjectId>,
    pub(crate) removed: Vec<ProjectId>,
}

/// Every difference between two configurations, in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ReloadPlan {
    pub(crate) changes: Vec<Change>,
    /// Set when `sync.projects` changed (also listed in `changes`).
    pub(crate) projects: Option<ProjectsDelta>,
}

impl ReloadPlan {
    pub(crate) fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Changes the daemon applies while running.
    pub(crate) fn live(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.applies == Applies::Now)
    }

    /// Changes that wait for a restart.
    pub(crate) fn needs_restart(&self) -> impl Iterator<Item = &Change> {
        self.changes
            .iter()
            .filter(|c| c.applies == Applies::AfterRestart)
    }

    /// One line for the log, e.g. `2 change(s) applied: ...; 1 need(s) a restart: ...`.
    pub(crate) fn summary(&self) -> String {
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

/// Everything that differs from `old` to `new` (the unit tests' shorthand).
#[cfg(test)]
pub(crate) fn changes(old: &Settings, new: &Settings) -> ReloadPlan {
    let (fixed, live) = old.split();
    let (new_fixed, new_live) = new.split();
    ReloadPlan::between((&fixed, &live), (&new_fixed, &new_live))
}

impl ReloadPlan {
    /// What differs between the halves a process runs on and freshly loaded ones: every
    /// difference in the [`Fixed`] half needs a restart, every one in the [`Live`] half
    /// applies now. A daemon passes the `Fixed` half it started with, so a restart-only
    /// change is reported on every reload until the process restarts.
    pub(crate) fn between(running: (&Fixed, &Live), new: (&Fixed, &Live)) -> ReloadPlan {
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

/// Collects the changes of one half; each section's `changes` function pushes its keys.
pub(super) struct Diff {
    applies: Applies,
    pub(super) plan: ReloadPlan,
}

impl Diff {
    pub(super) fn push(&mut self, key: &str, description: String) {
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
    pub(super) fn value<T: PartialEq + ?Sized>(
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
    pub(super) fn changed(&mut self, key: &str, differs: bool) {
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
    super::database::changes(d, database, &b.database);
    super::ice::fixed_changes(d, ice, &b.ice);
    super::sync::fixed_changes(d, sync, &b.sync);
    d.value("log.format", log_format, &b.log_format, |f| {
        format!("{f:?}")
    });
    super::settings::metrics_changes(d, metrics, &b.metrics);
    super::callback::changes(d, callback, &b.callback);
    super::webhook::changes(d, webhook, &b.webhook);
    super::retention::changes(d, retention, &b.retention);
}

fn live_changes(d: &mut Diff, a: &Live, b: &Live) {
    let Live {
        ice,
        sync,
        log_level,
        jobs,
    } = a;
    super::ice::live_changes(d, ice, &b.ice);
    super::sync::live_changes(d, sync, &b.sync);
    d.value("log.level", log_level, &b.log_level, String::clone);
    super::jobs::changes(d, jobs, &b.jobs);
}

pub(super) fn dur(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

pub(super) fn debug<T: std::fmt::Debug>(v: &T) -> String {
    format!("{v:?}")
}

pub(super) fn or_unset(v: Option<&str>) -> &str {
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

    /// Every key of the fixed half changed (`ice_testkit::fixed_keys`, shared with the
    /// daemon's SIGHUP test), as variables: the files it names in `dir`.
    fn fixed_changes(dir: &std::path::Path) -> Vec<(&'static str, String, String)> {
        for file in ["keys", "token"] {
            std::fs::write(dir.join(file), "x\n").expect("a file the keys name");
        }
        ice_testkit::fixed_keys::FIXED_KEYS
            .iter()
            .map(|k| {
                let (var, value) = k.variable();
                let value = value
                    .replace("{dir}", &dir.display().to_string())
                    .replace("{callback_port}", "9188")
                    .replace("{db_url}", "postgres://u@h:5432/a");
                (k.key, var, value)
            })
            .collect()
    }

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

    fn with<V: AsRef<str>>(base: &[(&str, &str)], extra: &[(&str, V, V)]) -> Settings {
        let mut env: Vec<(&str, &str)> = base.to_vec();
        for (_, var, value) in extra {
            env.retain(|(k, _)| *k != var.as_ref());
            env.push((var.as_ref(), value.as_ref()));
        }
        settings(&env)
    }

    const PG_BASE: &[(&str, &str)] = &[("ICE_SYNC__DATABASE__URL", "postgres://u@h:6432/a")];

    #[test]
    fn every_fixed_key_needs_a_restart() {
        let dir = tempfile::tempdir().expect("dir");
        let fixed = fixed_changes(dir.path());
        let old = with::<&str>(PG_BASE, &[]);
        let new = with(PG_BASE, &fixed);
        let plan = changes(&old, &new);
        let restart: Vec<&str> = plan.needs_restart().map(|c| c.key.as_str()).collect();
        let mut expected: Vec<&str> = fixed.iter().map(|(k, _, _)| *k).collect();
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
        let old = with::<&str>(&[], &[]);
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
