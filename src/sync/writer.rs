//! The writer: the one task that writes during a cycle.
//!
//! It receives fetched projects, diffs them, and writes unchanged ones many per
//! statement (a touch) and changed ones in batched transactions. Failures stay local:
//! a batch the database refuses is retried project by project, deadlocks and
//! serialization failures are retried, a refused row becomes that project's recorded
//! error, and only an unavailable database stops the cycle — at once, so fetches do not
//! run ahead of a writer that cannot write. "Not found" answers are held to the end of
//! the cycle: when most of a cycle's projects come back not found, that is no evidence
//! that they are gone, and none is counted.
//!
//! Memory stays bounded whatever the projects weigh: a batch of changed projects is
//! written once it holds `write_batch` projects or `write_batch_bytes` of their stored
//! size, whichever comes first (a project that alone is larger goes alone), and every
//! fetched project — queued, planned, or in a batch — holds its answer's share of the
//! client's in-flight budget (`ice::budget`) until its write has committed, so fetches
//! wait for the writer rather than pile parsed projects up in front of it.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::contract::{Applied, FailureJob, Plan, Stored, TouchJob, WriteJob};
use crate::domain::{ProjectId, Timestamp};
use crate::ice::budget::Reserved;
use crate::metric_names;
use crate::storage::{StorageError, StorageErrorKind, Store};

use super::diff::{self, Observation};
use super::next_poll;
use super::policy::PollPolicy;
use super::time_base::TimeBase;

/// Changed projects are flushed at least this often, so a slow cycle's history is
/// visible early. Unchanged ones wait for a full batch (or `TOUCH_FLUSH_INTERVAL`): they
/// carry no news, and fewer, larger touches are what makes an unchanged cycle cheap.
const FLUSH_INTERVAL: Duration = Duration::from_millis(500);
const TOUCH_FLUSH_INTERVAL: Duration = Duration::from_secs(10);
/// Attempts for a write that hit a deadlock or serialization failure.
const CONTENTION_ATTEMPTS: u32 = 3;
/// At least this many not-found answers, and more than half of the cycle's answers,
/// before a cycle's not-found answers are distrusted.
const SUSPICIOUS_NOT_FOUND_MIN: usize = 5;

/// What the writer is handed.
pub(crate) enum ToWriter {
    /// A fetched project, and its answer's share of the in-flight budget.
    Observed(Stored, Observation, Reserved),
    Failed {
        stored: Stored,
        message: String,
    },
    /// List mode: these projects changed, make them due by `at`.
    MarkDue {
        ids: Vec<ProjectId>,
        at: Timestamp,
        done: oneshot::Sender<Result<u64, String>>,
    },
    /// List mode: track projects the list showed (`source = 'discovered'`).
    Discover {
        ids: Vec<ProjectId>,
        done: oneshot::Sender<Result<u64, String>>,
    },
}

/// Everything the writer needs, fixed for one cycle.
pub(crate) struct WriterContext {
    pub(crate) store: Store,
    pub(crate) policy: PollPolicy,
    pub(crate) removal_confirmations: u32,
    pub(crate) run_id: i64,
    pub(crate) base: TimeBase,
    pub(crate) touch_batch: usize,
    pub(crate) write_batch: usize,
    /// A batch of changed projects is written once their stored size reaches this.
    pub(crate) write_batch_bytes: usize,
    /// Cancelled by the writer when the database is unavailable.
    pub(crate) stop: CancellationToken,
}

/// What the writer did, summed over a cycle.
#[derive(Debug, Default)]
pub(crate) struct WriterTotals {
    pub(crate) changed: usize,
    pub(crate) transitions: u64,
    pub(crate) removed: usize,
    pub(crate) fenced: usize,
    /// Projects whose observation the database refused (each recorded as its error).
    pub(crate) refused: usize,
    pub(crate) first_error: Option<String>,
    /// Set when the database became unavailable; nothing was written after that.
    pub(crate) unavailable: Option<String>,
    /// Why this cycle's not-found answers were not counted, if they were not.
    pub(crate) removal_note: Option<String>,
}

