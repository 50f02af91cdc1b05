//! Gap flags and staleness, end to end on SQLite and PostgreSQL: the simulator scripts
//! status jumps between cycles of the real engine, the history and the intervals view
//! say which states were skipped, the gap metric counts them; the staleness read and
//! gauges follow a test clock (or an explicit `now`, where the database's clock stamps
//! the polls); `ice-sync status --stale` runs as the built binary.

use std::process::{Command, Stdio};
use std::sync::Arc;

use ice_sim::{Simulator, SimulatorConfig};
use ice_sync::app;
use ice_sync::clock::{SharedClock, TestClock};
use ice_sync::config::{self, Settings};
use ice_sync::domain::{ProjectId, Timestamp};
use ice_sync::ops::staleness::{self, Staleness};
use ice_sync::storage::{sql, StaleRow, Store};
use ice_sync::sync::Engine;
use ice_testkit::{Backend, ChildGuard, TestDatabase};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

use crate::on_both_backends;

on_both_backends!(
    a_skipped_state_is_flagged_and_a_direct_neighbour_is_not,
    staleness_follows_the_clock_and_leaves_settled_projects_out,
    the_staleness_read_is_two_index_probes,
    status_stale_lists_projects_not_polled_within_the_duration,
);

/// Metrics are process-wide: the tests here that read them take turns.
static METRICS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn recorder() -> PrometheusHandle {
    ice_sync::ops::metrics::install().expect("metrics recorder")
}

