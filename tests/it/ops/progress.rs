//! Progress you can see, from outside the real binary: `run --once` off a terminal logs
//! a progress line at a steady interval with growing counts, and the daemon under a
//! (fake) systemd shows the running cycle in its status text, then the last cycle's.
//!
//! The cycles are made long on purpose: 600 projects at `sync.max_qps = 200` take about
//! 3 s (the rate limiter allows no burst), and `ICE_SYNC_PROGRESS_INTERVAL=500ms` stands in for the default 10 s.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ice_sim::{Simulator, SimulatorConfig};
use ice_testkit::{Backend, TestDatabase};
use tokio::net::UnixDatagram;

const PROJECTS: usize = 600;
const MAX_QPS: &str = "200";
const INTERVAL: Duration = Duration::from_millis(500);

macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(ice_testkit::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(ice_testkit::Backend::Postgres).await
                }
            }
        )+
    };
}

on_both_backends!(
    run_once_logs_progress_at_a_steady_interval,
    daemon_status_text_follows_the_cycle
);

/// What a test runs against: the simulator, the database (dropped with it) and a
/// directory for the ID file and the notify socket.
struct Setup {
    _sim: Simulator,
    _db: TestDatabase,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

/// A simulator with [`PROJECTS`] projects, all of them imported with `track import`,
/// and the environment every command of the test runs with.
async fn setup(backend: Backend) -> Setup {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("simulator starts");
    let ids = sim.populate(PROJECTS, 0);
    let db = TestDatabase::new(backend).await;
    let cfg = SimulatorConfig::default();
    let env: Vec<(String, String)> = [
        ("ICE_SYNC__DATABASE__URL", db.url.as_str()),
        ("ICE_SYNC__ICE__ENDPOINT", &sim.endpoint()),
        ("ICE_SYNC__ICE__ACCESS_KEY_ID", &cfg.access_key_id),
        ("ICE_SYNC__ICE__ACCESS_KEY_SECRET", &cfg.access_key_secret),
        ("ICE_SYNC__ICE__TIMEOUT", "5s"),
        ("ICE_SYNC__SYNC__MAX_QPS", MAX_QPS),
        ("ICE_SYNC__SYNC__MAX_RETRIES", "1"),
        ("ICE_SYNC__LOG__FORMAT", "json"),
        ("ICE_SYNC_PROGRESS_INTERVAL", "500ms"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("ids.txt");
    let mut f = std::fs::File::create(&file).expect("ids file");
    writeln!(f, "# {PROJECTS} projects of the simulator").expect("write");
    for id in &ids {
        writeln!(f, "{id}").expect("write");
    }
    drop(f);
    let mut import = Proc::spawn(&env, &["track", "import", &file.display().to_string()]);
    let status = import.wait(Duration::from_secs(60)).await;
    assert_eq!(status, Some(0), "track import failed:\n{}", import.log());
    Setup {
        _sim: sim,
        _db: db,
        dir,
        env,
    }
}

/// The binary as a child process, its stderr collected line by line, killed on drop
/// (a failing assertion never leaves it running).
struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn spawn(env: &[(String, String)], args: &[&str]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ice-sync"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ice-sync");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("lines").push(line);
            }
        });
        Proc { child, lines }
    }

    fn log(&self) -> String {
        self.lines.lock().expect("lines").join("\n")
    }

    /// The exit code, waiting up to `timeout` (asynchronously: the simulator is served
    /// by this runtime).
    async fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the reader thread catch the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return status.code();
            }
            assert!(
                start.elapsed() < timeout,
                "ice-sync did not exit within {timeout:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill {sig} failed");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn json(line: &str) -> Option<serde_json::Value> {
    serde_json::from_str(line).ok()
}

fn timestamp(v: &serde_json::Value) -> chrono::DateTime<chrono::Utc> {
    let text = v["timestamp"].as_str().expect("timestamp field");
    text.parse()
        .unwrap_or_else(|e| panic!("timestamp {text}: {e}"))
}

