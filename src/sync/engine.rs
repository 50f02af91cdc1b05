//! The sync engine: one cycle = claim due projects -> fetch -> diff -> write -> report.
//!
//! [`Engine::run_cycle`] is the unit of work the scheduler calls and tests drive
//! directly; [`Engine::poll_one`] is one project's fetch-diff-write. Neither sleeps on a
//! schedule nor reads config files: they get everything at construction, and stop
//! when the `CancellationToken` they are given is cancelled (no new requests start;
//! in-flight projects finish and commit).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::diff::{self, Observation, Plan, Stored};
use crate::domain::Timestamp;
use crate::ice::{ErrorClass, IceClient};
use crate::storage::{Applied, RunTotals, Store};

/// Counts a committed history row by the status it entered (`removed` for removals).
fn record_transition(plan: &Plan) {
    let status = match plan {
        Plan::Write(w) => match &w.history {
            Some(h) => h.status.clone().unwrap_or_else(|| "(none)".to_string()),
            None => return,
        },
        Plan::MarkRemoved { .. } => "removed".to_string(),
        _ => return,
    };
    tracing::debug!(status, "stored a transition");
    metrics::counter!("ice_sync_transitions_total", "status" => status).increment(1);
}

/// Storage failures in one cycle after which it stops: the database is most likely down,
/// and polling on would spend API quota on answers that cannot be stored.
const MAX_STORAGE_FAILURES: usize = 3;

/// How many times a project is re-planned when another writer got there first.
const MAX_CONFLICT_RETRIES: usize = 3;

#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub concurrency: usize,
    pub removal_confirmations: u32,
    /// Stop claiming work after this long; the cycle is then `partial`.
    pub cycle_timeout: Option<Duration>,
    pub replica_id: String,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            concurrency: 16,
            removal_confirmations: 2,
            cycle_timeout: None,
            replica_id: "local".to_string(),
        }
    }
}

