//! The cycle benchmark of issue 6: `cargo bench --bench cycle [-- --full] [SCENARIO...]`.
//!
//! It runs full cycles of the real sync engine (the real `IceClient`, `Engine` and `Store`)
//! against the simulator and reports what a cycle costs: wall time against the
//! latency-bound ideal `max(N / max_qps, N * latency / concurrency)`, CPU (user+sys) per
//! project, peak RSS, API calls, database statements and transactions, and history rows
//! written per cycle. A **bare** scenario sends the same signed requests with the same
//! HTTP client settings and concurrency but neither parses nor stores anything: the floor
//! the engine's CPU cost is compared to.
//!
//! One binary, three roles, chosen by the first argument:
//!
//! * no role argument: the **orchestrator**. It runs each selected scenario in a fresh
//!   child process of this binary, collects one `RESULT {json}` line from each, and prints
//!   a markdown table and the targets (met or missed) on stdout.
//! * `--scenario NAME [--cycles K]`: runs one scenario in this process. A fresh process
//!   per scenario because peak RSS (`VmHWM`) is a high-water mark of the whole process and
//!   would otherwise carry over from one scenario to the next.
//! * `--serve-sim N LATENCY_MS SEED TIMELINE_BYTES`: the simulator, in a process of its
//!   own so that its CPU and memory (100,000 projects with 2 KB timelines) are not counted
//!   as the daemon's (`support::sim`, shared with the daemon benchmark, describes the
//!   protocol).
//!
//! Progress goes to stderr, results to stdout. CPU time comes from `/proc/self/stat` and
//! peak RSS from `/proc/self/status`, so the benchmark runs on Linux only.

mod support;

use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use ice_sim::SimulatorConfig;
use ice_sync::app;
use ice_sync::config::{self, LogFormat, LogSettings, Settings};
use ice_sync::storage::Store;
use ice_sync::sync::engine::Engine;
use ice_testkit::{Backend, Collation, TestDatabase};

use support::bare::BareClient;
use support::procfs::{self, CpuTimes, Pid};
use support::sim::SimProcess;
use support::{one_line, verdict};

