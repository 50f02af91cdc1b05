//! Source 5: a profile of the Alibaba Cloud CLI's `~/.aliyun/config.json`
//! (credentials.md section 4). The file is `ice.cli_config_file`, else
//! `ALIBABA_CLOUD_CONFIG_FILE`, else `~/.aliyun/config.json`; the profile is
//! `ice.profile`, else `ALIBABA_CLOUD_PROFILE`, else the file's `current`.
//! `ALIBABA_CLOUD_CLI_PROFILE_DISABLED=true` skips it.
//!
//! Modes: `AK`, `StsToken`, `RamRoleArn`, `ChainableRamRoleArn` (`source_profile`),
//! `EcsRamRole`, `OIDC`. The others (`CloudSSO`, `OAuth`, `External`, ...) need an
//! interactive login or a helper process and are refused with a pointer to a source
//! that works unattended.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use secrecy::SecretString;
use serde::Deserialize;

use super::provider::{check_header_safe, Candidate, Clock};
use super::ram_role::AssumeRole;
use super::sts::{self, RoleRequest};
use super::{env_true, home, non_empty, CredentialConfig, CredentialProvider, Credentials, Env};

const NAME: &str = "CLI profile";
const MAX_CHAIN: usize = 5;

#[derive(Deserialize, Default)]
#[serde(default)]
struct CliConfig {
    current: Option<String>,
    profiles: Vec<Profile>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct Profile {
    name: String,
    mode: String,
    access_key_id: Option<String>,
    access_key_secret: Option<String>,
    sts_token: Option<String>,
    ram_role_arn: Option<String>,
    ram_session_name: Option<String>,
    expired_seconds: Option<u32>,
    sts_region: Option<String>,
    enable_vpc: Option<bool>,
    policy: Option<String>,
    external_id: Option<String>,
    ram_role_name: Option<String>,
    oidc_provider_arn: Option<String>,
    oidc_token_file: Option<String>,
    source_profile: Option<String>,
}

fn path(config: &CredentialConfig, env: Env<'_>) -> Option<PathBuf> {
    config
        .cli_config_file
        .clone()
        .or_else(|| non_empty(env("ALIBABA_CLOUD_CONFIG_FILE")).map(PathBuf::from))
        .or_else(|| home(env).map(|h| h.join(".aliyun").join("config.json")))
}

pub(crate) fn candidate(
    config: &CredentialConfig,
    env: Env<'_>,
    clock: Arc<dyn Clock>,
) -> Candidate {
    if env_true(env, "ALIBABA_CLOUD_CLI_PROFILE_DISABLED") {
        return Candidate::Absent {
            name: NAME,
            why: "ALIBABA_CLOUD_CLI_PROFILE_DISABLED=true".into(),
        };
    }
    let Some(path) = path(config, env) else {
        return Candidate::Absent {
            name: NAME,
            why: "no ~/.aliyun/config.json ($HOME is not set)".into(),
        };
    };
    Candidate::from_file(NAME, &path, |path| load(config, env, path, clock))
}

fn load(
    config: &CredentialConfig,
    env: Env<'_>,
    path: &Path,
    clock: Arc<dyn Clock>,
) -> Result<CredentialProvider, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    // Only where: serde's own message can quote the offending value.
    let file: CliConfig = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{} is not valid CLI config JSON ({:?} error at line {}, column {})",
            path.display(),
            e.classify(),
            e.line(),
            e.column()
        )
    })?;
    let name = non_empty(config.profile.clone())
        .or_else(|| non_empty(env("ALIBABA_CLOUD_PROFILE")))
        .or_else(|| non_empty(file.current.clone()))
        .ok_or_else(|| {
            format!(
                "{} names no current profile: set ALIBABA_CLOUD_PROFILE or ice.profile",
                path.display()
            )
        })?;
    Profiles {
        config,
        env,
        path,
        file: &file,
        clock,
    }
    .provider(&name, 0)
}

