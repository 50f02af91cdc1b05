//! The simulator in a process of its own, so that its CPU and memory (up to a million
//! projects) are never counted as the daemon's or the benchmark's.
//!
//! A benchmark binary serves it when started as `--serve-sim N LATENCY_MS SEED
//! TIMELINE_BYTES` ([`serve`]): it prints `addr HOST:PORT`, one project ID per line and
//! `ready`, then answers one line per command read on stdin: `advance FRACTION` ->
//! `advanced MOVED`, `advance-ids FRACTION` -> `advanced MOVED` and one line
//! `ID STATUS BUSINESS_STATUS` per moved project (`-` for none), `churn` -> `advanced MOVED`
//! (every project one step round a loop of statuses polled at every tick), `calls` ->
//! `calls TOTAL GET_EDITING_PROJECT LIST_EDITING_PROJECTS`, `latency MS` -> `ok`,
//! `quit` -> `bye`. It exits when stdin closes, so it never outlives its parent.
//! [`SimProcess`] is the parent's handle on such a child.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::{ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use ice_sim::{Simulator, SimulatorConfig};
use ice_testkit::ChildGuard;

/// One generated project in `LIVE_SHARE` is a live-editing one, the rest regular.
const LIVE_SHARE: usize = 10;

/// Requests the simulator has answered, by action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calls {
    pub total: u64,
    /// `GetEditingProject`.
    pub get: u64,
    /// `ListEditingProjects`.
    pub list: u64,
}

/// The parent's handle on a `--serve-sim` child.
pub struct SimProcess {
    /// Killed on drop if `quit` did not end it.
    child: ChildGuard,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// `http://HOST:PORT`.
    pub endpoint: String,
}

impl SimProcess {
    /// Starts this benchmark's own executable in the `--serve-sim` role and reads the
    /// simulator's address; the project IDs follow (see [`SimProcess::read_ids`]).
    /// `timeline_bytes` = 0 keeps the generated (~200-byte) timelines.
    pub fn spawn(
        n: usize,
        latency_ms: u64,
        seed: u64,
        timeline_bytes: usize,
    ) -> anyhow::Result<SimProcess> {
        let exe = std::env::current_exe().context("finding this benchmark's executable")?;
        let mut child = ChildGuard::spawn(
            Command::new(exe)
                .args([
                    "--serve-sim".to_string(),
                    n.to_string(),
                    latency_ms.to_string(),
                    seed.to_string(),
                    timeline_bytes.to_string(),
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit()),
        )
        .context("starting the simulator process")?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("the simulator process has no stdin/stdout pipes");
        };
        let mut sim = SimProcess {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            endpoint: String::new(),
        };
        let first = sim.next_line()?;
        let addr = first
            .strip_prefix("addr ")
            .with_context(|| format!("the simulator said {first:?} instead of its address"))?;
        sim.endpoint = format!("http://{addr}");
        Ok(sim)
    }

