//! `/healthz` of a running daemon follows what matters: 200 while cycles succeed and the
//! database answers; 503 with a reason when ICE rejects the credentials, when
//! PostgreSQL refuses connections, or when cycles stall on a SQLite lock; 200 again
//! after recovery, without a restart.

use std::time::Duration;

use ice_sim::{Simulator, SimulatorConfig};
use sqlx::Connection;

use crate::on_both_backends;
use crate::ops::daemon::{daemon_env, wait_health, Daemon};
use crate::support::{pg_admin_url, Backend, TestDatabase};

on_both_backends!(rejected_credentials_turn_healthz_503_until_restored);

const RECOVERY: Duration = Duration::from_secs(20);

fn reason(body: &serde_json::Value) -> String {
    body["reason"].as_str().unwrap_or_default().to_string()
}

async fn start(backend: Backend) -> (Simulator, TestDatabase, Daemon, String) {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let ids = sim.populate(6, 2).join(",");
    let db = TestDatabase::new(backend).await;
    let env = daemon_env(&db.url, &sim, &[("ICE_SYNC__SYNC__PROJECTS", &ids)]);
    let mut daemon = Daemon::start(&env);
    let addr = daemon.metrics_addr().await;
    // Under load the start-up cycle can begin past its claim deadline and end `partial`
    // with nothing polled (still healthy); the next tick's cycle, a second later, polls.
    let deadline = std::time::Instant::now() + RECOVERY;
    let body = loop {
        let body = wait_health(&daemon, &addr, 200, RECOVERY).await;
        if body["last_cycle"]["outcome"] == "success" || std::time::Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["last_cycle"]["outcome"], "success", "{body}");
    (sim, db, daemon, addr)
}

async fn rejected_credentials_turn_healthz_503_until_restored(backend: Backend) {
    let (sim, _db, daemon, addr) = start(backend).await;
    let cfg = SimulatorConfig::default();

    // The secret was rotated on the Alibaba Cloud side and not here.
    sim.set_credentials(&cfg.access_key_id, "RotatedSecret0123456789abcdef", None);
    let body = wait_health(&daemon, &addr, 503, RECOVERY).await;
    assert_eq!(body["status"], "unhealthy", "{body}");
    assert!(
        reason(&body).contains("SignatureDoesNotMatch")
            && reason(&body).contains("ACCESS_KEY_SECRET"),
        "{body}"
    );
    assert!(
        !body.to_string().contains(&cfg.access_key_secret),
        "secret in {body}"
    );

    sim.set_credentials(&cfg.access_key_id, &cfg.access_key_secret, None);
    let body = wait_health(&daemon, &addr, 200, RECOVERY).await;
    assert_eq!(body["last_cycle"]["outcome"], "success", "{body}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_turns_healthz_503_until_it_ends() {
    let (_sim, db, daemon, addr) = start(Backend::Postgres).await;
    let name = db
        .url
        .rsplit('/')
        .next()
        .expect("database name")
        .to_string();
    let mut admin = sqlx::PgConnection::connect(&pg_admin_url())
        .await
        .expect("admin");

    // The database goes away for this daemon: no new connections, existing ones killed.
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .execute(&mut admin)
        .await
        .expect("disallow connections");
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&name)
        .execute(&mut admin)
        .await
        .expect("terminate backends");
    let body = wait_health(&daemon, &addr, 503, RECOVERY).await;
    assert!(reason(&body).contains("database"), "{body}");

    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&mut admin)
        .await
        .expect("allow connections");
    let body = wait_health(&daemon, &addr, 200, RECOVERY).await;
    assert_eq!(body["status"], "ok", "{body}");
    daemon.stop().await;
}

/// A SQLite file cannot "go away" from a daemon that holds it open, but another writer can
/// hold its lock (an operator's `sqlite3` session with a write transaction left open).
/// Cycles then wait on the lock, none finishes, and health must say so within three
/// schedule periods even though `SELECT 1` still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycles_stalled_on_a_sqlite_lock_turn_healthz_503_until_released() {
    let (_sim, db, daemon, addr) = start(Backend::Sqlite).await;
    let mut other = sqlx::SqliteConnection::connect(&db.url)
        .await
        .expect("sqlite");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .expect("take the write lock");

    let body = wait_health(&daemon, &addr, 503, RECOVERY).await;
    assert!(reason(&body).contains("stuck"), "{body}");

    sqlx::query("ROLLBACK")
        .execute(&mut other)
        .await
        .expect("release");
    let body = wait_health(&daemon, &addr, 200, RECOVERY).await;
    assert_eq!(body["status"], "ok", "{body}");
    daemon.stop().await;
}
