//! The smaller findings of issue 20 (7): a guessable `POST /refresh` token stops
//! start-up, and start-up closes only this replica's own abandoned runs, compared whole:
//! before, it ran `replica_id LIKE 'HOST:%'` (a live sibling daemon's running cycle was
//! marked `aborted`) or `LIKE '<named id>'` (where `_` and `%` matched other replicas).
//! (The bounded refusal log is checked by `ops::exhaustion` and `ops::refusals`' unit test.)

use std::process::Command;

use ice_sync::config::replica::hostname;

use crate::on_both_backends;
use crate::ops::daemon::{daemon_env, describe, run_to_end};
use crate::support::{spawn_app_with, Backend, TestApp, TestDatabase};

on_both_backends!(
    a_short_refresh_token_stops_start_up,
    start_up_closes_only_its_own_abandoned_runs
);

async fn a_short_refresh_token_stops_start_up(backend: Backend) {
    let sim = ice_sim::Simulator::start(Default::default())
        .await
        .expect("sim");
    let db = TestDatabase::new(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("refresh-token");
    std::fs::write(&file, "hunter2-abc\n").expect("token");
    let path = file.display().to_string();
    let env = daemon_env(
        &db.url,
        &sim,
        &[("ICE_SYNC__METRICS__REFRESH_TOKEN_FILE", &path)],
    );
    let out = run_to_end(&env, &["run"]).await;
    let text = describe(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("shorter than 16 bytes") && text.contains(&path),
        "{text}"
    );
    assert!(
        !text.contains("hunter2"),
        "the token itself is never shown: {text}"
    );
}

async fn insert_running(app: &TestApp, replica: &str) {
    app.execute(&format!(
        "INSERT INTO sync_runs (started_at, outcome, replica_id) \
         VALUES ('2026-01-01T00:00:00Z', 'running', '{replica}')"
    ))
    .await;
}

async fn outcome_of(app: &TestApp, replica: &str) -> String {
    let rows = app
        .rows(&format!(
            "SELECT outcome FROM sync_runs WHERE replica_id = '{replica}'"
        ))
        .await;
    rows[0][0].clone().expect("outcome")
}

async fn start_up_closes_only_its_own_abandoned_runs(backend: Backend) {
    let own = "edge_%";
    let app = spawn_app_with(backend, &[("ICE_SYNC__SYNC__REPLICA_ID", own)]).await;
    // A live sibling on this host (a real process), and one that is gone.
    let mut sibling = Command::new("sleep").arg("60").spawn().expect("sleep");
    let mut gone = Command::new("true").spawn().expect("true");
    let gone_pid = gone.id();
    gone.wait().expect("wait");
    let host = hostname();
    let live_id = format!("{host}:{}:0123abcd", sibling.id());
    let dead_id = format!("{host}:{gone_pid}:89abcdef");
    for replica in [own, "edgeX1", "edge_other", &live_id, &dead_id] {
        insert_running(&app, replica).await;
    }

    let abandoned = ice_sync::app::abandon_previous_runs(app.store(), own)
        .await
        .expect("cleanup");
    let _ = sibling.kill();
    let _ = sibling.wait();

    assert_eq!(outcome_of(&app, own).await, "aborted");
    assert_eq!(outcome_of(&app, &dead_id).await, "aborted");
    for untouched in ["edgeX1", "edge_other", live_id.as_str()] {
        assert_eq!(outcome_of(&app, untouched).await, "running", "{untouched}");
    }
    assert_eq!(abandoned, 2);
}
