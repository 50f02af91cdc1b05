//! List mode: change detection from `ListEditingProjects`, discovery, and the promise
//! that it records the same history as get mode for a fraction of the API calls.

use std::sync::Arc;

use ice_sync::app;
use ice_sync::config;
use ice_sync::sync::engine::Engine;

use crate::on_both_backends;
use crate::support::{check_invariants, env_for, spawn_app, Backend, TestApp, TestDatabase};

on_both_backends!(
    list_mode_records_the_same_history_as_get_mode,
    list_mode_costs_pages_plus_changes,
    discovery_tracks_what_the_filtered_list_shows,
);

/// A list-mode daemon on its own database, against `app`'s simulator, with the
/// production schedule so full refreshes are spread over a day.
async fn list_engine(
    app: &TestApp,
    backend: Backend,
    extra: &[(&str, &str)],
) -> (Arc<Engine>, TestDatabase) {
    let db = TestDatabase::new(backend).await;
    let mut env = vec![("ICE_SYNC__SYNC__MODE", "list")];
    env.extend_from_slice(extra);
    let settings = config::load_from(None, env_for(&db.url, &app.sim, &env)).expect("settings");
    crate::support::clear_of_the_claim_margin().await;
    let engine = app::Daemon::builder(&settings)
        .engine()
        .await
        .expect("engine");
    (engine, db)
}

async fn list_mode_records_the_same_history_as_get_mode(backend: Backend) {
    let app = spawn_app(backend).await; // get mode, every project every cycle
    let ids = app.sim.populate(240, 60);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.track(&refs).await;
    let (list, _db) = list_engine(&app, backend, &[]).await;
    list.store()
        .tracking()
        .track_add(
            &crate::support::project_ids(&ids),
            "cli",
            ice_sync::domain::Timestamp::now(),
        )
        .await
        .expect("track");
    for cycle in 0..8 {
        if cycle > 0 {
            app.sim.advance_random(0.2);
        }
        let g = app.cycle().await;
        let l = list.run_cycle(&app.shutdown).await;
        assert_eq!(
            g.transitions, l.transitions,
            "cycle {cycle}: get {g:?} list {l:?}"
        );
    }
    let by_get = check_invariants(app.store()).await;
    let by_list = check_invariants(list.store()).await;
    assert_eq!(by_get, by_list, "same script, same history");
    // The full rows agree too: the list's changes were refreshed by GetEditingProject.
    let row_sql =
        "SELECT project_id, status, business_status, title, timeline, duration, cover_url \
                   FROM editing_projects ORDER BY project_id";
    assert_eq!(
        crate::support::rows(app.store(), row_sql).await,
        crate::support::rows(list.store(), row_sql).await
    );
}

