//! The command line (the README's "Commands" table), and what each command prints.
//!
//! Parsing is clap's; each command is a small function that loads what it needs
//! through `app` and prints for a human. Exit codes: 0 ok, 1 failed, 2 bad input or
//! configuration, 3 sync is behind: a `run --once` cycle that did not poll every project
//! cleanly, or `status --stale` found projects not polled in time.

pub(crate) mod completions;
pub(crate) mod daemon_db;
pub(crate) mod effective_config;
pub(crate) mod exit;
pub(crate) mod history;
pub(crate) mod ids;
pub mod output;
pub(crate) mod status;
pub(crate) mod track;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::app;
use crate::config::{self, Settings};
use crate::ops::progress::{self, Show};
use crate::ops::Ops;
use crate::sync::CycleKind;
use crate::telemetry;

pub(crate) use exit::usage;
pub use exit::Exit;
pub(crate) use track::TrackAction;

/// `--version`: the release and the git commit it was built from (build.rs).
pub(crate) const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("ICE_SYNC_GIT_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "ice-sync",
    version = VERSION,
    about = "Mirror Alibaba Cloud ICE editing projects into SQL"
)]
pub struct Cli {
    /// Config file [default: $ICE_SYNC_CONFIG, else /etc/ice-sync/config.toml if present]
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
    /// Reload a running daemon (SIGHUP) and wait for its verdict: exit 1 when the new
    /// configuration was refused (the unit's ExecReload=, so `systemctl reload` fails)
    Reload {
        /// The daemon's process ID (`$MAINPID` in the unit)
        #[arg(long)]
        pid: u32,
        /// How long to wait for the verdict
        #[arg(long, default_value = "2m", value_parser = crate::config::bounds::parse_cli_duration)]
        timeout: std::time::Duration,
    },
    /// Manage the tracked project IDs stored in the database
    Track {
        #[command(subcommand)]
        action: TrackAction,
    },
    /// Show tracked projects (or these): status, last poll, last change, last error
    Status(status::StatusArgs),
    /// Show the transitions of one project, oldest first
    History(history::HistoryArgs),
    /// Poll projects now: a running daemon picks the request up, else this command polls
    Refresh(crate::refresh::command::RefreshArgs),
    /// Check config, database, credentials and one signed API call; say what to fix
    Check {
        /// Only what needs neither the database nor the network
        #[arg(long)]
        offline: bool,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: output::OutputFormat,
    },
    /// Print the effective configuration: every key, its value and the layer that set
    /// it (default, file, ICE_SYNC__* variable, *_file, systemd credential); secrets `***`
    Config(effective_config::ConfigArgs),
    /// Zero-setup demo: a simulated ICE on loopback synced into a local SQLite file
    Demo(crate::demo::DemoArgs),
    /// Delete bookkeeping rows older than their `retention.*` setting (never history)
    Prune(crate::retention::command::PruneArgs),
    /// Show stored producing jobs (of projects, or by job ID); `jobs backfill` fetches past ones
    Jobs(crate::jobs_cmd::JobsArgs),
    /// Print shell completions (bash, zsh, fish) to stdout
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout; packagers run scripts/package-assets
    #[command(hide = true)]
    Manpage,
}

/// Runs a parsed command; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    match &cli.command {
        Command::Completions { shell } => return completions::print(*shell),
        Command::Manpage => return completions::manpage(),
        _ => {}
    }
    if let Command::Reload { pid, timeout } = &cli.command {
        // Not the configuration: the daemon reads and judges it; this only relays.
        return match app::reload_outcome::signal_and_wait(*pid, *timeout).await {
            Ok(summary) => {
                println!("{summary}");
                Ok(0)
            }
            Err(e) => Err(Exit {
                code: 1,
                message: format!("{e:#}"),
            }
            .into()),
        };
    }
    if let Command::Demo(args) = &cli.command {
        return crate::demo::run(args).await;
    }
    if let Command::Config(args) = &cli.command {
        // Loads the layers itself, to say which one set each key.
        return effective_config::run(cli.config.as_deref(), args.clone()).await;
    }
    if let Command::Check { offline, output } = &cli.command {
        // Reports a bad configuration as one of its checks instead of failing early.
        return crate::check::run(cli.config.as_deref(), *offline, *output).await;
    }
    let settings = config::load(cli.config.as_deref()).map_err(|e| usage(format!("{e:#}")))?;
    telemetry::init(&settings.log);
    if !matches!(cli.command, Command::Run { .. }) {
        if let Some(warning) = daemon_db::mismatch(&settings.database, |k| std::env::var(k).ok()) {
            eprintln!("warning: {warning}");
        }
    }
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
        Command::Track { action } => track::run(&settings, action).await,
        Command::Status(args) => status::run(&settings, args).await,
        Command::History(args) => history::run(&settings, args).await,
        Command::Refresh(args) => crate::refresh::command::run(&settings, args).await,
        Command::Prune(args) => crate::retention::command::run(&settings, &args).await,
        Command::Jobs(args) => crate::jobs_cmd::run(&settings, args).await,
        Command::Demo(_)
        | Command::Reload { .. }
        | Command::Check { .. }
        | Command::Config(_)
        | Command::Completions { .. }
        | Command::Manpage => unreachable!("handled above"),
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
    // Files, ports, the SQLite directory: refused with exit 2 before the database is
    // touched (the same checks `ice-sync check` runs).
    crate::preflight::refuse_start(settings, once)?;
    if once {
        let engine = app::Daemon::builder(settings).engine().await?;
        let kind = if all { CycleKind::All } else { CycleKind::Once };
        // The progress bar must be finished before the summary line.
        let display = progress::start(engine.progress().clone(), Show::for_command("cycle"));
        let report = engine.run(kind, &shutdown).await;
        display.stop().await;
        crate::scheduler::log_report(&report);
        engine.store().close().await;
        return Ok(app::exit_code(report.outcome));
    }
    // Engine, callback endpoint bound (a port in use stops start-up here), deliverer.
    let daemon = app::Daemon::builder(settings)
        .config_path(config_path)
        .build()
        .await?;
    // READY goes to systemd here: the store is connected and migrated.
    let store = daemon.engine().store().clone();
    let refresh = crate::refresh::http::routes(
        &settings.metrics,
        |k| std::env::var(k).ok(),
        store.clone(),
        crate::clock::system(),
    )?;
    let ops = Ops::start(settings, store, refresh, shutdown.clone()).await?;
    // For commands run beside it: which database this daemon uses (no secret).
    let _recorded = daemon_db::record(&settings.database);
    let display = ops.show_progress(daemon.engine().progress());
    daemon.with_hooks(ops.hooks()).run(shutdown).await;
    display.stop().await;
    ops.stopped().await;
    Ok(0)
}
