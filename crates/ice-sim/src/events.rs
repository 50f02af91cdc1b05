//! Event callbacks, as IMS sends them: the region's callback setting
//! (`SetEventCallback` / `GetEventCallback`), scripted producing jobs, and the HTTP
//! deliveries a finished job causes — the envelope of `ProduceMediaComplete`, the
//! `X-ICE-TIMESTAMP` / `X-ICE-SIGNATURE` headers when `AuthSwitch=on`, 3 attempts 1 s
//! apart, each given 3 s, anything but HTTP 200 a failure (see
//! `shared/reference/ice-callbacks.md`, sections 1, 3-5).
//!
//! The digest is computed here on its own rather than with `ice_sync::callback`, so a test
//! through the simulator checks the receiver against a second implementation. Every
//! attempt is recorded with the exact request sent, so a test can replay one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use super::api::ApiError;

/// Tries per event, the pause between them and how long each may take (IMS's numbers).
pub(crate) const ATTEMPTS: u32 = 3;
pub(crate) const RETRY_PAUSE: Duration = Duration::from_secs(1);
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// The event a finished producing job sends.
pub const PRODUCE_MEDIA_COMPLETE: &str = "ProduceMediaComplete";

/// The region's callback setting, as `SetEventCallback` takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventCallback {
    /// `HTTP` or `MNS`; only HTTP is delivered by the simulator.
    pub callback_type: String,
    pub callback_url: String,
    pub callback_queue_name: Option<String>,
    pub auth_switch: bool,
    pub auth_key: Option<String>,
    /// Only these events are sent.
    pub event_types: Vec<String>,
}

impl EventCallback {
    /// An HTTP callback of `ProduceMediaComplete`, signed with `auth_key` (none: unsigned).
    pub fn http(url: &str, auth_key: Option<&str>) -> EventCallback {
        EventCallback {
            callback_type: "HTTP".to_string(),
            callback_url: url.to_string(),
            callback_queue_name: None,
            auth_switch: auth_key.is_some(),
            auth_key: auth_key.map(str::to_string),
            event_types: vec![PRODUCE_MEDIA_COMPLETE.to_string()],
        }
    }
}

/// One attempt to deliver an event, with the exact request sent.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub job_id: String,
    pub event_type: String,
    /// 1, 2 or 3.
    pub attempt: u32,
    /// Where the request went (the registered URL, or its route, see
    /// `Simulator::route_callbacks_to`).
    pub sent_to: String,
    pub timestamp: Option<String>,
    pub signature: Option<String>,
    pub body: String,
    pub sent_at: DateTime<Utc>,
    /// The receiver's HTTP status; `None` when it did not answer within 3 s or the
    /// connection failed (see `error`).
    pub status: Option<u16>,
    pub error: Option<String>,
}

impl Delivery {
    /// IMS counts only HTTP 200 as delivered.
    pub fn delivered(&self) -> bool {
        self.status == Some(200)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub project_id: String,
    /// Set when the job finished: the event it sends (again, on `redeliver`).
    pub envelope: Option<String>,
}

pub(crate) struct EventState {
    pub callback: Option<EventCallback>,
    /// Where deliveries really go: the registered URL's host and port replaced, as DNS
    /// or a reverse proxy in front of the receiver would.
    pub route_to: Option<SocketAddr>,
    pub jobs: HashMap<String, Job>,
    pub deliveries: Vec<Delivery>,
    pub senders: HashMap<String, Vec<JoinHandle<()>>>,
    pub rng: StdRng,
    pub user_id: u64,
}

impl EventState {
    pub(crate) fn new(mut rng: StdRng) -> Self {
        let user_id = rng.gen_range(1_000_000_000_000_000..10_000_000_000_000_000);
        EventState {
            callback: None,
            route_to: None,
            jobs: HashMap::new(),
            deliveries: Vec::new(),
            senders: HashMap::new(),
            rng,
            user_id,
        }
    }
}

fn param<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn invalid(name: &str, why: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "InvalidParameter",
        &format!("The specified parameter {name} is not valid: {why}."),
    )
}

/// ICE's AuthKey rule: at most 32 characters mixing upper case, lower case and digits.
fn auth_key_ok(key: &str) -> bool {
    let b = key.as_bytes();
    !key.is_empty()
        && key.chars().count() <= 32
        && b.iter().any(u8::is_ascii_uppercase)
        && b.iter().any(u8::is_ascii_lowercase)
        && b.iter().any(u8::is_ascii_digit)
}

