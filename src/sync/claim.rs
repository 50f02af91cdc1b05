//! Claiming a cycle's work: a stream of due projects, claimed a batch at a time as the
//! fetchers need them (most overdue first), and a keeper that renews this replica's
//! leases while fetches are in flight, so a slow, throttled fetch keeps its project.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use tokio_util::sync::CancellationToken;

use crate::contract::{ClaimScope, Stored};
use crate::storage::{ClaimRequest, StorageError, Store};

use super::time_base::TimeBase;

/// What the claim stream saw, read by the cycle when it ends.
#[derive(Debug, Default)]
pub(crate) struct ClaimState {
    pub(crate) claimed: AtomicUsize,
    /// The last claim found nothing more (or less than a full batch) due.
    pub(crate) exhausted: AtomicBool,
    pub(crate) error: Mutex<Option<StorageError>>,
}

pub struct Claims {
    pub(crate) store: Store,
    pub(crate) scope: ClaimScope,
    pub(crate) cycle_start: crate::domain::Timestamp,
    pub(crate) limit: i64,
    pub(crate) owner: String,
    pub(crate) lease_ttl: Duration,
    pub(crate) base: TimeBase,
    pub(crate) stop: CancellationToken,
    pub(crate) state: Arc<ClaimState>,
}

impl Claims {
    /// Claims lazily: the next batch is claimed only when the previous one is used up,
    /// and none after `stop`.
    pub(crate) fn stream(self) -> impl Stream<Item = Stored> {
        use futures::StreamExt;
        let this = Arc::new(self);
        futures::stream::unfold(true, move |more| {
            let this = this.clone();
            async move {
                if !more || this.stop.is_cancelled() {
                    return None;
                }
                // A task of its own, not a future inside this stream: the fetchers poll
                // the stream only while they have room, and a claim left half-read holds
                // its statement open (SQLite: the write lock; PostgreSQL: the claimed
                // rows), so the writer, which the fetchers wait for, could never write.
                let claim = tokio::spawn({
                    let this = this.clone();
                    async move {
                        let request = ClaimRequest {
                            scope: this.scope,
                            cycle_start: this.cycle_start,
                            limit: this.limit,
                            owner: &this.owner,
                            lease_ttl: this.lease_ttl,
                            now: this.base.now(),
                        };
                        this.store.claims().claim(&request).await
                    }
                });
                let claimed = claim.await.unwrap_or_else(|e| {
                    Err(StorageError::Unavailable(format!(
                        "the claim task ended: {e}"
                    )))
                });
                match claimed {
                    Ok(batch) if batch.is_empty() => {
                        this.state.exhausted.store(true, Ordering::SeqCst);
                        None
                    }
                    Ok(batch) => {
                        this.state.claimed.fetch_add(batch.len(), Ordering::Relaxed);
                        let full = batch.len() as i64 >= this.limit;
                        if !full {
                            this.state.exhausted.store(true, Ordering::SeqCst);
                        }
                        Some((futures::stream::iter(batch), full))
                    }
                    Err(e) => {
                        let mut slot = this.state.error.lock().unwrap_or_else(|p| p.into_inner());
                        *slot = Some(e);
                        None
                    }
                }
            }
        })
        .flatten()
    }
}

/// Renews this replica's leases every third of their TTL until `done`.
pub(crate) fn keep_leases(
    store: Store,
    owner: String,
    ttl: Duration,
    base: TimeBase,
    done: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = (ttl / 3).max(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = done.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(e) = store.claims().renew_leases(&owner, ttl, base.now()).await {
                tracing::warn!("could not renew leases: {e:#}");
            }
        }
    })
}
