//! A loopback ECS instance metadata service, the part a RAM role needs:
//! `PUT /latest/api/token` (the hardened mode's token, TTL 1–21600 s),
//! `GET /latest/meta-data/ram/security-credentials/` (the attached role's name) and
//! `GET .../security-credentials/<role>` (temporary credentials, issued from the same
//! table STS uses, so ICE accepts them until they expire).
//!
//! Modes: [`MetadataMode::Hardened`] (token optional, like a default instance),
//! [`MetadataMode::TokenRequired`] (`HttpTokens=required`) and
//! [`MetadataMode::PlainOnly`] (an old service without the token endpoint), so the
//! daemon's token-first path and its fallback are both tested.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode};
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::json;

use super::sts::IssuedKey;

pub const DEFAULT_ROLE: &str = "ice-sync-role";
const PREFIX: &str = "/latest/meta-data/ram/security-credentials/";
const TOKEN_HEADER: &str = "x-aliyun-ecs-metadata-token";
const TTL_HEADER: &str = "x-aliyun-ecs-metadata-token-ttl-seconds";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MetadataMode {
    /// Tokens are issued and honoured; requests without one are served too.
    #[default]
    Hardened,
    /// Requests without a valid token get 401 (`HttpTokens=required`).
    TokenRequired,
    /// No token endpoint (404); plain requests only.
    PlainOnly,
}

/// How many requests of each kind arrived.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetadataCalls {
    pub token: u64,
    pub role_name: u64,
    pub credentials: u64,
    /// GETs that came without a token header.
    pub without_token: u64,
}

pub(crate) struct MetadataState {
    pub role: Option<String>,
    pub mode: MetadataMode,
    pub lifetime: Duration,
    pub tokens: HashMap<String, DateTime<Utc>>,
    pub calls: MetadataCalls,
    /// The next N credential requests get a 500.
    pub fail_next: u32,
}

impl Default for MetadataState {
    fn default() -> Self {
        Self {
            role: Some(DEFAULT_ROLE.to_string()),
            mode: MetadataMode::default(),
            lifetime: Duration::from_secs(6 * 3600),
            tokens: HashMap::new(),
            calls: MetadataCalls::default(),
            fail_next: 0,
        }
    }
}

pub(crate) fn is_metadata(path: &str) -> bool {
    path.starts_with("/latest/")
}

/// A metadata answer: status, content type and body (plain text or JSON, as ECS does).
pub(crate) struct Reply {
    pub status: StatusCode,
    pub json: bool,
    pub body: String,
}

fn text(status: StatusCode, body: &str) -> Reply {
    Reply {
        status,
        json: false,
        body: body.to_string(),
    }
}

pub(crate) fn answer(
    state: &mut MetadataState,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    rng: &mut StdRng,
    now: DateTime<Utc>,
    issue: &mut dyn FnMut(Duration) -> (String, IssuedKey),
) -> Reply {
    if path == "/latest/api/token" {
        if method != Method::PUT {
            return text(StatusCode::METHOD_NOT_ALLOWED, "use PUT");
        }
        state.calls.token += 1;
        if state.mode == MetadataMode::PlainOnly {
            return text(StatusCode::NOT_FOUND, "Not Found");
        }
        let ttl = headers
            .get(TTL_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok());
        let Some(ttl) = ttl.filter(|t| (1..=21_600).contains(t)) else {
            return text(
                StatusCode::BAD_REQUEST,
                "X-aliyun-ecs-metadata-token-ttl-seconds must be 1-21600",
            );
        };
        let token = format!("AQAEAsim{:032x}", rng.gen::<u128>());
        state
            .tokens
            .insert(token.clone(), now + chrono::Duration::seconds(ttl));
        return text(StatusCode::OK, &token);
    }
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return text(StatusCode::NOT_FOUND, "Not Found");
    };
    if method != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET");
    }
    if rest.is_empty() {
        state.calls.role_name += 1;
    } else {
        state.calls.credentials += 1;
    }
    match headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
        Some(t) => match state.tokens.get(t) {
            Some(expiry) if *expiry > now => {}
            _ => {
                return text(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized: invalid or expired metadata token",
                )
            }
        },
        None => {
            state.calls.without_token += 1;
            if state.mode == MetadataMode::TokenRequired {
                return text(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized: a metadata token is required",
                );
            }
        }
    }
    let Some(role) = state.role.clone() else {
        return text(StatusCode::NOT_FOUND, "Not Found");
    };
    if rest.is_empty() {
        return text(StatusCode::OK, &role);
    }
    if rest != role {
        return text(StatusCode::NOT_FOUND, "Not Found");
    }
    if state.fail_next > 0 {
        state.fail_next -= 1;
        return text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    }
    let (id, key) = issue(state.lifetime);
    let body = json!({
        "AccessKeyId": id,
        "AccessKeySecret": key.secret,
        "Expiration": key.expires_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "SecurityToken": key.token,
        "LastUpdated": now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "Code": "Success",
    });
    Reply {
        status: StatusCode::OK,
        json: true,
        body: body.to_string(),
    }
}
