//! Order and time (issue "One clock, one order"): each everyday situation that made the
//! history silently wrong or stale, as a test on both backends. Clock steps and replica
//! skew of real processes are in `clocks` (libfaketime); the scheduler's handling of
//! ticks is in `scheduler` (paused time).

use std::time::Duration;

use ice_sim::FaultConfig;
use ice_sync::clock::TestClock;
use ice_sync::sync::{CycleKind, CycleOutcome, Engine, EngineOptions};

use crate::on_both_backends;
use crate::support::{check_invariants, poll_now, s, spawn_app, spawn_app_with, Backend, TestApp};

on_both_backends!(
    run_once_polls_what_a_tick_now_would_however_recent,
    a_clock_step_back_does_not_stop_polling,
    a_slow_fetch_keeps_its_lease,
    overload_gives_every_project_its_turn,
    an_overrunning_cycle_stops_before_the_next_tick,
    a_lagging_list_never_writes_backwards,
    foreign_invalid_parameter_is_no_evidence_of_removal,
    mass_not_found_confirms_no_removal,
    one_refused_row_does_not_stop_the_cycle,
    a_nul_character_writes_one_row_not_one_per_poll,
);

/// An engine on the app's store with the production options (the 5-minute default
/// schedule unless the app's settings say otherwise), adjusted by `customize`.
fn engine(app: &TestApp, customize: impl FnOnce(&mut EngineOptions)) -> Engine {
    let creds = ice_sync::app::resolve_credentials(&app.settings).expect("creds");
    let client = ice_sync::app::build_client(&app.settings, creds).expect("client");
    let mut options = ice_sync::app::engine_options(&app.settings);
    customize(&mut options);
    Engine::new(app.store().clone(), client, options)
}

/// Sleeps until 100 ms past the next tick of an every-`period`-seconds schedule, so a
/// cycle started then has the whole period before the next tick.
async fn just_after_a_tick(period: u64) {
    let now = chrono::Utc::now().timestamp_millis() as u64;
    let into = now % (period * 1000);
    tokio::time::sleep(Duration::from_millis(period * 1000 - into + 100)).await;
}

/// History rows as (previous status, status), in order, for one project.
async fn transitions(app: &TestApp, id: &str) -> Vec<(Option<String>, Option<String>)> {
    app.history(id)
        .await
        .into_iter()
        .map(|(_, prev, status, _, _)| (prev, status))
        .collect()
}

async fn run_once_polls_what_a_tick_now_would_however_recent(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sim.add_regular("producing");
    app.sim.set_status("producing", Some("Producing"), None);
    app.sim.add_regular("produced");
    app.sim.set_status("produced", Some("Produced"), None);
    app.track(&["producing", "produced"]).await;
    let engine = engine(&app, |_| {});
    let first = engine.run(CycleKind::Once, &app.shutdown).await;
    assert_eq!(
        (first.polled, first.outcome),
        (2, CycleOutcome::Success),
        "{first:?}"
    );
    // Right away again, as a cron job or a user re-running it would: the transient project
    // is polled again; the settled one waits for its interval.
    let second = engine.run(CycleKind::Once, &app.shutdown).await;
    assert_eq!(second.polled, 1, "{second:?}");
    assert_eq!(
        (app.sim.calls("producing"), app.sim.calls("produced")),
        (2, 1)
    );
    // A scheduled cycle in the same period polls nothing (the tick already did).
    assert_eq!(engine.run_cycle(&app.shutdown).await.polled, 0);
    // --all: every enabled project, due or not.
    let all = engine.run(CycleKind::All, &app.shutdown).await;
    assert_eq!(all.polled, 2, "{all:?}");
    // A failing transient project is polled again only when its backoff has passed.
    app.sim.set_faults(FaultConfig {
        server_error: 1.0,
        ..Default::default()
    });
    let failing = engine.run(CycleKind::Once, &app.shutdown).await;
    assert_eq!((failing.polled, failing.failures), (1, 1), "{failing:?}");
    let backing_off = engine.run(CycleKind::Once, &app.shutdown).await;
    assert_eq!(backing_off.polled, 0, "{backing_off:?}");
}