async fn run_once_logs_progress_at_a_steady_interval(backend: Backend) {
    let Setup { env, .. } = &setup(backend).await;
    let started = Instant::now();
    let mut run = Proc::spawn(env, &["run", "--once"]);
    let code = run.wait(Duration::from_secs(60)).await;
    let wall = started.elapsed();
    let log = run.log();
    assert_eq!(code, Some(0), "run --once failed:\n{log}");

    let lines: Vec<serde_json::Value> = log.lines().filter_map(json).collect();
    let progress: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("cycle ") && m.contains(" polled"))
        })
        .collect();
    // About 3 s of polling at a 500 ms interval: five lines or so; at least two.
    assert!(
        progress.len() >= 2,
        "{} progress lines in a {wall:?} run:\n{log}",
        progress.len()
    );
    let polled: Vec<u64> = progress
        .iter()
        .map(|v| v["polled"].as_u64().expect("polled field"))
        .collect();
    assert!(
        polled.windows(2).all(|w| w[0] < w[1]),
        "counts must grow: {polled:?}"
    );
    // The total is counted when polling starts; it only grows if more is polled than
    // was due then (a project polled twice in one cycle).
    assert_eq!(
        progress[0]["total"].as_u64(),
        Some(PROJECTS as u64),
        "{log}"
    );
    for v in &progress {
        let total = v["total"].as_u64().expect("total field");
        assert!(total >= v["polled"].as_u64().unwrap_or_default(), "{v}");
        assert_eq!(v["level"].as_str(), Some("INFO"), "{v}");
        let message = v["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("/{} polled, ETA ", fmt_thousands(total))),
            "{message}"
        );
        assert!(v["per_second"].as_f64().is_some_and(|r| r > 0.0), "{v}");
    }
    // Steady: consecutive lines an interval apart (within the renderer's tick and the
    // scheduling noise of a shared machine).
    let gaps: Vec<i64> = progress
        .windows(2)
        .map(|w| (timestamp(w[1]) - timestamp(w[0])).num_milliseconds())
        .collect();
    println!(
        "{backend:?}: {} progress lines in {wall:?}, polled {polled:?}, gaps {gaps:?} ms; first: {}",
        progress.len(),
        progress[0]["message"]
    );
    let interval = INTERVAL.as_millis() as i64;
    assert!(
        gaps.iter()
            .all(|g| (interval - 150..=interval * 3).contains(g)),
        "progress lines not {interval} ms apart: {gaps:?}"
    );
    // The summary comes last, after every progress line.
    let last = lines.last().expect("some log line");
    assert_eq!(
        last["message"].as_str(),
        Some("sync cycle finished"),
        "{log}"
    );
    println!("{backend:?}: summary {last}");
}

fn fmt_thousands(n: u64) -> String {
    ice_sync::ops::progress::thousands(n)
}

/// The next datagram's `STATUS=` text, if it has one.
async fn next_status(
    socket: &UnixDatagram,
    timeout: Duration,
    log: impl Fn() -> String,
) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(timeout, socket.recv(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n])
            .lines()
            .find_map(|l| l.strip_prefix("STATUS=").map(str::to_string)),
        Ok(Err(e)) => panic!("notify socket: {e}"),
        Err(_) => panic!("no notification within {timeout:?}; log:\n{}", log()),
    }
}

async fn daemon_status_text_follows_the_cycle(backend: Backend) {
    let setup = setup(backend).await;
    let mut env = setup.env.clone();
    let path = setup.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind notify socket");
    env.extend([
        ("NOTIFY_SOCKET".to_string(), path.display().to_string()),
        // The start-up cycle finds nothing due (the projects were added after the latest
        // tick); the next tick's polls them all in about 3 s, well within its 5 s.
        (
            "ICE_SYNC__SYNC__SCHEDULE".to_string(),
            "*/5 * * * * *".to_string(),
        ),
    ]);
    let daemon = Proc::spawn(&env, &["run"]);

    let all_polled = format!("{PROJECTS} polled");
    let mut statuses = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no last-cycle status; statuses {statuses:?}\n{}",
            daemon.log()
        );
        if let Some(status) = next_status(&socket, left, || daemon.log()).await {
            let done = status.starts_with("last cycle") && status.contains(&all_polled);
            statuses.push(status);
            if done {
                break;
            }
        }
    }
    // What was said during the cycle that polled them all, and right after it.
    let from = statuses[..statuses.len() - 1]
        .iter()
        .rposition(|s| s.starts_with("last cycle"))
        .map_or(0, |i| i + 1);
    let statuses = statuses.split_off(from);
    println!("{backend:?}: status texts {statuses:#?}");
    let progress: Vec<(u64, u64, u64)> = statuses
        .iter()
        .filter_map(|s| parse_cycle_status(s))
        .collect();
    assert!(
        !progress.is_empty(),
        "no `cycle N%: a/b polled` status while the cycle ran: {statuses:?}"
    );
    assert_eq!(progress[0].2, PROJECTS as u64, "{statuses:?}");
    for &(percent, polled, total) in &progress {
        assert!(total >= polled, "{statuses:?}");
        assert_eq!(percent, polled * 100 / total, "{statuses:?}");
    }
    assert!(
        progress.windows(2).all(|w| w[0].1 < w[1].1),
        "counts must grow: {statuses:?}"
    );
    // The last word is the per-cycle text, never a late progress line.
    let last = statuses.last().expect("a status");
    assert!(last.contains("success"), "{last}");

    daemon.signal("-TERM");
    let mut daemon = daemon;
    assert_eq!(
        daemon.wait(Duration::from_secs(20)).await,
        Some(0),
        "{}",
        daemon.log()
    );
}

/// `cycle 42%: 2,100/5,000 polled, ETA 2m` as (42, 2100, 5000).
fn parse_cycle_status(text: &str) -> Option<(u64, u64, u64)> {
    let rest = text.strip_prefix("cycle ")?;
    let (percent, rest) = rest.split_once("%: ")?;
    let (counts, _) = rest.split_once(" polled")?;
    let (polled, total) = counts.split_once('/')?;
    let number = |s: &str| s.replace(',', "").parse::<u64>().ok();
    Some((percent.parse().ok()?, number(polled)?, number(total)?))
}

#[test]
fn parses_the_status_text() {
    assert_eq!(
        parse_cycle_status("cycle 42%: 2,100/5,000 polled, ETA 2m"),
        Some((42, 2100, 5000))
    );
    assert_eq!(parse_cycle_status("last cycle success at ..."), None);
}
