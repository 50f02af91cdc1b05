//! The projects a daemon holds are bounded by one in-flight budget (issue 20, finding 7):
//! with the writer stalled behind a lock another session holds, fetches stop once the
//! parsed projects waiting for it fill the 32 MiB budget, instead of each of
//! `sync.concurrency` fetches parsing its answer and queueing it. The real binary runs at
//! `sync.concurrency = 12` against 12 projects with 6 MiB timelines (72 MiB in all); the
//! test reads `ice_sync_response_budget_held_bytes` while the lock is held, then lets the
//! writer go and checks every project was written and the budget given back. (Peak RSS
//! figures come from `examples/response_memory`, not from a test.)

use std::time::{Duration, Instant};

use ice_sim::{Simulator, SimulatorConfig};
use sqlx::Connection;

use crate::on_both_backends;
use crate::ops::daemon::{daemon_env, Daemon};
use crate::support::{Backend, TestDatabase};

on_both_backends!(a_stalled_writer_holds_fetches_to_the_budget);

const PROJECTS: usize = 12;
const TIMELINE: usize = 6 << 20;
const BUDGET: f64 = (32 << 20) as f64;

/// Another session that blocks the daemon's history writes until dropped.
enum Lock {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Lock {
    /// Connected, not locking yet.
    async fn connect(backend: Backend, url: &str) -> Lock {
        match backend {
            Backend::Sqlite => {
                Lock::Sqlite(sqlx::SqliteConnection::connect(url).await.expect("sqlite"))
            }
            Backend::Postgres => {
                Lock::Postgres(sqlx::PgConnection::connect(url).await.expect("postgres"))
            }
        }
    }

    async fn take(&mut self) {
        match self {
            // WAL: readers go on, the one writer waits (busy_timeout is 30 s).
            Lock::Sqlite(c) => {
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut *c)
                    .await
                    .expect("lock");
            }
            Lock::Postgres(c) => {
                sqlx::query("BEGIN").execute(&mut *c).await.expect("begin");
                sqlx::query("LOCK TABLE editing_project_history IN EXCLUSIVE MODE")
                    .execute(&mut *c)
                    .await
                    .expect("lock");
            }
        }
    }

    async fn release(self) {
        match self {
            Lock::Sqlite(mut c) => {
                sqlx::query("ROLLBACK")
                    .execute(&mut c)
                    .await
                    .expect("release");
            }
            Lock::Postgres(mut c) => {
                sqlx::query("ROLLBACK")
                    .execute(&mut c)
                    .await
                    .expect("release");
            }
        }
    }
}

async fn history_rows(backend: Backend, url: &str) -> i64 {
    let sql = "SELECT COUNT(*) FROM editing_project_history";
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(url).await.expect("sqlite");
            sqlx::query_scalar(sql).fetch_one(&mut c).await
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(url).await.expect("postgres");
            sqlx::query_scalar(sql).fetch_one(&mut c).await
        }
    }
    .expect("count")
}

async fn held_bytes(metrics: &str, daemon: &Daemon) -> f64 {
    let response = reqwest::Client::new()
        .get(format!("http://{metrics}/metrics"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET /metrics: {e:?}\nlog:\n{}", daemon.log()));
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.expect("body");
    text.lines()
        .find_map(|l| l.strip_prefix("ice_sync_response_budget_held_bytes "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn a_stalled_writer_holds_fetches_to_the_budget(backend: Backend) {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let ids = sim.populate(PROJECTS, 0);
    for id in &ids {
        assert!(sim.inflate(id, TIMELINE));
    }
    // Calls are counted as they arrive, then answered after this: the window in which the
    // lock goes on before any project can be written.
    sim.set_latency(Duration::from_millis(500));
    let db = TestDatabase::new(backend).await;
    let concurrency = PROJECTS.to_string();
    let joined = ids.join(",");
    let env = daemon_env(
        &db.url,
        &sim,
        &[
            ("ICE_SYNC__SYNC__PROJECTS", &joined),
            ("ICE_SYNC__SYNC__CONCURRENCY", &concurrency),
            ("ICE_SYNC__SYNC__MAX_QPS", "0"),
            ("ICE_SYNC__ICE__TIMEOUT", "120s"),
        ],
    );
    let mut daemon = Daemon::start(&env);
    let metrics = daemon.metrics_addr().await;
    let mut lock = Lock::connect(backend, &db.url).await;

    // The lock goes on as the first answer is asked for: claims are taken by then, and
    // no answer comes for another 500 ms.
    let waited = Instant::now();
    while sim.calls_by_action("GetEditingProject") == 0 {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "no poll started:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    lock.take().await;
    // Until fetches have filled the budget with parsed projects (at least four of the
    // five 6 MiB answers that fit; the simulator's answers are slow to build in a debug
    // build), then two seconds more: never past the budget meanwhile.
    let mut highest = 0f64;
    let mut filled_at: Option<Instant> = None;
    let stalled = Instant::now();
    while filled_at.is_none_or(|at| at.elapsed() < Duration::from_secs(2)) {
        let held = held_bytes(&metrics, &daemon).await;
        assert!(
            held <= BUDGET,
            "{held} bytes held, over the 32 MiB budget:\n{}",
            daemon.log()
        );
        highest = highest.max(held);
        if filled_at.is_none() && highest >= (4 * TIMELINE) as f64 {
            filled_at = Some(Instant::now());
        }
        assert!(
            stalled.elapsed() < Duration::from_secs(90),
            "only {highest} bytes held while the writer was stalled:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        history_rows(backend, &db.url).await,
        0,
        "the lock did not stall the writer"
    );
    lock.release().await;

    let written = Instant::now();
    loop {
        if history_rows(backend, &db.url).await >= PROJECTS as i64 {
            break;
        }
        assert!(
            written.elapsed() < Duration::from_secs(60),
            "not every project was written:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Later cycles' answers are held back at the simulator, so what the gauge shows
    // from now on is only what this cycle did not give back.
    sim.set_latency(Duration::from_secs(60));
    let drained = Instant::now();
    while held_bytes(&metrics, &daemon).await > 0.0 {
        assert!(
            drained.elapsed() < Duration::from_secs(30),
            "the budget was not given back:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Killed by its guard: the next cycles fetch 72 MiB again, and a graceful stop
    // would wait for them, which is not what this test is about.
    drop(daemon);
}
