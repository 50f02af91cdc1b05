//! The worst days: malformed answers, throttling, auth failures, slow cycles, a database
//! that goes away, and a long run with a third of requests failing.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use ice_sim::{FaultConfig, MalformedKind};
use ice_sync::ice::Project;
use ice_sync::sync::engine::CycleOutcome;

use crate::on_both_backends;
use crate::support::{check_invariants, s, spawn_app, spawn_app_with, Backend, Pair};

on_both_backends!(
    bad_api_input_becomes_per_project_errors,
    huge_and_strange_values_are_stored,
    auth_failure_stops_the_cycle_with_one_error,
    rate_limit_holds_over_every_second,
    throttling_and_server_errors_are_retried,
    cycle_timeout_records_partial,
);

async fn bad_api_input_becomes_per_project_errors(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("ICE_SYNC__SYNC__MAX_RETRIES", "1"),
            ("ICE_SYNC__ICE__TIMEOUT", "2s"),
        ],
    )
    .await;
    app.sim.add_regular("bad1");
    app.track(&["bad1"]).await;
    app.cycle().await;
    app.sim.advance("bad1"); // upstream moved on; no bad answer may record it
    let good_row = app
        .rows("SELECT status, title, timeline, last_request_id FROM editing_projects")
        .await;
    for kind in MalformedKind::ALL {
        app.sim.set_malformed_kinds(&[kind]);
        app.sim.set_faults(FaultConfig {
            malformed: 1.0,
            ..Default::default()
        });
        let r = app.cycle().await;
        assert_eq!(
            (r.polled, r.failures, r.transitions),
            (1, 1, 0),
            "{kind:?}: {r:?}"
        );
        assert_eq!(r.outcome, CycleOutcome::Failed, "{kind:?}");
        assert_eq!(
            app.rows("SELECT status, title, timeline, last_request_id FROM editing_projects")
                .await,
            good_row,
            "{kind:?} must not change the stored row"
        );
        let status = app.store().reads().status().await.expect("status");
        let error = status[0].last_error.clone().unwrap_or_default();
        assert!(!error.is_empty(), "{kind:?}: the failure is recorded");
        if !matches!(
            kind,
            MalformedKind::Html502 | MalformedKind::Html200 | MalformedKind::Empty
        ) {
            assert!(error.contains("request id"), "{kind:?}: {error}");
        }
    }
    app.sim.set_faults(FaultConfig::default());
    let r = app.cycle().await;
    assert_eq!(
        (r.failures, r.transitions),
        (0, 1),
        "recovers once answers are good"
    );
    assert_eq!(
        app.store().reads().status().await.expect("status")[0].last_error,
        None
    );
    check_invariants(app.store()).await;
}

async fn huge_and_strange_values_are_stored(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut p = app.sim.add_regular("big1");
    let timeline = format!(
        "{{\"VideoTracks\":[{{\"Note\":\"{}\"}}]}}",
        "剪辑 ✂ é \u{1F3AC} tab\tnewline\n".repeat(10 * 1024 * 1024 / 25)
    );
    assert!(timeline.len() > 10 * 1024 * 1024);
    p.timeline = Some(timeline.clone());
    p.title = s("nul\u{0}bell\u{7}quote\"'; DROP TABLE editing_projects; --");
    p.status = s("Editing");
    app.sim.insert(p);
    app.track(&["big1"]).await;
    let r = app.cycle().await;
    assert_eq!((r.failures, r.transitions), (0, 1), "{r:?}");
    let row = app
        .rows("SELECT title, timeline FROM editing_projects")
        .await;
    assert_eq!(
        row[0][0].as_deref(),
        Some("nul\u{FFFD}bell\u{7}quote\"'; DROP TABLE editing_projects; --")
    );
    assert_eq!(row[0][1].as_deref(), Some(timeline.as_str()));
}

async fn auth_failure_stops_the_cycle_with_one_error(backend: Backend) {
    let app = spawn_app_with(backend, &[("ICE_SYNC__SYNC__CONCURRENCY", "4")]).await;
    let ids = app.sim.populate(100, 0);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.track(&refs).await;
    app.sim
        .set_credentials("LTAI5tSimulatorKey0001", "rotated-secret", None);
    let r = app.cycle().await;
    assert_eq!(r.outcome, CycleOutcome::Failed);
    let error = r.error.clone().unwrap_or_default();
    assert!(
        error.contains("SignatureDoesNotMatch") && error.contains("ACCESS_KEY_SECRET"),
        "{error}"
    );
    // Stopped at the first answers instead of failing 100 times.
    assert!(
        app.sim.total_calls() <= 8,
        "{} calls",
        app.sim.total_calls()
    );
    assert_eq!(
        app.rows("SELECT outcome FROM sync_runs").await,
        vec![vec![s("failed")]]
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM tracked_projects WHERE last_error IS NOT NULL")
            .await,
        0
    );
}

