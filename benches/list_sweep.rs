//! List mode at scale (issue 12): `cargo bench --bench list_sweep -- [OPTIONS]`.
//!
//! A list-mode daemon tracking N projects (default 1,000,000) against a zero-latency
//! simulator in a process of its own, with a `sync.max_qps` too small for one sweep per
//! period, so every sweep spans several cycles. Each period 0.1% of the projects change
//! upstream. Cycles run on the schedule's ticks, as the scheduler runs them. It prints:
//! list calls and claims per cycle, how long each sweep took (against pages / max_qps),
//! and how long after happening each change was recorded (against one sweep plus one
//! period). Figures go to stdout, progress to stderr.
//!
//! Options: `--projects N`, `--backend sqlite|postgres`, `--period SECONDS` (30),
//! `--max-qps Q` (100), `--changing FRACTION` (0.001), `--sweeps K` (2: measure until K
//! sweeps have completed).
//!
//! Roles: no role argument is the measuring process; `--serve-sim ...` is the simulator
//! of `support::sim`, shared with the daemon benchmark (here with zero latency and the
//! generated timelines).

mod support;

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio_util::sync::CancellationToken;

use ice_sim::SimulatorConfig;
use ice_sync::app;
use ice_sync::config;
use ice_sync::storage::Store;
use ice_sync::sync::CycleKind;
use ice_testkit::{Backend, TestDatabase};

use support::procfs::{self, Pid};
use support::sim::SimProcess;

const SEED: u64 = 42;
/// IDs per `track_add` while loading.
const TRACK_CHUNK: usize = 10_000;
/// IDs per status query when checking which changes are recorded.
const CHECK_CHUNK: usize = 500;
/// Projects per claim while loading. The default (1,000 on SQLite) stalls here: SQLite
/// answers "database is locked" after its 30 s busy timeout every few claims at this
/// write rate (seen on main too); the measured cycles use the default.
const LOAD_CLAIM: usize = 100_000;
/// The page size list mode uses (the API's maximum).
const PAGE: usize = 100;

struct Options {
    projects: usize,
    backend: Backend,
    period: u64,
    max_qps: u32,
    changing: f64,
    sweeps: usize,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let result = match args.first().map(String::as_str) {
        Some("--serve-sim") => support::sim::serve(&args[1..]).map(|_| ()),
        _ => parse(&args).and_then(measure),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut o = Options {
        projects: 1_000_000,
        backend: Backend::Sqlite,
        period: 30,
        max_qps: 100,
        changing: 0.001,
        sweeps: 2,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--projects" => o.projects = value.parse()?,
            "--backend" => {
                o.backend = match value.as_str() {
                    "sqlite" => Backend::Sqlite,
                    "postgres" => Backend::Postgres,
                    other => bail!("--backend {other}: sqlite or postgres"),
                }
            }
            "--period" => o.period = value.parse()?,
            "--max-qps" => o.max_qps = value.parse()?,
            "--changing" => o.changing = value.parse()?,
            "--sweeps" => o.sweeps = value.parse()?,
            other => bail!("unknown option {other}"),
        }
    }
    if !(2..=60).contains(&o.period) || 60 % o.period != 0 {
        bail!("--period must divide 60 (a */N seconds schedule)");
    }
    Ok(o)
}

fn measure(o: Options) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(measure_async(o))
}

/// A change made upstream and not yet seen recorded.
struct Change {
    id: String,
    pair: (Option<String>, Option<String>),
    /// When it was made, Unix seconds (the database stamps with the same clock here).
    at: f64,
}

fn unix_now() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