    /// The process id of the simulator (to tell its CPU from the daemon's).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line the simulator printed: a project ID, `ready`, or an answer.
    pub fn next_line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        let read = self
            .stdout
            .read_line(&mut line)
            .context("reading from the simulator process")?;
        if read == 0 {
            bail!("the simulator process exited (see its stderr above)");
        }
        Ok(line.trim_end().to_string())
    }

    /// Every announced project ID, up to `ready`.
    pub fn read_ids(&mut self) -> anyhow::Result<Vec<String>> {
        let mut ids = Vec::new();
        while let Some(id) = self.next_id()? {
            ids.push(id);
        }
        Ok(ids)
    }

    /// The next announced project ID, `None` at `ready`: for callers that track a
    /// million IDs a chunk at a time instead of holding them all.
    pub fn next_id(&mut self) -> anyhow::Result<Option<String>> {
        let line = self.next_line()?;
        Ok((line != "ready").then_some(line))
    }

    fn command(&mut self, command: &str) -> anyhow::Result<String> {
        writeln!(self.stdin, "{command}")
            .and_then(|()| self.stdin.flush())
            .with_context(|| format!("sending {command:?} to the simulator process"))?;
        let answer = self.next_line()?;
        if let Some(error) = answer.strip_prefix("error ") {
            bail!("the simulator refused {command:?}: {error}");
        }
        Ok(answer)
    }

    /// Moves each non-terminal project one step with probability `fraction`.
    pub fn advance(&mut self, fraction: f64) -> anyhow::Result<u64> {
        let answer = self.command(&format!("advance {fraction}"))?;
        answer
            .strip_prefix("advanced ")
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("the simulator answered {answer:?} to advance"))
    }

    /// Moves about `fraction` of all projects one lifecycle step (seeded) and returns
    /// those that moved with their new (Status, BusinessStatus).
    #[allow(clippy::type_complexity)]
    pub fn advance_ids(
        &mut self,
        fraction: f64,
    ) -> anyhow::Result<Vec<(String, (Option<String>, Option<String>))>> {
        let head = self.command(&format!("advance-ids {fraction}"))?;
        let n: usize = head
            .strip_prefix("advanced ")
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("the simulator answered {head:?} to advance-ids"))?;
        let field = |v: &str| (v != "-").then(|| v.to_string());
        (0..n)
            .map(|_| {
                let line = self.next_line()?;
                let mut words = line.split(' ');
                match (words.next(), words.next(), words.next()) {
                    (Some(id), Some(s), Some(b)) => Ok((id.to_string(), (field(s), field(b)))),
                    _ => bail!("the simulator sent {line:?} for a moved project"),
                }
            })
            .collect()
    }

    /// Moves every project one step round a loop with no end (see [`churn_all`]), so that
    /// every poll of it writes a history row; returns how many moved.
    pub fn churn(&mut self) -> anyhow::Result<u64> {
        let answer = self.command("churn")?;
        answer
            .strip_prefix("advanced ")
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("the simulator answered {answer:?} to churn"))
    }

    /// Every request the simulator has received so far.
    pub fn calls(&mut self) -> anyhow::Result<u64> {
        Ok(self.calls_by_action()?.total)
    }

    /// Requests so far: all of them, and those of the two actions the daemon polls with.
    pub fn calls_by_action(&mut self) -> anyhow::Result<Calls> {
        let answer = self.command("calls")?;
        let mut numbers = answer
            .strip_prefix("calls ")
            .unwrap_or_default()
            .split_whitespace()
            .map(|n| n.parse::<u64>());
        match (numbers.next(), numbers.next(), numbers.next()) {
            (Some(Ok(total)), Some(Ok(get)), Some(Ok(list))) => Ok(Calls { total, get, list }),
            _ => bail!("the simulator answered {answer:?} to calls"),
        }
    }

    /// Changes the delay added to every response from now on.
    pub fn set_latency(&mut self, latency_ms: u64) -> anyhow::Result<()> {
        let answer = self.command(&format!("latency {latency_ms}"))?;
        if answer != "ok" {
            bail!("the simulator answered {answer:?} to latency");
        }
        Ok(())
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit").and_then(|()| self.stdin.flush());
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                // The guard kills what did not quit in time.
                _ => return,
            }
        }
    }
}

/// `--serve-sim N LATENCY_MS SEED TIMELINE_BYTES`: see the module documentation.
pub fn serve(args: &[String]) -> anyhow::Result<ExitCode> {
    let [n, latency_ms, seed, timeline_bytes] = args else {
        bail!("usage: --serve-sim N LATENCY_MS SEED TIMELINE_BYTES (got {args:?})");
    };
    let n: usize = n
        .parse()
        .with_context(|| format!("--serve-sim N = {n:?}"))?;
    let latency_ms: u64 = latency_ms
        .parse()
        .with_context(|| format!("--serve-sim LATENCY_MS = {latency_ms:?}"))?;
    let seed: u64 = seed
        .parse()
        .with_context(|| format!("--serve-sim SEED = {seed:?}"))?;
    let timeline_bytes: usize = timeline_bytes
        .parse()
        .with_context(|| format!("--serve-sim TIMELINE_BYTES = {timeline_bytes:?}"))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the simulator's async runtime")?;
    let config = SimulatorConfig {
        seed,
        latency: Duration::from_millis(latency_ms),
        ..SimulatorConfig::default()
    };
    // The server task keeps running on the runtime's workers after `block_on` returns;
    // this thread then serves the control protocol.
    let sim = runtime.block_on(Simulator::start(config))?;
    let live = n / LIVE_SHARE;
    let ids = sim.populate(n - live, live);
    if timeline_bytes > 0 {
        pad_timelines(&sim, &ids, timeline_bytes, seed);
    }

    let mut out = BufWriter::new(std::io::stdout().lock());
    writeln!(out, "addr {}", sim.addr())?;
    for id in &ids {
        writeln!(out, "{id}")?;
    }
    writeln!(out, "ready")?;
    out.flush()?;

    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading a command")?;
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("advance"), Some(fraction), None) => match fraction.parse::<f64>() {
                Ok(f) => writeln!(out, "advanced {}", sim.advance_random(f))?,
                Err(e) => writeln!(out, "error advance {fraction:?}: {e}")?,
            },
            (Some("advance-ids"), Some(fraction), None) => match fraction.parse::<f64>() {
                Ok(f) => {
                    let moved = advance_some(&sim, &ids, f, seed);
                    writeln!(out, "advanced {}", moved.len())?;
                    for id in moved {
                        let (s, b) = sim
                            .project(id)
                            .map(|p| (p.status, p.business_status))
                            .unwrap_or_default();
                        let (s, b) = (s.as_deref().unwrap_or("-"), b.as_deref().unwrap_or("-"));
                        writeln!(out, "{id} {s} {b}")?;
                    }
                }
                Err(e) => writeln!(out, "error advance-ids {fraction:?}: {e}")?,
            },
            (Some("churn"), None, None) => writeln!(out, "advanced {}", churn_all(&sim, &ids))?,
            (Some("calls"), None, None) => writeln!(
                out,
                "calls {} {} {}",
                sim.total_calls(),
                sim.calls_by_action("GetEditingProject"),
                sim.calls_by_action("ListEditingProjects")
            )?,
            (Some("latency"), Some(ms), None) => match ms.parse::<u64>() {
                Ok(ms) => {
                    sim.set_latency(Duration::from_millis(ms));
                    writeln!(out, "ok")?
                }
                Err(e) => writeln!(out, "error latency {ms:?}: {e}")?,
            },
            (Some("quit"), None, None) => {
                writeln!(out, "bye")?;
                out.flush()?;
                break;
            }
            _ => writeln!(out, "error unknown command {line:?}")?,
        }
        out.flush()?;
    }
    drop(sim);
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(ExitCode::SUCCESS)
}

