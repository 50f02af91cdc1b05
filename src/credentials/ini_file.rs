//! Source 6: the SDKs' shared credentials file (credentials.md section 5). The file is
//! `ice.credentials_file`, else `ALIBABA_CLOUD_CREDENTIALS_FILE`, else
//! `~/.alibabacloud/credentials.ini` (Python, Java) or `~/.alibabacloud/credentials`
//! (Go), whichever exists. The section is `ice.profile`, else `ALIBABA_CLOUD_PROFILE`,
//! else `default`; its `type` is `access_key`, `ram_role_arn`, `ecs_ram_role` or
//! `oidc_role_arn`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use secrecy::SecretString;

use super::cli_profile::ready;
use super::provider::{check_header_safe, Candidate, Clock};
use super::ram_role::AssumeRole;
use super::sts::{self, RoleRequest};
use super::{home, non_empty, CredentialConfig, CredentialProvider, Credentials, Env};

const NAME: &str = "credentials file";

type Sections = HashMap<String, HashMap<String, String>>;

/// `[section]`, `key = value`, `#` / `;` comments; surrounding quotes are dropped.
fn parse(text: &str) -> Result<Sections, String> {
    let mut sections: Sections = HashMap::new();
    let mut current: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim().to_string();
            sections.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        // Only the line number: the line itself may hold a secret.
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {} is neither [section] nor key = value", n + 1))?;
        let section = current
            .as_ref()
            .ok_or_else(|| format!("line {} comes before any [section]", n + 1))?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        sections
            .entry(section.clone())
            .or_default()
            .insert(key.trim().to_string(), value.to_string());
    }
    Ok(sections)
}

fn path(config: &CredentialConfig, env: Env<'_>) -> Result<PathBuf, String> {
    if let Some(p) = config.credentials_file.clone() {
        return Ok(p);
    }
    if let Some(p) = non_empty(env("ALIBABA_CLOUD_CREDENTIALS_FILE")) {
        return Ok(PathBuf::from(p));
    }
    let dir = home(env)
        .ok_or("no ~/.alibabacloud/credentials.ini ($HOME is not set)")?
        .join(".alibabacloud");
    let ini = dir.join("credentials.ini");
    let plain = dir.join("credentials");
    Ok(if !ini.exists() && plain.exists() {
        plain
    } else {
        ini
    })
}

pub(crate) fn candidate(
    config: &CredentialConfig,
    env: Env<'_>,
    clock: Arc<dyn Clock>,
) -> Candidate {
    let path = match path(config, env) {
        Ok(p) => p,
        Err(why) => return Candidate::Absent { name: NAME, why },
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
    let sections = parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = non_empty(config.profile.clone())
        .or_else(|| non_empty(env("ALIBABA_CLOUD_PROFILE")))
        .unwrap_or_else(|| "default".to_string());
    let s = sections.get(&name).ok_or_else(|| {
        let mut names: Vec<&str> = sections.keys().map(String::as_str).collect();
        names.sort_unstable();
        format!(
            "{} has no [{name}] section (it has: {}); set ALIBABA_CLOUD_PROFILE or ice.profile",
            path.display(),
            names.join(", ")
        )
    })?;
    let at = format!("{NAME} {} [{name}]", path.display());
    let kind = s.get("type").map(String::as_str).unwrap_or_default();
    let need = |key: &str| {
        s.get(key)
            .and_then(|v| non_empty(Some(v.clone())))
            .ok_or_else(|| format!("{at}: type {kind} needs {key}"))
    };
    let opt = |key: &str| s.get(key).and_then(|v| non_empty(Some(v.clone())));
    let key = || -> Result<Credentials, String> {
        let c = Credentials {
            access_key_id: need("access_key_id")?,
            access_key_secret: SecretString::from(need("access_key_secret")?),
            security_token: None,
            source: format!("{at} (type {kind})"),
        };
        check_header_safe(&c).map_err(|e| format!("{at}: {}", e.detail))?;
        Ok(c)
    };
    match kind {
        "access_key" => Ok(CredentialProvider::fixed(key()?, "profile")),
        "ram_role_arn" => {
            let base = CredentialProvider::fixed(key()?, "profile");
            let request = RoleRequest {
                role_arn: need("role_arn")?,
                session_name: opt("role_session_name")
                    .unwrap_or_else(|| sts::session_name(config, env)),
                duration_secs: sts::DEFAULT_DURATION_SECS,
                policy: opt("policy"),
                external_id: opt("external_id"),
            };
            let endpoint = sts::endpoint(config, env, opt("sts_region").as_deref(), false);
            let source =
                AssumeRole::new(base, &endpoint, request).map_err(|e| format!("{at}: {e}"))?;
            Ok(CredentialProvider::refreshing(Box::new(source), clock))
        }
        "ecs_ram_role" => ready(super::ecs::build(config, env, opt("role_name"), clock))
            .map_err(|e| format!("{at}: {e}")),
        "oidc_role_arn" => {
            let role = super::oidc::OidcRole {
                role_arn: need("role_arn")?,
                provider_arn: need("oidc_provider_arn")?,
                token_file: PathBuf::from(need("oidc_token_file_path")?),
                session_name: opt("role_session_name"),
            };
            ready(super::oidc::build(config, env, role, clock)).map_err(|e| format!("{at}: {e}"))
        }
        "" => Err(format!("{at}: the section has no type")),
        other => Err(format!(
            "{at}: type {other:?} is not supported by ice-sync; use access_key, ram_role_arn, \
             ecs_ram_role or oidc_role_arn"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::provider::SystemClock;
    use crate::credentials::tests::env_of;
    use secrecy::ExposeSecret;

    #[test]
    fn parses_sections_comments_and_quotes() {
        let s = parse("# c\n[default]\ntype = access_key\naccess_key_id = \"ID\"\n; x\n[b]\nk=v\n")
            .expect("parse");
        assert_eq!(s["default"]["access_key_id"], "ID");
        assert_eq!(s["b"]["k"], "v");
        let e = parse("[a]\nthis line has secret-ish text\n").expect_err("bad");
        assert!(!e.contains("secret-ish"), "{e}");
        assert!(parse("k = v\n").is_err());
    }

    #[tokio::test]
    async fn default_section_and_profile_choice() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("credentials.ini");
        std::fs::write(
            &path,
            "[default]\ntype = access_key\naccess_key_id = INIID\naccess_key_secret = inisecret\n\
             [role]\ntype = ram_role_arn\naccess_key_id = A\naccess_key_secret = B\n\
             role_arn = acs:ram::1:role/r\nrole_session_name = s1\n\
             [rsa]\ntype = rsa_key_pair\n",
        )
        .expect("write");
        let env = env_of(&[]);
        let cfg = CredentialConfig::default();
        let p = load(&cfg, &env, &path, Arc::new(SystemClock)).expect("default");
        let c = p.credentials().await.expect("creds");
        assert_eq!(c.access_key_id, "INIID");
        assert_eq!(c.access_key_secret.expose_secret(), "inisecret");
        let env = env_of(&[("ALIBABA_CLOUD_PROFILE", "role")]);
        let p = load(&cfg, &env, &path, Arc::new(SystemClock)).expect("role");
        assert!(
            p.source().contains("acs:ram::1:role/r (session s1)"),
            "{}",
            p.source()
        );
        let env = env_of(&[("ALIBABA_CLOUD_PROFILE", "rsa")]);
        let e = load(&cfg, &env, &path, Arc::new(SystemClock)).expect_err("rsa");
        assert!(e.contains("not supported"), "{e}");
    }
}