async fn list_mode_costs_pages_plus_changes(backend: Backend) {
    // ICE_SYNC_LIST_PROJECTS=10000 reproduces the 10,000-project figure.
    let n: usize = std::env::var("ICE_SYNC_LIST_PROJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let app = spawn_app(backend).await;
    let ids = app.sim.populate(n - n / 10, n / 10);
    let (list, _db) = list_engine(&app, backend, &[]).await;
    list.store()
        .tracking()
        .track_add(
            &crate::support::project_ids(&ids),
            "cli",
            ice_sync::domain::Timestamp::now(),
        )
        .await
        .expect("track");
    let first = list.run_cycle(&app.shutdown).await;
    assert_eq!(
        first.transitions, n as u64,
        "the first sweep sees everything"
    );
    let mut worst = 0u64;
    for _ in 0..3 {
        let (lists, gets) = (
            app.sim.calls_by_action("ListEditingProjects"),
            app.sim.calls_by_action("GetEditingProject"),
        );
        let moved = app.sim.advance_random(0.01) as u64;
        let r = list.run_cycle(&app.shutdown).await;
        let list_calls = app.sim.calls_by_action("ListEditingProjects") - lists;
        let get_calls = app.sim.calls_by_action("GetEditingProject") - gets;
        assert_eq!(list_calls, n.div_ceil(100) as u64, "100 projects per page");
        assert_eq!(get_calls, moved, "one fetch per changed project");
        assert_eq!(r.transitions, moved, "{r:?}");
        worst = worst.max(list_calls + get_calls);
    }
    println!("list mode ({backend:?}): at most {worst} API calls per cycle for {n} projects, 1% changing (get mode: {n})");
}

async fn discovery_tracks_what_the_filtered_list_shows(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sim.populate(30, 20);
    let (list, _db) = list_engine(
        &app,
        backend,
        &[
            ("ICE_SYNC__SYNC__DISCOVER", "true"),
            ("ICE_SYNC__SYNC__LIST__PROJECT_TYPE", "LiveEditingProject"),
        ],
    )
    .await;
    let r = list.run_cycle(&app.shutdown).await;
    assert_eq!(r.transitions, 20, "{r:?}");
    let tracked = list.store().tracking().track_list().await.expect("list");
    assert_eq!(tracked.len(), 20);
    assert!(tracked
        .iter()
        .all(|t| t.source == "discovered" && t.enabled));
    // Discovered projects were fetched in full (the list has no Timeline).
    let store = list.store();
    assert_eq!(
        crate::support::count(
            store,
            "SELECT COUNT(*) FROM editing_projects WHERE timeline IS NOT NULL AND project_type = 'LiveEditingProject'"
        )
        .await,
        20
    );
    // A second sweep with nothing new discovers nothing and fetches nothing.
    let gets = app.sim.calls_by_action("GetEditingProject");
    let again = list.run_cycle(&app.shutdown).await;
    assert_eq!((again.transitions, again.polled), (0, 0), "{again:?}");
    assert_eq!(app.sim.calls_by_action("GetEditingProject"), gets);
    check_invariants(store).await;
}

// A sweep longer than a cycle: small pages, a low max_qps and a 2-second schedule, so
// one sweep needs several cycles.

on_both_backends!(
    a_long_sweep_resumes_completes_and_records_every_change,
    claims_and_retries_run_in_every_cycle_of_a_sweep,
    a_refused_token_restarts_the_sweep_without_losing_changes,
);

const PERIOD_S: u64 = 2;
const SCHEDULE: &str = "*/2 * * * * *";

/// How a slow list engine is set up.
struct Slow {
    page_size: u32,
    max_qps: u32,
    replica: &'static str,
    lease_ttl: &'static str,
}

impl Default for Slow {
    fn default() -> Self {
        Self {
            page_size: 10,
            max_qps: 4,
            replica: "sweeper-a",
            lease_ttl: "60s",
        }
    }
}

/// A list-mode engine on `db` with a rate limit of `slow.max_qps`, after `ids` were
/// tracked and fetched once without one (so the cycles measured only see changes).
async fn slow_list_engine(
    sim: &ice_sim::Simulator,
    db: &TestDatabase,
    ids: &[String],
    slow: &Slow,
) -> Arc<Engine> {
    let env = |qps: u32| {
        env_for(
            &db.url,
            sim,
            &[
                ("ICE_SYNC__SYNC__MODE", "list"),
                ("ICE_SYNC__SYNC__SCHEDULE", SCHEDULE),
                ("ICE_SYNC__SYNC__REPLICA_ID", slow.replica),
                ("ICE_SYNC__SYNC__LEASE_TTL", slow.lease_ttl),
                ("ICE_SYNC__SYNC__MAX_QPS", &qps.to_string()),
            ],
        )
    };
    let page_size = slow.page_size;
    let small_pages = move |o: &mut ice_sync::sync::EngineOptions| {
        if let Some(list) = o.list.as_mut() {
            list.page_size = page_size;
        }
    };
    let fast_settings = config::load_from(None, env(0)).expect("settings");
    let fast = app::Daemon::builder(&fast_settings)
        .tune(small_pages)
        .engine()
        .await
        .expect("engine");
    if !ids.is_empty() {
        let now = app::now(fast.store()).await.expect("now");
        fast.store()
            .tracking()
            .track_add(&crate::support::project_ids(ids), "cli", now)
            .await
            .expect("track");
        let loaded = fast
            .run(
                ice_sync::sync::CycleKind::All,
                &tokio_util::sync::CancellationToken::new(),
            )
            .await;
        // At least these: on a slow machine the cycle's sweep leg may already have
        // discovered (and so polled) other projects of the simulator.
        assert!(loaded.polled >= ids.len(), "{loaded:?}");
    }
    let settings = config::load_from(None, env(slow.max_qps)).expect("settings");
    let cfg = ice_sim::SimulatorConfig::default();
    let client = ice_sync::ice::IceClient::new(
        app::client_options(&settings),
        ice_sync::credentials::Credentials {
            access_key_id: cfg.access_key_id,
            access_key_secret: cfg.access_key_secret.into(),
            security_token: None,
            source: "test".to_string(),
        },
    )
    .expect("client");
    let mut options = app::engine_options(&settings);
    small_pages(&mut options);
    Arc::new(fast.successor(client, options))
}

/// One scheduled cycle, started just after a tick so it has the period to itself.
async fn cycle_on_the_tick(engine: &Engine) -> ice_sync::sync::CycleReport {
    crate::support::align_to(PERIOD_S, std::time::Duration::from_millis(100)).await;
    engine
        .run_cycle(&tokio_util::sync::CancellationToken::new())
        .await
}

/// The `NextToken`s of the list requests, split into sweeps (each starts at page one).
fn sweeps_of(tokens: &[Option<String>]) -> Vec<Vec<Option<String>>> {
    let mut sweeps: Vec<Vec<Option<String>>> = Vec::new();
    for t in tokens {
        if t.is_none() || sweeps.is_empty() {
            sweeps.push(Vec::new());
        }
        if let Some(last) = sweeps.last_mut() {
            last.push(t.clone());
        }
    }
    sweeps
}

/// (pages, seconds) of every completed sweep, oldest first.
async fn completed_sweeps(store: &ice_sync::storage::Store, backend: Backend) -> Vec<(i64, f64)> {
    let seconds = match backend {
        Backend::Postgres => "EXTRACT(EPOCH FROM finished_at - started_at)::float8",
        Backend::Sqlite => "(julianday(finished_at) - julianday(started_at)) * 86400.0",
    };
    crate::support::rows(
        store,
        &format!(
            "SELECT pages, {seconds} FROM list_sweeps WHERE outcome = 'completed' ORDER BY id"
        ),
    )
    .await
    .into_iter()
    .map(|r| {
        let num = |i: usize| r[i].as_deref().and_then(|v| v.parse::<f64>().ok());
        (num(0).unwrap_or(-1.0) as i64, num(1).unwrap_or(-1.0))
    })
    .collect()
}

/// The stored (status, business_status) of a project.
async fn stored_pair(store: &ice_sync::storage::Store, id: &str) -> Vec<Vec<Option<String>>> {
    crate::support::rows(
        store,
        &format!("SELECT status, business_status FROM editing_projects WHERE project_id = '{id}'"),
    )
    .await
}

fn upstream_pair(sim: &ice_sim::Simulator, id: &str) -> Vec<Vec<Option<String>>> {
    let p = sim.project(id).expect("project");
    vec![vec![p.status, p.business_status]]
}

async fn a_long_sweep_resumes_completes_and_records_every_change(backend: Backend) {
    use std::time::Instant;
    let sim = ice_sim::Simulator::start(Default::default())
        .await
        .expect("sim");
    let ids = sim.populate(108, 12);
    let db = TestDatabase::new(backend).await;
    let slow = Slow::default();
    let engine = slow_list_engine(&sim, &db, &ids, &slow).await;
    let pages = ids.len().div_ceil(slow.page_size as usize) as i64;

    // Three projects change upstream before every cycle, each once.
    let mut fresh = ids.iter();
    let mut pending: Vec<(String, Instant)> = Vec::new();
    let mut lags: Vec<f64> = Vec::new();
    let mut cycles_per_sweep = Vec::new();
    let mut cycles = 0;
    let gets_before = sim.calls_by_action("GetEditingProject");
    while completed_sweeps(engine.store(), backend).await.len() < 2 {
        assert!(
            cycles < 20,
            "two sweeps of {pages} pages took over 20 cycles"
        );
        for id in fresh.by_ref().take(3) {
            assert!(sim.advance(id), "{id} can change");
            pending.push((id.clone(), Instant::now()));
        }
        let r = cycle_on_the_tick(&engine).await;
        cycles += 1;
        assert!(r.list_pages > 0, "every cycle sweeps: {r:?}");
        if r.sweeps_completed > 0 {
            cycles_per_sweep.push(cycles);
        }
        let mut still = Vec::new();
        for (id, changed) in pending {
            if stored_pair(engine.store(), &id).await == upstream_pair(&sim, &id) {
                lags.push(changed.elapsed().as_secs_f64());
            } else {
                still.push((id, changed));
            }
        }
        pending = still;
    }

    // Resumed, never repeated: each sweep asked for each page once, in one run of tokens.
    let tokens = sim.list_tokens();
    let sweeps = sweeps_of(&tokens);
    for (i, sweep) in sweeps.iter().enumerate() {
        let unique: std::collections::BTreeSet<_> = sweep.iter().collect();
        assert_eq!(unique.len(), sweep.len(), "sweep {i} fetched a page twice");
    }
    assert_eq!(sweeps[0].len() as i64, pages, "{sweeps:?}");
    assert_eq!(sweeps[1].len() as i64, pages, "{sweeps:?}");
    assert!(
        cycles_per_sweep[0] >= 2,
        "the first sweep needs several cycles: {cycles_per_sweep:?}"
    );
    // Completed, recorded, restarted from page one.
    let done = completed_sweeps(engine.store(), backend).await;
    // Pages / max_qps, plus the time claims took from the same rate limit, plus the
    // gaps between cycles (at most two periods' worth).
    let qps = f64::from(slow.max_qps);
    let claims = (sim.calls_by_action("GetEditingProject") - gets_before) as f64 / qps;
    let floor = (pages - 1) as f64 / qps;
    let ceiling = pages as f64 / qps + claims + 2.0 * PERIOD_S as f64;
    for (p, seconds) in &done {
        assert_eq!(*p, pages);
        assert!(
            (floor..=ceiling).contains(seconds),
            "a sweep of {pages} pages at {qps} qps took {seconds:.1} s, expected {floor:.1}..{ceiling:.1}"
        );
    }
    // Every change is recorded within one sweep plus one period (read at cycle ends: a
    // period more of slack).
    let longest = done.iter().map(|(_, s)| *s).fold(0.0, f64::max);
    let changes = lags.len() + pending.len();
    let within = longest + 2.0 * PERIOD_S as f64;
    let mut late: Vec<_> = pending
        .iter()
        .map(|(id, at)| (id.clone(), at.elapsed().as_secs_f64()))
        .filter(|(_, waited)| *waited > within)
        .collect();
    late.extend(
        lags.iter()
            .filter(|l| **l > within)
            .map(|l| ("(recorded)".to_string(), *l)),
    );
    assert!(
        late.is_empty(),
        "changes older than {within:.1} s: {late:?}"
    );
    assert!(
        lags.len() * 2 >= changes,
        "{} of {changes} recorded",
        lags.len()
    );
    check_invariants(engine.store()).await;
    println!(
        "long sweep ({backend:?}): {pages} pages at {} qps: sweeps took {:?} s in cycles {cycles_per_sweep:?}; \
         {} changes recorded, the slowest after {:.1} s",
        slow.max_qps,
        done.iter().map(|(_, s)| (s * 10.0).round() / 10.0).collect::<Vec<_>>(),
        lags.len(),
        lags.iter().copied().fold(0.0, f64::max),
    );
}

/// The SQL literal of the epoch as each backend stores timestamps.
fn epoch(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "'1970-01-01T00:00:00Z'",
        Backend::Sqlite => "'1970-01-01T00:00:00.000Z'",
    }
}

