//! Fault injection: which requests go wrong, and the bytes a broken or overloaded
//! gateway (or a proxy in front of it) would send instead of the real answer.
//!
//! Every request draws one number in `[0, 1)`; the configured fractions are laid end to
//! end as slices of that interval, so `throttle = 0.5, server_error = 0.5` fails every
//! request and fractions summing past 1 starve the later kinds. Faults only ever replace
//! answers to requests that passed signature verification: a client must not be able to
//! tell a fault from the service misbehaving after accepting its credentials.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use futures::StreamExt as _;
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};

use super::api::{error_response, ApiError};

/// Which fraction of requests each fault hits. All zero (the default) is a healthy server.
#[derive(Clone, Debug, Default)]
pub struct FaultConfig {
    /// Answered with the gateway's flow-control error (HTTP 400 `Throttling.User`),
    /// about half of them with an `x-acs-retry-after` hint in milliseconds.
    pub throttle: f64,
    /// Answered with HTTP 500 `InternalError` or 503 `ServiceUnavailable`.
    pub server_error: f64,
    /// Answered normally, but only after `slow_delay`.
    pub slow: f64,
    pub slow_delay: Duration,
    /// Status 200 and headers are sent, then the connection is aborted mid-body.
    pub drop_connection: f64,
    /// Answered with one of the [`MalformedKind`]s.
    pub malformed: f64,
    /// Answered with HTTP 400 `InvalidParameter` naming a parameter other than ProjectId,
    /// as an API change or a proxy that mangles requests would: no evidence that a
    /// project is gone.
    pub foreign_invalid_parameter: f64,
}

/// The ways a response body can be unusable. Chosen uniformly per request among the
/// kinds enabled with `Simulator::set_malformed_kinds` (all of them by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MalformedKind {
    /// HTTP 200 whose body is truncated JSON.
    InvalidJson,
    /// HTTP 200 with an HTML page, as a captive portal or misrouted proxy sends.
    Html200,
    /// HTTP 502 with an HTML page from a reverse proxy.
    Html502,
    /// HTTP 200 with an empty body.
    Empty,
    /// Valid JSON with fields of the wrong type: `Duration` `"30.5"`, `Title` a number.
    WrongTypes,
    /// Valid JSON without the `Project` (or `ProjectList`) member.
    MissingProject,
    /// A well-formed `Project` for a different `ProjectId` than asked for. For
    /// `ListEditingProjects`, where no ID is asked for, `ProjectList` is an object.
    WrongProject,
}

impl MalformedKind {
    pub const ALL: [MalformedKind; 7] = [
        MalformedKind::InvalidJson,
        MalformedKind::Html200,
        MalformedKind::Html502,
        MalformedKind::Empty,
        MalformedKind::WrongTypes,
        MalformedKind::MissingProject,
        MalformedKind::WrongProject,
    ];
}

/// What one request suffers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Fault {
    Throttle { retry_after_ms: Option<u64> },
    ServerError { unavailable: bool },
    Slow(Duration),
    DropConnection,
    Malformed(MalformedKind),
    ForeignInvalidParameter,
}

/// Draws this request's fault, if any. Secondary choices (which 5xx, which malformed
/// body) use further draws from the same rng, after the one that picks the slice.
pub(crate) fn draw(
    config: &FaultConfig,
    kinds: &[MalformedKind],
    rng: &mut StdRng,
) -> Option<Fault> {
    let x: f64 = rng.gen();
    let mut edge = 0.0;
    let mut hit = |fraction: f64| {
        let lo = edge;
        edge += fraction.clamp(0.0, 1.0);
        x >= lo && x < edge
    };
    if hit(config.throttle) {
        // Small hints keep retrying tests fast; the real gateway's values are not documented.
        let retry_after_ms = rng.gen_bool(0.5).then(|| rng.gen_range(20..=80));
        Some(Fault::Throttle { retry_after_ms })
    } else if hit(config.server_error) {
        Some(Fault::ServerError {
            unavailable: rng.gen_bool(0.5),
        })
    } else if hit(config.slow) {
        Some(Fault::Slow(config.slow_delay))
    } else if hit(config.drop_connection) {
        Some(Fault::DropConnection)
    } else if hit(config.foreign_invalid_parameter) {
        Some(Fault::ForeignInvalidParameter)
    } else if hit(config.malformed) {
        let kinds = if kinds.is_empty() {
            &MalformedKind::ALL[..]
        } else {
            kinds
        };
        Some(Fault::Malformed(kinds[rng.gen_range(0..kinds.len())]))
    } else {
        None
    }
}

/// The throttling answer, shaped like `error.throttling-user.json`.
pub(crate) fn throttled(request_id: &str, host: &str, retry_after_ms: Option<u64>) -> Response {
    let mut response = error_response(
        &ApiError::new(
            StatusCode::BAD_REQUEST,
            "Throttling.User",
            "Request was denied due to user flow control.",
        ),
        request_id,
        host,
    );
    if let Some(ms) = retry_after_ms {
        if let Ok(value) = HeaderValue::from_str(&ms.to_string()) {
            response.headers_mut().insert("x-acs-retry-after", value);
        }
    }
    response
}

/// HTTP 500 `InternalError` or 503 `ServiceUnavailable`, shaped like `error.internal.json`.
pub(crate) fn server_error(request_id: &str, host: &str, unavailable: bool) -> Response {
    let error = if unavailable {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The request has failed due to a temporary failure of the server.",
        )
    } else {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "The request processing has failed due to some unknown error, exception or failure.",
        )
    };
    error_response(&error, request_id, host)
}

