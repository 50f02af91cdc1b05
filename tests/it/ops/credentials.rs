//! Every credential source end to end: the real chain and the real ICE client over
//! loopback HTTP to the simulator, which verifies the ICE calls' ACS3 signatures, the
//! AssumeRole RPC signatures, the OIDC token and the metadata tokens, and issues
//! temporary credentials that its ICE side refuses once they expire.
//!
//! The environment is injected (never the process's), so these tests run in parallel.
//! The cycle tests run on SQLite and on PostgreSQL.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ice_sim::{
    MetadataMode, Simulator, SimulatorConfig, DEFAULT_ECS_ROLE, DEFAULT_OIDC_PROVIDER_ARN,
    DEFAULT_OIDC_TOKEN, DEFAULT_ROLE_ARN,
};
use ice_sync::credentials::{self, CredentialConfig, CredentialProvider, SystemClock};
use ice_sync::ice::{ClientOptions, IceClient};
use secrecy::ExposeSecret;

type EnvMap = HashMap<String, String>;

fn env_map(pairs: &[(&str, &str)]) -> EnvMap {
    let mut map: EnvMap = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // Never the tester's own ~/.aliyun or ~/.alibabacloud.
    map.entry("HOME".into())
        .or_insert_with(|| "/nonexistent-ice-sync-test-home".into());
    map
}

/// Points every network source at the simulator, so nothing reaches 100.100.100.200.
fn sim_config(sim: &Simulator) -> CredentialConfig {
    CredentialConfig {
        sts_endpoint: Some(sim.endpoint()),
        ecs_metadata_endpoint: Some(sim.endpoint()),
        ..Default::default()
    }
}

fn chain(config: &CredentialConfig, env: &EnvMap) -> CredentialProvider {
    let env = env.clone();
    credentials::default_chain_with_clock(
        config,
        &move |k| env.get(k).cloned(),
        Arc::new(SystemClock),
    )
    .expect("chain builds")
}

fn client(sim: &Simulator, provider: CredentialProvider) -> IceClient {
    IceClient::new(
        ClientOptions {
            endpoint: reqwest::Url::parse(&sim.endpoint()).expect("url"),
            request_source: None,
            timeout: Duration::from_secs(5),
            max_qps: None,
            max_retries: 2,
            backoff_base: Duration::from_millis(20),
            backoff_cap: Duration::from_millis(100),
            max_response_bytes: ice_sync::ice::DEFAULT_MAX_RESPONSE_BYTES,
        },
        provider,
    )
    .expect("client")
}

async fn start() -> (Simulator, String) {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("simulator");
    let id = sim.populate(1, 0).remove(0);
    (sim, id)
}

/// One GetEditingProject through the chain; returns the source in use.
async fn fetch_once(sim: &Simulator, id: &str, provider: CredentialProvider) -> String {
    let client = client(sim, provider.clone());
    client
        .get_editing_project(id)
        .await
        .unwrap_or_else(|e| panic!("GetEditingProject with {}: {e}", provider.source()));
    provider.source()
}

fn base_key() -> (String, String) {
    let c = SimulatorConfig::default();
    (c.access_key_id, c.access_key_secret)
}

#[tokio::test]
async fn environment_access_key() {
    let (sim, id) = start().await;
    let (ak, secret) = base_key();
    let env = env_map(&[
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", &ak),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", &secret),
    ]);
    let source = fetch_once(&sim, &id, chain(&sim_config(&sim), &env)).await;
    assert_eq!(source, "environment (ALIBABA_CLOUD_ACCESS_KEY_ID)");
    assert_eq!(sim.ice_calls_with_issued_credentials(), 0);
}

#[tokio::test]
async fn environment_sts_token_is_signed_and_checked() {
    let (sim, id) = start().await;
    sim.set_credentials("STS.EnvToken0001", "envStsSecret", Some("CAISenvToken"));
    let mut env = env_map(&[
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", "STS.EnvToken0001"),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "envStsSecret"),
        ("ALIBABA_CLOUD_SECURITY_TOKEN", "CAISenvToken"),
    ]);
    fetch_once(&sim, &id, chain(&sim_config(&sim), &env)).await;
    env.insert(
        "ALIBABA_CLOUD_SECURITY_TOKEN".into(),
        "CAISsomeOtherToken".into(),
    );
    let e = client(&sim, chain(&sim_config(&sim), &env))
        .get_editing_project(&id)
        .await
        .expect_err("wrong token");
    assert_eq!(e.code(), "InvalidSecurityToken.MismatchWithAccessKey");
}

#[tokio::test]
async fn config_key_with_secret_file() {
    let (sim, id) = start().await;
    let (ak, secret) = base_key();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("access_key_secret");
    std::fs::write(&file, format!("{secret}\n")).expect("write");
    let config = CredentialConfig {
        access_key_id: Some(ak),
        access_key_secret_file: Some(file.clone()),
        ..sim_config(&sim)
    };
    let source = fetch_once(&sim, &id, chain(&config, &env_map(&[]))).await;
    assert_eq!(
        source,
        format!("config (ice.access_key_secret_file {})", file.display())
    );
}