async fn claims_and_retries_run_in_every_cycle_of_a_sweep(backend: Backend) {
    let sim = ice_sim::Simulator::start(Default::default())
        .await
        .expect("sim");
    // 30 pages at 4 qps: no sweep completes within the three cycles watched.
    let ids = sim.populate(270, 30);
    let db = TestDatabase::new(backend).await;
    let engine = slow_list_engine(&sim, &db, &ids, &Slow::default()).await;
    let store = engine.store();
    let gone = &ids[0];
    sim.remove(gone);
    let e = epoch(backend);
    crate::support::execute(
        &db,
        &format!("UPDATE tracked_projects SET next_poll_at = {e} WHERE project_id = '{gone}'"),
    )
    .await;
    for cycle in 1..=3usize {
        // A project due for its full refresh, and one retrying after a failure.
        let (refresh, retry) = (&ids[cycle * 10], &ids[cycle * 10 + 1]);
        crate::support::execute(
            &db,
            &format!(
                "UPDATE tracked_projects SET next_poll_at = {e} WHERE project_id = '{refresh}'"
            ),
        )
        .await;
        crate::support::execute(
            &db,
            &format!(
                "UPDATE tracked_projects SET next_poll_at = {e}, consecutive_failures = 2, \
                 last_error = 'throttled', last_error_at = {e} WHERE project_id = '{retry}'"
            ),
        )
        .await;
        let before = (sim.calls(refresh), sim.calls(retry), sim.calls(gone));
        let r = cycle_on_the_tick(&engine).await;
        assert!(
            r.list_pages > 0 && r.sweeps_completed == 0,
            "cycle {cycle}: {r:?}"
        );
        assert_eq!(
            sim.calls(refresh),
            before.0 + 1,
            "cycle {cycle}: full refresh"
        );
        assert_eq!(sim.calls(retry), before.1 + 1, "cycle {cycle}: retry");
        assert_eq!(
            crate::support::count(
                store,
                &format!(
                    "SELECT COUNT(*) FROM tracked_projects WHERE project_id = '{retry}' \
                     AND consecutive_failures = 0 AND last_error IS NULL"
                )
            )
            .await,
            1,
            "cycle {cycle}: the retry succeeded"
        );
        // The vanished project is confirmed at the next tick, then marked removed.
        let confirmations = if cycle <= 2 { 1 } else { 0 };
        assert_eq!(sim.calls(gone), before.2 + confirmations, "cycle {cycle}");
        assert!(r.polled >= 2, "cycle {cycle}: {r:?}");
    }
    assert_eq!(
        crate::support::count(
            store,
            &format!(
                "SELECT COUNT(*) FROM editing_projects WHERE project_id = '{gone}' AND removed_at IS NOT NULL"
            )
        )
        .await,
        1
    );
    assert_eq!(
        crate::support::count(
            store,
            "SELECT COUNT(*) FROM list_sweeps WHERE outcome = 'running' AND pages > 0"
        )
        .await,
        1,
        "the sweep is still in progress"
    );
    check_invariants(store).await;
}