async fn a_clock_step_back_does_not_stop_polling(backend: Backend) {
    let app = spawn_app_with(backend, &[("ICE_SYNC__SYNC__SCHEDULE", "*/2 * * * * *")]).await;
    let ids = app.sim.populate(6, 0);
    for id in &ids {
        app.sim.set_status(id, Some("Producing"), None);
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.track(&refs).await;
    let clock = TestClock::starting_at(chrono::Utc::now());
    let engine = engine(&app, |_| {}).with_clock(clock.clone());
    just_after_a_tick(2).await;
    assert_eq!(engine.run_cycle(&app.shutdown).await.polled, 6);
    // NTP steps the clock back ten minutes; the next ticks still poll everything.
    clock.step(chrono::Duration::minutes(-10));
    for round in 0..2 {
        just_after_a_tick(2).await;
        let r = engine.run_cycle(&app.shutdown).await;
        assert_eq!((r.polled, r.failures), (6, 0), "round {round}: {r:?}");
    }
    // Every poll's observation is ordered after the one before it.
    let out_of_order = app
        .count(
            "SELECT COUNT(*) FROM editing_project_history a JOIN editing_project_history b \
             ON a.project_id = b.project_id AND b.seq = a.seq + 1 WHERE b.observed_at <= a.observed_at",
        )
        .await;
    assert_eq!(out_of_order, 0);
    check_invariants(app.store()).await;
}

async fn a_slow_fetch_keeps_its_lease(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sim.add_regular("slow1");
    app.track(&["slow1"]).await;
    // The fetch takes 2.5 s; the lease is 1 s and must be renewed meanwhile.
    app.sim.set_latency(Duration::from_millis(2_500));
    let options = |id: &'static str| {
        move |o: &mut EngineOptions| {
            o.replica_id = id.to_string();
            o.lease_ttl = Duration::from_secs(1);
            o.policy.schedule = None;
        }
    };
    let a = engine(&app, options("replica-a"));
    let b = engine(&app, options("replica-b"));
    let shutdown = app.shutdown.clone();
    let first = tokio::spawn(async move { a.run_cycle(&shutdown).await });
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    let second = b.run_cycle(&app.shutdown).await;
    assert_eq!(
        second.due, 0,
        "replica B claimed a project A is still fetching: {second:?}"
    );
    let first = first.await.expect("cycle");
    assert_eq!((first.polled, first.changed), (1, 1), "{first:?}");
    assert_eq!(app.sim.calls("slow1"), 1);
}

