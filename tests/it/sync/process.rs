//! What only a real process can show: SIGTERM mid-cycle, SIGKILL at random instants
//! followed by a restart, and a trace-level run that must not leak a secret.

use std::process::Child;
use std::time::{Duration, Instant};

use ice_sim::{Simulator, SimulatorConfig};
use rand::{Rng, SeedableRng};

use crate::on_both_backends;
use crate::support::{
    check_invariants, count, env_for, open_store, rows, signal, spawn_logged, Backend, TestDatabase,
};

on_both_backends!(
    sigterm_mid_cycle_exits_zero_with_nothing_half_written,
    sigkill_at_random_points_then_restart_catches_up,
    secrets_never_leave_the_process,
);

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

async fn wait_for(mut condition: impl FnMut() -> bool, timeout: Duration) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < timeout,
            "condition not met within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn sigterm_mid_cycle_exits_zero_with_nothing_half_written(backend: Backend) {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let ids = sim.populate(60, 0);
    sim.set_latency(Duration::from_millis(300));
    let db = TestDatabase::new(backend).await;
    let projects = ids.join(",");
    let env = env_for(
        &db.url,
        &sim,
        &[
            ("ICE_SYNC__SYNC__PROJECTS", &projects),
            ("ICE_SYNC__SYNC__CONCURRENCY", "4"),
            ("ICE_SYNC__SYNC__SCHEDULE", "0 0 0 1 1 *"),
            ("ICE_SYNC__SYNC__SHUTDOWN_TIMEOUT", "10s"),
        ],
    );
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("daemon.log");
    let mut child = spawn_logged(&env, &["run"], &log);
    wait_for(|| sim.total_calls() >= 12, Duration::from_secs(20)).await;
    let sent = Instant::now();
    signal(&child, "-TERM");
    let status =
        tokio::task::spawn_blocking(move || wait_with_timeout(&mut child, Duration::from_secs(10)))
            .await
            .expect("join")
            .expect("exits within sync.shutdown_timeout");
    let took = sent.elapsed();
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "{output}");
    assert!(
        took < Duration::from_secs(3),
        "in-flight projects only: took {took:?}"
    );
    let calls_at_exit = sim.total_calls();
    assert!(
        calls_at_exit < 60,
        "stopped claiming: {calls_at_exit} calls"
    );

    let store = open_store(&db.url).await;
    let history = check_invariants(&store).await;
    crate::analytics::facts::assert_facts_match_history(&store).await;
    // Every answer that arrived was committed; nothing was left half-way.
    assert!(
        history.len() as u64 >= calls_at_exit - 4,
        "{} stored of {calls_at_exit}",
        history.len()
    );
    assert_eq!(
        rows(&store, "SELECT outcome, CASE WHEN finished_at IS NULL THEN 'open' ELSE 'closed' END FROM sync_runs").await,
        vec![vec![Some("partial".to_string()), Some("closed".to_string())]]
    );
}

async fn sigkill_at_random_points_then_restart_catches_up(backend: Backend) {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let ids = sim.populate(160, 40);
    sim.set_latency(Duration::from_millis(15));
    let db = TestDatabase::new(backend).await;
    let projects = ids.join(",");
    let env = env_for(
        &db.url,
        &sim,
        &[
            ("ICE_SYNC__SYNC__PROJECTS", &projects),
            ("ICE_SYNC__SYNC__CONCURRENCY", "8"),
            ("ICE_SYNC__SYNC__SCHEDULE", "* * * * * *"),
        ],
    );
    let dir = tempfile::tempdir().expect("dir");
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261129);
    let crashes = 6;
    for round in 0..crashes {
        let log = dir.path().join(format!("run-{round}.log"));
        let mut child = spawn_logged(&env, &["run"], &log);
        sim.advance_random(0.3);
        let delay = Duration::from_millis(rng.gen_range(300..2500));
        tokio::time::sleep(delay).await;
        signal(&child, "-KILL");
        tokio::task::spawn_blocking(move || child.wait())
            .await
            .expect("join")
            .expect("reaped");
        // Whatever instant it died at, the database is consistent.
        let store = open_store(&db.url).await;
        check_invariants(&store).await;
        crate::analytics::facts::assert_facts_match_history(&store).await;
        store.close().await;
    }
    // A clean restart catches up with everything that changed. Wait for the next tick
    // so every project that may have changed is due again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let log = dir.path().join("final.log");
    let mut child = spawn_logged(&env, &["run", "--once"], &log);
    let status =
        tokio::task::spawn_blocking(move || wait_with_timeout(&mut child, Duration::from_secs(60)))
            .await
            .expect("join")
            .expect("finishes");
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let store = open_store(&db.url).await;
    let history = check_invariants(&store).await;
    crate::analytics::facts::assert_facts_match_history(&store).await;
    for id in &ids {
        let p = sim.project(id).expect("exists");
        assert_eq!(
            history[id].last(),
            Some(&(p.status.clone(), p.business_status.clone())),
            "{id} caught up"
        );
    }
    // Cycles cut short by SIGKILL were closed as aborted at the next start.
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM sync_runs WHERE outcome = 'running'"
        )
        .await,
        0
    );
    let aborted = count(
        &store,
        "SELECT COUNT(*) FROM sync_runs WHERE outcome = 'aborted'",
    )
    .await;
    let transitions: usize = history.values().map(Vec::len).sum();
    println!(
        "crash test ({backend:?}): {crashes} SIGKILLs survived, {aborted} cycles aborted, {} requests, {transitions} history rows, 0 duplicates",
        sim.total_calls()
    );
}