/// What building a profile's provider reads: the settings, the environment, the file.
struct Profiles<'a> {
    config: &'a CredentialConfig,
    env: Env<'a>,
    path: &'a Path,
    file: &'a CliConfig,
    clock: Arc<dyn Clock>,
}

/// One profile of the file, with the name errors are reported under.
struct Found<'a> {
    profile: &'a Profile,
    at: String,
}

impl Found<'_> {
    fn need(&self, v: &Option<String>, key: &str) -> Result<String, String> {
        non_empty(v.clone())
            .ok_or_else(|| format!("{}: mode {} needs {key}", self.at, self.profile.mode))
    }

    /// The profile's AccessKey (and STS token).
    fn key(&self, with_token: bool) -> Result<Credentials, String> {
        let p = self.profile;
        let c = Credentials {
            access_key_id: self.need(&p.access_key_id, "access_key_id")?,
            access_key_secret: SecretString::from(
                self.need(&p.access_key_secret, "access_key_secret")?,
            ),
            security_token: if with_token {
                Some(SecretString::from(self.need(&p.sts_token, "sts_token")?))
            } else {
                None
            },
            source: format!("{} (mode {})", self.at, p.mode),
        };
        check_header_safe(&c).map_err(|e| format!("{}: {}", self.at, e.detail))?;
        Ok(c)
    }
}

impl Profiles<'_> {
    fn provider(&self, name: &str, depth: usize) -> Result<CredentialProvider, String> {
        let found = self.find(name, depth)?;
        let (p, at) = (found.profile, &found.at);
        let fixed = |with_token| -> Result<CredentialProvider, String> {
            Ok(CredentialProvider::fixed(
                found.key(with_token)?,
                "cli_profile",
            ))
        };
        match p.mode.as_str() {
            "AK" => fixed(false),
            "StsToken" => fixed(true),
            "RamRoleArn" => self.assume(&found, fixed(false)?),
            "ChainableRamRoleArn" => {
                let source = found.need(&p.source_profile, "source_profile")?;
                self.assume(&found, self.provider(&source, depth + 1)?)
            }
            "EcsRamRole" => ready(super::ecs::build(
                self.config,
                self.env,
                non_empty(p.ram_role_name.clone()),
                self.clock.clone(),
            ))
            .map_err(|e| format!("{at}: {e}")),
            "OIDC" => {
                let role = super::oidc::OidcRole {
                    role_arn: found.need(&p.ram_role_arn, "ram_role_arn")?,
                    provider_arn: found.need(&p.oidc_provider_arn, "oidc_provider_arn")?,
                    token_file: PathBuf::from(found.need(&p.oidc_token_file, "oidc_token_file")?),
                    session_name: non_empty(p.ram_session_name.clone()),
                };
                ready(super::oidc::build(
                    self.config,
                    self.env,
                    role,
                    self.clock.clone(),
                ))
                .map_err(|e| format!("{at}: {e}"))
            }
            other => Err(format!(
                "{at}: mode {other:?} is not supported by ice-sync (it needs a login or a helper \
                 process); use an AK, StsToken, RamRoleArn, EcsRamRole or OIDC profile"
            )),
        }
    }

    fn find(&self, name: &str, depth: usize) -> Result<Found<'_>, String> {
        let path = self.path;
        if depth > MAX_CHAIN {
            return Err(format!(
                "profile {name} in {}: source_profile chains deeper than {MAX_CHAIN} (a loop?)",
                path.display()
            ));
        }
        let profiles = &self.file.profiles;
        let profile = profiles.iter().find(|p| p.name == name).ok_or_else(|| {
            let names: Vec<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
            format!(
                "{} has no profile {name:?} (it has: {})",
                path.display(),
                names.join(", ")
            )
        })?;
        Ok(Found {
            profile,
            at: format!("{NAME} {name} in {}", path.display()),
        })
    }

    /// `base` assumes the profile's RAM role.
    fn assume(
        &self,
        found: &Found<'_>,
        base: CredentialProvider,
    ) -> Result<CredentialProvider, String> {
        let p = found.profile;
        let request = RoleRequest {
            role_arn: found.need(&p.ram_role_arn, "ram_role_arn")?,
            session_name: non_empty(p.ram_session_name.clone())
                .unwrap_or_else(|| sts::session_name(self.config, self.env)),
            duration_secs: p.expired_seconds.unwrap_or(sts::DEFAULT_DURATION_SECS),
            policy: non_empty(p.policy.clone()),
            external_id: non_empty(p.external_id.clone()),
        };
        let endpoint = sts::endpoint(
            self.config,
            self.env,
            p.sts_region.as_deref(),
            p.enable_vpc.unwrap_or(false),
        );
        let source =
            AssumeRole::new(base, &endpoint, request).map_err(|e| format!("{}: {e}", found.at))?;
        Ok(CredentialProvider::refreshing(
            Box::new(source),
            self.clock.clone(),
        ))
    }
}

