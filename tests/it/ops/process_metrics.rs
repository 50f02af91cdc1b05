//! The `process_*` families on a running daemon's `/metrics` (issue 22, item 9): the
//! names and types of the Prometheus client conventions, values a process can have, and
//! `promtool check metrics` silent about them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ice_sim::{Simulator, SimulatorConfig};

use crate::ops::daemon::{daemon_env, get, Daemon};
use crate::ops::metrics::promtool_check;
use crate::support::{Backend, TestDatabase};

/// The value of the sample line `name value` (no labels).
fn value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_metrics_follow_the_prometheus_conventions() {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let ids = sim.populate(3, 0);
    let db = TestDatabase::new(Backend::Sqlite).await;
    let projects = ids.join(",");
    let env = daemon_env(&db.url, &sim, &[("ICE_SYNC__SYNC__PROJECTS", &projects)]);
    let mut daemon = Daemon::start(&env);
    let addr = daemon.metrics_addr().await;
    let (status, text) = get(&addr, "/metrics").await;
    assert_eq!(status, 200, "{text}");

    for (family, kind) in [
        ("process_cpu_seconds_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_virtual_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_max_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} {kind}\n")),
            "no {kind} {family} in:\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "no HELP for {family}"
        );
    }
    let rss = value(&text, "process_resident_memory_bytes");
    assert!((1e6..1e9).contains(&rss), "resident {rss}");
    assert!(value(&text, "process_virtual_memory_bytes") >= rss);
    let open = value(&text, "process_open_fds");
    let max = value(&text, "process_max_fds");
    assert!(open >= 3.0 && open < max, "open {open} of {max}");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let started = value(&text, "process_start_time_seconds");
    assert!(
        started <= now + 1.0 && started > now - 120.0,
        "started {started}, now {now}"
    );
    assert!(value(&text, "process_cpu_seconds_total") >= 0.0);

    // Values follow the process: a later scrape sees the descriptors of that moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, later) = get(&addr, "/metrics").await;
    assert!(value(&later, "process_start_time_seconds") == started);

    let (ok, said) = promtool_check(&text);
    assert!(
        ok && said.trim().is_empty(),
        "promtool check metrics:\n{said}\n---\n{text}"
    );
    daemon.stop().await;
}
