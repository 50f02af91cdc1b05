//! One cycle: claim due projects -> fetch -> diff -> write -> report.
//!
//! [`Engine::run`] is the unit of work the scheduler calls and tests drive directly.
//! It never raises: every failure ends up in the [`CycleReport`] (and `sync_runs`).
//! A running cycle is a value, [`Cycle`]: its state, and one short method per phase,
//! which `run` calls in order; how it ended is decided by the pure
//! [`outcome`](super::outcome::outcome) from the facts the phases gathered.
//!
//! Time and order: the cycle anchors a [`TimeBase`] on the deciding clock (PostgreSQL's,
//! or the local one on SQLite) and stamps everything from it; it checks the local clock
//! for steps first. What is due is decided by the claim statement; a scheduled cycle
//! stops claiming a margin before the next tick, so an overrun never swallows a tick.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::contract::{ClaimScope, RunTotals, Stored};
use crate::domain::Timestamp;
use crate::ice::{Fetched, IceError, Project};
use crate::metric_names;

use super::claim::{self, ClaimState, Claims};
use super::engine::{CycleKind, Engine};
use super::list_sweep::{Sweep, SweepTotals};
use super::observe::{classify, Classified};
use super::outcome::{outcome, CycleFacts, StoppedAt};
use super::progress::Running;
use super::report::{CycleOutcome, CycleReport};
use super::time_base::TimeBase;
use super::writer::{self, ToWriter, WriterContext, WriterTotals};

/// How long before the next tick a scheduled cycle stops claiming: a tenth of the
/// period, within these bounds, so in-flight fetches can finish before the tick.
const MARGIN_MIN: Duration = Duration::from_millis(200);
const MARGIN_MAX: Duration = Duration::from_secs(30);

impl Engine {
    /// One scheduled cycle: what was due at the latest tick.
    pub async fn run_cycle(&self, shutdown: &CancellationToken) -> CycleReport {
        self.run(CycleKind::Scheduled, shutdown).await
    }

    /// One cycle of the given kind. Every failure is reported, never raised.
    #[tracing::instrument(skip_all, fields(sync_run_id))]
    pub async fn run(&self, kind: CycleKind, shutdown: &CancellationToken) -> CycleReport {
        let mut cycle = match Cycle::begin(self, kind, shutdown).await {
            Ok(cycle) => cycle,
            Err(report) => return report,
        };
        let (to_writer, writer) = cycle.spawn_writer();
        // List mode: the sweep first, for at most its share of the budget, so that what
        // it marks due is claimed in this cycle; then the claims, always.
        let sweeper = cycle.sweeper(&to_writer);
        cycle.first_sweep_leg(sweeper.as_ref()).await;
        let leases = cycle.keep_leases();
        let progress = cycle.begin_progress().await;
        cycle.poll_claimed(&to_writer).await;
        cycle.last_sweep_leg(sweeper.as_ref()).await;
        drop(to_writer);
        let written = writer.await.unwrap_or_else(|e| WriterTotals {
            unavailable: Some(format!("the writer task failed: {e}")),
            ..Default::default()
        });
        cycle.release(leases).await;
        cycle.produce_jobs().await;
        let report = cycle.finish(written).await;
        drop(progress);
        report
    }

    /// Where this cycle's times come from: the database's clock on PostgreSQL, the
    /// local one on SQLite. Also the place where a step of the local clock is noticed.
    async fn time_base(&self) -> Result<TimeBase, crate::storage::StorageError> {
        let now = Instant::now();
        let local = self.clock.now();
        if let Some(step) = self.clock_watch.observe(local, now) {
            let seconds = step.num_milliseconds() as f64 / 1000.0;
            tracing::warn!(
                step_seconds = seconds,
                "the system clock stepped by {seconds:+.1} s; polling continues on schedule"
            );
            metrics::counter!(metric_names::CLOCK_STEPS).increment(1);
            if !self.store.uses_database_clock() {
                self.store.claims().shift_due_times(step).await?;
            }
        }
        match self.store.database_now().await? {
            Some(db_now) => {
                let skew = (local - db_now.as_datetime()).num_milliseconds() as f64 / 1000.0;
                metrics::gauge!(metric_names::CLOCK_SKEW).set(skew);
                Ok(TimeBase::new(db_now, Instant::now()))
            }
            None => Ok(TimeBase::new(local.into(), now)),
        }
    }