/// Seeds the simulator, so every run benchmarks the same projects and lifecycles.
const SEED: u64 = 42;
/// Real timelines run to kilobytes; the generated ones are ~200 bytes, which would make
/// parsing and storing look cheaper than it is.
const TIMELINE_BYTES: usize = 2048;
/// Steady-state cycles measured after the initial one, unless a scenario or `--cycles`
/// says otherwise.
const DEFAULT_STEADY_CYCLES: usize = 3;
/// `database.max_connections`' default: the daemon as shipped.
const MAX_CONNECTIONS: u32 = 5;
/// IDs per `track_add` call while loading, so the ID list is never held whole in the
/// measured process (it would inflate peak RSS beyond what a daemon holds).
const TRACK_CHUNK: usize = 1000;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    // `cargo bench` appends `--bench` to the arguments of a `harness = false` target.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("--serve-sim") => support::sim::serve(&args[1..]),
        Some("--scenario") => scenario_process(&args[1..]),
        _ => orchestrate(&args),
    }
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Sqlite,
    Postgres,
    /// Signed HTTP only: no parsing, no database.
    Bare,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Sqlite => "sqlite",
            Mode::Postgres => "postgres",
            Mode::Bare => "bare",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Scenario {
    name: &'static str,
    mode: Mode,
    n: usize,
    latency_ms: u64,
    concurrency: usize,
    /// `None`: unlimited (`sync.max_qps = 0`).
    max_qps: Option<u32>,
    /// Fraction of projects the simulator moves one lifecycle step before each steady
    /// cycle.
    change: f64,
    /// Overrides [`DEFAULT_STEADY_CYCLES`] (not `--cycles`).
    steady_cycles: Option<usize>,
    /// Takes minutes: runs only with `--full`.
    full_only: bool,
    what: &'static str,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "get-sqlite-10k",
        mode: Mode::Sqlite,
        n: 10_000,
        latency_ms: 20,
        concurrency: 64,
        max_qps: None,
        change: 0.01,
        steady_cycles: None,
        full_only: false,
        what: "full get-mode cycles on SQLite, 1% changed",
    },
    Scenario {
        name: "get-pg-10k",
        mode: Mode::Postgres,
        n: 10_000,
        latency_ms: 20,
        concurrency: 64,
        max_qps: None,
        change: 0.01,
        steady_cycles: None,
        full_only: false,
        what: "full get-mode cycles on PostgreSQL, 1% changed",
    },
    Scenario {
        name: "bare-10k",
        mode: Mode::Bare,
        n: 10_000,
        latency_ms: 20,
        concurrency: 64,
        max_qps: None,
        change: 0.0,
        steady_cycles: None,
        full_only: false,
        what: "the same signed requests, no parsing, no database: the CPU floor",
    },
    Scenario {
        name: "qps50",
        mode: Mode::Sqlite,
        n: 500,
        latency_ms: 20,
        concurrency: 64,
        max_qps: Some(50),
        change: 0.01,
        // Each cycle takes ten seconds by design; one steady cycle shows the rate.
        steady_cycles: Some(1),
        full_only: false,
        what: "max_qps = 50: achieved request rate",
    },
    Scenario {
        name: "unchanged-sqlite-10k",
        mode: Mode::Sqlite,
        n: 10_000,
        latency_ms: 20,
        concurrency: 64,
        max_qps: None,
        change: 0.0,
        steady_cycles: None,
        full_only: false,
        what: "nothing changes: history rows and statements per 100 projects",
    },
    Scenario {
        name: "pg-throughput",
        mode: Mode::Postgres,
        n: 10_000,
        latency_ms: 0,
        concurrency: 64,
        max_qps: None,
        change: 0.01,
        steady_cycles: None,
        full_only: false,
        what: "PostgreSQL with a zero-latency simulator: projects/s",
    },
    Scenario {
        name: "bare-throughput",
        mode: Mode::Bare,
        n: 10_000,
        latency_ms: 0,
        concurrency: 64,
        max_qps: None,
        change: 0.0,
        steady_cycles: None,
        full_only: false,
        what: "bare requests to a zero-latency simulator: the ceiling for pg-throughput",
    },
    Scenario {
        name: "rss-100k",
        mode: Mode::Sqlite,
        n: 100_000,
        latency_ms: 0,
        concurrency: 64,
        max_qps: None,
        change: 0.01,
        steady_cycles: Some(2),
        full_only: true,
        what: "100,000 tracked projects on SQLite: peak RSS",
    },
];

