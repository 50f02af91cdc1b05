//! Hostile answers: what a compromised or misconfigured server in front of ICE, STS or
//! the metadata service could send to steal credentials or exhaust memory. Unlike the
//! [`faults`](super::faults), these replace every answer (ICE, STS, metadata alike) and
//! are served before any signature check: a redirecting proxy does not verify anything.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

/// What every request gets instead of its real answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Hostile {
    /// The real answers.
    #[default]
    None,
    /// HTTP 307 (method and body kept, as a thief would want) to this base URL followed
    /// by the request's own path and query.
    RedirectTo(String),
    /// HTTP 200 with a JSON body of about this many bytes, sent chunked (no
    /// Content-Length), so only a cap applied while reading can stop it.
    Oversized(usize),
}

/// `None` when the real answer should be served.
pub(crate) fn answer(hostile: &Hostile, path_and_query: &str) -> Option<Response> {
    match hostile {
        Hostile::None => None,
        Hostile::RedirectTo(base) => {
            let location = format!("{}{path_and_query}", base.trim_end_matches('/'));
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            Some(response)
        }
        Hostile::Oversized(size) => {
            const CHUNK: usize = 16 * 1024;
            let chunks = size.div_ceil(CHUNK) + 2;
            let stream = futures::stream::iter((0..chunks).map(move |i| {
                let bytes = match i {
                    0 => Bytes::from_static(b"{\"Pad\":\""),
                    i if i == chunks - 1 => Bytes::from_static(b"\"}"),
                    _ => Bytes::from(vec![b'x'; CHUNK]),
                };
                Ok::<_, std::io::Error>(bytes)
            }));
            let mut response = Response::new(Body::from_stream(stream));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Some(response)
        }
    }
}