#[tokio::test]
async fn systemd_credentials_directory() {
    let (sim, id) = start().await;
    let (ak, secret) = base_key();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("access_key_id"), &ak).expect("write");
    std::fs::write(dir.path().join("access_key_secret"), &secret).expect("write");
    let path = dir.path().display().to_string();
    let env = env_map(&[("CREDENTIALS_DIRECTORY", &path)]);
    let source = fetch_once(&sim, &id, chain(&sim_config(&sim), &env)).await;
    assert_eq!(source, format!("systemd credentials ({path})"));
}

fn write_token(dir: &Path, token: &str) -> String {
    let path = dir.join("token");
    std::fs::write(&path, token).expect("write token");
    path.display().to_string()
}

#[tokio::test]
async fn oidc_rrsa_token_file_is_read_on_every_refresh() {
    let (sim, id) = start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = write_token(dir.path(), DEFAULT_OIDC_TOKEN);
    let env = env_map(&[
        ("ALIBABA_CLOUD_ROLE_ARN", DEFAULT_ROLE_ARN),
        ("ALIBABA_CLOUD_OIDC_PROVIDER_ARN", DEFAULT_OIDC_PROVIDER_ARN),
        ("ALIBABA_CLOUD_OIDC_TOKEN_FILE", &token_file),
        ("ALIBABA_CLOUD_ROLE_SESSION_NAME", "ice-sync-pod"),
    ]);
    let provider = chain(&sim_config(&sim), &env);
    let source = fetch_once(&sim, &id, provider.clone()).await;
    assert!(
        source.starts_with(&format!("OIDC role {DEFAULT_ROLE_ARN}"))
            && source.contains(&token_file)
            && source.contains(&sim.endpoint()),
        "{source}"
    );
    assert_eq!(sim.sts_calls("AssumeRoleWithOIDC"), 1);
    assert_eq!(sim.ice_calls_with_issued_credentials(), 1);

    // The kubelet rotates the token: the next refresh sends the new one.
    sim.set_oidc(DEFAULT_OIDC_PROVIDER_ARN, "eyJrotated.token.sig");
    write_token(dir.path(), "eyJrotated.token.sig");
    sim.revoke_issued();
    fetch_once(&sim, &id, provider.clone()).await;
    assert_eq!(sim.sts_calls("AssumeRoleWithOIDC"), 2);

    // A token STS refuses is a clear error naming the source and the code.
    sim.set_oidc(DEFAULT_OIDC_PROVIDER_ARN, "eyJsomething.else.entirely");
    sim.revoke_issued();
    let e = client(&sim, provider)
        .get_editing_project(&id)
        .await
        .expect_err("refused token");
    let text = e.to_string();
    assert!(
        text.contains("AuthenticationFail.OIDCToken.Invalid")
            && text.contains("OIDC role")
            && text.contains("ALIBABA_CLOUD_OIDC_TOKEN_FILE"),
        "{text}"
    );
    assert!(!text.contains("eyJrotated"), "{text}");
}

#[tokio::test]
async fn assume_role_from_config_over_environment_key() {
    let (sim, id) = start().await;
    let (ak, secret) = base_key();
    let env = env_map(&[
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", &ak),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", &secret),
    ]);
    let config = CredentialConfig {
        role_arn: Some(DEFAULT_ROLE_ARN.into()),
        role_session_name: Some("ice-sync-test".into()),
        ..sim_config(&sim)
    };
    let provider = chain(&config, &env);
    let source = fetch_once(&sim, &id, provider.clone()).await;
    assert_eq!(
        source,
        format!(
            "RAM role {DEFAULT_ROLE_ARN} (session ice-sync-test) assumed via STS {} with \
             credentials from environment (ALIBABA_CLOUD_ACCESS_KEY_ID)",
            sim.endpoint()
        )
    );
    assert_eq!(provider.kind(), "default/ram_role_arn");
    assert_eq!(sim.sts_calls("AssumeRole"), 1);
    assert_eq!(sim.ice_calls_with_issued_credentials(), 1);

    // A role the account does not have: STS's code and what to check, no secret.
    let wrong = CredentialConfig {
        role_arn: Some("acs:ram::1234567890123456:role/nope".into()),
        ..config.clone()
    };
    let e = client(&sim, chain(&wrong, &env))
        .get_editing_project(&id)
        .await
        .expect_err("no such role");
    let text = e.to_string();
    assert!(
        text.contains("EntityNotExist.Role") && text.contains("role/nope"),
        "{text}"
    );
    assert!(!text.contains(&secret), "{text}");

    // A wrong base secret fails the RPC signature check at STS.
    let bad_env = env_map(&[
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", &ak),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "not-the-secret"),
    ]);
    let e = client(&sim, chain(&config, &bad_env))
        .get_editing_project(&id)
        .await
        .expect_err("bad signature");
    assert!(e.to_string().contains("SignatureDoesNotMatch"), "{e}");
}

