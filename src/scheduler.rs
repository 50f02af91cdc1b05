//! When cycles run: once at start-up, then on every tick of `sync.schedule`.
//!
//! At most one cycle runs at a time. A cycle stops claiming a margin before the next
//! tick, so normally it has finished when the tick fires; if its last in-flight
//! requests are still finishing, the tick's cycle starts as soon as they have (logged,
//! counted in `ice_sync_ticks_skipped_total` only if a whole tick passes meanwhile).
//! Ticks never pile up: at most one is pending.
//!
//! The wall clock only decides when to ask; waits are measured on the monotonic clock
//! and recomputed at every heartbeat, so a clock that steps (either way) neither stops
//! the loop nor makes it sleep through ticks. On shutdown the running cycle stops
//! claiming work and gets `shutdown_timeout` to let its in-flight projects commit.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::Schedule;
use crate::metric_names;
use crate::sync::{CycleReport, Engine};

/// What the scheduler runs on each tick: the engine, or a stand-in in tests.
pub trait Cycles: Send + Sync + 'static {
    /// The wall clock ticks are read from.
    fn clock(&self) -> &SharedClock;
    /// One scheduled cycle.
    fn run_cycle(
        &self,
        shutdown: &CancellationToken,
    ) -> impl std::future::Future<Output = CycleReport> + Send;
}

impl Cycles for Engine {
    fn clock(&self) -> &SharedClock {
        Engine::clock(self)
    }
    async fn run_cycle(&self, shutdown: &CancellationToken) -> CycleReport {
        Engine::run_cycle(self, shutdown).await
    }
}

/// Observers of the loop (systemd watchdog, metrics, health); all optional.
pub trait SchedulerHooks: Send + Sync {
    /// Called at least every `heartbeat` while the loop is alive.
    fn heartbeat(&self) {}
    fn cycle_finished(&self, _report: &CycleReport) {}
    /// A refresh cycle (poll requests, beside the schedule) finished.
    fn refresh_cycle_finished(&self, _report: &CycleReport) {}
    fn tick_skipped(&self) {}
    /// A reloaded configuration changed `sync.schedule`.
    fn schedule_changed(&self, _schedule: &Schedule) {}
}

pub struct NoHooks;
impl SchedulerHooks for NoHooks {}

pub struct SchedulerOptions {
    pub schedule: Schedule,
    pub shutdown_timeout: Duration,
    /// How often `heartbeat` is called while idle.
    pub heartbeat: Duration,
}

/// What the scheduler runs and when; a reload replaces both (see [`run_reloadable`]).
pub(crate) struct Current<E> {
    pub(crate) engine: Arc<E>,
    pub(crate) schedule: Schedule,
}

impl<E> Clone for Current<E> {
    fn clone(&self) -> Self {
        Self {
            engine: self.engine.clone(),
            schedule: self.schedule.clone(),
        }
    }
}

/// Runs until `shutdown` is cancelled. Returns how many cycles ran.
pub async fn run<E: Cycles>(
    engine: Arc<E>,
    options: SchedulerOptions,
    hooks: Arc<dyn SchedulerHooks>,
    shutdown: CancellationToken,
) -> u64 {
    let (_keep, updates) = tokio::sync::watch::channel(Current {
        engine,
        schedule: options.schedule.clone(),
    });
    run_reloadable(updates, options, hooks, shutdown).await
}

/// [`run`], taking each cycle's engine and schedule from `updates`: a reloaded
/// configuration takes effect at the next tick, and a new schedule at once (the wait for
/// the next tick is recomputed). A cycle already running finishes on the old engine.
pub(crate) async fn run_reloadable<E: Cycles>(
    mut updates: tokio::sync::watch::Receiver<Current<E>>,
    options: SchedulerOptions,
    hooks: Arc<dyn SchedulerHooks>,
    shutdown: CancellationToken,
) -> u64 {
    let current = updates.borrow_and_update().clone();
    let mut watch = Updates {
        current,
        updates,
        open: true,
    };
    let mut cycles = 0u64;
    let mut running: Option<JoinHandle<()>> =
        Some(spawn_cycle(&watch.current.engine, &hooks, &shutdown));
    cycles += 1;
    loop {
        let clock: SharedClock = watch.current.engine.clock().clone();
        let schedule = watch.current.schedule.clone();
        let Some(next) = schedule.cron.after(&clock.now()).next() else {
            tracing::error!("sync.schedule has no future ticks; stopping");
            break;
        };
        match wait_for_tick(&mut watch, next, &options, hooks.as_ref(), &shutdown).await {
            Waited::Tick => {}
            Waited::Reloaded => continue,
            Waited::Shutdown => {
                drain(running.take(), options.shutdown_timeout).await;
                return cycles;
            }
        }
        if let Some(handle) = running.take() {
            let tick = Tick {
                schedule: &schedule,
                clock: &clock,
                at: next,
            };
            if !finish_previous(handle, tick, hooks.as_ref(), &shutdown, &options).await {
                return cycles;
            }
        }
        if shutdown.is_cancelled() {
            break;
        }
        running = Some(spawn_cycle(&watch.current.engine, &hooks, &shutdown));
        cycles += 1;
    }
    drain(running.take(), options.shutdown_timeout).await;
    cycles
}

