//! `ice-sync jobs [ID...]` (the stored producing jobs of projects, or jobs by ID) and
//! `ice-sync jobs backfill [--since 30d]` (past jobs of every tracked project, listed
//! through `ListMediaProducingJobs` 30-day window by window; see `sync::jobs`).

use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::app;
use crate::config::Settings;
use crate::contract::StoredJob;
use crate::storage::{open_read_only, ReadOnlyError};
use crate::sync::Engine;
use crate::table::print_table;

/// Rows printed at most (all jobs of a large account would not fit a terminal anyway).
const MAX_ROWS: i64 = 10_000;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct JobsArgs {
    #[command(subcommand)]
    pub(crate) action: Option<JobsAction>,
    /// Project IDs (their jobs) or job IDs; none: every stored job
    pub(crate) ids: Vec<String>,
    /// `json`: one JSON document with stable field names, for scripts
    #[arg(long, short = 'o', value_enum, default_value_t = JobsOutput::Table)]
    pub(crate) output: JobsOutput,
}

#[derive(Debug, Subcommand)]
pub(crate) enum JobsAction {
    /// List the past producing jobs of every tracked project and store them
    Backfill {
        /// How far back (ICE keeps jobs about a year), e.g. `30d`, `90d`
        #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
        since: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum JobsOutput {
    Table,
    Json,
}

pub(crate) async fn run(settings: &Settings, args: JobsArgs) -> anyhow::Result<u8> {
    match args.action {
        Some(JobsAction::Backfill { since }) => backfill(settings, since).await,
        None => show(settings, &args.ids, args.output).await,
    }
}

async fn backfill(settings: &Settings, since: Duration) -> anyhow::Result<u8> {
    if !settings.jobs.enabled {
        eprintln!("jobs.enabled is false: no producing-job calls are made; set it to true first");
        return Ok(2);
    }
    let days = (since.as_secs().div_ceil(86_400)).max(1) as i64;
    let shutdown = CancellationToken::new();
    app::cancel_on_signals(shutdown.clone());
    // Not the daemon's engine (`DaemonBuilder::engine`): a backfill only adds job rows, so it runs beside a daemon
    // (SQLite's one-daemon lock is not taken) and leaves tracking alone.
    let store = app::open_store(settings).await?;
    let credentials = app::resolve_credentials(settings)?;
    credentials.credentials().await?;
    let client = app::build_client(settings, credentials)?;
    let engine = Engine::new(store, client, app::engine_options(settings));
    let totals = engine.backfill_jobs(days, &shutdown).await;
    engine.store().close().await;
    println!(
        "{} list page(s) read, {} job(s) fetched, {} row(s) written, {} failure(s)",
        totals.pages, totals.fetched, totals.written, totals.failures
    );
    match totals.auth_error.or(totals.first_error) {
        Some(e) => {
            eprintln!("first failure: {e}");
            Ok(1)
        }
        None => Ok(0),
    }
}

/// Reads only: opens the database read-only, never creates or migrates it.
async fn show(settings: &Settings, ids: &[String], output: JobsOutput) -> anyhow::Result<u8> {
    let store = match open_read_only(&settings.database).await {
        Ok(store) => store,
        Err(ReadOnlyError::NotCreatedYet(why)) => {
            eprintln!("note: {why}");
            print(&[], output)?;
            return Ok(0);
        }
        Err(ReadOnlyError::SchemaMismatch(why)) => return Err(crate::cli::usage(why)),
        Err(e) => return Err(e.into()),
    };
    let mut jobs: Vec<StoredJob> = Vec::new();
    if ids.is_empty() {
        jobs = store.jobs().stored_jobs("", MAX_ROWS).await?;
    } else {
        for id in ids {
            jobs.extend(store.jobs().stored_jobs(id.trim(), MAX_ROWS).await?);
        }
    }
    store.close().await;
    print(&jobs, output)?;
    Ok(0)
}

fn print(jobs: &[StoredJob], output: JobsOutput) -> anyhow::Result<()> {
    match output {
        JobsOutput::Json => println!("{}", serde_json::to_string_pretty(jobs)?),
        JobsOutput::Table => print_jobs(jobs),
    }
    Ok(())
}

fn print_jobs(jobs: &[StoredJob]) {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            let c = &j.columns;
            let seconds = match (c.create_time, c.complete_time) {
                (Some(a), Some(b)) => {
                    format!("{}", (b.as_datetime() - a.as_datetime()).num_seconds())
                }
                _ => "-".into(),
            };
            vec![
                c.job_id.clone(),
                c.project_id.clone(),
                opt(&c.status),
                opt(&c.code),
                opt(&c.template_id),
                c.create_time.map_or("-".into(), |t| t.to_string()),
                seconds,
                opt(&c.media_url),
            ]
        })
        .collect();
    print_table(
        &[
            "JOB",
            "PROJECT",
            "STATUS",
            "CODE",
            "TEMPLATE",
            "CREATED (UTC)",
            "SECONDS",
            "MEDIA URL",
        ],
        &rows,
    );
}
