//! STS 2015-04-01 as the credential sources use it: `AssumeRole` (signed) and
//! `AssumeRoleWithOIDC` (anonymous), plus the RPC signature STS speaks.
//!
//! STS is called RPC style with the **HMAC-SHA1 "signature v1"**, not ACS3
//! (credentials.md section 9): a `POST /` whose query holds the common parameters and
//! whose form body holds the action's. The signature covers both sets together; it is
//! computed by `ice_wire::rpc_signing`, which the simulator verifies with too.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ice_wire::rpc_signing::{form_encode, rpc_signature, VERSION};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::provider::Fetched;
use super::{non_empty, CredentialConfig, CredentialError, Credentials, Env};

pub(crate) const DEFAULT_ENDPOINT: &str = "https://sts.aliyuncs.com";
pub(crate) const DEFAULT_DURATION_SECS: u32 = 3600;
const USER_AGENT: &str = concat!("ice-sync/", env!("CARGO_PKG_VERSION"));

/// `ice.sts_endpoint`, else the regional (or VPC) host of `ALIBABA_CLOUD_STS_REGION`
/// or a profile's `sts_region`, else `sts.aliyuncs.com`.
pub(crate) fn endpoint(
    config: &CredentialConfig,
    env: Env<'_>,
    profile_region: Option<&str>,
    profile_vpc: bool,
) -> String {
    if let Some(e) = non_empty(config.sts_endpoint.clone()) {
        return e.trim_end_matches('/').to_string();
    }
    let region = profile_region
        .map(str::to_string)
        .and_then(|r| non_empty(Some(r)))
        .or_else(|| non_empty(env("ALIBABA_CLOUD_STS_REGION")));
    let vpc = profile_vpc || super::env_true(env, "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED");
    match region {
        Some(r) if vpc => format!("https://sts-vpc.{r}.aliyuncs.com"),
        Some(r) => format!("https://sts.{r}.aliyuncs.com"),
        None => DEFAULT_ENDPOINT.to_string(),
    }
}

/// The session name: `ice.role_session_name`, `ALIBABA_CLOUD_ROLE_SESSION_NAME`, or
/// `ice-sync`.
pub(crate) fn session_name(config: &CredentialConfig, env: Env<'_>) -> String {
    non_empty(config.role_session_name.clone())
        .or_else(|| non_empty(env("ALIBABA_CLOUD_ROLE_SESSION_NAME")))
        .unwrap_or_else(|| "ice-sync".to_string())
}

/// What AssumeRole / AssumeRoleWithOIDC ask for.
#[derive(Clone, Debug)]
pub(crate) struct RoleRequest {
    pub(crate) role_arn: String,
    pub(crate) session_name: String,
    pub(crate) duration_secs: u32,
    pub(crate) policy: Option<String>,
    pub external_id: Option<String>,
}