#[tokio::test]
async fn assume_role_over_an_ecs_role() {
    // The base may itself be temporary: the STS token goes along and is verified.
    let (sim, id) = start().await;
    let config = CredentialConfig {
        role_arn: Some(DEFAULT_ROLE_ARN.into()),
        ..sim_config(&sim)
    };
    let source = fetch_once(&sim, &id, chain(&config, &env_map(&[]))).await;
    assert!(
        source.contains("with credentials from ECS instance RAM role ice-sync-role"),
        "{source}"
    );
    assert_eq!(sim.metadata_calls().credentials, 1);
    assert_eq!(sim.sts_calls("AssumeRole"), 1);
}

#[tokio::test]
async fn ecs_metadata_uses_the_token_first() {
    let (sim, id) = start().await;
    let provider = chain(&sim_config(&sim), &env_map(&[]));
    let source = fetch_once(&sim, &id, provider.clone()).await;
    assert_eq!(
        source,
        format!(
            "ECS instance RAM role {DEFAULT_ECS_ROLE} via {}",
            sim.endpoint()
        )
    );
    assert_eq!(provider.kind(), "default/ecs_ram_role");
    let calls = sim.metadata_calls();
    assert_eq!((calls.token, calls.role_name, calls.credentials), (1, 1, 1));
    assert_eq!(calls.without_token, 0, "{calls:?}");
    assert_eq!(sim.ice_calls_with_issued_credentials(), 1);

    // HttpTokens=required: still fine, since the token comes first.
    let (sim, id) = start().await;
    sim.set_metadata_mode(MetadataMode::TokenRequired);
    let env = env_map(&[("ALIBABA_CLOUD_ECS_METADATA", DEFAULT_ECS_ROLE)]);
    fetch_once(&sim, &id, chain(&sim_config(&sim), &env)).await;
    let calls = sim.metadata_calls();
    assert_eq!((calls.role_name, calls.without_token), (0, 0), "{calls:?}");
}

#[tokio::test]
async fn ecs_metadata_falls_back_to_the_plain_mode() {
    let (sim, id) = start().await;
    sim.set_metadata_mode(MetadataMode::PlainOnly);
    fetch_once(&sim, &id, chain(&sim_config(&sim), &env_map(&[]))).await;
    let calls = sim.metadata_calls();
    assert_eq!((calls.token, calls.without_token), (1, 2), "{calls:?}");

    // Unless the plain mode is forbidden.
    let env = env_map(&[("ALIBABA_CLOUD_IMDSV1_DISABLED", "true")]);
    let e = chain(&sim_config(&sim), &env)
        .credentials()
        .await
        .expect_err("plain mode forbidden");
    assert!(
        e.to_string().contains("ALIBABA_CLOUD_IMDSV1_DISABLED"),
        "{e}"
    );

    // No role attached: say so.
    sim.set_metadata_mode(MetadataMode::Hardened);
    sim.set_ecs_role(None);
    let e = chain(&sim_config(&sim), &env_map(&[]))
        .credentials()
        .await
        .expect_err("no role");
    assert!(e.to_string().contains("no RAM role attached"), "{e}");
}

#[tokio::test]
async fn credentials_uri_last_in_the_chain() {
    // The simulator's metadata answer has the shape the URI source expects.
    let (sim, id) = start().await;
    let path = format!(
        "{}/latest/meta-data/ram/security-credentials/{DEFAULT_ECS_ROLE}",
        sim.endpoint()
    );
    let uri = format!("{path}?auth=sidecar-token-123");
    let env = env_map(&[
        ("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true"),
        ("ALIBABA_CLOUD_CREDENTIALS_URI", &uri),
    ]);
    let provider = chain(&sim_config(&sim), &env);
    let source = fetch_once(&sim, &id, provider.clone()).await;
    assert_eq!(source, format!("credentials URI {path}"));
    assert_eq!(provider.kind(), "default/credentials_uri");
    assert_eq!(sim.metadata_calls().without_token, 1);
}

