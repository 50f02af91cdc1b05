//! Several replicas on one PostgreSQL: each project polled once per schedule period
//! across the fleet, a SIGKILLed replica's projects taken over, a new replica taking a
//! share; and the SQLite rule of one daemon per file.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ice_sim::{Simulator, SimulatorConfig};

use crate::support::{
    align_to, check_invariants, env_for, ice_sync_command, open_store, rows, spawn_guarded,
    Backend, ChildGuard, TestDatabase,
};

fn spawn(env: &[(String, String)], replica: &str, log: &std::path::Path) -> ChildGuard {
    let file = std::fs::File::create(log).expect("log");
    spawn_guarded(
        ice_sync_command(env, &["run"])
            .env("ICE_SYNC__SYNC__REPLICA_ID", replica)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone"))
            .stderr(file),
    )
}

fn kill(child: &Child, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status();
}

async fn stop_all(children: Vec<ChildGuard>) {
    for c in &children {
        kill(c, "-TERM");
    }
    tokio::task::spawn_blocking(move || {
        for mut c in children {
            let _ = c.wait();
        }
    })
    .await
    .expect("join");
}

/// (replica, projects polled) per cycle, from `sync_runs`.
async fn runs(store: &ice_sync::storage::Store) -> Vec<(String, i64)> {
    rows(
        store,
        "SELECT replica_id, projects_polled FROM sync_runs WHERE outcome <> 'running' ORDER BY id",
    )
    .await
    .into_iter()
    .map(|r| {
        (
            r[0].clone().unwrap_or_default(),
            r[1].as_deref().and_then(|v| v.parse().ok()).unwrap_or(0),
        )
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_poll_each_project_once_per_period_postgres() {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    // Small enough that each period's work fits well within the period on a loaded
    // 2-core machine: the test is about who polls, not how fast.
    let ids = sim.populate(480, 120);
    sim.set_latency(Duration::from_millis(5));
    let db = TestDatabase::new(Backend::Postgres).await;
    let store = open_store(&db.url).await;
    store
        .tracking()
        .track_add(
            &crate::support::project_ids(&ids),
            "cli",
            ice_sync::domain::Timestamp::now(),
        )
        .await
        .expect("track");
    let env = env_for(
        &db.url,
        &sim,
        &[
            ("ICE_SYNC__SYNC__SCHEDULE", "*/3 * * * * *"),
            ("ICE_SYNC__SYNC__CONCURRENCY", "16"),
            ("ICE_SYNC__SYNC__LEASE_TTL", "2s"),
        ],
    );
    let dir = tempfile::tempdir().expect("dir");
    // Start just after a tick so the start-up cycles have the period to themselves.
    align_to(3, Duration::from_millis(200)).await;
    let started = Instant::now();
    let mut children: Vec<ChildGuard> = ["a", "b", "c"]
        .iter()
        .map(|r| {
            spawn(
                &env,
                &format!("replica-{r}"),
                &dir.path().join(format!("{r}.log")),
            )
        })
        .collect();

    // Two full periods with three replicas.
    align_to(3, Duration::from_millis(2700)).await;
    align_to(3, Duration::from_millis(2700)).await;
    let counts: Vec<u64> = ids.iter().map(|id| sim.calls(id)).collect();
    let (min, max) = (counts.iter().min().copied(), counts.iter().max().copied());
    assert_eq!(
        min, max,
        "every project polled the same number of times: {min:?}..{max:?}"
    );
    let periods = max.unwrap_or(0);
    assert!(periods >= 2, "{periods} periods in {:?}", started.elapsed());

    // A fourth replica joins and takes a share.
    children.push(spawn(&env, "replica-d", &dir.path().join("d.log")));
    align_to(3, Duration::from_millis(2700)).await;
    align_to(3, Duration::from_millis(2700)).await;
    let counts: Vec<u64> = ids.iter().map(|id| sim.calls(id)).collect();
    assert_eq!(
        counts.iter().min(),
        counts.iter().max(),
        "still exactly once per period with four"
    );

    // SIGKILL one replica in the middle of a cycle: slow answers so cycles take a while.
    sim.set_latency(Duration::from_millis(40));
    align_to(3, Duration::from_millis(300)).await;
    let before: BTreeMap<&String, u64> = ids.iter().map(|id| (id, sim.calls(id))).collect();
    let victim = children.remove(0);
    kill(&victim, "-KILL");
    let killed_at = Instant::now();
    tokio::task::spawn_blocking(move || {
        let mut v = victim;
        v.wait()
    })
    .await
    .expect("join")
    .expect("reaped");
    // Every project must be polled again: the victim's unfinished claims included.
    let deadline = Instant::now() + Duration::from_secs(20);
    let takeover = loop {
        if ids.iter().all(|id| sim.calls(id) > before[id]) {
            break killed_at.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "the killed replica's projects were not taken over"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop_all(children).await;

    let history = check_invariants(&store).await;
    assert_eq!(history.len(), ids.len());
    let counts: Vec<u64> = ids.iter().map(|id| sim.calls(id)).collect();
    let per_replica: BTreeMap<String, Vec<i64>> =
        runs(&store)
            .await
            .into_iter()
            .fold(BTreeMap::new(), |mut acc, (replica, polled)| {
                acc.entry(replica).or_default().push(polled);
                acc
            });
    println!(
        "replicas: {} projects, {periods} periods before the join; calls per project min {} max {}; \
         takeover after SIGKILL {takeover:.1?} (lease TTL 2 s, period 3 s); projects per cycle per replica {per_replica:?}",
        ids.len(),
        counts.iter().min().unwrap_or(&0),
        counts.iter().max().unwrap_or(&0),
    );
    let d = per_replica.get("replica-d").cloned().unwrap_or_default();
    assert!(
        d.iter().any(|&n| n > 0),
        "the replica added mid-run took a share: {d:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_one_sqlite_file_is_refused() {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let ids = sim.populate(3, 0);
    let db = TestDatabase::new(Backend::Sqlite).await;
    let env = env_for(
        &db.url,
        &sim,
        &[("ICE_SYNC__SYNC__PROJECTS", &ids.join(","))],
    );
    let dir = tempfile::tempdir().expect("dir");
    let first = spawn(&env, "first", &dir.path().join("first.log"));
    let start = Instant::now();
    while sim.total_calls() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the first daemon never polled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for args in [&["run"][..], &["run", "--once"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_ice-sync"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().cloned())
            .output()
            .expect("second daemon");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("another ice-sync daemon is already syncing"),
            "{stderr}"
        );
    }
    // Read-only commands still work while the daemon runs.
    let out = Command::new(env!("CARGO_BIN_EXE_ice-sync"))
        .arg("status")
        .env_clear()
        .envs(env.iter().cloned())
        .output()
        .expect("status");
    assert_eq!(out.status.code(), Some(0));
    stop_all(vec![first]).await;
    // Once it is gone (however it ended), the next daemon starts.
    let out = Command::new(env!("CARGO_BIN_EXE_ice-sync"))
        .args(["run", "--once"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().cloned())
        .output()
        .expect("third daemon");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
