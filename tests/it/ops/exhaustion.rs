//! Strangers holding connections open cannot starve the daemon (issue 20, finding 1).
//! The real binary runs with `RLIMIT_NOFILE` = 128, serving `/metrics` and callbacks, while
//! one peer (127.0.0.2) opens 600 connections to the two listeners, half of them silent and
//! half stalled mid-header, and holds them past the header-read timeout. Before the
//! hardened serving layer the daemon accepted every one of them until it ran out of
//! descriptors: polls failed with "Too many open files", cycles failed, `/healthz` timed
//! out and the watchdog went quiet. Now each listener caps connections (per peer too),
//! closes stalled ones, and the test asserts that cycles keep succeeding, `/healthz`
//! answers from another address throughout, WATCHDOG=1 keeps arriving and the refusals
//! are summarised in a few log lines.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ice_sim::{Simulator, SimulatorConfig};
use sqlx::Connection;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream, UnixDatagram};

use crate::on_both_backends;
use crate::ops::daemon::{daemon_env, get, Daemon};
use crate::support::{Backend, TestDatabase};

on_both_backends!(idle_and_half_header_connections_do_not_starve_the_daemon);

const NOFILE: u64 = 128;
/// Per listener: as many silent connections as stalled ones.
const PER_LISTENER: usize = 300;

async fn runs(backend: Backend, url: &str, outcome: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM sync_runs WHERE outcome = '{outcome}'");
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(url).await.expect("sqlite");
            sqlx::query_scalar(&sql)
                .fetch_one(&mut c)
                .await
                .expect("count")
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(url).await.expect("postgres");
            sqlx::query_scalar(&sql)
                .fetch_one(&mut c)
                .await
                .expect("count")
        }
    }
}

/// A connection from 127.0.0.2, silent or stalled after half a request head. `None` when
/// the daemon closed it before the stall could be sent (it refused it).
async fn attacker(to: SocketAddr, half_header: bool) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.2:0".parse().expect("addr"))
        .expect("bind 127.0.0.2");
    let mut stream = socket.connect(to).await.ok()?;
    if half_header {
        stream
            .write_all(b"POST /ice/events HTTP/1.1\r\nHost: ice-sync\r\nX-Stall: ")
            .await
            .ok()?;
    }
    Some(stream)
}

async fn flood(targets: &[SocketAddr]) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for to in targets {
        for i in 0..PER_LISTENER {
            if let Some(s) = attacker(*to, i % 2 == 1).await {
                held.push(s);
            }
        }
    }
    held
}

async fn callback_addr(daemon: &mut Daemon) -> SocketAddr {
    let line = daemon
        .wait_for_line(
            |l| l.contains("serving ICE event callbacks"),
            Duration::from_secs(30),
        )
        .await;
    let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
    v["addr"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("addr field")
}

async fn idle_and_half_header_connections_do_not_starve_the_daemon(backend: Backend) {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let ids = sim.populate(6, 2).join(",");
    let db = TestDatabase::new(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind notify socket");
    let path_text = path.display().to_string();
    let env = daemon_env(
        &db.url,
        &sim,
        &[
            ("ICE_SYNC__SYNC__PROJECTS", &ids),
            ("ICE_SYNC__CALLBACK__LISTEN", "127.0.0.1:0"),
            (
                "ICE_SYNC__CALLBACK__URL",
                "https://ice-sync.example.com/ice/events",
            ),
            ("ICE_SYNC__CALLBACK__AUTH_KEY", "TestKey001"),
            ("NOTIFY_SOCKET", &path_text),
            // A ping every 500 ms.
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    let mut daemon = Daemon::start_with_nofile(&env, NOFILE);
    let metrics = daemon.metrics_addr().await;
    let callbacks = callback_addr(&mut daemon).await;
    let metrics_sock: SocketAddr = metrics.parse().expect("metrics addr");
    crate::ops::daemon::wait_health(&daemon, &metrics, 200, Duration::from_secs(30)).await;

    // Count pings in the background from now on.
    let pings = Arc::new(AtomicU64::new(0));
    let counter = pings.clone();
    let listen = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = socket.recv(&mut buf).await {
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            let n = text.lines().filter(|l| *l == "WATCHDOG=1").count() as u64;
            counter.fetch_add(n, Ordering::Relaxed);
        }
    });
    let succeeded_before = runs(backend, &db.url, "success").await;
    let failed_before = runs(backend, &db.url, "failed").await;

    let start = Instant::now();
    let mut held = flood(&[metrics_sock, callbacks]).await;
    let mut healthz = 0;
    // Past the 10 s header-read timeout, with a second wave once the first is cut off.
    let mut second_wave = false;
    while start.elapsed() < Duration::from_secs(16) {
        let (status, body) = get(&metrics, "/healthz").await;
        assert_eq!(status, 200, "{body}\nlog:\n{}", daemon.log());
        healthz += 1;
        if !second_wave && start.elapsed() > Duration::from_secs(11) {
            held.extend(flood(&[metrics_sock, callbacks]).await);
            second_wave = true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let elapsed = start.elapsed();
    let pinged = pings.load(Ordering::Relaxed);
    let succeeded = runs(backend, &db.url, "success").await - succeeded_before;
    let failed = runs(backend, &db.url, "failed").await - failed_before;
    let (_, exposition) = get(&metrics, "/metrics").await;
    drop(held);
    listen.abort();

    let log = daemon.log();
    assert!(!log.contains("Too many open files"), "{log}");
    assert_eq!(failed, 0, "cycles failed under the flood:\n{log}");
    assert!(
        succeeded >= 5,
        "only {succeeded} cycles succeeded in {elapsed:?}:\n{log}"
    );
    assert!(healthz >= 20, "{healthz}");
    // 500 ms pings: allow for scheduling, never a silence.
    assert!(
        pinged as f64 >= elapsed.as_secs_f64(),
        "{pinged} WATCHDOG=1 in {elapsed:?}:\n{log}"
    );
    for listener in ["metrics", "callback"] {
        let refused = exposition.lines().any(|l| {
            l.starts_with("ice_sync_http_refused_total")
                && l.contains(&format!("listener=\"{listener}\""))
                && l.contains("too_many_from_peer")
        });
        assert!(
            refused,
            "no per-peer refusals counted for {listener}:\n{exposition}"
        );
    }
    let summaries = log.matches("listener refused").count();
    assert!(
        (1..=8).contains(&summaries),
        "{summaries} refusal lines for ~2,400 refusals:\n{log}"
    );
    daemon.stop().await;
}
