//! Where the credentials come from, keeping them fresh, and keeping them secret.
//!
//! The chain, first source that yields credentials wins and is used from then on:
//! 1. `ice.access_key_id` + `ice.access_key_secret` (or `ice.access_key_secret_file`)
//!    from the config file or `ICE_SYNC__ICE__*` variables ([`explicit`]);
//! 2. `ALIBABA_CLOUD_ACCESS_KEY_ID` + `ALIBABA_CLOUD_ACCESS_KEY_SECRET` (+ optional
//!    `ALIBABA_CLOUD_SECURITY_TOKEN`) ([`env`]);
//! 3. files `access_key_id`, `access_key_secret`, `security_token` in systemd's
//!    `$CREDENTIALS_DIRECTORY` (`LoadCredential=`) ([`systemd`]);
//! 4. OIDC / RRSA: `ALIBABA_CLOUD_ROLE_ARN`, `ALIBABA_CLOUD_OIDC_PROVIDER_ARN`,
//!    `ALIBABA_CLOUD_OIDC_TOKEN_FILE` → `AssumeRoleWithOIDC` ([`oidc`]);
//! 5. the Alibaba Cloud CLI's `~/.aliyun/config.json` ([`cli_profile`]);
//! 6. the SDKs' `~/.alibabacloud/credentials[.ini]` ([`ini_file`]);
//! 7. the ECS instance RAM role from the metadata service ([`ecs`]);
//! 8. `ALIBABA_CLOUD_CREDENTIALS_URI`, only when set ([`uri`]).
//!
//! 2 and 4–8 are the official SDKs' default chain in its order (credentials.md
//! section 1); 1 and 3 are ice-sync's own and keep the place they had before the chain
//! existed (explicit config first; systemd's files right after the environment, since
//! both are keys the operator handed over). When `ice.role_arn` is set, whatever the
//! chain found is only the base: ice-sync assumes that role with it ([`ram_role`]).
//!
//! Secrets are `SecretString`s: their `Debug` prints a redaction marker, the only code
//! that exposes them is the signers (ICE's ACS3, STS's RPC), and no error or log line
//! built here includes one: errors echo the `Code`/`Message` of an answer, never a body
//! that could hold credentials, and never a URL with a query.

pub(crate) mod cli_profile;
pub(crate) mod ecs;
pub(crate) mod env;
pub(crate) mod explicit;
pub(crate) mod http;
pub(crate) mod ini_file;
pub(crate) mod oidc;
pub(crate) mod provider;
pub(crate) mod ram_role;
pub(crate) mod settings;
pub(crate) mod sts;
pub(crate) mod systemd;
pub(crate) mod uri;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::bail;
use secrecy::SecretString;

pub use provider::{Clock, CredentialProvider, SystemClock};
pub use settings::CredentialConfig;

use provider::Candidate;

/// One set of credentials as a request signs with them.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub access_key_secret: SecretString,
    pub security_token: Option<SecretString>,
    /// Where they were found, for `ice-sync check` and start-up logs.
    pub source: String,
}

/// A source could not produce credentials. `origin` names the source, `detail` says
/// what went wrong and what to check; neither holds a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[error("credentials from {origin}: {detail}")]
pub struct CredentialError {
    pub(crate) origin: String,
    pub(crate) detail: String,
    /// A network failure, a 5xx or throttling: asking again later may work.
    pub(crate) transient: bool,
}

impl CredentialError {
    pub(crate) fn permanent(origin: String, detail: String) -> Self {
        Self {
            origin,
            detail,
            transient: false,
        }
    }

    pub(crate) fn transient(origin: String, detail: String) -> Self {
        Self {
            origin,
            detail,
            transient: true,
        }
    }
}