/// `SetEventCallback` and `GetEventCallback`.
pub(crate) fn answer(
    state: &mut EventState,
    action: &str,
    query: &[(String, String)],
    request_id: &str,
) -> Result<Value, ApiError> {
    match action {
        "SetEventCallback" => {
            let callback = parse_setting(query)?;
            state.callback = Some(callback);
            Ok(json!({"RequestId": request_id, "Success": true}))
        }
        _ => {
            let c = state.callback.clone().unwrap_or(EventCallback {
                callback_type: String::new(),
                callback_url: String::new(),
                callback_queue_name: None,
                auth_switch: false,
                auth_key: None,
                event_types: Vec::new(),
            });
            // The key comes back in clear text, as the real API does.
            Ok(json!({
                "RequestId": request_id,
                "CallbackType": c.callback_type,
                "CallbackQueueName": c.callback_queue_name.unwrap_or_default(),
                "CallbackURL": c.callback_url,
                "EventTypeList": c.event_types.join(","),
                "AuthSwitch": if c.auth_switch { "on" } else { "off" },
                "AuthKey": c.auth_key.unwrap_or_default(),
            }))
        }
    }
}

fn parse_setting(query: &[(String, String)]) -> Result<EventCallback, ApiError> {
    let callback_type = param(query, "CallbackType")
        .ok_or_else(|| invalid("CallbackType", "it is required"))?
        .to_string();
    let event_types: Vec<String> = param(query, "EventTypeList")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let auth_switch = match param(query, "AuthSwitch") {
        None | Some("off") => false,
        Some("on") => true,
        Some(_) => return Err(invalid("AuthSwitch", "use on or off")),
    };
    let auth_key = param(query, "AuthKey").map(str::to_string);
    match callback_type.as_str() {
        "HTTP" => {
            let url = param(query, "CallbackURL")
                .ok_or_else(|| invalid("CallbackURL", "it is required for HTTP"))?;
            let ok = url.len() <= 256
                && reqwest::Url::parse(url).is_ok_and(|u| {
                    matches!(u.scheme(), "http" | "https") && u.host_str().is_some()
                });
            if !ok {
                return Err(invalid(
                    "CallbackURL",
                    "use one http(s) URL of at most 256 bytes",
                ));
            }
            if auth_switch && !auth_key.as_deref().is_some_and(auth_key_ok) {
                return Err(invalid(
                    "AuthKey",
                    "use at most 32 characters mixing upper case, lower case and digits",
                ));
            }
            Ok(EventCallback {
                callback_type,
                callback_url: url.to_string(),
                callback_queue_name: None,
                auth_switch,
                auth_key,
                event_types,
            })
        }
        "MNS" => {
            let queue = param(query, "CallbackQueueName")
                .filter(|q| q.starts_with("ice-callback-"))
                .ok_or_else(|| {
                    invalid(
                        "CallbackQueueName",
                        "the queue name must start with ice-callback-",
                    )
                })?;
            Ok(EventCallback {
                callback_type,
                callback_url: String::new(),
                callback_queue_name: Some(queue.to_string()),
                auth_switch: false,
                auth_key: None,
                event_types,
            })
        }
        _ => Err(invalid("CallbackType", "use HTTP or MNS")),
    }
}

/// The `ProduceMediaComplete` envelope of a finished job, as IMS writes it (UserId a
/// number, EventTime in seconds, ErrorCode and ErrorMessage empty on success).
pub(crate) fn produce_media_complete(
    user_id: u64,
    job_id: &str,
    project_id: &str,
    media_id: &str,
    success: bool,
    at: DateTime<Utc>,
) -> String {
    let (status, code, message) = if success {
        ("Success", "", "")
    } else {
        ("Fail", "InternalError", "The producing job failed.")
    };
    json!({
        "EventType": PRODUCE_MEDIA_COMPLETE,
        "UserId": user_id,
        "EventTime": super::lifecycle::timestamp(at),
        "MessageBody": {
            "Status": status,
            "JobId": job_id,
            "ProjectId": project_id,
            "MediaId": media_id,
            "MediaURL": format!("https://example-bucket.oss-cn-shanghai.aliyuncs.com/out/{media_id}.mp4"),
            "ErrorCode": code,
            "ErrorMessage": message,
            "UserData": "",
        }
    })
    .to_string()
}

/// `md5(CallbackURL|timestamp|AuthKey)` in lower-case hex.
pub(crate) fn sign(url: &str, timestamp: &str, key: &str) -> String {
    hex::encode(Md5::digest(format!("{url}|{timestamp}|{key}").as_bytes()))
}

/// Where a request for `registered` really goes when routed to `route`.
pub(crate) fn target(registered: &str, route: Option<SocketAddr>) -> String {
    let Some(addr) = route else {
        return registered.to_string();
    };
    match reqwest::Url::parse(registered) {
        Ok(url) => {
            let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
            format!("http://{addr}{}{query}", url.path())
        }
        Err(_) => registered.to_string(),
    }
}

/// What a sender needs: the setting at the moment the event fired.
#[derive(Clone)]
pub(crate) struct Send {
    pub job_id: String,
    pub event_type: String,
    pub body: String,
    pub callback: EventCallback,
    pub sent_to: String,
}

