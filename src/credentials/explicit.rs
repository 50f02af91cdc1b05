//! Source 1: an AccessKey written into ice-sync's own config (`ice.access_key_id` with
//! `ice.access_key_secret` or `ice.access_key_secret_file`). Explicit intent: a broken
//! setting here is an error at start-up, not a reason to try the next source.

use anyhow::{bail, Context};

use super::provider::{check_header_safe, Candidate};
use super::{non_empty, read_secret, CredentialConfig, CredentialProvider, Credentials};

pub(crate) const NAME: &str = "config";

pub(crate) fn candidate(config: &CredentialConfig) -> anyhow::Result<Option<Candidate>> {
    let Some(id) = non_empty(config.access_key_id.clone()) else {
        return Ok(None);
    };
    let (secret, source) = match (&config.access_key_secret, &config.access_key_secret_file) {
        (Some(s), _) => (s.clone(), "config (ice.access_key_secret)".to_string()),
        (None, Some(path)) => (
            read_secret(path)
                .with_context(|| format!("ice.access_key_secret_file = {}", path.display()))?,
            format!("config (ice.access_key_secret_file {})", path.display()),
        ),
        (None, None) => bail!(
            "ice.access_key_id is set but neither ice.access_key_secret nor \
             ice.access_key_secret_file is; set one of them"
        ),
    };
    let credentials = Credentials {
        access_key_id: id,
        access_key_secret: secret,
        security_token: config.security_token.clone(),
        source,
    };
    check_header_safe(&credentials)?;
    let kind = if credentials.security_token.is_some() {
        "config_sts"
    } else {
        "config"
    };
    Ok(Some(Candidate::Ready {
        name: NAME,
        provider: CredentialProvider::fixed(credentials, kind),
    }))
}
