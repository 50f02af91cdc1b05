//! Credentials never follow a redirect, and no answer is read past its cap (issue 20,
//! finding 6). The simulator answers every request (ICE, STS, metadata) with a 307 to a
//! trap: a plain TCP listener that records whatever reaches it. Each client must refuse
//! the redirect with a clear error and the trap must never see a byte. Then the
//! simulator answers with an endless chunked body: each credential source must refuse it
//! with the cap in the message instead of buffering it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ice_sim::{
    Hostile, Simulator, SimulatorConfig, DEFAULT_ECS_ROLE, DEFAULT_OIDC_PROVIDER_ARN,
    DEFAULT_OIDC_TOKEN, DEFAULT_ROLE_ARN,
};
use ice_sync::credentials::{self, CredentialConfig, CredentialProvider, Credentials, SystemClock};
use ice_sync::ice::{ClientOptions, IceClient};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// A listener that keeps every byte it is sent.
struct Trap {
    base: String,
    seen: Arc<Mutex<Vec<u8>>>,
    connections: Arc<Mutex<u32>>,
}

impl Trap {
    async fn start() -> Trap {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind trap");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let (s, c) = (seen.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                *c.lock().expect("lock") += 1;
                let s = s.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        s.lock().expect("lock").extend_from_slice(&buf[..n]);
                    }
                });
            }
        });
        Trap {
            base,
            seen,
            connections,
        }
    }

    /// Nothing ever connected, so no credential can have arrived.
    fn assert_untouched(&self, what: &str) {
        let seen = String::from_utf8_lossy(&self.seen.lock().expect("lock")).to_string();
        assert_eq!(
            *self.connections.lock().expect("lock"),
            0,
            "{what} followed the redirect; the trap got: {seen}"
        );
    }
}

fn env_of(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    let mut map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    map.insert("HOME".into(), "/nonexistent-ice-sync-test-home".into());
    map
}

fn chain(sim: &Simulator, env: HashMap<String, String>) -> CredentialProvider {
    let config = CredentialConfig {
        sts_endpoint: Some(sim.endpoint()),
        ecs_metadata_endpoint: Some(sim.endpoint()),
        ..Default::default()
    };
    credentials::default_chain_with_clock(
        &config,
        &move |k| env.get(k).cloned(),
        Arc::new(SystemClock),
    )
    .expect("chain builds")
}

/// The three credential sources that fetch over HTTP, each with what it sends.
fn network_sources(
    sim: &Simulator,
    dir: &std::path::Path,
) -> Vec<(&'static str, CredentialProvider)> {
    let token_file = dir.join("oidc-token");
    std::fs::write(&token_file, DEFAULT_OIDC_TOKEN).expect("token");
    let token_file = token_file.display().to_string();
    let uri = format!(
        "{}/latest/meta-data/ram/security-credentials/{DEFAULT_ECS_ROLE}?auth=sidecar-secret-42",
        sim.endpoint()
    );
    vec![
        (
            "STS AssumeRoleWithOIDC",
            chain(
                sim,
                env_of(&[
                    ("ALIBABA_CLOUD_ROLE_ARN", DEFAULT_ROLE_ARN),
                    ("ALIBABA_CLOUD_OIDC_PROVIDER_ARN", DEFAULT_OIDC_PROVIDER_ARN),
                    ("ALIBABA_CLOUD_OIDC_TOKEN_FILE", &token_file),
                ]),
            ),
        ),
        ("ECS metadata", chain(sim, env_of(&[]))),
        (
            "credentials URI",
            chain(
                sim,
                env_of(&[
                    ("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true"),
                    ("ALIBABA_CLOUD_CREDENTIALS_URI", &uri),
                ]),
            ),
        ),
    ]
}

#[tokio::test]
async fn credential_sources_refuse_redirects() {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let trap = Trap::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let sources = network_sources(&sim, dir.path());
    sim.set_hostile(Hostile::RedirectTo(trap.base.clone()));
    for (what, provider) in sources {
        let e = provider.credentials().await.expect_err(what).to_string();
        assert!(e.contains("redirect"), "{what}: {e}");
        assert!(
            !e.contains(DEFAULT_OIDC_TOKEN) && !e.contains("sidecar-secret-42"),
            "{e}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        trap.assert_untouched(what);
    }
}

#[tokio::test]
async fn the_ice_client_refuses_redirects() {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let id = sim.populate(1, 0).remove(0);
    let trap = Trap::start().await;
    let c = SimulatorConfig::default();
    let fixed = Credentials {
        access_key_id: c.access_key_id.clone(),
        access_key_secret: c.access_key_secret.clone().into(),
        security_token: Some("CAISsecurity-token-77".to_string().into()),
        source: "test".into(),
    };
    let client = IceClient::new(
        ClientOptions {
            endpoint: reqwest::Url::parse(&sim.endpoint()).expect("url"),
            request_source: None,
            timeout: Duration::from_secs(5),
            max_qps: None,
            max_retries: 1,
            backoff_base: Duration::from_millis(10),
            backoff_cap: Duration::from_millis(20),
            max_response_bytes: ice_sync::ice::DEFAULT_MAX_RESPONSE_BYTES,
        },
        fixed,
    )
    .expect("client");
    sim.set_hostile(Hostile::RedirectTo(trap.base.clone()));
    let e = client
        .get_editing_project(&id)
        .await
        .expect_err("redirected");
    assert!(e.to_string().contains("redirect"), "{e}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    trap.assert_untouched("the ICE client");
}

#[tokio::test]
async fn credential_answers_are_read_with_a_cap() {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let sources = network_sources(&sim, dir.path());
    // 64 MiB, chunked: the old clients read it whole.
    sim.set_hostile(Hostile::Oversized(64 << 20));
    for (what, provider) in sources {
        let e = provider.credentials().await.expect_err(what).to_string();
        assert!(e.contains("larger than 65536 bytes"), "{what}: {e}");
    }
}
