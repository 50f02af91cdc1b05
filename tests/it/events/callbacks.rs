//! ICE event callbacks: the simulator's real deliveries (envelope, signature, retries)
//! into the real endpoint on a real database, with the daemon's refresh cycles running
//! beside it. A valid callback costs exactly one poll, within a second, and that poll
//! writes the history; every kind of bad callback is refused with nothing queued and no
//! API call; repeats and replays poll nothing more; two keys are accepted during a
//! rotation; on PostgreSQL two daemons poll a project once whichever gets the callback.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ice_sim::{EventCallback, Simulator, SimulatorConfig};
use ice_sync::callback::signature;
use secrecy::ExposeSecret;

use crate::on_both_backends;
use crate::ops::daemon::{daemon_env, describe, get, run_to_end, Daemon};
use crate::support::{
    open_store, project_id, project_ids, spawn_app_with, Backend, TestApp, TestDatabase,
};

/// The CallbackURL as registered with ICE: a public name, as behind a proxy. The
/// simulator is routed to the loopback listener, and the signature still covers this.
pub(crate) const URL: &str = "https://ice-sync.example.com/ice/events";
pub(crate) const KEY: &str = "TestKey001";

on_both_backends!(
    a_finished_job_is_in_the_history_within_a_second,
    bad_callbacks_are_refused_and_queue_nothing,
    repeated_and_replayed_callbacks_queue_once,
    an_unknown_project_becomes_tracked_when_allowed,
);

/// The test app with the callback endpoint served on a free loopback port and the
/// simulator's event callback pointing at it.
pub(super) struct Rig {
    pub(super) app: TestApp,
    pub(super) addr: SocketAddr,
    _serving: ice_sync::callback::Serving,
}

pub(super) async fn rig(backend: Backend, extra: &[(&str, &str)]) -> Rig {
    let mut env = vec![
        ("ICE_SYNC__CALLBACK__LISTEN", "127.0.0.1:0"),
        ("ICE_SYNC__CALLBACK__URL", URL),
        ("ICE_SYNC__CALLBACK__AUTH_KEY", KEY),
    ];
    env.extend_from_slice(extra);
    let app = spawn_app_with(backend, &env).await;
    let bound = ice_sync::app::bind_callbacks(&app.settings, &app.engine)
        .await
        .expect("binds")
        .expect("callback.listen is set");
    let addr = bound.local_addr().expect("bound address");
    let serving = bound.serve(app.shutdown.clone());
    // The daemon's refresh cycles, as `run` spawns them.
    let engine = app.engine.clone();
    tokio::spawn(ice_sync::refresh::daemon::serve_refreshes(
        move || engine.clone(),
        |_| {},
        app.shutdown.clone(),
    ));
    app.sim
        .set_event_callback(Some(EventCallback::http(URL, Some(KEY))));
    app.sim.route_callbacks_to(addr);
    Rig {
        app,
        addr,
        _serving: serving,
    }
}

impl Rig {
    pub(super) async fn events(&self) -> i64 {
        self.app.count("SELECT count(*) FROM callback_events").await
    }

    /// Projects with a poll request pending.
    pub(super) async fn queued(&self) -> i64 {
        self.app
            .count("SELECT count(*) FROM tracked_projects WHERE requested_at IS NOT NULL")
            .await
    }

    /// Waits until `id` has `rows` history rows; how long that took.
    async fn history_reaches(&self, id: &str, rows: usize, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if self.app.history(id).await.len() >= rows {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "{id} still has {:?} after {within:?}",
                self.app.history(id).await
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub(super) async fn tracked(&self) -> Vec<Vec<Option<String>>> {
        self.app
            .rows("SELECT project_id, source FROM tracked_projects ORDER BY project_id")
            .await
    }
}

/// A request as ICE would send it, with whatever headers and body a test picks.
pub(super) struct Post<'a> {
    pub(super) path: &'a str,
    pub(super) timestamp: Option<String>,
    pub(super) signature: Option<String>,
    pub(super) body: Vec<u8>,
}

impl<'a> Post<'a> {
    /// Signed with `key` over `URL` at `offset` seconds from now.
    pub(super) fn signed(key: &str, offset: i64, body: &str) -> Post<'a> {
        let ts = (chrono::Utc::now().timestamp() + offset).to_string();
        Post {
            path: "/ice/events",
            signature: Some(signature::digest(URL, &ts, key)),
            timestamp: Some(ts),
            body: body.as_bytes().to_vec(),
        }
    }

