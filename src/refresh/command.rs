//! `ice-sync refresh ID... | --all | --status VALUE`: asks for an immediate poll and says
//! how it went.
//!
//! The command writes the request (`Store::queue_refreshes`), then watches the queue for a
//! moment: a running daemon claims requested projects within a fraction of a second (a
//! claim clears `requested_at`, or the project is held by a live lease). If one does, the
//! command waits for those polls to finish; if none does, it polls them itself through the
//! same refresh cycle a daemon would run (`app::Daemon::builder(..).engine()`, so SQLite's
//! single-writer lock is respected). Either way it prints one row per project and exits 0
//! only when every project was polled without error.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::app;
use crate::cli::exit::Exit;
use crate::cli::output::{self, json_document, opt_rfc3339, or_dash, OutputFormat, StreamTable};
use crate::config::Settings;
use crate::domain::{ProjectId, Timestamp};
use crate::storage::{RefreshSource, RefreshState, RefreshTarget, Store};
use crate::sync::CycleKind;

/// How long to watch for a running daemon's claim before polling here: a daemon claims
/// within 250 ms (SQLite) or at once (PostgreSQL); the rest is room for a loaded machine.
const CLAIM_WAIT: Duration = Duration::from_millis(1_800);

#[derive(Debug, Clone, clap::Args)]
#[command(group(
    clap::ArgGroup::new("target").required(true).args(["ids", "all", "status"])
))]
pub(crate) struct RefreshArgs {
    /// Tracked project IDs to poll now (`-` reads them from stdin, one per line)
    pub(crate) ids: Vec<String>,
    /// Poll every enabled tracked project now
    #[arg(long)]
    pub(crate) all: bool,
    /// Poll the enabled projects whose status or business status is VALUE (e.g. Producing)
    #[arg(long, value_name = "VALUE")]
    pub(crate) status: Option<String>,
    /// How long to wait for the polls to finish
    #[arg(long, default_value = "60s", value_parser = crate::config::bounds::parse_cli_duration)]
    pub(crate) wait: Duration,
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub(crate) output: OutputFormat,
}

/// Where one requested project stands, as `refresh` judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Not polled since the request yet.
    Waiting,
    Polled,
    /// Polled since the request, and the poll failed with this error.
    Failed(String),
}

/// Judges `state` for a request made at `at`: polled once a claim took the request, the
/// lease is given back and the attempt is no older than the request.
pub(crate) fn progress(state: &RefreshState, at: Timestamp) -> Progress {
    let attempted = state.last_attempt_at.is_some_and(|t| t >= at);
    if state.requested || state.lease_expires_at.is_some() || !attempted {
        return Progress::Waiting;
    }
    match (&state.last_error, state.last_error_at) {
        (Some(error), Some(when)) if when >= at => Progress::Failed(error.clone()),
        _ => Progress::Polled,
    }
}

/// Whether a daemon has these projects in hand: it claimed at least one request (cleared
/// it) or holds a live lease on one (a poll in flight, after which it serves the request).
pub(crate) fn claimed_by_someone(states: &[RefreshState], now: Timestamp) -> bool {
    states
        .iter()
        .any(|s| !s.requested || s.lease_expires_at.is_some_and(|t| t > now))
}