pub(crate) fn spawn(
    ctx: WriterContext,
    queue: usize,
) -> (
    mpsc::Sender<ToWriter>,
    tokio::task::JoinHandle<WriterTotals>,
) {
    let (tx, rx) = mpsc::channel(queue);
    (tx, tokio::spawn(run(ctx, rx)))
}

struct Writer {
    ctx: WriterContext,
    totals: WriterTotals,
    touches: Vec<TouchJob>,
    writes: Vec<WriteJob>,
    /// The stored size of `writes`.
    writes_bytes: usize,
    /// The budget `writes` hold, given back once they are written.
    writes_reserved: Vec<Reserved>,
    not_found: Vec<(Stored, Observation)>,
    observed: usize,
}

async fn run(ctx: WriterContext, mut rx: mpsc::Receiver<ToWriter>) -> WriterTotals {
    let mut w = Writer {
        ctx,
        totals: WriterTotals::default(),
        touches: Vec::new(),
        writes: Vec::new(),
        writes_bytes: 0,
        writes_reserved: Vec::new(),
        not_found: Vec::new(),
        observed: 0,
    };
    let mut writes_due = tokio::time::Instant::now() + FLUSH_INTERVAL;
    let mut touches_due = tokio::time::Instant::now() + TOUCH_FLUSH_INTERVAL;
    loop {
        let received = tokio::select! {
            item = rx.recv() => item,
            _ = tokio::time::sleep_until(writes_due) => {
                w.flush_writes().await;
                writes_due = tokio::time::Instant::now() + FLUSH_INTERVAL;
                continue;
            }
            _ = tokio::time::sleep_until(touches_due) => {
                w.flush_touches().await;
                touches_due = tokio::time::Instant::now() + TOUCH_FLUSH_INTERVAL;
                continue;
            }
        };
        let Some(item) = received else { break };
        w.receive(item).await;
        if w.touches.len() >= w.ctx.touch_batch.max(1) {
            w.flush_touches().await;
            touches_due = tokio::time::Instant::now() + TOUCH_FLUSH_INTERVAL;
        }
        if w.writes.len() >= w.ctx.write_batch.max(1) || w.writes_bytes >= w.ctx.write_batch_bytes {
            w.flush_writes().await;
            writes_due = tokio::time::Instant::now() + FLUSH_INTERVAL;
        }
    }
    w.flush_touches().await;
    w.flush_writes().await;
    w.settle_not_found().await;
    w.totals
}

impl Writer {
    fn dead(&self) -> bool {
        self.totals.unavailable.is_some()
    }

    async fn receive(&mut self, item: ToWriter) {
        match item {
            ToWriter::MarkDue { ids, at, done } => {
                let result = if self.dead() {
                    Err("the database is unavailable".to_string())
                } else {
                    match self.ctx.store.writes().mark_due(&ids, at).await {
                        Ok(n) => Ok(n),
                        Err(e) => Err(self.storage_error(e, 0)),
                    }
                };
                let _ = done.send(result);
            }
            ToWriter::Discover { ids, done } => {
                let result = if self.dead() {
                    Err("the database is unavailable".to_string())
                } else {
                    let now = self.ctx.base.now();
                    match self
                        .ctx
                        .store
                        .tracking()
                        .track_add(&ids, "discovered", now)
                        .await
                    {
                        Ok(n) => Ok(n),
                        Err(e) => Err(self.storage_error(e, 0)),
                    }
                };
                let _ = done.send(result);
            }
            _ if self.dead() => {} // drain: nothing can be stored
            ToWriter::Observed(stored, observation, reserved) => {
                self.observed += 1;
                if matches!(observation, Observation::NotFound { .. }) {
                    self.not_found.push((stored, observation));
                    return;
                }
                let job = next_poll::plan_poll(
                    &self.ctx.policy,
                    &stored,
                    observation,
                    self.ctx.removal_confirmations,
                    self.ctx.base.now(),
                );
                match job.plan {
                    // A touch keeps no project text: the share goes back now.
                    Plan::Touch(touch) => self.touches.push(TouchJob {
                        touch,
                        next: job.next,
                    }),
                    _ => self.queue_write(job, reserved).await,
                }
            }
            ToWriter::Failed { stored, message } => {
                let job = FailureJob {
                    project_id: stored.project_id.clone(),
                    claim: stored.claim,
                    at: self.ctx.base.now(),
                    next: next_poll::after_failure(&self.ctx.policy, &stored, self.ctx.base.now()),
                    error: message,
                };
                self.record_failure(&job).await;
            }
        }
    }

