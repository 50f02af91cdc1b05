//! `ice-sync refresh` (the real binary): with a running daemon the daemon polls and the
//! command reports; without one the command polls itself; untracked IDs are refused with
//! nothing requested.

use std::time::Duration;

use crate::on_both_backends;
use crate::ops::daemon::{describe, run_to_end};
use crate::support::{count, Backend};

use super::daemon::Fleet;

on_both_backends!(
    refresh_with_a_daemon_reports_the_daemons_polls,
    refresh_without_a_daemon_polls_itself,
    refresh_refuses_untracked_ids_and_requests_nothing,
);

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn refresh_with_a_daemon_reports_the_daemons_polls(backend: Backend) {
    let fleet = Fleet::new(backend, 4).await;
    let daemon = fleet.daemon(&[]).await;
    fleet.wait_settled().await;
    let (a, b) = (fleet.ids[0].clone(), fleet.ids[1].clone());
    fleet.sim.set_status(&a, Some("Producing"), None);
    let before = (fleet.sim.calls(&a), fleet.sim.calls(&b));
    let started = std::time::Instant::now();
    let out = run_to_end(&fleet.env(&[]), &["refresh", &a, &b]).await;
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = stdout(&out);
    assert!(
        text.contains("2 of 2 project(s) polled by the running daemon"),
        "{}",
        describe(&out)
    );
    let row = text
        .lines()
        .find(|l| l.starts_with(a.as_str()))
        .unwrap_or_else(|| panic!("no row for {a}: {text}"));
    assert!(
        row.contains("Producing"),
        "the row shows the fresh status: {row}"
    );
    assert_eq!(
        (fleet.sim.calls(&a), fleet.sim.calls(&b)),
        (before.0 + 1, before.1 + 1),
        "one poll each, by the daemon alone"
    );
    println!("{backend:?}: refresh with a daemon took {took:?}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    daemon.stop().await;
}

async fn refresh_without_a_daemon_polls_itself(backend: Backend) {
    let fleet = Fleet::new(backend, 4).await;
    let env = fleet.bare_env();
    // Tracked, never polled yet: the command's own refresh cycle polls them.
    let out = run_to_end(
        &env,
        &["track", "add", &fleet.ids[0], &fleet.ids[1], &fleet.ids[2]],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    fleet.sim.set_status(&fleet.ids[1], Some("Producing"), None);
    let out = run_to_end(&env, &["refresh", &fleet.ids[0], &fleet.ids[1]]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        stdout(&out).contains("2 of 2 project(s) polled by this command"),
        "{}",
        describe(&out)
    );
    let calls: Vec<u64> = fleet.ids.iter().map(|id| fleet.sim.calls(id)).collect();
    assert_eq!(calls, vec![1, 1, 0, 0], "only what was asked for");

    // --status picks what the database says is in that state now.
    let out = run_to_end(&env, &["refresh", "--status", "Producing"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        stdout(&out).contains("1 of 1 project(s) polled"),
        "{}",
        describe(&out)
    );
    assert_eq!(fleet.sim.calls(&fleet.ids[1]), 2);

    // A poll that fails is a non-zero exit with one line naming the project.
    fleet.sim.remove(&fleet.ids[2]);
    let out = run_to_end(&env, &["refresh", "--all"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: 1 of 3 poll(s) failed") && last.contains(&fleet.ids[2]),
        "{}",
        describe(&out)
    );
    assert_eq!(
        fleet
            .ids
            .iter()
            .map(|id| fleet.sim.calls(id))
            .collect::<Vec<_>>(),
        vec![2, 3, 1, 0],
        "--all: every tracked project once more"
    );
    let runs = count(
        &fleet.store,
        "SELECT count(*) FROM sync_runs WHERE trigger = 'request'",
    )
    .await;
    assert_eq!(runs, 3, "each refresh ran one refresh cycle");
}

async fn refresh_refuses_untracked_ids_and_requests_nothing(backend: Backend) {
    let fleet = Fleet::new(backend, 2).await;
    let env = fleet.bare_env();
    let out = run_to_end(&env, &["track", "add", &fleet.ids[0]]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let out = run_to_end(&env, &["refresh", &fleet.ids[0], "ghost-project"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("ghost-project") && err.contains("ice-sync track add ghost-project"),
        "{err}"
    );
    assert_eq!(
        count(
            &fleet.store,
            "SELECT count(*) FROM tracked_projects WHERE requested_at IS NOT NULL"
        )
        .await,
        0,
        "nothing requested"
    );
    assert_eq!(fleet.sim.total_calls(), 0);

    // Bad input never reaches the database either.
    let out = run_to_end(&env, &["refresh", "not an id"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let out = run_to_end(&env, &["refresh"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}
