//! One cycle: claim due projects -> fetch -> diff -> write -> report.
//!
//! [`Engine::run`] is the unit of work the scheduler calls and tests drive directly.
//! It never raises: every failure ends up in the [`CycleReport`] (and `sync_runs`).
//!
//! Time and order: the cycle anchors a [`TimeBase`] on the deciding clock (PostgreSQL's,
//! or the local one on SQLite) and stamps everything from it; it checks the local clock
//! for steps first. What is due is decided by the claim statement; a scheduled cycle
//! stops claiming a margin before the next tick, so an overrun never swallows a tick.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::contract::{ClaimScope, RunTotals};
use crate::metric_names;

use super::claim::{self, ClaimState, Claims};
use super::engine::{CycleKind, Engine};
use super::list_sweep::{Sweep, SweepTotals};
use super::observe::{classify, Classified};
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
        let started = Instant::now();
        let mut report = CycleReport::default();
        let base = match self.time_base().await {
            Ok(base) => base,
            Err(e) => return failed(report, started, format!("database unavailable: {e:#}")),
        };
        let cycle_start = base.now();
        let owner = self.lease_owner(kind);
        let run_id = match self
            .store
            .runs()
            .begin_run(cycle_start, &self.options.replica_id, kind.trigger())
            .await
        {
            Ok(id) => id,
            Err(e) => return failed(report, started, format!("database unavailable: {e:#}")),
        };
        report.run_id = Some(run_id);
        tracing::Span::current().record("sync_run_id", run_id);
        // Cycles of one engine and kind never overlap: a lease this owner still holds is
        // left from a cycle that could not give it back (the database was down or full),
        // and those projects are due now rather than when the lease runs out.
        if let Err(e) = self.store.claims().release_leases(&owner).await {
            return failed(report, started, format!("database unavailable: {e:#}"));
        }

        let policy = &self.options.policy;
        let scope = match kind {
            CycleKind::Scheduled => ClaimScope::DueBy(policy.claim_cutoff(cycle_start)),
            CycleKind::Once => ClaimScope::Once(cycle_start),
            CycleKind::All => ClaimScope::All,
            CycleKind::Requested => ClaimScope::Requested,
        };

        // `stop` ends claiming: shutdown, the deadline, an auth failure or a dead
        // database. Requests already in flight finish and commit.
        let stop = shutdown.child_token();
        let deadline_hit = Arc::new(AtomicBool::new(false));
        let claim_deadline = self.claim_deadline(kind, &base, cycle_start);
        let deadline_is_tick = claim_deadline.is_some_and(|(_, tick)| tick);
        let deadline = claim_deadline.map(|(at, _)| {
            let (stop, hit) = (stop.clone(), deadline_hit.clone());
            tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                hit.store(true, Ordering::SeqCst);
                stop.cancel();
            })
        });

        let (to_writer, writer) = writer::spawn(
            WriterContext {
                store: self.store.clone(),
                policy: policy.clone(),
                removal_confirmations: self.options.removal_confirmations,
                run_id,
                base,
                touch_batch: self.options.touch_batch,
                write_batch: self.options.write_batch,
                write_batch_bytes: self.options.write_batch_bytes,
                stop: stop.clone(),
            },
            // Each queued item holds a whole project (Timeline included): few items, and
            // their bytes are held against the client's budget until written.
            self.options.concurrency.max(1) * 2,
        );

        // List mode: the sweep first, for at most its share of the budget, so that what
        // it marks due is claimed in this cycle; then the claims, always.
        let sweeper = match (&self.options.list, kind) {
            (Some(mode), CycleKind::Scheduled | CycleKind::Once) => Some(Sweep {
                client: &self.client,
                store: &self.store,
                writer: &to_writer,
                mode,
                due_by: match scope {
                    ClaimScope::DueBy(t) | ClaimScope::Once(t) => t,
                    ClaimScope::All | ClaimScope::Requested => cycle_start,
                },
                cycle_start,
                base,
                owner: &self.options.replica_id,
                lease_ttl: self.options.lease_ttl,
                stop: &stop,
            }),
            _ => None,
        };
        let mut sweep = SweepTotals::default();
        if let Some(sweeper) = &sweeper {
            let until = claim_deadline.map(|(at, _)| {
                let now = Instant::now();
                let share = sweeper.mode.sweep_share.clamp(0.0, 1.0);
                now + at.saturating_duration_since(now).mul_f64(share)
            });
            sweeper.leg(until, &mut sweep).await;
        }
        if sweep.auth_error.is_some() {
            stop.cancel();
        }

        let leases_done = CancellationToken::new();
        let keeper = claim::keep_leases(
            self.store.clone(),
            owner.clone(),
            self.options.lease_ttl,
            base,
            leases_done.clone(),
        );
        // The progress display follows the schedule's cycles; a request's run beside them.
        let _progress = match kind {
            CycleKind::Requested => None,
            _ => Some(self.begin_progress(scope, base.now()).await),
        };
        let claim_state = Arc::new(ClaimState::default());
        let claims = Claims {
            store: self.store.clone(),
            scope,
            cycle_start,
            limit: self.claim_limit(),
            owner: owner.clone(),
            lease_ttl: self.options.lease_ttl,
            base,
            stop: stop.clone(),
            state: claim_state.clone(),
        }
        .stream();
        let claim_stop = stop.clone();
        let fetches = claims
            .take_while(move |_| std::future::ready(!claim_stop.is_cancelled()))
            .map(|stored| async move {
                let result = self
                    .client
                    .get_editing_project(stored.project_id.as_str())
                    .await;
                (stored, result)
            })
            .buffer_unordered(self.options.concurrency.max(1));
        let mut fetches = std::pin::pin!(fetches);

        let mut auth_error = sweep.auth_error.clone();
        let mut fetch_error = sweep.error.clone();
        report.failures += sweep.failures;
        let first_leg_failures = sweep.failures;
        while let Some((stored, result)) = fetches.next().await {
            report.polled += 1;
            if kind != CycleKind::Requested {
                self.progress.polled_one();
            }
            let item = match classify(stored, result, &base) {
                Classified::Observed(stored, observation, reserved) => {
                    ToWriter::Observed(stored, observation, reserved)
                }
                Classified::Auth(message) => {
                    report.failures += 1;
                    if auth_error.is_none() {
                        tracing::error!("{message}; stopping this cycle");
                        auth_error = Some(message);
                    }
                    stop.cancel();
                    continue;
                }
                Classified::Failed { stored, error } => {
                    report.failures += 1;
                    let message = error.to_string();
                    tracing::warn!(
                        project_id = %stored.project_id,
                        request_id = error.request_id(),
                        code = error.code(),
                        "polling failed: {message}"
                    );
                    fetch_error.get_or_insert_with(|| message.clone());
                    ToWriter::Failed { stored, message }
                }
            };
            if to_writer.send(item).await.is_err() {
                break;
            }
        }
        // The claims are done: the rest of the budget goes to the sweep. What this leg
        // marks due is claimed next cycle (or by a replica still claiming).
        if let Some(sweeper) = &sweeper {
            if !shutdown.is_cancelled() && auth_error.is_none() {
                sweeper
                    .leg(claim_deadline.map(|(at, _)| at), &mut sweep)
                    .await;
            }
            sweeper.report(&sweep).await;
            report.list_pages = sweep.pages;
            report.sweeps_completed = sweep.completed;
            if let Some(e) = sweep.auth_error.clone() {
                auth_error.get_or_insert(e);
            }
            if sweep.error.is_some() {
                fetch_error = fetch_error.or(sweep.error.clone());
            }
            report.failures += sweep.failures.saturating_sub(first_leg_failures);
        }
        drop(to_writer);
        let totals = writer.await.unwrap_or_else(|e| WriterTotals {
            unavailable: Some(format!("the writer task failed: {e}")),
            ..Default::default()
        });
        leases_done.cancel();
        let _ = keeper.await;
        if let Some(handle) = deadline {
            handle.abort();
        }
        // What was claimed but not polled (shutdown, deadline) is due again at once.
        if let Err(e) = self.store.claims().release_leases(&owner).await {
            tracing::warn!("could not release claims: {e:#}");
        }
        // The job step (`sync::jobs`): after the projects, so the lookups their writes
        // queued are served in the same cycle.
        if self.options.jobs && auth_error.is_none() && !shutdown.is_cancelled() {
            let jobs = self.sync_jobs(kind, &base, shutdown).await;
            tracing::debug!(?jobs, "producing jobs");
            if let Some(e) = jobs.auth_error {
                auth_error = Some(e);
            } else if let Some(e) = jobs.first_error {
                tracing::warn!("producing jobs: {} failure(s), first: {e}", jobs.failures);
            }
        } else if !self.options.jobs {
            // Transitions and callbacks still queue lookups; off, nobody serves them, so
            // they are dropped (no job call is made) rather than left to pile up.
            if let Err(e) = self.store.jobs().clear_job_requests().await {
                tracing::debug!("could not drop queued producing-job lookups: {e:#}");
            }
        }

        let claim_error = claim_state
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .map(|e| format!("{e:#}"));
        report.due = claim_state.claimed.load(Ordering::Relaxed);
        report.changed = totals.changed;
        report.transitions = totals.transitions;
        report.removed = totals.removed;
        report.stale = totals.fenced;
        report.failures += totals.refused;
        report.duration = started.elapsed();
        // Work was left: more was due than claimed, or claimed projects were not polled
        // (they were given back and are due at once).
        let left_work = !claim_state.exhausted.load(Ordering::SeqCst) || report.polled < report.due;
        let deadline_hit = deadline_hit.load(Ordering::SeqCst) && left_work;
        report.overran = deadline_hit && deadline_is_tick && !shutdown.is_cancelled();
        if report.overran {
            metrics::counter!(metric_names::CYCLE_OVERRUNS).increment(1);
        }
        let unavailable = claim_error.or(totals.unavailable.clone());
        report.outcome = if auth_error.is_some()
            || unavailable.is_some()
            || (report.polled > 0 && report.failures >= report.polled)
        {
            report.error = auth_error
                .or(unavailable.map(|e| format!("database unavailable: {e}")))
                .or(fetch_error.clone())
                .or(totals.first_error.clone());
            CycleOutcome::Failed
        } else if shutdown.is_cancelled() {
            report.error = Some("stopped by shutdown before every due project was polled".into());
            CycleOutcome::Partial
        } else if report.overran {
            report.error = Some(
                "overran: stopped claiming before the next tick with projects still due; \
                 they go first next cycle (raise sync.max_qps or sync.concurrency, or lengthen \
                 sync.schedule)"
                    .into(),
            );
            CycleOutcome::Partial
        } else if deadline_hit {
            report.error =
                Some("sync.cycle_timeout reached before every due project was polled".into());
            CycleOutcome::Partial
        } else if report.failures > 0 {
            report.error = fetch_error.or(totals.first_error.clone());
            CycleOutcome::Partial
        } else {
            CycleOutcome::Success
        };
        if let Some(note) = totals.removal_note {
            report.error = Some(match report.error.take() {
                Some(e) => format!("{e}; {note}"),
                None => note,
            });
        }
        // Every replica wakes for a request and one claims it: the others' empty runs
        // would only be noise in `sync_runs`.
        if kind == CycleKind::Requested && report.due == 0 && report.error.is_none() {
            if let Some(run_id) = report.run_id.take() {
                if let Err(e) = self.store.runs().discard_run(run_id).await {
                    tracing::debug!("could not discard the empty sync run {run_id}: {e:#}");
                }
            }
        } else {
            self.finish(&report, &base).await;
        }
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
            CycleKind::Once | CycleKind::All | CycleKind::Requested => None,
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
        let by_concurrency = (self.options.concurrency * 16).clamp(256, 1000);
        // Replicas share the work: one must not claim far more than it polls in a lease.
        let by_lease = self.options.max_qps.map_or(usize::MAX, |qps| {
            (qps as usize * self.options.lease_ttl.as_secs() as usize / 2).max(1)
        });
        by_concurrency.min(by_lease) as i64
    }

    async fn finish(&self, report: &CycleReport, base: &TimeBase) {
        let Some(run_id) = report.run_id else { return };
        let totals = RunTotals {
            outcome: report.outcome.as_str().to_string(),
            projects_polled: report.polled as i64,
            projects_changed: report.changed as i64,
            transitions: report.transitions as i64,
            failures: report.failures as i64,
            overran: report.overran,
            error: report.error.clone(),
        };
        if let Err(e) = self
            .store
            .runs()
            .finish_run(run_id, base.now(), &totals)
            .await
        {
            tracing::warn!("could not record the end of sync run {run_id}: {e:#}");
        }
    }
}

fn failed(mut report: CycleReport, started: Instant, error: String) -> CycleReport {
    tracing::error!("sync cycle failed: {error}");
    report.outcome = CycleOutcome::Failed;
    report.error = Some(error);
    report.duration = started.elapsed();
    report
}