async fn a_refused_token_restarts_the_sweep_without_losing_changes(backend: Backend) {
    let sim = ice_sim::Simulator::start(Default::default())
        .await
        .expect("sim");
    let ids = sim.populate(108, 12);
    let db = TestDatabase::new(backend).await;
    let slow = Slow::default();
    let engine = slow_list_engine(&sim, &db, &ids, &slow).await;
    let store = engine.store();
    let pages = ids.len().div_ceil(slow.page_size as usize);

    let first = cycle_on_the_tick(&engine).await;
    assert!(
        first.list_pages > 0 && first.list_pages < pages,
        "{first:?}"
    );
    // Changes on pages already swept and on pages not yet swept; then every token ICE
    // issued stops working.
    let changed: Vec<&String> = ids.iter().step_by(9).collect();
    for id in &changed {
        assert!(sim.advance(id));
    }
    sim.expire_list_tokens();
    let asked_before = sim.list_tokens().len();
    let mut cycles = 0;
    while completed_sweeps(store, backend).await.is_empty() {
        assert!(cycles < 10, "no sweep completed after the token expired");
        cycle_on_the_tick(&engine).await;
        cycles += 1;
    }
    let tokens = sim.list_tokens();
    let after = &tokens[asked_before..];
    assert!(
        after[0].is_some(),
        "the cycle resumed with the stored token"
    );
    assert!(
        after[1].is_none(),
        "refused, the sweep started from page one"
    );
    assert_eq!(
        crate::support::count(
            store,
            "SELECT COUNT(*) FROM list_sweeps WHERE outcome = 'restarted'"
        )
        .await,
        1
    );
    let done = completed_sweeps(store, backend).await;
    assert_eq!(done[0].0, pages as i64, "the new sweep read every page");
    // The changes it marked are claimed by the cycle that marked them or the next.
    cycle_on_the_tick(&engine).await;
    for id in &changed {
        assert_eq!(
            stored_pair(store, id).await,
            upstream_pair(&sim, id),
            "{id} changed upstream and was not recorded"
        );
    }
    check_invariants(store).await;
}

