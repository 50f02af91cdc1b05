//! A loopback STS: `AssumeRole` (RPC HMAC-SHA1 signature, verified with the same
//! `ice_wire::rpc_signing` functions the daemon signs with) and the anonymous
//! `AssumeRoleWithOIDC`. Both issue temporary credentials that expire; the ICE side of
//! the simulator accepts them until then (`IssuedKeys`), and answers
//! `InvalidSecurityToken.Expired` after.
//!
//! Requests reach it as `POST /` with `Action=` in the query and no `x-acs-action`
//! header, which is how `lib.rs` tells them from ICE calls.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, NaiveDateTime, Utc};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::json;

use super::api::ApiError;
use super::auth::{self, NonceCache};
use ice_wire::rpc_signing::{rpc_signature, VERSION};

pub const DEFAULT_ROLE_ARN: &str = "acs:ram::1234567890123456:role/ice-sync";
pub const DEFAULT_OIDC_PROVIDER_ARN: &str = "acs:ram::1234567890123456:oidc-provider/ack-rrsa";
pub const DEFAULT_OIDC_TOKEN: &str =
    "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6aWNlLXN5bmMifQ.c2lt";
const MAX_SESSION_SECS: u64 = 3600;
const MAX_CLOCK_SKEW_SECS: i64 = 15 * 60;

/// One set of temporary credentials handed out by STS or the metadata service.
#[derive(Clone, Debug)]
pub(crate) struct IssuedKey {
    pub secret: String,
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
}

#[derive(Default)]
pub(crate) struct IssuedKeys {
    keys: HashMap<String, IssuedKey>,
    counter: u64,
}

impl IssuedKeys {
    /// Issues credentials valid for `lifetime`, with the expiry truncated to whole
    /// seconds as the `Expiration` field shows it (so both sides agree exactly).
    pub(crate) fn issue(
        &mut self,
        rng: &mut StdRng,
        now: DateTime<Utc>,
        lifetime: Duration,
    ) -> (String, IssuedKey) {
        self.counter += 1;
        let id = format!("STS.NSim{:012}{:04x}", self.counter, rng.gen::<u16>());
        let expires_at = now + chrono::Duration::from_std(lifetime).unwrap_or_default();
        let expires_at =
            DateTime::<Utc>::from_timestamp(expires_at.timestamp(), 0).unwrap_or(expires_at);
        let key = IssuedKey {
            secret: format!("{:032x}", rng.gen::<u128>()),
            token: format!(
                "CAISsim{:032x}{:032x}",
                rng.gen::<u128>(),
                rng.gen::<u128>()
            ),
            expires_at,
            revoked: false,
        };
        self.keys.insert(id.clone(), key.clone());
        (id, key)
    }

    pub(crate) fn insert(&mut self, id: &str, key: IssuedKey) {
        self.keys.insert(id.to_string(), key);
    }

    pub(crate) fn get(&self, id: &str) -> Option<&IssuedKey> {
        self.keys.get(id)
    }

    pub(crate) fn revoke_all(&mut self) {
        for k in self.keys.values_mut() {
            k.revoked = true;
        }
    }

