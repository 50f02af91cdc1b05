//! One budget for the response bytes in flight across every fetch of a client (and its
//! clones): a body is read only once its size is reserved here, and the reservation is
//! held until the body is parsed, so peak memory for answers is bounded by
//! [`RESPONSE_BYTES`] whatever `sync.concurrency` is, not by concurrency x
//! `ice.max_response_bytes`. (The writer queue has its own, `sync::writer::QUEUE_BYTES`.)
//!
//! An answer that declares its Content-Length reserves that; one that does not (chunked)
//! reserves `ice.max_response_bytes`, since it may grow that far: reserving whole sizes
//! up front means no fetch ever waits while holding part of the budget, so fetches
//! cannot deadlock on it. An answer larger than the whole budget still passes, alone.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The response bytes all fetches may hold at once.
pub const RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// Shared by a client and its clones.
#[derive(Clone, Debug)]
pub(crate) struct ResponseBudget(Arc<Semaphore>);

impl Default for ResponseBudget {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(RESPONSE_BYTES)))
    }
}

impl ResponseBudget {
    /// Waits until `bytes` (at most the whole budget) are free, and holds them.
    pub(crate) async fn reserve(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let permits = bytes.clamp(1, RESPONSE_BYTES) as u32;
        let started = tokio::time::Instant::now();
        let permit = self.0.clone().acquire_many_owned(permits).await.ok();
        let waited = started.elapsed();
        if !waited.is_zero() {
            metrics::histogram!(crate::metric_names::RESPONSE_BUDGET_WAIT)
                .record(waited.as_secs_f64());
        }
        permit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_never_exceed_the_budget() {
        let budget = ResponseBudget::default();
        let a = budget.reserve(30 << 20).await.expect("first");
        // A second 30 MiB answer waits for the first to be parsed.
        let second = budget.clone();
        let waiting = tokio::spawn(async move { second.reserve(30 << 20).await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        drop(a);
        assert!(waiting.await.expect("join").is_some());
        // Larger than the whole budget: passes, alone.
        assert!(budget.reserve(usize::MAX).await.is_some());
    }
}