/// PostgreSQL, three replicas on one database: one sweeps at a time, so the fleet makes
/// the list calls of one replica; a replica that died holding the sweep is taken over
/// once its lease expires, from where it stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_sweep_and_take_over_a_dead_holder_postgres() {
    let sim = ice_sim::Simulator::start(Default::default())
        .await
        .expect("sim");
    let ids = sim.populate(270, 30);
    let db = TestDatabase::new(Backend::Postgres).await;
    let slow = |replica| Slow {
        replica,
        lease_ttl: "2s",
        ..Slow::default()
    };
    let a = slow_list_engine(&sim, &db, &ids, &slow("sweeper-a")).await;
    let b = slow_list_engine(&sim, &db, &[], &slow("sweeper-b")).await;
    let c = slow_list_engine(&sim, &db, &[], &slow("sweeper-c")).await;
    let lists = || sim.calls_by_action("ListEditingProjects");

    let before = lists();
    for _ in 0..3 {
        cycle_on_the_tick(&a).await;
    }
    let one = lists() - before;
    let before = lists();
    for _ in 0..3 {
        crate::support::align_to(PERIOD_S, std::time::Duration::from_millis(100)).await;
        let stop = tokio_util::sync::CancellationToken::new();
        let (ra, rb, rc) = tokio::join!(a.run_cycle(&stop), b.run_cycle(&stop), c.run_cycle(&stop));
        for r in [&ra, &rb, &rc] {
            assert_ne!(r.outcome, ice_sync::sync::CycleOutcome::Failed, "{r:?}");
        }
    }
    let fleet = lists() - before;
    println!("three cycles: one replica {one} list calls, three replicas {fleet}");
    assert!(one >= 6, "one replica swept: {one}");
    assert!(
        fleet <= one + one / 4 + 1 && fleet * 2 >= one,
        "the fleet made {fleet} list calls in three cycles, one replica {one}"
    );
    for (i, sweep) in sweeps_of(&sim.list_tokens()).iter().enumerate() {
        let unique: std::collections::BTreeSet<_> = sweep.iter().collect();
        assert_eq!(unique.len(), sweep.len(), "sweep {i} fetched a page twice");
    }

    // A replica takes the sweep and dies: nobody else lists until its lease expires,
    // but claims go on.
    let store = a.store();
    let due = &ids[5];
    crate::support::execute(
        &db,
        &format!(
            "UPDATE tracked_projects SET next_poll_at = '1970-01-01T00:00:00Z' WHERE project_id = '{due}'"
        ),
    )
    .await;
    crate::support::align_to(PERIOD_S, std::time::Duration::from_millis(100)).await;
    let ttl = std::time::Duration::from_secs(4);
    let died = std::time::Instant::now();
    let now = app::now(store).await.expect("now");
    let dead = store
        .sweeps()
        .sweep_take("sweeper-dead", ttl, now)
        .await
        .expect("take")
        .expect("a sweep in progress");
    let (before, gets) = (lists(), sim.calls(due));
    let blocked = b
        .run_cycle(&tokio_util::sync::CancellationToken::new())
        .await;
    assert!(died.elapsed() < ttl, "the cycle outlasted the lease");
    assert_eq!((blocked.list_pages, lists()), (0, before), "{blocked:?}");
    assert_eq!(sim.calls(due), gets + 1, "claims run without the sweep");
    // Once the lease has expired, a cycle resumes the dead replica's sweep where it was.
    let asked = sim.list_tokens().len();
    let mut cycles = 0;
    loop {
        let r = cycle_on_the_tick(&b).await;
        if r.list_pages > 0 {
            break;
        }
        cycles += 1;
        assert!(cycles < 4, "the sweep was never taken over");
    }
    assert_eq!(
        sim.list_tokens().get(asked),
        Some(&dead.next_token),
        "resumed at the page the dead replica was to fetch next"
    );
    check_invariants(store).await;
}
