//! The deliverer: one task per daemon that drains `webhook_outbox`.
//!
//! A pass claims the next row of up to [`BATCH`] projects (short leases, so replicas
//! sharing a PostgreSQL database never send the same row at once), POSTs them
//! concurrently, and settles each as its answer comes: 2xx deletes the row; anything
//! else, a timeout or a connection error counts an attempt and sets the project's next
//! try [`backoff`] later. Only a project's lowest `seq` is ever claimed, so its
//! transitions arrive in order and a failing project holds up no other.
//!
//! It wakes when the writer commits a transition (the store pokes a `Notify`) and every
//! [`POLL`] otherwise (rows whose backoff ran out, rows another replica queued), and runs
//! the next pass at once while passes deliver something, so a backlog drains at the
//! receiver's pace. On shutdown the pass in flight finishes (each request is bounded by
//! `webhook.timeout`) and the leases left are given back.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderValue, CONTENT_TYPE};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::secret::Webhook;
use super::signature;
use crate::clock::SharedClock;
use crate::domain::Timestamp;
use crate::metric_names::{WEBHOOK_DELIVERIES, WEBHOOK_OLDEST_PENDING, WEBHOOK_PENDING};
use crate::storage::{OutboxClaim, OutboxRow, Store};

/// Projects sent per pass, all at once.
pub(crate) const BATCH: usize = 32;
/// The fallback wake-up.
pub const POLL: Duration = Duration::from_secs(1);
/// The first retry's wait; each further failure doubles it, up to `webhook.max_backoff`.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// A claim lasts one request (`webhook.timeout`) plus this, for the write that settles it.
const LEASE_MARGIN: Duration = Duration::from_secs(15);
/// The pending gauges are read at most this often.
const GAUGE_EVERY: Duration = Duration::from_secs(5);

/// How long a project waits after its next row failed `attempts` times in a row
/// (`attempts` >= 1): 1 s, 2 s, 4 s, ... capped at `max`.
pub fn backoff(attempts: i64, max: Duration) -> Duration {
    let doublings = attempts.saturating_sub(1).clamp(0, 30) as u32;
    FIRST_BACKOFF.saturating_mul(1 << doublings).min(max)
}

/// Everything a deliverer runs with.
pub struct Deliverer {
    store: Store,
    webhook: Webhook,
    client: reqwest::Client,
    /// This replica's id: the lease owner.
    owner: String,
    /// "Now" on SQLite (PostgreSQL uses its own clock for leases and backoff).
    clock: SharedClock,
    wake: Arc<Notify>,
}

/// A running deliverer.
pub struct Running {
    handle: JoinHandle<()>,
}

impl Running {
    /// Waits for the task to finish after its shutdown token was cancelled.
    pub async fn stopped(self) {
        if let Err(e) = self.handle.await {
            tracing::error!("the webhook deliverer ended abnormally: {e}");
        }
    }
}

/// What a pass did.
#[derive(Debug, Default)]
struct Pass {
    delivered: usize,
    /// The shortest backoff set by this pass's failures.
    soonest_retry: Option<Duration>,
}

/// How one attempt went.
enum Outcome {
    Delivered,
    Failed(String),
}

impl Deliverer {
    /// `wake` is what the store pokes after a commit (`Store::feed_signal`); without
    /// one the deliverer polls only.
    pub fn new(
        store: Store,
        webhook: Webhook,
        owner: String,
        clock: SharedClock,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(webhook.timeout)
            // A redirect is not an acknowledgement (and would drop the body): retried.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ice-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow::anyhow!("building the webhook HTTP client: {e}"))?;
        let wake = store.feed_signal().unwrap_or_default();
        Ok(Self {
            store,
            webhook,
            client,
            owner,
            clock,
            wake,
        })
    }

    pub fn spawn(self, shutdown: CancellationToken) -> Running {
        Running {
            handle: tokio::spawn(self.run(shutdown)),
        }
    }

