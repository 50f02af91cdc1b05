//! The change feed in one process: PostgreSQL `NOTIFY ice_sync_transition` for committed
//! rows only, and the webhook (retried, signed, ordered per project, a failing project
//! holding up no other, replicas never sending one row at once).

use std::time::Duration;

use ice_sync::contract::{Applied, NextPoll, Plan, Transition, WriteJob};
use ice_sync::domain::Timestamp;
use ice_sync::feed::{Deliverer, Webhook};
use ice_sync::ice::Project;
use ice_sync::storage::Store;
use ice_sync::sync::diff::{self, Observation};
use sqlx::postgres::PgListener;

use super::receiver::{expected_transitions, verify, Receiver};
use crate::on_both_backends;
use crate::support::{project_id, s, spawn_app, spawn_app_with, Backend, TestApp};

on_both_backends!(
    webhook_gets_every_transition_in_order_through_failures,
    a_failing_project_holds_up_no_other,
    a_commit_wakes_the_deliverer,
);

const SECRET: &str = "feed-test-secret";
const ACK_TIMEOUT: Duration = Duration::from_secs(60);

fn webhook_env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ICE_SYNC__WEBHOOK__URL", url.to_string()),
        ("ICE_SYNC__WEBHOOK__SECRET", SECRET.to_string()),
        ("ICE_SYNC__WEBHOOK__TIMEOUT", "5s".to_string()),
        ("ICE_SYNC__WEBHOOK__MAX_BACKOFF", "200ms".to_string()),
    ]
}

async fn spawn_with_webhook(backend: Backend, receiver: &Receiver) -> TestApp {
    let env = webhook_env(&receiver.url);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    spawn_app_with(backend, &pairs).await
}

/// Four transitions each: first seen, then three steps of the simulator's lifecycle.
async fn walk(app: &TestApp, ids: &[&str]) {
    for id in ids {
        app.sim.add_regular(id);
    }
    app.track(ids).await;
    app.cycle().await;
    for _ in 0..3 {
        for id in ids {
            assert!(app.sim.advance(id), "{id} advances");
        }
        let report = app.cycle().await;
        assert_eq!(report.transitions, ids.len() as u64, "{report:?}");
    }
}

async fn outbox(app: &TestApp, where_: &str) -> i64 {
    app.count(&format!(
        "SELECT count(*) FROM webhook_outbox WHERE {where_}"
    ))
    .await
}

