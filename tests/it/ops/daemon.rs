//! The daemon as a subprocess: spawn with a given environment, collect its stderr
//! lines, find its metrics address, signal it, and wait for it to exit. Waits are async
//! so the simulator, served by the same test runtime, keeps answering.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ice_sim::Simulator;

use crate::support::{env_for, ice_sync_command, spawn_guarded, ChildGuard};

/// `env_for` plus what a daemon under test needs: a one-second schedule, JSON logs and
/// `/metrics` on a free port (the daemon logs which).
pub fn daemon_env(db_url: &str, sim: &Simulator, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all = vec![
        ("ICE_SYNC__SYNC__SCHEDULE", "*/1 * * * * *"),
        ("ICE_SYNC__LOG__FORMAT", "json"),
        ("ICE_SYNC__METRICS__LISTEN", "127.0.0.1:0"),
        ("ICE_SYNC__SYNC__MAX_RETRIES", "1"),
    ];
    all.extend_from_slice(extra);
    env_for(db_url, sim, &all)
}

fn command(env: &[(String, String)], args: &[&str]) -> Command {
    ice_sync_command(env, args)
}

/// Runs a command to completion (for `check`, `migrate`, `run --once`), off the runtime.
pub async fn run_to_end(env: &[(String, String)], args: &[&str]) -> Output {
    let mut cmd = command(env, args);
    cmd.stdin(Stdio::null());
    tokio::task::spawn_blocking(move || cmd.output().expect("ice-sync runs"))
        .await
        .expect("join")
}

pub fn describe(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub struct Daemon {
    child: ChildGuard,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// `ice-sync run` with exactly `env` (plus `PATH`).
    pub fn start(env: &[(String, String)]) -> Daemon {
        let mut child = spawn_guarded(
            command(env, &["run"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("lines").push(line);
            }
        });
        Daemon { child, lines }
    }

    /// `ice-sync run` with exactly `env`, its soft and hard `RLIMIT_NOFILE` set to
    /// `nofile` before it starts (as systemd's `LimitNOFILE=` would).
    pub fn start_with_nofile(env: &[(String, String)], nofile: u64) -> Daemon {
        use std::os::unix::process::CommandExt;
        let mut cmd = command(env, &["run"]);
        // SAFETY: setrlimit is async-signal-safe and touches only the child's limits.
        unsafe {
            cmd.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: nofile,
                    rlim_max: nofile,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Self::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Daemon {
        let mut child = spawn_guarded(
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("lines").push(line);
            }
        });
        Daemon { child, lines }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.lines.lock().expect("lines").join("\n")
    }

    /// The first stderr line matching `pred`, waiting up to `timeout`.
    pub async fn wait_for_line(
        &mut self,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self.lines.lock().expect("lines").iter().find(|l| pred(l)) {
                return line.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader thread catch the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                panic!(
                    "ice-sync exited ({status}) before the awaited line:\n{}",
                    self.log()
                );
            }
            assert!(
                start.elapsed() < timeout,
                "no such log line within {timeout:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `host:port` of `/metrics` and `/healthz`, from the start-up log line.
    pub async fn metrics_addr(&mut self) -> String {
        let line = self
            .wait_for_line(
                |l| l.contains("serving /metrics and /healthz"),
                Duration::from_secs(30),
            )
            .await;
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        v["addr"].as_str().expect("addr field").to_string()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill {sig} {} failed", self.pid());
    }

    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                start.elapsed() < timeout,
                "ice-sync did not exit within {timeout:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then the exit code, which must be 0.
    pub async fn stop(mut self) {
        self.signal("-TERM");
        let status = self.wait_exit(Duration::from_secs(15)).await;
        assert_eq!(status.code(), Some(0), "{}", self.log());
    }
}

/// `GET http://addr/path`: status and body.
pub async fn get(addr: &str, path: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// Polls `/healthz` until it answers `want`; returns the JSON body.
pub async fn wait_health(
    daemon: &Daemon,
    addr: &str,
    want: u16,
    timeout: Duration,
) -> serde_json::Value {
    let start = Instant::now();
    let mut last = (0, String::new());
    while start.elapsed() < timeout {
        last = get(addr, "/healthz").await;
        if last.0 == want {
            return serde_json::from_str(&last.1).unwrap_or_else(|e| panic!("{e}: {}", last.1));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "/healthz did not answer {want} within {timeout:?}; last answer {} {}\nlog:\n{}",
        last.0,
        last.1,
        daemon.log()
    );
}
