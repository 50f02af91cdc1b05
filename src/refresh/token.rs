//! The bearer token of `POST /refresh`: where it comes from (`metrics.refresh_token_file`,
//! else systemd's credential `refresh-token`), the shortest one accepted, and the
//! constant-time comparison that admits a request. The token is never logged.

use std::path::{Path, PathBuf};

use axum::http::{header, HeaderMap};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;

use crate::config::MetricsSettings;

/// The systemd credential (`LoadCredential=refresh-token:...`) read when
/// `metrics.refresh_token_file` is not set.
pub(crate) const CREDENTIAL_NAME: &str = "refresh-token";

/// The shortest bearer token accepted at start: anything shorter is guessable.
pub(crate) const MIN_TOKEN_BYTES: usize = 16;

type HmacSha256 = Hmac<Sha256>;

/// The expected token as a keyed digest. The key is random per process: comparing HMACs
/// under it is constant-time (`verify_slice`) and reveals nothing about the token, not
/// even its length.
pub(super) struct Token {
    key: [u8; 32],
    expected: Vec<u8>,
}

impl Token {
    /// The token if one is configured (see [`token_path`]); an unreadable token file,
    /// or one under [`MIN_TOKEN_BYTES`], stops start-up with what to fix.
    pub(super) fn load(
        settings: &MetricsSettings,
        env: impl Fn(&str) -> Option<String>,
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
        Ok(Some(Self::new(token.expose_secret().as_bytes())))
    }

    pub(super) fn new(token: &[u8]) -> Self {
        let key: [u8; 32] = rand::random();
        Token {
            expected: digest(&key, token),
            key,
        }
    }

    /// Whether `headers` carry `Authorization: Bearer <the token>`.
    pub(super) fn admits(&self, headers: &HeaderMap) -> bool {
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