fn find_scenario(name: &str) -> anyhow::Result<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name).ok_or_else(|| {
        anyhow!(
            "unknown scenario {name:?}; the scenarios are: {}",
            SCENARIOS
                .iter()
                .map(|s| s.name)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// `max(N / max_qps, N * latency / concurrency)`: the best any client could do.
fn ideal_seconds(s: &Scenario) -> f64 {
    let n = s.n as f64;
    let by_qps = s.max_qps.map_or(0.0, |q| n / f64::from(q));
    let by_latency = n * (s.latency_ms as f64 / 1000.0) / s.concurrency.max(1) as f64;
    by_qps.max(by_latency)
}

/// What one scenario process measured; travels to the orchestrator as one JSON line.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Measured {
    scenario: String,
    mode: String,
    n: usize,
    /// Steady cycles measured (after the initial one).
    cycles: usize,
    /// The first cycle, which inserts every project (bare: the first round).
    initial_s: f64,
    /// Mean wall time of the steady cycles.
    cycle_s: f64,
    cycle_max_s: f64,
    /// CPU (user+sys) of the whole process over the steady cycles, per project polled.
    cpu_us_per_project: f64,
    /// The system-time part of `cpu_us_per_project`.
    sys_us_per_project: f64,
    initial_cpu_us_per_project: f64,
    /// `VmHWM` at the end: the process's peak resident set.
    peak_rss_kib: u64,
    /// `VmHWM` right after the initial cycle, to tell whether the peak came from it.
    peak_rss_after_initial_kib: u64,
    /// `VmRSS` at the end.
    rss_at_end_kib: u64,
    api_calls_per_cycle: f64,
    statements_per_cycle: f64,
    transactions_per_cycle: f64,
    /// `CycleReport.transitions`: history rows committed.
    history_rows_per_cycle: f64,
    /// Projects the simulator moved before each steady cycle, on average.
    moved_per_cycle: f64,
    /// `wchar` of `/proc/self/io`: bytes passed to write-like syscalls, database files
    /// (SQLite, WAL) and sockets alike.
    written_bytes_per_cycle: f64,
    /// Failed projects (or failed bare requests) over all cycles, initial included.
    failures: u64,
}

// ---------------------------------------------------------------------------------------
// Orchestrator
// ---------------------------------------------------------------------------------------

const USAGE: &str = "\
usage: cargo bench --bench cycle -- [--full] [--cycles K] [SCENARIO...]
       cargo bench --bench cycle -- --list

Runs each scenario in a fresh process and prints a markdown table on stdout.
Default: every scenario except the --full ones. --full adds them (rss-100k).
--cycles K: steady cycles per scenario (default 3; qps50 runs 1, rss-100k 2).
PostgreSQL: the server of ICE_SYNC_TEST_PG_URL, as for the tests (default
postgres://postgres@127.0.0.1:5432/postgres); each PostgreSQL scenario creates a fresh
database there and drops it afterwards.";

fn orchestrate(args: &[String]) -> anyhow::Result<ExitCode> {
    let mut full = false;
    let mut cycles: Option<usize> = None;
    let mut names: Vec<&str> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--full" => full = true,
            "--cycles" => {
                let value = it.next().context("--cycles needs a number")?;
                cycles = Some(parse_cycles(value)?);
            }
            "--list" => {
                for s in SCENARIOS {
                    let full = if s.full_only { " (--full)" } else { "" };
                    println!("{:<22} {}{full}", s.name, s.what);
                }
                return Ok(ExitCode::SUCCESS);
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other if other.starts_with('-') => bail!("unknown option {other:?}\n{USAGE}"),
            name => names.push(name),
        }
    }
    let selected: Vec<&Scenario> = if names.is_empty() {
        SCENARIOS.iter().filter(|s| full || !s.full_only).collect()
    } else {
        let mut picked = Vec::new();
        for name in names {
            let s = find_scenario(name)?;
            if s.full_only && !full {
                bail!("{} takes minutes and runs only with --full", s.name);
            }
            picked.push(s);
        }
        picked
    };

    let exe = std::env::current_exe().context("finding this benchmark's executable")?;
    let mut results: Vec<(&Scenario, anyhow::Result<Measured>)> = Vec::new();
    for s in &selected {
        eprintln!("== {}: {}", s.name, s.what);
        let mut cmd = Command::new(&exe);
        cmd.args(["--scenario", s.name]);
        if let Some(k) = cycles {
            cmd.args(["--cycles", &k.to_string()]);
        }
        let result = run_child_scenario(cmd).with_context(|| format!("scenario {}", s.name));
        if let Err(e) = &result {
            eprintln!("== {} failed: {e:#}", s.name);
        }
        results.push((s, result));
    }

    print_report(&results);
    Ok(if results.iter().all(|(_, r)| r.is_ok()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn parse_cycles(value: &str) -> anyhow::Result<usize> {
    let k: usize = value
        .parse()
        .with_context(|| format!("--cycles {value:?} is not a whole number"))?;
    if k == 0 {
        bail!("--cycles must be at least 1");
    }
    Ok(k)
}

fn run_child_scenario(mut cmd: Command) -> anyhow::Result<Measured> {
    let output = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .context("starting the scenario process")?;
    if !output.status.success() {
        bail!("the scenario process exited with {}", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .context("the scenario process printed no RESULT line")?;
    serde_json::from_str(line).context("reading the scenario's RESULT line")
}

fn print_report(results: &[(&Scenario, anyhow::Result<Measured>)]) {
    println!("### Cycle benchmark ({})", support::machine());
    println!();
    println!(
        "Simulator in its own process on the same machine; {TIMELINE_BYTES}-byte timelines; \
         `database.max_connections` = {MAX_CONNECTIONS}. `cycle` is the mean of the steady \
         cycles after the initial one (which inserts every project); CPU is user+sys of \
         the daemon process over those cycles; bare = sign + HTTP + read body, no parsing, \
         no database."
    );
    println!();
    println!(
        "| scenario | backend | N | latency | conc. | max_qps | changed | initial s | \
         cycle s | ideal s | ratio | CPU µs/project (sys) | peak RSS MiB | API calls/cycle | \
         statements/cycle | tx/cycle | history rows/cycle | projects/s |"
    );
    println!("|{}", "---|".repeat(18));
    for (s, result) in results {
        let m = match result {
            Ok(m) => m,
            Err(e) => {
                println!("| {} | failed: {} |", s.name, one_line(&format!("{e:#}")));
                continue;
            }
        };
        let ideal = ideal_seconds(s);
        let ratio = if ideal > 0.0 {
            format!("{:.2}", m.cycle_s / ideal)
        } else {
            "—".to_string()
        };
        let is_bare = s.mode == Mode::Bare;
        let db = |v: f64| {
            if is_bare {
                "—".to_string()
            } else {
                format!("{v:.0}")
            }
        };
        println!(
            "| {} | {} | {} | {} ms | {} | {} | {} | {:.2} | {:.2} | {:.2} | {} | {:.0} ({:.0}) \
             | {:.1} | {:.0} | {} | {} | {} | {:.0} |",
            s.name,
            s.mode.as_str(),
            s.n,
            s.latency_ms,
            s.concurrency,
            s.max_qps.map_or("∞".to_string(), |q| q.to_string()),
            if is_bare {
                "—".to_string()
            } else {
                format!("{:.0}%", s.change * 100.0)
            },
            m.initial_s,
            m.cycle_s,
            ideal,
            ratio,
            m.cpu_us_per_project,
            m.sys_us_per_project,
            m.peak_rss_kib as f64 / 1024.0,
            m.api_calls_per_cycle,
            db(m.statements_per_cycle),
            db(m.transactions_per_cycle),
            db(m.history_rows_per_cycle),
            s.n as f64 / m.cycle_s,
        );
    }
    let failures: u64 = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .map(|m| m.failures)
        .sum();
    if failures > 0 {
        println!();
        println!("**{failures} project polls failed** (see stderr): figures are suspect.");
    }

    println!();
    println!("| target | measured | verdict |");
    println!("|---|---|---|");
    for (target, measured, verdict) in targets(results) {
        println!("| {target} | {measured} | {verdict} |");
    }
}

/// The targets of issue 6 that the scenarios run here can answer.
fn targets(results: &[(&Scenario, anyhow::Result<Measured>)]) -> Vec<(String, String, String)> {
    let get = |name: &str| {
        results
            .iter()
            .find(|(s, _)| s.name == name)
            .and_then(|(s, r)| r.as_ref().ok().map(|m| (*s, m)))
    };
    let mut rows = Vec::new();
    for name in ["get-sqlite-10k", "get-pg-10k"] {
        if let Some((s, m)) = get(name) {
            let limit = 1.15 * ideal_seconds(s) + 1.0;
            rows.push((
                format!("{name}: cycle ≤ 1.15 × ideal + 1 s"),
                format!("{:.2} s (limit {limit:.2} s)", m.cycle_s),
                verdict(m.cycle_s <= limit).to_string(),
            ));
        }
    }
    if let Some((s, m)) = get("qps50") {
        let limit = f64::from(s.max_qps.unwrap_or(0)) * 0.95;
        let achieved = m.api_calls_per_cycle / m.cycle_s;
        rows.push((
            "qps50: achieved QPS ≥ 95% of max_qps".to_string(),
            format!("{achieved:.1}/s (limit {limit:.1}/s)"),
            verdict(achieved >= limit).to_string(),
        ));
    }
    if let (Some((_, full)), Some((_, bare))) = (get("get-sqlite-10k"), get("bare-10k")) {
        let ratio = full.cpu_us_per_project / bare.cpu_us_per_project;
        rows.push((
            "CPU/project get-sqlite-10k ≤ 1.5 × bare-10k".to_string(),
            format!(
                "{:.0} µs vs {:.0} µs: {ratio:.2}×",
                full.cpu_us_per_project, bare.cpu_us_per_project
            ),
            verdict(ratio <= 1.5).to_string(),
        ));
    }
    if let Some((s, m)) = get("unchanged-sqlite-10k") {
        let limit = s.n as f64 / 100.0;
        rows.push((
            "unchanged cycle: 0 history rows".to_string(),
            format!("{:.0}", m.history_rows_per_cycle),
            verdict(m.history_rows_per_cycle == 0.0).to_string(),
        ));
        rows.push((
            "unchanged cycle: ≤ 1 statement per 100 projects".to_string(),
            format!(
                "{:.0} statements ({:.2} per 100 projects; limit {limit:.0})",
                m.statements_per_cycle,
                m.statements_per_cycle / s.n as f64 * 100.0
            ),
            verdict(m.statements_per_cycle <= limit).to_string(),
        ));
    }
    for (name, limit_mib) in [
        ("get-sqlite-10k", 24.0),
        ("get-pg-10k", 24.0),
        ("rss-100k", 64.0),
    ] {
        if let Some((s, m)) = get(name) {
            let mib = m.peak_rss_kib as f64 / 1024.0;
            rows.push((
                format!("{name}: peak RSS ≤ {limit_mib:.0} MiB ({} projects)", s.n),
                format!("{mib:.1} MiB"),
                verdict(mib <= limit_mib).to_string(),
            ));
        }
    }
    if let Some((s, m)) = get("pg-throughput") {
        let rate = s.n as f64 / m.cycle_s;
        // The same requests without parsing or storage show how much of the shortfall
        // is the simulator and the loopback sharing the two cores.
        let ceiling = get("bare-throughput")
            .map(|(b, bm)| format!(" (bare ceiling {:.0}/s)", b.n as f64 / bm.cycle_s))
            .unwrap_or_default();
        rows.push((
            "pg-throughput: aim ≥ 10,000 projects/s".to_string(),
            format!("{rate:.0} projects/s{ceiling}"),
            verdict(rate >= 10_000.0).to_string(),
        ));
    }
    rows
}

// ---------------------------------------------------------------------------------------
// One scenario, in its own process
// ---------------------------------------------------------------------------------------

fn scenario_process(args: &[String]) -> anyhow::Result<ExitCode> {
    let name = args.first().context("--scenario needs a scenario name")?;
    let scenario = find_scenario(name)?;
    let mut cycles = scenario.steady_cycles.unwrap_or(DEFAULT_STEADY_CYCLES);
    let mut rest = args[1..].iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--cycles" => {
                let value = rest.next().context("--cycles needs a number")?;
                cycles = parse_cycles(value)?;
            }
            other => bail!("unknown argument {other:?} after --scenario {name}"),
        }
    }
    // The daemon's logging, as `ice-sync run` sets it up by default: its INFO spans
    // (one per project and request) are part of what a cycle costs.
    ice_sync::telemetry::init(&LogSettings {
        format: Some(LogFormat::Plain),
        level: "info".to_string(),
    });
    // The runtime `ice-sync` itself builds (`src/main.rs`).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let measured = runtime.block_on(async {
        match scenario.mode {
            Mode::Bare => bare_scenario(scenario, cycles).await,
            Mode::Sqlite | Mode::Postgres => sync_scenario(scenario, cycles).await,
        }
    })?;
    eprintln!(
        "{}: peak RSS {:.1} MiB ({:.1} MiB after the initial cycle), {:.1} MiB at the end",
        scenario.name,
        measured.peak_rss_kib as f64 / 1024.0,
        measured.peak_rss_after_initial_kib as f64 / 1024.0,
        measured.rss_at_end_kib as f64 / 1024.0
    );
    let json = serde_json::to_string(&measured).context("encoding the result")?;
    println!("RESULT {json}");
    Ok(ExitCode::SUCCESS)
}

/// The daemon's configuration for a scenario, loaded by `config::load_from` as `ice-sync`
/// loads its own: the defaults, pointed at the simulator and the scenario's database, with
/// the scenario's concurrency and rate limit. Client, credentials and engine are then built
/// from it by the `app` functions the binary uses.
fn bench_settings(s: &Scenario, endpoint: &str, db_url: Option<&str>) -> anyhow::Result<Settings> {
    let sim = SimulatorConfig::default();
    let mut env = vec![
        ("ICE_SYNC__ICE__ENDPOINT", endpoint.to_string()),
        ("ICE_SYNC__ICE__ACCESS_KEY_ID", sim.access_key_id),
        ("ICE_SYNC__ICE__ACCESS_KEY_SECRET", sim.access_key_secret),
        ("ICE_SYNC__SYNC__CONCURRENCY", s.concurrency.to_string()),
        (
            "ICE_SYNC__SYNC__MAX_QPS",
            s.max_qps.unwrap_or(0).to_string(),
        ),
        (
            "ICE_SYNC__DATABASE__MAX_CONNECTIONS",
            MAX_CONNECTIONS.to_string(),
        ),
    ];
    // Bare mode has no database; the default URL is never opened.
    if let Some(url) = db_url {
        env.push(("ICE_SYNC__DATABASE__URL", url.to_string()));
    }
    let env: Vec<(String, String)> = env.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    config::load_from(None, env).context("configuring the scenario")
}

/// Totals over a set of cycles.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    wall: f64,
    wall_max: f64,
    cpu: CpuTimes,
    api_calls: u64,
    statements: u64,
    transactions: u64,
    history_rows: u64,
    polled: u64,
    failures: u64,
    moved: u64,
    written_bytes: u64,
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        self.wall += other.wall;
        self.wall_max = self.wall_max.max(other.wall);
        self.cpu.user += other.cpu.user;
        self.cpu.sys += other.cpu.sys;
        self.api_calls += other.api_calls;
        self.statements += other.statements;
        self.transactions += other.transactions;
        self.history_rows += other.history_rows;
        self.polled += other.polled;
        self.failures += other.failures;
        self.moved += other.moved;
        self.written_bytes += other.written_bytes;
    }
}

