//! The bare floor: the same signed `GetEditingProject` requests the daemon sends, with
//! an HTTP client built as the daemon's and the same concurrency, but no rate limiter,
//! retries, JSON parsing, database or metrics. What is left is the CPU that no sync engine can avoid.

use std::time::Instant;

use futures::StreamExt;
use secrecy::ExposeSecret;

use ice_sim::SignedCaller;
use ice_sync::credentials::Credentials;
use ice_sync::ice::ClientOptions;

/// The transport half of `IceClient`: the signed headers it sends
/// (`ice_wire::signing::rpc_headers`, through the simulator's `SignedCaller`), a reqwest
/// client built as its own is, and the body read into memory.
pub struct BareClient {
    caller: SignedCaller,
}

impl BareClient {
    pub fn new(options: &ClientOptions, credentials: Credentials) -> anyhow::Result<BareClient> {
        let caller = SignedCaller::new(
            options.endpoint.as_str(),
            &credentials.access_key_id,
            credentials.access_key_secret.expose_secret(),
        )?
        .security_token(
            credentials
                .security_token
                .as_ref()
                .map(|t| t.expose_secret()),
        )
        .timeout(options.timeout)?;
        Ok(BareClient { caller })
    }

    /// One signed `GetEditingProject`; the body is read and dropped unparsed.
    pub async fn get(&self, project_id: &str) -> Result<(), String> {
        let query = vec![("ProjectId".to_string(), project_id.to_string())];
        let response = self
            .caller
            .request("GetEditingProject", &query)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        // `call_once` copies the body out as well.
        std::hint::black_box(body.to_vec());
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {status}"))
        }
    }
}

/// What one round over every ID did.
#[derive(Debug, Clone, Default)]
pub struct Round {
    pub wall: f64,
    pub polled: u64,
    pub failures: u64,
    pub first_error: Option<String>,
}

/// One request per ID, `concurrency` at a time.
pub async fn round(bare: &BareClient, ids: &[String], concurrency: usize) -> Round {
    let clock = Instant::now();
    let mut results = futures::stream::iter(ids)
        .map(|id| bare.get(id))
        .buffer_unordered(concurrency.max(1));
    let mut round = Round::default();
    while let Some(result) = results.next().await {
        round.polled += 1;
        if let Err(e) = result {
            round.failures += 1;
            round.first_error.get_or_insert(e);
        }
    }
    round.wall = clock.elapsed().as_secs_f64();
    round
}
