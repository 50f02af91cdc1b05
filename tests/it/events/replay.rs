//! One captured callback signature cannot carry an unbounded number of bodies (issue 20,
//! finding 2). ICE signs `url|timestamp|key`, not the body: before the bound, one
//! `(X-ICE-TIMESTAMP, X-ICE-SIGNATURE)` pair was accepted with any number of invented
//! bodies, each stored in `callback_events` (60 KB `EventTime`s grew the database) and,
//! with `callback.track_unknown`, each inventing a tracked project. Now a signature
//! carries at most 8 distinct bodies (the same body again is still a 200), stored free
//! text is cut to 64 characters, and `track_unknown` adds at most 60 projects an hour.

use ice_sync::callback::bounds::{
    MAX_BODIES_PER_SIGNATURE, MAX_STORED_FIELD_CHARS, TRACK_UNKNOWN_PER_HOUR,
};

use super::callbacks::{rig, Post, KEY};
use crate::on_both_backends;
use crate::support::Backend;

on_both_backends!(
    one_signature_carries_a_few_bodies,
    track_unknown_adds_at_most_its_budget
);

fn envelope(project_id: &str, job_id: &str, event_time: &str) -> String {
    serde_json::json!({
        "EventType": "ProduceMediaComplete",
        "EventTime": event_time,
        "MessageBody": {"Status": "Success", "JobId": job_id, "ProjectId": project_id}
    })
    .to_string()
}

async fn one_signature_carries_a_few_bodies(backend: Backend) {
    let rig = rig(backend, &[]).await;
    rig.app.sim.add_regular("p1");
    rig.app.track(&["p1"]).await;
    let captured = Post::signed(KEY, 0, "");
    let long_time = "9".repeat(30_000);
    let mut statuses = Vec::new();
    for i in 0..40 {
        let post = Post {
            body: envelope("p1", &format!("job-{i}"), &long_time).into_bytes(),
            ..Post::signed(KEY, 0, "")
        };
        let post = Post {
            timestamp: captured.timestamp.clone(),
            signature: captured.signature.clone(),
            ..post
        };
        let (status, body) = post.send(rig.addr).await;
        if status != 200 {
            assert_eq!(status, 429, "{body}");
            assert!(body.contains("already carried"), "{body}");
        }
        statuses.push(status);
    }
    let accepted = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(accepted, MAX_BODIES_PER_SIGNATURE, "{statuses:?}");
    assert!(statuses[..MAX_BODIES_PER_SIGNATURE]
        .iter()
        .all(|s| *s == 200));
    assert_eq!(rig.events().await, MAX_BODIES_PER_SIGNATURE as i64);
    let longest = rig
        .app
        .count("SELECT coalesce(max(length(event_time)), 0) FROM callback_events")
        .await;
    assert_eq!(longest, MAX_STORED_FIELD_CHARS as i64);

    // The same body with the same signature again: idempotent, never a refusal.
    let again = Post {
        body: envelope("p1", "job-0", &long_time).into_bytes(),
        timestamp: captured.timestamp.clone(),
        signature: captured.signature.clone(),
        path: captured.path,
    };
    let (status, body) = again.send(rig.addr).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("already received"), "{body}");
    assert_eq!(rig.events().await, MAX_BODIES_PER_SIGNATURE as i64);
}

async fn track_unknown_adds_at_most_its_budget(backend: Backend) {
    let rig = rig(backend, &[("ICE_SYNC__CALLBACK__TRACK_UNKNOWN", "true")]).await;
    let tried = TRACK_UNKNOWN_PER_HOUR as i64 + 20;
    let mut refused = 0;
    for i in 0..tried {
        // A fresh signature each time (seconds -40..+40 from now), so only the tracking
        // budget can refuse.
        let body = envelope(
            &format!("np{i}"),
            &format!("job-{i}"),
            "2024-06-10T06:13:20Z",
        );
        let (status, answer) = Post::signed(KEY, i - tried / 2, &body).send(rig.addr).await;
        match status {
            200 => assert!(answer.contains("now tracked"), "{answer}"),
            429 => {
                assert!(answer.contains("callback.track_unknown"), "{answer}");
                refused += 1;
            }
            other => panic!("{other}: {answer}"),
        }
    }
    assert_eq!(refused, 20);
    assert_eq!(
        rig.tracked().await.len() as i64,
        TRACK_UNKNOWN_PER_HOUR as i64
    );
    assert_eq!(rig.events().await, TRACK_UNKNOWN_PER_HOUR as i64);
}