    async fn record_failure(&mut self, job: &FailureJob) {
        match self.ctx.store.writes().record_failure(job).await {
            Ok(Applied::Written) => {}
            Ok(Applied::Fenced) => self.fenced(1),
            Err(e) => {
                self.storage_error(e, 1);
            }
        }
    }

    fn fenced(&mut self, n: usize) {
        if n > 0 {
            self.totals.fenced += n;
            metrics::counter!(metric_names::WRITES_FENCED).increment(n as u64);
        }
    }

    /// Accounts a storage error; stops the cycle if the database is unavailable.
    /// Returns the message.
    fn storage_error(&mut self, e: StorageError, projects: usize) -> String {
        let message = format!("{e:#}");
        let kind = e.kind();
        metrics::counter!(metric_names::STORAGE_ERRORS, "kind" => kind_label(kind)).increment(1);
        if kind == StorageErrorKind::Unavailable {
            if self.totals.unavailable.is_none() {
                tracing::error!(
                    "the database is unavailable ({message}); stopping this cycle until it answers again"
                );
                self.totals.unavailable = Some(message.clone());
                self.ctx.stop.cancel();
            }
        } else {
            tracing::warn!("could not store an observation: {message}");
            self.totals.refused += projects;
            self.totals
                .first_error
                .get_or_insert_with(|| message.clone());
        }
        message
    }

    async fn flush_touches(&mut self) {
        if self.touches.is_empty() || self.dead() {
            self.touches.clear();
            return;
        }
        let jobs = std::mem::take(&mut self.touches);
        match self.ctx.store.writes().touch(&jobs).await {
            Ok(applied) => self.fenced(jobs.len().saturating_sub(applied.len())),
            Err(e) if e.is_unavailable() => {
                self.storage_error(e, 0);
            }
            // One refused row must not cost the others: retry one by one.
            Err(_) => {
                for job in jobs {
                    if self.dead() {
                        break;
                    }
                    match self
                        .ctx
                        .store
                        .writes()
                        .touch(std::slice::from_ref(&job))
                        .await
                    {
                        Ok(applied) if applied.is_empty() => self.fenced(1),
                        Ok(_) => {}
                        Err(e) => {
                            self.storage_error(e, 1);
                        }
                    }
                }
            }
        }
    }

    /// Adds a changed project to the batch, writing the batch first if the project would
    /// take it past `write_batch_bytes`.
    async fn queue_write(&mut self, job: WriteJob, reserved: Reserved) {
        let bytes = job.plan.stored_bytes();
        if !self.writes.is_empty() && self.writes_bytes + bytes > self.ctx.write_batch_bytes {
            self.flush_writes().await;
        }
        self.writes_bytes += bytes;
        self.writes.push(job);
        self.writes_reserved.push(reserved);
    }

    async fn flush_writes(&mut self) {
        self.writes_bytes = 0;
        // Given back when this batch is done, written or not.
        let _reserved = std::mem::take(&mut self.writes_reserved);
        if self.writes.is_empty() || self.dead() {
            self.writes.clear();
            return;
        }
        let jobs = std::mem::take(&mut self.writes);
        match self
            .ctx
            .store
            .writes()
            .apply_batch(&jobs, Some(self.ctx.run_id))
            .await
        {
            Ok(results) => {
                for (job, applied) in jobs.iter().zip(results) {
                    self.count(job, applied);
                }
            }
            Err(e) if e.is_unavailable() => {
                self.storage_error(e, 0);
            }
            Err(_) => {
                for job in jobs {
                    if self.dead() {
                        break;
                    }
                    self.write_one(job).await;
                }
            }
        }
    }

