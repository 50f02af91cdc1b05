//! A reload as systemd sees it (issue 22, item 9): SIGHUP brings `RELOADING=1` with
//! `MONOTONIC_USEC`, then `READY=1` with the outcome as status, for a change that is
//! applied and for one that is refused (the daemon keeps running on the old settings).

use std::time::{Duration, Instant};

use ice_sim::{Simulator, SimulatorConfig};
use tokio::net::UnixDatagram;

use crate::ops::daemon::{daemon_env, Daemon};
use crate::support::{Backend, TestDatabase};

/// Notifications up to and including the first one holding `line`, each as its lines.
async fn until(socket: &UnixDatagram, daemon: &Daemon, line: &str) -> Vec<Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = match tokio::time::timeout(left, socket.recv(&mut buf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => panic!("notify socket: {e}"),
            Err(_) => panic!("no {line} within 15 s: {seen:?}\nlog:\n{}", daemon.log()),
        };
        let message: Vec<String> = String::from_utf8_lossy(&buf[..n])
            .lines()
            .map(str::to_string)
            .collect();
        let done = message.iter().any(|l| l == line);
        seen.push(message);
        if done {
            return seen;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_notifies_reloading_then_ready_whether_applied_or_refused() {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let db = TestDatabase::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("dir");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    let file = dir.path().join("config.toml");
    std::fs::write(&file, "[sync]\nschedule = \"0 0 * * * *\"\n").expect("write");
    let (socket_text, file_text) = (
        socket_path.display().to_string(),
        file.display().to_string(),
    );
    let env = daemon_env(
        &db.url,
        &sim,
        &[
            ("NOTIFY_SOCKET", socket_text.as_str()),
            ("ICE_SYNC_CONFIG", file_text.as_str()),
        ],
    );
    // The file's schedule, not the test default's.
    let env: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k != "ICE_SYNC__SYNC__SCHEDULE")
        .collect();
    let mut daemon = Daemon::start(&env);
    until(&socket, &daemon, "READY=1").await;

    for (config, outcome) in [
        (
            "[sync]\nschedule = \"0 30 * * * *\"\n",
            "configuration reloaded",
        ),
        (
            "[sync]\nschedule = \"not cron\"\n",
            "the configuration was not reloaded",
        ),
    ] {
        std::fs::write(&file, config).expect("write");
        daemon.signal("-HUP");
        let seen = until(&socket, &daemon, "RELOADING=1").await;
        let reloading = seen.last().expect("a message");
        assert!(
            reloading.iter().any(|l| l
                .strip_prefix("MONOTONIC_USEC=")
                .is_some_and(|v| v.parse::<u64>().is_ok_and(|us| us > 0))),
            "RELOADING=1 without MONOTONIC_USEC: {reloading:?}"
        );
        let seen = until(&socket, &daemon, "READY=1").await;
        let ready = seen.last().expect("a message");
        assert!(
            ready.iter().any(|l| l.starts_with("STATUS=")),
            "READY=1 without a status: {ready:?}"
        );
        daemon
            .wait_for_line(|l| l.contains(outcome), Duration::from_secs(10))
            .await;
    }
    daemon.stop().await;
}
