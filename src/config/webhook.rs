//! `[webhook]`: the change feed's outbound webhook. Off while `webhook.url` is unset.
//!
//! Every body is signed (HMAC-SHA256), so a URL needs a secret: `webhook.secret`, or
//! `webhook.secret_file`, or else the systemd credential
//! `$CREDENTIALS_DIRECTORY/webhook-secret` (`LoadCredential=webhook-secret:...`). Which of
//! them applies is decided here; the file or credential is read at start-up, when the
//! deliverer is wired (`feed::secret`), and an absent one is an error naming these keys.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::bounds::{DAY, HOUR};
use super::reload::{dur, Diff};
use super::settings::parse_duration;
use super::ConfigError;

/// What the file and the `ICE_SYNC__WEBHOOK__*` variables may say, with the defaults.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawWebhook {
    pub(crate) url: Option<String>,
    #[serde(serialize_with = "super::secrets::masked")]
    pub(crate) secret: Option<SecretString>,
    pub(crate) secret_file: Option<PathBuf>,
    pub(crate) timeout: String,
    pub(crate) max_backoff: String,
    pub(crate) max_pending_age: String,
}

impl Default for RawWebhook {
    fn default() -> Self {
        Self {
            url: None,
            secret: None,
            secret_file: None,
            timeout: "10s".into(),
            max_backoff: "5m".into(),
            max_pending_age: "7d".into(),
        }
    }
}

/// The systemd credential read when neither key names a secret.
pub(crate) const CREDENTIAL_NAME: &str = "webhook-secret";

/// The largest value of each `[webhook]` duration key (`config::bounds`).
pub(super) const DURATION_MAX: &[(&str, u64)] = &[
    ("webhook.timeout", HOUR),
    ("webhook.max_backoff", DAY),
    ("webhook.max_pending_age", 365 * DAY),
];

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// `None`: no webhook (the outbox is not filled and no deliverer runs).
    pub(crate) url: Option<reqwest::Url>,
    pub(crate) secret: WebhookSecret,
    /// One delivery attempt, connection to last byte.
    pub(crate) timeout: Duration,
    /// The longest wait between two attempts of a project's next row.
    pub(crate) max_backoff: Duration,
    /// A row still undelivered this long after its transition was observed is dropped
    /// from `webhook_outbox` by the prune (the history row stays): the outbox's cap.
    pub(crate) max_pending_age: Duration,
}

/// Where the signing key comes from.
#[derive(Debug, Clone)]
pub(crate) enum WebhookSecret {
    /// `webhook.secret`.
    Inline(SecretString),
    /// `webhook.secret_file`.
    File(PathBuf),
    /// Neither key: `$CREDENTIALS_DIRECTORY/webhook-secret`.
    Credential,
}

impl WebhookSettings {
    pub(crate) fn from_raw(raw: RawWebhook) -> Result<Self, ConfigError> {
        let url = raw
            .url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|text| {
                reqwest::Url::parse(text)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                    // The URL may carry a token: it is not echoed back.
                    .ok_or_else(|| {
                        ConfigError::new(
                            "webhook.url is not an http(s) URL such as \
                             https://hooks.example.com/ice-sync",
                        )
                    })
            })
            .transpose()?;
        let secret = match (raw.secret, raw.secret_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "webhook.secret and webhook.secret_file are both set: keep one of them",
                ))
            }
            (Some(s), None) => {
                use secrecy::ExposeSecret;
                if s.expose_secret().trim().is_empty() {
                    return Err(ConfigError::new(
                        "webhook.secret is empty: set the key the receiver verifies signatures with",
                    ));
                }
                WebhookSecret::Inline(s)
            }
            (None, Some(path)) => WebhookSecret::File(path),
            (None, None) => WebhookSecret::Credential,
        };
        Ok(Self {
            url,
            secret,
            timeout: parse_duration("webhook.timeout", &raw.timeout)?,
            max_backoff: parse_duration("webhook.max_backoff", &raw.max_backoff)?,
            max_pending_age: max_pending_age(&raw.max_pending_age)?,
        })
    }

    pub(crate) fn enabled(&self) -> bool {
        self.url.is_some()
    }
}

