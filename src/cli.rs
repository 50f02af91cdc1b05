//! The command line (the README's "Commands" table), and what each command prints.
//!
//! Parsing is clap's; each command is a small function that loads what it needs
//! through `app` and prints for a human. Exit codes: 0 ok, 1 failed, 2 bad input or
//! configuration, 3 sync is behind: a `run --once` cycle that did not poll every project
//! cleanly, or `status --stale` found projects not polled in time.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::app;
use crate::config::id_file::read_ids;
use crate::config::{self, Settings};
use crate::domain::{ProjectId, Timestamp};
use crate::ops::progress::{self, Show};
use crate::ops::Ops;
use crate::sync::CycleKind;
use crate::table::print_table;
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(
    name = "ice-sync",
    version,
    about = "Mirror Alibaba Cloud ICE editing projects into SQL"
)]
pub struct Cli {
    /// Config file [default: $ICE_SYNC_CONFIG, else /etc/ice-sync/config.toml if present]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply migrations, then sync on `sync.schedule` (cron, UTC) until SIGTERM/SIGINT
    Run {
        /// Run one full cycle now and exit (non-zero if it could not complete): every
        /// project a tick at this moment would poll, however recent the previous run
        #[arg(long)]
        once: bool,
        /// With --once: poll every enabled project, due or not
        #[arg(long, requires = "once")]
        all: bool,
    },
    /// Apply pending database migrations and exit
    Migrate,
    /// Manage the tracked project IDs stored in the database
    Track {
        #[command(subcommand)]
        action: TrackAction,
    },
    /// Show every tracked project: status, last poll, last change, last error
    Status {
        /// Only enabled projects not polled within DURATION (e.g. `10m`; a project never
        /// polled counts from when it was tracked), oldest first; exit 3 if there are any
        #[arg(long, value_name = "DURATION", value_parser = crate::config::bounds::parse_cli_duration)]
        stale: Option<std::time::Duration>,
    },
    /// Show the transitions of one project, oldest first
    History { project_id: String },
    /// Poll projects now: a running daemon picks the request up, else this command polls
    Refresh(crate::refresh::RefreshArgs),
    /// Check config, database, credentials and one signed API call; say what to fix
    Check,
    /// Zero-setup demo: a simulated ICE on loopback synced into a local SQLite file
    Demo(crate::demo::DemoArgs),
    /// Delete bookkeeping rows older than their `retention.*` setting (never history)
    Prune(crate::retention::command::PruneArgs),
    /// Show stored producing jobs (of projects, or by job ID); `jobs backfill` fetches past ones
    Jobs(crate::jobs_cmd::JobsArgs),
}

#[derive(Debug, Subcommand)]
pub enum TrackAction {
    /// Track project IDs (`-` reads them from stdin, one per line)
    Add {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Stop tracking project IDs (their rows and history stay)
    Remove {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// List tracked projects
    List,
    /// Track every ID in FILE, one per line (`-` for stdin; `#` starts a comment)
    Import { file: PathBuf },
}

/// A failure with the exit code it should produce.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

fn usage(e: impl std::fmt::Display) -> anyhow::Error {
    Exit {
        code: 2,
        message: e.to_string(),
    }
    .into()
}

/// Runs a parsed command; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    if let Command::Demo(args) = &cli.command {
        return crate::demo::run(args).await;
    }
    if let Command::Check = &cli.command {
        // Reports a bad configuration as one of its checks instead of failing early.
        return Ok(crate::check::run(cli.config.as_deref()).await);
    }
    let settings = config::load(cli.config.as_deref()).map_err(|e| usage(format!("{e:#}")))?;
    telemetry::init(&settings.log);
    match cli.command {
        Command::Run { once, all } => run_command(&settings, cli.config.clone(), once, all).await,
        Command::Migrate => {
            let store = crate::storage::Store::connect(&settings.database).await?;
            let applied = store.migrate().await?;
            println!(
                "{applied} migration(s) applied; the {} schema is up to date",
                store.backend()
            );
            Ok(0)
        }
        Command::Track { action } => track(&settings, action).await,
        Command::Status { stale: None } => status(&settings).await,
        Command::Status {
            stale: Some(within),
        } => stale(&settings, within).await,
        Command::History { project_id } => history(&settings, &project_id).await,
        Command::Refresh(args) => crate::refresh::run(&settings, args).await,
        Command::Prune(args) => crate::retention::command::run(&settings, &args).await,
        Command::Jobs(args) => crate::jobs_cmd::run(&settings, args).await,
        Command::Demo(_) | Command::Check => unreachable!("handled above"),
    }
}

