//! Source 3: systemd's `LoadCredential=access_key_id` / `access_key_secret` (and
//! optional `security_token`), files in `$CREDENTIALS_DIRECTORY`.

use std::path::PathBuf;

use secrecy::ExposeSecret;

use super::provider::{check_header_safe, Candidate};
use super::{non_empty, read_secret, CredentialProvider, Credentials, Env};

const NAME: &str = "systemd credentials";

pub(crate) fn candidate(env: Env<'_>) -> Candidate {
    let Some(dir) = non_empty(env("CREDENTIALS_DIRECTORY")).map(PathBuf::from) else {
        return Candidate::Absent {
            name: NAME,
            why: "$CREDENTIALS_DIRECTORY is not set".into(),
        };
    };
    let id_path = dir.join("access_key_id");
    if !id_path.exists() {
        return Candidate::Absent {
            name: NAME,
            why: format!("{} does not exist", id_path.display()),
        };
    }
    let read = || -> anyhow::Result<Credentials> {
        let id = read_secret(&id_path)?.expose_secret().to_string();
        let secret = read_secret(&dir.join("access_key_secret"))?;
        let token_path = dir.join("security_token");
        let security_token = if token_path.exists() {
            Some(read_secret(&token_path)?)
        } else {
            None
        };
        Ok(Credentials {
            access_key_id: id,
            access_key_secret: secret,
            security_token,
            source: format!("systemd credentials ({})", dir.display()),
        })
    };
    match read().and_then(|c| check_header_safe(&c).map(|()| c).map_err(Into::into)) {
        Ok(credentials) => Candidate::Ready {
            name: NAME,
            provider: CredentialProvider::fixed(credentials, "systemd"),
        },
        Err(e) => Candidate::Broken {
            name: NAME,
            error: format!("{e:#}"),
        },
    }
}
