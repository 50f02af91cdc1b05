//! The one HTTP/1.1 serving loop behind every listener (`metrics.listen`,
//! `callback.listen`), hardened against strangers who open connections and say nothing:
//!
//! - a connection must deliver a request's headers within [`HEADER_READ_TIMEOUT`];
//! - a connection on which nothing moves for [`IDLE_TIMEOUT`] is closed;
//! - a request (body included) must be answered within [`REQUEST_TIMEOUT`];
//! - bodies above [`MAX_BODY_BYTES`] are refused (the callback endpoint has its own,
//!   smaller `callback.max_body_bytes`), headers above [`MAX_HEADER_BYTES`] too;
//! - a listener holds at most [`Limits::max_connections`] connections, one peer address
//!   at most [`Limits::max_per_peer`]: both derive from the process's `RLIMIT_NOFILE`,
//!   so served connections can never take the descriptors the database and ICE need.
//!
//! A connection over a cap is accepted and closed at once (its descriptor freed); every
//! refusal is counted and summarised by [`Refusals`]. Accept errors (`EMFILE`) back off
//! instead of spinning.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use super::refusals::Refusals;
use crate::metric_names::HTTP_CONNECTIONS;

/// From accept to the end of the request line and headers.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// No byte read or written for this long: the connection is closed.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// From the request's headers to the end of the answer (a slow body included).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// The largest request body any endpoint reads.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;
/// hyper's read buffer, and so the largest request head.
pub(crate) const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Bounds of the per-listener connection cap, whatever `RLIMIT_NOFILE` says.
const MIN_CONNECTIONS: usize = 8;
const MAX_CONNECTIONS: usize = 256;
/// After an accept error (`EMFILE`, `ENFILE`): wait before the next accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// A shutdown lets in-flight requests finish for this long.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// The connection caps of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) max_connections: usize,
    pub(crate) max_per_peer: usize,
}

impl Limits {
    /// An eighth of the soft `RLIMIT_NOFILE` per listener (two listeners: a quarter),
    /// within 8..=256; one peer address gets half of that.
    pub(crate) fn for_nofile(soft: u64) -> Limits {
        let max_connections = usize::try_from(soft / 8).map_or(MAX_CONNECTIONS, |n| {
            n.clamp(MIN_CONNECTIONS, MAX_CONNECTIONS)
        });
        Limits {
            max_connections,
            max_per_peer: (max_connections / 2).max(1),
        }
    }

    /// From this process's soft `RLIMIT_NOFILE`.
    pub(crate) fn from_process() -> Limits {
        Limits::for_nofile(soft_nofile())
    }
}

fn soft_nofile() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; no other memory is touched.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if rc == 0 {
        limit.rlim_cur
    } else {
        1024
    }
}

/// Serves `router` on `listener` until `shutdown`; `refusals` names the listener.
pub(crate) fn spawn(
    listener: TcpListener,
    router: Router,
    refusals: Arc<Refusals>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let limits = Limits::from_process();
    tracing::debug!(
        listener = refusals.listener(),
        ?limits,
        "HTTP connection caps"
    );
    let router = router
        .layer(axum::middleware::from_fn_with_state(
            refusals.clone(),
            request_deadline,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    refusals.spawn_flusher(shutdown.clone());
    tokio::spawn(accept_loop(listener, router, limits, refusals, shutdown))
}

async fn request_deadline(
    State(refusals): State<Arc<Refusals>>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            refusals.record("request_timeout");
            (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "request not completed within {}s\n",
                    REQUEST_TIMEOUT.as_secs()
                ),
            )
                .into_response()
        }
    }
}

/// Connections per peer address, released when a connection ends.
#[derive(Default)]
struct Peers(Mutex<HashMap<IpAddr, usize>>);

struct PeerSlot {
    peers: Arc<Peers>,
    ip: IpAddr,
}

impl Peers {
    fn take(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<PeerSlot> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let held = map.entry(ip).or_insert(0);
        if *held >= cap {
            return None;
        }
        *held += 1;
        Some(PeerSlot {
            peers: self.clone(),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut map = self.peers.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(held) = map.get_mut(&self.ip) {
            *held -= 1;
            if *held == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// What a connection holds while it lives: its share of the caps.
struct Slot {
    _permit: OwnedSemaphorePermit,
    _peer: PeerSlot,
    listener: &'static str,
}

impl Drop for Slot {
    fn drop(&mut self) {
        metrics::gauge!(HTTP_CONNECTIONS, "listener" => self.listener).decrement(1.0);
    }
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    refusals: Arc<Refusals>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let peers = Arc::new(Peers::default());
    let name = refusals.listener();
    metrics::gauge!(HTTP_CONNECTIONS, "listener" => name).set(0.0);
    loop {
        let (stream, remote) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => {
                    // Out of descriptors, most likely: the caps make this rare; never spin.
                    refusals.record("accept_failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            refusals.record("too_many_connections");
            continue;
        };
        let Some(peer) = peers.take(remote.ip(), limits.max_per_peer) else {
            refusals.record("too_many_from_peer");
            continue;
        };
        metrics::gauge!(HTTP_CONNECTIONS, "listener" => name).increment(1.0);
        let slot = Slot {
            _permit: permit,
            _peer: peer,
            listener: name,
        };
        let accepted = Accepted {
            stream,
            remote,
            _slot: slot,
        };
        tokio::spawn(serve_connection(
            accepted,
            router.clone(),
            refusals.clone(),
            shutdown.clone(),
        ));
    }
}

/// A connection taken off the listener, with the slot it holds until it closes.
struct Accepted {
    stream: TcpStream,
    remote: SocketAddr,
    _slot: Slot,
}

async fn serve_connection(
    accepted: Accepted,
    router: Router,
    refusals: Arc<Refusals>,
    shutdown: CancellationToken,
) {
    let Accepted {
        stream,
        remote,
        _slot,
    } = accepted;
    let _ = stream.set_nodelay(true);
    let io = Watched::new(stream);
    let activity = io.activity.clone();
    let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        router.clone().oneshot(request.map(axum::body::Body::new))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut deadline: Option<Instant> = None;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    if e.is_timeout() {
                        refusals.record("header_timeout");
                    }
                }
                return;
            }
            _ = shutdown.cancelled(), if deadline.is_none() => {
                connection.as_mut().graceful_shutdown();
                deadline = Some(Instant::now() + SHUTDOWN_GRACE);
            }
            _ = tokio::time::sleep(IDLE_TIMEOUT / 4) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return;
                }
                if activity.idle_for() >= IDLE_TIMEOUT {
                    refusals.record("idle_timeout");
                    return;
                }
            }
        }
    }
}

/// When a byte last moved, in milliseconds since `start`.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = self.start.elapsed();
        now.saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// A stream that records when bytes last moved, for the idle timeout.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl Watched {
    fn new(inner: TcpStream) -> Watched {
        Watched {
            inner,
            activity: Arc::new(Activity {
                start: Instant::now(),
                last_ms: AtomicU64::new(0),
            }),
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_follow_the_descriptor_limit() {
        assert_eq!(
            Limits::for_nofile(1024),
            Limits {
                max_connections: 128,
                max_per_peer: 64
            }
        );
        assert_eq!(Limits::for_nofile(128).max_connections, 16);
        assert_eq!(Limits::for_nofile(16).max_connections, MIN_CONNECTIONS);
        assert_eq!(
            Limits::for_nofile(u64::MAX).max_connections,
            MAX_CONNECTIONS
        );
    }
}