async fn rate_limit_holds_over_every_second(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("ICE_SYNC__SYNC__MAX_QPS", "25"),
            ("ICE_SYNC__SYNC__CONCURRENCY", "16"),
        ],
    )
    .await;
    let ids = app.sim.populate(60, 0);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.track(&refs).await;
    // Retries go through the same limiter.
    app.sim.set_faults(FaultConfig {
        throttle: 0.2,
        ..Default::default()
    });
    let r = app.cycle().await;
    assert_eq!(r.failures, 0, "{r:?}");
    let peak = app.sim.max_requests_in_any_window(Duration::from_secs(1));
    let total = app.sim.total_calls();
    let rate = total as f64 / r.duration.as_secs_f64();
    println!(
        "rate limit 25/s: {total} requests, peak {peak} in any 1 s window, {rate:.1}/s achieved"
    );
    assert!(
        peak <= 26,
        "the simulator saw {peak} requests within one second"
    );
    assert!(total > 60, "some requests were retried");
}

async fn throttling_and_server_errors_are_retried(backend: Backend) {
    let app = spawn_app_with(backend, &[("ICE_SYNC__SYNC__MAX_RETRIES", "8")]).await;
    let ids = app.sim.populate(40, 10);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.track(&refs).await;
    app.sim.set_faults(FaultConfig {
        throttle: 0.3,
        server_error: 0.2,
        ..Default::default()
    });
    let r = app.cycle().await;
    assert_eq!((r.polled, r.failures, r.transitions), (50, 0, 50), "{r:?}");
    assert!(app.sim.faults_injected() > 10);
    check_invariants(app.store()).await;
}

async fn cycle_timeout_records_partial(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("ICE_SYNC__SYNC__CONCURRENCY", "2"),
            ("ICE_SYNC__SYNC__CYCLE_TIMEOUT", "1s"),
        ],
    )
    .await;
    let ids = app.sim.populate(40, 0);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.track(&refs).await;
    app.sim.set_latency(Duration::from_millis(200));
    let r = app.cycle().await;
    assert_eq!(r.outcome, CycleOutcome::Partial, "{r:?}");
    assert!(r.polled < 40 && r.polled >= 4, "{r:?}");
    assert!(
        r.duration < Duration::from_secs(3),
        "stops claiming at the deadline: {r:?}"
    );
    assert_eq!(
        app.rows("SELECT outcome FROM sync_runs").await,
        vec![vec![s("partial")]]
    );
    let stored = check_invariants(app.store()).await;
    assert_eq!(
        stored.len(),
        r.polled,
        "everything polled was committed, nothing else"
    );
}

/// A TCP proxy in front of PostgreSQL that can sever every connection and refuse new
/// ones, as a restart or a network cut would, without touching the shared server.
mod proxy {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use tokio::net::{TcpListener, TcpStream};
    use tokio_util::sync::CancellationToken;

    pub struct Proxy {
        pub port: u16,
        up: Arc<AtomicBool>,
        cut: std::sync::Mutex<CancellationToken>,
    }

    impl Proxy {
        pub async fn start(target: &str) -> Arc<Proxy> {
            let target: Arc<str> = Arc::from(target);
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let proxy = Arc::new(Proxy {
                port: listener.local_addr().expect("addr").port(),
                up: Arc::new(AtomicBool::new(true)),
                cut: std::sync::Mutex::new(CancellationToken::new()),
            });
            let p = proxy.clone();
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !p.up.load(Ordering::SeqCst) {
                        continue; // dropped: connection refused-ish
                    }
                    let cut = p.cut.lock().expect("lock").clone();
                    let target = target.clone();
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(&*target).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = cut.cancelled() => {}
                        }
                    });
                }
            });
            proxy
        }

        pub fn sever(&self) {
            self.up.store(false, Ordering::SeqCst);
            let mut cut = self.cut.lock().expect("lock");
            cut.cancel();
            *cut = CancellationToken::new();
        }

        pub fn restore(&self) {
            self.up.store(true, Ordering::SeqCst);
        }
    }
}