async fn overload_gives_every_project_its_turn(backend: Backend) {
    let app = spawn_app(backend).await;
    let ids = app.sim.populate(60, 0);
    for id in &ids {
        app.sim.set_status(id, Some("Producing"), None);
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.track(&refs).await;
    // About 15 polls fit in a cycle; 60 projects are due at every cycle.
    app.sim.set_latency(Duration::from_millis(100));
    let engine = engine(&app, |o| {
        o.sync.concurrency = 2;
        o.cycle_timeout = Some(Duration::from_millis(700));
        o.policy.schedule = None;
    });
    for _ in 0..5 {
        let r = engine.run_cycle(&app.shutdown).await;
        assert_eq!(r.outcome, CycleOutcome::Partial, "{r:?}");
    }
    let calls: Vec<u64> = ids.iter().map(|id| app.sim.calls(id)).collect();
    let (min, max) = (calls.iter().min().copied(), calls.iter().max().copied());
    assert!(min >= Some(1), "some projects were never polled: {calls:?}");
    assert!(
        max <= Some(2),
        "some projects were polled over and over: {calls:?}"
    );
}

async fn an_overrunning_cycle_stops_before_the_next_tick(backend: Backend) {
    let app = spawn_app_with(backend, &[("ICE_SYNC__SYNC__SCHEDULE", "*/2 * * * * *")]).await;
    let ids = app.sim.populate(40, 0);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.track(&refs).await;
    app.sim.set_latency(Duration::from_millis(150));
    let engine = engine(&app, |o| o.sync.concurrency = 1);
    // 40 polls at 150 ms do not fit in a 2 s period.
    just_after_a_tick(2).await;
    let r = engine.run_cycle(&app.shutdown).await;
    assert!(r.overran, "{r:?}");
    assert_eq!(r.outcome, CycleOutcome::Partial, "{r:?}");
    assert!(r.polled > 0 && r.polled < 40, "{r:?}");
    assert!(
        r.duration < Duration::from_secs(2),
        "it must end before the next tick: {r:?}"
    );
    assert_eq!(
        app.rows("SELECT CASE WHEN overran THEN 'yes' ELSE 'no' END, outcome FROM sync_runs")
            .await,
        vec![vec![s("yes"), s("partial")]]
    );
    // The next cycle starts with those left waiting.
    just_after_a_tick(2).await;
    let next = engine.run_cycle(&app.shutdown).await;
    let polled_twice = ids.iter().filter(|id| app.sim.calls(id) == 2).count();
    assert_eq!(polled_twice, 0, "{next:?}");
}

async fn a_lagging_list_never_writes_backwards(backend: Backend) {
    let app = spawn_app_with(backend, &[("ICE_SYNC__SYNC__MODE", "list")]).await;
    let ids = app.sim.populate(30, 0);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.track(&refs).await;
    let engine = engine(&app, |o| o.policy.schedule = None);
    engine.run_cycle(&app.shutdown).await;
    // The list index lags: it keeps showing the old statuses while projects move on.
    app.sim.lag_list();
    for _ in 0..3 {
        app.sim.advance_random(0.5);
        // A full fetch of every project, as the list's full refresh would do, through
        // the production path: a request, then a refresh cycle.
        let full = poll_now(&engine, &ids).await;
        assert_eq!(full.polled, ids.len(), "{full:?}");
        engine.run_cycle(&app.shutdown).await;
    }
    app.sim.unlag_list();
    engine.run_cycle(&app.shutdown).await;
    // No transition backwards and forwards again: each row is a real change, chained.
    let histories = check_invariants(app.store()).await;
    for id in &ids {
        let truth = app.sim.project(id).expect("project");
        let last = histories.get(id).and_then(|h| h.last()).cloned();
        assert_eq!(last, Some((truth.status, truth.business_status)), "{id}");
        let h = transitions(&app, id).await;
        let back = h.windows(2).any(|w| w[1].1 == w[0].0 && w[1].0 == w[0].1);
        assert!(!back, "{id} went backwards: {h:?}");
    }
}

async fn foreign_invalid_parameter_is_no_evidence_of_removal(backend: Backend) {
    let app = spawn_app(backend).await;
    let ids = app.sim.populate(10, 0);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.track(&refs).await;
    app.cycle().await;
    // A proxy or an API change answers InvalidParameter for another parameter, always.
    app.sim.set_faults(FaultConfig {
        foreign_invalid_parameter: 1.0,
        ..Default::default()
    });
    for _ in 0..3 {
        let r = app.cycle().await;
        assert_eq!((r.removed, r.failures), (0, 10), "{r:?}");
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM editing_projects WHERE removed_at IS NOT NULL")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM tracked_projects WHERE not_found_count > 0")
            .await,
        0
    );
}

async fn mass_not_found_confirms_no_removal(backend: Backend) {
    let app = spawn_app(backend).await;
    let ids = app.sim.populate(10, 0);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.track(&refs).await;
    app.cycle().await;
    // Eight of ten answer "not found", cycle after cycle.
    let gone: Vec<_> = ids[..8]
        .iter()
        .filter_map(|id| app.sim.remove(id))
        .collect();
    for _ in 0..3 {
        let r = app.cycle().await;
        assert_eq!(r.removed, 0, "{r:?}");
        let why = r.error.unwrap_or_default();
        assert!(
            why.contains("8 of 10 projects answered \"not found\""),
            "{why}"
        );
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM editing_project_history WHERE event = 'removed'")
            .await,
        0
    );
    // One project really deleted among healthy ones is removed after two confirmations.
    for p in gone.into_iter().skip(1) {
        app.sim.restore(p);
    }
    app.cycle().await;
    let r = app.cycle().await;
    assert_eq!(r.removed, 1, "{r:?}");
    check_invariants(app.store()).await;
}

