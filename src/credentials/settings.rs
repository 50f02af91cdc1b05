//! The credential settings as the config loader hands them over: every `ice.*` key
//! that says where credentials come from. Plain data; `credentials::default_chain`
//! decides what they mean.

use std::path::PathBuf;

use secrecy::SecretString;

#[derive(Debug, Clone, Default)]
pub struct CredentialConfig {
    /// `ice.access_key_id` (+ `ice.access_key_secret` or `ice.access_key_secret_file`,
    /// optional `ice.security_token`): a key written into ice-sync's own config.
    pub access_key_id: Option<String>,
    pub access_key_secret: Option<SecretString>,
    pub access_key_secret_file: Option<PathBuf>,
    pub security_token: Option<SecretString>,
    /// `ice.role_arn`: assume this RAM role with whatever the chain found.
    pub role_arn: Option<String>,
    /// `ice.role_session_name` (default `ALIBABA_CLOUD_ROLE_SESSION_NAME`, else
    /// `ice-sync`); also used by OIDC.
    pub role_session_name: Option<String>,
    /// `ice.role_external_id`, when the role's trust policy asks for one.
    pub role_external_id: Option<String>,
    /// `ice.profile`: the profile in the CLI config / credentials file
    /// (default `ALIBABA_CLOUD_PROFILE`, then the file's own default).
    pub profile: Option<String>,
    /// `ice.credentials_file`: the SDKs' INI file (default
    /// `ALIBABA_CLOUD_CREDENTIALS_FILE`, then `~/.alibabacloud/credentials.ini` or
    /// `~/.alibabacloud/credentials`).
    pub credentials_file: Option<PathBuf>,
    /// `ice.cli_config_file`: the CLI's JSON (default `ALIBABA_CLOUD_CONFIG_FILE`, then
    /// `~/.aliyun/config.json`).
    pub cli_config_file: Option<PathBuf>,
    /// `ice.sts_endpoint`: a full URL such as `https://sts-vpc.cn-shanghai.aliyuncs.com`
    /// (default from `ALIBABA_CLOUD_STS_REGION`, else `https://sts.aliyuncs.com`).
    pub sts_endpoint: Option<String>,
    /// `ice.ecs_metadata_endpoint` (default `http://100.100.100.200`).
    pub ecs_metadata_endpoint: Option<String>,
    /// `ice.ecs_role_name` (default `ALIBABA_CLOUD_ECS_METADATA`, else asked from the
    /// metadata service).
    pub ecs_role_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use crate::config::load::load_vars as load;

    #[test]
    fn every_credential_key_reaches_the_settings() {
        let s = load(&[
            ("ICE_SYNC__ICE__ROLE_ARN", "acs:ram::1:role/r"),
            ("ICE_SYNC__ICE__ROLE_SESSION_NAME", "sess"),
            ("ICE_SYNC__ICE__ROLE_EXTERNAL_ID", "ext"),
            ("ICE_SYNC__ICE__PROFILE", "prof"),
            (
                "ICE_SYNC__ICE__CREDENTIALS_FILE",
                "/etc/ice-sync/credentials.ini",
            ),
            (
                "ICE_SYNC__ICE__CLI_CONFIG_FILE",
                "/etc/ice-sync/config.json",
            ),
            ("ICE_SYNC__ICE__STS_ENDPOINT", "http://127.0.0.1:9"),
            (
                "ICE_SYNC__ICE__ECS_METADATA_ENDPOINT",
                "http://127.0.0.1:10",
            ),
            ("ICE_SYNC__ICE__ECS_ROLE_NAME", "role"),
        ])
        .expect("settings");
        let c = &s.ice.credentials;
        assert_eq!(c.role_arn.as_deref(), Some("acs:ram::1:role/r"));
        assert_eq!(c.role_session_name.as_deref(), Some("sess"));
        assert_eq!(c.role_external_id.as_deref(), Some("ext"));
        assert_eq!(c.profile.as_deref(), Some("prof"));
        assert!(c.credentials_file.is_some() && c.cli_config_file.is_some());
        assert_eq!(c.sts_endpoint.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(
            c.ecs_metadata_endpoint.as_deref(),
            Some("http://127.0.0.1:10")
        );
        assert_eq!(c.ecs_role_name.as_deref(), Some("role"));
        let e =
            load(&[("ICE_SYNC__ICE__STS_ENDPOINT", "sts.aliyuncs.com")]).expect_err("not a URL");
        assert!(format!("{e:#}").contains("ice.sts_endpoint"), "{e:#}");
    }
}
