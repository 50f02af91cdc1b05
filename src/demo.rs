//! `ice-sync demo`: the whole product in half a minute, with nothing to set up.
//!
//! Starts the built-in ICE simulator on loopback with a few hundred projects, syncs
//! them into a fresh local SQLite file with the real client, engine and storage while
//! the simulator moves projects through their lifecycles, then prints a summary and
//! the SQL a user would run next, with its answers.
//!
//! The simulator is the crate `ice-sim`, compiled in by the default feature `demo`; a
//! build without it keeps the command, which then says how to get it.

// Without `demo`, only the simulator's two users are left out; the helpers stay
// compiled (and checked) but unused.
#![cfg_attr(not(feature = "demo"), allow(dead_code, unused_imports))]

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

#[cfg(feature = "demo")]
use ice_sim::{Simulator, SimulatorConfig};

use crate::credentials::Credentials;
use crate::domain::{ProjectId, Timestamp};
use crate::storage::TextTable;
use crate::sync::engine::Engine;

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DemoArgs {
    /// How long to run
    #[arg(long, default_value = "30s", value_parser = crate::config::bounds::parse_cli_duration)]
    pub(crate) duration: Duration,
    /// Seconds between cycles
    #[arg(long, default_value = "2s", value_parser = crate::config::bounds::parse_cli_duration)]
    pub(crate) interval: Duration,
    /// Simulated regular editing projects
    #[arg(long, default_value_t = 240)]
    pub(crate) projects: usize,
    /// Simulated live editing projects
    #[arg(long, default_value_t = 60)]
    pub(crate) live: usize,
    /// SQLite file to write (replaced if it exists)
    #[arg(long, default_value = "ice-sync-demo.db")]
    pub(crate) db: PathBuf,
    /// Seed for the simulator, to replay the same story
    #[arg(long, default_value_t = 7)]
    pub(crate) seed: u64,
}

/// The queries printed at the end, with what each one answers.
pub(crate) const QUERIES: &[(&str, &str)] = &[
    (
        "Where are my projects right now?",
        "SELECT project_type, status, COALESCE(business_status, '-') AS business_status, COUNT(*) AS projects
FROM editing_projects WHERE removed_at IS NULL
GROUP BY project_type, status, business_status ORDER BY projects DESC;",
    ),
    (
        "Which transitions happened?",
        "SELECT COALESCE(previous_status || COALESCE('/' || previous_business_status, ''), '(new)') AS from_state,
       status || COALESCE('/' || business_status, '') AS to_state, COUNT(*) AS times
FROM editing_project_history WHERE event <> 'removed'
GROUP BY 1, 2 ORDER BY times DESC LIMIT 10;",
    ),
    (
        "How long do projects stay in each status?",
        "SELECT status, COUNT(*) AS finished_stretches, ROUND(AVG(duration_seconds), 1) AS avg_seconds
FROM editing_project_status_intervals WHERE left_at IS NOT NULL
GROUP BY status ORDER BY avg_seconds DESC;",
    ),
    (
        "Why did productions fail, by error code and template?",
        "SELECT code, COALESCE(template_id, '(none)') AS template_id, COUNT(*) AS failures
FROM editing_project_productions WHERE outcome = 'failed'
GROUP BY code, COALESCE(template_id, '(none)') ORDER BY failures DESC, code;",
    ),
    (
        "How long does a production take (ICE's CreateTime to CompleteTime)?",
        "SELECT outcome, COUNT(*) AS jobs, ROUND(AVG(production_seconds), 1) AS avg_seconds,
       MIN(production_seconds) AS min_seconds, MAX(production_seconds) AS max_seconds
FROM editing_project_productions WHERE production_seconds IS NOT NULL
GROUP BY outcome ORDER BY outcome;",
    ),
];

