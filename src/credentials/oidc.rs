//! Source 4: OIDC / RRSA (ACK's "RAM Roles for Service Accounts"). The pod gets
//! `ALIBABA_CLOUD_ROLE_ARN`, `ALIBABA_CLOUD_OIDC_PROVIDER_ARN` and
//! `ALIBABA_CLOUD_OIDC_TOKEN_FILE`; ice-sync trades the token file's contents for STS
//! credentials with the anonymous `AssumeRoleWithOIDC`. The file is read again on every
//! refresh, because the kubelet rotates it.

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::provider::{Candidate, Clock, Fetch, Fetched};
use super::sts::{self, RoleRequest, StsClient};
use super::{non_empty, read_secret, CredentialConfig, CredentialError, CredentialProvider, Env};

const NAME: &str = "OIDC role (RRSA)";

pub(crate) struct Oidc {
    sts: StsClient,
    request: RoleRequest,
    provider_arn: String,
    token_file: PathBuf,
}

impl Oidc {
    pub(crate) fn new(
        endpoint: &str,
        request: RoleRequest,
        provider_arn: String,
        token_file: PathBuf,
    ) -> Result<Self, String> {
        Ok(Self {
            sts: StsClient::new(endpoint)?,
            request,
            provider_arn,
            token_file,
        })
    }
}

pub(crate) fn candidate(
    config: &CredentialConfig,
    env: Env<'_>,
    clock: Arc<dyn Clock>,
) -> Candidate {
    let vars = [
        "ALIBABA_CLOUD_ROLE_ARN",
        "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
        "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
    ];
    let values: Vec<Option<String>> = vars.iter().map(|v| non_empty(env(v))).collect();
    let missing: Vec<&str> = vars
        .iter()
        .zip(&values)
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| *n)
        .collect();
    if missing.len() == vars.len() {
        return Candidate::Absent {
            name: NAME,
            why: "ALIBABA_CLOUD_ROLE_ARN / ALIBABA_CLOUD_OIDC_PROVIDER_ARN / ALIBABA_CLOUD_OIDC_TOKEN_FILE are not set".into(),
        };
    }
    if !missing.is_empty() {
        return Candidate::Broken {
            name: NAME,
            error: format!(
                "{} not set (all three RRSA variables are needed)",
                missing.join(" and ")
            ),
        };
    }
    let mut values = values.into_iter().flatten();
    let (Some(role_arn), Some(provider_arn), Some(token_file)) =
        (values.next(), values.next(), values.next())
    else {
        return Candidate::Broken {
            name: NAME,
            error: "RRSA variables unreadable".into(),
        };
    };
    let role = OidcRole {
        role_arn,
        provider_arn,
        token_file: PathBuf::from(token_file),
        session_name: None,
    };
    build(config, env, role, clock)
}

/// The role to assume with an OIDC token, wherever it was configured (the RRSA
/// variables, or an `OIDC` / `oidc_role_arn` profile).
pub(crate) struct OidcRole {
    pub(crate) role_arn: String,
    pub(crate) provider_arn: String,
    pub(crate) token_file: PathBuf,
    /// `None`: the session name every source defaults to.
    pub(crate) session_name: Option<String>,
}

/// Also used by the `OIDC` / `oidc_role_arn` profile kinds.
pub(crate) fn build(
    config: &CredentialConfig,
    env: Env<'_>,
    role: OidcRole,
    clock: Arc<dyn Clock>,
) -> Candidate {
    let OidcRole {
        role_arn,
        provider_arn,
        token_file,
        session_name,
    } = role;
    let request = RoleRequest {
        role_arn,
        session_name: session_name.unwrap_or_else(|| sts::session_name(config, env)),
        duration_secs: sts::DEFAULT_DURATION_SECS,
        policy: None,
        external_id: None,
    };
    let endpoint = sts::endpoint(config, env, None, false);
    match Oidc::new(&endpoint, request, provider_arn, token_file) {
        Ok(source) => Candidate::Ready {
            name: NAME,
            provider: CredentialProvider::refreshing(Box::new(source), clock),
        },
        Err(error) => Candidate::Broken { name: NAME, error },
    }
}

impl Fetch for Oidc {
    fn fetch(&self) -> BoxFuture<'_, Result<Fetched, CredentialError>> {
        Box::pin(async move {
            let origin = self.describe();
            let token = read_secret(&self.token_file).map_err(|e| {
                CredentialError::permanent(
                    origin.clone(),
                    format!("{e:#}; check ALIBABA_CLOUD_OIDC_TOKEN_FILE and the pod's projected token volume"),
                )
            })?;
            self.sts
                .assume_role_with_oidc(&self.request, &self.provider_arn, &token, &origin)
                .await
        })
    }

    fn describe(&self) -> String {
        format!(
            "OIDC role {} (provider {}, token file {}) via STS {}",
            self.request.role_arn,
            self.provider_arn,
            self.token_file.display(),
            self.sts.endpoint()
        )
    }

    fn kind(&self) -> &'static str {
        "oidc_role_arn"
    }
}
