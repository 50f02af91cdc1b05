//! A webhook receiver for tests: axum on loopback that records every request (headers and
//! exact body bytes) and answers with the status the test decides, plus the checks every
//! feed test makes on what it received, computed independently of the crate's own
//! signing code.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use ice_sync::contract::Transition;
use ice_sync::storage::Store;
use sha2::Sha256;

use crate::support::project_id;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Hit {
    pub key: Option<String>,
    pub signature: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub status: u16,
    /// When the answer was decided.
    pub at: Instant,
}

impl Hit {
    pub fn transition(&self) -> Transition {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not a transition ({e}): {:?}", self.body))
    }

    pub fn acknowledged(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Decides the status of a request: the transition and the how-many-th request for its
/// key this is (1 for the first).
type Answer = dyn Fn(&Transition, usize) -> u16 + Send + Sync;

struct Shared {
    hits: Mutex<Vec<Hit>>,
    answer: Box<Answer>,
    latency: Duration,
    /// Requests being answered right now, per key, and whether two ever overlapped.
    in_flight: Mutex<HashMap<String, usize>>,
    overlapped: Mutex<Vec<String>>,
}

pub struct Receiver {
    pub url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Receiver {
    pub async fn start(answer: impl Fn(&Transition, usize) -> u16 + Send + Sync + 'static) -> Self {
        Self::start_slow(Duration::ZERO, answer).await
    }

    /// Each answer takes `latency`.
    pub async fn start_slow(
        latency: Duration,
        answer: impl Fn(&Transition, usize) -> u16 + Send + Sync + 'static,
    ) -> Self {
        let shared = Arc::new(Shared {
            hits: Mutex::default(),
            answer: Box::new(answer),
            latency,
            in_flight: Mutex::default(),
            overlapped: Mutex::default(),
        });
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}/hook"),
            shared,
            server,
        }
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().expect("lock").clone()
    }

    /// Keys two of whose requests were being answered at the same time.
    pub fn overlapped(&self) -> Vec<String> {
        self.shared.overlapped.lock().expect("lock").clone()
    }

    /// Waits until every key of `expected` was acknowledged (generous: the box is loaded).
    pub async fn wait_for_acknowledged(&self, expected: &[Transition], timeout: Duration) {
        let start = Instant::now();
        loop {
            let acked: std::collections::HashSet<String> = self
                .hits()
                .iter()
                .filter(|h| h.acknowledged())
                .filter_map(|h| h.key.clone())
                .collect();
            let missing: Vec<String> = expected
                .iter()
                .map(Transition::key)
                .filter(|k| !acked.contains(k))
                .collect();
            if missing.is_empty() {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "not acknowledged within {timeout:?}: {missing:?}; hits: {:?}",
                self.hits()
                    .iter()
                    .map(|h| (h.key.clone(), h.status))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn hook(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let key = header("idempotency-key");
    if let Some(k) = &key {
        let mut in_flight = shared.in_flight.lock().expect("lock");
        let n = in_flight.entry(k.clone()).or_default();
        *n += 1;
        if *n > 1 {
            shared.overlapped.lock().expect("lock").push(k.clone());
        }
    }
    if !shared.latency.is_zero() {
        tokio::time::sleep(shared.latency).await;
    }
    let status = {
        let mut hits = shared.hits.lock().expect("lock");
        let status = match serde_json::from_slice::<Transition>(&body) {
            Ok(t) => {
                let attempt = 1 + hits.iter().filter(|h| h.key == key).count();
                (shared.answer)(&t, attempt)
            }
            Err(_) => 400,
        };
        hits.push(Hit {
            key: key.clone(),
            signature: header("x-ice-sync-signature"),
            content_type: header("content-type"),
            body: body.to_vec(),
            status,
            at: Instant::now(),
        });
        status
    };
    if let Some(k) = &key {
        if let Some(n) = shared.in_flight.lock().expect("lock").get_mut(k) {
            *n -= 1;
        }
    }
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// `sha256=<hex>`, computed here rather than with the crate's signer.
pub fn expected_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What the feed must have announced for these projects: their history rows.
pub async fn expected_transitions(store: &Store, ids: &[&str]) -> Vec<Transition> {
    let mut all = Vec::new();
    for id in ids {
        for h in store
            .reads()
            .history(&project_id(id))
            .await
            .expect("history")
        {
            all.push(Transition {
                project_id: id.to_string(),
                seq: h.seq,
                event: h.event,
                previous_status: h.previous_status,
                previous_business_status: h.previous_business_status,
                status: h.status,
                business_status: h.business_status,
                observed_at: h.observed_at.to_text(),
                skipped_states: h.skipped_states,
                truncated: false,
            });
        }
    }
    all
}

/// The checks on everything a receiver got:
/// * each request is JSON, signed with `secret` over its exact bytes, and keyed
///   `project_id:seq` of its own body;
/// * every key has one body, byte for byte, however often it was sent;
/// * every expected transition was acknowledged with exactly its content, and nothing else
///   was sent;
/// * per project, a request for `seq` n+1 only ever follows the acknowledgement of n; with
///   `repeats_allowed`, an already acknowledged key may come again (after a crash).
pub fn verify(hits: &[Hit], secret: &str, expected: &[Transition], repeats_allowed: bool) {
    let mut bodies: HashMap<String, Vec<u8>> = HashMap::new();
    let mut acked_upto: BTreeMap<String, i64> = BTreeMap::new();
    let mut acknowledged: BTreeMap<String, Transition> = BTreeMap::new();
    for hit in hits {
        assert_eq!(hit.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            hit.signature.as_deref(),
            Some(expected_signature(secret, &hit.body).as_str()),
            "signature of {:?}",
            hit.key
        );
        let t = hit.transition();
        assert_eq!(
            hit.key.as_deref(),
            Some(t.key().as_str()),
            "idempotency key"
        );
        let first = bodies.entry(t.key()).or_insert_with(|| hit.body.clone());
        assert_eq!(
            first,
            &hit.body,
            "{}: a repeat must carry the same bytes",
            t.key()
        );
        let upto = acked_upto.entry(t.project_id.clone()).or_insert(0);
        if repeats_allowed && t.seq <= *upto {
            // A repeat of what was acknowledged before a crash: same key, same bytes.
        } else {
            assert_eq!(
                t.seq,
                *upto + 1,
                "{}: sent before seq {} was acknowledged",
                t.key(),
                *upto + 1
            );
        }
        if hit.acknowledged() {
            *upto = (*upto).max(t.seq);
            acknowledged.entry(t.key()).or_insert(t);
        }
    }
    let wanted: BTreeMap<String, Transition> =
        expected.iter().map(|t| (t.key(), t.clone())).collect();
    assert_eq!(
        acknowledged, wanted,
        "every transition, acknowledged, and nothing else"
    );
}