async fn one_refused_row_does_not_stop_the_cycle(backend: Backend) {
    let app = spawn_app(backend).await;
    let ids = app.sim.populate(20, 0);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.track(&refs).await;
    // The database refuses one project's row (a constraint an operator added, say;
    // SQLite cannot add a CHECK to a table, so a trigger refuses it there).
    let bad = ids[7].clone();
    app.execute(&match backend {
        Backend::Postgres => format!(
            "ALTER TABLE editing_project_rows ADD CONSTRAINT no_bad CHECK (project_id <> '{bad}')"
        ),
        Backend::Sqlite => format!(
            "CREATE TRIGGER no_bad BEFORE INSERT ON editing_project_rows WHEN NEW.project_id = '{bad}' \
             BEGIN SELECT RAISE(ABORT, 'refused by a constraint'); END"
        ),
    })
    .await;
    let r = app.cycle().await;
    assert_eq!(r.outcome, CycleOutcome::Partial, "{r:?}");
    assert_eq!((r.polled, r.changed, r.failures), (20, 19, 1), "{r:?}");
    let error = app
        .rows(&format!(
            "SELECT last_error FROM tracked_projects WHERE project_id = '{bad}'"
        ))
        .await;
    assert!(
        error[0][0]
            .as_deref()
            .is_some_and(|e| e.contains("refused")),
        "{error:?}"
    );
    // And the next cycle goes on as usual.
    let again = app.cycle().await;
    assert_eq!((again.polled, again.failures), (20, 1), "{again:?}");
}

async fn a_nul_character_writes_one_row_not_one_per_poll(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut p = app.sim.add_regular("nul1");
    p.title = Some("before\0after".into());
    p.status = Some("Editing\0".into());
    app.sim.insert(p);
    app.track(&["nul1"]).await;
    for _ in 0..3 {
        app.cycle().await;
    }
    assert_eq!(
        app.rows("SELECT status FROM editing_project_history WHERE project_id = 'nul1'")
            .await,
        vec![vec![s("Editing\u{FFFD}")]]
    );
}

/// A tmpfs mounted for one test, unmounted when dropped (also when the test fails).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = std::env::temp_dir().join(format!("ice-sync-full-{}", rand::random::<u32>()));
        std::fs::create_dir_all(&dir).expect("dir");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "mounting a tmpfs needs root (scripts/test runs as root in CI)"
        );
        Tmpfs(dir)
    }

    fn resize(&self, size: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remounting the tmpfs failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// SQLite on a full disk: the cycle fails and stops fetching at once; when space comes
/// back, the very next cycle succeeds (no connection is left in a broken transaction).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_cycle_and_the_next_one_recovers_sqlite() {
    let fs = Tmpfs::mount("2m");
    let sim = ice_sim::Simulator::start(Default::default())
        .await
        .expect("sim");
    let ids = sim.populate(3_000, 0);
    let url = format!("sqlite://{}/ice-sync.db?mode=rwc", fs.0.display());
    let settings = ice_sync::config::load_from(None, crate::support::env_for(&url, &sim, &[]))
        .expect("settings");
    let engine = ice_sync::app::Daemon::builder(&settings)
        .tune(|o| o.policy.schedule = None)
        .engine()
        .await
        .expect("engine");
    let store = engine.store().clone();
    let now = ice_sync::app::now(&store).await.expect("now");
    store
        .tracking()
        .track_add(&crate::support::project_ids(&ids), "cli", now)
        .await
        .expect("track");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let full = engine.run_cycle(&shutdown).await;
    assert_eq!(full.outcome, CycleOutcome::Failed, "{full:?}");
    assert!(
        full.error
            .as_deref()
            .is_some_and(|e| e.contains("database unavailable")),
        "{full:?}"
    );
    let spent = sim.calls_by_action("GetEditingProject");
    assert!(
        spent < 1_500,
        "{spent} API calls spent on answers that could not be stored"
    );
    fs.resize("50m");
    let recovered = engine.run_cycle(&shutdown).await;
    assert_ne!(recovered.outcome, CycleOutcome::Failed, "{recovered:?}");
    let stored = store
        .query_i64("SELECT COUNT(*) FROM editing_projects")
        .await
        .expect("count");
    assert_eq!(stored, 3_000, "{recovered:?}");
    check_invariants(&store).await;
    store.close().await;
}