    pub(crate) fn secrets(&self) -> Vec<String> {
        self.keys
            .values()
            .flat_map(|k| [k.secret.clone(), k.token.clone()])
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

/// What the STS side accepts and how it behaves.
pub(crate) struct StsState {
    pub role_arn: String,
    pub oidc_provider_arn: String,
    pub oidc_token: String,
    /// Overrides `DurationSeconds` (tests use seconds-long credentials).
    pub lifetime: Option<Duration>,
    /// The next N requests get a 503.
    pub fail_next: u32,
    pub calls: HashMap<String, u64>,
    pub nonces: NonceCache,
}

impl Default for StsState {
    fn default() -> Self {
        Self {
            role_arn: DEFAULT_ROLE_ARN.into(),
            oidc_provider_arn: DEFAULT_OIDC_PROVIDER_ARN.into(),
            oidc_token: DEFAULT_OIDC_TOKEN.into(),
            lifetime: None,
            fail_next: 0,
            calls: HashMap::new(),
            nonces: NonceCache::new(100_000),
        }
    }
}

/// Whether a request is meant for STS: an RPC `Action` and no ACS3 action header.
pub(crate) fn is_sts(query: &[(String, String)], acs_action: &str) -> bool {
    acs_action.is_empty()
        && query
            .iter()
            .any(|(k, v)| k == "Action" && v.starts_with("AssumeRole"))
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn bad(code: &str, message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

fn parse_timestamp(value: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%SZ")
        .map(|n| n.and_utc())
        .ok()
}

/// The base AccessKey the simulator knows, and where to find issued ones.
pub(crate) struct Keys<'a> {
    pub base: &'a auth::Credentials,
    pub issued: &'a IssuedKeys,
}

/// Checks the RPC signature of an AssumeRole and returns the caller's AccessKey ID.
fn verify_signed(
    method: &str,
    params: &[(String, String)],
    keys: &Keys<'_>,
    nonces: &mut NonceCache,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    for name in ["AccessKeyId", "Signature", "SignatureNonce", "Timestamp"] {
        if param(params, name).is_none() {
            return Err(bad(
                &format!("Missing{name}"),
                &format!("{name} is mandatory for this action."),
            ));
        }
    }
    if param(params, "SignatureMethod") != Some("HMAC-SHA1")
        || param(params, "SignatureVersion") != Some("1.0")
    {
        return Err(bad(
            "InvalidSignatureMethod",
            "STS expects SignatureMethod=HMAC-SHA1 and SignatureVersion=1.0.",
        ));
    }
    let id = param(params, "AccessKeyId").unwrap_or_default();
    let (secret, expected_token) = if id == keys.base.access_key_id {
        (
            keys.base.access_key_secret.clone(),
            keys.base.security_token.clone(),
        )
    } else if let Some(k) = keys.issued.get(id) {
        if k.revoked || k.expires_at <= now {
            return Err(bad(
                "InvalidSecurityToken.Expired",
                "Specified SecurityToken is expired.",
            ));
        }
        (k.secret.clone(), Some(k.token.clone()))
    } else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        ));
    };
    match (expected_token.as_deref(), param(params, "SecurityToken")) {
        (None, None) => {}
        (Some(_), None) => {
            return Err(bad(
                "MissingSecurityToken",
                "SecurityToken is mandatory for this action.",
            ))
        }
        (Some(e), Some(t)) if e == t => {}
        _ => {
            return Err(bad(
                "InvalidSecurityToken.MismatchWithAccessKey",
                "Specified SecurityToken mismatch with the AccessKey.",
            ))
        }
    }
    let ts = param(params, "Timestamp")
        .and_then(parse_timestamp)
        .ok_or_else(|| {
            bad(
                "InvalidTimeStamp.Format",
                "Specified time stamp or date value is not well formatted.",
            )
        })?;
    if (now - ts).num_seconds().abs() > MAX_CLOCK_SKEW_SECS {
        return Err(bad(
            "InvalidTimeStamp.Expired",
            "Specified time stamp or date value is expired.",
        ));
    }
    let expected = rpc_signature(method, params, &secret);
    if param(params, "Signature") != Some(expected.as_str()) {
        return Err(bad(
            "SignatureDoesNotMatch",
            "Specified signature is not matched with our calculation.",
        ));
    }
    if !nonces.insert(param(params, "SignatureNonce").unwrap_or_default()) {
        return Err(bad(
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        ));
    }
    Ok(id.to_string())
}