async fn run_command(
    settings: &Settings,
    config_path: Option<PathBuf>,
    once: bool,
    all: bool,
) -> anyhow::Result<u8> {
    // Before the engine: a stop during a long start-up (a million IDs to reconcile) is
    // a clean exit, not death by the signal's default action.
    let shutdown = CancellationToken::new();
    app::cancel_on_signals(shutdown.clone());
    let engine = app::prepare_engine(settings).await?;
    if once {
        let kind = if all { CycleKind::All } else { CycleKind::Once };
        // Not `app::run_once`: the bar must be finished before the summary line.
        let display = progress::start(engine.progress().clone(), Show::for_command("cycle"));
        let report = engine.run(kind, &shutdown).await;
        display.stop().await;
        crate::scheduler::log_report(&report);
        engine.store().close().await;
        return Ok(app::exit_code(report.outcome));
    }
    // Before READY: a port in use or a missing AuthKey stops start-up here.
    let callbacks = app::bind_callbacks(settings, &engine).await?;
    let feed = app::start_feed(settings, &engine, shutdown.clone()).await?;
    // READY goes to systemd here: the store is connected and migrated.
    let ops = Ops::start(settings, engine.store().clone(), shutdown.clone()).await?;
    let display = ops.show_progress(engine.progress());
    app::run_daemon(
        settings,
        config_path,
        engine,
        ops.hooks(),
        shutdown,
        callbacks,
        feed,
    )
    .await;
    display.stop().await;
    ops.stopped().await;
    Ok(0)
}

/// Parses IDs, expanding `-` to stdin lines. Any invalid ID fails the whole command
/// before anything is written.
pub(crate) fn parse_ids(raw: &[String]) -> anyhow::Result<Vec<ProjectId>> {
    let mut ids = Vec::new();
    for item in raw {
        if item == "-" {
            ids.extend(read_ids(std::io::stdin().lock(), "stdin").map_err(usage)?);
        } else {
            ids.push(ProjectId::parse(item).map_err(usage)?);
        }
    }
    Ok(ids)
}

async fn track(settings: &Settings, action: TrackAction) -> anyhow::Result<u8> {
    // Every ID is checked before the database is touched: bad input writes nothing.
    let parsed = match &action {
        TrackAction::Add { ids } | TrackAction::Remove { ids } => parse_ids(ids)?,
        TrackAction::Import { file } => read_id_file(file)?,
        TrackAction::List => Vec::new(),
    };
    let store = app::open_store(settings).await?;
    match action {
        TrackAction::Add { .. } => {
            let ids = parsed;
            let added = store
                .track_add(&ids, "cli", app::now(&store).await?)
                .await?;
            println!(
                "tracking {added} new project(s) ({} already tracked)",
                ids.len() as u64 - added
            );
        }
        TrackAction::Import { .. } => {
            let ids = parsed;
            let added = import(&store, &ids, app::now(&store).await?).await?;
            println!("imported {} ID(s): {added} newly tracked", ids.len());
        }
        TrackAction::Remove { .. } => {
            let ids = parsed;
            let removed = store.track_remove(&ids).await?;
            println!("stopped tracking {removed} project(s); their rows and history are kept");
            let configured: std::collections::HashSet<&ProjectId> =
                settings.sync.projects.iter().collect();
            let in_config: Vec<&ProjectId> =
                ids.iter().filter(|id| configured.contains(id)).collect();
            if !in_config.is_empty() {
                eprintln!(
                    "note: {} listed in sync.projects and will be tracked again when the daemon starts; remove it from the config too",
                    in_config.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                );
            }
        }
        TrackAction::List => {
            let rows = store.track_list().await?;
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.project_id.to_string(),
                        r.source.clone(),
                        if r.enabled { "yes" } else { "no" }.to_string(),
                        r.added_at.to_string(),
                    ]
                })
                .collect();
            print_table(&["PROJECT", "SOURCE", "ENABLED", "ADDED (UTC)"], &table);
        }
    }
    store.close().await;
    Ok(0)
}

/// IDs per `track import` statement: big files advance a bar, and a failure keeps
/// what was committed (a rerun skips IDs already tracked). One statement of 10,000 IDs
/// is ~350 KB of JSON.
const IMPORT_CHUNK: usize = 10_000;

/// Tracks `ids` a chunk at a time, with a bar on a terminal for big files.
async fn import(
    store: &crate::storage::Store,
    ids: &[ProjectId],
    now: Timestamp,
) -> anyhow::Result<u64> {
    let bar = progress::import_bar(ids.len());
    let mut added = 0;
    for (n, chunk) in ids.chunks(IMPORT_CHUNK).enumerate() {
        let done = n * IMPORT_CHUNK;
        added += store
            .track_add(chunk, "import", now)
            .await
            .with_context(|| {
                format!(
                    "importing stopped after {done} of {} IDs; run the import again to finish \
                     (IDs already tracked are skipped)",
                    ids.len()
                )
            })?;
        if let Some(bar) = &bar {
            bar.inc(chunk.len() as u64);
        }
    }
    if let Some(bar) = bar {
        progress::finish_import_bar(bar);
    }
    Ok(added)
}

