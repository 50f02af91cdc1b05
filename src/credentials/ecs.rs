//! Source 7: the ECS instance RAM role, temporary credentials from the instance
//! metadata service (credentials.md section 6).
//!
//! Each refresh: `PUT /latest/api/token` for a metadata token (the "security hardening
//! mode", like IMDSv2); if that fails, carry on without one unless
//! `ALIBABA_CLOUD_IMDSV1_DISABLED=true`. Then the role name (configured, or
//! `GET /latest/meta-data/ram/security-credentials/`, asked again each refresh) and
//! `GET .../security-credentials/<role>`, both with the token header when there is one.
//! The address is `ice.ecs_metadata_endpoint` (default `http://100.100.100.200`), so
//! the simulator can serve it.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use secrecy::SecretString;
use serde::Deserialize;

use super::provider::{Candidate, Clock, Fetch, Fetched};
use super::sts::{parse_expiration, transport_detail};
use super::{
    env_true, non_empty, CredentialConfig, CredentialError, CredentialProvider, Credentials, Env,
};

pub(crate) const DEFAULT_ENDPOINT: &str = "http://100.100.100.200";
const NAME: &str = "ECS instance RAM role";
const TOKEN_TTL_SECS: u32 = 21_600;
const CREDENTIALS_PATH: &str = "/latest/meta-data/ram/security-credentials/";

pub(crate) struct EcsRole {
    http: reqwest::Client,
    endpoint: String,
    role_name: Option<String>,
    /// The name the metadata service gave, for the "source in use" line.
    discovered: std::sync::Mutex<Option<String>>,
    imdsv1_disabled: bool,
}

pub(crate) fn candidate(
    config: &CredentialConfig,
    env: Env<'_>,
    clock: Arc<dyn Clock>,
) -> Candidate {
    if env_true(env, "ALIBABA_CLOUD_ECS_METADATA_DISABLED") {
        return Candidate::Absent {
            name: NAME,
            why: "ALIBABA_CLOUD_ECS_METADATA_DISABLED=true".into(),
        };
    }
    build(config, env, None, clock)
}

