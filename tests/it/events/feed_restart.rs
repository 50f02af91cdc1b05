//! The webhook across a crash: the real daemon, SIGKILLed while every delivery fails,
//! then started again with the receiver back. Delivery state is in the database, so
//! nothing is lost, and whatever is sent again carries a key (and bytes) already seen.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ice_sim::{Simulator, SimulatorConfig};
use ice_sync::storage::Store;

use super::receiver::{expected_transitions, verify, Receiver};
use crate::on_both_backends;
use crate::support::{count, env_for, open_store, signal, spawn_logged, Backend, TestDatabase};

on_both_backends!(a_restart_resends_what_was_not_acknowledged);

const SECRET: &str = "restart-test-secret";

async fn wait_until(store: &Store, what: &str, sql: &str, want: i64, log: &std::path::Path) {
    let start = Instant::now();
    loop {
        let n = count(store, sql).await;
        if n == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what}: {n}, wanted {want}; daemon log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const HISTORY: &str = "SELECT count(*) FROM editing_project_history";
const OUTBOX: &str = "SELECT count(*) FROM webhook_outbox";

async fn a_restart_resends_what_was_not_acknowledged(backend: Backend) {
    let up = Arc::new(AtomicBool::new(false));
    let receiver = {
        let up = up.clone();
        Receiver::start(move |_, _| if up.load(Ordering::SeqCst) { 200 } else { 500 }).await
    };
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let ids = ["rs1", "rs2"];
    for id in ids {
        sim.add_regular(id);
    }
    let db = TestDatabase::new(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let secret_file = dir.path().join("webhook-secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("secret file");
    let secret_path = secret_file.to_string_lossy().to_string();
    let env = env_for(
        &db.url,
        &sim,
        &[
            ("ICE_SYNC__SYNC__PROJECTS", "rs1,rs2"),
            ("ICE_SYNC__SYNC__SCHEDULE", "* * * * * *"),
            ("ICE_SYNC__WEBHOOK__URL", &receiver.url),
            ("ICE_SYNC__WEBHOOK__SECRET_FILE", &secret_path),
            ("ICE_SYNC__WEBHOOK__TIMEOUT", "2s"),
            ("ICE_SYNC__WEBHOOK__MAX_BACKOFF", "200ms"),
        ],
    );

    // Migrated here first: two processes migrating one SQLite file at once would collide.
    let store = open_store(&db.url).await;
    let first_log = dir.path().join("first.log");
    let first = spawn_logged(&env, &["run"], &first_log);
    wait_until(&store, "first observations", HISTORY, 2, &first_log).await;
    for id in ids {
        assert!(sim.advance(id));
    }
    wait_until(&store, "second observations", HISTORY, 4, &first_log).await;
    // Each project's first row has failed at least once, and nothing was acknowledged.
    let start = Instant::now();
    while !ids.iter().all(|id| {
        receiver
            .hits()
            .iter()
            .any(|h| h.key.as_deref() == Some(&format!("{id}:1")))
    }) {
        assert!(start.elapsed() < Duration::from_secs(30), "no attempts");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(&first, "-KILL");
    tokio::task::spawn_blocking(move || {
        let mut first = first;
        first.wait()
    })
    .await
    .expect("join")
    .expect("reaped");
    let failed_before: Vec<String> = receiver
        .hits()
        .iter()
        .filter_map(|h| h.key.clone())
        .collect();
    assert!(receiver.hits().iter().all(|h| !h.acknowledged()));
    // Nothing was lost with the process: every transition still waits in the outbox.
    assert_eq!(count(&store, OUTBOX).await, 4);

    // While no daemon runs, the projects move on; then the receiver comes back.
    for id in ids {
        assert!(sim.advance(id));
    }
    up.store(true, Ordering::SeqCst);
    let second_log = dir.path().join("second.log");
    let second = spawn_logged(&env, &["run"], &second_log);
    wait_until(&store, "catching up", HISTORY, 6, &second_log).await;
    let expected = expected_transitions(&store, &ids).await;
    receiver
        .wait_for_acknowledged(&expected, Duration::from_secs(60))
        .await;
    wait_until(&store, "outbox drained", OUTBOX, 0, &second_log).await;
    signal(&second, "-TERM");
    let status = tokio::task::spawn_blocking(move || {
        let mut second = second;
        second.wait()
    })
    .await
    .expect("join")
    .expect("reaped");
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(&second_log).unwrap_or_default()
    );
    store.close().await;

    let hits = receiver.hits();
    verify(&hits, SECRET, &expected, true);
    // The keys tried before the crash were sent again after it: the same keys.
    for key in failed_before {
        assert!(
            hits.iter()
                .any(|h| h.acknowledged() && h.key.as_deref() == Some(&key)),
            "{key} was acknowledged after the restart"
        );
    }
}