/// IDs from a file, one per line, `#` comments allowed; `-` is stdin.
fn read_id_file(file: &std::path::Path) -> anyhow::Result<Vec<ProjectId>> {
    if file.as_os_str() == "-" {
        return parse_ids(&["-".to_string()]);
    }
    crate::config::id_file::read_id_file(file).map_err(usage)
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".to_string())
}

fn ts(v: &Option<Timestamp>) -> String {
    v.map(|t| t.to_string()).unwrap_or_else(|| "-".to_string())
}

async fn status(settings: &Settings) -> anyhow::Result<u8> {
    let store = app::open_store(settings).await?;
    let rows = store.status().await?;
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let status = match (&r.removed_at, r.enabled) {
                (Some(_), _) => format!("{} (removed)", opt(&r.status)),
                (None, false) => format!("{} (disabled)", opt(&r.status)),
                _ => opt(&r.status),
            };
            vec![
                r.project_id.to_string(),
                status,
                opt(&r.business_status),
                ts(&r.last_polled_at),
                ts(&r.last_changed_at),
                r.last_error
                    .as_deref()
                    .map(|e| truncate(e, 60))
                    .unwrap_or_else(|| "-".to_string()),
            ]
        })
        .collect();
    print_table(
        &[
            "PROJECT",
            "STATUS",
            "BUSINESS",
            "LAST POLLED (UTC)",
            "LAST CHANGE (UTC)",
            "LAST ERROR",
        ],
        &table,
    );
    println!("{} tracked project(s)", rows.len());
    store.close().await;
    Ok(0)
}

async fn stale(settings: &Settings, within: std::time::Duration) -> anyhow::Result<u8> {
    let within = chrono::Duration::from_std(within)
        .map_err(|_| usage(format!("--stale {within:?} is too long")))?;
    let store = app::open_store(settings).await?;
    // Polls are stamped with the database's clock on PostgreSQL: measure with the same.
    let now = match store.database_now().await? {
        Some(now) => now,
        None => Timestamp::now(),
    };
    let rows = store.stale(now.shifted(-within)).await?;
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let age = (now.as_datetime() - r.observed_since().as_datetime())
                .to_std()
                .unwrap_or_default();
            let age = humantime::format_duration(std::time::Duration::from_secs(age.as_secs()));
            let last_poll = match r.last_attempt_at {
                Some(t) => t.to_string(),
                None => format!("never (tracked {})", r.added_at),
            };
            let due = if r.every_tick {
                "every tick".to_string()
            } else {
                ts(&r.next_poll_at)
            };
            let error = match &r.last_error {
                Some(e) => format!("{} ({} in a row)", truncate(e, 50), r.consecutive_failures),
                None => "-".to_string(),
            };
            vec![
                r.project_id.to_string(),
                opt(&r.status),
                opt(&r.business_status),
                last_poll,
                age.to_string(),
                ts(&r.last_polled_at),
                due,
                error,
            ]
        })
        .collect();
    if !table.is_empty() {
        print_table(
            &[
                "PROJECT",
                "STATUS",
                "BUSINESS",
                "LAST POLL (UTC)",
                "AGE",
                "LAST ANSWER (UTC)",
                "NEXT DUE (UTC)",
                "LAST ERROR",
            ],
            &table,
        );
    }
    println!(
        "{} enabled project(s) not polled within {}",
        rows.len(),
        humantime::format_duration(within.to_std().unwrap_or_default())
    );
    store.close().await;
    Ok(if rows.is_empty() { 0 } else { 3 })
}

async fn history(settings: &Settings, raw_id: &str) -> anyhow::Result<u8> {
    let id = ProjectId::parse(raw_id).map_err(usage)?;
    let store = app::open_store(settings).await?;
    let rows = store.history(&id).await?;
    if rows.is_empty() {
        println!("no history for {id}: it has not been observed yet (is it tracked? see `ice-sync track list`)");
    } else {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.observed_at.to_string(),
                    r.event.clone(),
                    format!("{} -> {}", opt(&r.previous_status), opt(&r.status)),
                    format!(
                        "{} -> {}",
                        opt(&r.previous_business_status),
                        opt(&r.business_status)
                    ),
                    opt(&r.skipped_states),
                    opt(&r.request_id),
                ]
            })
            .collect();
        print_table(
            &[
                "OBSERVED (UTC)",
                "EVENT",
                "STATUS",
                "BUSINESS STATUS",
                "SKIPPED",
                "REQUEST ID",
            ],
            &table,
        );
    }
    store.close().await;
    Ok(0)
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}