const CLI_CONFIG: &str = r#"{"current": "sync", "profiles": [
 {"name": "sync", "mode": "AK", "access_key_id": "@AK@", "access_key_secret": "@SECRET@", "region_id": "cn-shanghai"},
 {"name": "role", "mode": "RamRoleArn", "access_key_id": "@AK@", "access_key_secret": "@SECRET@",
  "ram_role_arn": "@ROLE@", "ram_session_name": "cli-role", "expired_seconds": 900, "sts_region": "cn-shanghai"},
 {"name": "chained", "mode": "ChainableRamRoleArn", "source_profile": "sync", "ram_role_arn": "@ROLE@"},
 {"name": "ecs", "mode": "EcsRamRole", "ram_role_name": "ice-sync-role"},
 {"name": "k8s", "mode": "OIDC", "ram_role_arn": "@ROLE@", "oidc_provider_arn": "@OIDC@", "oidc_token_file": "@TOKEN@"}],
 "meta_path": ""}"#;

#[tokio::test]
async fn cli_profiles_of_every_supported_mode() {
    let (sim, id) = start().await;
    let (ak, secret) = base_key();
    let home = tempfile::tempdir().expect("home");
    let token_file = write_token(home.path(), DEFAULT_OIDC_TOKEN);
    std::fs::create_dir_all(home.path().join(".aliyun")).expect("mkdir");
    let path = home.path().join(".aliyun/config.json");
    let text = CLI_CONFIG
        .replace("@AK@", &ak)
        .replace("@SECRET@", &secret)
        .replace("@ROLE@", DEFAULT_ROLE_ARN)
        .replace("@OIDC@", DEFAULT_OIDC_PROVIDER_ARN)
        .replace("@TOKEN@", &token_file);
    std::fs::write(&path, text).expect("write");
    let home_dir = home.path().display().to_string();
    let at = format!("CLI profile sync in {}", path.display());

    let env = env_map(&[("HOME", &home_dir)]);
    let source = fetch_once(&sim, &id, chain(&sim_config(&sim), &env)).await;
    assert_eq!(source, format!("{at} (mode AK)"));

    for (profile, expect, sts, metadata) in [
        ("role", "RAM role", 1, 0),
        ("chained", "with credentials from CLI profile sync", 2, 0),
        ("ecs", "ECS instance RAM role ice-sync-role", 2, 1),
        ("k8s", "OIDC role", 2, 1),
    ] {
        let env = env_map(&[("HOME", &home_dir), ("ALIBABA_CLOUD_PROFILE", profile)]);
        let source = fetch_once(&sim, &id, chain(&sim_config(&sim), &env)).await;
        assert!(source.contains(expect), "{profile}: {source}");
        assert_eq!(sim.sts_calls("AssumeRole"), sts, "{profile}");
        assert_eq!(sim.metadata_calls().credentials, metadata, "{profile}");
    }
    assert_eq!(sim.sts_calls("AssumeRoleWithOIDC"), 1);

    // ice.profile wins over ALIBABA_CLOUD_PROFILE.
    let env = env_map(&[("HOME", &home_dir), ("ALIBABA_CLOUD_PROFILE", "role")]);
    let config = CredentialConfig {
        profile: Some("sync".into()),
        ..sim_config(&sim)
    };
    assert_eq!(
        fetch_once(&sim, &id, chain(&config, &env)).await,
        format!("{at} (mode AK)")
    );
}

#[tokio::test]
async fn credentials_file_profiles_of_every_supported_type() {
    let (sim, id) = start().await;
    let (ak, secret) = base_key();
    let dir = tempfile::tempdir().expect("dir");
    let token_file = write_token(dir.path(), DEFAULT_OIDC_TOKEN);
    let path = dir.path().join("credentials.ini");
    std::fs::write(
        &path,
        format!(
            "[default]\ntype = access_key\naccess_key_id = {ak}\naccess_key_secret = {secret}\n\n\
             [role]\ntype = ram_role_arn\naccess_key_id = {ak}\naccess_key_secret = {secret}\n\
             role_arn = {DEFAULT_ROLE_ARN}\nrole_session_name = ini-role\n\n\
             [ecs]\ntype = ecs_ram_role\nrole_name = {DEFAULT_ECS_ROLE}\n\n\
             [k8s]\ntype = oidc_role_arn\nrole_arn = {DEFAULT_ROLE_ARN}\n\
             oidc_provider_arn = {DEFAULT_OIDC_PROVIDER_ARN}\noidc_token_file_path = {token_file}\n"
        ),
    )
    .expect("write");
    let file = path.display().to_string();
    let env = env_map(&[("ALIBABA_CLOUD_CREDENTIALS_FILE", &file)]);
    let source = fetch_once(&sim, &id, chain(&sim_config(&sim), &env)).await;
    assert_eq!(
        source,
        format!("credentials file {file} [default] (type access_key)")
    );
    for (profile, expect) in [
        ("role", "RAM role"),
        ("ecs", "ECS instance RAM role"),
        ("k8s", "OIDC role"),
    ] {
        let env = env_map(&[
            ("ALIBABA_CLOUD_CREDENTIALS_FILE", &file),
            ("ALIBABA_CLOUD_PROFILE", profile),
        ]);
        let source = fetch_once(&sim, &id, chain(&sim_config(&sim), &env)).await;
        assert!(source.contains(expect), "{profile}: {source}");
    }
    assert_eq!(sim.sts_calls("AssumeRole"), 1);
    assert_eq!(sim.sts_calls("AssumeRoleWithOIDC"), 1);
    assert_eq!(sim.metadata_calls().credentials, 1);

    // ice.credentials_file names the file directly; a missing section says which exist.
    let config = CredentialConfig {
        credentials_file: Some(path.clone()),
        profile: Some("nope".into()),
        ..sim_config(&sim)
    };
    let env = env_map(&[("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")]);
    let e = chain(&config, &env)
        .credentials()
        .await
        .expect_err("no section");
    let text = e.to_string();
    assert!(
        text.contains("no [nope] section") && text.contains("default, ecs, k8s, role"),
        "{text}"
    );
    assert!(!text.contains(&secret), "{text}");
}

