//! `[ice]`: where the ICE API is, how long a request may take, and the credential
//! settings (resolved later by `credentials`, which owns the lookup order).
//!
//! Everything about an `[ice]` key is here: its raw form and default ([`RawIce`]), its
//! range, its validation, its half ([`FixedIce`] or [`LiveIce`], by `split`) and its
//! line in a reload summary (`fixed_changes`, `live_changes`).

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::bounds::{Count, HOUR};
use super::reload::{dur, or_unset, Diff};
use super::settings::parse_duration;
use super::url::redact_url;
use super::ConfigError;
use crate::credentials::CredentialConfig;

/// What the file and the `ICE_SYNC__ICE__*` variables may say, with the defaults.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawIce {
    pub(crate) region: String,
    pub(crate) endpoint: Option<String>,
    pub(crate) request_source: Option<String>,
    pub(crate) timeout: String,
    pub(crate) max_response_bytes: u64,
    pub(crate) access_key_id: Option<String>,
    #[serde(serialize_with = "super::secrets::masked")]
    pub(crate) access_key_secret: Option<SecretString>,
    pub(crate) access_key_secret_file: Option<PathBuf>,
    #[serde(serialize_with = "super::secrets::masked")]
    pub(crate) security_token: Option<SecretString>,
    // Other credential sources (see `credentials`): a role to assume, a profile of the
    // shared files, where STS and the ECS metadata service are.
    pub(crate) role_arn: Option<String>,
    pub(crate) role_session_name: Option<String>,
    pub(crate) role_external_id: Option<String>,
    pub(crate) profile: Option<String>,
    pub(crate) credentials_file: Option<PathBuf>,
    pub(crate) cli_config_file: Option<PathBuf>,
    pub(crate) sts_endpoint: Option<String>,
    pub(crate) ecs_metadata_endpoint: Option<String>,
    pub(crate) ecs_role_name: Option<String>,
    /// One start that rewrites the database's recorded region (see `app::region`).
    pub(crate) rewrite_database_region: bool,
}