    async fn run(self, shutdown: CancellationToken) {
        tracing::info!(
            host = self.webhook.url.host_str().unwrap_or(""),
            "webhook deliverer started"
        );
        let mut gauges_due = Instant::now();
        let mut paused = false;
        while !shutdown.is_cancelled() {
            let pass = match self.pass().await {
                Ok(pass) => {
                    if std::mem::take(&mut paused) {
                        tracing::info!("webhook deliveries resumed");
                    }
                    pass
                }
                Err(e) => {
                    // Once per outage: the cycles report the database's state too.
                    if !std::mem::replace(&mut paused, true) {
                        tracing::warn!(
                            "webhook deliveries paused: {e:#}; retrying every {}s",
                            POLL.as_secs()
                        );
                    }
                    Pass::default()
                }
            };
            if Instant::now() >= gauges_due {
                self.refresh_gauges().await;
                gauges_due = Instant::now() + GAUGE_EVERY;
            }
            if pass.delivered > 0 {
                continue; // those projects' next rows are due now
            }
            let wait = pass.soonest_retry.map_or(POLL, |d| d.min(POLL));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        if let Err(e) = self.store.outbox().outbox_release(&self.owner).await {
            tracing::warn!("could not give back webhook leases (they expire on their own): {e:#}");
        }
        self.refresh_gauges().await;
        tracing::info!("webhook deliverer stopped");
    }

    /// One claim and its sends.
    async fn pass(&self) -> anyhow::Result<Pass> {
        let claim = OutboxClaim {
            owner: &self.owner,
            lease: self.webhook.timeout + LEASE_MARGIN,
            now: self.now(),
            limit: BATCH,
        };
        let rows = self.store.outbox().outbox_claim(&claim).await?;
        let settled = futures::future::join_all(rows.iter().map(|row| self.deliver(row))).await;
        let mut pass = Pass::default();
        for retry_in in settled {
            match retry_in {
                None => pass.delivered += 1,
                Some(d) => pass.soonest_retry = Some(pass.soonest_retry.map_or(d, |s| s.min(d))),
            }
        }
        Ok(pass)
    }

    /// Sends one row and records the answer: `None` when it was acknowledged, else when
    /// it is tried again.
    #[tracing::instrument(skip_all, fields(project_id = %row.project_id, seq = row.seq))]
    async fn deliver(&self, row: &OutboxRow) -> Option<Duration> {
        let key = format!("{}:{}", row.project_id, row.seq);
        match self.send(row, &key).await {
            Outcome::Delivered => {
                metrics::counter!(WEBHOOK_DELIVERIES, "outcome" => "delivered").increment(1);
                if row.attempts > 0 {
                    tracing::info!(key, failed_before = row.attempts, "webhook delivered");
                }
                if let Err(e) = self
                    .store
                    .outbox()
                    .outbox_delivered(&row.project_id, row.seq)
                    .await
                {
                    // Acknowledged but still queued: it will be sent again, with the
                    // same key (at least once).
                    tracing::warn!("{key} was delivered but could not be marked so: {e:#}");
                }
                None
            }
            Outcome::Failed(error) => {
                metrics::counter!(WEBHOOK_DELIVERIES, "outcome" => "failed").increment(1);
                let attempts = row.attempts + 1;
                let delay = backoff(attempts, self.webhook.max_backoff);
                // A receiver down for a day must not flood the log: the 1st, 2nd, 4th,
                // 8th... failure of a row is a warning, the others are debug lines.
                let message = format!(
                    "webhook delivery of {key} failed ({error}); attempt {attempts}, next in {}: \
                     is webhook.url up and answering 2xx?",
                    humantime::format_duration(delay)
                );
                if (attempts as u64).is_power_of_two() {
                    tracing::warn!("{message}");
                } else {
                    tracing::debug!("{message}");
                }
                let now = self.now();
                if let Err(e) = self
                    .store
                    .outbox()
                    .outbox_retry(row, &self.owner, &error, now, delay)
                    .await
                {
                    tracing::warn!("could not record the failed delivery of {key}: {e:#}");
                }
                Some(delay)
            }
        }
    }

    async fn send(&self, row: &OutboxRow, key: &str) -> Outcome {
        let Ok(idempotency) = HeaderValue::from_str(key) else {
            return Outcome::Failed(format!("{key:?} is not a valid header value"));
        };
        let result = self
            .client
            .post(self.webhook.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("Idempotency-Key", idempotency)
            .header(
                signature::HEADER,
                signature::sign(&self.webhook.key, row.payload.as_bytes()),
            )
            .body(row.payload.clone())
            .send()
            .await;
        match result {
            Ok(response) if response.status().is_success() => Outcome::Delivered,
            Ok(response) => Outcome::Failed(format!("HTTP {}", response.status())),
            Err(e) if e.is_timeout() => Outcome::Failed(format!(
                "no answer within webhook.timeout = {}",
                humantime::format_duration(self.webhook.timeout)
            )),
            // Never the URL: it may carry a token.
            Err(e) => Outcome::Failed(describe(&e.without_url())),
        }
    }

    fn now(&self) -> Timestamp {
        Timestamp::from(self.clock.now())
    }

    async fn refresh_gauges(&self) {
        let stats = match self.store.outbox().outbox_stats().await {
            Ok(stats) => stats,
            Err(e) => {
                tracing::debug!("webhook gauges not refreshed: {e:#}");
                return;
            }
        };
        metrics::gauge!(WEBHOOK_PENDING).set(stats.pending as f64);
        let age = match stats.oldest {
            None => 0.0,
            Some(oldest) => {
                // The clock that stamped `observed_at`: the database's on PostgreSQL.
                let now = match self.store.database_now().await {
                    Ok(Some(now)) => now,
                    _ => self.now(),
                };
                let ms = (now.as_datetime() - oldest.as_datetime()).num_milliseconds();
                (ms as f64 / 1000.0).max(0.0)
            }
        };
        metrics::gauge!(WEBHOOK_OLDEST_PENDING).set(age);
    }
}

/// A transport error with its causes, on one line.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_the_cap() {
        let max = Duration::from_secs(300);
        let waits: Vec<u64> = (1..=11).map(|n| backoff(n, max).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(i64::MAX, max), max);
        assert_eq!(backoff(0, max), FIRST_BACKOFF);
        assert_eq!(
            backoff(3, Duration::from_millis(200)),
            Duration::from_millis(200)
        );
    }
}