/// Without the simulator: no demo, and how to get one.
#[cfg(not(feature = "demo"))]
pub(crate) async fn run(_args: &DemoArgs) -> anyhow::Result<u8> {
    anyhow::bail!(
        "this ice-sync was built without the `demo` feature (no simulator inside): \
         build it with default features (`cargo build --release`) to run the demo"
    )
}

#[cfg(feature = "demo")]
pub(crate) async fn run(args: &DemoArgs) -> anyhow::Result<u8> {
    crate::telemetry::init(&crate::config::LogSettings {
        format: Some(crate::config::LogFormat::Pretty),
        level: "warn".to_string(),
    });
    remove_database(&args.db);
    let sim_config = SimulatorConfig {
        seed: args.seed,
        ..SimulatorConfig::default()
    };
    let credentials = Credentials {
        access_key_id: sim_config.access_key_id.clone(),
        access_key_secret: SecretString::from(sim_config.access_key_secret.clone()),
        security_token: None,
        source: "the built-in simulator".to_string(),
    };
    let simulator = Simulator::start(sim_config).await?;
    let ids = simulator.populate(args.projects, args.live);

    let url = format!("sqlite://{}?mode=rwc", args.db.display());
    let engine = demo_engine(&url, &simulator.endpoint(), credentials).await?;
    let store = engine.store().clone();
    let tracked: Vec<ProjectId> = ids
        .iter()
        .filter_map(|id| ProjectId::parse(id).ok())
        .collect();
    store
        .tracking()
        .track_add(&tracked, "demo", Timestamp::now())
        .await?;

    println!(
        "ice-sync demo: a simulated ICE at {} with {} projects ({} live), syncing into {} every {:?} for {:?} (Ctrl-C stops early)\n",
        simulator.endpoint(),
        ids.len(),
        args.live,
        args.db.display(),
        args.interval,
        args.duration
    );

    let shutdown = CancellationToken::new();
    {
        let token = shutdown.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            token.cancel();
        });
    }
    let totals = run_cycles(&engine, &simulator, args, &shutdown).await;
    print_totals(&totals, &simulator, &store).await;

    print_answers(&store, ids.first().map(String::as_str), &url, args).await;
    store.close().await;
    // The engine held the single-writer lock beside the file; nothing else uses it.
    drop(engine);
    let _ = std::fs::remove_file(format!("{}.lock", args.db.display()));
    simulator.shutdown().await;
    Ok(0)
}

/// A fresh start: the demo's database and its WAL files removed.
fn remove_database(db: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db.to_path_buf().into_os_string();
        path.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(path));
    }
}

/// What the cycles did, and the producing jobs they mirrored.
#[cfg(feature = "demo")]
async fn print_totals(totals: &Totals, simulator: &Simulator, store: &crate::storage::Store) {
    let cycles = totals.cycles;
    let avg_ms = if cycles > 0 {
        totals.cycle_time.as_secs_f64() * 1000.0 / cycles as f64
    } else {
        0.0
    };
    println!(
        "\n{cycles} cycles, {} polls ({} API calls seen by the simulator), {} history rows, {avg_ms:.0} ms per cycle on average.",
        totals.polled,
        simulator.total_calls(),
        totals.transitions
    );
    let jobs = store
        .query_i64("SELECT count(*) FROM media_producing_jobs")
        .await
        .unwrap_or_default();
    println!(
        "{jobs} producing jobs mirrored into media_producing_jobs ({} GetMediaProducingJob, {} ListMediaProducingJobs calls); `ice-sync jobs` lists them.\n",
        simulator.calls_by_action("GetMediaProducingJob"),
        simulator.calls_by_action("ListMediaProducingJobs")
    );
}