fn measured(
    s: &Scenario,
    initial: &Totals,
    steady: &Totals,
    cycles: usize,
    peak_rss_after_initial_kib: u64,
) -> Measured {
    let per_cycle = |v: u64| v as f64 / cycles as f64;
    let per_project = |cpu: f64, polled: u64| cpu * 1e6 / polled.max(1) as f64;
    let total = |cpu: CpuTimes| cpu.user + cpu.sys;
    Measured {
        scenario: s.name.to_string(),
        mode: s.mode.as_str().to_string(),
        n: s.n,
        cycles,
        initial_s: initial.wall,
        cycle_s: steady.wall / cycles as f64,
        cycle_max_s: steady.wall_max,
        cpu_us_per_project: per_project(total(steady.cpu), steady.polled),
        sys_us_per_project: per_project(steady.cpu.sys, steady.polled),
        initial_cpu_us_per_project: per_project(total(initial.cpu), initial.polled),
        // Read last, so it covers everything the scenario did.
        peak_rss_kib: procfs::status_value(Pid::Own, "VmHWM").unwrap_or(0),
        peak_rss_after_initial_kib,
        rss_at_end_kib: procfs::status_value(Pid::Own, "VmRSS").unwrap_or(0),
        api_calls_per_cycle: per_cycle(steady.api_calls),
        statements_per_cycle: per_cycle(steady.statements),
        transactions_per_cycle: per_cycle(steady.transactions),
        history_rows_per_cycle: per_cycle(steady.history_rows),
        moved_per_cycle: per_cycle(steady.moved),
        written_bytes_per_cycle: per_cycle(steady.written_bytes),
        failures: initial.failures + steady.failures,
    }
}

