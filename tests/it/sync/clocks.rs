//! Real processes on shifted clocks (libfaketime, Debian package `faketime`, which
//! `scripts/test` installs): two PostgreSQL replicas, one 90 s ahead, still poll each
//! project once per period and write one timeline; and a running daemon whose clock is
//! stepped back ten minutes keeps polling at every tick, on each backend.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ice_sim::{Simulator, SimulatorConfig};
use ice_testkit::ChildGuard;

use crate::support::{
    align_to, check_invariants, env_for, ice_sync_command, open_store, project_ids, rows,
    spawn_guarded, Backend, TestDatabase,
};

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

fn libfaketime() -> &'static str {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: install the Debian package faketime (scripts/test does)"
    );
    LIBFAKETIME
}

/// `ice-sync run` as `replica`, its wall clock offset by the seconds in `offset_file`
/// (re-read at every call, so the test can step it); logs to `log`.
fn spawn_shifted(
    env: &[(String, String)],
    replica: &str,
    offset_file: Option<&Path>,
    log: &Path,
) -> ChildGuard {
    let file = std::fs::File::create(log).expect("log");
    let mut cmd = ice_sync_command(env, &["run"]);
    cmd.env("ICE_SYNC__SYNC__REPLICA_ID", replica)
        .env("ICE_SYNC__LOG__FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("clone"))
        .stderr(file);
    if let Some(offset) = offset_file {
        cmd.env("LD_PRELOAD", libfaketime())
            .env("FAKETIME_TIMESTAMP_FILE", offset)
            .env("FAKETIME_NO_CACHE", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    }
    spawn_guarded(&mut cmd)
}

fn calls(sim: &Simulator, ids: &[String]) -> HashMap<String, u64> {
    ids.iter().map(|id| (id.clone(), sim.calls(id))).collect()
}

fn stop(children: Vec<ChildGuard>) {
    for c in &children {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
    }
    for mut c in children {
        let _ = c.wait();
    }
}

fn offset_file(dir: &Path, name: &str, offset: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, offset).expect("offset file");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_one_90s_ahead_write_one_timeline_postgres() {
    let test_started = chrono::Utc::now();
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let ids = sim.populate(160, 40);
    let db = TestDatabase::new(Backend::Postgres).await;
    let store = open_store(&db.url).await;
    store
        .tracking()
        .track_add(
            &project_ids(&ids),
            "cli",
            ice_sync::app::now(&store).await.expect("now"),
        )
        .await
        .expect("track");
    let env = env_for(
        &db.url,
        &sim,
        &[
            ("ICE_SYNC__SYNC__SCHEDULE", "*/3 * * * * *"),
            ("ICE_SYNC__SYNC__LEASE_TTL", "60s"),
        ],
    );
    let dir = tempfile::tempdir().expect("dir");
    let ahead = offset_file(dir.path(), "ahead", "+90");
    align_to(3, Duration::from_millis(300)).await;
    let children = vec![
        spawn_shifted(&env, "replica-slow", None, &dir.path().join("slow.log")),
        spawn_shifted(
            &env,
            "replica-fast",
            Some(&ahead),
            &dir.path().join("fast.log"),
        ),
    ];
    // Several periods with status changes between them; per period, no project is polled
    // more than once by the two replicas together.
    align_to(3, Duration::from_millis(2_700)).await;
    let mut before = calls(&sim, &ids);
    let mut polled = 0;
    for period in 0..5 {
        if period < 4 {
            sim.advance_random(0.3);
        }
        align_to(3, Duration::from_millis(2_700)).await;
        let after = calls(&sim, &ids);
        for id in &ids {
            let n = after[id] - before[id];
            assert!(n <= 1, "{id} polled {n} times in period {period}");
            polled += n;
        }
        before = after;
    }
    stop(children);
    assert!(polled > 100, "the replicas polled only {polled} times");
    let fast_log = std::fs::read_to_string(dir.path().join("fast.log")).expect("log");
    let fast_stamp = fast_log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["timestamp"].as_str().map(str::to_string))
        .next()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
        .expect("the fast replica logged");
    assert!(
        fast_stamp.with_timezone(&chrono::Utc) > test_started + chrono::Duration::seconds(80),
        "libfaketime did not shift the fast replica's clock"
    );
    // One timeline: every row chains from the one before and is a real change ...
    let histories = check_invariants(&store).await;
    // ... every observation lies within the test's real time ...
    let now = chrono::Utc::now();
    let stamps = rows(
        &store,
        "SELECT to_char(observed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') \
         FROM editing_project_history",
    )
    .await;
    for stamp in stamps.iter().filter_map(|r| r[0].clone()) {
        let at = chrono::DateTime::parse_from_rfc3339(&stamp).expect("timestamp");
        assert!(
            at >= test_started - chrono::Duration::seconds(1) && at <= now,
            "observed_at {stamp} is outside the test ({test_started} .. {now})"
        );
    }
    // ... and the last row of each project is the simulator's truth.
    for id in &ids {
        let truth = sim.project(id).expect("project");
        let last = histories.get(id).and_then(|h| h.last()).cloned();
        assert_eq!(last, Some((truth.status, truth.business_status)), "{id}");
    }
}

async fn a_daemon_whose_clock_steps_back_keeps_polling(backend: Backend) {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let ids = sim.populate(5, 0);
    for id in &ids {
        sim.set_status(id, Some("Producing"), None);
    }
    let db = TestDatabase::new(backend).await;
    let store = open_store(&db.url).await;
    store
        .tracking()
        .track_add(
            &project_ids(&ids),
            "cli",
            ice_sync::app::now(&store).await.expect("now"),
        )
        .await
        .expect("track");
    let env = env_for(
        &db.url,
        &sim,
        &[("ICE_SYNC__SYNC__SCHEDULE", "*/2 * * * * *")],
    );
    let dir = tempfile::tempdir().expect("dir");
    let offset = offset_file(dir.path(), "offset", "+0");
    let log = dir.path().join("daemon.log");
    let child = spawn_shifted(&env, "stepped", Some(&offset), &log);
    align_to(2, Duration::from_millis(1_500)).await;
    align_to(2, Duration::from_millis(1_500)).await;
    let before = calls(&sim, &ids);
    assert!(
        before.values().all(|&n| n >= 1),
        "not polling before the step: {before:?}"
    );
    // NTP (or a VM restore) sets the clock back ten minutes.
    std::fs::write(&offset, "-600").expect("step");
    for _ in 0..3 {
        align_to(2, Duration::from_millis(1_500)).await;
    }
    stop(vec![child]);
    let after = calls(&sim, &ids);
    for id in &ids {
        assert!(
            after[id] >= before[id] + 2,
            "{backend:?}: {id} stopped being polled after the step ({} -> {})",
            before[id],
            after[id]
        );
    }
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.contains("the system clock stepped by -6"),
        "the step was not reported:\n{text}"
    );
    check_invariants(&store).await;
}

crate::on_both_backends!(a_daemon_whose_clock_steps_back_keeps_polling);
