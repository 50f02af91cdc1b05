//! A stop while the daemon is still starting (a large `sync.projects_file` being
//! reconciled) is a clean exit: the signal handlers are installed before the start-up
//! work, so SIGTERM never meets the default action that kills the process.

use std::time::Duration;

use ice_sim::{Simulator, SimulatorConfig};

use crate::on_both_backends;
use crate::ops::daemon::{daemon_env, Daemon};
use crate::support::{Backend, TestDatabase};

on_both_backends!(sigterm_during_start_up_exits_zero);

async fn sigterm_during_start_up_exits_zero(backend: Backend) {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let db = TestDatabase::new(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let ids = dir.path().join("projects.txt");
    let listed: Vec<String> = (0..50_000).map(|n| format!("startup{n:06}")).collect();
    std::fs::write(&ids, listed.join("\n")).expect("ID file");
    let ids = ids.display().to_string();
    let env = daemon_env(&db.url, &sim, &[("ICE_SYNC__SYNC__PROJECTS_FILE", &ids)]);
    let mut daemon = Daemon::start(&env);
    // Logged by the start-up work itself, before the daemon says it started.
    daemon
        .wait_for_line(
            |l| l.contains("tracked projects updated from sync.projects"),
            Duration::from_secs(60),
        )
        .await;
    daemon.signal("-TERM");
    let status = daemon.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", daemon.log());
}