/// Delivers one event: up to [`ATTEMPTS`] tries [`RETRY_PAUSE`] apart, each signed
/// afresh, until one gets HTTP 200. `record` keeps each attempt.
pub(crate) async fn deliver(send: Send, record: impl Fn(Delivery)) {
    let client = match reqwest::Client::builder().timeout(ATTEMPT_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            record(failed(&send, 1, format!("no HTTP client: {e}")));
            return;
        }
    };
    for attempt in 1..=ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        let now = Utc::now();
        let mut request = client
            .post(&send.sent_to)
            .header("content-type", "application/json")
            .body(send.body.clone());
        let (mut timestamp, mut signature) = (None, None);
        if let (true, Some(key)) = (send.callback.auth_switch, &send.callback.auth_key) {
            let ts = now.timestamp().to_string();
            let sig = sign(&send.callback.callback_url, &ts, key);
            request = request
                .header("X-ICE-TIMESTAMP", &ts)
                .header("X-ICE-SIGNATURE", &sig);
            timestamp = Some(ts);
            signature = Some(sig);
        }
        let mut delivery = Delivery {
            job_id: send.job_id.clone(),
            event_type: send.event_type.clone(),
            attempt,
            sent_to: send.sent_to.clone(),
            timestamp,
            signature,
            body: send.body.clone(),
            sent_at: now,
            status: None,
            error: None,
        };
        match request.send().await {
            Ok(response) => delivery.status = Some(response.status().as_u16()),
            Err(e) if e.is_timeout() => {
                delivery.error = Some(format!("no answer within {ATTEMPT_TIMEOUT:?}"))
            }
            Err(e) => delivery.error = Some(e.to_string()),
        }
        let done = delivery.delivered();
        record(delivery);
        if done {
            return;
        }
    }
}

fn failed(send: &Send, attempt: u32, error: String) -> Delivery {
    Delivery {
        job_id: send.job_id.clone(),
        event_type: send.event_type.clone(),
        attempt,
        sent_to: send.sent_to.clone(),
        timestamp: None,
        signature: None,
        body: send.body.clone(),
        sent_at: Utc::now(),
        status: None,
        error: Some(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_documented_signature() {
        assert_eq!(
            sign(
                "https://ice-sync.example.com/ice/events",
                "1718000000",
                "TestKey001"
            ),
            "bb3ca5540db3dced48b9b9e2bf83b766"
        );
    }

    #[test]
    fn set_then_get_round_trips_and_bad_settings_are_refused() {
        let mut state = EventState::new(StdRng::seed_from_u64(1));
        let set = q(&[
            ("CallbackType", "HTTP"),
            ("CallbackURL", "https://ice-sync.example.com/ice/events"),
            ("AuthSwitch", "on"),
            ("AuthKey", "TestKey001"),
            (
                "EventTypeList",
                "ProduceMediaComplete,BatchProduceMediaComplete",
            ),
        ]);
        let ok = answer(&mut state, "SetEventCallback", &set, "R1").expect("set");
        assert_eq!(ok["Success"], true);
        let got = answer(&mut state, "GetEventCallback", &[], "R2").expect("get");
        assert_eq!(
            got["CallbackURL"],
            "https://ice-sync.example.com/ice/events"
        );
        assert_eq!(got["AuthSwitch"], "on");
        assert_eq!(got["AuthKey"], "TestKey001");
        assert_eq!(
            got["EventTypeList"],
            "ProduceMediaComplete,BatchProduceMediaComplete"
        );
        for bad in [
            &[("CallbackType", "SMS")][..],
            &[("CallbackType", "HTTP")],
            &[("CallbackType", "HTTP"), ("CallbackURL", "not a url")],
            &[
                ("CallbackType", "HTTP"),
                ("CallbackURL", "https://x.example.com/e"),
                ("AuthSwitch", "on"),
                ("AuthKey", "lowercase1"),
            ],
            &[("CallbackType", "MNS"), ("CallbackQueueName", "my-queue")],
        ] {
            let e = answer(&mut state, "SetEventCallback", &q(bad), "R").expect_err("bad");
            assert_eq!(e.code, "InvalidParameter", "{bad:?}");
        }
        assert_eq!(
            state.callback.as_ref().map(|c| c.auth_key.as_deref()),
            Some(Some("TestKey001")),
            "a refused setting changes nothing"
        );
    }

    #[test]
    fn routes_keep_path_and_query() {
        let addr: SocketAddr = "127.0.0.1:9188".parse().expect("addr");
        assert_eq!(
            target("https://ice-sync.example.com/ice/events?x=1", Some(addr)),
            "http://127.0.0.1:9188/ice/events?x=1"
        );
        assert_eq!(
            target("https://a.example.com/e", None),
            "https://a.example.com/e"
        );
        let body = produce_media_complete(7, "j1", "p1", "m1", false, Utc::now());
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["UserId"], 7);
        assert_eq!(v["MessageBody"]["Status"], "Fail");
        assert_eq!(v["MessageBody"]["ProjectId"], "p1");
    }
}
