//! [`RefreshSignal`]: what wakes a daemon's refresh cycles when a refresh may be
//! pending. On PostgreSQL a connection of its own `LISTEN`s on [`NOTIFY_CHANNEL`], which
//! every refresh's transaction notifies at commit; on SQLite (one daemon per file), and
//! behind a transaction pooler without `database.direct_url` where nothing can listen,
//! it looks at the queue's partial index every so often instead.

use std::time::Duration;

use super::backend::{Dialect, SqlStore};
use super::error::StorageError;
use super::refresh_queue::NOTIFY_CHANNEL;
use crate::clock::SharedClock;

/// How often a SQLite daemon looks at the queue while waiting.
const SQLITE_POLL: Duration = Duration::from_millis(250);
/// The same look behind a transaction pooler without a direct URL: each is a round trip
/// through the pooler, so less often; a request waits at most this much longer.
const POOLED_POLL: Duration = Duration::from_secs(1);

/// Wakes a daemon when a poll request may be pending (see the module doc).
pub struct RefreshSignal {
    inner: Signal,
}

enum Signal {
    Sqlite {
        store: SqlStore<sqlx::Sqlite>,
        clock: SharedClock,
    },
    /// Behind a transaction pooler with no direct URL: the queue is polled as on SQLite.
    PostgresPolling {
        store: SqlStore<sqlx::Postgres>,
        clock: SharedClock,
    },
    Postgres {
        /// A pool of one of its own, so the listener's connection never takes one the
        /// cycles need, and closing the store does not wait for it.
        pool: sqlx::PgPool,
        listener: Option<sqlx::postgres::PgListener>,
        /// The last failure to listen was logged: say it once, not every retry.
        failing: bool,
    },
}

impl RefreshSignal {
    pub(crate) async fn sqlite(store: SqlStore<sqlx::Sqlite>, clock: SharedClock) -> Self {
        RefreshSignal {
            inner: Signal::Sqlite { store, clock },
        }
    }

    pub(crate) fn postgres_polling(store: SqlStore<sqlx::Postgres>, clock: SharedClock) -> Self {
        RefreshSignal {
            inner: Signal::PostgresPolling { store, clock },
        }
    }

    pub(crate) async fn postgres(options: sqlx::postgres::PgConnectOptions) -> Self {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options);
        let mut signal = RefreshSignal {
            inner: Signal::Postgres {
                pool,
                listener: None,
                failing: false,
            },
        };
        // Listen before the caller first looks at the queue, so nothing committed after
        // that look goes unnoticed.
        signal.listen().await;
        signal
    }

    /// Returns when a request may be pending, and at the latest after `max`: the caller
    /// then looks at the queue, so a lost notification costs at most `max`.
    pub(crate) async fn wait(&mut self, max: Duration) {
        let deadline = tokio::time::Instant::now() + max;
        match &mut self.inner {
            Signal::Sqlite { store, clock } => loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() {
                    return;
                }
                // A request of this process (a callback, POST /refresh) wakes it at once;
                // one of another process (`ice-sync refresh`) is seen at the next look.
                tokio::select! {
                    _ = store.requests.notified() => {}
                    _ = tokio::time::sleep(left.min(SQLITE_POLL)) => {}
                }
                match store.pending_refreshes(clock.now().into()).await {
                    Ok(pending) if pending.claimable => return,
                    Ok(_) => {}
                    // The caller's own look at the queue reports it.
                    Err(_) => return,
                }
            },
            Signal::PostgresPolling { store, clock } => loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() {
                    return;
                }
                tokio::select! {
                    _ = store.requests.notified() => {}
                    _ = tokio::time::sleep(left.min(POOLED_POLL)) => {}
                }
                match store.pending_refreshes(clock.now().into()).await {
                    Ok(pending) if pending.claimable => return,
                    Ok(_) => {}
                    Err(_) => return,
                }
            },
            Signal::Postgres { listener, .. } => {
                let Some(l) = listener.as_mut() else {
                    if !self.listen().await {
                        tokio::time::sleep_until(
                            deadline.min(tokio::time::Instant::now() + Duration::from_secs(1)),
                        )
                        .await;
                    }
                    // Freshly listening: whatever came before is for the caller's look.
                    return;
                };
                match tokio::time::timeout_at(deadline, l.try_recv()).await {
                    Ok(Ok(Some(_))) => {
                        // Many requests, one look: drain what else has arrived.
                        while l.next_buffered().is_some() {}
                    }
                    // The connection was lost (and is being re-established): notifications
                    // in between are lost, and the caller's look finds their requests.
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(
                            "lost the LISTEN connection for poll requests ({e}); reconnecting"
                        );
                        *listener = None;
                    }
                    Err(_) => {}
                }
            }
        }
    }

    /// (Re)connects the PostgreSQL listener; `true` when it listens.
    async fn listen(&mut self) -> bool {
        let Signal::Postgres {
            pool,
            listener,
            failing,
        } = &mut self.inner
        else {
            return true;
        };
        let connected = async {
            let mut l = sqlx::postgres::PgListener::connect_with(pool).await?;
            l.listen(NOTIFY_CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        }
        .await;
        match connected {
            Ok(l) => {
                *listener = Some(l);
                if std::mem::take(failing) {
                    tracing::info!("listening for poll requests again");
                }
                true
            }
            Err(e) => {
                if !std::mem::replace(failing, true) {
                    tracing::warn!(
                        "cannot LISTEN {NOTIFY_CHANNEL} ({}); poll requests are picked up by \
                         looking at the queue until the database answers again",
                        StorageError::from(e)
                    );
                }
                false
            }
        }
    }
}

impl std::fmt::Debug for RefreshSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.inner {
            Signal::Sqlite { .. } => sqlx::Sqlite::NAME,
            Signal::Postgres { .. } | Signal::PostgresPolling { .. } => sqlx::Postgres::NAME,
        };
        f.debug_struct("RefreshSignal")
            .field("backend", &kind)
            .finish()
    }
}
