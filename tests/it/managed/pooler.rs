//! Through PgBouncer (the two `scripts/test` starts: transaction and session mode, in
//! front of the tests' server): migrations refused without a direct URL behind a
//! transaction pooler and applied with one, `run --once` and `refresh` (twice each: a
//! named statement left on a server connection shows at the second process), then two
//! scheduled replicas, one `LISTEN`ing over the direct URL and one on the polling
//! fallback, with callbacks and the change feed's webhook: each project polled once per
//! period, every history row delivered.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use ice_sim::{EventCallback, Simulator, SimulatorConfig};

use crate::events::callbacks::{callback_addr, KEY, URL};
use crate::events::receiver::Receiver;
use crate::ops::daemon::{daemon_env, describe, run_to_end, Daemon};
use crate::support::{align_to, check_invariants, count, open_store, rows, Backend, TestDatabase};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Transaction,
    Session,
    /// The server itself: the baseline the two are compared with.
    Direct,
}

impl Mode {
    /// The PgBouncer's URL (scripts/test exports these; the defaults are its ports).
    fn bouncer(self) -> String {
        let (var, default) = match self {
            Mode::Transaction => (
                "ICE_SYNC_TEST_PGBOUNCER_TX_URL",
                "postgres://postgres@127.0.0.1:6532/postgres",
            ),
            Mode::Session => (
                "ICE_SYNC_TEST_PGBOUNCER_SESSION_URL",
                "postgres://postgres@127.0.0.1:6533/postgres",
            ),
            Mode::Direct => return crate::support::pg_admin_url(),
        };
        std::env::var(var).unwrap_or_else(|_| default.to_string())
    }

    /// `db`'s database through this mode's PgBouncer.
    fn url_of(self, db: &TestDatabase) -> String {
        let name = db.url.rsplit('/').next().expect("a database name");
        let bouncer = self.bouncer();
        let (base, _) = bouncer.rsplit_once('/').expect("a URL with a database");
        format!("{base}/{name}")
    }

    fn pooler(self) -> &'static str {
        match self {
            Mode::Transaction => "transaction",
            Mode::Session | Mode::Direct => "none",
        }
    }
}

const PERIOD: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_works_through_pgbouncer_in_transaction_mode() {
    through_pgbouncer(Mode::Transaction).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_works_through_pgbouncer_in_session_mode() {
    through_pgbouncer(Mode::Session).await;
}

/// The same without PgBouncer: the figures the two above are compared with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_works_directly_for_comparison() {
    through_pgbouncer(Mode::Direct).await;
}

fn with(env: &[(String, String)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = env.to_vec();
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v.to_string()));
    }
    env
}

