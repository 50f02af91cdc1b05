//! The daemon's retention pass: shortly after start, then every [`EVERY`], one
//! [`super::prune`] beside the cycles. Each batch is its own short statement, so cycles,
//! requests and callbacks keep writing while a large backlog (the first pass after an
//! upgrade) drains; shutdown stops it between two batches.
//!
//! Every replica sharing a PostgreSQL database runs its own pass: two passes at once delete
//! disjoint or already-deleted rows, so the work is at worst done once and waited on once.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Rule;
use crate::clock::SharedClock;
use crate::storage::Store;

/// How often a daemon prunes.
pub(crate) const EVERY: Duration = Duration::from_secs(3600);
/// The first pass waits this long after start (or [`EVERY`], if shorter): a daemon
/// restarted more often than hourly still prunes, and start-up is not slowed by it.
const FIRST_AFTER: Duration = Duration::from_secs(60);

/// Overrides [`EVERY`] (a duration such as `500ms`, at least 100 ms): for tests, which
/// cannot wait an hour.
pub(crate) const EVERY_ENV: &str = "ICE_SYNC_PRUNE_INTERVAL";

/// [`EVERY`], or what `ICE_SYNC_PRUNE_INTERVAL` says.
pub(crate) fn interval() -> Duration {
    interval_from(std::env::var(EVERY_ENV).ok().as_deref())
}

fn interval_from(value: Option<&str>) -> Duration {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => EVERY,
        Some(v) => match humantime::parse_duration(v) {
            Ok(d) => d.max(Duration::from_millis(100)),
            Err(e) => {
                tracing::warn!("{EVERY_ENV}={v:?} is not a duration ({e}); pruning hourly");
                EVERY
            }
        },
    }
}

/// Starts the periodic pass; it ends when `shutdown` is cancelled.
pub(crate) fn spawn(
    store: Store,
    clock: SharedClock,
    rules: Vec<Rule>,
    every: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut wait = every.min(FIRST_AFTER);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = every;
            pass(&store, &clock, &rules, &shutdown).await;
        }
    })
}

/// One pass, logged. A failure is logged and retried at the next pass: retention is
/// housekeeping, never a reason to stop syncing.
async fn pass(store: &Store, clock: &SharedClock, rules: &[Rule], shutdown: &CancellationToken) {
    let started = tokio::time::Instant::now();
    let result = match super::now(store, clock).await {
        Ok(now) => super::prune(store, rules, now, shutdown).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(pruned) => {
            let rows: u64 = pruned.iter().map(|p| p.rows).sum();
            if rows > 0 {
                let detail = pruned
                    .iter()
                    .filter(|p| p.rows > 0)
                    .map(|p| format!("{} {}", p.rows, p.rule.target.table()))
                    .collect::<Vec<_>>()
                    .join(", ");
                tracing::info!(
                    rows,
                    seconds = started.elapsed().as_secs_f64(),
                    "pruned old bookkeeping rows: {detail}"
                );
            } else {
                tracing::debug!("retention pass: nothing old enough to prune");
            }
        }
        Err(e) => tracing::warn!("retention pass failed (tried again at the next pass): {e:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_knob_has_a_floor_and_a_fallback() {
        assert_eq!(interval_from(None), EVERY);
        assert_eq!(interval_from(Some("2s")), Duration::from_secs(2));
        assert_eq!(interval_from(Some("1ms")), Duration::from_millis(100));
        assert_eq!(interval_from(Some("soon")), EVERY);
    }
}