impl Default for RawIce {
    fn default() -> Self {
        Self {
            region: "cn-shanghai".into(),
            endpoint: None,
            request_source: None,
            timeout: "10s".into(),
            max_response_bytes: crate::ice::DEFAULT_MAX_RESPONSE_BYTES as u64,
            access_key_id: None,
            access_key_secret: None,
            access_key_secret_file: None,
            security_token: None,
            role_arn: None,
            role_session_name: None,
            role_external_id: None,
            profile: None,
            credentials_file: None,
            cli_config_file: None,
            sts_endpoint: None,
            ecs_metadata_endpoint: None,
            ecs_role_name: None,
            rewrite_database_region: false,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct IceSettings {
    pub(crate) region: String,
    pub(crate) endpoint: reqwest::Url,
    pub(crate) request_source: Option<String>,
    pub(crate) timeout: Duration,
    /// A larger answer is refused and recorded on its project, never held in memory.
    pub(crate) max_response_bytes: usize,
    pub(crate) credentials: CredentialConfig,
    /// Record this region (and account) as the database's, replacing what it recorded,
    /// instead of refusing to start on a mismatch (`app::region`). Meant for one start.
    pub(crate) rewrite_database_region: bool,
}

/// Smaller than any answer ICE gives for a project: a cap below it would refuse them all.
const MIN_RESPONSE_BYTES: u64 = 4096;

/// The largest value of each `[ice]` duration key (`config::bounds`).
pub(super) const DURATION_MAX: &[(&str, u64)] = &[("ice.timeout", HOUR)];

/// The range of each `[ice]` count and size key (`config::bounds`).
pub(super) fn counts(raw: &RawIce) -> Vec<Count> {
    vec![Count::new(
        "ice.max_response_bytes",
        raw.max_response_bytes,
        MIN_RESPONSE_BYTES,
        1 << 30,
    )]
}

impl IceSettings {
    pub(crate) fn from_raw(raw: RawIce) -> Result<Self, ConfigError> {
        let region = region(&raw.region)?;
        let endpoint = endpoint(raw.endpoint.as_deref(), &region)?;
        if let Some(source) = &raw.request_source {
            if source != "OpenAPI" && source != "WebSDK" {
                return Err(ConfigError::new(format!(
                    "ice.request_source = {source:?}: must be \"OpenAPI\" or \"WebSDK\""
                )));
            }
        }
        let timeout = parse_duration("ice.timeout", &raw.timeout)?;
        let max_response_bytes = max_response_bytes(raw.max_response_bytes)?;
        for (key, value) in [
            ("ice.sts_endpoint", &raw.sts_endpoint),
            ("ice.ecs_metadata_endpoint", &raw.ecs_metadata_endpoint),
        ] {
            if let Some(v) = value {
                credential_endpoint(key, v)?;
            }
        }
        Ok(Self {
            region,
            endpoint,
            request_source: raw.request_source,
            timeout,
            max_response_bytes,
            rewrite_database_region: raw.rewrite_database_region,
            credentials: CredentialConfig {
                access_key_id: raw.access_key_id,
                access_key_secret: raw.access_key_secret,
                access_key_secret_file: raw.access_key_secret_file,
                security_token: raw.security_token,
                role_arn: raw.role_arn,
                role_session_name: raw.role_session_name,
                role_external_id: raw.role_external_id,
                profile: raw.profile,
                credentials_file: raw.credentials_file,
                cli_config_file: raw.cli_config_file,
                sts_endpoint: raw.sts_endpoint,
                ecs_metadata_endpoint: raw.ecs_metadata_endpoint,
                ecs_role_name: raw.ecs_role_name,
            },
        })
    }
}

fn region(raw: &str) -> Result<String, ConfigError> {
    let region = raw.trim().to_string();
    if region.is_empty()
        || !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(ConfigError::new(format!(
            "ice.region = {region:?} is not a region ID such as cn-shanghai"
        )));
    }
    Ok(region)
}

/// `ice.endpoint`, by default the region's public endpoint.
fn endpoint(configured: Option<&str>, region: &str) -> Result<reqwest::Url, ConfigError> {
    let text = configured.map_or_else(
        || format!("https://ice.{region}.aliyuncs.com"),
        str::to_string,
    );
    let endpoint = reqwest::Url::parse(&text)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| {
            ConfigError::new(format!(
                "ice.endpoint = {:?} is not an http(s) URL such as https://ice.cn-shanghai.aliyuncs.com",
                redact_url(&text)
            ))
        })?;
    refuse_userinfo("ice.endpoint", &text)?;
    Ok(endpoint)
}

fn max_response_bytes(raw: u64) -> Result<usize, ConfigError> {
    if raw < MIN_RESPONSE_BYTES {
        return Err(ConfigError::new(format!(
            "ice.max_response_bytes = {raw}: too small for any ICE answer; use at least {MIN_RESPONSE_BYTES} (default {}, 32 MiB)",
            crate::ice::DEFAULT_MAX_RESPONSE_BYTES
        )));
    }
    usize::try_from(raw).map_err(|_| {
        ConfigError::new(format!(
            "ice.max_response_bytes = {raw}: more than this machine can address"
        ))
    })
}

/// `ice.sts_endpoint` / `ice.ecs_metadata_endpoint`: an http(s) URL without userinfo.
fn credential_endpoint(key: &str, value: &str) -> Result<(), ConfigError> {
    let ok = reqwest::Url::parse(value)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
    if !ok {
        return Err(ConfigError::new(format!(
            "{key} = {:?} is not an http(s) URL such as https://sts.aliyuncs.com or http://100.100.100.200",
            redact_url(value)
        )));
    }
    refuse_userinfo(key, value)
}

/// An endpoint URL with a user name or password is refused: ICE, STS and the metadata
/// service authenticate by signature or token, never by userinfo, and a password there
/// would travel into error messages, `tracked_projects.last_error`, `sync_runs.error`
/// and `/healthz`. A proxy that needs a login is set with `HTTPS_PROXY` instead.
fn refuse_userinfo(key: &str, text: &str) -> Result<(), ConfigError> {
    let has_userinfo = reqwest::Url::parse(text)
        .map(|u| !u.username().is_empty() || u.password().is_some())
        .unwrap_or(false)
        || text.split_once("://").is_some_and(|(_, rest)| {
            rest.split(['/', '?', '#'])
                .next()
                .unwrap_or("")
                .contains('@')
        });
    if has_userinfo {
        return Err(ConfigError::new(format!(
            "{key} = {:?} carries a user name or password: remove it (ICE signs every request and \
             needs none; a proxy that asks for a login goes in HTTPS_PROXY)",
            redact_url(text)
        )));
    }
    Ok(())
}

/// `[ice]` keys that stay as the process started.
#[derive(Debug, Clone)]
pub(crate) struct FixedIce {
    /// The database records the region it mirrors (`app::region`), checked at start-up.
    pub(crate) region: String,
    /// Checked together with the region at start-up.
    pub(crate) endpoint: reqwest::Url,
    pub(crate) request_source: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) rewrite_database_region: bool,
}

