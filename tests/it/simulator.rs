//! The simulator against the real client: real HTTP on loopback, the real
//! `ice_sync::ice::IceClient` signing every request, never a mock.
//!
//! Also checks the gateway behaviour the client cannot provoke on its own (stale dates,
//! reused nonces, unsigned headers, a body that does not match its hash) with
//! hand-signed requests built from the same `ice_wire::signing` functions.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use chrono::Utc;
use ice_sim::{FaultConfig, MalformedKind, Simulator, SimulatorConfig};
use ice_sync::credentials::Credentials;
use ice_sync::ice::model::{GetEditingProjectResponse, ListEditingProjectsResponse, ListedProject};
use ice_sync::ice::{ClientOptions, ErrorClass, IceClient, IceError, Project};
use ice_wire::signing::{hashed_payload, sign, SignInput};
use secrecy::SecretString;
use serde_json::Value;

const GET_SAMPLES: [&str; 7] = [
    "get-editing-project.editing.json",
    "get-editing-project.live-broadcasting.json",
    "get-editing-project.minimal-optional-fields-missing.json",
    "get-editing-project.produce-failed.json",
    "get-editing-project.produced-float-duration.json",
    "get-editing-project.producing.json",
    "get-editing-project.template.json",
];

fn sample(name: &str) -> Value {
    let path = format!(
        "{}/tests/data/sample-responses/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn credentials(ak: &str, secret: &str, token: Option<&str>) -> Credentials {
    Credentials {
        access_key_id: ak.to_string(),
        access_key_secret: SecretString::from(secret.to_string()),
        security_token: token.map(|t| SecretString::from(t.to_string())),
        source: "test".to_string(),
    }
}

fn options(sim: &Simulator) -> ClientOptions {
    ClientOptions {
        endpoint: reqwest::Url::parse(&sim.endpoint()).expect("endpoint URL"),
        request_source: None,
        timeout: Duration::from_secs(5),
        max_qps: None,
        max_retries: 0,
        backoff_base: Duration::from_millis(2),
        backoff_cap: Duration::from_millis(20),
        max_response_bytes: ice_sync::ice::DEFAULT_MAX_RESPONSE_BYTES,
    }
}

/// A client with the simulator's default credentials and no retries.
fn client(sim: &Simulator) -> IceClient {
    client_with(options(sim), None)
}

fn client_with(options: ClientOptions, token: Option<&str>) -> IceClient {
    let defaults = SimulatorConfig::default();
    IceClient::new(
        options,
        credentials(&defaults.access_key_id, &defaults.access_key_secret, token),
    )
    .expect("client")
}

async fn start() -> Simulator {
    Simulator::start(SimulatorConfig::default())
        .await
        .expect("simulator starts")
}

fn api_code(e: &IceError) -> (&str, u16) {
    match e {
        IceError::Api {
            code, http_status, ..
        } => (code.as_str(), *http_status),
        // GetEditingProject's InvalidParameter is "no such project".
        IceError::NotFound { http_status, .. } => ("InvalidParameter", *http_status),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn is_request_id(id: &str) -> bool {
    let lengths: Vec<usize> = id.split('-').map(str::len).collect();
    lengths == [8, 4, 4, 4, 12]
        && id
            .chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('A'..='F').contains(&c))
}

// ---------------------------------------------------------------------------------
// Hand-signed requests, for what the real client never sends.

struct RawRequest {
    method: &'static str,
    action: String,
    version: String,
    query: Vec<(String, String)>,
    date: String,
    nonce: String,
    body: Vec<u8>,
    secret: String,
    /// Sent but left out of SignedHeaders.
    unsigned: Vec<&'static str>,
    /// Not sent at all.
    omitted: Vec<&'static str>,
    /// Overrides the (otherwise correct) x-acs-content-sha256.
    claimed_sha: Option<String>,
    authorization: Option<String>,
}

impl RawRequest {
    fn new(action: &str, query: &[(&str, &str)]) -> Self {
        Self {
            method: "POST",
            action: action.to_string(),
            version: "2020-11-09".to_string(),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            date: Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            nonce: format!("{:032x}", rand::random::<u128>()),
            body: Vec::new(),
            secret: SimulatorConfig::default().access_key_secret,
            unsigned: Vec::new(),
            omitted: Vec::new(),
            claimed_sha: None,
            authorization: None,
        }
    }
}

struct RawResponse {
    status: u16,
    request_id_header: Option<String>,
    content_type: Option<String>,
    retry_after: Option<String>,
    body: Vec<u8>,
}

impl RawResponse {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    fn code(&self) -> String {
        self.json()["Code"].as_str().unwrap_or_default().to_string()
    }
}

async fn raw(sim: &Simulator, r: RawRequest) -> RawResponse {
    let ak = SimulatorConfig::default().access_key_id;
    let host = sim.addr().to_string();
    let sha = r
        .claimed_sha
        .clone()
        .unwrap_or_else(|| hashed_payload(&r.body));
    let all: Vec<(String, String)> = [
        ("host", host.as_str()),
        ("x-acs-action", r.action.as_str()),
        ("x-acs-version", r.version.as_str()),
        ("x-acs-date", r.date.as_str()),
        ("x-acs-signature-nonce", r.nonce.as_str()),
        ("x-acs-content-sha256", sha.as_str()),
        ("accept", "application/json"),
    ]
    .iter()
    .filter(|(k, _)| !r.omitted.contains(k))
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let signed: Vec<(String, String)> = all
        .iter()
        .filter(|(k, _)| !r.unsigned.contains(&k.as_str()))
        .cloned()
        .collect();
    let signature = sign(&SignInput {
        method: r.method,
        path: "/",
        query: &r.query,
        headers: &signed,
        hashed_payload: &sha,
        access_key_id: &ak,
        access_key_secret: &r.secret,
    });
    let query: Vec<String> = r
        .query
        .iter()
        .map(|(k, v)| format!("{k}={}", ice_wire::signing::percent_encode(v)))
        .collect();
    let url = format!("{}/?{}", sim.endpoint(), query.join("&"));
    let method = reqwest::Method::from_bytes(r.method.as_bytes()).expect("method");
    let mut request = reqwest::Client::new().request(method, url).body(r.body);
    for (k, v) in &all {
        request = request.header(k, v);
    }
    let authorization = r.authorization.unwrap_or(signature.authorization);
    if !authorization.is_empty() {
        request = request.header("authorization", authorization);
    }
    let response = request.send().await.expect("raw request");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (request_id_header, content_type, retry_after) = (
        header("x-acs-request-id"),
        header("content-type"),
        header("x-acs-retry-after"),
    );
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("raw body").to_vec();
    RawResponse {
        status,
        request_id_header,
        content_type,
        retry_after,
        body,
    }
}

// ---------------------------------------------------------------------------------

#[tokio::test]
async fn every_sample_project_is_served_and_parsed_back_equal() {
    let sim = start().await;
    let client = client(&sim);
    for name in GET_SAMPLES {
        let original = sample(name);
        let project: Project =
            serde_json::from_value(original["Project"].clone()).expect("sample Project");
        let id = project.project_id.clone().expect("sample ProjectId");
        sim.insert(project.clone());

        let fetched = client.get_editing_project(&id).await.expect(name);
        assert_eq!(fetched.value, project, "{name}");
        assert_eq!(fetched.attempts, 1);
        assert!(
            fetched.request_id.as_deref().is_some_and(is_request_id),
            "{:?}",
            fetched.request_id
        );

        // The bytes on the wire carry the sample's Project exactly (Duration 30 stays an
        // integer, 30.04 a float), under the same top-level keys.
        let served = raw(
            &sim,
            RawRequest::new("GetEditingProject", &[("ProjectId", &id)]),
        )
        .await;
        assert_eq!(served.status, 200);
        let body = served.json();
        assert_eq!(body["Project"], original["Project"], "{name}");
        let keys: Vec<&String> = body.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["Project", "RequestId"], "{name}");
        assert_eq!(
            body["RequestId"].as_str(),
            served.request_id_header.as_deref()
        );
        assert!(served
            .content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/json")));
        // Field order is the API's: ProjectId leads, as in every sample.
        assert!(served.body.starts_with(b"{\"RequestId\":\""), "{name}");
        assert!(
            String::from_utf8_lossy(&served.body).contains("\"Project\":{\"ProjectId\""),
            "{name}"
        );
        let parsed: GetEditingProjectResponse =
            serde_json::from_slice(&served.body).expect("model parses");
        assert_eq!(parsed.project.as_ref(), Some(&project));
    }

    // The list sample's items, served back through ListEditingProjects.
    let page = sample("list-editing-projects.page.json");
    let items: Vec<ListedProject> =
        serde_json::from_value(page["ProjectList"].clone()).expect("items");
    let sim = start().await;
    for item in &items {
        sim.insert(Project {
            project_id: item.project_id.clone(),
            title: item.title.clone(),
            description: item.description.clone(),
            cover_url: item.cover_url.clone(),
            status: item.status.clone(),
            business_status: item.business_status.clone(),
            business_config: item.business_config.clone(),
            create_time: item.create_time.clone(),
            modified_time: item.modified_time.clone(),
            create_source: item.create_source.clone(),
            modified_source: item.modified_source.clone(),
            project_type: item.project_type.clone(),
            template_type: item.template_type.clone(),
            timeline: Some("{}".to_string()),
            duration: Some(3.0),
            ..Default::default()
        });
    }
    let listed = client_with(options(&sim), None)
        .list_editing_projects(&[("SortBy".into(), "CreationTime:Asc".into())], None, 2)
        .await
        .expect("list");
    assert_eq!(listed.value.max_results, Some(2));
    assert_eq!(listed.value.next_token, None);
    let mut expected = items.clone();
    for item in &mut expected {
        // The sample's empty ErrorCode/ErrorMessage are not something we invent.
        item.error_code = None;
        item.error_message = None;
    }
    assert_eq!(listed.value.project_list, expected);
    // Items never carry Timeline or Duration, even when the project has them.
    let raw_page = raw(
        &sim,
        RawRequest::new("ListEditingProjects", &[("MaxResults", "1")]),
    )
    .await
    .json();
    let keys: Vec<&String> = raw_page.as_object().expect("object").keys().collect();
    assert_eq!(
        keys,
        ["MaxResults", "NextToken", "ProjectList", "RequestId"]
    );
    let first = &raw_page["ProjectList"][0];
    assert!(first.get("Timeline").is_none() && first.get("Duration").is_none());
}

#[tokio::test]
async fn signed_requests_are_accepted_and_counted() {
    let sim = start().await;
    let project = sim.add_regular("4f4bf84d0d8b4b7e9c2b8a6f0e1d2c3b");
    let mut opts = options(&sim);
    opts.request_source = Some("OpenAPI".to_string());
    let client = client_with(opts, None);
    let fetched = client
        .get_editing_project("4f4bf84d0d8b4b7e9c2b8a6f0e1d2c3b")
        .await
        .expect("signed request accepted");
    assert_eq!(fetched.value, project);
    assert_eq!(fetched.value.status.as_deref(), Some("Draft"));
    assert!(fetched.value.timeline.is_some() && fetched.value.create_time.is_some());
    for _ in 0..2 {
        client
            .get_editing_project("4f4bf84d0d8b4b7e9c2b8a6f0e1d2c3b")
            .await
            .expect("again");
    }
    let _ = client
        .get_editing_project("00000000000000000000000000000000")
        .await;
    assert_eq!(sim.calls("4f4bf84d0d8b4b7e9c2b8a6f0e1d2c3b"), 3);
    assert_eq!(sim.calls("00000000000000000000000000000000"), 1);
    assert_eq!(sim.calls_by_action("GetEditingProject"), 4);
    assert_eq!(sim.total_calls(), 4);
    assert_eq!(sim.faults_injected(), 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn wrong_secret_and_unknown_key_are_auth_errors() {
    let sim = start().await;
    sim.add_regular("p1");
    let defaults = SimulatorConfig::default();

    let wrong_secret = IceClient::new(
        options(&sim),
        credentials(&defaults.access_key_id, "not-the-secret", None),
    )
    .expect("client");
    let e = wrong_secret
        .get_editing_project("p1")
        .await
        .expect_err("wrong secret");
    assert_eq!(api_code(&e), ("SignatureDoesNotMatch", 400));
    assert_eq!(e.class(), ErrorClass::Auth);
    let IceError::Api { message, .. } = &e else {
        unreachable!()
    };
    assert!(
        message.starts_with(
            "Specified signature is not matched with our calculation. server string to sign is:ACS3-HMAC-SHA256\n"
        ),
        "{message}"
    );

    let unknown_key = IceClient::new(
        options(&sim),
        credentials("LTAI5tSomebodyElse", &defaults.access_key_secret, None),
    )
    .expect("client");
    let e = unknown_key
        .get_editing_project("p1")
        .await
        .expect_err("unknown key");
    assert_eq!(api_code(&e), ("InvalidAccessKeyId.NotFound", 404));
    assert_eq!(e.class(), ErrorClass::Auth);

    // Rotating the simulator's key makes the old one unknown and the new one work.
    sim.set_credentials("LTAI5tRotated", "rotated-secret", None);
    let e = client(&sim)
        .get_editing_project("p1")
        .await
        .expect_err("rotated");
    assert_eq!(api_code(&e).0, "InvalidAccessKeyId.NotFound");
    let rotated = IceClient::new(
        options(&sim),
        credentials("LTAI5tRotated", "rotated-secret", None),
    )
    .expect("client");
    rotated
        .get_editing_project("p1")
        .await
        .expect("rotated key works");
    // Failed requests are still counted.
    assert_eq!(sim.calls("p1"), 4);
}

#[tokio::test]
async fn sts_token_is_required_and_accepted() {
    let config = SimulatorConfig {
        security_token: Some("CAIS-sts-token-123".to_string()),
        ..Default::default()
    };
    let sim = Simulator::start(config).await.expect("start");
    sim.add_live("l1");

    let e = client(&sim)
        .get_editing_project("l1")
        .await
        .expect_err("no token");
    assert_eq!(api_code(&e).0, "InvalidSecurityToken.Malformed");
    assert_eq!(e.class(), ErrorClass::Auth);

    let wrong = client_with(options(&sim), Some("CAIS-other"));
    let e = wrong
        .get_editing_project("l1")
        .await
        .expect_err("wrong token");
    assert_eq!(api_code(&e).0, "InvalidSecurityToken.MismatchWithAccessKey");
    assert_eq!(e.class(), ErrorClass::Auth);

    let good = client_with(options(&sim), Some("CAIS-sts-token-123"));
    let fetched = good
        .get_editing_project("l1")
        .await
        .expect("token accepted");
    assert_eq!(fetched.value.business_status.as_deref(), Some("Reserving"));

    // A token sent to a long-term AccessKey is refused too.
    sim.set_credentials(
        &SimulatorConfig::default().access_key_id,
        &SimulatorConfig::default().access_key_secret,
        None,
    );
    let e = good
        .get_editing_project("l1")
        .await
        .expect_err("stray token");
    assert_eq!(api_code(&e).0, "InvalidSecurityToken.MismatchWithAccessKey");
}

#[tokio::test]
async fn unknown_and_removed_projects_are_not_found() {
    let sim = start().await;
    let client = client(&sim);
    let ids = sim.populate(3, 0);
    let e = client
        .get_editing_project("ffffffffffffffffffffffffffffffff")
        .await
        .expect_err("unknown");
    assert_eq!(api_code(&e), ("InvalidParameter", 400));
    assert_eq!(e.class(), ErrorClass::NotFound);

    let removed = sim.remove(&ids[1]).expect("was there");
    let e = client
        .get_editing_project(&ids[1])
        .await
        .expect_err("removed");
    assert_eq!(e.class(), ErrorClass::NotFound);
    let IceError::NotFound { message, .. } = &e else {
        panic!("expected NotFound, got {e:?}")
    };
    assert_eq!(message, "The specified parameter ProjectId is not valid.");
    assert!(sim.project(&ids[1]).is_none());
    assert_eq!(sim.project_ids().len(), 2);

    // Same body shape as error.unknown-project.json.
    let served = raw(
        &sim,
        RawRequest::new("GetEditingProject", &[("ProjectId", &ids[1])]),
    )
    .await;
    let expected = sample("error.unknown-project.json");
    assert_eq!(
        served.status as u64,
        expected["http_status"].as_u64().unwrap_or(0)
    );
    let body = served.json();
    let keys = |v: &Value| -> Vec<String> {
        v.as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(keys(&body), keys(&expected["body"]));
    assert_eq!(body["Code"], expected["body"]["Code"]);
    assert_eq!(body["Message"], expected["body"]["Message"]);
    let rid = body["RequestId"].as_str().unwrap_or_default();
    assert!(is_request_id(rid), "{rid}");
    assert_eq!(served.request_id_header.as_deref(), Some(rid));
    assert_eq!(
        body["Recommend"].as_str().unwrap_or_default(),
        format!(
            "https://api.aliyun.com/troubleshoot?q=InvalidParameter&product=ICE&requestId={rid}"
        )
    );
    // Raw field order matches the sample: RequestId, HostId, Code, Message, Recommend.
    let text = String::from_utf8_lossy(&served.body).to_string();
    let positions: Vec<usize> = ["RequestId", "HostId", "Code", "Message", "Recommend"]
        .iter()
        .filter_map(|k| text.find(&format!("\"{k}\"")))
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]) && positions.len() == 5,
        "{text}"
    );

    sim.restore(removed.clone());
    let back = client.get_editing_project(&ids[1]).await.expect("restored");
    assert_eq!(back.value, removed);
}

#[tokio::test]
async fn lifecycles_advance_and_are_visible_to_the_client() {
    let sim = start().await;
    let client = client(&sim);
    sim.add_regular("r1");
    let mut seen = vec![];
    let mut last_modified = String::new();
    loop {
        let p = client.get_editing_project("r1").await.expect("get").value;
        let modified = p.modified_time.clone().unwrap_or_default();
        assert!(modified >= last_modified, "ModifiedTime never goes back");
        last_modified = modified;
        seen.push(p.status.clone().unwrap_or_default());
        if !sim.advance("r1") {
            break;
        }
    }
    assert_eq!(seen[..3], ["Draft", "Editing", "Producing"]);
    assert!(
        seen[3] == "Produced" || seen[3] == "ProduceFailed",
        "{seen:?}"
    );
    assert_eq!(seen.len(), 4);
    assert!(!sim.advance("r1"), "terminal stays terminal");

    sim.add_live("l1");
    let mut business = vec![];
    loop {
        let p = client.get_editing_project("l1").await.expect("get").value;
        assert_eq!(p.project_type.as_deref(), Some("LiveEditingProject"));
        assert_eq!(p.status.as_deref(), Some("Editing"));
        let config: Value = serde_json::from_str(p.business_config.as_deref().unwrap_or_default())
            .expect("BusinessConfig is JSON text");
        assert!(config["ReservationTime"].is_string());
        business.push(p.business_status.clone().unwrap_or_default());
        if !sim.advance("l1") {
            break;
        }
    }
    assert!(
        business == ["Reserving", "BroadCasting", "LiveFinished"]
            || business == ["Reserving", "ReservationCanceled"],
        "{business:?}"
    );
    assert!(!sim.advance("no-such-project"));

    // Unknown values are served verbatim and are terminal.
    sim.set_status("r1", Some("Archived"), None);
    let p = client.get_editing_project("r1").await.expect("get").value;
    assert_eq!(p.status.as_deref(), Some("Archived"));
    assert!(!sim.advance("r1"));
    sim.set_status("l1", None, Some("LoadingFailed"));
    let p = client.get_editing_project("l1").await.expect("get").value;
    assert_eq!(p.business_status.as_deref(), Some("LoadingFailed"));
    assert_eq!(p.status.as_deref(), Some("Editing"));

    // advance_random: every non-terminal project moves at fraction 1, none at 0.
    let ids = sim.populate(30, 10);
    assert_eq!(sim.advance_random(0.0), 0);
    assert_eq!(sim.advance_random(1.0), 40);
    let editing = ids
        .iter()
        .filter(|id| sim.project(id).and_then(|p| p.status) == Some("Editing".to_string()))
        .count();
    assert!(editing >= 30, "{editing}");
    let partial = sim.advance_random(0.5);
    assert!((5..=35).contains(&partial), "{partial}");
}

#[tokio::test]
async fn populate_is_deterministic_per_seed() {
    let a = start().await;
    let b = start().await;
    let c = Simulator::start(SimulatorConfig {
        seed: 7,
        ..Default::default()
    })
    .await
    .expect("start");
    let ids_a = a.populate(5, 2);
    assert_eq!(ids_a, b.populate(5, 2));
    assert_ne!(ids_a, c.populate(5, 2));
    for id in &ids_a {
        assert_eq!(id.len(), 32);
        assert!(id
            .chars()
            .all(|ch| ch.is_ascii_hexdigit() && !ch.is_ascii_uppercase()));
        let (pa, pb) = (a.project(id).expect("a"), b.project(id).expect("b"));
        assert_eq!((pa.title, pa.timeline), (pb.title, pb.timeline));
    }
    let live: Vec<_> = ids_a
        .iter()
        .filter_map(|id| a.project(id))
        .filter(|p| p.project_type.as_deref() == Some("LiveEditingProject"))
        .collect();
    assert_eq!(live.len(), 2);
    assert_eq!(a.project_ids().len(), 7);
}

#[tokio::test]
async fn list_pages_through_250_projects_exactly_once() {
    let sim = start().await;
    let mut ids = sim.populate(200, 50);
    // Projects created in the same second are ordered by ID, so paging is still stable.
    for id in ids.iter().take(20) {
        if let Some(mut p) = sim.project(id) {
            p.create_time = Some("2024-05-20T08:00:00Z".to_string());
            sim.insert(p);
        }
    }
    let client = client(&sim);
    let (mut token, mut seen, mut pages) = (None::<String>, Vec::<String>::new(), 0);
    let mut last_create = None::<String>;
    loop {
        let page = client
            .list_editing_projects(&[], token.as_deref(), 100)
            .await
            .expect("page");
        pages += 1;
        for item in &page.value.project_list {
            seen.push(item.project_id.clone().expect("id"));
            let created = item.create_time.clone();
            if let (Some(prev), Some(now)) = (&last_create, &created) {
                assert!(now <= prev, "CreationTime:Desc is the default order");
            }
            last_create = created;
        }
        match page.value.next_token.filter(|t| !t.is_empty()) {
            Some(t) => token = Some(t),
            None => break,
        }
        assert!(pages < 10, "paging must end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 250);
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 250);
    ids.sort();
    seen.sort();
    assert_eq!(seen, ids);
    assert_eq!(sim.calls_by_action("ListEditingProjects"), 3);
    // Tokens are base64 and carry '+', '/' and '=' that the client must percent-encode
    // on the way back; one-item pages give enough tokens to be sure some do.
    let (mut token, mut tiny_pages, mut special) = (None::<String>, HashSet::new(), 0);
    for _ in 0..30 {
        let page = client
            .list_editing_projects(&[], token.as_deref(), 1)
            .await
            .expect("tiny page");
        assert_eq!(page.value.project_list.len(), 1);
        tiny_pages.insert(page.value.project_list[0].project_id.clone());
        token = page.value.next_token;
        let t = token.as_deref().unwrap_or_default();
        if t.contains(['+', '/']) && t.ends_with('=') {
            special += 1;
        }
    }
    assert_eq!(tiny_pages.len(), 30);
    assert!(special > 0);

    // Filters.
    let live = client
        .list_editing_projects(
            &[("ProjectType".into(), "LiveEditingProject".into())],
            None,
            100,
        )
        .await
        .expect("live");
    assert_eq!(live.value.project_list.len(), 50);
    sim.set_status(&ids[0], Some("Produced"), None);
    let produced = client
        .list_editing_projects(&[("Status".into(), "Produced".into())], None, 10)
        .await
        .expect("status");
    assert_eq!(produced.value.project_list.len(), 1);
    let window = client
        .list_editing_projects(
            &[
                ("StartTime".into(), "2024-05-20T08:00:00Z".into()),
                ("EndTime".into(), "2024-05-20T08:00:00Z".into()),
                ("SortBy".into(), "CreationTime:Asc".into()),
            ],
            None,
            100,
        )
        .await
        .expect("window");
    assert_eq!(window.value.project_list.len(), 20);
    let default_page = raw(&sim, RawRequest::new("ListEditingProjects", &[])).await;
    let body: ListEditingProjectsResponse =
        serde_json::from_slice(&default_page.body).expect("list body");
    assert_eq!(body.max_results, Some(10));
    assert_eq!(body.project_list.len(), 10);

    let e = client
        .list_editing_projects(&[], None, 101)
        .await
        .expect_err("MaxResults over 100");
    assert_eq!(api_code(&e), ("InvalidParameter", 400));
    let e = client
        .list_editing_projects(&[], Some("bm90IGEgdG9rZW4="), 10)
        .await
        .expect_err("forged token");
    assert_eq!(api_code(&e).0, "InvalidParameter");
}

#[tokio::test]
async fn gateway_checks_the_client_cannot_provoke() {
    let sim = start().await;
    sim.add_regular("p1");
    let get = |q: &[(&str, &str)]| RawRequest::new("GetEditingProject", q);

    let ok = raw(&sim, get(&[("ProjectId", "p1")])).await;
    assert_eq!(ok.status, 200);

    let mut via_get = get(&[("ProjectId", "p1")]);
    via_get.method = "GET";
    assert_eq!(
        raw(&sim, via_get).await.status,
        200,
        "the RPC gateway accepts GET"
    );

    // Query values with reserved characters survive decoding and re-canonicalising.
    let odd = raw(&sim, get(&[("ProjectId", "a b+c/d=e*f~g")])).await;
    assert_eq!(odd.code(), "InvalidParameter");

    let nonce = "0f1e2d3c4b5a69788796a5b4c3d2e1f0".to_string();
    let mut first = get(&[("ProjectId", "p1")]);
    first.nonce = nonce.clone();
    assert_eq!(raw(&sim, first).await.status, 200);
    let mut again = get(&[("ProjectId", "p1")]);
    again.nonce = nonce;
    let reused = raw(&sim, again).await;
    assert_eq!(
        (reused.status, reused.code()),
        (400, "SignatureNonceUsed".to_string())
    );

    let mut stale = get(&[("ProjectId", "p1")]);
    stale.date = (Utc::now() - chrono::Duration::minutes(16))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    assert_eq!(raw(&sim, stale).await.code(), "InvalidTimeStamp.Expired");
    let mut garbled = get(&[("ProjectId", "p1")]);
    garbled.date = "20 May 2024".to_string();
    assert_eq!(raw(&sim, garbled).await.code(), "InvalidTimeStamp.Format");

    let mut no_auth = get(&[("ProjectId", "p1")]);
    no_auth.authorization = Some(String::new());
    assert_eq!(raw(&sim, no_auth).await.code(), "IncompleteSignature");
    let mut garbage_auth = get(&[("ProjectId", "p1")]);
    garbage_auth.authorization = Some("ACS3-HMAC-SHA256 nonsense".to_string());
    assert_eq!(raw(&sim, garbage_auth).await.code(), "IncompleteSignature");
    for header in [
        "host",
        "x-acs-action",
        "x-acs-version",
        "x-acs-date",
        "x-acs-signature-nonce",
        "x-acs-content-sha256",
    ] {
        let mut unsigned = get(&[("ProjectId", "p1")]);
        unsigned.unsigned.push(header);
        assert_eq!(
            raw(&sim, unsigned).await.code(),
            "IncompleteSignature",
            "{header}"
        );
    }
    let mut missing = get(&[("ProjectId", "p1")]);
    missing.omitted.push("x-acs-signature-nonce");
    assert_eq!(raw(&sim, missing).await.code(), "IncompleteSignature");

    // The body is hashed even though no action reads it.
    let mut with_body = get(&[("ProjectId", "p1")]);
    with_body.body = b"ProjectId=p1".to_vec();
    assert_eq!(raw(&sim, with_body).await.status, 200);
    let mut lying = get(&[("ProjectId", "p1")]);
    lying.body = b"ProjectId=p1".to_vec();
    lying.claimed_sha = Some(hashed_payload(b""));
    assert_eq!(raw(&sim, lying).await.code(), "SignatureDoesNotMatch");
    let mut wrong_secret = get(&[("ProjectId", "p1")]);
    wrong_secret.secret = "nope".to_string();
    let mismatch = raw(&sim, wrong_secret).await;
    assert_eq!(mismatch.status, 400);
    let shape = sample("error.signature-mismatch.json");
    let message = mismatch.json()["Message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let prefix = shape["body"]["Message"]
        .as_str()
        .and_then(|m| m.split_once('<'))
        .map(|(p, _)| p.to_string())
        .unwrap_or_default();
    assert!(message.starts_with(&prefix), "{message}");
    assert_eq!(message.len(), prefix.len() + 64, "{message}");

    let mut version = get(&[("ProjectId", "p1")]);
    version.version = "2017-03-21".to_string();
    assert_eq!(raw(&sim, version).await.code(), "InvalidVersion");
    let unknown = raw(&sim, RawRequest::new("DeleteEditingProjects", &[])).await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (404, "InvalidAction.NotFound".to_string())
    );
    let missing_id = raw(&sim, get(&[])).await;
    assert_eq!(
        (missing_id.status, missing_id.code()),
        (400, "MissingProjectId".to_string())
    );

    // Each of those requests was received and counted, whatever became of it.
    assert_eq!(sim.total_calls(), 22);
    assert_eq!(sim.calls_by_action("DeleteEditingProjects"), 1);
    assert_eq!(sim.calls("p1"), 19);
}

/// One client call with `max_retries = 0` against a simulator that applies `faults` to
/// every request.
async fn call_with_fault(faults: FaultConfig, kinds: &[MalformedKind]) -> IceError {
    let sim = start().await;
    sim.add_regular("p1");
    sim.set_faults(faults);
    sim.set_malformed_kinds(kinds);
    let mut opts = options(&sim);
    opts.timeout = Duration::from_millis(300);
    let e = client_with(opts, None)
        .get_editing_project("p1")
        .await
        .expect_err("fault");
    assert_eq!(sim.faults_injected(), 1);
    assert_eq!(sim.calls("p1"), 1);
    e
}

#[tokio::test]
async fn throttling_and_server_errors_are_retryable() {
    let e = call_with_fault(
        FaultConfig {
            throttle: 1.0,
            ..Default::default()
        },
        &[],
    )
    .await;
    assert_eq!(api_code(&e), ("Throttling.User", 400));
    assert_eq!(e.class(), ErrorClass::Retryable);

    let e = call_with_fault(
        FaultConfig {
            server_error: 1.0,
            ..Default::default()
        },
        &[],
    )
    .await;
    assert!(
        matches!(
            api_code(&e),
            ("InternalError", 500) | ("ServiceUnavailable", 503)
        ),
        "{e:?}"
    );
    assert_eq!(e.class(), ErrorClass::Retryable);

    // Both bodies occur, and about half the throttles carry a retry hint.
    let sim = start().await;
    sim.add_regular("p1");
    sim.set_faults(FaultConfig {
        throttle: 0.5,
        server_error: 0.5,
        ..Default::default()
    });
    let (mut codes, mut hints, mut throttles) = (HashSet::new(), 0, 0);
    for _ in 0..40 {
        let r = raw(
            &sim,
            RawRequest::new("GetEditingProject", &[("ProjectId", "p1")]),
        )
        .await;
        codes.insert((r.status, r.code()));
        if r.code() == "Throttling.User" {
            throttles += 1;
            if let Some(ms) = r.retry_after {
                assert!(ms.parse::<u64>().is_ok_and(|ms| ms > 0), "{ms}");
                hints += 1;
            }
        }
    }
    assert_eq!(sim.faults_injected(), 40);
    assert!(
        codes.contains(&(400, "Throttling.User".to_string())),
        "{codes:?}"
    );
    assert!(
        codes.contains(&(500, "InternalError".to_string())),
        "{codes:?}"
    );
    assert!(
        codes.contains(&(503, "ServiceUnavailable".to_string())),
        "{codes:?}"
    );
    assert!(hints > 0 && hints < throttles, "{hints} of {throttles}");

    // The client hands the hint on.
    let client = client(&sim);
    sim.set_faults(FaultConfig {
        throttle: 1.0,
        ..Default::default()
    });
    let mut with_hint = 0;
    for _ in 0..12 {
        let e = client
            .get_editing_project("p1")
            .await
            .expect_err("throttled");
        if let Some(d) = e.retry_after() {
            assert!(d >= Duration::from_millis(1) && d <= Duration::from_millis(1000));
            with_hint += 1;
        }
    }
    assert!(with_hint > 0);
}

#[tokio::test]
async fn slow_answers_time_out() {
    let started = Instant::now();
    let e = call_with_fault(
        FaultConfig {
            slow: 1.0,
            slow_delay: Duration::from_secs(2),
            ..Default::default()
        },
        &[],
    )
    .await;
    assert!(matches!(e, IceError::Timeout(_)), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Retryable);
    assert!(started.elapsed() < Duration::from_millis(1500));

    // Below the timeout, slow is just slow.
    let sim = start().await;
    sim.add_regular("p1");
    sim.set_faults(FaultConfig {
        slow: 1.0,
        slow_delay: Duration::from_millis(50),
        ..Default::default()
    });
    sim.set_latency(Duration::from_millis(20));
    let t = Instant::now();
    client(&sim)
        .get_editing_project("p1")
        .await
        .expect("slow but fine");
    assert!(t.elapsed() >= Duration::from_millis(70));
}

#[tokio::test]
async fn dropped_connections_are_transport_errors() {
    let e = call_with_fault(
        FaultConfig {
            drop_connection: 1.0,
            ..Default::default()
        },
        &[],
    )
    .await;
    // The headers arrived, so the message must not blame the endpoint.
    assert!(matches!(e, IceError::BrokenResponse { .. }), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Retryable);

    // Also on a list call.
    let sim = start().await;
    sim.populate(5, 0);
    sim.set_faults(FaultConfig {
        drop_connection: 1.0,
        ..Default::default()
    });
    let e = client(&sim)
        .list_editing_projects(&[], None, 10)
        .await
        .expect_err("dropped");
    assert!(matches!(e, IceError::BrokenResponse { .. }), "{e:?}");
}

#[tokio::test]
async fn every_malformed_kind_maps_to_a_typed_error() {
    for kind in MalformedKind::ALL {
        let e = call_with_fault(
            FaultConfig {
                malformed: 1.0,
                ..Default::default()
            },
            &[kind],
        )
        .await;
        match kind {
            MalformedKind::InvalidJson
            | MalformedKind::Html200
            | MalformedKind::Empty
            | MalformedKind::WrongTypes => {
                assert!(
                    matches!(
                        e,
                        IceError::Malformed {
                            http_status: 200,
                            ..
                        }
                    ),
                    "{kind:?}: {e:?}"
                );
                assert_eq!(e.class(), ErrorClass::Permanent, "{kind:?}");
            }
            MalformedKind::Html502 => {
                assert!(
                    matches!(
                        e,
                        IceError::Malformed {
                            http_status: 502,
                            ..
                        }
                    ),
                    "{kind:?}: {e:?}"
                );
                assert_eq!(e.class(), ErrorClass::Retryable);
            }
            MalformedKind::MissingProject => {
                assert!(matches!(e, IceError::MissingProject { .. }), "{e:?}");
            }
            MalformedKind::WrongProject => {
                assert!(
                    matches!(&e, IceError::WrongProject { asked, got, .. } if asked == "p1" && got != "p1"),
                    "{e:?}"
                );
            }
        }
        if !matches!(kind, MalformedKind::Html200 | MalformedKind::Html502) {
            // Every body but the HTML pages comes from behind the gateway: it has an ID.
            assert!(e.request_id().is_some_and(is_request_id), "{kind:?}: {e:?}");
        }
    }

    // With all kinds enabled, list calls fail typed too; never a panic, never success.
    let sim = start().await;
    sim.populate(3, 0);
    sim.set_faults(FaultConfig {
        malformed: 1.0,
        ..Default::default()
    });
    let client = client(&sim);
    let mut outcomes = HashSet::new();
    for _ in 0..30 {
        match client.list_editing_projects(&[], None, 10).await {
            Ok(page) => {
                // Only a body without ProjectList parses: as an empty, final page.
                assert!(page.value.project_list.is_empty() && page.value.next_token.is_none());
                outcomes.insert("empty page".to_string());
            }
            Err(e) => {
                assert!(matches!(e, IceError::Malformed { .. }), "{e:?}");
                outcomes.insert(e.code().to_string());
            }
        }
    }
    assert!(outcomes.contains("MalformedResponse"), "{outcomes:?}");
}

#[tokio::test]
async fn retries_ride_out_heavy_throttling() {
    let sim = start().await;
    let ids = sim.populate(20, 0);
    sim.set_faults(FaultConfig {
        throttle: 0.5,
        ..Default::default()
    });
    let mut opts = options(&sim);
    opts.max_retries = 5;
    let client = client_with(opts, None);
    // Sequential calls draw faults in a fixed order, so this run is the same every time
    // for the default seed (each call fails six times in a row with p = 1/64).
    let mut attempts = 0;
    for id in &ids {
        let fetched = client
            .get_editing_project(id)
            .await
            .expect("eventually succeeds");
        assert_eq!(fetched.value.project_id.as_deref(), Some(id.as_str()));
        attempts += fetched.attempts;
        assert_eq!(sim.calls(id), u64::from(fetched.attempts));
    }
    assert!(attempts > 20, "some calls were retried");
    assert_eq!(sim.total_calls(), u64::from(attempts));
    assert_eq!(sim.faults_injected(), u64::from(attempts) - 20);
}

#[tokio::test]
async fn request_windows_are_measured() {
    let sim = start().await;
    sim.add_regular("p1");
    let client = client(&sim);
    let burst = || async {
        let calls: Vec<_> = (0..5).map(|_| client.get_editing_project("p1")).collect();
        for r in futures::future::join_all(calls).await {
            r.expect("ok");
        }
    };
    assert_eq!(sim.max_requests_in_any_window(Duration::from_secs(1)), 0);
    burst().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    burst().await;
    assert_eq!(
        sim.max_requests_in_any_window(Duration::from_millis(150)),
        5
    );
    assert_eq!(sim.max_requests_in_any_window(Duration::from_secs(10)), 10);
    assert_eq!(sim.max_requests_in_any_window(Duration::ZERO), 0);

    // The client's limiter, seen from the server: 10 qps, burst of one, so requests are
    // spaced 100 ms apart and any one-second window holds at most 10 (11 with jitter).
    let sim = start().await;
    sim.add_regular("p1");
    let mut opts = options(&sim);
    opts.max_qps = NonZeroU32::new(10);
    let limited = client_with(opts, None);
    let t = Instant::now();
    let calls: Vec<_> = (0..15).map(|_| limited.get_editing_project("p1")).collect();
    for r in futures::future::join_all(calls).await {
        r.expect("ok");
    }
    assert!(
        t.elapsed() >= Duration::from_millis(1300),
        "{:?}",
        t.elapsed()
    );
    let in_any_second = sim.max_requests_in_any_window(Duration::from_secs(1));
    assert!((10..=11).contains(&in_any_second), "{in_any_second}");
    assert!(sim.max_requests_in_any_window(Duration::from_millis(50)) <= 2);
}

#[tokio::test]
async fn shutdown_stops_serving_and_start_on_binds_the_given_address() {
    let sim = start().await;
    let addr = sim.addr();
    assert_eq!(sim.endpoint(), format!("http://{addr}"));
    sim.add_regular("p1");
    let client = client(&sim);
    client.get_editing_project("p1").await.expect("served");
    sim.shutdown().await;
    let e = client.get_editing_project("p1").await.expect_err("stopped");
    assert!(matches!(e, IceError::Transport { .. }), "{e:?}");

    let again = Simulator::start_on(addr, SimulatorConfig::default())
        .await
        .expect("rebinds the same address");
    assert_eq!(again.addr(), addr);
    again.add_regular("p1");
    client
        .get_editing_project("p1")
        .await
        .expect("served again");
}