#[tokio::test]
async fn chain_order_follows_the_sdks() {
    let (sim, id) = start().await;
    let (ak, secret) = base_key();
    let home = tempfile::tempdir().expect("home");
    let token_file = write_token(home.path(), DEFAULT_OIDC_TOKEN);
    std::fs::create_dir_all(home.path().join(".aliyun")).expect("mkdir");
    std::fs::create_dir_all(home.path().join(".alibabacloud")).expect("mkdir");
    std::fs::write(
        home.path().join(".aliyun/config.json"),
        CLI_CONFIG.replace("@AK@", &ak).replace("@SECRET@", &secret),
    )
    .expect("write");
    std::fs::write(
        home.path().join(".alibabacloud/credentials"),
        format!(
            "[default]\ntype = access_key\naccess_key_id = {ak}\naccess_key_secret = {secret}\n"
        ),
    )
    .expect("write");
    let home_dir = home.path().display().to_string();
    let cfg = sim_config(&sim);
    let mut env = env_map(&[
        ("HOME", &home_dir),
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", &ak),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", &secret),
        ("ALIBABA_CLOUD_ROLE_ARN", DEFAULT_ROLE_ARN),
        ("ALIBABA_CLOUD_OIDC_PROVIDER_ARN", DEFAULT_OIDC_PROVIDER_ARN),
        ("ALIBABA_CLOUD_OIDC_TOKEN_FILE", &token_file),
    ]);
    // Take away the winner each round: the next source in the SDKs' order takes over.
    let mut kinds = Vec::new();
    for step in 0..5 {
        let p = chain(&cfg, &env);
        assert_eq!(p.kind(), "default/unresolved");
        fetch_once(&sim, &id, p.clone()).await;
        kinds.push(p.kind());
        match step {
            0 => {
                env.remove("ALIBABA_CLOUD_ACCESS_KEY_ID");
            }
            1 => {
                env.remove("ALIBABA_CLOUD_ROLE_ARN");
            }
            2 => {
                env.insert("ALIBABA_CLOUD_CLI_PROFILE_DISABLED".into(), "true".into());
            }
            3 => {
                env.insert("HOME".into(), "/nonexistent-ice-sync-test-home".into());
            }
            _ => {}
        }
    }
    assert_eq!(
        kinds,
        [
            "default/env",
            "default/oidc_role_arn",
            "default/cli_profile",
            "default/profile",
            "default/ecs_ram_role"
        ]
    );
}

/// Two ways through the refresh path in one long cycle (SQLite and PostgreSQL).
mod cycle {
    use super::*;
    use ice_sync::app;
    use ice_sync::config;
    use ice_sync::sync::engine::{CycleOutcome, Engine};
    use sqlx::Connection;
    use tokio_util::sync::CancellationToken;

    pub(super) struct Db {
        pub(super) url: String,
        _dir: Option<tempfile::TempDir>,
    }