fn check_role(
    params: &[(String, String)],
    state: &StsState,
    oidc: bool,
) -> Result<Duration, ApiError> {
    let role = param(params, "RoleArn").unwrap_or_default();
    if role.is_empty() {
        return Err(bad(
            "MissingRoleArn",
            "RoleArn is mandatory for this action.",
        ));
    }
    if role != state.role_arn {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "EntityNotExist.Role",
            "The role not exists.",
        ));
    }
    match param(params, "RoleSessionName") {
        Some(name)
            if (2..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b)) => {}
        None if oidc => {}
        _ => {
            return Err(bad(
                "InvalidParameter.RoleSessionName",
                "The parameter RoleSessionName is wrongly formed.",
            ))
        }
    }
    let secs: u64 = match param(params, "DurationSeconds") {
        None => 3600,
        Some(v) => v.parse().map_err(|_| {
            bad(
                "InvalidParameter.DurationSeconds",
                "The parameter DurationSeconds is wrongly formed.",
            )
        })?,
    };
    if !(900..=MAX_SESSION_SECS).contains(&secs) {
        return Err(bad(
            "InvalidParameter.DurationSeconds",
            "The Min/Max value of DurationSeconds is 15min/1hr.",
        ));
    }
    Ok(state.lifetime.unwrap_or(Duration::from_secs(secs)))
}

/// Everything an STS request needs from the shared state, borrowed at once.
pub(crate) struct Ctx<'a> {
    pub state: &'a mut StsState,
    pub keys: Keys<'a>,
    pub issue: &'a mut dyn FnMut(Duration) -> (String, IssuedKey),
}

/// Answers one STS request: `Ok(json)` or the STS error.
pub(crate) fn answer(
    method: &str,
    query: &[(String, String)],
    body: &[u8],
    ctx: Ctx<'_>,
    request_id: &str,
    now: DateTime<Utc>,
) -> Result<serde_json::Value, ApiError> {
    let form = auth::decode_query(Some(&String::from_utf8_lossy(body)));
    let params: Vec<(String, String)> = query.iter().chain(form.iter()).cloned().collect();
    let action = param(&params, "Action").unwrap_or_default().to_string();
    *ctx.state.calls.entry(action.clone()).or_insert(0) += 1;
    if ctx.state.fail_next > 0 {
        ctx.state.fail_next -= 1;
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The request has failed due to a temporary failure of the server.",
        ));
    }
    if param(&params, "Version") != Some(VERSION) {
        return Err(bad(
            "InvalidVersion",
            "Specified parameter Version is not valid.",
        ));
    }
    let lifetime = match action.as_str() {
        "AssumeRole" => {
            verify_signed(method, &params, &ctx.keys, &mut ctx.state.nonces, now)?;
            check_role(&params, ctx.state, false)?
        }
        "AssumeRoleWithOIDC" => {
            if param(&params, "OIDCProviderArn") != Some(ctx.state.oidc_provider_arn.as_str()) {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "AuthenticationFail.OIDCProvider.NotExist",
                    "The OIDC provider does not exist.",
                ));
            }
            if param(&params, "OIDCToken") != Some(ctx.state.oidc_token.as_str()) {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "AuthenticationFail.OIDCToken.Invalid",
                    "The OIDC token is invalid.",
                ));
            }
            check_role(&params, ctx.state, true)?
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "InvalidAction.NotFound",
                "Specified api is not found, please check your url and method.",
            ))
        }
    };
    let (id, key) = (ctx.issue)(lifetime);
    let session = param(&params, "RoleSessionName").unwrap_or("oidc-session");
    let mut body = json!({
        "RequestId": request_id,
        "AssumedRoleUser": {
            "Arn": format!("{}/{session}", ctx.state.role_arn),
            "AssumedRoleId": format!("344281234567:{session}"),
        },
        "Credentials": {
            "AccessKeyId": id,
            "AccessKeySecret": key.secret,
            "SecurityToken": key.token,
            "Expiration": key.expires_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        },
    });
    if action == "AssumeRoleWithOIDC" {
        body["OIDCTokenInfo"] = json!({
            "Subject": "system:serviceaccount:ice-sync:ice-sync",
            "Issuer": "https://oidc-ack.cn-shanghai.aliyuncs.com/simulator",
            "ClientIds": "sts.aliyuncs.com",
        });
    }
    Ok(body)
}