async fn sync_scenario(s: &Scenario, cycles: usize) -> anyhow::Result<Measured> {
    let mut sim = SimProcess::spawn(s.n, s.latency_ms, SEED, TIMELINE_BYTES)?;
    let backend = match s.mode {
        Mode::Postgres => Backend::Postgres,
        _ => Backend::Sqlite,
    };
    // Dropped whatever happens, so failed runs leave no databases behind.
    let db = TestDatabase::create(backend, Collation::ServerDefault).await?;
    drive_sync(s, cycles, &mut sim, &db).await
}

async fn drive_sync(
    s: &Scenario,
    cycles: usize,
    sim: &mut SimProcess,
    db: &TestDatabase,
) -> anyhow::Result<Measured> {
    let settings = bench_settings(s, &sim.endpoint, Some(&db.url))?;
    // Every project is due at every cycle, as in the tests that drive cycles by hand.
    let engine = app::Daemon::builder(&settings)
        .tune(|o| o.policy.schedule = None)
        .engine()
        .await?;
    let store = engine.store().clone();
    let tracked = track_all(sim, &store).await?;
    if tracked != s.n {
        bail!(
            "the simulator announced {tracked} projects, expected {}",
            s.n
        );
    }

    let shutdown = CancellationToken::new();

    let initial = measure_cycle(&engine, sim, &shutdown).await?;
    let rss_after_initial = procfs::status_value(Pid::Own, "VmHWM")?;
    eprintln!(
        "{}: initial cycle {:.2} s, {} history rows, {} statements, {} failures, \
         peak RSS so far {:.1} MiB",
        s.name,
        initial.wall,
        initial.history_rows,
        initial.statements,
        initial.failures,
        rss_after_initial as f64 / 1024.0
    );
    let mut steady = Totals::default();
    for i in 1..=cycles {
        // The simulator changes projects between cycles, as ICE would while the daemon
        // waits for its next tick; the command costs this process a pipe round trip.
        let moved = sim.advance(s.change)?;
        let mut cycle = measure_cycle(&engine, sim, &shutdown).await?;
        cycle.moved = moved;
        eprintln!(
            "{}: cycle {i}/{cycles} {:.2} s, {moved} moved, {} history rows, {} statements, \
             {} api calls, {} failures, CPU {:.2} s user + {:.2} s sys, {:.1} MiB written",
            s.name,
            cycle.wall,
            cycle.history_rows,
            cycle.statements,
            cycle.api_calls,
            cycle.failures,
            cycle.cpu.user,
            cycle.cpu.sys,
            cycle.written_bytes as f64 / (1024.0 * 1024.0)
        );
        steady.add(&cycle);
    }
    drop(engine);
    store.close().await;
    Ok(measured(s, &initial, &steady, cycles, rss_after_initial))
}