/// `[ice]` keys a reload applies: a new client is built on every reload.
#[derive(Debug, Clone)]
pub(crate) struct LiveIce {
    pub(crate) max_response_bytes: usize,
    /// Resolved again on every reload (the files behind them change without any key).
    pub(crate) credentials: CredentialConfig,
}

/// The two halves of `[ice]`, every field named (no `..`): a new key does not compile
/// until it is placed in one.
pub(super) fn split(ice: IceSettings) -> (FixedIce, LiveIce) {
    let IceSettings {
        region,
        endpoint,
        request_source,
        timeout,
        max_response_bytes,
        credentials,
        rewrite_database_region,
    } = ice;
    let fixed = FixedIce {
        region,
        endpoint,
        request_source,
        timeout,
        rewrite_database_region,
    };
    let live = LiveIce {
        max_response_bytes,
        credentials,
    };
    (fixed, live)
}

/// The fixed `[ice]` keys in a reload summary, every field named (no `..`).
pub(super) fn fixed_changes(d: &mut Diff, a: &FixedIce, b: &FixedIce) {
    let FixedIce {
        region,
        endpoint,
        request_source,
        timeout,
        rewrite_database_region,
    } = a;
    d.value("ice.region", region, &b.region, String::clone);
    d.value(
        "ice.endpoint",
        endpoint,
        &b.endpoint,
        reqwest::Url::to_string,
    );
    d.value(
        "ice.request_source",
        request_source,
        &b.request_source,
        |s| or_unset(s.as_deref()).to_string(),
    );
    d.value("ice.timeout", timeout, &b.timeout, |t| dur(*t));
    d.value(
        "ice.rewrite_database_region",
        rewrite_database_region,
        &b.rewrite_database_region,
        bool::to_string,
    );
}

/// The live `[ice]` keys in a reload summary, every field named (no `..`).
pub(super) fn live_changes(d: &mut Diff, a: &LiveIce, b: &LiveIce) {
    let LiveIce {
        max_response_bytes,
        credentials,
    } = a;
    d.value(
        "ice.max_response_bytes",
        max_response_bytes,
        &b.max_response_bytes,
        usize::to_string,
    );
    credential_changes(d, credentials, &b.credentials);
}

/// Credential keys: never their values, only that they changed.
fn credential_changes(d: &mut Diff, a: &CredentialConfig, b: &CredentialConfig) {
    let CredentialConfig {
        access_key_id,
        access_key_secret,
        access_key_secret_file,
        security_token,
        role_arn,
        role_session_name,
        role_external_id,
        profile,
        credentials_file,
        cli_config_file,
        sts_endpoint,
        ecs_metadata_endpoint,
        ecs_role_name,
    } = a;
    let secret = |s: &Option<SecretString>| s.as_ref().map(|s| s.expose_secret().to_string());
    for (key, differs) in [
        ("ice.access_key_id", *access_key_id != b.access_key_id),
        (
            "ice.access_key_secret",
            secret(access_key_secret) != secret(&b.access_key_secret),
        ),
        (
            "ice.access_key_secret_file",
            *access_key_secret_file != b.access_key_secret_file,
        ),
        (
            "ice.security_token",
            secret(security_token) != secret(&b.security_token),
        ),
        ("ice.role_arn", *role_arn != b.role_arn),
        (
            "ice.role_session_name",
            *role_session_name != b.role_session_name,
        ),
        (
            "ice.role_external_id",
            *role_external_id != b.role_external_id,
        ),
        ("ice.profile", *profile != b.profile),
        (
            "ice.credentials_file",
            *credentials_file != b.credentials_file,
        ),
        ("ice.cli_config_file", *cli_config_file != b.cli_config_file),
        ("ice.sts_endpoint", *sts_endpoint != b.sts_endpoint),
        (
            "ice.ecs_metadata_endpoint",
            *ecs_metadata_endpoint != b.ecs_metadata_endpoint,
        ),
        ("ice.ecs_role_name", *ecs_role_name != b.ecs_role_name),
    ] {
        d.changed(key, differs);
    }
}
