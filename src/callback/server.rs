//! The HTTP endpoint on `callback.listen`: `POST {callback.path}` hands each request to
//! the [`Receiver`] and answers with its [`Outcome`]; every other path is a 404 and every
//! other method a 405. Each request is counted in `ice_sync_callbacks_total{outcome}`;
//! an accepted one is logged on one line (never with a key or a signature), refusals are
//! summarised at a bounded rate by `ops::refusals`. Connections are served by
//! `ops::serve` (timeouts, caps).
//!
//! It binds before systemd hears READY (a port in use stops start-up with a clear
//! message) and stops with the daemon's shutdown token. Old dedupe rows are pruned by the
//! daemon's retention pass (`retention.callback_events`, see `retention`).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use futures::StreamExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::receiver::{Headers, Outcome, Receiver};
use crate::metric_names::{CALLBACKS, CALLBACK_OUTCOMES};
use crate::ops::refusals::Refusals;

/// Binds `addr` (port 0 picks a free port; the log says which).
pub(crate) async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen on callback.listen = {addr}: pick a free address (e.g. 0.0.0.0:9188) or remove callback.listen"
        )
    })
}

pub(crate) fn router(receiver: Arc<Receiver>, refusals: Arc<Refusals>) -> Router {
    let path = receiver.path().to_string();
    Router::new()
        .route(&path, post(receive).fallback(method_not_allowed))
        .fallback(not_found)
        .with_state(receiver)
        .layer(Extension(refusals))
}

/// Serves until `shutdown` is cancelled.
pub(crate) fn spawn(
    listener: TcpListener,
    receiver: Arc<Receiver>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    // Zeros, so a dashboard sees every outcome's series before its first request.
    for outcome in CALLBACK_OUTCOMES {
        metrics::counter!(CALLBACKS, "outcome" => *outcome).increment(0);
    }
    let refusals = Refusals::new("callback");
    let app = router(receiver, refusals.clone());
    crate::ops::serve::spawn(listener, app, refusals, shutdown)
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    Extension(refusals): Extension<Arc<Refusals>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let outcome = decide(&receiver, &headers, body).await;
    finish(&receiver, &refusals, remote, outcome)
}

async fn decide(receiver: &Receiver, headers: &HeaderMap, body: Body) -> Outcome {
    let auth = Headers {
        timestamp: header(headers, "x-ice-timestamp"),
        signature: header(headers, "x-ice-signature"),
    };
    if let Err(refused) = receiver.authenticate(auth) {
        return refused;
    }
    let cap = receiver.max_body_bytes();
    let declared =
        header(headers, header::CONTENT_LENGTH.as_str()).and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap as u64) {
        return Outcome::TooLarge;
    }
    match read_capped(body, cap).await {
        Ok(Some(bytes)) => receiver.accept_signed(auth, &bytes).await,
        Ok(None) => Outcome::TooLarge,
        Err(e) => Outcome::BadRequest(format!("the body could not be read ({e})")),
    }
}

/// The body, or `None` as soon as it passes `cap` bytes (the rest is never read).
async fn read_capped(body: Body, cap: usize) -> Result<Option<Bytes>, axum::Error> {
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if buf.len() + chunk.len() > cap {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(Bytes::from(buf)))
}

async fn not_found(
    State(receiver): State<Arc<Receiver>>,
    Extension(refusals): Extension<Arc<Refusals>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
) -> Response {
    finish(&receiver, &refusals, remote, Outcome::NotFound)
}

async fn method_not_allowed(
    State(receiver): State<Arc<Receiver>>,
    Extension(refusals): Extension<Arc<Refusals>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
) -> Response {
    finish(&receiver, &refusals, remote, Outcome::MethodNotAllowed)
}

/// Counts, logs and answers. Refusals are logged per request at debug level only; the
/// WARN is [`Refusals`]' summary, at most one line a minute.
fn finish(
    receiver: &Receiver,
    refusals: &Refusals,
    remote: SocketAddr,
    outcome: Outcome,
) -> Response {
    metrics::counter!(CALLBACKS, "outcome" => outcome.label()).increment(1);
    let message = outcome.message(receiver.path());
    let label = outcome.label();
    match &outcome {
        Outcome::Accepted {
            project_id,
            event_type,
            job_id,
        }
        | Outcome::Tracked {
            project_id,
            event_type,
            job_id,
        } => tracing::info!(
            %project_id, event_type, job_id, outcome = label, %remote,
            "ICE callback accepted: poll queued"
        ),
        Outcome::Duplicate { event_type, job_id } => tracing::info!(
            event_type, job_id, outcome = label, %remote,
            "ICE callback already received: nothing queued"
        ),
        Outcome::Unavailable(cause) => tracing::warn!(
            outcome = label, %remote,
            "ICE callback not recorded, answered 503 so ICE retries: {cause}"
        ),
        _ => {
            refusals.record(label);
            tracing::debug!(outcome = label, %remote, "ICE callback refused: {message}")
        }
    }
    let status: StatusCode = outcome.status();
    let mut body = message;
    body.push('\n');
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}