async fn measure_async(o: Options) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut sim = SimProcess::spawn(o.projects, 0, SEED, 0)?;
    let db = TestDatabase::new(o.backend).await;
    let endpoint = sim.endpoint.clone();
    let env = |qps: u32, concurrency: usize| -> Vec<(String, String)> {
        let cfg = SimulatorConfig::default();
        [
            ("ICE_SYNC__DATABASE__URL", db.url.clone()),
            ("ICE_SYNC__ICE__ENDPOINT", endpoint.clone()),
            ("ICE_SYNC__ICE__ACCESS_KEY_ID", cfg.access_key_id),
            ("ICE_SYNC__ICE__ACCESS_KEY_SECRET", cfg.access_key_secret),
            ("ICE_SYNC__SYNC__MODE", "list".into()),
            (
                "ICE_SYNC__SYNC__SCHEDULE",
                format!("*/{} * * * * *", o.period),
            ),
            ("ICE_SYNC__SYNC__MAX_QPS", qps.to_string()),
            ("ICE_SYNC__SYNC__CONCURRENCY", concurrency.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    };
    // Loading: every project tracked and fetched once, as fast as the machine goes.
    // List mode's polling policy, but no sweep: loading is not what is measured.
    let loader = app::Daemon::builder(&config::load_from(None, env(0, 64))?)
        .tune(|o| {
            o.list = None;
            o.claim_batch = LOAD_CLAIM;
        })
        .engine()
        .await?;
    let tracked = track_all(&mut sim, loader.store()).await?;
    eprintln!(
        "tracked {tracked} in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let load = Instant::now();
    let first = loader.run(CycleKind::All, &CancellationToken::new()).await;
    eprintln!(
        "first full fetch: {} polled in {:.0} s ({:?}{})",
        first.polled,
        load.elapsed().as_secs_f64(),
        first.outcome,
        first
            .error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    );
    // A full fetch that stopped early (SQLite can answer "database is locked" under this
    // write load) leaves the rest due: fetch it with as many more cycles as it takes.
    let mut rounds = 0;
    loop {
        let more = loader.run(CycleKind::Once, &CancellationToken::new()).await;
        rounds += 1;
        if more.polled == 0 && more.outcome == ice_sync::sync::CycleOutcome::Success {
            break;
        }
        eprintln!(
            "load round {rounds}: {} more polled ({:?})",
            more.polled, more.error
        );
        if rounds > 20 {
            bail!("loading did not finish: {:?}", more.error);
        }
    }
    let load_s = load.elapsed().as_secs_f64();

    // Measured: the daemon as configured, on the same database.
    let settings = config::load_from(None, env(o.max_qps, 16))?;
    let cfg = SimulatorConfig::default();
    let client = ice_sync::ice::IceClient::new(
        app::client_options(&settings),
        ice_sync::credentials::Credentials {
            access_key_id: cfg.access_key_id,
            access_key_secret: cfg.access_key_secret.into(),
            security_token: None,
            source: "bench".into(),
        },
    )?;
    let engine = loader.successor(client, app::engine_options(&settings));
    drop(loader);
    let store = engine.store().clone();

    // By project: a project that moves again before it is recorded keeps its first
    // change's time (so its lag is counted from the earlier change) and the latest state.
    let mut pending: HashMap<String, Change> = HashMap::new();
    let mut lags: Vec<f64> = Vec::new();
    let (mut list_calls, mut get_calls, mut polled) = (Vec::new(), Vec::new(), Vec::new());
    let mut changes = 0usize;
    let mut overruns = 0usize;
    let mut cycles = 0usize;
    // Measuring starts with no sweep in progress: each one completed is seen whole.
    let mut completed_seen = 0usize;
    while completed_seen < o.sweeps {
        align_to(o.period, Duration::from_millis(50)).await;
        let advanced = sim.advance_ids(o.changing)?;
        changes += advanced.len();
        let now = unix_now();
        for (id, pair) in advanced {
            let at = pending.get(&id).map_or(now, |c| c.at);
            pending.insert(id.clone(), Change { id, pair, at });
        }
        let before = sim.calls_by_action()?;
        let r = engine.run_cycle(&CancellationToken::new()).await;
        let after = sim.calls_by_action()?;
        cycles += 1;
        list_calls.push((after.list - before.list) as f64);
        get_calls.push((after.get - before.get) as f64);
        polled.push(r.polled as f64);
        overruns += usize::from(r.overran);
        completed_seen += r.sweeps_completed;
        pending = recorded(&store, o.backend, pending, &mut lags).await?;
        eprintln!(
            "cycle {cycles}: {:?} {} pages, {} polled, {} changes pending, {:.1} s{}",
            r.outcome,
            r.list_pages,
            r.polled,
            pending.len(),
            r.duration.as_secs_f64(),
            if r.sweeps_completed > 0 {
                ", sweep complete"
            } else {
                ""
            }
        );
    }

    let sweeps = completed_sweeps(&store, o.backend).await?;
    let whole = sweeps;
    let longest = whole.iter().map(|s| s.1).fold(0.0, f64::max);
    let period = o.period as f64;
    let budget = longest + period;
    // Changes still pending count as recorded no sooner than now.
    let unrecorded: Vec<f64> = pending.values().map(|c| unix_now() - c.at).collect();
    let within = lags.iter().filter(|l| **l <= budget).count();
    let late_pending = unrecorded.iter().filter(|l| **l > budget).count();
    lags.sort_by(|a, b| a.total_cmp(b));
    let pages = o.projects.div_ceil(PAGE);
    let ideal = pages as f64 / f64::from(o.max_qps);

    println!("## list mode at {} tracked ({:?})", o.projects, o.backend);
    println!();
    println!("machine: {}, shared with other jobs", support::machine());
    println!(
        "setup: simulator in its own process (zero latency, generated ~200-byte timelines), \
         sync.max_qps = {}, schedule every {} s, sync.list_sweep_share = 0.5, {:.2}% changing \
         per period; load: tracked and fetched once in {load_s:.0} s",
        o.max_qps,
        o.period,
        o.changing * 100.0
    );
    println!();
    println!("| figure | value |");
    println!("| --- | --- |");
    println!("| pages per sweep | {pages} |");
    println!(
        "| list calls per cycle (mean / min / max) | {} |",
        spread(&list_calls)
    );
    println!(
        "| claims per cycle: projects polled (mean / min / max) | {} |",
        spread(&polled)
    );
    println!(
        "| GetEditingProject calls per cycle (mean / min / max) | {} |",
        spread(&get_calls)
    );
    println!(
        "| sweep completion (pages, s), measured sweeps | {} |",
        whole
            .iter()
            .map(|(p, s)| format!("{p} pages in {s:.0} s"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    println!(
        "| pages / max_qps (the floor) | {ideal:.0} s; longest sweep {:.2}x of it |",
        longest / ideal
    );
    println!("| changes made upstream | {changes} over {cycles} cycles |");
    println!(
        "| recorded within one sweep + one period ({budget:.0} s) | {within} of {}; {} still pending, {late_pending} of them older than that |",
        lags.len() + unrecorded.len(),
        unrecorded.len()
    );
    println!(
        "| change to its history row (median / p99 / max) | {:.1} / {:.1} / {:.1} s |",
        quantile(&lags, 0.5),
        quantile(&lags, 0.99),
        lags.last().copied().unwrap_or(0.0)
    );
    println!("| cycles that overran | {overruns} of {cycles} |");
    println!(
        "| peak RSS of this process, loading included (not the daemon's figure) | {} MiB |",
        procfs::status_value(Pid::Own, "VmHWM").unwrap_or(0) / 1024
    );
    drop(engine);
    Ok(())
}

/// Keeps the changes not yet recorded; the lag of each recorded one goes to `lags`.
async fn recorded(
    store: &Store,
    backend: Backend,
    pending: HashMap<String, Change>,
    lags: &mut Vec<f64>,
) -> anyhow::Result<HashMap<String, Change>> {
    let pending: Vec<Change> = pending.into_values().collect();
    let mut still = HashMap::new();
    for chunk in pending.chunks(CHECK_CHUNK) {
        let list = chunk
            .iter()
            .map(|c| format!("'{}'", c.id))
            .collect::<Vec<_>>()
            .join(",");
        let changed_at = match backend {
            Backend::Postgres => "EXTRACT(EPOCH FROM last_changed_at)::float8",
            Backend::Sqlite => "(julianday(last_changed_at) - 2440587.5) * 86400.0",
        };
        let rows = store
            .query_table(&format!(
                "SELECT project_id, status, business_status, {changed_at} FROM editing_projects \
                 WHERE project_id IN ({list})"
            ))
            .await?
            .rows;
        type Seen = ((Option<String>, Option<String>), f64);
        let stored: HashMap<String, Seen> = rows
            .into_iter()
            .filter_map(|r| {
                let mut r = r.into_iter();
                let id = r.next()??;
                let pair = (r.next()?, r.next()?);
                let at = r.next()??.parse().ok()?;
                Some((id, (pair, at)))
            })
            .collect();
        for c in chunk {
            match stored.get(&c.id) {
                Some((pair, at)) if *pair == c.pair => lags.push(at - c.at),
                _ => {
                    still.insert(
                        c.id.clone(),
                        Change {
                            id: c.id.clone(),
                            pair: c.pair.clone(),
                            at: c.at,
                        },
                    );
                }
            }
        }
    }
    Ok(still)
}

async fn completed_sweeps(store: &Store, backend: Backend) -> anyhow::Result<Vec<(i64, f64)>> {
    let seconds = match backend {
        Backend::Postgres => "EXTRACT(EPOCH FROM finished_at - started_at)::float8",
        Backend::Sqlite => "(julianday(finished_at) - julianday(started_at)) * 86400.0",
    };
    let rows = store
        .query_table(&format!(
            "SELECT pages, {seconds} FROM list_sweeps WHERE outcome = 'completed' ORDER BY id"
        ))
        .await?
        .rows;
    Ok(rows
        .into_iter()
        .map(|r| {
            let num = |i: usize| {
                r.get(i)
                    .cloned()
                    .flatten()
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            (num(0) as i64, num(1))
        })
        .collect())
}

fn spread(values: &[f64]) -> String {
    if values.is_empty() {
        return "-".into();
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(0.0, f64::max);
    format!("{mean:.0} / {min:.0} / {max:.0}")
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Sleeps until `offset` into the next `period`-second window of the wall clock (the
/// ticks of a `*/period` schedule).
async fn align_to(period: u64, offset: Duration) {
    let now = chrono::Utc::now().timestamp_millis() as u64;
    let into = Duration::from_millis(now % (period * 1000));
    let target = if into < offset {
        offset
    } else {
        offset + Duration::from_secs(period)
    };
    tokio::time::sleep(target - into).await;
}

/// Tracks every ID the simulator announces, [`TRACK_CHUNK`] at a time, so a million IDs
/// are never held here at once.
async fn track_all(sim: &mut SimProcess, store: &Store) -> anyhow::Result<usize> {
    let mut chunk = Vec::with_capacity(TRACK_CHUNK);
    let mut total = 0;
    loop {
        let next = sim.next_id()?;
        let last = next.is_none();
        if let Some(id) = next {
            chunk.push(ice_sync::domain::ProjectId::parse(&id)?);
        }
        if chunk.len() == TRACK_CHUNK || (last && !chunk.is_empty()) {
            total += chunk.len();
            store
                .tracking()
                .track_add(&chunk, "import", app::now(store).await?)
                .await?;
            chunk.clear();
        }
        if last {
            return Ok(total);
        }
    }
}