    /// When claiming stops: a margin before the next tick for a scheduled cycle, and no
    /// later than `sync.cycle_timeout` after the start if one is set. `true` when it is
    /// the tick's margin (stopping there is an overrun).
    fn claim_deadline(
        &self,
        kind: CycleKind,
        base: &TimeBase,
        cycle_start: crate::domain::Timestamp,
    ) -> Option<(Instant, bool)> {
        let by_timeout = self.options.cycle_timeout.map(|t| Instant::now() + t);
        let by_tick = match kind {
            CycleKind::Scheduled => (|| {
                let policy = &self.options.policy;
                // The margin depends on the period, the period on the tick: estimate the
                // period from the next tick, then take the tick that leaves that margin.
                let (_, period) = policy.next_tick_after(cycle_start, Duration::ZERO)?;
                let margin = (period / 10).clamp(MARGIN_MIN, MARGIN_MAX);
                let (next, _) = policy.next_tick_after(cycle_start, margin)?;
                let margin = chrono::Duration::from_std(margin).ok()?;
                Some(base.instant_of(next.shifted(-margin)))
            })(),
            CycleKind::Once | CycleKind::All | CycleKind::Refresh => None,
        };
        match (by_timeout, by_tick) {
            (Some(t), Some(tick)) if tick <= t => Some((tick, true)),
            (Some(t), _) => Some((t, false)),
            (None, tick) => tick.map(|tick| (tick, true)),
        }
    }

    fn claim_limit(&self) -> i64 {
        if self.options.claim_batch > 0 {
            return self.options.claim_batch as i64;
        }
        if !self.store.shared_by_replicas() {
            return 1000;
        }
        let by_concurrency = (self.options.sync.concurrency * 16).clamp(256, 1000);
        // Replicas share the work: one must not claim far more than it polls in a lease.
        // The client's rate limit: a batch must finish within its lease.
        let by_lease = self.options.sync.max_qps.map_or(usize::MAX, |qps| {
            (qps.get() as usize * self.options.lease_ttl.as_secs() as usize / 2).max(1)
        });
        by_concurrency.min(by_lease) as i64
    }
}

/// A cycle on its way: what it was started with, and what its phases have found so far.
struct Cycle<'e> {
    engine: &'e Engine,
    kind: CycleKind,
    shutdown: &'e CancellationToken,
    started: Instant,
    base: TimeBase,
    cycle_start: Timestamp,
    /// Who this cycle's leases are recorded for ([`Engine::lease_owner`]).
    owner: String,
    run_id: i64,
    scope: ClaimScope,
    /// Ends claiming: shutdown, the deadline, an auth failure or a dead database.
    /// Requests already in flight finish and commit.
    stop: CancellationToken,
    deadline: Option<Deadline>,
    claims: Arc<ClaimState>,
    sweep: SweepTotals,
    polled: usize,
    /// Failed fetches; the sweep and the writer count their own ([`Cycle::finish`]).
    fetch_failures: usize,
    auth_error: Option<String>,
    fetch_error: Option<String>,
}

/// When claiming stops, and whether it did.
struct Deadline {
    at: Instant,
    /// The margin before the next tick (stopping there is an overrun), not the timeout.
    tick: bool,
    hit: Arc<AtomicBool>,
    timer: JoinHandle<()>,
}

impl Deadline {
    /// Cancels `stop` at `at`.
    fn arm(at: Instant, tick: bool, stop: &CancellationToken) -> Deadline {
        let hit = Arc::new(AtomicBool::new(false));
        let timer = tokio::spawn({
            let (stop, hit) = (stop.clone(), hit.clone());
            async move {
                tokio::time::sleep_until(at).await;
                hit.store(true, Ordering::SeqCst);
                stop.cancel();
            }
        });
        Deadline {
            at,
            tick,
            hit,
            timer,
        }
    }
}

/// The task that renews the cycle's leases while fetches are in flight.
struct LeaseKeeper {
    done: CancellationToken,
    task: JoinHandle<()>,
}

