//! One budget for the project bytes in flight across every fetch of a client (and its
//! clones): a body is read only once its size is reserved here, and the reservation
//! ([`Reserved`]) travels with what the body becomes — the parsed project, the writer's
//! queue, its batch — until that project's write has committed. So the projects a process
//! holds at once are bounded by [`RESPONSE_BYTES`] of answers whatever
//! `sync.concurrency` is, not by concurrency x `ice.max_response_bytes`: a fetch waits
//! here while the writer still holds the budget, which is the back-pressure.
//!
//! An answer that declares its Content-Length reserves that; one that does not (chunked)
//! reserves `ice.max_response_bytes`, since it may grow that far: reserving whole sizes
//! up front means no fetch ever waits while holding part of the budget, so fetches
//! cannot deadlock on it. An answer larger than the whole budget still passes, alone.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The answer bytes all fetches, parsed projects and pending writes may hold at once.
pub(crate) const RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// A share of the budget, given back when dropped. Empty for answers that are parsed
/// and dropped at once (lists, jobs): only a project's share outlives its answer.
#[derive(Debug, Default)]
pub(crate) struct Reserved(Option<OwnedSemaphorePermit>);

impl Reserved {
    /// The bytes held (0 when empty).
    pub(crate) fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |p| p.num_permits())
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        let bytes = self.bytes();
        if bytes > 0 {
            metrics::gauge!(crate::metric_names::RESPONSE_BUDGET_HELD).decrement(bytes as f64);
        }
    }
}

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
    pub(crate) async fn reserve(&self, bytes: usize) -> Reserved {
        let permits = bytes.clamp(1, RESPONSE_BYTES) as u32;
        let started = tokio::time::Instant::now();
        let permit = self.0.clone().acquire_many_owned(permits).await.ok();
        let waited = started.elapsed();
        if !waited.is_zero() {
            metrics::histogram!(crate::metric_names::RESPONSE_BUDGET_WAIT)
                .record(waited.as_secs_f64());
        }
        let reserved = Reserved(permit);
        metrics::gauge!(crate::metric_names::RESPONSE_BUDGET_HELD)
            .increment(reserved.bytes() as f64);
        reserved
    }

    /// The bytes reserved right now.
    #[cfg(test)]
    pub(crate) fn in_use(&self) -> usize {
        RESPONSE_BYTES - self.0.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_never_exceed_the_budget() {
        let budget = ResponseBudget::default();
        let a = budget.reserve(30 << 20).await;
        // A second 30 MiB answer waits for the first to be parsed.
        let second = budget.clone();
        let waiting = tokio::spawn(async move { second.reserve(30 << 20).await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        assert_eq!(a.bytes(), 30 << 20);
        drop(a);
        let b = waiting.await.expect("join");
        assert_eq!(b.bytes(), 30 << 20);
        drop(b);
        // Larger than the whole budget: passes, alone.
        assert_eq!(budget.reserve(usize::MAX).await.bytes(), RESPONSE_BYTES);
        assert_eq!(budget.in_use(), 0);
    }
}