/// `webhook.max_pending_age`: 1h..=365d. Shorter would drop rows a receiver that is down
/// for a routine restart or an afternoon's outage still wants.
fn max_pending_age(value: &str) -> Result<Duration, ConfigError> {
    let d = parse_duration("webhook.max_pending_age", value)?;
    if !(Duration::from_secs(3600)..=Duration::from_secs(365 * 24 * 3600)).contains(&d) {
        return Err(ConfigError::new(format!(
            "webhook.max_pending_age = {value:?} is out of range: must be between 1h and 365d"
        )));
    }
    Ok(d)
}

/// `[webhook]`. Values are not shown: the URL may carry a token.
pub(super) fn changes(d: &mut Diff, a: &WebhookSettings, b: &WebhookSettings) {
    let WebhookSettings {
        url,
        secret,
        timeout,
        max_backoff,
        max_pending_age,
    } = a;
    let secret_key = |s: &WebhookSecret| match s {
        WebhookSecret::Inline(s) => format!("inline:{}", s.expose_secret()),
        WebhookSecret::File(p) => format!("file:{}", p.display()),
        WebhookSecret::Credential => "credential".to_string(),
    };
    d.changed("webhook.url", *url != b.url);
    d.changed(
        "webhook.secret",
        secret_key(secret) != secret_key(&b.secret),
    );
    d.changed("webhook.timeout", *timeout != b.timeout);
    d.changed("webhook.max_backoff", *max_backoff != b.max_backoff);
    d.value(
        "webhook.max_pending_age",
        max_pending_age,
        &b.max_pending_age,
        |t| dur(*t),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::load::load_vars as load;

    #[test]
    fn off_by_default_with_documented_defaults() {
        let w = load(&[]).expect("defaults").webhook;
        assert!(!w.enabled());
        assert_eq!(w.timeout, Duration::from_secs(10));
        assert_eq!(w.max_backoff, Duration::from_secs(300));
        assert_eq!(w.max_pending_age, Duration::from_secs(7 * 24 * 3600));
        assert!(matches!(w.secret, WebhookSecret::Credential));
    }

    #[test]
    fn every_key_reaches_the_settings() {
        let w = load(&[
            (
                "ICE_SYNC__WEBHOOK__URL",
                "https://hooks.example.com/x?token=t",
            ),
            (
                "ICE_SYNC__WEBHOOK__SECRET_FILE",
                "/etc/ice-sync/webhook-secret",
            ),
            ("ICE_SYNC__WEBHOOK__TIMEOUT", "3s"),
            ("ICE_SYNC__WEBHOOK__MAX_BACKOFF", "1m"),
        ])
        .expect("settings")
        .webhook;
        assert_eq!(
            w.url.as_ref().map(|u| u.as_str()),
            Some("https://hooks.example.com/x?token=t")
        );
        assert!(matches!(&w.secret, WebhookSecret::File(p) if p.ends_with("webhook-secret")));
        assert_eq!(
            (w.timeout, w.max_backoff),
            (Duration::from_secs(3), Duration::from_secs(60))
        );
    }

    #[test]
    fn mistakes_name_the_key() {
        for (pairs, key) in [
            (
                vec![("ICE_SYNC__WEBHOOK__URL", "hooks.example.com")],
                "webhook.url",
            ),
            (vec![("ICE_SYNC__WEBHOOK__URL", "ftp://h/x")], "webhook.url"),
            (
                vec![("ICE_SYNC__WEBHOOK__TIMEOUT", "soon")],
                "webhook.timeout",
            ),
            (
                vec![("ICE_SYNC__WEBHOOK__MAX_BACKOFF", "0s")],
                "webhook.max_backoff",
            ),
            (
                vec![
                    ("ICE_SYNC__WEBHOOK__SECRET", "s"),
                    ("ICE_SYNC__WEBHOOK__SECRET_FILE", "/f"),
                ],
                "webhook.secret_file",
            ),
            (vec![("ICE_SYNC__WEBHOOK__SECRET", "  ")], "webhook.secret"),
            (
                vec![("ICE_SYNC__WEBHOOK__MAX_PENDING_AGE", "10m")],
                "webhook.max_pending_age",
            ),
            (vec![("ICE_SYNC__WEBHOOK__SECRETS", "s")], "secrets"),
        ] {
            let e = format!("{:#}", load(&pairs).expect_err(key));
            assert!(e.contains(key), "{key}: {e}");
        }
        // The URL may carry a token: an invalid one is not echoed.
        let e = format!(
            "{:#}",
            load(&[("ICE_SYNC__WEBHOOK__URL", "token-abc123")]).expect_err("bad url")
        );
        assert!(!e.contains("token-abc123"), "{e}");
    }
}