/// Environment lookups, injected so tests need not mutate the process environment.
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The default chain (module docs), wrapped in `ice.role_arn`'s AssumeRole when set.
/// Only local, certain mistakes fail here (`ice.access_key_id` without a secret); the
/// chain itself is walked on the first [`CredentialProvider::credentials`] call.
pub(crate) fn default_chain(
    config: &CredentialConfig,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<CredentialProvider> {
    default_chain_with_clock(config, &env, Arc::new(SystemClock))
}

pub fn default_chain_with_clock(
    config: &CredentialConfig,
    env: Env<'_>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<CredentialProvider> {
    let mut candidates = Vec::new();
    if let Some(c) = explicit::candidate(config)? {
        candidates.push(c);
    }
    candidates.push(env::candidate(env));
    candidates.push(systemd::candidate(env));
    candidates.push(oidc::candidate(config, env, clock.clone()));
    candidates.push(cli_profile::candidate(config, env, clock.clone()));
    candidates.push(ini_file::candidate(config, env, clock.clone()));
    candidates.push(ecs::candidate(config, env, clock.clone()));
    candidates.push(uri::candidate(env, clock.clone()));
    // An explicit or environment key wins at once; no need to list the rest as tried.
    let base = match candidates.first() {
        Some(Candidate::Ready { name, provider }) if *name == explicit::NAME => provider.clone(),
        _ => CredentialProvider::chain(candidates, HINT.to_string()),
    };
    match non_empty(config.role_arn.clone()) {
        Some(role_arn) => ram_role::wrap(config, env, base, role_arn, clock),
        None => Ok(base),
    }
}

const HINT: &str = "Set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, or \
     ice.access_key_id and ice.access_key_secret_file, or LoadCredential=access_key_id / \
     access_key_secret in the systemd unit, or a profile in ~/.aliyun/config.json or \
     ~/.alibabacloud/credentials.ini (ALIBABA_CLOUD_PROFILE / ice.profile picks one), or the \
     RRSA variables ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN and \
     ALIBABA_CLOUD_OIDC_TOKEN_FILE, or attach a RAM role to this ECS instance";

#[cfg(test)]
/// Resolves the chain once and returns the credentials it found, for callers that
/// only need one request's worth (`ice-sync check`, one-shot commands).
pub(crate) async fn resolve(
    config: &CredentialConfig,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Credentials> {
    let provider = default_chain(config, env)?;
    Ok(provider.credentials().await?)
}

pub(crate) fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// `true`, as the SDKs read their `..._DISABLED` switches.
pub(crate) fn env_true(env: Env<'_>, name: &str) -> bool {
    non_empty(env(name)).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

pub(crate) fn home(env: Env<'_>) -> Option<PathBuf> {
    non_empty(env("HOME")).map(PathBuf::from)
}

pub(crate) fn read_secret(path: &Path) -> anyhow::Result<SecretString> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read credential file {}: {e}", path.display()))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        bail!("credential file {} is empty", path.display());
    }
    Ok(SecretString::from(trimmed.to_string()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    pub(crate) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let mut map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // Unit tests never reach for a real metadata service or the tester's home.
        map.entry("ALIBABA_CLOUD_ECS_METADATA_DISABLED".into())
            .or_insert_with(|| "true".into());
        map.entry("HOME".into())
            .or_insert_with(|| "/nonexistent-ice-sync-home".into());
        move |k| map.get(k).cloned()
    }

    #[tokio::test]
    async fn config_wins_over_environment() {
        let cfg = CredentialConfig {
            access_key_id: Some("CFGID".into()),
            access_key_secret: Some(SecretString::from("cfgsecret".to_string())),
            ..Default::default()
        };
        let c = resolve(&cfg, env_of(&[("ALIBABA_CLOUD_ACCESS_KEY_ID", "ENVID")]))
            .await
            .expect("ok");
        assert_eq!(c.access_key_id, "CFGID");
        assert!(c.source.contains("config"));
    }

    #[tokio::test]
    async fn environment_with_sts_token() {
        let c = resolve(
            &CredentialConfig::default(),
            env_of(&[
                ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ENVID"),
                ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "s3cr3t"),
                ("ALIBABA_CLOUD_SECURITY_TOKEN", "tok"),
            ]),
        )
        .await
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

    #[tokio::test]
    async fn systemd_credentials_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("access_key_id"), "FILEID\n").expect("write");
        std::fs::write(dir.path().join("access_key_secret"), "filesecret\n").expect("write");
        let path = dir.path().to_string_lossy().to_string();
        let c = resolve(
            &CredentialConfig::default(),
            env_of(&[("CREDENTIALS_DIRECTORY", &path)]),
        )
        .await
        .expect("ok");
        assert_eq!(c.access_key_id, "FILEID");
        assert_eq!(c.access_key_secret.expose_secret(), "filesecret");
    }

    #[tokio::test]
    async fn missing_credentials_say_what_to_set() {
        let e = resolve(&CredentialConfig::default(), env_of(&[]))
            .await
            .expect_err("none");
        assert!(e.to_string().contains("ALIBABA_CLOUD_ACCESS_KEY_ID"), "{e}");
        let half = resolve(
            &CredentialConfig::default(),
            env_of(&[("ALIBABA_CLOUD_ACCESS_KEY_ID", "X")]),
        )
        .await
        .expect_err("half");
        assert!(
            half.to_string().contains("ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
            "{half}"
        );
        let half_config = default_chain(
            &CredentialConfig {
                access_key_id: Some("X".into()),
                ..Default::default()
            },
            env_of(&[]),
        )
        .expect_err("config id without secret");
        assert!(half_config.to_string().contains("ice.access_key_secret"));
    }

    #[tokio::test]
    async fn control_characters_are_refused() {
        let e = resolve(
            &CredentialConfig::default(),
            env_of(&[
                ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ID"),
                ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "a\u{7}b"),
            ]),
        )
        .await
        .expect_err("bell");
        assert!(e.to_string().contains("control characters"), "{e}");
        assert!(!e.to_string().contains("a\u{7}b"));
    }
}
