//! Source 8: `ALIBABA_CLOUD_CREDENTIALS_URI`, a local credentials server (a sidecar,
//! a vault agent). A plain `GET`, no auth; status 200 and JSON with `AccessKeyId`,
//! `AccessKeySecret`, `SecurityToken` and `Expiration` (credentials.md section 7). A
//! `Code` other than `Success` is refused when present (the stricter Python reading,
//! without requiring the field as Python does).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use secrecy::SecretString;
use serde::Deserialize;

use super::provider::{Candidate, Clock, Fetch, Fetched};
use super::sts::{parse_expiration, transport_detail};
use super::{non_empty, CredentialError, CredentialProvider, Credentials, Env};

const NAME: &str = "credentials URI";

pub(crate) struct CredentialsUri {
    http: reqwest::Client,
    uri: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    code: Option<String>,
    access_key_id: Option<String>,
    access_key_secret: Option<SecretString>,
    security_token: Option<SecretString>,
    expiration: Option<String>,
}

pub(crate) fn candidate(env: Env<'_>, clock: Arc<dyn Clock>) -> Candidate {
    let Some(uri) = non_empty(env("ALIBABA_CLOUD_CREDENTIALS_URI")) else {
        return Candidate::Absent {
            name: NAME,
            why: "ALIBABA_CLOUD_CREDENTIALS_URI is not set".into(),
        };
    };
    if reqwest::Url::parse(&uri).is_err() {
        return Candidate::Broken {
            name: NAME,
            error: "ALIBABA_CLOUD_CREDENTIALS_URI is not a URL".into(),
        };
    }
    let http = match super::http::builder(Duration::from_secs(5), Duration::from_secs(15)).build() {
        Ok(h) => h,
        Err(e) => {
            return Candidate::Broken {
                name: NAME,
                error: format!("cannot build the HTTP client: {e}"),
            }
        }
    };
    Candidate::Ready {
        name: NAME,
        provider: CredentialProvider::refreshing(Box::new(CredentialsUri { http, uri }), clock),
    }
}

impl CredentialsUri {
    /// The URI without its query, which may carry a token of the credentials server.
    fn shown(&self) -> String {
        match reqwest::Url::parse(&self.uri) {
            Ok(mut u) => {
                u.set_query(None);
                let _ = u.set_password(None);
                u.to_string()
            }
            Err(_) => "(unparsable URI)".to_string(),
        }
    }
}

impl Fetch for CredentialsUri {
    fn fetch(&self) -> BoxFuture<'_, Result<Fetched, CredentialError>> {
        Box::pin(async move {
            let origin = self.describe();
            let response = self.http.get(&self.uri).send().await.map_err(|e| {
                CredentialError::transient(
                    origin.clone(),
                    format!("cannot reach it: {}", transport_detail(e)),
                )
            })?;
            let (status, body) = super::http::read_answer(response)
                .await
                .map_err(|e| CredentialError::transient(origin.clone(), e.to_string()))?;
            if status != 200 {
                return Err(CredentialError {
                    origin,
                    detail: format!("it answered HTTP {status}; check the credentials server"),
                    transient: status >= 500 || status == 429,
                });
            }
            // Never echo this body: it holds the secret.
            let a: Answer = serde_json::from_slice(&body).map_err(|_| {
                CredentialError::permanent(
                    origin.clone(),
                    "the answer is not the expected JSON".into(),
                )
            })?;
            if let Some(code) = a.code.as_deref().filter(|c| *c != "Success") {
                return Err(CredentialError::permanent(
                    origin,
                    format!("it answered Code {code:?}"),
                ));
            }
            let incomplete = || {
                CredentialError::permanent(
                    origin.clone(),
                    "the answer lacks AccessKeyId, AccessKeySecret, SecurityToken or Expiration"
                        .into(),
                )
            };
            let expiration = a
                .expiration
                .as_deref()
                .and_then(parse_expiration)
                .ok_or_else(incomplete)?;
            Ok(Fetched {
                credentials: Credentials {
                    access_key_id: a.access_key_id.ok_or_else(incomplete)?,
                    access_key_secret: a.access_key_secret.ok_or_else(incomplete)?,
                    security_token: Some(a.security_token.ok_or_else(incomplete)?),
                    source: self.describe(),
                },
                expiration: Some(expiration),
            })
        })
    }

    fn describe(&self) -> String {
        format!("{NAME} {}", self.shown())
    }

    fn kind(&self) -> &'static str {
        "credentials_uri"
    }
}
