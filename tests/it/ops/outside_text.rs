//! Strings from ICE and from callers are trusted no further than SPEC allows (issue 20,
//! finding 5): stored exactly except U+0000, on every write path including error
//! records; a NUL in a signed callback or a `POST /refresh` status is the caller's
//! mistake (400), not ours (503); control characters never reach a terminal or start a
//! log line of their own; and ICE's values cannot grow `/metrics` without end.

use std::time::Duration;

use ice_sim::{Simulator, SimulatorConfig};
use ice_sync::callback::signature;

use crate::on_both_backends;
use crate::ops::daemon::{daemon_env, describe, get, run_to_end, Daemon};
use crate::support::{env_for, spawn_app, spawn_app_with, Backend, TestDatabase};

on_both_backends!(
    a_nul_in_an_ice_error_is_recorded_with_its_backoff,
    a_nul_in_a_signed_callback_is_a_400_and_stores_nothing,
    terminal_tables_escape_control_characters,
    a_daemon_refuses_a_nul_status_and_bounds_status_labels,
);

/// An ICE error whose message carries U+0000, an ANSI escape and a newline.
const ODD_MESSAGE: &str = "locked by \0 someone \u{1b}[31m\nERROR forged line";

async fn a_nul_in_an_ice_error_is_recorded_with_its_backoff(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sim.add_regular("nulerr1");
    app.track(&["nulerr1"]).await;
    app.sim
        .set_api_error(Some((400, "ProjectLocked", ODD_MESSAGE)));
    let first = app.cycle().await;
    // Counted once (a failed failure record counted the project again).
    assert_eq!((first.polled, first.failures), (1, 1), "{first:?}");
    // The cycle's row is closed, not left `running`.
    let open = app
        .count("SELECT count(*) FROM sync_runs WHERE outcome = 'running'")
        .await;
    assert_eq!(open, 0);
    let rows = app
        .rows("SELECT last_error, consecutive_failures FROM tracked_projects")
        .await;
    let last_error = rows[0][0].clone().expect("last_error is recorded");
    assert!(
        last_error.contains("ProjectLocked") && last_error.contains('\u{FFFD}'),
        "{last_error:?}"
    );
    assert!(!last_error.contains('\0'));
    assert_eq!(rows[0][1].as_deref(), Some("1"));
    // The failure's backoff is recorded: the project is no longer due at every tick
    // (how long it waits depends on the schedule, which this app leaves to the test).
    let backing_off = app
        .count("SELECT count(*) FROM tracked_projects WHERE NOT every_tick")
        .await;
    let seen = app
        .rows("SELECT next_poll_at, last_attempt_at, every_tick FROM tracked_projects")
        .await;
    assert_eq!(backing_off, 1, "{seen:?}");
}

const URL: &str = "https://ice-sync.example.com/ice/events";
const KEY: &str = "TestKey001";

async fn a_nul_in_a_signed_callback_is_a_400_and_stores_nothing(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("ICE_SYNC__CALLBACK__LISTEN", "127.0.0.1:0"),
            ("ICE_SYNC__CALLBACK__URL", URL),
            ("ICE_SYNC__CALLBACK__AUTH_KEY", KEY),
        ],
    )
    .await;
    app.sim.add_regular("nulcb1");
    app.track(&["nulcb1"]).await;
    let bound = ice_sync::app::bind_callbacks(&app.settings, &app.engine)
        .await
        .expect("binds")
        .expect("callback.listen is set");
    let addr = bound.local_addr().expect("bound address");
    let _serving = bound.serve(app.shutdown.clone());
    let body = |status: &str, event_time: &str| {
        serde_json::json!({
            "EventType": "ProduceMediaComplete",
            "EventTime": event_time,
            "MessageBody": {"Status": status, "JobId": "job-nul-1", "ProjectId": "nulcb1"}
        })
        .to_string()
    };
    for (status, event_time) in [
        ("Succ\0ess", "2024-06-10T06:13:20Z"),
        ("Success", "2024-06-10T06:13:20Z\0"),
    ] {
        let ts = chrono::Utc::now().timestamp().to_string();
        let response = reqwest::Client::new()
            .post(format!("http://{addr}/ice/events"))
            .header("X-ICE-TIMESTAMP", &ts)
            .header("X-ICE-SIGNATURE", signature::digest(URL, &ts, KEY))
            .body(body(status, event_time))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("the endpoint answers");
        let code = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(code, 400, "{status:?} {event_time:?}: {text}");
        assert!(text.contains("NUL"), "{text}");
    }
    assert_eq!(app.count("SELECT count(*) FROM callback_events").await, 0);
    let queued = app
        .count("SELECT count(*) FROM tracked_projects WHERE requested_at IS NOT NULL")
        .await;
    assert_eq!(queued, 0);
}