    pub(super) async fn database(postgres: bool) -> Db {
        if !postgres {
            let dir = tempfile::tempdir().expect("tempdir");
            return Db {
                url: format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display()),
                _dir: Some(dir),
            };
        }
        let admin = std::env::var("ICE_SYNC_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL tests need a server at {admin} (set ICE_SYNC_TEST_PG_URL): {e}")
            });
        let name = format!("ice_sync_creds_{:016x}", rand::random::<u64>());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        let base = admin.rsplit_once('/').map(|(b, _)| b).expect("db path");
        Db {
            url: format!("{base}/{name}"),
            _dir: None,
        }
    }

    /// An engine over `provider`, tracking `ids`, every project due every cycle.
    async fn engine(
        db: &Db,
        sim: &Simulator,
        provider: CredentialProvider,
        ids: &[String],
    ) -> Engine {
        let env = vec![
            ("ICE_SYNC__DATABASE__URL".to_string(), db.url.clone()),
            ("ICE_SYNC__ICE__ENDPOINT".to_string(), sim.endpoint()),
            ("ICE_SYNC__SYNC__MAX_QPS".to_string(), "0".to_string()),
            ("ICE_SYNC__SYNC__CONCURRENCY".to_string(), "8".to_string()),
        ];
        let settings = config::load_from(None, env).expect("settings");
        let store = app::open_store(&settings).await.expect("store");
        let ids: Vec<ice_sync::domain::ProjectId> = ids
            .iter()
            .map(|id| ice_sync::domain::ProjectId::parse(id).expect("project id"))
            .collect();
        let now = app::now(&store).await.expect("now");
        store
            .tracking()
            .track_add(&ids, "test", now)
            .await
            .expect("track");
        let client = IceClient::new(app::client_options(&settings), provider).expect("client");
        let mut options = app::engine_options(&settings);
        options.policy.schedule = None;
        Engine::new(store, client, options)
    }

    /// Credentials valid ~3 s and a cycle of several seconds: the ECS role is refreshed
    /// ahead of expiry while 8 workers poll, no poll fails, ICE never sees an expired
    /// token, and the metadata service is asked about once per refresh.
    async fn refresh_across_expiry_mid_cycle(postgres: bool) {
        let sim = Simulator::start(SimulatorConfig::default())
            .await
            .expect("sim");
        sim.set_issued_lifetime(Some(Duration::from_secs(3)));
        sim.set_latency(Duration::from_millis(120));
        let ids = sim.populate(400, 0);
        let db = database(postgres).await;
        let env = env_map(&[("ALIBABA_CLOUD_ECS_METADATA", DEFAULT_ECS_ROLE)]);
        let engine = engine(&db, &sim, chain(&sim_config(&sim), &env), &ids).await;
        let started = Instant::now();
        let report = engine.run_cycle(&CancellationToken::new()).await;
        let elapsed = started.elapsed();
        assert_eq!(report.outcome, CycleOutcome::Success, "{report:?}");
        assert_eq!(
            (report.polled, report.failures),
            (ids.len(), 0),
            "{report:?}"
        );
        // 400 × 120 ms / 8 workers ≈ 6 s: at least two lifetimes.
        assert!(elapsed >= Duration::from_secs(5), "{elapsed:?}");
        let fetches = sim.metadata_calls().credentials;
        eprintln!(
            "refresh_across_expiry_mid_cycle: {} polls in {elapsed:?}, {fetches} metadata fetches",
            ids.len()
        );
        // One fetch, then one per ~¾ lifetime (2.25 s or less after truncation).
        let most = 2 + (elapsed.as_secs_f64() / 1.4).ceil() as u64;
        assert!(
            (3..=most).contains(&fetches),
            "{fetches} fetches in {elapsed:?}"
        );
        assert_eq!(sim.ice_calls_with_issued_credentials(), ids.len() as u64);
        assert_eq!(
            sim.total_calls(),
            ids.len() as u64,
            "no request was rejected"
        );
        engine.store().close().await;
    }

    /// STS credentials rejected by ICE mid-cycle (revoked early): the client refreshes
    /// once for all 8 workers, retries, and no poll fails.
    async fn rejected_token_mid_cycle_is_refreshed_once(postgres: bool) {
        let sim = Arc::new(
            Simulator::start(SimulatorConfig::default())
                .await
                .expect("sim"),
        );
        sim.set_latency(Duration::from_millis(40));
        let ids = sim.populate(200, 0);
        let db = database(postgres).await;
        let (ak, secret) = base_key();
        let env = env_map(&[
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", &ak),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", &secret),
        ]);
        let config = CredentialConfig {
            role_arn: Some(DEFAULT_ROLE_ARN.into()),
            ..sim_config(&sim)
        };
        let engine = engine(&db, &sim, chain(&config, &env), &ids).await;
        let revoker = {
            let sim = sim.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(400)).await;
                sim.revoke_issued();
            })
        };
        let report = engine.run_cycle(&CancellationToken::new()).await;
        revoker.await.expect("revoker");
        assert_eq!(report.outcome, CycleOutcome::Success, "{report:?}");
        assert_eq!(
            (report.polled, report.failures),
            (ids.len(), 0),
            "{report:?}"
        );
        assert_eq!(
            sim.sts_calls("AssumeRole"),
            2,
            "one initial, one after the rejection"
        );
        // Each worker in flight at the revocation saw one rejection, then succeeded.
        let rejected = sim.total_calls() - ids.len() as u64;
        eprintln!("rejected_token_mid_cycle: {rejected} requests rejected, then retried");
        assert!((1..=8).contains(&rejected), "{rejected} rejected requests");
        engine.store().close().await;
    }

    #[tokio::test]
    async fn refresh_across_expiry_mid_cycle_sqlite() {
        refresh_across_expiry_mid_cycle(false).await;
    }

    #[tokio::test]
    async fn refresh_across_expiry_mid_cycle_postgres() {
        refresh_across_expiry_mid_cycle(true).await;
    }

    #[tokio::test]
    async fn rejected_token_mid_cycle_is_refreshed_once_sqlite() {
        rejected_token_mid_cycle_is_refreshed_once(false).await;
    }

    #[tokio::test]
    async fn rejected_token_mid_cycle_is_refreshed_once_postgres() {
        rejected_token_mid_cycle_is_refreshed_once(true).await;
    }
}

