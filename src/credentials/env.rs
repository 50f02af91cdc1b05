//! Source 2: `ALIBABA_CLOUD_ACCESS_KEY_ID` + `ALIBABA_CLOUD_ACCESS_KEY_SECRET`, with
//! `ALIBABA_CLOUD_SECURITY_TOKEN` making them STS credentials (which whoever set the
//! variables must renew: ice-sync cannot).

use secrecy::SecretString;

use super::provider::{check_header_safe, Candidate};
use super::{non_empty, CredentialProvider, Credentials, Env};

const NAME: &str = "environment";

pub(crate) fn candidate(env: Env<'_>) -> Candidate {
    let id = non_empty(env("ALIBABA_CLOUD_ACCESS_KEY_ID"));
    let secret = non_empty(env("ALIBABA_CLOUD_ACCESS_KEY_SECRET"));
    let (id, secret) =
        match (id, secret) {
            (Some(id), Some(secret)) => (id, secret),
            (Some(_), None) => return Candidate::Broken {
                name: NAME,
                error:
                    "ALIBABA_CLOUD_ACCESS_KEY_ID is set but ALIBABA_CLOUD_ACCESS_KEY_SECRET is not"
                        .into(),
            },
            (None, Some(_)) => return Candidate::Broken {
                name: NAME,
                error:
                    "ALIBABA_CLOUD_ACCESS_KEY_SECRET is set but ALIBABA_CLOUD_ACCESS_KEY_ID is not"
                        .into(),
            },
            (None, None) => {
                return Candidate::Absent {
                    name: NAME,
                    why: "ALIBABA_CLOUD_ACCESS_KEY_ID is not set".into(),
                }
            }
        };
    let credentials = Credentials {
        access_key_id: id,
        access_key_secret: SecretString::from(secret),
        security_token: non_empty(env("ALIBABA_CLOUD_SECURITY_TOKEN")).map(SecretString::from),
        source: "environment (ALIBABA_CLOUD_ACCESS_KEY_ID)".to_string(),
    };
    if let Err(e) = check_header_safe(&credentials) {
        return Candidate::Broken {
            name: NAME,
            error: e.detail,
        };
    }
    Candidate::Ready {
        name: NAME,
        provider: CredentialProvider::fixed(credentials, "env"),
    }
}