/// Sends the status line, the headers and the first half of `body`, then fails the body
/// stream so the server aborts the connection: the client sees a 200 it cannot finish.
pub(crate) fn dropped(request_id: &str, body: Vec<u8>) -> Response {
    let half = body.len() / 2;
    let first = Bytes::from(body).slice(..half);
    let stream = futures::stream::iter([Ok::<_, std::io::Error>(first)]).chain(
        futures::stream::once(async {
            // Give the server time to flush what it has, so the headers really go out.
            tokio::time::sleep(Duration::from_millis(20)).await;
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "simulated connection drop",
            ))
        }),
    );
    let mut response = Response::new(Body::from_stream(stream));
    set_json(&mut response, request_id);
    response
}

/// A malformed answer to `GetEditingProject`. `normal` is the project the request would
/// have received (if it exists), used so wrong-typed bodies look otherwise plausible.
pub(crate) fn malformed_get(
    kind: MalformedKind,
    request_id: &str,
    asked: &str,
    normal: Option<Value>,
) -> Response {
    let project = normal.unwrap_or_else(|| json!({ "ProjectId": asked, "Status": "Draft" }));
    match kind {
        MalformedKind::WrongTypes => {
            let mut project = project;
            if let Some(map) = project.as_object_mut() {
                map.insert("Title".into(), json!(12345));
                map.insert("Duration".into(), json!("30.5"));
            }
            json_200(
                request_id,
                json!({ "RequestId": request_id, "Project": project }),
            )
        }
        MalformedKind::MissingProject => json_200(request_id, json!({ "RequestId": request_id })),
        MalformedKind::WrongProject => {
            let mut project = project;
            if let Some(map) = project.as_object_mut() {
                map.insert("ProjectId".into(), json!(other_id(asked)));
            }
            json_200(
                request_id,
                json!({ "RequestId": request_id, "Project": project }),
            )
        }
        other => transport_garbage(other, request_id),
    }
}

/// A malformed answer to `ListEditingProjects`.
pub(crate) fn malformed_list(kind: MalformedKind, request_id: &str, normal: Value) -> Response {
    match kind {
        MalformedKind::WrongTypes => {
            let mut body = normal;
            if let Some(first) = body
                .get_mut("ProjectList")
                .and_then(Value::as_array_mut)
                .and_then(|list| list.first_mut())
                .and_then(Value::as_object_mut)
            {
                first.insert("Title".into(), json!(12345));
            }
            if let Some(map) = body.as_object_mut() {
                map.insert("MaxResults".into(), json!("10"));
            }
            json_200(request_id, body)
        }
        MalformedKind::MissingProject => json_200(request_id, json!({ "RequestId": request_id })),
        MalformedKind::WrongProject => json_200(
            request_id,
            json!({ "RequestId": request_id, "ProjectList": { "ProjectId": other_id("") } }),
        ),
        other => transport_garbage(other, request_id),
    }
}

/// The kinds that do not depend on the action.
fn transport_garbage(kind: MalformedKind, request_id: &str) -> Response {
    const HTML_200: &str = "<!DOCTYPE html>\n<html><head><title>Sign in</title></head>\
        <body><h1>Network login required</h1></body></html>\n";
    const HTML_502: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n\
        <body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>Tengine</center>\r\n\
        </body>\r\n</html>\r\n";
    match kind {
        MalformedKind::Html200 => html(StatusCode::OK, HTML_200),
        MalformedKind::Html502 => html(StatusCode::BAD_GATEWAY, HTML_502),
        MalformedKind::Empty => {
            let mut response = Response::new(Body::empty());
            set_json(&mut response, request_id);
            response
        }
        // InvalidJson, and a safe answer for the action-specific kinds should they get here.
        _ => {
            let text = format!("{{\"RequestId\":\"{request_id}\",\"Project\":{{\"ProjectId\":\"");
            let mut response = Response::new(Body::from(text));
            set_json(&mut response, request_id);
            response
        }
    }
}

fn other_id(asked: &str) -> String {
    // Reversing keeps it a plausible 32-hex ID; the fallback covers palindromes and "".
    let reversed: String = asked.chars().rev().collect();
    if reversed != asked {
        reversed
    } else {
        "0123456789abcdef0123456789abcdef".to_string()
    }
}

fn json_200(request_id: &str, body: Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    set_json(&mut response, request_id);
    response
}

fn html(status: StatusCode, page: &'static str) -> Response {
    let mut response = Response::new(Body::from(page));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn set_json(response: &mut Response, request_id: &str) {
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-acs-request-id", value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn fractions_are_slices_of_one_draw() {
        let mut rng = StdRng::seed_from_u64(7);
        let config = FaultConfig {
            throttle: 0.25,
            server_error: 0.25,
            ..Default::default()
        };
        let (mut throttled, mut errors, mut clean) = (0, 0, 0);
        for _ in 0..4000 {
            match draw(&config, &[], &mut rng) {
                Some(Fault::Throttle { .. }) => throttled += 1,
                Some(Fault::ServerError { .. }) => errors += 1,
                None => clean += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        for n in [throttled, errors] {
            assert!((850..1150).contains(&n), "{throttled} {errors} {clean}");
        }
        assert!((1800..2200).contains(&clean), "{clean}");
    }

    #[test]
    fn full_fraction_always_hits_and_kinds_are_restricted() {
        let mut rng = StdRng::seed_from_u64(1);
        let config = FaultConfig {
            malformed: 1.0,
            ..Default::default()
        };
        for _ in 0..100 {
            assert_eq!(
                draw(&config, &[MalformedKind::Empty], &mut rng),
                Some(Fault::Malformed(MalformedKind::Empty))
            );
        }
        assert_eq!(draw(&FaultConfig::default(), &[], &mut rng), None);
    }
}