async fn terminal_tables_escape_control_characters(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sim.add_regular("ansi1");
    app.sim.set_status(
        "ansi1",
        Some("\u{1b}[2J\u{1b}[31mProducing\nforged row"),
        None,
    );
    app.track(&["ansi1"]).await;
    app.cycle().await;
    let stored = app
        .rows("SELECT status FROM editing_projects WHERE project_id = 'ansi1'")
        .await;
    // Stored exactly as ICE sent it.
    assert_eq!(
        stored[0][0].as_deref(),
        Some("\u{1b}[2J\u{1b}[31mProducing\nforged row")
    );
    let env = env_for(&app.db.url, &app.sim, &[]);
    for args in [
        &["status"][..],
        &["history", "ansi1"],
        &["status", "--stale", "1s"],
    ] {
        let out = run_to_end(&env, args).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !stdout.contains('\u{1b}') && !stdout.contains("\nforged row"),
            "{args:?}: {}",
            describe(&out)
        );
        if args[0] != "status" || args.len() == 1 {
            assert!(
                stdout.contains("\\u{1b}[31mProducing\\nforged row"),
                "{stdout}"
            );
        }
    }
}

/// `ice_sync_transitions_total` series as `/metrics` shows them.
fn transition_series(metrics: &str) -> Vec<String> {
    metrics
        .lines()
        .filter(|l| l.starts_with("ice_sync_transitions_total{"))
        .map(str::to_string)
        .collect()
}

async fn a_daemon_refuses_a_nul_status_and_bounds_status_labels(backend: Backend) {
    const TOKEN: &str = "a-long-random-refresh-token-0123456789";
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let id = sim.add_regular("labels1").project_id.expect("id");
    let db = TestDatabase::new(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let token_file = dir.path().join("refresh-token");
    std::fs::write(&token_file, TOKEN).expect("token");
    let token_path = token_file.display().to_string();
    let env = daemon_env(
        &db.url,
        &sim,
        &[
            ("ICE_SYNC__SYNC__PROJECTS", &id),
            ("ICE_SYNC__METRICS__REFRESH_TOKEN_FILE", &token_path),
            ("ICE_SYNC__SYNC__SETTLED_INTERVAL", "1s"),
        ],
    );
    let mut daemon = Daemon::start(&env);
    let addr = daemon.metrics_addr().await;

    let response = reqwest::Client::new()
        .post(format!("http://{addr}/refresh"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(r#"{"status":"Produc\u0000ing"}"#)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("POST /refresh");
    let code = response.status().as_u16();
    assert_eq!(code, 400, "{}", response.text().await.unwrap_or_default());

    // A status that changes at every poll, 8 KB each.
    let mut seen = Vec::new();
    for round in 0..4 {
        let status = format!("Weird{round}-{}", "x".repeat(8 * 1024));
        sim.set_status(&id, Some(&status), None);
        let before = sim.calls(&id);
        let started = std::time::Instant::now();
        while sim.calls(&id) <= before {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{}",
                daemon.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        seen.push(status);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, metrics) = get(&addr, "/metrics").await;
    let series = transition_series(&metrics);
    for status in &seen {
        assert!(
            !metrics.contains(&status[..12]),
            "a label holds {status:.12}"
        );
    }
    assert!(
        series.iter().any(|l| l.contains("status=\"other\"")),
        "{series:?}"
    );
    assert!(
        metrics.len() < 64 * 1024,
        "/metrics is {} bytes",
        metrics.len()
    );
    daemon.stop().await;
}

/// A message quoting ICE's text cannot start a log line of its own (journald would take
/// it as an entry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_log_lines_cannot_be_forged_by_an_ice_error() {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let id = sim.add_regular("forge1").project_id.expect("id");
    sim.set_api_error(Some((400, "ProjectLocked", ODD_MESSAGE)));
    let db = TestDatabase::new(Backend::Sqlite).await;
    for format in ["plain", "pretty"] {
        let env = env_for(
            &db.url,
            &sim,
            &[
                ("ICE_SYNC__SYNC__PROJECTS", &id),
                ("ICE_SYNC__LOG__FORMAT", format),
                ("ICE_SYNC__SYNC__MAX_RETRIES", "0"),
            ],
        );
        let out = run_to_end(&env, &["run", "--once", "--all"]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("ProjectLocked"),
            "{format}: {}",
            describe(&out)
        );
        assert!(
            !stderr.lines().any(|l| l.starts_with("ERROR forged")),
            "{format}: {stderr}"
        );
        assert!(!stderr.contains('\0'), "{format}: {stderr:?}");
        if format == "plain" {
            assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
        }
    }
}