/// Runs the command; returns the exit code.
pub(crate) async fn run(settings: &Settings, args: RefreshArgs) -> anyhow::Result<u8> {
    let target = target(&args)?;
    let store = app::open_store(settings).await?;
    app::check_region(settings, &store).await?;
    let at = app::now(&store).await?;
    let outcome = store
        .refresh_queue()
        .queue_refreshes(&target, RefreshSource::Cli, at)
        .await?;
    if !outcome.unknown.is_empty() {
        store.close().await;
        let unknown = join(&outcome.unknown);
        return Err(Exit {
            code: 2,
            message: format!(
                "not tracked (or disabled): {unknown}; nothing was requested. Track them first \
                 with `ice-sync track add {}`",
                outcome
                    .unknown
                    .iter()
                    .map(ProjectId::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        }
        .into());
    }
    let ids = outcome.requested;
    if ids.is_empty() {
        store.close().await;
        if args.output == OutputFormat::Json {
            return report(&ids, &[], at, PolledBy::ThisCommand, &args);
        }
        println!("no enabled tracked project matches; nothing to refresh");
        return Ok(0);
    }
    let deadline = Instant::now() + args.wait;
    let every = if ids.len() <= 100 {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(1)
    };

    let daemon = watch_for_claim(&store, &ids, every).await?;
    let (store, by) = if daemon {
        (store, PolledBy::Daemon)
    } else {
        store.close().await;
        (poll_here(settings, deadline).await?, PolledBy::ThisCommand)
    };
    let states = wait_for_polls(&store, &ids, at, deadline, every).await?;
    store.close().await;
    report(&ids, &states, at, by, &args)
}

fn target(args: &RefreshArgs) -> anyhow::Result<RefreshTarget> {
    if args.all {
        return Ok(RefreshTarget::AllEnabled);
    }
    if let Some(status) = &args.status {
        let status = status.trim();
        if status.is_empty() {
            return Err(usage("--status needs a value, e.g. --status Producing"));
        }
        return Ok(RefreshTarget::Status(status.to_string()));
    }
    let ids = crate::cli::ids::parse_ids(&args.ids)?;
    if ids.is_empty() {
        return Err(usage("no project IDs given (stdin was empty)"));
    }
    Ok(RefreshTarget::Projects {
        ids,
        all_or_nothing: true,
    })
}

fn usage(message: &str) -> anyhow::Error {
    Exit {
        code: 2,
        message: message.to_string(),
    }
    .into()
}

/// Watches for up to [`CLAIM_WAIT`] whether a daemon takes the request.
async fn watch_for_claim(
    store: &Store,
    ids: &[ProjectId],
    every: Duration,
) -> anyhow::Result<bool> {
    let until = Instant::now() + CLAIM_WAIT;
    loop {
        let states = store.refresh_queue().refresh_states(ids).await?;
        if claimed_by_someone(&states, app::now(store).await?) {
            return Ok(true);
        }
        if Instant::now() >= until {
            return Ok(false);
        }
        tokio::time::sleep(every).await;
    }
}

/// No daemon took the request: one refresh cycle here, exactly as a daemon runs it.
async fn poll_here(settings: &Settings, deadline: Instant) -> anyhow::Result<Store> {
    let engine = app::Daemon::builder(settings).engine().await.map_err(|e| {
        anyhow::anyhow!(
            "no daemon picked the request up within {}s and this command cannot poll itself: \
             {e:#} (the request stays queued for the next daemon)",
            CLAIM_WAIT.as_secs_f64().round()
        )
    })?;
    let shutdown = CancellationToken::new();
    app::cancel_on_signals(shutdown.clone());
    // `--wait` bounds the whole command: claiming stops then, in-flight polls commit.
    let stop = shutdown.clone();
    let timer = tokio::spawn(async move {
        tokio::time::sleep_until(deadline).await;
        stop.cancel();
    });
    let report = engine.run(CycleKind::Refresh, &shutdown).await;
    timer.abort();
    crate::scheduler::log_report(&report);
    Ok(engine.store().clone())
}

/// Waits until every project was polled since `at`, or the deadline.
async fn wait_for_polls(
    store: &Store,
    ids: &[ProjectId],
    at: Timestamp,
    deadline: Instant,
    every: Duration,
) -> anyhow::Result<Vec<RefreshState>> {
    loop {
        let states = store.refresh_queue().refresh_states(ids).await?;
        let done = states.iter().all(|s| progress(s, at) != Progress::Waiting);
        if done || Instant::now() >= deadline {
            return Ok(states);
        }
        tokio::time::sleep(every.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

/// One project's result (`refresh --output json`: field names are a contract, docs/cli.md).
#[derive(Debug, Clone, Serialize)]
struct PollRow {
    project_id: String,
    /// `polled`, `failed` or `waiting` (not polled within `--wait`, or untracked meanwhile).
    outcome: &'static str,
    status: Option<String>,
    business_status: Option<String>,
    last_polled_at: Option<String>,
    /// The whole text of this poll's failure.
    error: Option<String>,
}

/// What the polls came to: one row per project and the IDs by outcome.
#[derive(Debug, Default)]
struct Judged {
    rows: Vec<PollRow>,
    failed: Vec<ProjectId>,
    waiting: Vec<ProjectId>,
}

/// Judges every project requested at `at` from the last states read.
fn judge(ids: &[ProjectId], states: &[RefreshState], at: Timestamp) -> Judged {
    let mut judged = Judged::default();
    for s in states {
        let (outcome, error) = match progress(s, at) {
            Progress::Polled => ("polled", None),
            Progress::Failed(e) => {
                judged.failed.push(s.project_id.clone());
                ("failed", Some(e))
            }
            Progress::Waiting => {
                judged.waiting.push(s.project_id.clone());
                ("waiting", None)
            }
        };
        judged.rows.push(PollRow {
            project_id: s.project_id.to_string(),
            outcome,
            status: s.status.clone(),
            business_status: s.business_status.clone(),
            last_polled_at: opt_rfc3339(&s.last_polled_at),
            error,
        });
    }
    // Untracked while we waited (`track remove`): say so rather than wait for nothing.
    for id in ids
        .iter()
        .filter(|id| !states.iter().any(|s| &s.project_id == *id))
    {
        judged.waiting.push(id.clone());
        judged.rows.push(PollRow {
            project_id: id.to_string(),
            outcome: "waiting",
            status: None,
            business_status: None,
            last_polled_at: None,
            error: Some("no longer tracked".to_string()),
        });
    }
    judged
}

/// Prints the result; the exit code says whether every poll succeeded.
fn report(
    ids: &[ProjectId],
    states: &[RefreshState],
    at: Timestamp,
    by: PolledBy,
    args: &RefreshArgs,
) -> anyhow::Result<u8> {
    let judged = judge(ids, states, at);
    let polled = ids.len() - judged.failed.len() - judged.waiting.len();
    match args.output {
        OutputFormat::Table => print_rows(&judged.rows, polled, ids.len(), by)?,
        OutputFormat::Json => json_document(
            &mut output::stdout(),
            &serde_json::json!({
                "projects": judged.rows,
                "requested": ids.len(),
                "polled": polled,
                "failed": judged.failed.len(),
                "waiting": judged.waiting.len(),
                "polled_by": by.json(),
            }),
        )?,
    }
    verdict(&judged, ids.len(), args.wait)
}

fn print_rows(
    rows: &[PollRow],
    polled: usize,
    requested: usize,
    by: PolledBy,
) -> std::io::Result<()> {
    let mut table = StreamTable::new(
        output::stdout(),
        &[
            "PROJECT",
            "STATUS",
            "BUSINESS",
            "LAST POLLED (UTC)",
            "ERROR",
        ],
    );
    for r in rows {
        let error = match r.outcome {
            "waiting" => r
                .error
                .clone()
                .unwrap_or_else(|| "not polled yet".to_string()),
            _ => or_dash(&r.error),
        };
        table.row(vec![
            r.project_id.clone(),
            or_dash(&r.status),
            or_dash(&r.business_status),
            r.last_polled_at.clone().unwrap_or_else(|| "-".to_string()),
            error,
        ])?;
    }
    let mut out = table.finish()?;
    writeln!(
        out,
        "{polled} of {requested} project(s) polled by {}",
        by.text()
    )?;
    out.flush()
}

/// Exit 0 when every project was polled cleanly; else the error that says which not.
fn verdict(judged: &Judged, requested: usize, wait: Duration) -> anyhow::Result<u8> {
    if !judged.failed.is_empty() {
        return Err(Exit {
            code: 1,
            message: format!(
                "{} of {requested} poll(s) failed ({}): see ERROR above and `ice-sync status`",
                judged.failed.len(),
                join(&judged.failed)
            ),
        }
        .into());
    }
    if !judged.waiting.is_empty() {
        return Err(Exit {
            code: 3,
            message: format!(
                "{} project(s) not polled within --wait {} ({}): the request stays queued; is \
                 the daemon running and reaching ICE? (`ice-sync check`)",
                judged.waiting.len(),
                humantime::format_duration(wait),
                join(&judged.waiting)
            ),
        }
        .into());
    }
    Ok(0)
}

/// Who polled the requested projects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PolledBy {
    Daemon,
    ThisCommand,
}

impl PolledBy {
    fn text(self) -> &'static str {
        match self {
            PolledBy::Daemon => "the running daemon",
            PolledBy::ThisCommand => "this command",
        }
    }

    fn json(self) -> &'static str {
        match self {
            PolledBy::Daemon => "daemon",
            PolledBy::ThisCommand => "command",
        }
    }
}

/// A few IDs, then how many more: an error line stays one line.
fn join(ids: &[ProjectId]) -> String {
    const SHOWN: usize = 10;
    let mut text = ids
        .iter()
        .take(SHOWN)
        .map(ProjectId::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > SHOWN {
        text.push_str(&format!(" and {} more", ids.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from(chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("time"))
    }

    fn state(requested: bool, lease: Option<i64>, attempt: Option<i64>) -> RefreshState {
        RefreshState {
            project_id: ProjectId::parse("p").expect("id"),
            requested,
            lease_expires_at: lease.map(t),
            last_attempt_at: attempt.map(t),
            last_error: None,
            last_error_at: None,
            status: None,
            business_status: None,
            last_polled_at: None,
        }
    }

    #[test]
    fn a_poll_counts_once_claimed_given_back_and_after_the_request() {
        let at = t(10);
        assert_eq!(progress(&state(true, None, Some(5)), at), Progress::Waiting);
        assert_eq!(
            progress(&state(false, Some(70), Some(5)), at),
            Progress::Waiting,
            "claimed, in flight"
        );
        assert_eq!(
            progress(&state(false, None, Some(5)), at),
            Progress::Waiting,
            "given back unpolled (shutdown)"
        );
        assert_eq!(
            progress(&state(false, None, Some(11)), at),
            Progress::Polled
        );
        let mut failed = state(false, None, Some(11));
        failed.last_error = Some("Forbidden".into());
        failed.last_error_at = Some(t(11));
        assert_eq!(progress(&failed, at), Progress::Failed("Forbidden".into()));
        failed.last_error_at = Some(t(3));
        assert_eq!(progress(&failed, at), Progress::Polled, "an older error");
    }

    #[test]
    fn a_daemon_shows_by_a_claim_or_a_live_lease() {
        let now = t(10);
        assert!(!claimed_by_someone(&[state(true, None, None)], now));
        assert!(!claimed_by_someone(&[state(true, Some(5), None)], now));
        assert!(claimed_by_someone(&[state(true, Some(20), None)], now));
        assert!(claimed_by_someone(
            &[state(true, None, None), state(false, None, None)],
            now
        ));
    }

    #[test]
    fn long_id_lists_stay_one_line() {
        let ids: Vec<ProjectId> = (0..12)
            .map(|i| ProjectId::parse(&format!("p{i}")).expect("id"))
            .collect();
        assert_eq!(join(&ids[..2]), "p0, p1");
        assert!(join(&ids).ends_with("p9 and 2 more"));
    }
}
