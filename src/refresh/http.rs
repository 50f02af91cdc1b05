//! `POST /refresh` on the metrics listener: the HTTP form of `ice-sync refresh`, for
//! tools that cannot run the command. Served only when a bearer token is configured
//! (`metrics.refresh_token_file`, else systemd's credential `refresh-token` in
//! `$CREDENTIALS_DIRECTORY`); otherwise the path is a plain 404.
//!
//! The request only queues polls (`store.refresh_queue()`, source `http`) and answers
//! `202 {"requested":N,"unknown":[...]}` at once; a running daemon's refresh cycle does
//! the polling. [`routes`] hands the route to `ops`, which serves it beside `/metrics`.
//! The token (`refresh::token`) is compared in constant time and never logged; bodies
//! are capped at [`BODY_LIMIT`].

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use crate::clock::SharedClock;
use crate::config::MetricsSettings;
use crate::domain::ProjectId;
use crate::storage::{RefreshSource, RefreshTarget, Store};

use super::token::Token;

/// The largest body accepted: room for about a thousand project IDs.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

/// What `POST /refresh` needs: the expected token and the store.
pub(crate) struct RefreshEndpoint {
    token: Token,
    store: Store,
    clock: SharedClock,
}

impl std::fmt::Debug for RefreshEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshEndpoint").finish_non_exhaustive()
    }
}

/// `POST /refresh` for the metrics listener: `None` when nothing is listening
/// (`metrics.listen` unset) or no token is configured (see `token::token_path`).
pub(crate) fn routes(
    settings: &MetricsSettings,
    env: impl Fn(&str) -> Option<String>,
    store: Store,
    clock: SharedClock,
) -> anyhow::Result<Option<axum::Router>> {
    let Some(addr) = settings.listen else {
        return Ok(None);
    };
    let Some(token) = Token::load(settings, env)? else {
        return Ok(None);
    };
    let endpoint = RefreshEndpoint {
        token,
        store,
        clock,
    };
    tracing::info!(%addr, "serving POST /refresh (bearer token)");
    Ok(Some(
        axum::Router::new()
            .route("/refresh", axum::routing::post(handle))
            .with_state(Arc::new(endpoint)),
    ))
}

/// The body: exactly one of the three.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    projects: Option<Vec<String>>,
    all: Option<bool>,
    status: Option<String>,
}

/// Turns a body into a request target, or says what is wrong with it.
pub(crate) fn parse_target(body: &[u8]) -> Result<RefreshTarget, String> {
    const SHAPES: &str = r#"send {"projects":["ID",...]}, {"all":true} or {"status":"Producing"}"#;
    let body: RefreshBody = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not valid JSON: {e}; {SHAPES}"))?;
    match (body.projects, body.all, body.status) {
        (Some(raw), None, None) => {
            if raw.is_empty() {
                return Err(format!("\"projects\" is empty; {SHAPES}"));
            }
            let ids = raw
                .iter()
                .map(|id| ProjectId::parse(id).map_err(|e| format!("{e}; {SHAPES}")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(RefreshTarget::Projects {
                ids,
                all_or_nothing: false,
            })
        }
        (None, Some(true), None) => Ok(RefreshTarget::AllEnabled),
        (None, Some(false), None) => Err(format!("\"all\" must be true; {SHAPES}")),
        (None, None, Some(status)) if status.contains('\0') => Err(format!(
            "\"status\" contains a NUL character (U+0000), which no ICE status has; {SHAPES}"
        )),
        (None, None, Some(status)) if !status.trim().is_empty() => {
            Ok(RefreshTarget::Status(status.trim().to_string()))
        }
        (None, None, Some(_)) => Err(format!("\"status\" is empty; {SHAPES}")),
        _ => Err(format!(
            "give exactly one of projects, all and status; {SHAPES}"
        )),
    }
}

fn json(status: StatusCode, value: serde_json::Value) -> Response {
    crate::ops::server::json_response(status, &value)
}

fn error(status: StatusCode, message: &str) -> Response {
    json(status, serde_json::json!({ "error": message }))
}

/// `POST /refresh`.
pub(crate) async fn handle(
    State(endpoint): State<Arc<RefreshEndpoint>>,
    axum::Extension(refusals): axum::Extension<Arc<crate::ops::refusals::Refusals>>,
    request: Request,
) -> Response {
    if !endpoint.token.admits(request.headers()) {
        // Neither the header nor the token goes to the log; the refusal summary says
        // how many there were.
        refusals.record("refresh_unauthorized");
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "send Authorization: Bearer <the token in metrics.refresh_token_file>",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return response;
    }
    let body = match axum::body::to_bytes(request.into_body(), BODY_LIMIT).await {
        Ok(body) => body,
        Err(_) => {
            refusals.record("too_large");
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body is over {BODY_LIMIT} bytes: request fewer projects at a time, or use {{\"all\":true}}"),
            );
        }
    };
    let target = match parse_target(&body) {
        Ok(target) => target,
        Err(message) => {
            refusals.record("bad_request");
            return error(StatusCode::BAD_REQUEST, &message);
        }
    };
    let at = match endpoint.store.database_now().await {
        Ok(Some(now)) => now,
        Ok(None) => endpoint.clock.now().into(),
        Err(e) => return unavailable(&e),
    };
    match endpoint
        .store
        .refresh_queue()
        .queue_refreshes(&target, RefreshSource::Http, at)
        .await
    {
        Ok(outcome) => {
            tracing::info!(
                requested = outcome.requested.len(),
                unknown = outcome.unknown.len(),
                "polls requested over POST /refresh"
            );
            let unknown: Vec<&str> = outcome.unknown.iter().map(ProjectId::as_str).collect();
            json(
                StatusCode::ACCEPTED,
                serde_json::json!({ "requested": outcome.requested.len(), "unknown": unknown }),
            )
        }
        Err(e) => unavailable(&e),
    }
}

fn unavailable(e: &crate::storage::StorageError) -> Response {
    tracing::warn!("POST /refresh could not queue the request: {e:#}");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("the request was not queued: {e}; try again"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        let ids = |v: &[&str]| -> Vec<ProjectId> {
            v.iter().map(|s| ProjectId::parse(s).expect("id")).collect()
        };
        assert_eq!(
            parse_target(br#"{"projects":["a","b"]}"#),
            Ok(RefreshTarget::Projects {
                ids: ids(&["a", "b"]),
                all_or_nothing: false
            })
        );
        assert_eq!(
            parse_target(br#"{"all":true}"#),
            Ok(RefreshTarget::AllEnabled)
        );
        assert_eq!(
            parse_target(br#"{"status":"Producing"}"#),
            Ok(RefreshTarget::Status("Producing".into()))
        );
        for bad in [
            &b"not json"[..],
            br#"{"all":false}"#,
            br#"{"projects":[]}"#,
            br#"{"projects":["has space"]}"#,
            br#"{"all":true,"status":"Producing"}"#,
            br#"{}"#,
            br#"{"status":" "}"#,
            br#"{"project":["a"]}"#,
        ] {
            assert!(
                parse_target(bad).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