async fn secrets_never_leave_the_process(backend: Backend) {
    const SECRET: &str = "SeCrEt-4f9a1c77e2b0-never-log-me";
    const TOKEN: &str = "CAIS+StsToken/9d2e55aa==never-log-me";
    let sim = Simulator::start(SimulatorConfig {
        access_key_secret: SECRET.to_string(),
        security_token: Some(TOKEN.to_string()),
        ..SimulatorConfig::default()
    })
    .await
    .expect("sim");
    let ids = sim.populate(5, 2);
    let db = TestDatabase::new(backend).await;
    let projects = ids.join(",");
    let mut env = env_for(
        &db.url,
        &sim,
        &[
            ("ICE_SYNC__SYNC__PROJECTS", &projects),
            ("ICE_SYNC__SYNC__SCHEDULE", "* * * * * *"),
        ],
    );
    env.retain(|(k, _)| !k.starts_with("ICE_SYNC__ICE__ACCESS_KEY"));
    env.extend([
        (
            "ALIBABA_CLOUD_ACCESS_KEY_ID".to_string(),
            SimulatorConfig::default().access_key_id,
        ),
        (
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET".to_string(),
            SECRET.to_string(),
        ),
        (
            "ALIBABA_CLOUD_SECURITY_TOKEN".to_string(),
            TOKEN.to_string(),
        ),
        ("RUST_LOG".to_string(), "trace".to_string()),
    ]);
    let dir = tempfile::tempdir().expect("dir");
    let mut output = String::new();
    // A good run, then runs that fail on auth (token and secret rejected), all at trace.
    let good = dir.path().join("good.log");
    let mut child = spawn_logged(&env, &["run", "--once"], &good);
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    output.push_str(&std::fs::read_to_string(&good).unwrap_or_default());
    assert_eq!(status.code(), Some(0), "{output}");
    assert!(
        output.contains("TRACE") || output.contains("\"level\":\"TRACE\""),
        "ran at trace level"
    );

    sim.set_credentials(
        &SimulatorConfig::default().access_key_id,
        "other-secret",
        Some("other-token"),
    );
    tokio::time::sleep(Duration::from_millis(1100)).await; // due again at the next tick
    let bad = dir.path().join("bad.log");
    let mut child = spawn_logged(&env, &["run", "--once"], &bad);
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    let bad_output = std::fs::read_to_string(&bad).unwrap_or_default();
    assert_eq!(status.code(), Some(1), "{bad_output}");
    output.push_str(&bad_output);

    // The metrics of a running daemon (good credentials again).
    sim.set_credentials(
        &SimulatorConfig::default().access_key_id,
        SECRET,
        Some(TOKEN),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut daemon_env = env.clone();
    daemon_env.push((
        "ICE_SYNC__METRICS__LISTEN".to_string(),
        format!("127.0.0.1:{port}"),
    ));
    let daemon_log = dir.path().join("daemon.log");
    let daemon = spawn_logged(&daemon_env, &["run"], &daemon_log);
    let url = format!("http://127.0.0.1:{port}/metrics");
    let mut metrics = String::new();
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(&url).await {
            metrics = r.text().await.unwrap_or_default();
            if metrics.contains("ice_sync_cycles_total{outcome=\"success\"} 1") {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    signal(&daemon, "-TERM");
    let mut daemon = daemon;
    tokio::task::spawn_blocking(move || daemon.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(
        metrics.contains("ice_sync_api_requests_total"),
        "scraped: {metrics}"
    );
    output.push_str(&metrics);
    output.push_str(&std::fs::read_to_string(&daemon_log).unwrap_or_default());

    for needle in [SECRET, TOKEN, "never-log-me"] {
        assert!(
            !output.contains(needle),
            "a secret leaked into the output or the metrics"
        );
    }
    // The database: every text value of every table.
    let store = open_store(&db.url).await;
    let mut dump = String::new();
    for table in [
        "editing_projects",
        "editing_project_history",
        "tracked_projects",
        "sync_runs",
    ] {
        let sql = match backend {
            Backend::Sqlite => format!("SELECT * FROM {table}"),
            Backend::Postgres => format!("SELECT t::text FROM {table} t"),
        };
        if backend == Backend::Postgres {
            for r in rows(&store, &sql).await {
                dump.extend(r.into_iter().flatten());
            }
        } else {
            let n = count(&store, &format!("SELECT COUNT(*) FROM {table}")).await;
            assert!(
                n > 0 || table == "editing_project_history",
                "{table} is empty"
            );
        }
    }
    if backend == Backend::Sqlite {
        // The file itself, WAL included, byte for byte.
        let path = db
            .url
            .trim_start_matches("sqlite://")
            .split('?')
            .next()
            .unwrap_or_default()
            .to_string();
        for suffix in ["", "-wal"] {
            if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
                dump.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    assert!(dump.contains(&ids[0]), "the dump holds the data");
    for needle in [SECRET, TOKEN, "never-log-me"] {
        assert!(!dump.contains(needle), "a secret leaked into the database");
    }
}