/// The provider of a candidate built for a profile.
pub(crate) fn ready(c: Candidate) -> Result<CredentialProvider, String> {
    match c {
        Candidate::Ready { provider, .. } => Ok(provider),
        Candidate::Broken { error, .. } => Err(error),
        Candidate::Absent { why, .. } => Err(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::provider::SystemClock;
    use crate::credentials::tests::env_of;
    use secrecy::ExposeSecret;

    const SAMPLE: &str = r#"{"current": "sync", "profiles": [
 {"name": "sync", "mode": "AK", "access_key_id": "LTAI5tEXAMPLE", "access_key_secret": "EXAMPLE", "region_id": "cn-shanghai", "output_format": "json"},
 {"name": "tmp", "mode": "StsToken", "access_key_id": "STS.EX", "access_key_secret": "x", "sts_token": "CAIS..."},
 {"name": "role", "mode": "RamRoleArn", "access_key_id": "LTAI5tEXAMPLE", "access_key_secret": "x",
  "ram_role_arn": "acs:ram::1234567890123456:role/ice-sync", "ram_session_name": "ice-sync",
  "expired_seconds": 3600, "sts_region": "cn-shanghai", "enable_vpc": false, "policy": "", "external_id": ""},
 {"name": "ecs", "mode": "EcsRamRole", "ram_role_name": "ice-sync-role"},
 {"name": "sso", "mode": "CloudSSO"}], "meta_path": ""}"#;

    fn chain_with(
        profile: Option<&str>,
    ) -> (tempfile::TempDir, Result<CredentialProvider, String>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        std::fs::write(&path, SAMPLE).expect("write");
        let config = CredentialConfig {
            profile: profile.map(str::to_string),
            ..Default::default()
        };
        let env = env_of(&[]);
        let r = load(&config, &env, &path, Arc::new(SystemClock));
        (dir, r)
    }

    #[tokio::test]
    async fn current_profile_and_named_profiles() {
        let (_d, p) = chain_with(None);
        let c = p.expect("AK").credentials().await.expect("creds");
        assert_eq!(c.access_key_id, "LTAI5tEXAMPLE");
        assert_eq!(c.access_key_secret.expose_secret(), "EXAMPLE");
        assert!(c.source.contains("CLI profile sync"), "{}", c.source);
        let (_d, p) = chain_with(Some("tmp"));
        let c = p.expect("sts").credentials().await.expect("creds");
        assert!(c.security_token.is_some());
        let (_d, p) = chain_with(Some("role"));
        let source = p.expect("role").source();
        assert!(
            source.contains("acs:ram::1234567890123456:role/ice-sync")
                && source.contains("sts.cn-shanghai.aliyuncs.com"),
            "{source}"
        );
        let (_d, p) = chain_with(Some("ecs"));
        assert!(p.expect("ecs").source().contains("ice-sync-role"));
        let (_d, p) = chain_with(Some("sso"));
        assert!(p.expect_err("sso").contains("not supported"));
        let (_d, p) = chain_with(Some("nope"));
        let e = p.expect_err("missing");
        assert!(
            e.contains("no profile \"nope\"") && e.contains("sync, tmp"),
            "{e}"
        );
    }
}
