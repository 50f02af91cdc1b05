//! `[ice]`: where the ICE API is, how long a request may take, and the credential
//! settings (resolved later by `credentials`, which owns the lookup order).

use std::time::Duration;

use super::raw::RawIce;
use super::settings::parse_duration;
use super::url::redact_url;
use super::ConfigError;
use crate::credentials::CredentialConfig;

#[derive(Debug, Clone)]
pub struct IceSettings {
    pub region: String,
    pub endpoint: reqwest::Url,
    pub request_source: Option<String>,
    pub timeout: Duration,
    /// A larger answer is refused and recorded on its project, never held in memory.
    pub max_response_bytes: usize,
    pub credentials: CredentialConfig,
    /// Record this region (and account) as the database's, replacing what it recorded,
    /// instead of refusing to start on a mismatch (`app::region`). Meant for one start.
    pub rewrite_database_region: bool,
}

/// Smaller than any answer ICE gives for a project: a cap below it would refuse them all.
const MIN_RESPONSE_BYTES: u64 = 4096;

impl IceSettings {
    pub fn from_raw(raw: RawIce) -> Result<Self, ConfigError> {
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