async fn measure_cycle(
    engine: &Engine,
    sim: &mut SimProcess,
    shutdown: &CancellationToken,
) -> anyhow::Result<Totals> {
    let calls_before = sim.calls()?;
    let db_before = engine.store().counters();
    let written_before = procfs::bytes_written(Pid::Own)?;
    let cpu_before = procfs::cpu_times(Pid::Own)?;
    let clock = Instant::now();
    let report = engine.run_cycle(shutdown).await;
    let wall = clock.elapsed().as_secs_f64();
    let cpu = procfs::cpu_times(Pid::Own)?.since(cpu_before);
    let written = procfs::bytes_written(Pid::Own)? - written_before;
    let db_after = engine.store().counters();
    let calls_after = sim.calls()?;
    if let Some(error) = &report.error {
        eprintln!("warning: the cycle reported: {error}");
    }
    Ok(Totals {
        wall,
        wall_max: wall,
        cpu,
        api_calls: calls_after.saturating_sub(calls_before),
        statements: db_after.statements - db_before.statements,
        transactions: db_after.transactions - db_before.transactions,
        history_rows: report.transitions,
        polled: report.polled as u64,
        failures: report.failures as u64,
        moved: 0,
        written_bytes: written,
    })
}

// ---------------------------------------------------------------------------------------
// Bare mode: sign + HTTP, nothing else
// ---------------------------------------------------------------------------------------

