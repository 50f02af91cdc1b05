//! `ice-sync refresh ID... | --all | --status VALUE`: asks for an immediate poll and says
//! how it went.
//!
//! The command writes the request (`Store::request_polls`), then watches the queue for a
//! moment: a running daemon claims requested projects within a fraction of a second (a
//! claim clears `requested_at`, or the project is held by a live lease). If one does, the
//! command waits for those polls to finish; if none does, it polls them itself through the
//! same requested cycle a daemon would run (`app::prepare_engine`, so SQLite's
//! single-writer lock is respected). Either way it prints one row per project and exits 0
//! only when every project was polled without error.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::app;
use crate::cli::Exit;
use crate::config::Settings;
use crate::domain::{ProjectId, Timestamp};
use crate::storage::{RequestSource, RequestState, RequestTarget, Store};
use crate::sync::CycleKind;
use crate::table::print_table;

/// How long to watch for a running daemon's claim before polling here: a daemon claims
/// within 250 ms (SQLite) or at once (PostgreSQL); the rest is room for a loaded machine.
const CLAIM_WAIT: Duration = Duration::from_millis(1_800);

#[derive(Debug, Clone, clap::Args)]
#[command(group(
    clap::ArgGroup::new("target").required(true).args(["ids", "all", "status"])
))]
pub struct RefreshArgs {
    /// Tracked project IDs to poll now (`-` reads them from stdin, one per line)
    pub ids: Vec<String>,
    /// Poll every enabled tracked project now
    #[arg(long)]
    pub all: bool,
    /// Poll the enabled projects whose status or business status is VALUE (e.g. Producing)
    #[arg(long, value_name = "VALUE")]
    pub status: Option<String>,
    /// How long to wait for the polls to finish
    #[arg(long, default_value = "60s", value_parser = crate::config::bounds::parse_cli_duration)]
    pub wait: Duration,
}

/// Where one requested project stands, as `refresh` judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Not polled since the request yet.
    Waiting,
    Polled,
    /// Polled since the request, and the poll failed with this error.
    Failed(String),
}

/// Judges `state` for a request made at `at`: polled once a claim took the request, the
/// lease is given back and the attempt is no older than the request.
pub fn progress(state: &RequestState, at: Timestamp) -> Progress {
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
pub fn claimed_by_someone(states: &[RequestState], now: Timestamp) -> bool {
    states
        .iter()
        .any(|s| !s.requested || s.lease_expires_at.is_some_and(|t| t > now))
}

/// Runs the command; returns the exit code.
pub async fn run(settings: &Settings, args: RefreshArgs) -> anyhow::Result<u8> {
    let target = target(&args)?;
    let store = app::open_store(settings).await?;
    app::check_region(settings, &store).await?;
    let at = app::now(&store).await?;
    let outcome = store
        .requests()
        .request_polls(&target, RequestSource::Cli, at)
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
        (store, "the running daemon")
    } else {
        store.close().await;
        (poll_here(settings, deadline).await?, "this command")
    };
    let states = wait_for_polls(&store, &ids, at, deadline, every).await?;
    store.close().await;
    report(&ids, &states, at, by, args.wait)
}

fn target(args: &RefreshArgs) -> anyhow::Result<RequestTarget> {
    if args.all {
        return Ok(RequestTarget::AllEnabled);
    }
    if let Some(status) = &args.status {
        let status = status.trim();
        if status.is_empty() {
            return Err(usage("--status needs a value, e.g. --status Producing"));
        }
        return Ok(RequestTarget::Status(status.to_string()));
    }
    let ids = crate::cli::parse_ids(&args.ids)?;
    if ids.is_empty() {
        return Err(usage("no project IDs given (stdin was empty)"));
    }
    Ok(RequestTarget::Projects {
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
        let states = store.requests().request_states(ids).await?;
        if claimed_by_someone(&states, app::now(store).await?) {
            return Ok(true);
        }
        if Instant::now() >= until {
            return Ok(false);
        }
        tokio::time::sleep(every).await;
    }
}

/// No daemon took the request: one requested cycle here, exactly as a daemon runs it.
async fn poll_here(settings: &Settings, deadline: Instant) -> anyhow::Result<Store> {
    let engine = app::prepare_engine(settings).await.map_err(|e| {
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
    let report = engine.run(CycleKind::Requested, &shutdown).await;
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
) -> anyhow::Result<Vec<RequestState>> {
    loop {
        let states = store.requests().request_states(ids).await?;
        let done = states.iter().all(|s| progress(s, at) != Progress::Waiting);
        if done || Instant::now() >= deadline {
            return Ok(states);
        }
        tokio::time::sleep(every.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

/// Prints the table; the exit code says whether every poll succeeded.
fn report(
    ids: &[ProjectId],
    states: &[RequestState],
    at: Timestamp,
    by: &str,
    wait: Duration,
) -> anyhow::Result<u8> {
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
    let mut failed = Vec::new();
    let mut waiting = Vec::new();
    let rows: Vec<Vec<String>> = states
        .iter()
        .map(|s| {
            let error = match progress(s, at) {
                Progress::Polled => "-".to_string(),
                Progress::Failed(e) => {
                    failed.push(s.project_id.clone());
                    e
                }
                Progress::Waiting => {
                    waiting.push(s.project_id.clone());
                    "not polled yet".to_string()
                }
            };
            vec![
                s.project_id.to_string(),
                text(&s.status),
                text(&s.business_status),
                s.last_polled_at
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "-".to_string()),
                error,
            ]
        })
        .collect();
    print_table(
        &[
            "PROJECT",
            "STATUS",
            "BUSINESS",
            "LAST POLLED (UTC)",
            "ERROR",
        ],
        &rows,
    );
    // Untracked while we waited (`track remove`): say so rather than wait for nothing.
    let gone: Vec<ProjectId> = ids
        .iter()
        .filter(|id| !states.iter().any(|s| &s.project_id == *id))
        .cloned()
        .collect();
    waiting.extend(gone);
    let polled = ids.len() - failed.len() - waiting.len();
    println!("{polled} of {} project(s) polled by {by}", ids.len());
    if !failed.is_empty() {
        return Err(Exit {
            code: 1,
            message: format!(
                "{} of {} poll(s) failed ({}): see ERROR above and `ice-sync status`",
                failed.len(),
                ids.len(),
                join(&failed)
            ),
        }
        .into());
    }
    if !waiting.is_empty() {
        return Err(Exit {
            code: 3,
            message: format!(
                "{} project(s) not polled within --wait {} ({}): the request stays queued; is \
                 the daemon running and reaching ICE? (`ice-sync check`)",
                waiting.len(),
                humantime::format_duration(wait),
                join(&waiting)
            ),
        }
        .into());
    }
    Ok(0)
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

    fn state(requested: bool, lease: Option<i64>, attempt: Option<i64>) -> RequestState {
        RequestState {
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
