//! systemd's notify protocol, observed from outside: `NOTIFY_SOCKET` points at a datagram
//! socket the test listens on. The daemon must send READY=1 only once the database is
//! migrated, WATCHDOG=1 at half of `WATCHDOG_USEC`, and STOPPING=1 on SIGTERM, then
//! exit 0.

use std::time::{Duration, Instant};

use ice_sim::{Simulator, SimulatorConfig};
use sqlx::Connection;
use tokio::net::UnixDatagram;

use crate::on_both_backends;
use crate::ops::daemon::{daemon_env, Daemon};
use crate::support::{Backend, TestDatabase};

on_both_backends!(ready_after_migrations_then_watchdog_then_stopping);

/// Migrations applied, read with a plain connection (never migrating by itself).
async fn migrations_applied(backend: Backend, url: &str) -> i64 {
    let sql = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success";
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(url).await.expect("sqlite");
            sqlx::query_scalar(sql).fetch_one(&mut c).await.expect(sql)
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(url).await.expect("postgres");
            sqlx::query_scalar(sql).fetch_one(&mut c).await.expect(sql)
        }
    }
}

/// The next datagram, split into its `KEY=value` lines.
async fn next_message(socket: &UnixDatagram, daemon: &Daemon, timeout: Duration) -> Vec<String> {
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(timeout, socket.recv(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n])
            .lines()
            .map(str::to_string)
            .collect(),
        Ok(Err(e)) => panic!("notify socket: {e}"),
        Err(_) => panic!("no notification within {timeout:?}; log:\n{}", daemon.log()),
    }
}

async fn ready_after_migrations_then_watchdog_then_stopping(backend: Backend) {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let ids = sim.populate(4, 1).join(",");
    let db = TestDatabase::new(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind notify socket");
    let path_text = path.display().to_string();
    // 400 ms watchdog: the daemon should ping every 200 ms.
    let env = daemon_env(
        &db.url,
        &sim,
        &[
            ("ICE_SYNC__SYNC__PROJECTS", &ids),
            ("NOTIFY_SOCKET", &path_text),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let mut daemon = Daemon::start(&env);

    let first = next_message(&socket, &daemon, Duration::from_secs(30)).await;
    assert!(
        first.iter().any(|l| l == "READY=1"),
        "first message should be READY=1: {first:?}"
    );
    assert!(first.iter().any(|l| l.starts_with("STATUS=")), "{first:?}");
    assert!(
        migrations_applied(backend, &db.url).await >= 1,
        "READY=1 before the migrations ran"
    );

    // Watchdog pings, about five a second, whatever else arrives in between.
    let start = Instant::now();
    let mut pings = 0;
    let mut statuses = Vec::new();
    while start.elapsed() < Duration::from_millis(1500) {
        let message = next_message(&socket, &daemon, Duration::from_secs(2)).await;
        pings += message.iter().filter(|l| *l == "WATCHDOG=1").count();
        statuses.extend(
            message
                .into_iter()
                .filter(|l| l.starts_with("STATUS=last cycle")),
        );
    }
    assert!(
        pings >= 4,
        "only {pings} WATCHDOG=1 in 1.5 s; log:\n{}",
        daemon.log()
    );
    assert!(
        statuses.iter().any(|s| s.contains("success")),
        "no per-cycle STATUS= line: {statuses:?}"
    );

    daemon.signal("-TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let message = next_message(
            &socket,
            &daemon,
            deadline.saturating_duration_since(Instant::now()),
        )
        .await;
        if message.iter().any(|l| l == "STOPPING=1") {
            break;
        }
    }
    let status = daemon.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(0), "{}", daemon.log());
}