async fn bare_scenario(s: &Scenario, cycles: usize) -> anyhow::Result<Measured> {
    let mut sim = SimProcess::spawn(s.n, s.latency_ms, SEED, TIMELINE_BYTES)?;
    let ids = sim.read_ids()?;
    let settings = bench_settings(s, &sim.endpoint, None)?;
    let bare = BareClient::new(
        &app::client_options(&settings),
        // Resolved once: the bare transport signs with fixed credentials.
        app::resolve_credentials(&settings)?.credentials().await?,
    )?;
    if s.max_qps.is_some() {
        bail!(
            "bare mode has no rate limiter; give {} max_qps = None",
            s.name
        );
    }

    let initial = bare_round(&bare, &ids, s.concurrency, &mut sim).await?;
    let rss_after_initial = procfs::status_value(Pid::Own, "VmHWM")?;
    eprintln!(
        "{}: first round {:.2} s, {} failures",
        s.name, initial.wall, initial.failures
    );
    let mut steady = Totals::default();
    for i in 1..=cycles {
        let round = bare_round(&bare, &ids, s.concurrency, &mut sim).await?;
        eprintln!(
            "{}: round {i}/{cycles} {:.2} s, {} api calls, {} failures, \
             CPU {:.2} s user + {:.2} s sys, {:.1} MiB written",
            s.name,
            round.wall,
            round.api_calls,
            round.failures,
            round.cpu.user,
            round.cpu.sys,
            round.written_bytes as f64 / (1024.0 * 1024.0)
        );
        steady.add(&round);
    }
    Ok(measured(s, &initial, &steady, cycles, rss_after_initial))
}