#[tokio::test]
async fn expired_and_unrefreshable_names_the_source() {
    let (sim, id) = start().await;
    sim.set_issued_lifetime(Some(Duration::from_secs(2)));
    let provider = chain(&sim_config(&sim), &env_map(&[]));
    let client = client(&sim, provider.clone());
    client.get_editing_project(&id).await.expect("first");
    // The metadata service goes down; the cached credentials run out.
    sim.fail_credential_services(1000);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let e = client.get_editing_project(&id).await.expect_err("expired");
    let text = e.to_string();
    assert!(
        text.contains("ECS instance RAM role ice-sync-role") && text.contains("HTTP 500"),
        "{text}"
    );
    // The backoff keeps a burst of callers from hammering the metadata service.
    let before = sim.metadata_calls().credentials;
    for _ in 0..20 {
        assert!(provider.credentials().await.is_err());
    }
    assert!(sim.metadata_calls().credentials - before <= 1);
    // Back up: the next attempt after the backoff recovers.
    sim.fail_credential_services(0);
    tokio::time::sleep(Duration::from_secs(4)).await;
    client.get_editing_project(&id).await.expect("recovered");
}

#[tokio::test]
async fn secrets_stay_out_of_debug_and_errors() {
    let (sim, id) = start().await;
    let (ak, secret) = base_key();
    let env = env_map(&[
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", &ak),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", &secret),
    ]);
    let config = CredentialConfig {
        role_arn: Some(DEFAULT_ROLE_ARN.into()),
        ..sim_config(&sim)
    };
    let provider = chain(&config, &env);
    fetch_once(&sim, &id, provider.clone()).await;
    let c = provider.credentials().await.expect("creds");
    let mut texts = vec![format!("{provider:?}"), format!("{c:?}"), provider.source()];
    // Failures after a successful fetch: wrong role, STS down, ICE rejecting.
    sim.set_sts_role("acs:ram::1:role/other");
    sim.revoke_issued();
    texts.push(
        client(&sim, provider.clone())
            .get_editing_project(&id)
            .await
            .expect_err("wrong role")
            .to_string(),
    );
    sim.fail_credential_services(100);
    texts.push(
        client(&sim, chain(&config, &env))
            .get_editing_project(&id)
            .await
            .expect_err("down")
            .to_string(),
    );
    let mut secrets = sim.issued_secrets();
    secrets.push(secret.clone());
    secrets.push(c.access_key_secret.expose_secret().to_string());
    for text in &texts {
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "secret in {text}");
        }
    }
}

/// `ice-sync check` names the source in use and proves it with a signed call.
mod check {
    use super::*;

