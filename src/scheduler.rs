//! When cycles run: once at start-up, then on every tick of `sync.schedule`.
//!
//! At most one cycle runs at a time. A tick that fires while a cycle is still running
//! is skipped and logged, never queued, so a slow API cannot pile cycles up. On
//! shutdown the running cycle stops claiming work and gets `shutdown_timeout` to let
//! its in-flight projects commit.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Schedule;
use crate::sync::engine::{CycleReport, Engine};

/// Observers of the loop (systemd watchdog, metrics, health); all optional.
pub trait SchedulerHooks: Send + Sync {
    /// Called at least every `heartbeat` while the loop is alive.
    fn heartbeat(&self) {}
    fn cycle_finished(&self, _report: &CycleReport) {}
    fn tick_skipped(&self) {}
}

pub struct NoHooks;
impl SchedulerHooks for NoHooks {}

pub struct SchedulerOptions {
    pub schedule: Schedule,
    pub shutdown_timeout: Duration,
    /// How often `heartbeat` is called while idle.
    pub heartbeat: Duration,
}

/// Runs until `shutdown` is cancelled. Returns how many cycles ran.
pub async fn run(
    engine: Arc<Engine>,
    options: SchedulerOptions,
    hooks: Arc<dyn SchedulerHooks>,
    shutdown: CancellationToken,
) -> u64 {
    let mut cycles = 0u64;
    let mut running: Option<JoinHandle<()>> = Some(spawn_cycle(&engine, &hooks, &shutdown));
    cycles += 1;
    loop {
        let Some(next) = options.schedule.cron.upcoming(Utc).next() else {
            tracing::error!("sync.schedule has no future ticks; stopping");
            break;
        };
        let wait = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        let tick = tokio::time::sleep(wait);
        tokio::pin!(tick);
        // Heartbeats while waiting, so a watchdog sees a live loop even with a long period.
        loop {
            hooks.heartbeat();
            tokio::select! {
                _ = &mut tick => break,
                _ = shutdown.cancelled() => {
                    drain(running.take(), options.shutdown_timeout).await;
                    return cycles;
                }
                _ = tokio::time::sleep(options.heartbeat) => {}
            }
        }
        if running.as_ref().is_some_and(|h| !h.is_finished()) {
            tracing::warn!(
                schedule = %options.schedule.expression,
                "the previous cycle is still running; skipping this tick"
            );
            metrics::counter!("ice_sync_ticks_skipped_total").increment(1);
            hooks.tick_skipped();
            continue;
        }
        running = Some(spawn_cycle(&engine, &hooks, &shutdown));
        cycles += 1;
    }
    drain(running.take(), options.shutdown_timeout).await;
    cycles
}

fn spawn_cycle(
    engine: &Arc<Engine>,
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
pub fn log_report(r: &CycleReport) {
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