/// What happened to one project in one cycle.
#[derive(Debug, Clone, PartialEq)]
pub enum PollOutcome {
    Unchanged,
    Changed {
        transitions: u32,
    },
    /// A newer answer was already stored; this one was dropped.
    Stale,
    NotFound,
    Removed,
    /// Recorded on the project's tracking row; the cycle goes on.
    Failed {
        code: String,
        message: String,
    },
    /// Credentials, clock or permissions: the cycle stops.
    AuthFailed {
        message: String,
    },
    /// The database write failed: the observation was not stored.
    StorageFailed {
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CycleOutcome {
    Success,
    /// Stopped early (deadline or shutdown) or some projects failed.
    Partial,
    /// Nothing could be done: auth failure, database unreachable.
    Failed,
}

impl CycleOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            CycleOutcome::Success => "success",
            CycleOutcome::Partial => "partial",
            CycleOutcome::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct CycleReport {
    pub run_id: Option<i64>,
    pub outcome: CycleOutcome,
    pub due: usize,
    pub polled: usize,
    pub changed: usize,
    pub transitions: u64,
    pub failures: usize,
    pub stale: usize,
    pub removed: usize,
    pub duration: Duration,
    /// Why the cycle failed or stopped early, if it did.
    pub error: Option<String>,
}

pub struct Engine {
    store: Store,
    client: IceClient,
    options: EngineOptions,
}

impl Engine {
    pub fn new(store: Store, client: IceClient, options: EngineOptions) -> Self {
        Self {
            store,
            client,
            options,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// One full cycle. Errors only when even `sync_runs` cannot be written; everything
    /// else is reported in the [`CycleReport`].
    #[tracing::instrument(skip_all, fields(sync_run_id))]
    pub async fn run_cycle(&self, shutdown: &CancellationToken) -> CycleReport {
        let clock = Instant::now();
        let started = Timestamp::now();
        let mut report = CycleReport {
            run_id: None,
            outcome: CycleOutcome::Success,
            due: 0,
            polled: 0,
            changed: 0,
            transitions: 0,
            failures: 0,
            stale: 0,
            removed: 0,
            duration: Duration::ZERO,
            error: None,
        };
        let run_id = match self
            .store
            .begin_run(started, &self.options.replica_id)
            .await
        {
            Ok(id) => id,
            Err(e) => return self.failed(report, clock, format!("{e:#}")),
        };
        report.run_id = Some(run_id);
        tracing::Span::current().record("sync_run_id", run_id);

        let due = match self.store.due_projects(started).await {
            Ok(due) => due,
            Err(e) => {
                let report = self.failed(report, clock, format!("{e:#}"));
                self.finish(&report).await;
                return report;
            }
        };
        report.due = due.len();

        // `stop` ends claiming: shutdown, deadline or an auth failure. Requests already
        // in flight finish and commit.
        let stop = shutdown.child_token();
        let auth_failed = Arc::new(AtomicBool::new(false));
        let deadline_hit = Arc::new(AtomicBool::new(false));
        let deadline = self.options.cycle_timeout.map(|t| {
            let stop = stop.clone();
            let hit = deadline_hit.clone();
            tokio::spawn(async move {
                tokio::time::sleep(t).await;
                hit.store(true, Ordering::SeqCst);
                stop.cancel();
            })
        });

        let mut first_error: Option<String> = None;
        let mut storage_failures = 0usize;
        let claim_stop = stop.clone();
        let mut results = futures::stream::iter(due)
            .take_while(move |_| std::future::ready(!claim_stop.is_cancelled()))
            .map(|stored| self.poll_one(stored, Some(run_id)))
            .buffer_unordered(self.options.concurrency.max(1));
        while let Some(outcome) = results.next().await {
            report.polled += 1;
            match outcome {
                PollOutcome::Unchanged | PollOutcome::NotFound => {}
                PollOutcome::Changed { transitions } => {
                    report.changed += 1;
                    report.transitions += u64::from(transitions);
                }
                PollOutcome::Removed => {
                    report.changed += 1;
                    report.removed += 1;
                    report.transitions += 1;
                }
                PollOutcome::Stale => report.stale += 1,
                PollOutcome::Failed { message, .. } => {
                    report.failures += 1;
                    first_error.get_or_insert(message);
                }
                PollOutcome::StorageFailed { message } => {
                    report.failures += 1;
                    storage_failures += 1;
                    if storage_failures == MAX_STORAGE_FAILURES {
                        tracing::error!(
                            "{storage_failures} projects could not be stored ({message}); \
                             stopping this cycle until the database answers again"
                        );
                        report.error = Some(format!("database unavailable: {message}"));
                        stop.cancel();
                    }
                    first_error.get_or_insert(message);
                }
                PollOutcome::AuthFailed { message } => {
                    report.failures += 1;
                    if !auth_failed.swap(true, Ordering::SeqCst) {
                        tracing::error!("{message}; stopping this cycle");
                        report.error = Some(message);
                    }
                    stop.cancel();
                }
            }
        }
        drop(results);
        if let Some(handle) = deadline {
            handle.abort();
        }

        report.duration = clock.elapsed();
        let stopped_early = report.polled < report.due;
        report.outcome = if auth_failed.load(Ordering::SeqCst)
            || storage_failures >= MAX_STORAGE_FAILURES
            || (report.polled > 0 && report.failures == report.polled)
        {
            report.error = report.error.take().or(first_error);
            CycleOutcome::Failed
        } else if stopped_early {
            report.error = Some(if deadline_hit.load(Ordering::SeqCst) {
                "sync.cycle_timeout reached before every project was polled".to_string()
            } else {
                "stopped by shutdown before every project was polled".to_string()
            });
            CycleOutcome::Partial
        } else if report.failures > 0 {
            report.error = first_error;
            CycleOutcome::Partial
        } else {
            CycleOutcome::Success
        };
        self.finish(&report).await;
        report
    }

    fn failed(&self, mut report: CycleReport, clock: Instant, error: String) -> CycleReport {
        tracing::error!("sync cycle failed: {error}");
        report.outcome = CycleOutcome::Failed;
        report.error = Some(error);
        report.duration = clock.elapsed();
        report
    }

    async fn finish(&self, report: &CycleReport) {
        let Some(run_id) = report.run_id else { return };
        let totals = RunTotals {
            outcome: report.outcome.as_str().to_string(),
            projects_polled: report.polled as i64,
            projects_changed: report.changed as i64,
            transitions: report.transitions as i64,
            failures: report.failures as i64,
            error: report.error.clone(),
        };
        if let Err(e) = self
            .store
            .finish_run(run_id, Timestamp::now(), &totals)
            .await
        {
            tracing::warn!("could not record the end of sync run {run_id}: {e:#}");
        }
    }

    /// Fetch, diff and write one project. Never panics on what the API sends and never
    /// returns an error: every failure is an outcome.
    #[tracing::instrument(skip_all, fields(project_id = %stored.project_id))]
    pub async fn poll_one(&self, stored: Stored, run_id: Option<i64>) -> PollOutcome {
        let project_id = stored.project_id.clone();
        let observation = match self.client.get_editing_project(&project_id).await {
            Ok(fetched) => Observation::Found {
                project: Box::new(fetched.value),
                request_id: fetched.request_id,
                polled_at: Timestamp::from(fetched.started_at),
            },
            Err(e) => match e.class() {
                ErrorClass::NotFound => Observation::NotFound {
                    request_id: e.request_id().map(str::to_string),
                    polled_at: Timestamp::now(),
                },
                ErrorClass::Auth => {
                    return PollOutcome::AuthFailed {
                        message: e.to_string(),
                    }
                }
                ErrorClass::Retryable | ErrorClass::Permanent => {
                    let message = e.to_string();
                    tracing::warn!(request_id = e.request_id(), "polling failed: {message}");
                    if let Err(db) = self
                        .store
                        .record_failure(&project_id, Timestamp::now(), &message, None)
                        .await
                    {
                        tracing::warn!("{db:#}");
                    }
                    return PollOutcome::Failed {
                        code: e.code().to_string(),
                        message,
                    };
                }
            },
        };
        self.write(stored, observation, run_id).await
    }

    async fn write(
        &self,
        mut stored: Stored,
        observation: Observation,
        run_id: Option<i64>,
    ) -> PollOutcome {
        for _ in 0..MAX_CONFLICT_RETRIES {
            let plan = diff::plan(
                &stored,
                observation.clone(),
                self.options.removal_confirmations,
            );
            let outcome = match &plan {
                Plan::Stale => return PollOutcome::Stale,
                Plan::Write(w) if w.history.is_some() => PollOutcome::Changed { transitions: 1 },
                Plan::Write(_) => PollOutcome::Unchanged,
                Plan::NotFoundPending { .. } => PollOutcome::NotFound,
                Plan::MarkRemoved { .. } => PollOutcome::Removed,
            };
            match self.store.apply(&plan, run_id, None).await {
                Ok(Applied::Written) => {
                    record_transition(&plan);
                    return outcome;
                }
                Ok(Applied::Conflict) => match self.store.load(&stored.project_id).await {
                    Ok(Some(fresh)) => stored = fresh,
                    Ok(None) => return PollOutcome::Stale,
                    Err(e) => {
                        return PollOutcome::StorageFailed {
                            message: format!("{e:#}"),
                        }
                    }
                },
                Err(e) => {
                    let message = format!("{e:#}");
                    tracing::warn!("could not store the observation: {message}");
                    return PollOutcome::StorageFailed { message };
                }
            }
        }
        PollOutcome::Stale
    }
}
