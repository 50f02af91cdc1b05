//! A running daemon (the real binary) serving requests: picked up within a second of the
//! commit, through the refresh cycle; on PostgreSQL with two replicas, one request is
//! exactly one `GetEditingProject` call.

use std::time::{Duration, Instant};

use ice_sim::{Simulator, SimulatorConfig};
use ice_sync::storage::{RefreshSource, RefreshTarget, Store};

use crate::on_both_backends;
use crate::ops::daemon::{daemon_env, Daemon};
use crate::support::{open_store, project_ids, rows, Backend, TestDatabase};

on_both_backends!(a_running_daemon_picks_a_request_up_within_a_second);

/// Only the start-up cycle runs on its own: every later poll is a request's.
pub const ONCE_A_YEAR: &str = "0 0 0 1 1 *";

/// Everything a test with daemons needs.
pub struct Fleet {
    pub sim: Simulator,
    pub db: TestDatabase,
    pub store: Store,
    pub ids: Vec<String>,
}

impl Fleet {
    pub async fn new(backend: Backend, projects: usize) -> Fleet {
        let sim = Simulator::start(SimulatorConfig::default())
            .await
            .expect("sim");
        let ids = sim.populate(projects, 0);
        let db = TestDatabase::new(backend).await;
        let store = open_store(&db.url).await;
        Fleet {
            sim,
            db,
            store,
            ids,
        }
    }

