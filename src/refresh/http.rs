//! `POST /refresh` on the metrics listener: the HTTP form of `ice-sync refresh`, for
//! tools that cannot run the command. Served only when a bearer token is configured
//! (`metrics.refresh_token_file`, else systemd's credential `refresh-token` in
//! `$CREDENTIALS_DIRECTORY`); otherwise the path is a plain 404.
//!
//! The request only queues polls (`store.refresh_queue()`, source `http`) and answers
//! `202 {"requested":N,"unknown":[...]}` at once; a running daemon's refresh cycle does
//! the polling. [`routes`] hands the route to `ops`, which serves it beside `/metrics`. The token is compared in constant time and never logged; bodies are
//! capped at [`BODY_LIMIT`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::Sha256;

use crate::clock::SharedClock;
use crate::config::MetricsSettings;
use crate::domain::ProjectId;
use crate::storage::{RefreshSource, RefreshTarget, Store};

/// The largest body accepted: room for about a thousand project IDs.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;
/// The systemd credential (`LoadCredential=refresh-token:...`) read when
/// `metrics.refresh_token_file` is not set.
pub(crate) const CREDENTIAL_NAME: &str = "refresh-token";

type HmacSha256 = Hmac<Sha256>;

/// What `POST /refresh` needs: the expected token and the store.
pub(crate) struct RefreshEndpoint {
    token: Token,
    store: Store,
    clock: SharedClock,
}

/// The expected token as a keyed digest. The key is random per process: comparing HMACs
/// under it is constant-time (`verify_slice`) and reveals nothing about the token, not
/// even its length.
struct Token {
    key: [u8; 32],
    expected: Vec<u8>,
}

impl Token {
    fn new(token: &[u8]) -> Self {
        let key: [u8; 32] = rand::random();
        Token {
            expected: digest(&key, token),
            key,
        }
    }

    /// Whether `headers` carry `Authorization: Bearer <the token>`.
    fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
        else {
            return false;
        };
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.key) else {
            return false;
        };
        mac.update(given.as_bytes());
        mac.verify_slice(&self.expected).is_ok()
    }
}

impl std::fmt::Debug for RefreshEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshEndpoint").finish_non_exhaustive()
    }
}

/// Where the token comes from, if anywhere: the configured file, else the systemd
/// credential when that file exists.
pub(crate) fn token_path(
    settings: &MetricsSettings,
    env: impl Fn(&str) -> Option<String>,
) -> Option<PathBuf> {
    if let Some(file) = &settings.refresh_token_file {
        return Some(file.clone());
    }
    let dir = env("CREDENTIALS_DIRECTORY").filter(|d| !d.trim().is_empty())?;
    let path = Path::new(dir.trim()).join(CREDENTIAL_NAME);
    path.exists().then_some(path)
}

/// `POST /refresh` for the metrics listener: `None` when nothing is listening
/// (`metrics.listen` unset) or no token is configured (see [`token_path`]).
pub(crate) fn routes(
    settings: &MetricsSettings,
    env: impl Fn(&str) -> Option<String>,
    store: Store,
    clock: SharedClock,
) -> anyhow::Result<Option<axum::Router>> {
    let Some(addr) = settings.listen else {
        return Ok(None);
    };
    let Some(endpoint) = RefreshEndpoint::from_settings(settings, env, store, clock)? else {
        return Ok(None);
    };
    tracing::info!(%addr, "serving POST /refresh (bearer token)");
    Ok(Some(
        axum::Router::new()
            .route("/refresh", axum::routing::post(handle))
            .with_state(Arc::new(endpoint)),
    ))
}

/// The shortest bearer token accepted at start: anything shorter is guessable.
pub(crate) const MIN_TOKEN_BYTES: usize = 16;

impl RefreshEndpoint {
    /// The endpoint if a token is configured (see [`token_path`]); an unreadable token
    /// file, or one under [`MIN_TOKEN_BYTES`], stops start-up with what to fix.
    pub(crate) fn from_settings(
        settings: &MetricsSettings,
        env: impl Fn(&str) -> Option<String>,
        store: Store,
        clock: SharedClock,
    ) -> anyhow::Result<Option<Self>> {
        let Some(path) = token_path(settings, env) else {
            return Ok(None);
        };
        let token = crate::credentials::read_secret(&path).map_err(|e| {
            anyhow::anyhow!(
                "{e:#}: POST /refresh needs a bearer token there (metrics.refresh_token_file, \
                 or the systemd credential {CREDENTIAL_NAME}); fix the file or remove the setting"
            )
        })?;
        if token.expose_secret().len() < MIN_TOKEN_BYTES {
            anyhow::bail!(
                "the POST /refresh token in {} is shorter than {MIN_TOKEN_BYTES} bytes: put a \
                 long random one there (e.g. `openssl rand -hex 32`), or remove \
                 metrics.refresh_token_file",
                path.display()
            );
        }
        Ok(Some(Self::with_token(
            token.expose_secret().as_bytes(),
            store,
            clock,
        )))
    }

    pub(crate) fn with_token(token: &[u8], store: Store, clock: SharedClock) -> Self {
        Self {
            token: Token::new(token),
            store,
            clock,
        }
    }
}

fn digest(key: &[u8], token: &[u8]) -> Vec<u8> {
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(token);
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC takes keys of any length: unreachable, and an empty digest matches nothing.
        Err(_) => Vec::new(),
    }
}

/// The token of an `Authorization: Bearer TOKEN` value (the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
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
    fn bearer_tokens() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer "), None);
    }

    #[test]
    fn only_the_token_admits() {
        let token = Token::new(b"s3cret-token-value");
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::AUTHORIZATION,
                header::HeaderValue::from_str(value).expect("header"),
            );
            headers
        };
        assert!(token.admits(&with("Bearer s3cret-token-value")));
        assert!(!token.admits(&with("Bearer s3cret-token-valuE")));
        assert!(!token.admits(&with("Bearer s3cret-token-value-and-more")));
        assert!(!token.admits(&with("Basic s3cret-token-value")));
        assert!(!token.admits(&HeaderMap::new()));
    }

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

    #[test]
    fn tokens_come_from_the_file_or_the_credential() {
        let dir = tempfile_dir();
        let cred = dir.join(CREDENTIAL_NAME);
        let settings = |file: Option<PathBuf>| MetricsSettings {
            listen: None,
            refresh_token_file: file,
        };
        let env_dir = dir.display().to_string();
        let env = |k: &str| (k == "CREDENTIALS_DIRECTORY").then(|| env_dir.clone());
        assert_eq!(
            token_path(&settings(None), env),
            None,
            "no credential file yet"
        );
        std::fs::write(&cred, "secret-token\n").expect("write");
        assert_eq!(token_path(&settings(None), env), Some(cred.clone()));
        let own = dir.join("own");
        assert_eq!(
            token_path(&settings(Some(own.clone())), env),
            Some(own),
            "the configured file wins"
        );
        assert_eq!(token_path(&settings(None), |_| None), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "ice-sync-refresh-token-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }
}