/// The demo's questions with their SQL and answers, then what to try next.
async fn print_answers(
    store: &crate::storage::Store,
    first: Option<&str>,
    url: &str,
    args: &DemoArgs,
) {
    for (question, sql) in QUERIES {
        println!("-- {question}\n{sql}\n");
        match store.query_table(sql).await {
            Ok(table) => println!("{}", render(&table)),
            Err(e) => println!("(query failed: {e:#})\n"),
        }
    }
    if let Some(id) = first {
        println!(
            "Next: `sqlite3 {}` to explore, or `ICE_SYNC__DATABASE__URL='{url}' ice-sync history {id}`.",
            args.db.display()
        );
    }
}

/// What the demo's cycles did, summed.
#[derive(Default)]
struct Totals {
    cycles: u64,
    transitions: u64,
    polled: u64,
    cycle_time: Duration,
}

/// A cycle every `--interval` for `--duration` (or until Ctrl-C), the simulator moving
/// projects along between cycles, one line per cycle (rewritten in place on a terminal).
#[cfg(feature = "demo")]
async fn run_cycles(
    engine: &Engine,
    simulator: &Simulator,
    args: &DemoArgs,
    shutdown: &CancellationToken,
) -> Totals {
    let live_line = std::io::stdout().is_terminal();
    let started = Instant::now();
    let mut totals = Totals::default();
    while started.elapsed() < args.duration && !shutdown.is_cancelled() {
        let tick = Instant::now();
        if totals.cycles > 0 {
            simulator.advance_random(0.2);
        }
        let report = engine.run_cycle(shutdown).await;
        totals.cycles += 1;
        totals.transitions += report.transitions;
        totals.polled += report.polled as u64;
        totals.cycle_time += report.duration;
        let line = format!(
            "cycle {:>2}  polled {:>4} in {:>5.0} ms  changed {:>4}  transitions so far {:>5}  failures {}",
            totals.cycles,
            report.polled,
            report.duration.as_secs_f64() * 1000.0,
            report.changed,
            totals.transitions,
            report.failures
        );
        if live_line {
            print!("\r{line}");
            let _ = std::io::stdout().flush();
        } else {
            println!("{line}");
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval.saturating_sub(tick.elapsed())) => {}
            _ = shutdown.cancelled() => {}
        }
    }
    if live_line {
        println!();
    }
    totals
}

/// The engine `ice-sync run` would build (`app::Daemon`), on the demo's SQLite file and
/// the simulator, with the simulator's key, short retries and every project due at every
/// cycle.
async fn demo_engine(
    url: &str,
    endpoint: &str,
    credentials: Credentials,
) -> anyhow::Result<std::sync::Arc<Engine>> {
    let env = [
        ("DATABASE__URL", url),
        ("DATABASE__MAX_CONNECTIONS", "4"),
        ("ICE__ENDPOINT", endpoint),
        ("ICE__TIMEOUT", "5s"),
        ("SYNC__MAX_QPS", "0"),
        ("SYNC__MAX_RETRIES", "3"),
        ("SYNC__CONCURRENCY", "32"),
        ("SYNC__REPLICA_ID", "demo"),
    ];
    let settings = crate::config::load_from(
        None,
        env.iter()
            .map(|(k, v)| (format!("ICE_SYNC__{k}"), v.to_string())),
    )
    .context("the demo's settings")?;
    crate::app::Daemon::builder(&settings)
        .credentials(credentials)
        .tune_client(|c| {
            c.backoff_base = Duration::from_millis(50);
            c.backoff_cap = Duration::from_secs(1);
        })
        // Cycles run every --interval, not on sync.schedule: every project is due.
        .tune(|o| o.policy.schedule = None)
        .engine()
        .await
}

/// A query's rows as the table `status` and `history` print.
pub(crate) fn render(table: &TextTable) -> String {
    if table.rows.is_empty() {
        return "(no rows)\n".to_string();
    }
    let headers: Vec<&str> = table.headers.iter().map(String::as_str).collect();
    let cells: Vec<Vec<String>> = table
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|v| v.clone().unwrap_or_else(|| "NULL".into()))
                .collect()
        })
        .collect();
    crate::table::format_table(&headers, &cells)
}