/// The database goes away mid-run: cycles fail cleanly, the loop lives on, and the
/// first cycle after the database returns catches up, writing each change once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_fails_cleanly_and_recovers_postgres() {
    let proxy = proxy::Proxy::start(&crate::support::pg_server_addr()).await;
    let db = crate::support::TestDatabase::new(Backend::Postgres).await;
    let mut via_proxy = reqwest::Url::parse(&db.url).expect("database URL");
    via_proxy.set_host(Some("127.0.0.1")).expect("host");
    via_proxy.set_port(Some(proxy.port)).expect("port");
    let via_proxy = via_proxy.to_string();
    let sim = ice_sim::Simulator::start(Default::default())
        .await
        .expect("sim");
    let ids = sim.populate(20, 0);
    let settings = ice_sync::config::load_from(
        None,
        crate::support::env_for(
            &via_proxy,
            &sim,
            &[("ICE_SYNC__SYNC__PROJECTS", &ids.join(","))],
        ),
    )
    .expect("settings");
    let engine = ice_sync::app::Daemon::builder(&settings)
        .tune(|o| o.policy.schedule = None)
        .engine()
        .await
        .expect("engine");
    let shutdown = tokio_util::sync::CancellationToken::new();

    let first = engine.run_cycle(&shutdown).await;
    assert_eq!(
        (first.outcome, first.transitions),
        (CycleOutcome::Success, 20)
    );

    proxy.sever();
    sim.advance(&ids[0]);
    let calls_before = sim.total_calls();
    let down = engine.run_cycle(&shutdown).await;
    assert_eq!(down.outcome, CycleOutcome::Failed, "{down:?}");
    assert!(down.error.is_some());
    // A dead database stops the cycle early rather than polling everything for nothing.
    assert!(sim.total_calls() - calls_before <= 20);

    proxy.restore();
    let mut recovered = None;
    for _ in 0..20 {
        let r = engine.run_cycle(&shutdown).await;
        if r.outcome == CycleOutcome::Success {
            recovered = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let recovered = recovered.expect("recovers without a restart");
    assert_eq!(
        recovered.transitions, 1,
        "the change made during the outage, once"
    );
    let store = crate::support::open_store(&db.url).await;
    let history = check_invariants(&store).await;
    assert_eq!(
        history[&ids[0]],
        vec![(s("Draft"), None), (s("Editing"), None)]
    );
    assert!(
        crate::support::count(
            &store,
            "SELECT COUNT(*) FROM sync_runs WHERE outcome = 'success'"
        )
        .await
            >= 2
    );
}

/// ~1,000 projects over 22 cycles with about 30% of requests failing in mixed ways. The
/// history must hold, per project, exactly the distinct states seen by successful
/// polls, and the final rows must equal the simulator's truth.
async fn soak(backend: Backend) {
    let app = spawn_app(backend).await;
    let ids = app.sim.populate(800, 200);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.track(&refs).await;
    // The real client and engine, with timeouts and backoff scaled down for a test.
    let mut options = ice_sync::app::client_options(&app.settings);
    options.timeout = Duration::from_millis(250);
    options.max_retries = 4;
    options.backoff_base = Duration::from_millis(5);
    options.backoff_cap = Duration::from_millis(50);
    let creds = ice_sync::app::resolve_credentials(&app.settings).expect("creds");
    let client = ice_sync::ice::IceClient::new(options, creds).expect("client");
    let mut engine_options = ice_sync::app::engine_options(&app.settings);
    engine_options.sync.concurrency = 64;
    engine_options.policy.schedule = None;
    let engine = ice_sync::sync::engine::Engine::new(app.store().clone(), client, engine_options);

    app.sim.set_faults(FaultConfig {
        throttle: 0.12,
        server_error: 0.06,
        slow: 0.03,
        slow_delay: Duration::from_millis(600),
        drop_connection: 0.04,
        malformed: 0.05,
        ..Default::default()
    });
    let polled_at = |rows: Vec<Vec<Option<String>>>| -> HashMap<String, Option<String>> {
        rows.into_iter()
            .map(|r| (r[0].clone().unwrap_or_default(), r[1].clone()))
            .collect()
    };
    let polled_sql = match backend {
        Backend::Sqlite => "SELECT project_id, last_polled_at FROM editing_projects",
        Backend::Postgres => "SELECT project_id, last_polled_at::text FROM editing_projects",
    };
    let mut observed: BTreeMap<String, Vec<Pair>> = BTreeMap::new();
    let (mut failures, mut cycles) = (0usize, 0usize);
    for cycle in 0..22 {
        if cycle == 21 {
            app.sim.set_faults(FaultConfig::default()); // a clean final cycle catches up
        } else if cycle > 0 {
            app.sim.advance_random(0.15);
        }
        // The simulator only changes between cycles, so a successful poll during this
        // cycle saw exactly this state.
        let truth: HashMap<String, Project> = ids
            .iter()
            .filter_map(|id| app.sim.project(id).map(|p| (id.clone(), p)))
            .collect();
        let before = polled_at(app.rows(polled_sql).await);
        let r = engine.run_cycle(&app.shutdown).await;
        failures += r.failures;
        cycles += 1;
        let after = polled_at(app.rows(polled_sql).await);
        for (id, at) in after {
            if before.get(&id) != Some(&at) {
                let p = &truth[&id];
                let pair = (p.status.clone(), p.business_status.clone());
                let seen = observed.entry(id).or_default();
                if seen.last() != Some(&pair) {
                    seen.push(pair);
                }
            }
        }
    }
    let history = check_invariants(app.store()).await;
    assert_eq!(
        history, observed,
        "history = the distinct states seen by successful polls"
    );
    for id in &ids {
        let p = app.sim.project(id).expect("exists");
        assert_eq!(
            history[id].last(),
            Some(&(p.status.clone(), p.business_status.clone())),
            "{id}: final row equals the simulator's truth"
        );
    }
    let transitions: usize = history.values().map(Vec::len).sum();
    println!(
        "soak ({backend:?}): {cycles} cycles, {} requests, {} faults injected, {failures} failed polls, \
         {transitions} history rows expected and recorded, 0 duplicates",
        app.sim.total_calls(),
        app.sim.faults_injected(),
    );
    assert!(app.sim.faults_injected() as f64 > 0.2 * app.sim.total_calls() as f64);
}

on_both_backends!(soak);
