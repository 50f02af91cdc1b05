//! `GET /metrics` of a running daemon: Prometheus text that `promtool check metrics`
//! accepts without a single complaint, with every family the operations guide promises
//! and no project ID anywhere.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ice_sim::{FaultConfig, Simulator, SimulatorConfig};

use crate::ops::daemon::{daemon_env, get, Daemon};
use crate::support::{Backend, ChildGuard, TestDatabase};

/// (family, type) docs/operations.md lists.
const FAMILIES: &[(&str, &str)] = &[
    ("ice_sync_cycles_total", "counter"),
    ("ice_sync_cycle_duration_seconds", "histogram"),
    ("ice_sync_api_requests_total", "counter"),
    ("ice_sync_api_request_duration_seconds", "histogram"),
    ("ice_sync_transitions_total", "counter"),
    ("ice_sync_tracked_projects", "gauge"),
    ("ice_sync_last_success_timestamp_seconds", "gauge"),
    ("ice_sync_last_cycle_timestamp_seconds", "gauge"),
    ("ice_sync_api_retries_total", "counter"),
    ("ice_sync_rate_limiter_waits_total", "counter"),
    ("ice_sync_ticks_skipped_total", "counter"),
    ("ice_sync_projects_polled_total", "counter"),
    ("ice_sync_project_failures_total", "counter"),
    ("ice_sync_build_info", "gauge"),
    ("ice_sync_clock_steps_total", "counter"),
    ("ice_sync_cycle_overruns_total", "counter"),
    ("ice_sync_writes_fenced_total", "counter"),
    ("ice_sync_storage_errors_total", "counter"),
    ("ice_sync_removals_suppressed_total", "counter"),
    ("ice_sync_gap_transitions_total", "counter"),
    ("ice_sync_oldest_observation_age_seconds", "gauge"),
    ("ice_sync_webhook_deliveries_total", "counter"),
    ("ice_sync_webhook_dropped_total", "counter"),
    ("ice_sync_pruned_rows_total", "counter"),
];

/// The value of the first sample line starting with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

pub(crate) fn promtool_check(text: &str) -> (bool, String) {
    let mut child = ChildGuard::spawn(
        Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .unwrap_or_else(|e| {
        panic!("promtool is needed for this test ({e}); install the Debian package `prometheus` (.ci/run does)")
    });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_passes_promtool_and_has_every_family() {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let ids = sim.populate(20, 5);
    let db = TestDatabase::new(Backend::Sqlite).await;
    let projects = ids.join(",");
    // A rate limit and some throttling, so waits and retries are counted too.
    let env = daemon_env(
        &db.url,
        &sim,
        &[
            ("ICE_SYNC__SYNC__PROJECTS", &projects),
            ("ICE_SYNC__SYNC__MAX_QPS", "200"),
        ],
    );
    sim.set_faults(FaultConfig {
        throttle: 0.1,
        ..Default::default()
    });
    let mut daemon = Daemon::start(&env);
    let addr = daemon.metrics_addr().await;

    // Wait for a few cycles, with projects moving between them.
    let start = Instant::now();
    let text = loop {
        let (status, text) = get(&addr, "/metrics").await;
        assert_eq!(status, 200, "{text}");
        let done = ["success", "partial"]
            .iter()
            .filter_map(|o| sample(&text, &format!("ice_sync_cycles_total{{outcome=\"{o}\"}}")))
            .sum::<f64>();
        if done >= 3.0 && sample(&text, "ice_sync_api_retries_total").unwrap_or(0.0) > 0.0 {
            break text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not enough cycles in 30 s:\n{text}\nlog:\n{}",
            daemon.log()
        );
        sim.advance_random(0.3);
        tokio::time::sleep(Duration::from_millis(300)).await;
    };

    let (ok, said) = promtool_check(&text);
    assert!(
        ok && said.trim().is_empty(),
        "promtool check metrics:\n{said}\n---\n{text}"
    );
    for (family, kind) in FAMILIES {
        assert!(
            text.contains(&format!("# TYPE {family} {kind}\n")),
            "no {kind} {family} in:\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "no HELP for {family}"
        );
    }
    assert!(
        text.contains("ice_sync_cycle_duration_seconds_bucket{le=\"0.5\"}"),
        "{text}"
    );
    assert!(
        text.contains("ice_sync_api_requests_total{action=\"GetEditingProject\",outcome=\"retryable\",code=\"Throttling.User\"}"),
        "{text}"
    );
    assert_eq!(
        sample(&text, "ice_sync_tracked_projects"),
        Some(25.0),
        "{text}"
    );
    assert!(sample(&text, "ice_sync_last_success_timestamp_seconds").unwrap_or(0.0) > 1.7e9);
    // Read from the database at the scrape: every project was polled moments ago.
    for set in ["unsettled", "all"] {
        let age = sample(
            &text,
            &format!("ice_sync_oldest_observation_age_seconds{{projects=\"{set}\"}}"),
        );
        assert!(
            age.is_some_and(|a| (0.0..60.0).contains(&a)),
            "{set}: {age:?}\n{text}"
        );
    }
    assert!(
        sample(&text, "ice_sync_rate_limiter_waits_total").unwrap_or(0.0) > 0.0,
        "{text}"
    );
    for id in &ids {
        assert!(
            !text.contains(id.as_str()),
            "project ID {id} in the metrics"
        );
    }

    let (status, body) = get(&addr, "/nope").await;
    assert_eq!(status, 404, "{body}");
    daemon.stop().await;
}