/// The value of the sample line starting with `prefix ` (0 when absent).
fn sample(handle: &PrometheusHandle, prefix: &str) -> f64 {
    handle
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

struct Setup {
    sim: Simulator,
    engine: Arc<Engine>,
    env: Vec<(String, String)>,
    /// Declared last: dropped (and the database removed) after the engine.
    db: TestDatabase,
}

impl Setup {
    async fn new(backend: Backend, clock: Option<SharedClock>) -> Setup {
        let sim = Simulator::start(SimulatorConfig::default())
            .await
            .expect("simulator starts");
        let db = TestDatabase::new(backend).await;
        let cfg = SimulatorConfig::default();
        let env: Vec<(String, String)> = [
            ("ICE_SYNC__DATABASE__URL", db.url.clone()),
            ("ICE_SYNC__ICE__ENDPOINT", sim.endpoint()),
            ("ICE_SYNC__ICE__ACCESS_KEY_ID", cfg.access_key_id),
            ("ICE_SYNC__ICE__ACCESS_KEY_SECRET", cfg.access_key_secret),
            ("ICE_SYNC__SYNC__MAX_QPS", "0".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let settings: Settings = config::load_from(None, env.clone()).expect("settings");
        let store = app::open_store(&settings).await.expect("store");
        let engine = engine(&settings, store, clock);
        Setup {
            sim,
            engine: Arc::new(engine),
            env,
            db,
        }
    }

    /// Another engine on the same store, as a process started now would have: it has
    /// not watched the test clock, so to it the clock's steps so far are time that
    /// passed, not steps of the system clock (which, on SQLite, move the recorded times
    /// of projects the next cycle does not poll).
    fn fresh_engine(&self, clock: SharedClock) -> Engine {
        let settings: Settings = config::load_from(None, self.env.clone()).expect("settings");
        engine(&settings, self.store().clone(), Some(clock))
    }

    fn store(&self) -> &Store {
        self.engine.store()
    }

    async fn track(&self, ids: &[&str], now: Timestamp) {
        let ids: Vec<ProjectId> = ids.iter().map(|i| pid(i)).collect();
        self.store()
            .tracking()
            .track_add(&ids, "test", now)
            .await
            .expect("track");
    }

    async fn cycle(&self) {
        let report = self.engine.run_cycle(&CancellationToken::new()).await;
        assert_eq!(report.failures, 0, "{report:?}");
    }

    async fn skipped(&self, id: &str) -> Vec<Option<String>> {
        self.store()
            .reads()
            .history(&pid(id))
            .await
            .expect("history")
            .into_iter()
            .map(|h| h.skipped_states)
            .collect()
    }

    /// Every enabled project with its typed poll times.
    async fn tracked(&self, id: &str) -> StaleRow {
        let far = Timestamp::parse("2999-01-01T00:00:00Z").expect("ts");
        self.store()
            .reads()
            .stale(far)
            .await
            .expect("stale")
            .into_iter()
            .find(|r| r.project_id.as_str() == id)
            .unwrap_or_else(|| panic!("{id} is not tracked"))
    }

    async fn shutdown(self) {
        self.store().close().await;
        self.sim.shutdown().await;
    }
}

/// The clock that stamps polls: the database's on PostgreSQL, the test's on SQLite.
async fn now(store: &Store, clock: &Arc<TestClock>) -> Timestamp {
    match store.database_now().await.expect("database clock") {
        Some(now) => now,
        None => Timestamp::from(ice_sync::clock::Clock::now(&**clock)),
    }
}

/// The production engine for `settings` on `store`, with cycles driven by hand.
fn engine(settings: &Settings, store: Store, clock: Option<SharedClock>) -> Engine {
    let credentials = app::resolve_credentials(settings).expect("credentials");
    let client = app::build_client(settings, credentials).expect("client");
    let mut options = app::engine_options(settings);
    // Every project is due at every cycle.
    options.policy.schedule = None;
    let engine = Engine::new(store, client, options);
    match clock {
        Some(clock) => engine.with_clock(clock),
        None => engine,
    }
}

fn pid(id: &str) -> ProjectId {
    ProjectId::parse(id).expect("valid id")
}

fn secs(s: i64) -> chrono::Duration {
    chrono::Duration::seconds(s)
}

fn text(v: &[Option<&str>]) -> Vec<Option<String>> {
    v.iter().map(|s| s.map(str::to_string)).collect()
}

async fn a_skipped_state_is_flagged_and_a_direct_neighbour_is_not(backend: Backend) {
    let handle = recorder();
    let _turn = METRICS.lock().await;
    let s = Setup::new(backend, None).await;
    s.sim.add_regular("gap");
    s.sim.add_regular("step");
    s.sim.add_live("live");
    s.track(&["gap", "step", "live"], Timestamp::now()).await;
    s.cycle().await;
    s.sim.set_status("gap", Some("Editing"), None);
    s.sim.set_status("step", Some("Editing"), None);
    s.cycle().await;

    let producing = "ice_sync_gap_transitions_total{skipped=\"Producing\"}";
    let broadcasting = "ice_sync_gap_transitions_total{skipped=\"BroadCasting\"}";
    let before = (sample(&handle, producing), sample(&handle, broadcasting));
    // Producing and BroadCasting both pass between two polls.
    s.sim.set_status("gap", Some("Produced"), None);
    s.sim.set_status("step", Some("Producing"), None);
    s.sim.set_status("live", None, Some("LiveFinished"));
    s.cycle().await;
    s.sim.set_status("step", Some("Produced"), None);
    s.cycle().await;
    // Nothing changed upstream: no row, nothing counted.
    s.cycle().await;
    let after = (sample(&handle, producing), sample(&handle, broadcasting));
    // Other tests in this binary may record gaps meanwhile: at least this test's own.
    assert!(
        after.0 - before.0 >= 1.0 && after.1 - before.1 >= 1.0,
        "gap metric: {before:?} -> {after:?}"
    );

    assert_eq!(
        s.skipped("gap").await,
        text(&[None, None, Some("Producing")])
    );
    assert_eq!(s.skipped("step").await, text(&[None, None, None, None]));
    assert_eq!(s.skipped("live").await, text(&[None, Some("BroadCasting")]));
    let flagged = s
        .store()
        .query_i64("SELECT count(*) FROM editing_project_history WHERE skipped_states IS NOT NULL")
        .await
        .expect("count");
    assert_eq!(flagged, 2);

    // The intervals view carries the gap on both stretches around it.
    let intervals = s
        .store()
        .query_table(
            "SELECT project_id, status, business_status, skipped_on_entry, skipped_on_exit
             FROM editing_project_status_intervals ORDER BY project_id, entered_at",
        )
        .await
        .expect("intervals");
    let row = |v: [Option<&str>; 5]| text(&v);
    assert_eq!(
        intervals.rows,
        vec![
            row([Some("gap"), Some("Draft"), None, None, None]),
            row([Some("gap"), Some("Editing"), None, None, Some("Producing")]),
            row([Some("gap"), Some("Produced"), None, Some("Producing"), None]),
            row([
                Some("live"),
                Some("Editing"),
                Some("Reserving"),
                None,
                Some("BroadCasting")
            ]),
            row([
                Some("live"),
                Some("Editing"),
                Some("LiveFinished"),
                Some("BroadCasting"),
                None
            ]),
            row([Some("step"), Some("Draft"), None, None, None]),
            row([Some("step"), Some("Editing"), None, None, None]),
            row([Some("step"), Some("Producing"), None, None, None]),
            row([Some("step"), Some("Produced"), None, None, None]),
        ]
    );
    // Analysts' "durations I can trust": the stretches that lost no state on exit.
    let trusted = s
        .store()
        .query_i64(
            "SELECT count(*) FROM editing_project_status_intervals
             WHERE left_at IS NOT NULL AND skipped_on_exit IS NULL",
        )
        .await
        .expect("count");
    assert_eq!(trusted, 4);
    s.shutdown().await;
}

async fn staleness_follows_the_clock_and_leaves_settled_projects_out(backend: Backend) {
    // Its `Draft -> Produced` is a gap too: counted while the gap test is not counting.
    let handle = recorder();
    let _turn = METRICS.lock().await;
    let clock = TestClock::starting_at(chrono::Utc::now());
    let s = Setup::new(backend, Some(clock.clone())).await;
    let store = s.store().clone();
    let database_clock = store.uses_database_clock();
    s.sim.add_regular("a");
    s.sim.add_regular("b");
    s.track(&["a", "b"], now(&store, &clock).await).await;

    // Never polled: counted from when they were tracked.
    let added = s.tracked("a").await.added_at;
    let oldest = store.reads().oldest_observations().await.expect("oldest");
    assert_eq!((oldest.every_tick, oldest.other), (Some(added), None));
    let ages = staleness::ages(&oldest, added.shifted(secs(45)));
    assert_eq!((ages.unsettled, ages.all), (45.0, 45.0));

    s.cycle().await;
    let (a, b) = (s.tracked("a").await, s.tracked("b").await);
    let polled = a.last_attempt_at.min(b.last_attempt_at).expect("polled");
    let oldest = store.reads().oldest_observations().await.expect("oldest");
    assert_eq!((oldest.every_tick, oldest.other), (Some(polled), None));

    // `a` settles: it leaves the unsettled set, and `all` still sees it.
    s.sim.set_status("a", Some("Produced"), None);
    clock.step(secs(60));
    s.cycle().await;
    let a_polled = s.tracked("a").await.last_attempt_at.expect("a polled");
    assert!(!s.tracked("a").await.every_tick);
    clock.step(secs(120));
    // Polled on its own, the way `ice-sync refresh b` polls it (a request, then a
    // refresh cycle), by an engine to which these 120 s passed.
    let r = crate::support::poll_now(&s.fresh_engine(clock.clone()), &["b"]).await;
    assert_eq!(
        r.outcome,
        ice_sync::sync::CycleOutcome::Success,
        "poll of b: {r:?}"
    );
    assert_eq!(
        (r.polled, r.failures, r.fenced, r.removed),
        (1, 0, 0, 0),
        "poll of b: {r:?}"
    );
    let b_polled = s.tracked("b").await.last_attempt_at.expect("b polled");
    let oldest = store.reads().oldest_observations().await.expect("oldest");
    assert_eq!(
        (oldest.every_tick, oldest.other),
        (Some(b_polled), Some(a_polled))
    );
    let at = b_polled.shifted(secs(30));
    let ages = staleness::ages(&oldest, at);
    let a_age = (at.as_datetime() - a_polled.as_datetime()).num_milliseconds() as f64 / 1000.0;
    assert_eq!((ages.unsettled, ages.all), (30.0, a_age));
    if !database_clock {
        assert!(a_age >= 150.0, "the test clock moved a's age: {a_age}");
    }

    // The gauges, read as a scrape reads them, move with the test clock (SQLite) or
    // stay within a moment of the database's (PostgreSQL).
    let gauge = |set: &str| {
        sample(
            &handle,
            &format!("ice_sync_oldest_observation_age_seconds{{projects=\"{set}\"}}"),
        )
    };
    let staleness = Staleness::new(store.clone(), clock.clone());
    let first = staleness.refresh().await.expect("refresh");
    assert_eq!(
        (gauge("unsettled"), gauge("all")),
        (first.unsettled, first.all)
    );
    clock.step(secs(600));
    let later = staleness.refresh().await.expect("refresh");
    assert_eq!(
        (gauge("unsettled"), gauge("all")),
        (later.unsettled, later.all)
    );
    if database_clock {
        assert!(later.unsettled < 60.0, "{later:?}");
        assert!(later.all >= later.unsettled, "{later:?}");
    } else {
        let moved = later.unsettled - first.unsettled;
        assert!((600.0..605.0).contains(&moved), "{first:?} -> {later:?}");
        // a was polled 120 s (and a moment) before b.
        assert!(
            (later.all - later.unsettled - 120.0).abs() < 5.0,
            "{later:?}"
        );
    }
    s.shutdown().await;
}

async fn the_staleness_read_is_two_index_probes(backend: Backend) {
    let s = Setup::new(backend, None).await;
    let store = s.store();
    // Enough rows that a planner with statistics prefers the index on its own.
    let fill = match backend {
        Backend::Postgres => {
            "INSERT INTO tracked_projects (project_id, added_at, source, enabled, every_tick,
                 last_attempt_at, next_poll_at)
             SELECT 'p' || i, now(), 'test', i % 10 <> 0, i % 3 = 0,
                    CASE WHEN i % 7 = 0 THEN NULL ELSE now() - i * interval '1 second' END, now()
             FROM generate_series(1, 20000) AS i;
             ANALYZE tracked_projects;"
        }
        Backend::Sqlite => {
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
             INSERT INTO tracked_projects (project_id, added_at, source, enabled, every_tick,
                 last_attempt_at, next_poll_at)
             SELECT 'p' || i, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'test', i % 10 <> 0,
                    i % 3 = 0,
                    CASE WHEN i % 7 = 0 THEN NULL
                         ELSE strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || i || ' seconds') END,
                    strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             FROM n;
             ANALYZE;"
        }
    };
    s.db.execute_script(fill).await.expect("fill");
    let explain = match backend {
        Backend::Postgres => format!("EXPLAIN {}", sql::OLDEST_OBSERVATIONS),
        Backend::Sqlite => format!("EXPLAIN QUERY PLAN {}", sql::OLDEST_OBSERVATIONS),
    };
    let plan: String = store
        .query_table(&explain)
        .await
        .expect("explain")
        .rows
        .iter()
        .map(|r| r.iter().flatten().cloned().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        plan.matches("tracked_projects_observed_idx").count(),
        2,
        "{plan}"
    );
    for scan in ["Seq Scan", "Sort", "USE TEMP B-TREE"] {
        assert!(!plan.contains(scan), "{scan} in:\n{plan}");
    }
    assert!(
        !plan
            .lines()
            .any(|l| l.trim_end().ends_with("SCAN tracked_projects")),
        "a full scan in:\n{plan}"
    );
    // And the answer is right: the oldest of each set (never-polled rows count from
    // added_at, which is newer than every attempt here).
    let oldest = store.reads().oldest_observations().await.expect("oldest");
    // Polled i seconds ago: the oldest of a set is its largest polled, enabled i.
    let oldest_of = |every_tick: bool| {
        (1..=20000)
            .filter(|i| i % 10 != 0 && i % 7 != 0 && (i % 3 == 0) == every_tick)
            .max()
            .map(|i| format!("p{i}"))
            .expect("some")
    };
    for (got, every_tick) in [(oldest.every_tick, true), (oldest.other, false)] {
        let row = s.tracked(&oldest_of(every_tick)).await;
        assert!(got.is_some(), "every_tick = {every_tick}");
        assert_eq!(got, row.last_attempt_at, "every_tick = {every_tick}");
    }
    s.shutdown().await;
}

async fn status_stale_lists_projects_not_polled_within_the_duration(backend: Backend) {
    let s = Setup::new(backend, None).await;
    for id in ["fresh", "old", "never"] {
        s.sim.add_regular(id);
    }
    s.track(&["fresh", "old"], Timestamp::now()).await;
    s.cycle().await;
    // `old` was last polled long ago, `never` tracked long ago and never polled.
    s.db.execute_script(
        "UPDATE tracked_projects SET last_attempt_at = '2020-01-01T00:00:00.000Z'
             WHERE project_id = 'old'",
    )
    .await
    .expect("age old");
    let long_ago = Timestamp::parse("2021-06-01T00:00:00Z").expect("ts");
    s.track(&["never"], long_ago).await;

    let out = ice_sync(&s.env, &["status", "--stale", "10m"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<&str> = stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| ["fresh", "old", "never"].contains(w))
        .collect();
    assert_eq!(listed, ["old", "never"], "oldest first:\n{stdout}");
    assert!(stdout.contains("2020-01-01 00:00:00"), "{stdout}");
    assert!(
        stdout.contains("never (tracked 2021-06-01 00:00:00)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 enabled project(s) not polled within 10m"),
        "{stdout}"
    );

    // Command-line durations share the configuration's bound (a year): an absurd one is
    // a clear refusal, not a silently empty list.
    let out = ice_sync(&s.env, &["status", "--stale", "100years"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is longer than"), "{stderr}");

    let out = ice_sync(&s.env, &["status", "--stale", "soon"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    s.shutdown().await;
}

/// The built binary with exactly `env`, under a guard that kills it if the test fails.
fn ice_sync(env: &[(String, String)], args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ice-sync"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    ChildGuard::spawn(&mut cmd)
        .expect("start ice-sync")
        .wait_with_output()
        .expect("ice-sync output")
}
