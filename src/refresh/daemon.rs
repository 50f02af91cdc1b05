//! The daemon's side of a refresh: waits on the store's refresh signal and runs a
//! [`CycleKind::Refresh`] cycle whenever a queued project can be claimed, beside the
//! scheduled cycles (see `storage::refresh_queue` for the queue itself).
//!
//! A refresh cycle is an ordinary cycle — claimed, leased, fenced, recorded in
//! `sync_runs` with `trigger = 'request'` — so a request costs one poll through the same
//! fetch -> diff -> write path as any other. The engine is taken afresh before each look at
//! the queue, so a reloaded configuration applies to the next refresh cycle.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metric_names;
use crate::sync::{CycleKind, CycleOutcome, CycleReport, Engine};

/// Longest wait between two looks at the queue when nothing is pending: what a lost
/// notification (PostgreSQL) can cost at most.
pub(crate) const IDLE_RECHECK: Duration = Duration::from_secs(5);
/// How soon to look again while a requested project is held by another claim (a
/// scheduled poll in flight): its lease ends without a notification.
pub(crate) const HELD_RECHECK: Duration = Duration::from_millis(250);
/// After a failed refresh cycle (the database or the API refused), the next one waits
/// at least this long, doubling up to [`IDLE_RECHECK`]: a failing ICE is not hammered.
const FAILURE_BACKOFF: Duration = Duration::from_millis(500);

/// Serves poll requests until `shutdown`; returns how many refresh cycles ran.
/// `current` gives the engine to use (the latest after a reload); `finished` hears of
/// every refresh cycle.
pub async fn serve_refreshes(
    current: impl Fn() -> Arc<Engine>,
    finished: impl Fn(&CycleReport),
    shutdown: CancellationToken,
) -> u64 {
    let first = current();
    let mut signal = first
        .store()
        .refresh_queue()
        .refresh_signal(first.clock().clone())
        .await;
    drop(first);
    let mut cycles = 0u64;
    let mut backoff = Duration::ZERO;
    let mut failing = false;
    while !shutdown.is_cancelled() {
        let engine = current();
        let now = engine.clock().now().into();
        let wait = match engine.store().refresh_queue().pending_refreshes(now).await {
            Ok(pending) if pending.claimable => {
                if let Some(waited) = pending.oldest {
                    metrics::histogram!(metric_names::POLL_REQUEST_WAIT)
                        .record(waited.as_secs_f64());
                }
                if std::mem::take(&mut failing) {
                    tracing::info!("poll requests can be read again");
                }
                if !backoff.is_zero() {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                }
                let report = engine.run(CycleKind::Refresh, &shutdown).await;
                cycles += 1;
                backoff = match report.outcome {
                    CycleOutcome::Failed => (backoff * 2).clamp(FAILURE_BACKOFF, IDLE_RECHECK),
                    CycleOutcome::Success | CycleOutcome::Partial => Duration::ZERO,
                };
                finished(&report);
                continue;
            }
            Ok(pending) if pending.waiting => HELD_RECHECK,
            Ok(_) => IDLE_RECHECK,
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!("cannot read poll requests: {e:#}; trying again");
                }
                Duration::from_secs(1)
            }
        };
        drop(engine);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = signal.wait(wait) => {}
        }
    }
    cycles
}