pub(crate) struct StsClient {
    http: reqwest::Client,
    endpoint: reqwest::Url,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsResponse {
    request_id: Option<String>,
    code: Option<String>,
    message: Option<String>,
    credentials: Option<StsCredentials>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsCredentials {
    access_key_id: Option<String>,
    access_key_secret: Option<SecretString>,
    security_token: Option<SecretString>,
    expiration: Option<String>,
}

pub(crate) fn parse_expiration(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value.trim())
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// A reqwest error without its URL: an AssumeRole URL carries the base token.
pub(crate) fn transport_detail(e: reqwest::Error) -> String {
    let timeout = e.is_timeout();
    let e = e.without_url();
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    if timeout {
        detail.push_str(" (timed out)");
    }
    detail
}

impl StsClient {
    pub(crate) fn new(endpoint: &str) -> Result<Self, String> {
        let endpoint = reqwest::Url::parse(endpoint)
            .map_err(|e| format!("the STS endpoint {endpoint:?} is not a URL: {e}"))?;
        if endpoint.host_str().is_none() {
            return Err(format!("the STS endpoint {endpoint} has no host"));
        }
        // The SDKs' timeouts: 5 s to connect, 10 s to read.
        // Redirects off: an AssumeRoleWithOIDC body carries the OIDC token.
        let http = super::http::builder(Duration::from_secs(5), Duration::from_secs(15))
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| format!("cannot build the STS HTTP client: {e}"))?;
        Ok(Self { http, endpoint })
    }

    pub(crate) fn endpoint(&self) -> String {
        self.endpoint.as_str().trim_end_matches('/').to_string()
    }

    fn common(action: &str) -> Vec<(String, String)> {
        vec![
            ("Action".into(), action.into()),
            ("Version".into(), VERSION.into()),
            ("Format".into(), "JSON".into()),
            (
                "Timestamp".into(),
                Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            ),
        ]
    }

    fn role_body(request: &RoleRequest) -> Vec<(String, String)> {
        let mut body = vec![
            ("RoleArn".to_string(), request.role_arn.clone()),
            ("RoleSessionName".to_string(), request.session_name.clone()),
            (
                "DurationSeconds".to_string(),
                request.duration_secs.to_string(),
            ),
        ];
        if let Some(p) = &request.policy {
            body.push(("Policy".into(), p.clone()));
        }
        body
    }

    /// `AssumeRole`, signed with `base`.
    pub(crate) async fn assume_role(
        &self,
        base: &Credentials,
        request: &RoleRequest,
        origin: &str,
    ) -> Result<Fetched, CredentialError> {
        let mut query = Self::common("AssumeRole");
        query.extend([
            ("SignatureMethod".to_string(), "HMAC-SHA1".to_string()),
            ("SignatureVersion".to_string(), "1.0".to_string()),
            (
                "SignatureNonce".to_string(),
                format!("{:032x}", rand::thread_rng().gen::<u128>()),
            ),
            ("AccessKeyId".to_string(), base.access_key_id.clone()),
        ]);
        if let Some(token) = &base.security_token {
            query.push(("SecurityToken".into(), token.expose_secret().to_string()));
        }
        let mut body = Self::role_body(request);
        if let Some(id) = &request.external_id {
            body.push(("ExternalId".into(), id.clone()));
        }
        let all: Vec<(String, String)> = query.iter().chain(body.iter()).cloned().collect();
        let signature = rpc_signature("POST", &all, base.access_key_secret.expose_secret());
        query.push(("Signature".into(), signature));
        self.send(&query, &body, origin).await
    }

    /// `AssumeRoleWithOIDC`: anonymous, the OIDC token is the proof.
    pub(crate) async fn assume_role_with_oidc(
        &self,
        request: &RoleRequest,
        provider_arn: &str,
        token: &SecretString,
        origin: &str,
    ) -> Result<Fetched, CredentialError> {
        let query = Self::common("AssumeRoleWithOIDC");
        let mut body = Self::role_body(request);
        body.push(("OIDCProviderArn".into(), provider_arn.to_string()));
        body.push(("OIDCToken".into(), token.expose_secret().to_string()));
        self.send(&query, &body, origin).await
    }

    async fn send(
        &self,
        query: &[(String, String)],
        body: &[(String, String)],
        origin: &str,
    ) -> Result<Fetched, CredentialError> {
        let mut url = self.endpoint.clone();
        url.set_path("/");
        url.set_query(Some(&form_encode(query)));
        let response = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(form_encode(body))
            .send()
            .await
            .map_err(|e| {
                CredentialError::transient(
                    origin.to_string(),
                    format!(
                        "cannot reach STS at {}: {}; check ice.sts_endpoint and the network",
                        self.endpoint(),
                        transport_detail(e)
                    ),
                )
            })?;
        let (status, bytes) = super::http::read_answer(response).await.map_err(|e| {
            CredentialError::transient(
                origin.to_string(),
                format!("STS at {}: {e}", self.endpoint()),
            )
        })?;
        answer(status, &bytes, origin, &self.endpoint())
    }
}

/// STS's answer read: the credentials, or an error saying whether a retry may help.
fn answer(
    status: u16,
    bytes: &[u8],
    origin: &str,
    endpoint: &str,
) -> Result<Fetched, CredentialError> {
    let parsed: Option<StsResponse> = serde_json::from_slice(bytes).ok();
    let Some(parsed) = parsed else {
        return Err(CredentialError {
            origin: origin.to_string(),
            detail: format!(
                "STS at {} answered HTTP {status} with a body that is not STS JSON; \
                 check ice.sts_endpoint (a proxy?)",
                endpoint
            ),
            transient: status >= 500 || status == 429,
        });
    };
    if !(200..300).contains(&status) || parsed.credentials.is_none() {
        let code = parsed.code.unwrap_or_else(|| "(no code)".into());
        let transient = status >= 500 || status == 429 || code.starts_with("Throttling");
        return Err(CredentialError {
            origin: origin.to_string(),
            detail: format!(
                "STS refused: {code}: {} (HTTP {status}, request id {}); {}",
                parsed.message.unwrap_or_default(),
                parsed.request_id.as_deref().unwrap_or("-"),
                sts_hint(&code)
            ),
            transient,
        });
    }
    let c = parsed.credentials.ok_or_else(|| {
        CredentialError::permanent(origin.into(), "STS answered without Credentials".into())
    })?;
    let missing = || {
        CredentialError::permanent(
            origin.to_string(),
            "STS answered with incomplete Credentials (AccessKeyId, AccessKeySecret, \
             SecurityToken and Expiration are all needed)"
                .to_string(),
        )
    };
    let expiration = c
        .expiration
        .as_deref()
        .and_then(parse_expiration)
        .ok_or_else(missing)?;
    Ok(Fetched {
        credentials: Credentials {
            access_key_id: c.access_key_id.ok_or_else(missing)?,
            access_key_secret: c.access_key_secret.ok_or_else(missing)?,
            security_token: Some(c.security_token.ok_or_else(missing)?),
            source: origin.to_string(),
        },
        expiration: Some(expiration),
    })
}

fn sts_hint(code: &str) -> &'static str {
    match code {
        "NoPermission" | "AuthenticationFail.NoPermission" => {
            "the caller may not assume this role: check the role's trust policy and that the \
             base identity has sts:AssumeRole (AliyunSTSAssumeRoleAccess); root accounts cannot"
        }
        c if c.starts_with("EntityNotExist") => {
            "check the role ARN (acs:ram::<account>:role/<name>)"
        }
        c if c.starts_with("AuthenticationFail.OIDCToken") => {
            "check the OIDC token file (ALIBABA_CLOUD_OIDC_TOKEN_FILE) is current and issued for \
             this provider"
        }
        c if c.starts_with("AuthenticationFail") => {
            "check ALIBABA_CLOUD_OIDC_PROVIDER_ARN and the role's trust policy"
        }
        c if c.starts_with("InvalidAccessKeyId") || c == "SignatureDoesNotMatch" => {
            "the base AccessKey used to assume the role was refused: check it"
        }
        c if c.starts_with("InvalidSecurityToken") || c == "MissingSecurityToken" => {
            "the base credentials' STS token is expired or invalid"
        }
        c if c.starts_with("InvalidParameter") => {
            "check ice.role_session_name (2-64 of A-Za-z0-9.@-_) and the duration"
        }
        c if c.starts_with("Throttling") => "STS throttled the request; it will be retried",
        _ => "see the STS error code reference",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_region_and_vpc() {
        let none = |_: &str| None;
        let cfg = CredentialConfig::default();
        assert_eq!(endpoint(&cfg, &none, None, false), DEFAULT_ENDPOINT);
        let region = |k: &str| (k == "ALIBABA_CLOUD_STS_REGION").then(|| "cn-beijing".to_string());
        assert_eq!(
            endpoint(&cfg, &region, None, false),
            "https://sts.cn-beijing.aliyuncs.com"
        );
        assert_eq!(
            endpoint(&cfg, &none, Some("cn-shanghai"), true),
            "https://sts-vpc.cn-shanghai.aliyuncs.com"
        );
        let explicit = CredentialConfig {
            sts_endpoint: Some("http://127.0.0.1:9/".into()),
            ..Default::default()
        };
        assert_eq!(
            endpoint(&explicit, &region, None, false),
            "http://127.0.0.1:9"
        );
    }
}
