//! Retention: which bookkeeping rows are old enough to go ([`rules`], from `[retention]`
//! and `webhook.max_pending_age`), and deleting them in small batches ([`prune`]) or
//! counting them ([`count`]). Ages are measured from the database's clock where it
//! decides (PostgreSQL), else from the injected clock, like every other time decision.
//!
//! [`daemon`] runs a pass hourly beside the cycles; [`command`] is `ice-sync prune
//! [--dry-run]`. History (`editing_project_history`) and current rows
//! (`editing_projects`, `tracked_projects`, `media_producing_jobs`) are never pruned:
//! storage offers no target for them.

pub(crate) mod command;
pub(crate) mod daemon;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::domain::Timestamp;
use crate::metric_names::{PRUNED_ROWS, WEBHOOK_DROPPED};
use crate::storage::{PruneTarget, StorageError, Store};

/// One table's retention: rows older than `keep` go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub target: PruneTarget,
    /// The config key that sets `keep`, for what is printed.
    pub(crate) key: &'static str,
    pub(crate) keep: Duration,
}

/// What a pass removed (or, dry, would remove) from one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub rule: Rule,
    /// Rows older than this went.
    pub(crate) before: Timestamp,
    pub rows: u64,
}

/// Rows per delete statement: a few milliseconds of work each, so a prune never holds
/// SQLite's write lock, or a PostgreSQL transaction, long enough to delay a cycle.
pub const BATCH: u32 = 1000;
/// The pause between two batches: SQLite's busy handler retries a waiting writer on a
/// timer, and a prune that took the lock straight back could starve it.
pub const PAUSE: Duration = Duration::from_millis(10);

/// The rules the settings describe, in the order a pass applies them.
pub fn rules(settings: &Settings) -> Vec<Rule> {
    let r = &settings.retention;
    vec![
        Rule {
            target: PruneTarget::SyncRuns,
            key: "retention.sync_runs",
            keep: r.sync_runs,
        },
        Rule {
            target: PruneTarget::ListSweeps,
            key: "retention.list_sweeps",
            keep: r.list_sweeps,
        },
        Rule {
            target: PruneTarget::CallbackEvents,
            key: "retention.callback_events",
            keep: r.callback_events,
        },
        Rule {
            target: PruneTarget::WebhookOutbox,
            key: "webhook.max_pending_age",
            keep: settings.webhook.max_pending_age,
        },
    ]
}

/// "Now" for ages: the database server's clock where it decides, else `clock`'s.
pub async fn now(store: &Store, clock: &SharedClock) -> Result<Timestamp, StorageError> {
    Ok(match store.database_now().await? {
        Some(now) => now,
        None => Timestamp::from(clock.now()),
    })
}

/// A retention as written in the config: whole days as `90d`, else humantime's form.
pub(crate) fn show(keep: Duration) -> String {
    const DAY: u64 = 24 * 3600;
    if keep.as_secs().is_multiple_of(DAY) && keep.subsec_nanos() == 0 {
        format!("{}d", keep.as_secs() / DAY)
    } else {
        humantime::format_duration(keep).to_string()
    }
}

fn cutoff(now: Timestamp, keep: Duration) -> Timestamp {
    // Ranges are checked at load (at most ten years), so the fallback is never used; it is
    // the longest retention, not "everything", should it ever be.
    let keep = chrono::Duration::from_std(keep).unwrap_or_else(|_| chrono::Duration::days(3650));
    now.shifted(-keep)
}

/// How many rows each rule would delete at `now` (nothing is deleted).
pub(crate) async fn count(
    store: &Store,
    rules: &[Rule],
    now: Timestamp,
) -> Result<Vec<Pruned>, StorageError> {
    let mut out = Vec::with_capacity(rules.len());
    for rule in rules {
        let before = cutoff(now, rule.keep);
        let rows = store
            .retention()
            .count_prunable(rule.target, before)
            .await?;
        out.push(Pruned {
            rule: *rule,
            before,
            rows,
        });
    }
    Ok(out)
}

/// Deletes what each rule says, [`BATCH`] rows at a time with a [`PAUSE`] between
/// statements, until a batch comes back short or `stop` is cancelled. Counts every row in
/// `ice_sync_pruned_rows_total{table}`, and dropped webhook rows also in
/// `ice_sync_webhook_dropped_total` (with a warning: a receiver missed them).
pub async fn prune(
    store: &Store,
    rules: &[Rule],
    now: Timestamp,
    stop: &CancellationToken,
) -> Result<Vec<Pruned>, StorageError> {
    let mut out = Vec::with_capacity(rules.len());
    for rule in rules {
        let before = cutoff(now, rule.keep);
        let mut rows = 0;
        // Each batch starts at the newest row the previous one deleted.
        let mut from = Timestamp::NEVER;
        while !stop.is_cancelled() {
            let (deleted, newest) = store
                .retention()
                .prune_batch(rule.target, before, from, BATCH)
                .await?;
            from = newest.unwrap_or(from);
            rows += deleted;
            metrics::counter!(PRUNED_ROWS, "table" => rule.target.table()).increment(deleted);
            if deleted < u64::from(BATCH) {
                break;
            }
            tokio::time::sleep(PAUSE).await;
        }
        if rule.target == PruneTarget::WebhookOutbox && rows > 0 {
            metrics::counter!(WEBHOOK_DROPPED).increment(rows);
            tracing::warn!(
                dropped = rows,
                "dropped webhook deliveries still unacknowledged after webhook.max_pending_age; \
                 their transitions stay in editing_project_history (a receiver can read them \
                 there by project_id and seq)"
            );
        }
        out.push(Pruned {
            rule: *rule,
            before,
            rows,
        });
    }
    Ok(out)
}