    /// One job on its own, retried on contention; a refused row becomes the project's
    /// recorded error.
    async fn write_one(&mut self, job: WriteJob) {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .ctx
                .store
                .writes()
                .apply(&job, Some(self.ctx.run_id))
                .await
            {
                Ok(applied) => return self.count(&job, applied),
                Err(e)
                    if e.kind() == StorageErrorKind::Contention
                        && attempt < CONTENTION_ATTEMPTS =>
                {
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                }
                Err(e) => {
                    let unavailable = e.is_unavailable();
                    let message = self.storage_error(e, 1);
                    if !unavailable {
                        let failure = FailureJob {
                            project_id: job.plan.project_id().clone(),
                            claim: job.plan.claim(),
                            at: self.ctx.base.now(),
                            error: format!(
                                "the database refused this project's observation: {message}"
                            ),
                            next: job.next,
                        };
                        self.record_failure(&failure).await;
                    }
                    return;
                }
            }
        }
    }

    fn count(&mut self, job: &WriteJob, applied: Applied) {
        if applied == Applied::Fenced {
            return self.fenced(1);
        }
        if let Some(h) = job.plan.history() {
            let label = if matches!(job.plan, Plan::MarkRemoved { .. }) {
                "removed"
            } else {
                status_label(h.status.as_deref())
            };
            metrics::counter!(metric_names::TRANSITIONS, "status" => label).increment(1);
            if let Some(skipped) = &h.skipped_states {
                metrics::counter!(metric_names::GAP_TRANSITIONS, "skipped" => skipped.clone())
                    .increment(1);
            }
            self.totals.changed += 1;
            self.totals.transitions += u64::from(job.plan.transitions());
        }
        if matches!(job.plan, Plan::MarkRemoved { .. }) {
            self.totals.removed += 1;
        }
    }

    /// Plans and writes the cycle's not-found answers, unless there were so many that
    /// they are no evidence at all.
    async fn settle_not_found(&mut self) {
        let held = std::mem::take(&mut self.not_found);
        if held.is_empty() || self.dead() {
            return;
        }
        let suspicious = held.len() >= SUSPICIOUS_NOT_FOUND_MIN && held.len() * 2 > self.observed;
        if suspicious {
            let note = format!(
                "{} of {} projects answered \"not found\" in this cycle: more likely an API or proxy \
                 problem than mass deletion, so none of these answers was counted toward removal",
                held.len(),
                self.observed
            );
            tracing::warn!("{note}");
            metrics::counter!(metric_names::REMOVALS_SUPPRESSED).increment(held.len() as u64);
            self.totals.removal_note = Some(note);
        }
        let now = self.ctx.base.now();
        for (stored, observation) in held {
            let job = if suspicious {
                let plan = diff::not_found_unconfirmed(&stored, observation.polled_at());
                let next =
                    next_poll::after_poll(&self.ctx.policy, &stored, &plan, &observation, now);
                WriteJob { plan, next }
            } else {
                next_poll::plan_poll(
                    &self.ctx.policy,
                    &stored,
                    observation,
                    self.ctx.removal_confirmations,
                    now,
                )
            };
            self.queue_write(job, Reserved::default()).await;
        }
        self.flush_writes().await;
    }
}

fn kind_label(kind: StorageErrorKind) -> &'static str {
    match kind {
        StorageErrorKind::Unavailable => "unavailable",
        StorageErrorKind::Contention => "contention",
        StorageErrorKind::Refused => "refused",
    }
}

/// The `status` label of a transition: a status ICE documents, `(none)`, or `other`.
/// The value comes from ICE, and every distinct label value is a series kept for the
/// process's life: an unbounded set would grow `/metrics` without end.
fn status_label(status: Option<&str>) -> &'static str {
    match status {
        None => "(none)",
        Some(s) => crate::config::sync::KNOWN_STATUSES
            .iter()
            .find(|known| **known == s)
            .copied()
            .unwrap_or("other"),
    }
}