    pub(super) async fn send(&self, addr: SocketAddr) -> (u16, String) {
        let mut request = reqwest::Client::new()
            .post(format!("http://{addr}{}", self.path))
            .timeout(Duration::from_secs(10))
            .body(self.body.clone());
        if let Some(ts) = &self.timestamp {
            request = request.header("X-ICE-TIMESTAMP", ts);
        }
        if let Some(sig) = &self.signature {
            request = request.header("X-ICE-SIGNATURE", sig);
        }
        let response = request.send().await.expect("the endpoint answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }
}

/// A `ProduceMediaComplete` envelope as documented (our own values).
fn envelope(project_id: &str, job_id: &str) -> String {
    serde_json::json!({
        "EventType": "ProduceMediaComplete",
        "UserId": 1234567890123456u64,
        "EventTime": "2024-06-10T06:13:20Z",
        "MessageBody": {
            "Status": "Success",
            "JobId": job_id,
            "ProjectId": project_id,
            "MediaId": "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b",
            "MediaURL": "https://example-bucket.oss-cn-shanghai.aliyuncs.com/out/x.mp4",
            "ErrorCode": "",
            "ErrorMessage": "",
            "UserData": ""
        }
    })
    .to_string()
}

async fn bad_callbacks_are_refused_and_queue_nothing(backend: Backend) {
    let rig = rig(backend, &[]).await;
    rig.app.sim.add_regular("p1");
    rig.app.track(&["p1"]).await;
    let tracked = rig.tracked().await;
    let good = envelope("p1", "job-1");
    let loopback_url = format!("http://{}/ice/events", rig.addr);
    let cases: Vec<(&str, Post<'_>, u16)> = vec![
        (
            "no signature headers",
            Post {
                path: "/ice/events",
                timestamp: None,
                signature: None,
                body: good.clone().into_bytes(),
            },
            401,
        ),
        ("another key", Post::signed("OtherKey002", 0, &good), 401),
        (
            "signed over the URL the request reached instead of the registered one",
            {
                let ts = chrono::Utc::now().timestamp().to_string();
                Post {
                    path: "/ice/events",
                    signature: Some(signature::digest(&loopback_url, &ts, KEY)),
                    timestamp: Some(ts),
                    body: good.clone().into_bytes(),
                }
            },
            401,
        ),
        (
            "a timestamp that is not a number",
            Post {
                timestamp: Some("yesterday".into()),
                ..Post::signed(KEY, 0, &good)
            },
            401,
        ),
        ("stale: 6 minutes old", Post::signed(KEY, -360, &good), 403),
        ("from 6 minutes ahead", Post::signed(KEY, 360, &good), 403),
        (
            "wrong path",
            Post {
                path: "/ice/event",
                ..Post::signed(KEY, 0, &good)
            },
            404,
        ),
        ("bad JSON", Post::signed(KEY, 0, "{\"EventType\":"), 400),
        (
            "no ProjectId",
            Post::signed(
                KEY,
                0,
                r#"{"EventType":"BatchProduceMediaComplete","MessageBody":{"Status":"Finished","JobId":"b1"}}"#,
            ),
            400,
        ),
        (
            "oversized body",
            Post::signed(
                KEY,
                0,
                &good.replace(
                    "\"UserData\":\"\"",
                    &format!("\"UserData\":\"{}\"", "x".repeat(70_000)),
                ),
            ),
            413,
        ),
        (
            "a project that is not tracked",
            Post::signed(KEY, 0, &envelope("not-tracked", "job-2")),
            422,
        ),
    ];
    for (what, post, want) in &cases {
        let (status, body) = post.send(rig.addr).await;
        assert_eq!(status, *want, "{what}: {body}");
        assert!(!body.contains(KEY), "{what}: the key in {body}");
        assert_eq!(rig.events().await, 0, "{what}: recorded");
        assert_eq!(rig.queued().await, 0, "{what}: queued");
        assert_eq!(rig.tracked().await, tracked, "{what}: tracking changed");
    }
    let get = reqwest::Client::new()
        .get(format!("http://{}/ice/events", rig.addr))
        .send()
        .await
        .expect("GET");
    assert_eq!(get.status().as_u16(), 405);

    // Give a wrongly queued poll the time to happen: none may.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rig.app.sim.calls("p1"), 0);

    // The database is gone: ICE is told to retry.
    rig.app.store().close().await;
    let (status, body) = Post::signed(KEY, 0, &good).send(rig.addr).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        rig.app.sim.total_calls(),
        0,
        "no callback may cost an API call before it is answered"
    );
}

async fn repeated_and_replayed_callbacks_queue_once(backend: Backend) {
    let rig = rig(backend, &[]).await;
    rig.app.sim.add_regular("p1");
    rig.app.track(&["p1"]).await;
    let job = rig.app.sim.start_production("p1").expect("job");
    assert!(rig.app.sim.finish_production(&job, true));
    let first = rig.app.sim.deliveries_of(&job).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(first[0].delivered(), "{first:?}");
    assert_eq!(rig.events().await, 1);
    rig.history_reaches("p1", 1, Duration::from_secs(5)).await;

    // IMS sends it again (newly signed), and a captured request is replayed byte for byte.
    assert!(rig.app.sim.redeliver(&job));
    let again = rig.app.sim.deliveries_of(&job).await;
    assert_eq!(again.len(), 2);
    assert!(again[1].delivered(), "a repeat is answered 200: {again:?}");
    let replay = Post {
        path: "/ice/events",
        timestamp: first[0].timestamp.clone(),
        signature: first[0].signature.clone(),
        body: first[0].body.clone().into_bytes(),
    };
    let (status, body) = replay.send(rig.addr).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("already received"), "{body}");
    assert_eq!(rig.events().await, 1, "one row per (EventType, JobId)");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        rig.app.sim.calls("p1"),
        1,
        "repeats and replays poll nothing"
    );
    assert_eq!(rig.queued().await, 0);

    // The next job of the same project is a new event.
    let next = rig.app.sim.start_production("p1").expect("job");
    rig.app.sim.finish_production(&next, false);
    let d = rig.app.sim.deliveries_of(&next).await;
    assert!(d.iter().all(|d| d.delivered()) && d.len() == 1, "{d:?}");
    assert_eq!(rig.events().await, 2);
    rig.history_reaches("p1", 2, Duration::from_secs(5)).await;
    assert_eq!(rig.app.sim.calls("p1"), 2, "a new job is a new event");
    assert_eq!(
        rig.app
            .rows("SELECT job_id, status FROM callback_events ORDER BY status DESC")
            .await,
        vec![
            vec![Some(job.clone()), Some("Success".to_string())],
            vec![Some(next.clone()), Some("Fail".to_string())],
        ]
    );
}