/// Real timelines run to kilobytes; the generated ones are ~200 bytes, which would make
/// parsing and storing look cheaper than it is.
fn pad_timelines(sim: &Simulator, ids: &[String], timeline_bytes: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut unpadded = 0usize;
    for id in ids {
        let Some(mut project) = sim.project(id) else {
            continue;
        };
        match project
            .timeline
            .as_deref()
            .and_then(|t| pad_timeline(t, timeline_bytes, &mut rng))
        {
            Some(padded) => project.timeline = Some(padded),
            None => unpadded += 1,
        }
        sim.insert(project);
    }
    if unpadded > 0 {
        eprintln!(
            "warning: {unpadded} generated timelines have an unexpected shape and were not \
             padded to {timeline_bytes} bytes"
        );
    }
}

/// Grows a generated timeline (`{"VideoTracks":[{"VideoTrackClips":[...]}],
/// "AudioTracks":[]}`) with more clips until it is at least `target` bytes; `None` if it
/// does not have that shape.
fn pad_timeline(timeline: &str, target: usize, rng: &mut StdRng) -> Option<String> {
    const TAIL: &str = "]}],\"AudioTracks\":[]}";
    let head = timeline.strip_suffix(TAIL)?;
    let mut padded = String::with_capacity(target + 128);
    padded.push_str(head);
    let mut clip = 0u32;
    while padded.len() + TAIL.len() < target {
        let start = clip * 4;
        padded.push_str(&format!(
            ",{{\"MediaId\":\"{:032x}\",\"In\":{start},\"Out\":{}.5}}",
            rng.gen::<u128>(),
            start + 3
        ));
        clip += 1;
    }
    padded.push_str(TAIL);
    Some(padded)
}

/// Moves about `fraction` of `ids` one lifecycle step, picked at random (seeded, a new
/// draw per call), returning those that moved.
fn advance_some<'a>(sim: &Simulator, ids: &'a [String], fraction: f64, seed: u64) -> Vec<&'a str> {
    static ROUND: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let round = ROUND.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut rng = StdRng::seed_from_u64(seed ^ round.wrapping_mul(0x9E37_79B9));
    let wanted = (ids.len() as f64 * fraction).round() as usize;
    let mut moved = Vec::with_capacity(wanted);
    let mut tries = 0;
    while moved.len() < wanted && tries < wanted * 20 {
        tries += 1;
        let id = &ids[rng.gen_range(0..ids.len())];
        if sim.advance(id) {
            moved.push(id.as_str());
        }
    }
    moved
}

/// Moves every project one step round a loop of statuses that are polled at every tick,
/// with ModifiedTime bumped: regular projects `Editing <-> Producing` (the edit-and-produce
/// rounds of a real project), live ones `Reserving <-> BroadCasting`. Every poll after it
/// sees a new status pair: a history row per poll, the writer's heaviest steady load (each
/// row ends a stretch; each `Producing` row probes the lead facts). A settled status
/// (`Produced`, `LiveFinished`) would leave the due set until `sync.settled_interval`.
fn churn_all(sim: &Simulator, ids: &[String]) -> usize {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut moved = 0;
    for id in ids {
        let Some(mut project) = sim.project(id) else {
            continue;
        };
        if project.project_type.as_deref() == Some("LiveEditingProject") {
            let next = match project.business_status.as_deref() {
                Some("Reserving") => "BroadCasting",
                _ => "Reserving",
            };
            project.business_status = Some(next.into());
        } else {
            let next = match project.status.as_deref() {
                Some("Editing") => "Producing",
                _ => "Editing",
            };
            project.status = Some(next.into());
        }
        project.modified_time = Some(now.clone());
        sim.insert(project);
        moved += 1;
    }
    moved
}
