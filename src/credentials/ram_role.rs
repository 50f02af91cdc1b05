//! A RAM role to assume (`AssumeRole`) with base credentials from another source:
//! `ice.role_arn` over the whole chain, or a profile of kind `RamRoleArn` /
//! `ram_role_arn` / `ChainableRamRoleArn` over that profile's key.
//!
//! The base is itself a [`CredentialProvider`], so an ECS role or an OIDC role can be
//! the base and is refreshed on its own schedule. If STS says the base token expired,
//! the base is invalidated and asked once more.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::provider::{Clock, Fetch, Fetched};
use super::sts::{self, RoleRequest, StsClient};
use super::{non_empty, CredentialConfig, CredentialError, CredentialProvider, Env};

pub(crate) struct AssumeRole {
    base: CredentialProvider,
    sts: StsClient,
    request: RoleRequest,
}

impl AssumeRole {
    pub(crate) fn new(
        base: CredentialProvider,
        endpoint: &str,
        request: RoleRequest,
    ) -> Result<Self, String> {
        Ok(Self {
            base,
            sts: StsClient::new(endpoint)?,
            request,
        })
    }
}

/// `ice.role_arn` over the chain's result.
pub(crate) fn wrap(
    config: &CredentialConfig,
    env: Env<'_>,
    base: CredentialProvider,
    role_arn: String,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<CredentialProvider> {
    let request = RoleRequest {
        role_arn,
        session_name: sts::session_name(config, env),
        duration_secs: sts::DEFAULT_DURATION_SECS,
        policy: None,
        external_id: non_empty(config.role_external_id.clone()),
    };
    let endpoint = sts::endpoint(config, env, None, false);
    let source = AssumeRole::new(base, &endpoint, request).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(CredentialProvider::refreshing(Box::new(source), clock))
}

impl Fetch for AssumeRole {
    fn fetch(&self) -> BoxFuture<'_, Result<Fetched, CredentialError>> {
        Box::pin(async move {
            let origin = self.describe();
            let mut retried = false;
            loop {
                let base = self.base.issue().await.map_err(|e| CredentialError {
                    origin: origin.clone(),
                    detail: format!("the base credentials are unavailable: {e}"),
                    transient: e.transient,
                })?;
                match self
                    .sts
                    .assume_role(&base.credentials, &self.request, &origin)
                    .await
                {
                    Err(e)
                        if !retried
                            && self.base.refreshable()
                            && e.detail.contains("InvalidSecurityToken") =>
                    {
                        self.base.invalidate(base.generation);
                        retried = true;
                    }
                    other => return other,
                }
            }
        })
    }

    fn describe(&self) -> String {
        format!(
            "RAM role {} (session {}) assumed via STS {} with credentials from {}",
            self.request.role_arn,
            self.request.session_name,
            self.sts.endpoint(),
            self.base.source()
        )
    }

    fn kind(&self) -> &'static str {
        "ram_role_arn"
    }
}
