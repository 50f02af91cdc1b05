//! `systemctl reload` / SIGHUP on the real binary: a config file change is applied
//! without a restart (tracked IDs, schedule, log level), what needs a restart is named,
//! and an invalid file is refused with the running configuration kept. The same holds
//! for the file of IDs `sync.projects_file` names.

use std::time::Duration;

use ice_sync::simulator::{Simulator, SimulatorConfig};

use crate::on_both_backends;
use crate::ops::daemon::{daemon_env, Daemon};
use crate::support::{Backend, TestDatabase};

on_both_backends!(sighup_applies_a_changed_config_and_refuses_a_broken_one);
on_both_backends!(a_projects_file_is_tracked_and_read_again_on_sighup);

async fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !check() {
        assert!(
            start.elapsed() < timeout,
            "{what} did not happen within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// After a refused reload: `project` is still polled, and SIGTERM still exits cleanly.
async fn polls_on_then_stops(mut daemon: Daemon, sim: &Simulator, project: &str) {
    let before = sim.calls(project);
    wait_until(
        "polling after a refused reload",
        Duration::from_secs(5),
        || sim.calls(project) > before,
    )
    .await;
    daemon.signal("-TERM");
    let status = daemon.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}\n{}", daemon.log());
}

async fn sighup_applies_a_changed_config_and_refuses_a_broken_one(backend: Backend) {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let first = sim.add_regular("reload1").project_id.expect("id");
    let second = sim.add_regular("reload2").project_id.expect("id");
    let db = TestDatabase::new(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("config.toml");
    let write = |text: &str| std::fs::write(&file, text).expect("config file");
    write(&format!(
        "[sync]\nschedule = \"*/2 * * * * *\"\nprojects = [\"{first}\"]\n[log]\nlevel = \"info\"\n"
    ));
    let mut env = daemon_env(&db.url, &sim, &[]);
    // The file decides what this test changes; the environment would win over it.
    env.retain(|(k, _)| k != "ICE_SYNC__SYNC__SCHEDULE");
    env.push(("ICE_SYNC_CONFIG".into(), file.display().to_string()));
    let mut daemon = Daemon::start(&env);
    wait_until("the first project's poll", Duration::from_secs(20), || {
        sim.calls(&first) >= 1
    })
    .await;
    assert_eq!(sim.calls(&second), 0);

    // A new project, a faster schedule, debug logging and a restart-only key.
    write(&format!(
        "[sync]\nschedule = \"* * * * * *\"\nprojects = [\"{first}\", \"{second}\"]\n\
         lease_ttl = \"90s\"\n[log]\nlevel = \"debug\"\n"
    ));
    daemon.signal("-HUP");
    let line = daemon
        .wait_for_line(
            |l| l.contains("configuration reloaded"),
            Duration::from_secs(10),
        )
        .await;
    assert!(
        line.contains("sync.projects") && line.contains("sync.schedule"),
        "{line}"
    );
    daemon
        .wait_for_line(
            |l| l.contains("sync.lease_ttl") && l.contains("needs a restart"),
            Duration::from_secs(5),
        )
        .await;
    wait_until("the added project's poll", Duration::from_secs(10), || {
        sim.calls(&second) >= 1
    })
    .await;
    // Every second now, not every two.
    let before = sim.calls(&first);
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    let per_3s = sim.calls(&first) - before;
    assert!(
        per_3s >= 3,
        "{per_3s} polls in 3.2 s after the schedule changed to every second"
    );
    daemon
        .wait_for_line(
            |l| l.contains("\"level\":\"DEBUG\""),
            Duration::from_secs(5),
        )
        .await;

    // A broken file: refused, the running configuration stays and polling goes on.
    write("[sync]\nschedule = \"not cron\"\n");
    daemon.signal("-HUP");
    daemon
        .wait_for_line(
            |l| l.contains("the configuration was not reloaded") && l.contains("sync.schedule"),
            Duration::from_secs(10),
        )
        .await;
    polls_on_then_stops(daemon, &sim, &second).await;
}

async fn a_projects_file_is_tracked_and_read_again_on_sighup(backend: Backend) {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let first = sim.add_regular("listed1").project_id.expect("id");
    let second = sim.add_regular("listed2").project_id.expect("id");
    let db = TestDatabase::new(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let ids = dir.path().join("projects.txt");
    let write_ids = |text: &str| std::fs::write(&ids, text).expect("ID file");
    write_ids(&format!("# the launch campaign\n{first}\n"));
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        format!(
            "[sync]\nschedule = \"* * * * * *\"\nprojects_file = {:?}\n",
            ids.display().to_string()
        ),
    )
    .expect("config file");
    let mut env = daemon_env(&db.url, &sim, &[]);
    env.retain(|(k, _)| k != "ICE_SYNC__SYNC__SCHEDULE");
    env.push(("ICE_SYNC_CONFIG".into(), file.display().to_string()));
    let mut daemon = Daemon::start(&env);
    wait_until("the listed project's poll", Duration::from_secs(20), || {
        sim.calls(&first) >= 1
    })
    .await;
    assert_eq!(sim.calls(&second), 0);

    // The config file is unchanged; only the list is. A reload reads it again.
    write_ids(&format!("{first}\n{second} # added later\n"));
    daemon.signal("-HUP");
    let line = daemon
        .wait_for_line(
            |l| l.contains("configuration reloaded"),
            Duration::from_secs(10),
        )
        .await;
    assert!(line.contains("sync.projects"), "{line}");
    wait_until("the added project's poll", Duration::from_secs(10), || {
        sim.calls(&second) >= 1
    })
    .await;

    // A bad line: the reload is refused, names the file and line, and polling goes on.
    write_ids(&format!("{first}\nnot an id\n"));
    daemon.signal("-HUP");
    daemon
        .wait_for_line(
            |l| {
                l.contains("the configuration was not reloaded")
                    && l.contains("sync.projects_file")
                    && l.contains(":2:")
            },
            Duration::from_secs(10),
        )
        .await;
    polls_on_then_stops(daemon, &sim, &second).await;
}