/// The engine and schedule in force, and where reloads come from.
struct Updates<E> {
    current: Current<E>,
    updates: tokio::sync::watch::Receiver<Current<E>>,
    /// False once the sender is gone: no reload will come.
    open: bool,
}

/// How a wait for the next tick ended.
enum Waited {
    Tick,
    /// A reload replaced the engine or schedule: plan the next tick again.
    Reloaded,
    Shutdown,
}

/// Waits until `next` (or a sooner tick after the clock stepped back), with heartbeats,
/// a reload or shutdown ending it early.
async fn wait_for_tick<E>(
    watch: &mut Updates<E>,
    mut next: chrono::DateTime<chrono::Utc>,
    options: &SchedulerOptions,
    hooks: &dyn SchedulerHooks,
    shutdown: &CancellationToken,
) -> Waited
where
    E: Cycles,
{
    let clock: SharedClock = watch.current.engine.clock().clone();
    let schedule = watch.current.schedule.clone();
    // Heartbeats while waiting, so a watchdog sees a live loop even with a long
    // period; the wait is recomputed each time, so a clock step cannot stretch it.
    loop {
        hooks.heartbeat();
        // After a step back, the next tick on the new clock is sooner than the one
        // planned on the old clock: take it.
        if let Some(sooner) = schedule.cron.after(&clock.now()).next() {
            next = next.min(sooner);
        }
        let wait = (next - clock.now()).to_std().unwrap_or(Duration::ZERO);
        if wait.is_zero() {
            return Waited::Tick;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait.min(options.heartbeat)) => {}
            changed = watch.updates.changed(), if watch.open => {
                if changed.is_err() {
                    watch.open = false;
                    continue;
                }
                watch.current = watch.updates.borrow_and_update().clone();
                if watch.current.schedule != schedule {
                    hooks.schedule_changed(&watch.current.schedule);
                }
                return Waited::Reloaded;
            }
            _ = shutdown.cancelled() => return Waited::Shutdown,
        }
    }
}

/// The tick a cycle is about to start for.
struct Tick<'a> {
    schedule: &'a Schedule,
    clock: &'a SharedClock,
    at: chrono::DateTime<chrono::Utc>,
}

/// Lets the previous cycle finish its last requests before the tick's cycle starts.
/// False when shutdown came meanwhile (the cycle was drained).
async fn finish_previous(
    mut handle: JoinHandle<()>,
    tick: Tick<'_>,
    hooks: &dyn SchedulerHooks,
    shutdown: &CancellationToken,
    options: &SchedulerOptions,
) -> bool {
    if handle.is_finished() {
        return true;
    }
    tracing::info!(
        schedule = %tick.schedule.expression,
        "the previous cycle is finishing its last requests; this tick's cycle starts when it is done"
    );
    let finished = tokio::select! {
        _ = &mut handle => true,
        _ = shutdown.cancelled() => false,
    };
    if !finished {
        drain(Some(handle), options.shutdown_timeout).await;
        return false;
    }
    // A whole period went by while waiting: that tick is lost, say so.
    if tick
        .schedule
        .cron
        .after(&tick.at)
        .next()
        .is_some_and(|t| t <= tick.clock.now())
    {
        tracing::warn!("a cycle ran past a whole tick; that tick was skipped");
        metrics::counter!(metric_names::TICKS_SKIPPED).increment(1);
        hooks.tick_skipped();
    }
    true
}

fn spawn_cycle<E: Cycles>(
    engine: &Arc<E>,
    hooks: &Arc<dyn SchedulerHooks>,
    shutdown: &CancellationToken,
) -> JoinHandle<()> {
    let engine = engine.clone();
    let hooks = hooks.clone();
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        let report = engine.run_cycle(&shutdown).await;
        log_report(&report);
        hooks.cycle_finished(&report);
    })
}

async fn drain(running: Option<JoinHandle<()>>, timeout: Duration) {
    let Some(handle) = running else { return };
    if handle.is_finished() {
        return;
    }
    tracing::info!("waiting up to {timeout:?} for in-flight projects to commit");
    let abort = handle.abort_handle();
    if tokio::time::timeout(timeout, handle).await.is_err() {
        // Dropping the task rolls back any open transaction: nothing half-written.
        abort.abort();
        tracing::warn!("sync.shutdown_timeout reached; abandoned the remaining in-flight requests");
    }
}

/// The one summary line per cycle.
pub(crate) fn log_report(r: &CycleReport) {
    let secs = r.duration.as_secs_f64();
    match &r.error {
        None => tracing::info!(
            sync_run_id = r.run_id,
            outcome = r.outcome.as_str(),
            due = r.due,
            polled = r.polled,
            changed = r.changed,
            transitions = r.transitions,
            failures = r.failures,
            duration_s = secs,
            "sync cycle finished"
        ),
        Some(error) => tracing::warn!(
            sync_run_id = r.run_id,
            outcome = r.outcome.as_str(),
            due = r.due,
            polled = r.polled,
            changed = r.changed,
            transitions = r.transitions,
            failures = r.failures,
            duration_s = secs,
            error = %error,
            "sync cycle finished"
        ),
    }
}