async fn through_pgbouncer(mode: Mode) {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let ids = sim.populate(60, 20);
    let db = TestDatabase::new(Backend::Postgres).await;
    let via = mode.url_of(&db);
    let receiver = Receiver::start(|_, _| 200).await;
    let projects = ids.join(",");
    let env = daemon_env(
        &via,
        &sim,
        &[
            ("ICE_SYNC__DATABASE__POOLER", mode.pooler()),
            ("ICE_SYNC__SYNC__PROJECTS", projects.as_str()),
            ("ICE_SYNC__WEBHOOK__URL", receiver.url.as_str()),
            ("ICE_SYNC__WEBHOOK__SECRET", "pooler-test-secret"),
            ("ICE_SYNC__WEBHOOK__MAX_BACKOFF", "200ms"),
        ],
    );
    let direct = with(&env, &[("ICE_SYNC__DATABASE__DIRECT_URL", db.url.as_str())]);

    // A startup parameter PgBouncer does not know: the message names the settings.
    if mode != Mode::Direct {
        let options = format!("{via}?options=-c%20work_mem%3D8MB");
        let out = run_to_end(
            &with(&env, &[("ICE_SYNC__DATABASE__URL", options.as_str())]),
            &["migrate"],
        )
        .await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && err.contains("unsupported startup parameter")
                && err.contains("ignore_startup_parameters")
                && err.contains("database.pooler")
                && !err.contains("is PostgreSQL running"),
            "{}",
            describe(&out)
        );
    }

    // Migrations: a transaction pooler cannot hold their lock.
    if mode == Mode::Transaction {
        let out = run_to_end(&env, &["run", "--once"]).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && err.contains("run `ice-sync migrate` against the direct URL")
                && err.contains("database.pooler"),
            "{}",
            describe(&out)
        );
        let out = run_to_end(&direct, &["migrate"]).await;
        assert!(out.status.success(), "{}", describe(&out));
    }

    // `run --once` and `refresh`, twice each, through the pooler alone.
    for round in 1..=2u64 {
        let out = run_to_end(&env, &["run", "--once", "--all"]).await;
        assert!(
            out.status.success(),
            "run --once #{round}: {}",
            describe(&out)
        );
        let out = run_to_end(&env, &["refresh", &ids[0]]).await;
        assert!(out.status.success(), "refresh #{round}: {}", describe(&out));
    }
    assert_eq!(sim.calls(&ids[0]), 4, "two runs and two refreshes");
    assert!(ids[1..].iter().all(|id| sim.calls(id) == 2));

    // Two scheduled replicas: A listens over the direct URL (transaction mode), B has
    // none and polls the request queue instead.
    let daemons_env = with(
        &env,
        &[
            ("ICE_SYNC__SYNC__SCHEDULE", "*/3 * * * * *"),
            ("ICE_SYNC__SYNC__LEASE_TTL", "2s"),
            ("ICE_SYNC__SYNC__CONCURRENCY", "8"),
            ("ICE_SYNC__CALLBACK__LISTEN", "127.0.0.1:0"),
            ("ICE_SYNC__CALLBACK__URL", URL),
            ("ICE_SYNC__CALLBACK__AUTH_KEY", KEY),
        ],
    );
    let a_env = match mode {
        Mode::Transaction => with(
            &daemons_env,
            &[("ICE_SYNC__DATABASE__DIRECT_URL", db.url.as_str())],
        ),
        Mode::Session | Mode::Direct => daemons_env.clone(),
    };
    align_to(PERIOD, Duration::from_millis(200)).await;
    let mut a = Daemon::start(&with(
        &a_env,
        &[("ICE_SYNC__SYNC__REPLICA_ID", "replica-a")],
    ));
    let mut b = Daemon::start(&with(
        &daemons_env,
        &[("ICE_SYNC__SYNC__REPLICA_ID", "replica-b")],
    ));
    let cb_b = callback_addr(&mut b).await;
    let _ = callback_addr(&mut a).await;

    // Three whole periods: every project polled the same number of times.
    align_to(PERIOD, Duration::from_millis(2700)).await;
    let before: Vec<u64> = ids.iter().map(|id| sim.calls(id)).collect();
    for _ in 0..3 {
        align_to(PERIOD, Duration::from_millis(2700)).await;
    }
    let polled: Vec<u64> = ids
        .iter()
        .zip(&before)
        .map(|(id, b)| sim.calls(id) - b)
        .collect();
    assert!(
        polled.iter().all(|&n| n == 3),
        "each project polled once per period over 3 periods: {polled:?}\nA:\n{}\nB:\n{}",
        a.log(),
        b.log()
    );

    // A refresh while the daemons run, and a callback to B: one poll each, in time.
    let out = run_to_end(&env, &["refresh", &ids[1]]).await;
    assert!(out.status.success(), "refresh: {}", describe(&out));
    sim.set_event_callback(Some(EventCallback::http(URL, Some(KEY))));
    sim.route_callbacks_to(cb_b);
    let target = &ids[2];
    let job = sim.start_production(target).expect("job");
    let calls = sim.calls(target);
    sim.finish_production(&job, true);
    let d = sim.deliveries_of(&job).await;
    assert!(d.len() == 1 && d[0].delivered(), "{d:?}");
    let start = Instant::now();
    while sim.calls(target) == calls {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the callback's poll\nB:\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let callback_latency = start.elapsed();

    // Every history row reaches the webhook.
    let store = open_store(&db.url).await;
    let start = Instant::now();
    let delivered = loop {
        let keys: HashSet<String> = receiver
            .hits()
            .iter()
            .filter(|h| h.acknowledged())
            .filter_map(|h| h.key.clone())
            .collect();
        let history = count(&store, "SELECT count(*) FROM editing_project_history").await;
        if keys.len() as i64 == history {
            break keys.len();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} of {history} history rows delivered",
            keys.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    a.stop().await;
    b.stop().await;
    check_invariants(&store).await;

    let per_replica: BTreeMap<String, Vec<i64>> = rows(
        &store,
        "SELECT replica_id, projects_polled FROM sync_runs \
         WHERE trigger = 'scheduled' AND outcome <> 'running' ORDER BY id",
    )
    .await
    .into_iter()
    .fold(BTreeMap::new(), |mut acc, r| {
        acc.entry(r[0].clone().unwrap_or_default())
            .or_default()
            .push(r[1].as_deref().and_then(|v| v.parse().ok()).unwrap_or(0));
        acc
    });
    let cycle_ms = count(
        &store,
        "SELECT CAST(avg(EXTRACT(EPOCH FROM finished_at - started_at) * 1000) AS BIGINT) \
         FROM sync_runs WHERE trigger = 'scheduled' AND outcome <> 'running'",
    )
    .await;
    println!(
        "{mode:?}: {} projects, polls per project over 3 periods {:?}; scheduled polls per \
         cycle per replica {per_replica:?} (mean cycle {cycle_ms} ms); callback to poll \
         {callback_latency:?}; {delivered} history rows delivered",
        ids.len(),
        polled.iter().collect::<HashSet<_>>(),
    );
}