    async fn check_names_the_source(postgres: bool) {
        let (sim, _id) = start().await;
        let db = super::cycle::database(postgres).await;
        let env: Vec<(String, String)> = [
            ("ICE_SYNC__DATABASE__URL", db.url.as_str()),
            ("ICE_SYNC__ICE__ENDPOINT", &sim.endpoint()),
            ("ICE_SYNC__ICE__ECS_METADATA_ENDPOINT", &sim.endpoint()),
            ("HOME", "/nonexistent-ice-sync-test-home"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let report = ice_sync::check::check(None, &env).await.render();
        let line = report
            .lines()
            .find(|l| l.contains("credentials"))
            .unwrap_or_default();
        assert!(
            line.contains(&format!(
                "from ECS instance RAM role {DEFAULT_ECS_ROLE} via {}",
                sim.endpoint()
            )) && line.contains("with an STS security token"),
            "{report}"
        );
        let api = report
            .lines()
            .find(|l| l.contains("ice api"))
            .unwrap_or_default();
        assert!(api.trim_start().starts_with("ok"), "{report}");
        for s in sim.issued_secrets() {
            assert!(!report.contains(&s), "{report}");
        }
    }

    #[tokio::test]
    async fn check_names_the_source_sqlite() {
        check_names_the_source(false).await;
    }

    #[tokio::test]
    async fn check_names_the_source_postgres() {
        check_names_the_source(true).await;
    }
}

/// The real binary at `RUST_LOG=trace`: no secret of any source in its output.
mod binary {
    use super::*;
    use std::process::{Child, Command, Stdio};

    /// Kills the child if the test fails before it exits.
    struct Guard(Option<Child>);

    impl Drop for Guard {
        fn drop(&mut self) {
            if let Some(c) = self.0.as_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    fn run(env: &[(String, String)], args: &[&str]) -> (Option<i32>, String) {
        // A file, not a pipe: trace output would fill a pipe and stall the child.
        let log = tempfile::NamedTempFile::new().expect("log file");
        let file = log.reopen().expect("reopen");
        let child = Command::new(env!("CARGO_BIN_EXE_ice-sync"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", "/nonexistent-ice-sync-test-home")
            .env("ICE_SYNC__LOG__FORMAT", "plain")
            .env("RUST_LOG", "trace")
            .envs(env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone"))
            .stderr(file)
            .spawn()
            .expect("spawn ice-sync");
        let mut guard = Guard(Some(child));
        let deadline = Instant::now() + Duration::from_secs(120);
        let code = loop {
            if let Some(status) = guard.0.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                guard.0 = None;
                break status.code();
            }
            assert!(Instant::now() < deadline, "ice-sync {args:?} did not exit");
            std::thread::sleep(Duration::from_millis(50));
        };
        let out = std::fs::read(log.path()).expect("read log");
        (code, String::from_utf8_lossy(&out).into_owned())
    }

    #[tokio::test]
    async fn secrets_stay_out_of_logs() {
        let sim = Simulator::start(SimulatorConfig::default())
            .await
            .expect("sim");
        // Short-lived credentials and a cycle long enough to refresh them.
        sim.set_issued_lifetime(Some(Duration::from_secs(2)));
        // 100 × 60 ms / 2 workers = 3 s: more than one lifetime even after truncation.
        sim.set_latency(Duration::from_millis(60));
        let ids = sim.populate(100, 0);
        let dir = tempfile::tempdir().expect("dir");
        let token_file = write_token(dir.path(), DEFAULT_OIDC_TOKEN);
        let db = format!("sqlite://{}?mode=rwc", dir.path().join("l.db").display());
        let (_, base_secret) = base_key();
        let projects = ids.join(",");
        // OIDC as the base, a role assumed on top: both STS actions, refreshed.
        let env: Vec<(String, String)> = [
            ("ICE_SYNC__DATABASE__URL", db.as_str()),
            ("ICE_SYNC__ICE__ENDPOINT", &sim.endpoint()),
            ("ICE_SYNC__ICE__STS_ENDPOINT", &sim.endpoint()),
            ("ICE_SYNC__ICE__ROLE_ARN", DEFAULT_ROLE_ARN),
            ("ICE_SYNC__SYNC__PROJECTS", &projects),
            ("ICE_SYNC__SYNC__CONCURRENCY", "2"),
            ("ICE_SYNC__SYNC__MAX_QPS", "0"),
            ("ALIBABA_CLOUD_ROLE_ARN", DEFAULT_ROLE_ARN),
            ("ALIBABA_CLOUD_OIDC_PROVIDER_ARN", DEFAULT_OIDC_PROVIDER_ARN),
            ("ALIBABA_CLOUD_OIDC_TOKEN_FILE", &token_file),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (code, run_out) = tokio::task::spawn_blocking({
            let env = env.clone();
            move || run(&env, &["run", "--once"])
        })
        .await
        .expect("join");
        assert_eq!(code, Some(0), "{run_out}");
        assert!(run_out.contains("credentials resolved"), "{run_out}");
        eprintln!(
            "secrets_stay_out_of_logs: {} bytes of trace output",
            run_out.len()
        );
        assert!(
            run_out.len() > 20_000,
            "trace logging did not reach the output"
        );
        assert!(sim.sts_calls("AssumeRole") >= 2, "no refresh happened");

        let (_, check_out) = tokio::task::spawn_blocking({
            let env = env.clone();
            move || run(&env, &["check"])
        })
        .await
        .expect("join");
        assert!(check_out.contains("RAM role"), "{check_out}");

        // A failure: STS refuses the role. The error text is in the output too.
        let mut bad = env.clone();
        bad.push((
            "ICE_SYNC__ICE__ROLE_ARN".into(),
            // The database's account (a role of another account is refused before STS).
            "acs:ram::1234567890123456:role/none".into(),
        ));
        let (code, fail_out) = tokio::task::spawn_blocking(move || run(&bad, &["run", "--once"]))
            .await
            .expect("join");
        assert_ne!(code, Some(0), "{fail_out}");
        assert!(fail_out.contains("EntityNotExist.Role"), "{fail_out}");

        let mut secrets = sim.issued_secrets();
        assert!(secrets.len() >= 8, "{} issued", secrets.len());
        secrets.push(DEFAULT_OIDC_TOKEN.to_string());
        secrets.push(base_secret);
        for (what, out) in [
            ("run", &run_out),
            ("check", &check_out),
            ("failed run", &fail_out),
        ] {
            for s in &secrets {
                assert!(!out.contains(s.as_str()), "{what} output contains a secret");
            }
        }
    }
}