/// Waits until the outbox rows matching `where_` are gone (deleted after the 2xx).
async fn wait_outbox_empty(app: &TestApp, where_: &str) {
    let start = std::time::Instant::now();
    while outbox(app, where_).await > 0 {
        assert!(start.elapsed() < ACK_TIMEOUT, "outbox still holds {where_}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn webhook_gets_every_transition_in_order_through_failures(backend: Backend) {
    // Every transition fails twice (HTTP 500) before it is acknowledged.
    let receiver = Receiver::start(|_, attempt| if attempt <= 2 { 500 } else { 200 }).await;
    let app = spawn_with_webhook(backend, &receiver).await;
    let feed = ice_sync::app::start_feed(&app.settings, &app.engine, app.shutdown.clone())
        .await
        .expect("deliverer starts")
        .expect("webhook.url is set");
    let ids = ["wh1", "wh2", "wh3"];
    walk(&app, &ids).await;

    let expected = expected_transitions(app.store(), &ids).await;
    assert_eq!(expected.len(), 12);
    receiver.wait_for_acknowledged(&expected, ACK_TIMEOUT).await;
    wait_outbox_empty(&app, "TRUE").await;
    app.shutdown.cancel();
    feed.stopped().await;

    let hits = receiver.hits();
    verify(&hits, SECRET, &expected, false);
    // Exactly two failures and one success per transition: no loss, no extra repeat.
    for t in &expected {
        let sent = hits.iter().filter(|h| h.key == Some(t.key())).count();
        assert_eq!(sent, 3, "{}", t.key());
    }
}

async fn a_failing_project_holds_up_no_other(backend: Backend) {
    let receiver = Receiver::start(|t, _| if t.project_id == "stuck" { 503 } else { 200 }).await;
    let app = spawn_with_webhook(backend, &receiver).await;
    let feed = ice_sync::app::start_feed(&app.settings, &app.engine, app.shutdown.clone())
        .await
        .expect("deliverer starts")
        .expect("webhook.url is set");
    walk(&app, &["stuck", "flowing"]).await;

    let flowing = expected_transitions(app.store(), &["flowing"]).await;
    receiver.wait_for_acknowledged(&flowing, ACK_TIMEOUT).await;
    wait_outbox_empty(&app, "project_id = 'flowing'").await;
    // Let `stuck` fail a few more times while nothing else is pending.
    let start = std::time::Instant::now();
    while receiver
        .hits()
        .iter()
        .filter(|h| h.key.as_deref() == Some("stuck:1"))
        .count()
        < 3
    {
        assert!(start.elapsed() < ACK_TIMEOUT, "stuck:1 is retried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.shutdown.cancel();
    feed.stopped().await;

    let hits = receiver.hits();
    let stuck: Vec<&str> = hits
        .iter()
        .filter(|h| h.transition().project_id == "stuck")
        .filter_map(|h| h.key.as_deref())
        .collect();
    assert!(
        stuck.iter().all(|k| *k == "stuck:1"),
        "only stuck's first transition is tried until it is acknowledged: {stuck:?}"
    );
    // Its four transitions wait, in the database, with the failures counted.
    assert_eq!(outbox(&app, "project_id = 'stuck'").await, 4);
    let head = app
        .rows(
            "SELECT seq, attempts, last_error, lease_owner FROM webhook_outbox \
             WHERE project_id = 'stuck' ORDER BY seq LIMIT 1",
        )
        .await;
    assert_eq!(head[0][0], s("1"));
    let attempts: i64 = head[0][1]
        .as_deref()
        .and_then(|a| a.parse().ok())
        .expect("n");
    assert!(attempts >= 3, "{head:?}");
    assert!(
        head[0][2].as_deref().is_some_and(|e| e.contains("503")),
        "{head:?}"
    );
    assert_eq!(head[0][3], None, "leases are given back at shutdown");
    let flowing_hits: Vec<_> = hits
        .iter()
        .filter(|h| h.transition().project_id == "flowing")
        .cloned()
        .collect();
    verify(&flowing_hits, SECRET, &flowing, false);
}

/// The writer's commit pokes the deliverer: a transition reaches the receiver well
/// before the fallback poll would have found it. Prints the figures, from the start of
/// the cycle that observed it (API call and commit included) to the receiver.
async fn a_commit_wakes_the_deliverer(backend: Backend) {
    let receiver = Receiver::start(|_, _| 200).await;
    let app = spawn_with_webhook(backend, &receiver).await;
    let feed = ice_sync::app::start_feed(&app.settings, &app.engine, app.shutdown.clone())
        .await
        .expect("deliverer starts")
        .expect("webhook.url is set");
    app.sim.add_regular("lat");
    app.track(&["lat"]).await;
    let mut latencies = Vec::new();
    for round in 0..12 {
        if round > 0 {
            let status = if round % 2 == 1 { "Editing" } else { "Draft" };
            app.sim.set_status("lat", Some(status), None);
        }
        let polled = std::time::Instant::now();
        let report = app.cycle().await;
        assert_eq!(report.transitions, 1, "{report:?}");
        let key = format!("lat:{}", round + 1);
        let start = std::time::Instant::now();
        let at = loop {
            if let Some(hit) = receiver
                .hits()
                .iter()
                .find(|h| h.key.as_deref() == Some(&key))
            {
                break hit.at;
            }
            assert!(start.elapsed() < ACK_TIMEOUT, "{key} arrives");
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        latencies.push(at.saturating_duration_since(polled));
    }
    app.shutdown.cancel();
    feed.stopped().await;
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let max = latencies[latencies.len() - 1];
    println!(
        "webhook cycle-start-to-receiver latency ({backend:?}): median {median:?}, max {max:?} over {} transitions (fallback poll: {:?})",
        latencies.len(),
        ice_sync::feed::deliverer::POLL
    );
    // Woken, not polled: most arrive far sooner than the fallback poll would bring them
    // (generous: the box is loaded).
    assert!(
        median < ice_sync::feed::deliverer::POLL / 4,
        "median {median:?}"
    );
    let expected = expected_transitions(app.store(), &["lat"]).await;
    verify(&receiver.hits(), SECRET, &expected, false);
}

// PostgreSQL only: NOTIFY, and leases contended by replicas sharing one database.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_announces_committed_transitions_only() {
    let app = spawn_app(Backend::Postgres).await;
    let mut listener = PgListener::connect(&app.db.url).await.expect("listener");
    listener
        .listen("ice_sync_transition")
        .await
        .expect("LISTEN");
    app.sim.add_regular("n1");
    app.sim.add_live("n2");
    app.track(&["n1", "n2"]).await;
    app.cycle().await;
    assert!(app.sim.advance("n1"));
    app.cycle().await;
    let expected = expected_transitions(app.store(), &["n1", "n2"]).await;
    assert_eq!(expected.len(), 3);
    let mut got = Vec::new();
    for _ in 0..expected.len() {
        got.push(next(&mut listener).await);
    }
    got.sort_by_key(|t| (t.project_id.clone(), t.seq));
    assert_eq!(got, expected);
    // Without webhook.url nothing is queued for a webhook.
    assert_eq!(app.count("SELECT count(*) FROM webhook_outbox").await, 0);

    let store = app.store();
    // A fenced write: replica A stalls past its lease, B takes over and writes; A's
    // late answer is fenced. Only B's row is announced.
    app.track(&["race1"]).await;
    let a = claim_expired(store, "race1", "replica-a").await;
    let b = claim_expired(store, "race1", "replica-b").await;
    let from_b = diff::plan(&b, found("race1", "Editing"), 2);
    assert_eq!(
        store.writes().apply(&job(from_b), None).await.expect("b"),
        Applied::Written
    );
    let from_a = diff::plan(&a, found("race1", "Producing"), 2);
    assert_eq!(
        store.writes().apply(&job(from_a), None).await.expect("a"),
        Applied::Fenced
    );
    let b_row = next(&mut listener).await;
    assert_eq!(
        (b_row.key(), b_row.status.as_deref()),
        ("race1:1".to_string(), Some("Editing"))
    );

    // A rolled-back batch: rb1's row is written and notified inside the transaction, then
    // rb2's row turns out edited by hand under its claim and the whole batch rolls back.
    app.track(&["rb1", "rb2"]).await;
    let rb2_first = claim_expired(store, "rb2", "replica-b").await;
    let first = diff::plan(&rb2_first, found("rb2", "Draft"), 2);
    assert_eq!(
        store.writes().apply(&job(first), None).await.expect("rb2"),
        Applied::Written
    );
    assert_eq!(next(&mut listener).await.key(), "rb2:1");
    let rb1 = claim_expired(store, "rb1", "replica-b").await;
    let rb2 = claim_expired(store, "rb2", "replica-b").await;
    app.execute("UPDATE editing_project_rows SET history_seq = 9 WHERE project_id = 'rb2'")
        .await;
    let batch = [
        job(diff::plan(&rb1, found("rb1", "Draft"), 2)),
        job(diff::plan(&rb2, found("rb2", "Editing"), 2)),
    ];
    assert!(
        store.writes().apply_batch(&batch, None).await.is_err(),
        "the batch rolls back"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM editing_project_history WHERE project_id = 'rb1'")
            .await,
        0
    );
    // The next committed row is the next notification: nothing came from the fenced
    // answer or the rolled-back batch in between. (The failed batch's connection was
    // closed, not reused; the server drops its row locks once it notices.)
    let rb1 = claim_when_unlocked(store, "rb1", "replica-b").await;
    let marker = diff::plan(&rb1, found("rb1", "Editing"), 2);
    assert_eq!(
        store.writes().apply(&job(marker), None).await.expect("rb1"),
        Applied::Written
    );
    let after = next(&mut listener).await;
    assert_eq!(
        (after.key(), after.status.as_deref()),
        ("rb1:1".to_string(), Some("Editing"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_never_send_one_row_at_once() {
    // Slow answers, so two deliverers polling the same outbox would overlap if the
    // leases let them.
    let receiver = Receiver::start_slow(Duration::from_millis(150), |_, _| 200).await;
    let app = spawn_with_webhook(Backend::Postgres, &receiver).await;
    let ids = ["r1", "r2", "r3", "r4"];
    walk(&app, &ids).await;
    let webhook = Webhook::resolve(&app.settings.webhook, |_| None)
        .expect("resolves")
        .expect("on");
    let replicas: Vec<_> = ["replica-a", "replica-b", "replica-c"]
        .into_iter()
        .map(|owner| {
            Deliverer::new(
                app.store().clone(),
                webhook.clone(),
                owner.to_string(),
                app.engine.clock().clone(),
            )
            .expect("deliverer")
            .spawn(app.shutdown.clone())
        })
        .collect();
    let expected = expected_transitions(app.store(), &ids).await;
    receiver.wait_for_acknowledged(&expected, ACK_TIMEOUT).await;
    wait_outbox_empty(&app, "TRUE").await;
    app.shutdown.cancel();
    for r in replicas {
        r.stopped().await;
    }
    assert_eq!(receiver.overlapped(), Vec::<String>::new());
    let hits = receiver.hits();
    verify(&hits, SECRET, &expected, false);
    assert_eq!(hits.len(), expected.len(), "each row sent once");
}

/// The next notification, parsed.
async fn next(listener: &mut PgListener) -> Transition {
    let n = tokio::time::timeout(Duration::from_secs(20), listener.recv())
        .await
        .expect("a notification within 20 s")
        .expect("listener");
    assert_eq!(n.channel(), "ice_sync_transition");
    assert!(n.payload().len() < 8000);
    serde_json::from_str::<Transition>(n.payload()).expect("payload is a transition")
}

fn found(id: &str, status: &str) -> Observation {
    Observation::Found {
        project: Box::new(Project {
            project_id: s(id),
            status: s(status),
            ..Default::default()
        }),
        request_id: s("req"),
        polled_at: Timestamp::now(),
    }
}

fn job(plan: Plan) -> WriteJob {
    let at = Timestamp::parse("2030-01-01T00:10:00Z").expect("ts");
    WriteJob {
        plan,
        next: NextPoll {
            at,
            attempted: at,
            every_tick: true,
        },
    }
}

/// Claims `id` for `owner` with a lease already over, as a replica that stalled.
async fn claim_expired(store: &Store, id: &str, owner: &str) -> ice_sync::contract::Stored {
    let now = ice_sync::app::now(store).await.expect("now");
    store
        .claims()
        .claim_ids(&[project_id(id)], owner, Duration::ZERO, now)
        .await
        .expect("claim")
        .pop()
        .expect("claimable")
}

/// [`claim_expired`], once no transaction holds the row any more.
async fn claim_when_unlocked(store: &Store, id: &str, owner: &str) -> ice_sync::contract::Stored {
    let start = std::time::Instant::now();
    loop {
        let now = ice_sync::app::now(store).await.expect("now");
        let claimed = store
            .claims()
            .claim_ids(&[project_id(id)], owner, Duration::ZERO, now)
            .await
            .expect("claim");
        if let Some(stored) = claimed.into_iter().next() {
            return stored;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{id} stays locked"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