    /// The daemon environment: these projects, a schedule that never ticks in a test.
    pub fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let projects = self.ids.join(",");
        let mut all = vec![
            ("ICE_SYNC__SYNC__PROJECTS", projects.as_str()),
            ("ICE_SYNC__SYNC__SCHEDULE", ONCE_A_YEAR),
        ];
        all.extend_from_slice(extra);
        daemon_env(&self.db.url, &self.sim, &all)
    }

    /// The environment of a command run by hand: nothing tracked from the configuration.
    pub fn bare_env(&self) -> Vec<(String, String)> {
        daemon_env(&self.db.url, &self.sim, &[])
    }

    /// Starts `ice-sync run` and waits for its start-up cycle to finish.
    pub async fn daemon(&self, extra: &[(&str, &str)]) -> Daemon {
        let mut daemon = Daemon::start(&self.env(extra));
        daemon
            .wait_for_line(
                |l| l.contains("sync cycle finished"),
                Duration::from_secs(30),
            )
            .await;
        daemon
    }

    pub async fn request(&self, ids: &[&str]) -> ice_sync::storage::RefreshOutcome {
        let now = ice_sync::app::now(&self.store).await.expect("now");
        self.store
            .refresh_queue()
            .queue_refreshes(
                &RefreshTarget::Projects {
                    ids: project_ids(ids),
                    all_or_nothing: true,
                },
                RefreshSource::Cli,
                now,
            )
            .await
            .expect("request")
    }

    /// Waits until `id` has been fetched `calls` times; returns how long that took.
    pub async fn wait_calls(&self, id: &str, calls: u64, timeout: Duration) -> Duration {
        let start = Instant::now();
        while self.sim.calls(id) < calls {
            assert!(
                start.elapsed() < timeout,
                "{id}: {} of {calls} calls after {timeout:?}",
                self.sim.calls(id)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        start.elapsed()
    }

    /// Waits until no project is leased: every claimed poll has been written.
    pub async fn wait_settled(&self) {
        let start = Instant::now();
        loop {
            let leased = crate::support::count(
                &self.store,
                "SELECT count(*) FROM tracked_projects WHERE lease_owner IS NOT NULL OR requested_at IS NOT NULL",
            )
            .await;
            if leased == 0 {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "polls never finished"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn a_running_daemon_picks_a_request_up_within_a_second(backend: Backend) {
    let fleet = Fleet::new(backend, 5).await;
    let daemon = fleet.daemon(&[]).await;
    let id = fleet.ids[2].clone();
    let mut latencies = Vec::new();
    for round in 1..=3u64 {
        fleet.wait_settled().await;
        let before = fleet.sim.calls(&id);
        let outcome = fleet.request(&[&id]).await;
        assert_eq!(outcome.requested.len(), 1);
        latencies.push(
            fleet
                .wait_calls(&id, before + 1, Duration::from_secs(10))
                .await,
        );
        fleet.wait_settled().await;
        assert_eq!(fleet.sim.calls(&id), before + 1, "round {round}: one poll");
    }
    let others: Vec<u64> = fleet
        .ids
        .iter()
        .filter(|i| **i != id)
        .map(|i| fleet.sim.calls(i))
        .collect();
    assert!(
        others.iter().all(|&c| c == 1),
        "only the requested project: {others:?}"
    );
    println!(
        "{backend:?}: request commit -> GetEditingProject sent by the daemon: {:?}",
        latencies
    );
    for latency in &latencies {
        assert!(
            *latency < Duration::from_secs(3),
            "{backend:?}: picked up after {latency:?}\n{}",
            daemon.log()
        );
    }
    // The run is closed just after its last write.
    let start = Instant::now();
    let runs = loop {
        let runs = rows(
            &fleet.store,
            "SELECT trigger, projects_polled FROM sync_runs \
             WHERE trigger = 'request' AND outcome <> 'running' AND projects_polled > 0",
        )
        .await;
        if runs.len() >= 3 || start.elapsed() > Duration::from_secs(10) {
            break runs;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(runs.len(), 3, "one refresh cycle per request: {runs:?}");
    daemon.stop().await;
}

/// Two replicas listen on one PostgreSQL: whichever claims a request polls it, and the
/// other does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_poll_a_request_exactly_once_postgres() {
    let fleet = Fleet::new(Backend::Postgres, 20).await;
    let a = fleet
        .daemon(&[("ICE_SYNC__SYNC__REPLICA_ID", "replica-a")])
        .await;
    let b = fleet
        .daemon(&[("ICE_SYNC__SYNC__REPLICA_ID", "replica-b")])
        .await;
    fleet.wait_settled().await;
    let baseline: Vec<u64> = fleet.ids.iter().map(|id| fleet.sim.calls(id)).collect();

    // One project, several times in a row; then half of them at once.
    let one = fleet.ids[0].clone();
    for n in 1..=4u64 {
        fleet.request(&[&one]).await;
        fleet
            .wait_calls(&one, baseline[0] + n, Duration::from_secs(10))
            .await;
        fleet.wait_settled().await;
    }
    let half: Vec<&str> = fleet.ids[10..].iter().map(String::as_str).collect();
    fleet.request(&half).await;
    for (i, id) in fleet.ids.iter().enumerate().skip(10) {
        fleet
            .wait_calls(id, baseline[i] + 1, Duration::from_secs(10))
            .await;
    }
    fleet.wait_settled().await;
    // Room for a second, wrong poll to show up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let extra: Vec<u64> = fleet
        .ids
        .iter()
        .zip(&baseline)
        .map(|(id, before)| fleet.sim.calls(id) - before)
        .collect();
    let mut expected = vec![0u64; fleet.ids.len()];
    expected[0] = 4;
    for e in expected.iter_mut().skip(10) {
        *e = 1;
    }
    assert_eq!(
        extra, expected,
        "calls per project beyond the start-up cycles"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let by_replica = rows(
        &fleet.store,
        "SELECT replica_id, CAST(SUM(projects_polled) AS BIGINT) FROM sync_runs \
         WHERE trigger = 'request' AND outcome <> 'running' GROUP BY replica_id ORDER BY replica_id",
    )
    .await;
    println!("requested polls by replica: {by_replica:?}");
    let total: i64 = by_replica
        .iter()
        .map(|r| {
            r[1].as_deref()
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(total, 14, "4 + 10 requested polls across the fleet");
    let empty = crate::support::count(
        &fleet.store,
        "SELECT count(*) FROM sync_runs WHERE trigger = 'request' AND projects_polled = 0",
    )
    .await;
    assert_eq!(empty, 0, "the replica that lost the claim leaves no run");
    a.stop().await;
    b.stop().await;
}
