//! The HTTP endpoint on `metrics.listen`: `GET /metrics` (Prometheus text format, with
//! the staleness gauges read fresh from the database, see `ops::staleness`),
//! `GET /healthz` (see `ops::health`), and whatever routes the caller adds (`ice-sync run`
//! adds `POST /refresh` from `refresh::http` when a token is configured). Nothing else is
//! served.
//!
//! It binds before systemd hears READY, so a port already in use stops start-up with a
//! clear message instead of a daemon that silently serves nothing, and it stops with the
//! daemon's shutdown token.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::health::Health;
use super::refusals::Refusals;
use super::staleness::Staleness;

/// Prometheus' text exposition format, version 0.0.4.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone)]
struct AppState {
    metrics: PrometheusHandle,
    health: Arc<Health>,
    staleness: Option<Arc<Staleness>>,
}

/// Binds `addr` (port 0 picks a free port; the log says which).
pub(crate) async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen on metrics.listen = {addr}: pick a free address (e.g. 127.0.0.1:9187) \
             or remove metrics.listen"
        )
    })
}

/// What the metrics listener serves.
pub(crate) struct Routes {
    pub(crate) metrics: PrometheusHandle,
    pub(crate) health: Arc<Health>,
    /// Refreshed before each `/metrics` rendering (`None`: not served).
    pub(crate) staleness: Option<Arc<Staleness>>,
    /// More routes served beside these (`None`: none; an unknown path is a 404).
    pub(crate) extra: Option<Router>,
}

/// `refusals`: where refused requests are counted (handlers reach it as an extension).
fn router(routes: Routes, refusals: Arc<Refusals>) -> Router {
    let Routes {
        metrics,
        health,
        staleness,
        extra,
    } = routes;
    let mut router = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(healthz))
        .with_state(AppState {
            metrics,
            health,
            staleness,
        });
    if let Some(extra) = extra {
        router = router.merge(extra);
    }
    router.fallback(not_found).layer(Extension(refusals))
}

/// Serves until `shutdown` is cancelled.
pub(crate) fn spawn(
    listener: TcpListener,
    routes: Routes,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let refusals = Refusals::new("metrics");
    let app = router(routes, refusals.clone());
    super::serve::spawn(listener, app, refusals, shutdown)
}

async fn render_metrics(State(state): State<AppState>) -> Response {
    super::metrics::collect_process();
    if let Some(staleness) = &state.staleness {
        staleness.refresh_for_scrape().await;
    }
    (
        [(header::CONTENT_TYPE, PROMETHEUS_TEXT)],
        state.metrics.render(),
    )
        .into_response()
}

async fn healthz(State(state): State<AppState>) -> Response {
    let verdict = state.health.check().await;
    let status = if verdict.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, &verdict.body)
}

/// A JSON answer that no cache keeps: `/healthz` and `POST /refresh`.
pub(crate) fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    let mut body = value.to_string();
    body.push('\n');
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn not_found(Extension(refusals): Extension<Arc<Refusals>>) -> Response {
    refusals.record("not_found");
    (
        StatusCode::NOT_FOUND,
        "not found: ice-sync serves GET /metrics and GET /healthz\n",
    )
        .into_response()
}
