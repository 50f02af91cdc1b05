//! Refused connections and requests, counted and logged at a bounded rate: every refusal
//! increments `ice_sync_http_refused_total{listener, reason}`, but the log gets one WARN
//! summary line per [`SUMMARY_EVERY`] at most (the first refusal after a quiet period is
//! logged at once), never a line per request. A flood of forged callbacks or port scans
//! thus costs the journal a line a minute, and journald's rate limit never drops the
//! daemon's own messages because of it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::metric_names::HTTP_REFUSED;

/// The longest a refusal waits to be summarised in the log.
pub(crate) const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// The refusals of one listener.
#[derive(Debug)]
pub(crate) struct Refusals {
    listener: &'static str,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    counts: BTreeMap<&'static str, u64>,
    last_summary: Option<Instant>,
}

impl Refusals {
    /// `listener`: the metric label and the name in the log (`metrics`, `callback`).
    pub(crate) fn new(listener: &'static str) -> Arc<Refusals> {
        Arc::new(Refusals {
            listener,
            state: Mutex::new(State::default()),
        })
    }

    pub(crate) fn listener(&self) -> &'static str {
        self.listener
    }

    /// One refusal; `reason` is a short fixed label (never client input).
    pub(crate) fn record(&self, reason: &'static str) {
        metrics::counter!(HTTP_REFUSED, "listener" => self.listener, "reason" => reason)
            .increment(1);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *state.counts.entry(reason).or_insert(0) += 1;
        let due = state
            .last_summary
            .is_none_or(|at| at.elapsed() >= SUMMARY_EVERY);
        if due {
            self.summarise(&mut state);
        }
    }

    /// Logs what was refused since the last summary, if anything and if one is due.
    pub(crate) fn flush_if_due(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let due = state
            .last_summary
            .is_none_or(|at| at.elapsed() >= SUMMARY_EVERY);
        if due && !state.counts.is_empty() {
            self.summarise(&mut state);
        }
    }

    fn summarise(&self, state: &mut State) {
        let total: u64 = state.counts.values().sum();
        let detail = state
            .counts
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect::<Vec<_>>()
            .join(", ");
        tracing::warn!(
            listener = self.listener,
            refused = total,
            "{} listener refused {total} connection(s) or request(s) ({detail}); at most one \
             such line per {}s, counts in ice_sync_http_refused_total",
            self.listener,
            SUMMARY_EVERY.as_secs()
        );
        state.counts.clear();
        state.last_summary = Some(Instant::now());
    }

    /// Flushes every [`SUMMARY_EVERY`] until `shutdown`.
    pub(crate) fn spawn_flusher(
        self: &Arc<Self>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(SUMMARY_EVERY) => this.flush_if_due(),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_flood_is_one_line_a_minute() {
        let refusals = Refusals::new("test");
        refusals.record("bad_signature");
        assert!(
            refusals.state.lock().unwrap().counts.is_empty(),
            "first one logged at once"
        );
        for _ in 0..10_000 {
            refusals.record("bad_signature");
        }
        refusals.flush_if_due();
        assert_eq!(
            refusals.state.lock().unwrap().counts["bad_signature"],
            10_000
        );
        tokio::time::advance(SUMMARY_EVERY).await;
        refusals.flush_if_due();
        assert!(refusals.state.lock().unwrap().counts.is_empty());
    }
}