/// Also used by the `EcsRamRole` / `ecs_ram_role` profile kinds.
pub(crate) fn build(
    config: &CredentialConfig,
    env: Env<'_>,
    role_name: Option<String>,
    clock: Arc<dyn Clock>,
) -> Candidate {
    let endpoint = non_empty(config.ecs_metadata_endpoint.clone())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
        .trim_end_matches('/')
        .to_string();
    if reqwest::Url::parse(&endpoint).is_err() {
        return Candidate::Broken {
            name: NAME,
            error: format!("ice.ecs_metadata_endpoint = {endpoint:?} is not a URL"),
        };
    }
    let role_name = role_name
        .and_then(|r| non_empty(Some(r)))
        .or_else(|| non_empty(config.ecs_role_name.clone()))
        .or_else(|| non_empty(env("ALIBABA_CLOUD_ECS_METADATA")));
    // The SDKs' 1 s connect and 1 s read: off ECS the address does not answer, and the
    // chain must not hang there.
    let http = match super::http::builder(Duration::from_secs(1), Duration::from_secs(2))
        .no_proxy()
        .build()
    {
        Ok(h) => h,
        Err(e) => {
            return Candidate::Broken {
                name: NAME,
                error: format!("cannot build the metadata HTTP client: {e}"),
            }
        }
    };
    let source = EcsRole {
        http,
        endpoint,
        role_name,
        discovered: std::sync::Mutex::new(None),
        imdsv1_disabled: env_true(env, "ALIBABA_CLOUD_IMDSV1_DISABLED"),
    };
    Candidate::Ready {
        name: NAME,
        provider: CredentialProvider::refreshing(Box::new(source), clock),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MetadataCredentials {
    code: Option<String>,
    access_key_id: Option<String>,
    access_key_secret: Option<SecretString>,
    security_token: Option<SecretString>,
    expiration: Option<String>,
}

impl EcsRole {
    fn fail(&self, transient: bool, detail: String) -> CredentialError {
        CredentialError {
            origin: self.describe(),
            detail,
            transient,
        }
    }

    async fn token(&self) -> Result<Option<String>, CredentialError> {
        let url = format!("{}/latest/api/token", self.endpoint);
        let result = self
            .http
            .put(&url)
            .header(
                "X-aliyun-ecs-metadata-token-ttl-seconds",
                TOKEN_TTL_SECS.to_string(),
            )
            .send()
            .await;
        let failure = match result {
            Ok(r) if r.status().is_success() => match super::http::read_answer(r).await {
                Ok((_, t)) if !String::from_utf8_lossy(&t).trim().is_empty() => {
                    return Ok(Some(String::from_utf8_lossy(&t).trim().to_string()))
                }
                Ok(_) => "an empty token".to_string(),
                Err(e) => e.to_string(),
            },
            Ok(r) => format!("HTTP {}", r.status().as_u16()),
            Err(e) => transport_detail(e),
        };
        if self.imdsv1_disabled {
            return Err(self.fail(
                true,
                format!(
                    "the metadata token request (PUT {url}) failed ({failure}) and \
                     ALIBABA_CLOUD_IMDSV1_DISABLED=true forbids the plain mode"
                ),
            ));
        }
        tracing::debug!(failure, "no ECS metadata token; using the plain mode");
        Ok(None)
    }

    async fn get(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> Result<(u16, Vec<u8>), CredentialError> {
        let url = format!("{}{path}", self.endpoint);
        let mut request = self.http.get(&url);
        if let Some(t) = token {
            request = request.header("X-aliyun-ecs-metadata-token", t);
        }
        let response = request.send().await.map_err(|e| {
            self.fail(
                true,
                format!(
                    "cannot reach the metadata service at {}: {}; off ECS, set \
                     ALIBABA_CLOUD_ECS_METADATA_DISABLED=true or configure another source",
                    self.endpoint,
                    transport_detail(e)
                ),
            )
        })?;
        super::http::read_answer(response).await.map_err(|e| {
            self.fail(
                true,
                format!("the metadata service at {}: {e}", self.endpoint),
            )
        })
    }

    async fn role_name(&self, token: Option<&str>) -> Result<String, CredentialError> {
        if let Some(r) = &self.role_name {
            return Ok(r.clone());
        }
        let (status, body) = self.get(CREDENTIALS_PATH, token).await?;
        let name = String::from_utf8_lossy(&body).trim().to_string();
        match status {
            200 if !name.is_empty() => {
                *self.discovered.lock().unwrap_or_else(|p| p.into_inner()) = Some(name.clone());
                Ok(name)
            }
            200 | 404 => Err(self.fail(
                false,
                "this instance has no RAM role attached: attach one in the ECS console, or set \
                 ice.ecs_role_name"
                    .into(),
            )),
            s => Err(self.fail(
                s >= 500,
                format!("the metadata service answered HTTP {s} when asked for the role name"),
            )),
        }
    }
}

impl Fetch for EcsRole {
    fn fetch(&self) -> BoxFuture<'_, Result<Fetched, CredentialError>> {
        Box::pin(async move {
            let token = self.token().await?;
            let role = self.role_name(token.as_deref()).await?;
            let path = format!("{CREDENTIALS_PATH}{role}");
            let (status, body) = self.get(&path, token.as_deref()).await?;
            if status != 200 {
                return Err(self.fail(
                    status >= 500,
                    format!(
                        "the metadata service answered HTTP {status} for role {role}; check the \
                         role name (ice.ecs_role_name) and that it is attached to this instance"
                    ),
                ));
            }
            // Never echo this body: it holds the secret.
            let parsed: MetadataCredentials = serde_json::from_slice(&body).map_err(|_| {
                self.fail(
                    false,
                    format!("the metadata answer for role {role} is not the expected JSON"),
                )
            })?;
            if parsed.code.as_deref() != Some("Success") {
                return Err(self.fail(
                    true,
                    format!(
                        "the metadata service answered Code {:?} for role {role}",
                        parsed.code.as_deref().unwrap_or("(none)")
                    ),
                ));
            }
            let incomplete = || {
                self.fail(
                    false,
                    format!("the metadata answer for role {role} lacks AccessKeyId, AccessKeySecret, SecurityToken or Expiration"),
                )
            };
            let expiration = parsed
                .expiration
                .as_deref()
                .and_then(parse_expiration)
                .ok_or_else(incomplete)?;
            Ok(Fetched {
                credentials: Credentials {
                    access_key_id: parsed.access_key_id.ok_or_else(incomplete)?,
                    access_key_secret: parsed.access_key_secret.ok_or_else(incomplete)?,
                    security_token: Some(parsed.security_token.ok_or_else(incomplete)?),
                    source: format!("{NAME} {role} via {}", self.endpoint),
                },
                expiration: Some(expiration),
            })
        })
    }

    fn describe(&self) -> String {
        let discovered = self
            .discovered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match self.role_name.as_ref().or(discovered.as_ref()) {
            Some(r) => format!("{NAME} {r} via {}", self.endpoint),
            None => format!(
                "{NAME} (name from the metadata service) via {}",
                self.endpoint
            ),
        }
    }

    fn kind(&self) -> &'static str {
        "ecs_ram_role"
    }
}
