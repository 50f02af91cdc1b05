//! Where the AccessKey comes from, and keeping it secret once we have it.
//!
//! Lookup order, first complete match wins:
//! 1. `ice.access_key_id` + `ice.access_key_secret` (or `ice.access_key_secret_file`)
//!    from the config file or `ICE_SYNC__ICE__*` variables;
//! 2. `ALIBABA_CLOUD_ACCESS_KEY_ID` + `ALIBABA_CLOUD_ACCESS_KEY_SECRET` (+ optional
//!    `ALIBABA_CLOUD_SECURITY_TOKEN`), the variables every Alibaba Cloud SDK reads;
//! 3. files `access_key_id`, `access_key_secret`, `security_token` in systemd's
//!    `$CREDENTIALS_DIRECTORY` (`LoadCredential=`).
//!
//! The secret and the token are `SecretString`s: their `Debug` prints a redaction marker,
//! and the only place that exposes them is the signer.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use secrecy::{ExposeSecret, SecretString};

#[derive(Debug, Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub access_key_secret: SecretString,
    pub security_token: Option<SecretString>,
    /// Where they were found, for `ice-sync check` and start-up logs.
    pub source: String,
}

/// The credential-related config keys, as read from the config layers.
#[derive(Debug, Clone, Default)]
pub struct CredentialConfig {
    pub access_key_id: Option<String>,
    pub access_key_secret: Option<SecretString>,
    pub access_key_secret_file: Option<PathBuf>,
    pub security_token: Option<SecretString>,
}

/// Environment lookups are injected so tests need not mutate the process environment.
pub fn resolve(
    config: &CredentialConfig,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Credentials> {
    let creds = resolve_unchecked(config, &env)?;
    for (what, value) in [
        ("access key id", creds.access_key_id.as_str()),
        ("access key secret", creds.access_key_secret.expose_secret()),
        (
            "security token",
            creds
                .security_token
                .as_ref()
                .map(|t| t.expose_secret())
                .unwrap_or(""),
        ),
    ] {
        // These go into HTTP headers; a stray newline from a file would break every request.
        if value.chars().any(|c| c.is_control()) {
            bail!(
                "the {what} from {} contains control characters; remove them",
                creds.source
            );
        }
    }
    Ok(creds)
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn resolve_unchecked(
    config: &CredentialConfig,
    env: &impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Credentials> {
    if let Some(id) = non_empty(config.access_key_id.clone()) {
        let (secret, source) = match (&config.access_key_secret, &config.access_key_secret_file) {
            (Some(s), _) => (s.clone(), "config (ice.access_key_secret)".to_string()),
            (None, Some(path)) => (
                read_secret(path).with_context(|| {
                    format!("ice.access_key_secret_file = {}", path.display())
                })?,
                format!("config (ice.access_key_secret_file {})", path.display()),
            ),
            (None, None) => bail!(
                "ice.access_key_id is set but neither ice.access_key_secret nor ice.access_key_secret_file is"
            ),
        };
        return Ok(Credentials {
            access_key_id: id,
            access_key_secret: secret,
            security_token: config.security_token.clone(),
            source,
        });
    }
    if let Some(id) = non_empty(env("ALIBABA_CLOUD_ACCESS_KEY_ID")) {
        let secret = non_empty(env("ALIBABA_CLOUD_ACCESS_KEY_SECRET")).context(
            "ALIBABA_CLOUD_ACCESS_KEY_ID is set but ALIBABA_CLOUD_ACCESS_KEY_SECRET is not",
        )?;
        return Ok(Credentials {
            access_key_id: id,
            access_key_secret: SecretString::from(secret),
            security_token: non_empty(env("ALIBABA_CLOUD_SECURITY_TOKEN")).map(SecretString::from),
            source: "environment (ALIBABA_CLOUD_ACCESS_KEY_ID)".to_string(),
        });
    }
    if let Some(dir) = non_empty(env("CREDENTIALS_DIRECTORY")) {
        let dir = PathBuf::from(dir);
        let id_path = dir.join("access_key_id");
        if id_path.exists() {
            let id = read_secret(&id_path)?.expose_secret().to_string();
            let secret = read_secret(&dir.join("access_key_secret"))?;
            let token_path = dir.join("security_token");
            let security_token = if token_path.exists() {
                Some(read_secret(&token_path)?)
            } else {
                None
            };
            return Ok(Credentials {
                access_key_id: id,
                access_key_secret: secret,
                security_token,
                source: format!("systemd credentials ({})", dir.display()),
            });
        }
    }
    bail!(
        "no Alibaba Cloud credentials found: set ALIBABA_CLOUD_ACCESS_KEY_ID and \
         ALIBABA_CLOUD_ACCESS_KEY_SECRET, or ice.access_key_id and ice.access_key_secret_file, \
         or LoadCredential=access_key_id/access_key_secret in the systemd unit"
    )
}

fn read_secret(path: &Path) -> anyhow::Result<SecretString> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read credential file {}", path.display()))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        bail!("credential file {} is empty", path.display());
    }
    Ok(SecretString::from(trimmed.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn config_wins_over_environment() {
        let cfg = CredentialConfig {
            access_key_id: Some("CFGID".into()),
            access_key_secret: Some(SecretString::from("cfgsecret".to_string())),
            ..Default::default()
        };
        let c = resolve(&cfg, env_of(&[("ALIBABA_CLOUD_ACCESS_KEY_ID", "ENVID")])).expect("ok");
        assert_eq!(c.access_key_id, "CFGID");
        assert!(c.source.contains("config"));
    }

    #[test]
    fn environment_with_sts_token() {
        let c = resolve(
            &CredentialConfig::default(),
            env_of(&[
                ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ENVID"),
                ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "s3cr3t"),
                ("ALIBABA_CLOUD_SECURITY_TOKEN", "tok"),
            ]),
        )
        .expect("ok");
        assert_eq!(c.access_key_id, "ENVID");
        assert_eq!(
            c.security_token.as_ref().map(|t| t.expose_secret()),
            Some("tok")
        );
        // Debug output of the whole struct never shows the secret or the token.
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("s3cr3t") && !debug.contains("tok\""),
            "{debug}"
        );
    }

    #[test]
    fn systemd_credentials_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("access_key_id"), "FILEID\n").expect("write");
        std::fs::write(dir.path().join("access_key_secret"), "filesecret\n").expect("write");
        let path = dir.path().to_string_lossy().to_string();
        let c = resolve(
            &CredentialConfig::default(),
            env_of(&[("CREDENTIALS_DIRECTORY", &path)]),
        )
        .expect("ok");
        assert_eq!(c.access_key_id, "FILEID");
        assert_eq!(c.access_key_secret.expose_secret(), "filesecret");
    }

    #[test]
    fn missing_credentials_say_what_to_set() {
        let e = resolve(&CredentialConfig::default(), env_of(&[])).expect_err("none");
        assert!(e.to_string().contains("ALIBABA_CLOUD_ACCESS_KEY_ID"));
        let half = resolve(
            &CredentialConfig::default(),
            env_of(&[("ALIBABA_CLOUD_ACCESS_KEY_ID", "X")]),
        )
        .expect_err("half");
        assert!(half.to_string().contains("ALIBABA_CLOUD_ACCESS_KEY_SECRET"));
    }
}