impl<'e> Cycle<'e> {
    /// Anchors the cycle's time, opens its `sync_runs` row and takes back this owner's
    /// leftover leases. An `Err` is the report of a cycle that could not start.
    async fn begin(
        engine: &'e Engine,
        kind: CycleKind,
        shutdown: &'e CancellationToken,
    ) -> Result<Cycle<'e>, CycleReport> {
        let started = Instant::now();
        let unavailable = |e: crate::storage::StorageError| {
            failed(started, format!("database unavailable: {e:#}"))
        };
        let base = engine.time_base().await.map_err(unavailable)?;
        let cycle_start = base.now();
        let owner = engine.lease_owner(kind);
        let run_id = engine
            .store
            .runs()
            .begin_run(cycle_start, &engine.options.replica_id, kind.trigger())
            .await
            .map_err(unavailable)?;
        tracing::Span::current().record("sync_run_id", run_id);
        // Cycles of one engine and kind never overlap: a lease this owner still holds is
        // left from a cycle that could not give it back (the database was down or full),
        // and those projects are due now rather than when the lease runs out.
        if let Err(e) = engine.store.claims().release_leases(&owner).await {
            let report = unavailable(e);
            return Err(CycleReport {
                run_id: Some(run_id),
                ..report
            });
        }
        let scope = match kind {
            CycleKind::Scheduled => {
                ClaimScope::DueBy(engine.options.policy.claim_cutoff(cycle_start))
            }
            CycleKind::Once => ClaimScope::Once(cycle_start),
            CycleKind::All => ClaimScope::All,
            CycleKind::Refresh => ClaimScope::Refresh,
        };
        let stop = shutdown.child_token();
        let deadline = engine
            .claim_deadline(kind, &base, cycle_start)
            .map(|(at, tick)| Deadline::arm(at, tick, &stop));
        Ok(Cycle {
            engine,
            kind,
            shutdown,
            started,
            base,
            cycle_start,
            owner,
            run_id,
            scope,
            stop,
            deadline,
            claims: Arc::default(),
            sweep: SweepTotals::default(),
            polled: 0,
            fetch_failures: 0,
            auth_error: None,
            fetch_error: None,
        })
    }

    /// The cycle's one writer task.
    fn spawn_writer(&self) -> (mpsc::Sender<ToWriter>, JoinHandle<WriterTotals>) {
        let options = &self.engine.options;
        writer::spawn(
            WriterContext {
                store: self.engine.store.clone(),
                policy: options.policy.clone(),
                removal_confirmations: options.sync.removal_confirmations,
                run_id: self.run_id,
                base: self.base,
                touch_batch: options.touch_batch,
                write_batch: options.write_batch,
                write_batch_bytes: options.write_batch_bytes,
                stop: self.stop.clone(),
            },
            options.sync.concurrency.max(1) * 2,
        )
    }

    /// List mode's sweep, for the cycles that sweep (scheduled and `--once`).
    fn sweeper<'w>(&self, to_writer: &'w mpsc::Sender<ToWriter>) -> Option<Sweep<'w>>
    where
        'e: 'w,
    {
        let engine: &'e Engine = self.engine;
        let mode = engine.options.list.as_ref()?;
        if !matches!(self.kind, CycleKind::Scheduled | CycleKind::Once) {
            return None;
        }
        Some(Sweep {
            client: &engine.client,
            store: &engine.store,
            writer: to_writer,
            mode,
            due_by: match self.scope {
                ClaimScope::DueBy(t) | ClaimScope::Once(t) => t,
                ClaimScope::All | ClaimScope::Refresh => self.cycle_start,
            },
            cycle_start: self.cycle_start,
            base: self.base,
            owner: &engine.options.replica_id,
            lease_ttl: engine.options.lease_ttl,
            stop: self.stop.clone(),
        })
    }

    /// The sweep's leg before the claims: at most its share of the time until the
    /// deadline.
    async fn first_sweep_leg(&mut self, sweeper: Option<&Sweep<'_>>) {
        if let Some(sweeper) = sweeper {
            let until = self.deadline.as_ref().map(|d| {
                let now = Instant::now();
                let share = sweeper.mode.sweep_share.clamp(0.0, 1.0);
                now + d.at.saturating_duration_since(now).mul_f64(share)
            });
            sweeper.leg(until, &mut self.sweep).await;
        }
        if self.sweep.auth_error.is_some() {
            self.stop.cancel();
        }
        self.auth_error = self.sweep.auth_error.clone();
        self.fetch_error = self.sweep.error.clone();
    }

    fn keep_leases(&self) -> LeaseKeeper {
        let done = CancellationToken::new();
        let task = claim::keep_leases(
            self.engine.store.clone(),
            self.owner.clone(),
            self.engine.options.lease_ttl,
            self.base,
            done.clone(),
        );
        LeaseKeeper { done, task }
    }

    /// The progress display follows the schedule's cycles; a request's run beside them.
    async fn begin_progress(&self) -> Option<Running<'e>> {
        let engine: &'e Engine = self.engine;
        match self.kind {
            CycleKind::Refresh => None,
            _ => Some(engine.begin_progress(self.scope, self.base.now()).await),
        }
    }

    /// Claims what is due a batch at a time, fetches it `sync.concurrency` at a time,
    /// and hands every answer to the writer, until nothing more is due or `stop`.
    async fn poll_claimed(&mut self, to_writer: &mpsc::Sender<ToWriter>) {
        let engine: &'e Engine = self.engine;
        let claims = Claims {
            store: engine.store.clone(),
            scope: self.scope,
            cycle_start: self.cycle_start,
            limit: engine.claim_limit(),
            owner: self.owner.clone(),
            lease_ttl: engine.options.lease_ttl,
            base: self.base,
            stop: self.stop.clone(),
            state: self.claims.clone(),
        }
        .stream();
        let claim_stop = self.stop.clone();
        let fetches = claims
            .take_while(move |_| std::future::ready(!claim_stop.is_cancelled()))
            .map(|stored| async move {
                let id = stored.project_id.as_str();
                let result = engine.client.get_editing_project(id).await;
                (stored, result)
            })
            .buffer_unordered(engine.options.sync.concurrency.max(1));
        let mut fetches = std::pin::pin!(fetches);
        // Each item holds a whole project (Timeline included) and its share of the
        // client's in-flight budget until written: fetches wait for the writer.
        while let Some((stored, result)) = fetches.next().await {
            self.polled += 1;
            if self.kind != CycleKind::Refresh {
                engine.progress.polled_one();
            }
            let Some(item) = self.for_writer(stored, result) else {
                continue;
            };
            if to_writer.send(item).await.is_err() {
                break;
            }
        }
    }

    /// What the writer is to do with one fetch, or `None` for an auth failure (which
    /// stops the cycle).
    fn for_writer(
        &mut self,
        stored: Stored,
        result: Result<Fetched<Project>, IceError>,
    ) -> Option<ToWriter> {
        match classify(stored, result, &self.base) {
            Classified::Observed(stored, observation, reserved) => {
                Some(ToWriter::Observed(stored, observation, reserved))
            }
            Classified::Auth(message) => {
                self.fetch_failures += 1;
                if self.auth_error.is_none() {
                    tracing::error!("{message}; stopping this cycle");
                    self.auth_error = Some(message);
                }
                self.stop.cancel();
                None
            }
            Classified::Failed { stored, error } => {
                self.fetch_failures += 1;
                let message = error.to_string();
                tracing::warn!(
                    project_id = %stored.project_id,
                    request_id = error.request_id(),
                    code = error.code(),
                    "polling failed: {message}"
                );
                self.fetch_error.get_or_insert_with(|| message.clone());
                Some(ToWriter::Failed { stored, message })
            }
        }
    }

    /// The claims are done: the rest of the budget goes to the sweep. What this leg
    /// marks due is claimed next cycle (or by a replica still claiming).
    async fn last_sweep_leg(&mut self, sweeper: Option<&Sweep<'_>>) {
        let Some(sweeper) = sweeper else { return };
        if !self.shutdown.is_cancelled() && self.auth_error.is_none() {
            let until = self.deadline.as_ref().map(|d| d.at);
            sweeper.leg(until, &mut self.sweep).await;
        }
        sweeper.report(&self.sweep).await;
        if let Some(e) = self.sweep.auth_error.clone() {
            self.auth_error.get_or_insert(e);
        }
        if self.fetch_error.is_none() {
            self.fetch_error = self.sweep.error.clone();
        }
    }

    /// Stops renewing, and gives back what was claimed but not polled (shutdown,
    /// deadline): it is due again at once.
    async fn release(&mut self, leases: LeaseKeeper) {
        leases.done.cancel();
        let _ = leases.task.await;
        if let Some(deadline) = &self.deadline {
            deadline.timer.abort();
        }
        if let Err(e) = self.engine.store.claims().release_leases(&self.owner).await {
            tracing::warn!("could not release claims: {e:#}");
        }
    }

    /// The job step (`sync::jobs`): after the projects, so the lookups their writes
    /// queued are served in the same cycle.
    async fn produce_jobs(&mut self) {
        let engine = self.engine;
        if engine.options.jobs && self.auth_error.is_none() && !self.shutdown.is_cancelled() {
            let jobs = engine.sync_jobs(self.kind, &self.base, self.shutdown).await;
            tracing::debug!(?jobs, "producing jobs");
            if let Some(e) = jobs.auth_error {
                self.auth_error = Some(e);
            } else if let Some(e) = jobs.first_error {
                tracing::warn!("producing jobs: {} failure(s), first: {e}", jobs.failures);
            }
        } else if !engine.options.jobs {
            // Transitions and callbacks still queue lookups; off, nobody serves them, so
            // they are dropped (no job call is made) rather than left to pile up.
            if let Err(e) = engine.store.jobs().clear_job_requests().await {
                tracing::debug!("could not drop queued producing-job lookups: {e:#}");
            }
        }
    }

    /// Decides how the cycle ended and records it.
    async fn finish(mut self, written: WriterTotals) -> CycleReport {
        let facts = self.facts(&written);
        let ending = outcome(&facts);
        if ending.overran {
            metrics::counter!(metric_names::CYCLE_OVERRUNS).increment(1);
        }
        let report = CycleReport {
            run_id: Some(self.run_id),
            outcome: ending.outcome,
            due: self.claims.claimed.load(Ordering::Relaxed),
            polled: facts.polled,
            changed: written.changed,
            transitions: written.transitions,
            failures: facts.failures,
            fenced: written.fenced,
            removed: written.removed,
            overran: ending.overran,
            duration: self.started.elapsed(),
            list_pages: self.sweep.pages,
            sweeps_completed: self.sweep.completed,
            error: ending.error,
        };
        self.record(report).await
    }

    /// What the end is decided from. The cycle's failure count is defined here, once:
    /// its failed fetches, the sweep's failed pages and the rows the database refused.
    fn facts(&mut self, written: &WriterTotals) -> CycleFacts {
        let claim_error = self
            .claims
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .map(|e| format!("{e:#}"));
        let due = self.claims.claimed.load(Ordering::Relaxed);
        // Work was left: more was due than claimed, or claimed projects were not polled
        // (they were given back and are due at once).
        let left_work = !self.claims.exhausted.load(Ordering::SeqCst) || self.polled < due;
        let stopped_at = self
            .deadline
            .as_ref()
            .filter(|d| d.hit.load(Ordering::SeqCst) && left_work)
            .map(|d| {
                if d.tick {
                    StoppedAt::Tick
                } else {
                    StoppedAt::Timeout
                }
            });
        CycleFacts {
            polled: self.polled,
            failures: self.fetch_failures + self.sweep.failures + written.refused,
            auth_error: self.auth_error.take(),
            unavailable: claim_error.or_else(|| written.unavailable.clone()),
            fetch_error: self.fetch_error.take(),
            write_error: written.first_error.clone(),
            shutdown: self.shutdown.is_cancelled(),
            stopped_at,
            removal_note: written.removal_note.clone(),
        }
    }

    /// Ends the cycle's `sync_runs` row.
    async fn record(self, mut report: CycleReport) -> CycleReport {
        let store = &self.engine.store;
        // Every replica wakes for a request and one claims it: the others' empty runs
        // would only be noise in `sync_runs`.
        if self.kind == CycleKind::Refresh && report.due == 0 && report.error.is_none() {
            if let Some(run_id) = report.run_id.take() {
                if let Err(e) = store.runs().discard_run(run_id).await {
                    tracing::debug!("could not discard the empty sync run {run_id}: {e:#}");
                }
            }
            return report;
        }
        let totals = RunTotals {
            outcome: report.outcome.as_str().to_string(),
            projects_polled: report.polled as i64,
            projects_changed: report.changed as i64,
            transitions: report.transitions as i64,
            failures: report.failures as i64,
            overran: report.overran,
            error: report.error.clone(),
        };
        let (run_id, now) = (self.run_id, self.base.now());
        if let Err(e) = store.runs().finish_run(run_id, now, &totals).await {
            tracing::warn!("could not record the end of sync run {run_id}: {e:#}");
        }
        report
    }
}

/// The report of a cycle that could not start.
fn failed(started: Instant, error: String) -> CycleReport {
    tracing::error!("sync cycle failed: {error}");
    CycleReport {
        outcome: CycleOutcome::Failed,
        error: Some(error),
        duration: started.elapsed(),
        ..Default::default()
    }
}
