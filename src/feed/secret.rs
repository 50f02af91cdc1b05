//! The resolved webhook: where to POST, the signing key, and the limits. The key comes
//! from `webhook.secret`, else the file `webhook.secret_file`, else the systemd
//! credential `$CREDENTIALS_DIRECTORY/webhook-secret`; none of them is an error, because
//! an unsigned webhook lets anyone who finds the URL forge transitions.
//!
//! The key is a `SecretString` (its `Debug` is redacted) and appears in no log line or
//! error; neither does the URL, which may carry a token of its own.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use secrecy::{ExposeSecret, SecretString};

use crate::config::webhook::CREDENTIAL_NAME;
use crate::config::{WebhookSecret, WebhookSettings};
use crate::credentials::read_secret;

/// What the deliverer needs to send.
#[derive(Clone)]
pub struct Webhook {
    pub(crate) url: reqwest::Url,
    pub(crate) key: SecretString,
    pub(crate) timeout: Duration,
    pub(crate) max_backoff: Duration,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("host", &self.url.host_str())
            .field("key", &self.key)
            .field("timeout", &self.timeout)
            .field("max_backoff", &self.max_backoff)
            .finish()
    }
}

impl Webhook {
    /// `None` when `webhook.url` is unset. `env` is the process environment (for
    /// `CREDENTIALS_DIRECTORY`).
    pub fn resolve(
        settings: &WebhookSettings,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Option<Webhook>> {
        let Some(url) = settings.url.clone() else {
            return Ok(None);
        };
        let key = match &settings.secret {
            WebhookSecret::Inline(s) => SecretString::from(s.expose_secret().trim().to_string()),
            WebhookSecret::File(path) => read_secret(path)
                .with_context(|| format!("webhook.secret_file = {}", path.display()))?,
            WebhookSecret::Credential => {
                let path = env("CREDENTIALS_DIRECTORY")
                    .map(|d| d.trim().to_string())
                    .filter(|d| !d.is_empty())
                    .map(|d| PathBuf::from(d).join(CREDENTIAL_NAME));
                match path {
                    Some(path) if path.exists() => read_secret(&path)
                        .with_context(|| format!("the systemd credential {CREDENTIAL_NAME}"))?,
                    _ => bail!(
                        "webhook.url is set but no signing secret is: set webhook.secret or \
                         webhook.secret_file, or pass the systemd credential {CREDENTIAL_NAME} \
                         (LoadCredential={CREDENTIAL_NAME}:/etc/ice-sync/{CREDENTIAL_NAME}); \
                         unsigned webhooks are refused"
                    ),
                }
            }
        };
        Ok(Some(Webhook {
            url,
            key,
            timeout: settings.timeout,
            max_backoff: settings.max_backoff,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> WebhookSettings {
        let mut all = vec![("ICE_SYNC__WEBHOOK__URL", "http://127.0.0.1:9/hook")];
        all.extend_from_slice(pairs);
        crate::config::load_from(
            None,
            all.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
        )
        .expect("settings")
        .webhook
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn each_source_of_the_key() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("secret");
        std::fs::write(&file, "from-file\n").expect("write");
        std::fs::write(dir.path().join(CREDENTIAL_NAME), "from-credential\n").expect("write");
        let key = |w: Option<Webhook>| w.expect("on").key.expose_secret().to_string();

        let inline = Webhook::resolve(
            &settings(&[("ICE_SYNC__WEBHOOK__SECRET", "inline")]),
            no_env,
        );
        assert_eq!(key(inline.expect("inline")), "inline");
        let path = file.to_string_lossy().to_string();
        let from_file = Webhook::resolve(
            &settings(&[("ICE_SYNC__WEBHOOK__SECRET_FILE", &path)]),
            no_env,
        );
        assert_eq!(key(from_file.expect("file")), "from-file");
        let dir_text = dir.path().to_string_lossy().to_string();
        let credential = Webhook::resolve(&settings(&[]), |k| {
            (k == "CREDENTIALS_DIRECTORY").then(|| dir_text.clone())
        });
        assert_eq!(key(credential.expect("credential")), "from-credential");
        // The key never shows in Debug.
        let w = Webhook::resolve(
            &settings(&[("ICE_SYNC__WEBHOOK__SECRET", "s3cr3t")]),
            no_env,
        )
        .expect("ok")
        .expect("on");
        assert!(!format!("{w:?}").contains("s3cr3t"));
    }

    #[test]
    fn a_url_without_a_secret_is_refused_naming_the_keys() {
        let e = Webhook::resolve(&settings(&[]), no_env).expect_err("unsigned");
        let text = format!("{e:#}");
        for key in ["webhook.secret", "webhook.secret_file", "webhook-secret"] {
            assert!(text.contains(key), "{text}");
        }
        let missing = Webhook::resolve(
            &settings(&[(
                "ICE_SYNC__WEBHOOK__SECRET_FILE",
                "/nonexistent/ice-sync-secret",
            )]),
            no_env,
        )
        .expect_err("missing file");
        assert!(format!("{missing:#}").contains("webhook.secret_file"));
        let off = crate::config::load_from(None, Vec::new()).expect("defaults");
        assert!(Webhook::resolve(&off.webhook, no_env)
            .expect("off")
            .is_none());
    }
}
