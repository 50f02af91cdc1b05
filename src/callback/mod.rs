//! ICE event callbacks: ICE POSTs an event when a producing job finishes
//! (`SetEventCallback`, `ProduceMediaComplete`); a valid one queues an immediate poll of
//! the project it names, so its new status is known in about a second instead of at the
//! next tick. Polling stays the source of truth: a callback is a hint and never writes a
//! project or its history.
//!
//! * [`signature`]: the `X-ICE-SIGNATURE` digest and its constant-time check (pure);
//! * [`envelope`]: the event envelope and `ProduceMediaComplete`'s body (pure);
//! * [`keys`]: the accepted AuthKeys, from config, a key file and a systemd credential;
//! * [`receiver`]: one request from headers to [`receiver::Outcome`]: authenticate, parse, then
//!   dedupe, track and queue in one transaction (`storage::callbacks`);
//! * [`server`]: the listener on `callback.listen`, its metric and log lines.
//!
//! What a queued poll becomes is the request queue's business (`tracked_projects.
//! requested_at`, claimed by a refresh cycle on whichever replica gets there first).

pub mod bounds;
pub(crate) mod envelope;
pub(crate) mod keys;
pub(crate) mod receiver;
pub(crate) mod server;
pub mod signature;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(crate) use keys::KeyRing;
pub(crate) use receiver::Receiver;

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::storage::Store;

/// The endpoint, bound and configured but not serving yet: [`Bound::serve`] starts it.
/// Binding and reading the keys come first so that a port in use or a missing key stops
/// start-up before systemd hears READY.
pub struct Bound {
    listener: TcpListener,
    receiver: Arc<Receiver>,
}

impl Bound {
    /// `None` when `callback.listen` is not set. `env` reads `CREDENTIALS_DIRECTORY`.
    pub(crate) async fn bind(
        settings: &Settings,
        store: Store,
        clock: SharedClock,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Option<Bound>> {
        let callback = &settings.callback;
        let Some(addr) = callback.listen else {
            return Ok(None);
        };
        let keys = KeyRing::resolve(callback, env)?;
        let Some(receiver) = Receiver::new(callback, keys, &settings.sync.replica_id, store, clock)
        else {
            anyhow::bail!("callback.listen is set but callback.url is not: set it to the CallbackURL registered with ICE");
        };
        let listener = server::bind(addr).await?;
        let bound = listener.local_addr().unwrap_or(addr);
        tracing::info!(
            addr = %bound,
            path = receiver.path(),
            url = callback.url.as_deref().unwrap_or_default(),
            keys = %receiver.describe_keys(),
            "serving ICE event callbacks"
        );
        Ok(Some(Bound {
            listener,
            receiver: Arc::new(receiver),
        }))
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `shutdown` is cancelled.
    pub fn serve(self, shutdown: CancellationToken) -> Serving {
        Serving {
            task: server::spawn(self.listener, self.receiver, shutdown),
        }
    }
}

/// A running endpoint.
pub struct Serving {
    task: JoinHandle<()>,
}

impl Serving {
    /// Waits for the server to finish (it stops with the shutdown token), but not long:
    /// a client holding a request open must not delay the exit.
    pub(crate) async fn stopped(self) {
        let abort = self.task.abort_handle();
        if tokio::time::timeout(std::time::Duration::from_secs(2), self.task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}