async fn bare_round(
    bare: &BareClient,
    ids: &[String],
    concurrency: usize,
    sim: &mut SimProcess,
) -> anyhow::Result<Totals> {
    let calls_before = sim.calls()?;
    let written_before = procfs::bytes_written(Pid::Own)?;
    let cpu_before = procfs::cpu_times(Pid::Own)?;
    let round = support::bare::round(bare, ids, concurrency).await;
    let cpu = procfs::cpu_times(Pid::Own)?.since(cpu_before);
    let written = procfs::bytes_written(Pid::Own)? - written_before;
    let calls_after = sim.calls()?;
    if let Some(e) = &round.first_error {
        eprintln!(
            "warning: {} bare requests failed, the first with: {e}",
            round.failures
        );
    }
    Ok(Totals {
        wall: round.wall,
        wall_max: round.wall,
        cpu,
        api_calls: calls_after.saturating_sub(calls_before),
        polled: round.polled,
        failures: round.failures,
        written_bytes: written,
        ..Totals::default()
    })
}

// ---------------------------------------------------------------------------------------
// Tracking what the simulator announced
// ---------------------------------------------------------------------------------------

/// Tracks every project the simulator announces, [`TRACK_CHUNK`] at a time; returns how
/// many.
async fn track_all(sim: &mut SimProcess, store: &Store) -> anyhow::Result<usize> {
    let mut chunk = Vec::with_capacity(TRACK_CHUNK);
    let mut total = 0;
    loop {
        let line = sim.next_line()?;
        let last = line == "ready";
        if !last {
            chunk.push(line);
        }
        if chunk.len() == TRACK_CHUNK || (last && !chunk.is_empty()) {
            total += chunk.len();
            let ids: Vec<ice_sync::domain::ProjectId> = chunk
                .iter()
                .filter_map(|id: &String| ice_sync::domain::ProjectId::parse(id).ok())
                .collect();
            store
                .tracking()
                .track_add(&ids, "import", app::now(store).await?)
                .await?;
            chunk.clear();
        }
        if last {
            return Ok(total);
        }
    }
}
