//! `POST /refresh` on a running daemon's metrics listener: a good token queues a poll the
//! daemon serves; a wrong or missing token, a bad body and an oversized one are refused
//! with nothing queued; without a token the path does not exist.

use std::time::Duration;

use crate::on_both_backends;
use crate::ops::daemon::get;
use crate::support::Backend;

use super::daemon::Fleet;

on_both_backends!(
    post_refresh_with_the_token_queues_a_poll,
    post_refresh_without_a_configured_token_is_not_found,
);

const TOKEN: &str = "a-long-random-refresh-token-0123456789";

/// `POST http://addr/refresh` with `body` and an optional `Authorization` value.
async fn post(addr: &str, auth: Option<&str>, body: String) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(format!("http://{addr}/refresh"))
        .header("content-type", "application/json")
        .timeout(Duration::from_secs(5))
        .body(body);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = request.send().await.expect("POST /refresh");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// `ice_sync_poll_requests_total{source="http"}` as the daemon reports it.
async fn http_requests(addr: &str) -> f64 {
    let (_, text) = get(addr, "/metrics").await;
    text.lines()
        .find(|l| l.starts_with("ice_sync_poll_requests_total{source=\"http\"}"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no http series in:\n{text}"))
}

async fn post_refresh_with_the_token_queues_a_poll(backend: Backend) {
    let fleet = Fleet::new(backend, 3).await;
    let dir = tempfile::tempdir().expect("dir");
    let token_file = dir.path().join("refresh-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token file");
    let token_path = token_file.display().to_string();
    let mut daemon = fleet
        .daemon(&[("ICE_SYNC__METRICS__REFRESH_TOKEN_FILE", &token_path)])
        .await;
    let addr = daemon.metrics_addr().await;
    fleet.wait_settled().await;
    let id = fleet.ids[1].clone();
    let before = fleet.sim.calls(&id);
    let bearer = format!("Bearer {TOKEN}");

    let (status, body) = post(
        &addr,
        Some(&bearer),
        format!(r#"{{"projects":["{id}","not-tracked"]}}"#),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        answer,
        serde_json::json!({"requested": 1, "unknown": ["not-tracked"]})
    );
    fleet
        .wait_calls(&id, before + 1, Duration::from_secs(10))
        .await;
    fleet.wait_settled().await;
    assert_eq!(http_requests(&addr).await, 1.0);
    let (_, text) = get(&addr, "/metrics").await;
    let waits: f64 = text
        .lines()
        .find(|l| l.starts_with("ice_sync_poll_request_wait_seconds_count"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no request-wait histogram in:\n{text}"));
    assert!(waits >= 1.0, "the refresh cycle recorded its wait: {waits}");

    // Refused: nothing queued, nothing polled.
    let wrong = format!("Bearer {TOKEN}x");
    let refusals = [
        (Some(wrong.as_str()), r#"{"all":true}"#.to_string(), 401),
        (None, r#"{"all":true}"#.to_string(), 401),
        (Some("Basic c2VjcmV0"), r#"{"all":true}"#.to_string(), 401),
        (Some(bearer.as_str()), "{not json".to_string(), 400),
        (Some(bearer.as_str()), r#"{"all":false}"#.to_string(), 400),
        (
            Some(bearer.as_str()),
            r#"{"projects":["bad id"]}"#.to_string(),
            400,
        ),
        (
            Some(bearer.as_str()),
            format!(r#"{{"projects":["{}"]}}"#, "a".repeat(70_000)),
            413,
        ),
    ];
    for (auth, body, want) in refusals {
        let (status, answer) = post(&addr, auth, body).await;
        assert_eq!(status, want, "{auth:?}: {answer}");
        assert!(answer.contains("\"error\""), "a reason is given: {answer}");
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        crate::support::count(
            &fleet.store,
            "SELECT count(*) FROM tracked_projects WHERE requested_at IS NOT NULL"
        )
        .await,
        0
    );
    let calls: Vec<u64> = fleet.ids.iter().map(|i| fleet.sim.calls(i)).collect();
    assert_eq!(
        calls[1],
        before + 1,
        "no poll after the refusals: {calls:?}"
    );
    assert_eq!(http_requests(&addr).await, 1.0, "nothing requested");

    // {"all": true} goes through too (every body shape is unit-tested in refresh::http).
    let (status, body) = post(&addr, Some(&bearer), r#"{"all":true}"#.into()).await;
    assert_eq!(status, 202, "{body}");
    for (i, id) in fleet.ids.iter().enumerate() {
        fleet
            .wait_calls(id, calls[i] + 1, Duration::from_secs(10))
            .await;
    }
    let log = daemon.log();
    assert!(!log.contains(TOKEN), "the token reached the log:\n{log}");
    assert!(
        log.contains("refresh_unauthorized"),
        "refusals are summarised: {log}"
    );
    daemon.stop().await;
}

async fn post_refresh_without_a_configured_token_is_not_found(backend: Backend) {
    let fleet = Fleet::new(backend, 1).await;
    let mut daemon = fleet.daemon(&[]).await;
    let addr = daemon.metrics_addr().await;
    let (status, _) = post(
        &addr,
        Some(&format!("Bearer {TOKEN}")),
        r#"{"all":true}"#.into(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(http_requests(&addr).await, 0.0);
    daemon.stop().await;
}