async fn an_unknown_project_becomes_tracked_when_allowed(backend: Backend) {
    let rig = rig(backend, &[("ICE_SYNC__CALLBACK__TRACK_UNKNOWN", "true")]).await;
    rig.app.sim.add_regular("newcomer");
    let job = rig.app.sim.start_production("newcomer").expect("job");
    rig.app.sim.finish_production(&job, true);
    let d = rig.app.sim.deliveries_of(&job).await;
    assert!(d[0].delivered(), "{d:?}");
    assert_eq!(
        rig.tracked().await,
        vec![vec![
            Some("newcomer".to_string()),
            Some("callback".to_string())
        ]]
    );
    rig.history_reaches("newcomer", 1, Duration::from_secs(5))
        .await;
    let history = rig.app.history("newcomer").await;
    assert_eq!(history[0].0, "first_seen");
    assert_eq!(history[0].2.as_deref(), Some("Produced"));
    assert_eq!(rig.app.sim.calls("newcomer"), 1);
}

async fn a_finished_job_is_in_the_history_within_a_second(backend: Backend) {
    let rig = rig(backend, &[]).await;
    let ids: Vec<String> = (0..5).map(|i| format!("p{i}")).collect();
    for id in &ids {
        rig.app.sim.add_regular(id);
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    rig.app.track(&refs).await;
    rig.app.cycle().await;
    let jobs: Vec<String> = ids
        .iter()
        .map(|id| rig.app.sim.start_production(id).expect("job"))
        .collect();
    // A scheduled poll sees them Producing.
    rig.app.cycle().await;
    let mut latencies = Vec::new();
    for (id, job) in ids.iter().zip(&jobs) {
        let polls = rig.app.sim.calls(id);
        let finished = Instant::now();
        assert!(rig.app.sim.finish_production(job, true));
        rig.history_reaches(id, 3, Duration::from_secs(5)).await;
        latencies.push(finished.elapsed());
        let d = rig.app.sim.deliveries_of(job).await;
        assert!(d.len() == 1 && d[0].delivered(), "{d:?}");
        assert_eq!(
            rig.app.sim.calls(id),
            polls + 1,
            "{id}: exactly one extra poll"
        );
        let history = rig.app.history(id).await;
        let last = history.last().expect("rows");
        assert_eq!(
            (last.0.as_str(), last.1.as_deref(), last.2.as_deref()),
            ("changed", Some("Producing"), Some("Produced")),
            "{id}: {history:?}"
        );
    }
    latencies.sort();
    println!(
        "callback-to-history latency ({}, {} jobs): median {:?}, max {:?}",
        rig.app.store().backend(),
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    // Generous: a loaded 2-core CI box; the figure above is what matters.
    assert!(
        latencies[latencies.len() / 2] < Duration::from_secs(1),
        "{latencies:?}"
    );
    assert!(
        latencies[latencies.len() - 1] < Duration::from_secs(3),
        "{latencies:?}"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    for id in &ids {
        assert_eq!(
            rig.app.sim.calls(id),
            3,
            "{id}: no poll after the one asked for"
        );
    }
    assert_eq!(
        rig.app
            .count(
                "SELECT count(*) FROM sync_runs WHERE trigger = 'request' AND projects_polled > 0"
            )
            .await,
        5
    );
    crate::support::check_invariants(rig.app.store()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_keys_are_accepted_during_a_rotation() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("callback-keys");
    std::fs::write(
        &file,
        "# old key until the switch, then the new one\nNewKey002\n",
    )
    .expect("write");
    let file = file.to_str().expect("utf-8").to_string();
    let rig = rig(
        Backend::Sqlite,
        &[
            ("ICE_SYNC__CALLBACK__AUTH_KEY", "OldKey001"),
            ("ICE_SYNC__CALLBACK__AUTH_KEY_FILE", &file),
        ],
    )
    .await;
    rig.app.sim.add_regular("p1");
    rig.app.track(&["p1"]).await;
    for (i, (key, want)) in [("OldKey001", 200), ("NewKey002", 200), ("TestKey001", 401)]
        .into_iter()
        .enumerate()
    {
        let post = Post::signed(key, 0, &envelope("p1", &format!("job-{i}")));
        let (status, body) = post.send(rig.addr).await;
        assert_eq!(status, want, "{key}: {body}");
    }
    assert_eq!(rig.events().await, 2);
}

/// A front that answers the first `fail` requests 503 and forwards the rest to `to`.
async fn flaky_front(to: SocketAddr, fail: usize) -> SocketAddr {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let seen = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let seen = seen.clone();
        async move {
            if seen.fetch_add(1, Ordering::SeqCst) < fail {
                return (StatusCode::SERVICE_UNAVAILABLE, String::from("restarting"));
            }
            let mut request = reqwest::Client::new()
                .post(format!("http://{to}/ice/events"))
                .body(body);
            for name in ["x-ice-timestamp", "x-ice-signature", "content-type"] {
                if let Some(v) = headers.get(name) {
                    request = request.header(name, v.as_bytes());
                }
            }
            match request.send().await {
                Ok(r) => (
                    StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
                    r.text().await.unwrap_or_default(),
                ),
                Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("front binds");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_retries_until_the_endpoint_answers_200() {
    let rig = rig(Backend::Sqlite, &[]).await;
    rig.app.sim.add_regular("p1");
    rig.app.track(&["p1"]).await;
    let front = flaky_front(rig.addr, 1).await;
    rig.app.sim.route_callbacks_to(front);
    let job = rig.app.sim.start_production("p1").expect("job");
    let started = Instant::now();
    rig.app.sim.finish_production(&job, true);
    let d = rig.app.sim.deliveries_of(&job).await;
    let seen: Vec<(u32, Option<u16>)> = d.iter().map(|d| (d.attempt, d.status)).collect();
    assert_eq!(seen, [(1, Some(503)), (2, Some(200))], "{d:?}");
    let gap = (d[1].sent_at - d[0].sent_at).to_std().unwrap_or_default();
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
    assert_ne!(d[0].timestamp, None);
    // Generous: two attempts one second apart, on a machine running the
    // whole suite in parallel.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(rig.events().await, 1);

    // Nobody answers at all: three attempts, then IMS gives up.
    // The port stays bound but never listens, so the kernel refuses every
    // connection and no parallel test can take the port over meanwhile.
    let dead = tokio::net::TcpSocket::new_v4().expect("socket");
    dead.bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let nowhere = dead.local_addr().expect("addr");
    rig.app.sim.route_callbacks_to(nowhere);
    let job = rig.app.sim.start_production("p1").expect("job");
    rig.app.sim.finish_production(&job, true);
    let d = rig.app.sim.deliveries_of(&job).await;
    assert_eq!(
        d.iter().map(|d| d.attempt).collect::<Vec<_>>(),
        [1, 2, 3],
        "{d:?}"
    );
    assert!(
        d.iter().all(|d| d.status.is_none() && d.error.is_some()),
        "{d:?}"
    );
    drop(dead);
}

/// `host:port` of a daemon's callback endpoint, from its start-up log line.
pub(crate) async fn callback_addr(daemon: &mut Daemon) -> SocketAddr {
    let line = daemon
        .wait_for_line(
            |l| l.contains("serving ICE event callbacks"),
            Duration::from_secs(30),
        )
        .await;
    let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
    v["addr"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("addr field")
}

/// `ice_sync_callbacks_total{outcome}` as a daemon's `/metrics` says.
async fn callbacks_counted(metrics: &str, outcome: &str) -> u64 {
    let (status, text) = get(metrics, "/metrics").await;
    assert_eq!(status, 200);
    let series = format!("ice_sync_callbacks_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_poll_once_whichever_gets_the_callback_postgres() {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let ids = ["p1", "p2", "p3"];
    for id in ids {
        sim.add_regular(id);
    }
    let db = TestDatabase::new(Backend::Postgres).await;
    let store = open_store(&db.url).await;
    store
        .tracking()
        .track_add(
            &project_ids(&ids),
            "cli",
            ice_sync::domain::Timestamp::now(),
        )
        .await
        .expect("track");
    // One start-up cycle each, then no tick for a year: every later poll is a request.
    let env = daemon_env(
        &db.url,
        &sim,
        &[
            ("ICE_SYNC__SYNC__SCHEDULE", "0 0 0 1 1 *"),
            ("ICE_SYNC__CALLBACK__LISTEN", "127.0.0.1:0"),
            ("ICE_SYNC__CALLBACK__URL", URL),
            ("ICE_SYNC__CALLBACK__AUTH_KEY", KEY),
        ],
    );
    let with_id = |id: &str| {
        let mut env = env.clone();
        env.push(("ICE_SYNC__SYNC__REPLICA_ID".to_string(), id.to_string()));
        env
    };
    let mut a = Daemon::start(&with_id("replica-a"));
    let mut b = Daemon::start(&with_id("replica-b"));
    let (cb_a, cb_b) = (callback_addr(&mut a).await, callback_addr(&mut b).await);
    let (metrics_a, metrics_b) = (a.metrics_addr().await, b.metrics_addr().await);
    let started = Instant::now();
    while ids.iter().any(|id| sim.calls(id) == 0) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "start-up cycles"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in ids {
        assert_eq!(
            sim.calls(id),
            1,
            "{id}: one start-up poll across the replicas"
        );
    }

    // p1: delivered to A, then the captured request replayed to B.
    sim.set_event_callback(Some(EventCallback::http(URL, Some(KEY))));
    sim.route_callbacks_to(cb_a);
    let job = sim.start_production("p1").expect("job");
    sim.finish_production(&job, true);
    let d = sim.deliveries_of(&job).await;
    assert!(d.len() == 1 && d[0].delivered(), "{d:?}");
    let replay = Post {
        path: "/ice/events",
        timestamp: d[0].timestamp.clone(),
        signature: d[0].signature.clone(),
        body: d[0].body.clone().into_bytes(),
    };
    let (status, body) = replay.send(cb_b).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("already received"), "{body}");

    // p2: delivered to B.
    sim.route_callbacks_to(cb_b);
    let job = sim.start_production("p2").expect("job");
    sim.finish_production(&job, true);
    let d = sim.deliveries_of(&job).await;
    assert!(d.len() == 1 && d[0].delivered(), "{d:?}");

    // p3: the same event reaches both replicas at once.
    sim.set_event_callback(None);
    let job = sim.start_production("p3").expect("job");
    sim.finish_production(&job, true);
    let event = envelope("p3", &job);
    let post = Post::signed(KEY, 0, &event);
    let ((sa, ba), (sb, bb)) = tokio::join!(post.send(cb_a), post.send(cb_b));
    assert_eq!((sa, sb), (200, 200), "{ba} / {bb}");
    assert_eq!(
        [&ba, &bb]
            .iter()
            .filter(|b| b.contains("already received"))
            .count(),
        1,
        "one replica's insert decides: {ba} / {bb}"
    );

    let started = Instant::now();
    while ids.iter().any(|id| sim.calls(id) < 2) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "requested polls: {:?}\nA:\n{}\nB:\n{}",
            ids.map(|id| sim.calls(id)),
            a.log(),
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for id in ids {
        assert_eq!(sim.calls(id), 2, "{id}: exactly one poll for its callbacks");
        let history = store
            .reads()
            .history(&project_id(id))
            .await
            .expect("history");
        assert_eq!(
            history.last().and_then(|h| h.status.as_deref()),
            Some("Produced"),
            "{id}: {history:?}"
        );
    }
    let mut accepted = 0;
    let mut duplicate = 0;
    for m in [&metrics_a, &metrics_b] {
        accepted += callbacks_counted(m, "accepted").await;
        duplicate += callbacks_counted(m, "duplicate").await;
    }
    assert_eq!((accepted, duplicate), (3, 2));
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_without_a_key_or_its_port_does_not_start() {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let db = TestDatabase::new(Backend::Sqlite).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").to_string();
    for (extra, needle) in [
        (
            vec![("ICE_SYNC__CALLBACK__LISTEN", "127.0.0.1:0")],
            "callback.url",
        ),
        (
            vec![
                ("ICE_SYNC__CALLBACK__LISTEN", "127.0.0.1:0"),
                ("ICE_SYNC__CALLBACK__URL", URL),
            ],
            "no AuthKey is configured",
        ),
        (
            vec![
                ("ICE_SYNC__CALLBACK__LISTEN", port.as_str()),
                ("ICE_SYNC__CALLBACK__URL", URL),
                ("ICE_SYNC__CALLBACK__AUTH_KEY", KEY),
            ],
            "cannot listen on callback.listen",
        ),
    ] {
        let output = run_to_end(&daemon_env(&db.url, &sim, &extra), &["run"]).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{}", describe(&output));
        assert!(stderr.contains(needle), "{needle}: {}", describe(&output));
        assert!(!stderr.contains(KEY), "{}", describe(&output));
    }
    drop(taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_event_callback_over_the_signed_api_drives_deliveries() {
    let rig = rig(Backend::Sqlite, &[]).await;
    rig.app.sim.set_event_callback(None);
    rig.app.sim.add_regular("p1");
    rig.app.track(&["p1"]).await;
    // The daemon's credentials, on the bare signed caller: the product never calls
    // SetEventCallback itself.
    let creds = ice_sync::app::resolve_credentials(&rig.app.settings).expect("creds");
    let creds = creds.credentials().await.expect("resolved");
    let caller = ice_sim::SignedCaller::new(
        &rig.app.sim.endpoint(),
        &creds.access_key_id,
        creds.access_key_secret.expose_secret(),
    )
    .expect("caller");
    let call = |action: &str, query: Vec<(&str, &str)>| {
        let query: Vec<(String, String)> = query
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        caller.request(action, &query)
    };
    let set = call(
        "SetEventCallback",
        vec![
            ("CallbackType", "HTTP"),
            ("CallbackURL", URL),
            ("AuthSwitch", "on"),
            ("AuthKey", KEY),
            ("EventTypeList", "ProduceMediaComplete"),
        ],
    )
    .send()
    .await
    .expect("SetEventCallback");
    assert_eq!(set.status().as_u16(), 200);
    let set: serde_json::Value =
        serde_json::from_str(&set.text().await.expect("body")).expect("JSON");
    assert_eq!(set["Success"], true);
    let got = call("GetEventCallback", vec![])
        .send()
        .await
        .expect("GetEventCallback");
    let got: serde_json::Value =
        serde_json::from_str(&got.text().await.expect("body")).expect("JSON");
    assert_eq!(
        (
            &got["CallbackURL"],
            &got["AuthSwitch"],
            &got["EventTypeList"]
        ),
        (
            &serde_json::json!(URL),
            &serde_json::json!("on"),
            &serde_json::json!("ProduceMediaComplete")
        )
    );
    let weak = call(
        "SetEventCallback",
        vec![
            ("CallbackType", "HTTP"),
            ("CallbackURL", URL),
            ("AuthSwitch", "on"),
            ("AuthKey", "weakkey"),
        ],
    )
    .send()
    .await
    .expect("SetEventCallback");
    assert_eq!(
        weak.status().as_u16(),
        400,
        "ICE refuses a key without digits and capitals"
    );

    let job = rig.app.sim.start_production("p1").expect("job");
    rig.app.sim.finish_production(&job, true);
    let d = rig.app.sim.deliveries_of(&job).await;
    assert!(d.len() == 1 && d[0].delivered(), "{d:?}");
    assert_eq!(
        d[0].signature.as_deref(),
        d[0].timestamp
            .as_deref()
            .map(|ts| signature::digest(URL, ts, KEY))
            .as_deref()
    );
    rig.history_reaches("p1", 1, Duration::from_secs(5)).await;
}
