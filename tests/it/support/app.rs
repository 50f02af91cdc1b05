//! [`spawn_app`]: the running pieces of one test (the simulator on port 0, a fresh
//! database, the settings and the engine, assembled by the same `app` functions production
//! uses), and the SQL helpers and invariants tests check a store with.

use std::sync::Arc;

use ice_sim::{Simulator, SimulatorConfig};
use ice_sync::app;
use ice_sync::config::{self, Settings};
use ice_sync::storage::Store;
use ice_sync::sync::engine::Engine;
use tokio_util::sync::CancellationToken;

use super::{Backend, TestDatabase};

pub struct TestApp {
    pub sim: Simulator,
    pub settings: Settings,
    pub engine: Arc<Engine>,
    pub shutdown: CancellationToken,
    /// Declared last, so it is dropped (and the database with it) after the engine.
    pub db: TestDatabase,
}

/// The environment a daemon would see: database, endpoint, credentials and any extra
/// `ICE_SYNC__*` pairs.
pub fn env_for(db_url: &str, sim: &Simulator, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let cfg = SimulatorConfig::default();
    let mut env = vec![
        ("ICE_SYNC__DATABASE__URL".to_string(), db_url.to_string()),
        ("ICE_SYNC__ICE__ENDPOINT".to_string(), sim.endpoint()),
        (
            "ICE_SYNC__ICE__ACCESS_KEY_ID".to_string(),
            cfg.access_key_id,
        ),
        (
            "ICE_SYNC__ICE__ACCESS_KEY_SECRET".to_string(),
            cfg.access_key_secret,
        ),
        ("ICE_SYNC__SYNC__MAX_QPS".to_string(), "0".to_string()),
        ("ICE_SYNC__ICE__TIMEOUT".to_string(), "5s".to_string()),
    ];
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v.to_string()));
    }
    env
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

pub async fn spawn_app_with(backend: Backend, extra_env: &[(&str, &str)]) -> TestApp {
    spawn_app_tuned(backend, extra_env, |_| {}).await
}

/// [`spawn_app_with`], with a last word on the engine options (batch sizes, say).
pub async fn spawn_app_tuned(
    backend: Backend,
    extra_env: &[(&str, &str)],
    tune: impl FnOnce(&mut ice_sync::sync::engine::EngineOptions),
) -> TestApp {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("simulator starts");
    let db = TestDatabase::new(backend).await;
    let settings = config::load_from(None, env_for(&db.url, &sim, extra_env)).expect("settings");
    // Cycles here are driven by hand, not by the schedule: every project is due at
    // every cycle (the adaptive policy has its own tests).
    let engine = app::Daemon::builder(&settings)
        .tune(|o| {
            o.policy.schedule = None;
            tune(o);
        })
        .engine()
        .await
        .expect("engine");
    TestApp {
        sim,
        settings,
        engine,
        shutdown: CancellationToken::new(),
        db,
    }
}

impl TestApp {
    pub fn store(&self) -> &Store {
        self.engine.store()
    }

    pub async fn track(&self, ids: &[&str]) {
        let ids = project_ids(ids);
        let now = ice_sync::app::now(self.store()).await.expect("now");
        self.store()
            .tracking()
            .track_add(&ids, "test", now)
            .await
            .expect("track");
    }

    pub async fn cycle(&self) -> ice_sync::sync::engine::CycleReport {
        self.engine.run_cycle(&self.shutdown).await
    }

    /// (event, previous_status, status, previous_business, business) in order.
    pub async fn history(
        &self,
        id: &str,
    ) -> Vec<(
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    )> {
        self.store()
            .reads()
            .history(&project_id(id))
            .await
            .expect("history")
            .into_iter()
            .map(|h| {
                (
                    h.event,
                    h.previous_status,
                    h.status,
                    h.previous_business_status,
                    h.business_status,
                )
            })
            .collect()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        count(self.store(), sql).await
    }

    pub async fn execute(&self, sql: &str) {
        execute(&self.db, sql).await
    }

    pub async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        rows(self.store(), sql).await
    }
}

/// Runs a scalar `SELECT` returning one integer on either backend.
pub async fn count(store: &Store, sql: &str) -> i64 {
    store
        .query_i64(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Runs statements on either backend, through a connection of the test's own to the
/// database (the product's `Store` runs no scripts).
pub async fn execute(db: &TestDatabase, sql: &str) {
    db.execute_script(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:#}"))
}

/// The rows of a query as text, NULL as None, on either backend. Integers and floats
/// are rendered with `to_string`; cast timestamps to text in the SQL.
pub async fn rows(store: &Store, sql: &str) -> Vec<Vec<Option<String>>> {
    store
        .query_table(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .rows
}

/// Opens (and migrates) the store behind a URL, as the binary would.
pub async fn open_store(url: &str) -> Store {
    let settings = config::load_from(
        None,
        vec![("ICE_SYNC__DATABASE__URL".to_string(), url.to_string())],
    )
    .expect("settings");
    app::open_store(&settings).await.expect("store")
}

/// The status pair of a history row or a project.
pub type Pair = (Option<String>, Option<String>);

/// What must hold after any sequence of cycles, crashes included: no duplicate history
/// row, every project's `history_seq` equals its number of history rows, each row's
/// `previous_*` equals the row before, consecutive rows differ, and the current row
/// matches the last history row. Returns each project's history as status pairs.
pub async fn check_invariants(store: &Store) -> std::collections::BTreeMap<String, Vec<Pair>> {
    use std::collections::BTreeMap;
    let history = rows(
        store,
        "SELECT project_id, seq, event, previous_status, status, previous_business_status, business_status
         FROM editing_project_history ORDER BY project_id, seq",
    )
    .await;
    let mut by_project: BTreeMap<String, Vec<Vec<Option<String>>>> = BTreeMap::new();
    for row in history {
        by_project
            .entry(row[0].clone().expect("id"))
            .or_default()
            .push(row);
    }
    let projects = rows(
        store,
        "SELECT project_id, status, business_status, history_seq, CASE WHEN removed_at IS NULL THEN 0 ELSE 1 END FROM editing_projects",
    )
    .await;
    assert_eq!(
        projects.len(),
        by_project.len(),
        "every stored project has history and vice versa"
    );
    let mut result = BTreeMap::new();
    for p in projects {
        let id = p[0].clone().expect("id");
        let hist = by_project
            .get(&id)
            .unwrap_or_else(|| panic!("{id} has no history"));
        let seqs: Vec<i64> = hist
            .iter()
            .map(|r| r[1].as_deref().and_then(|v| v.parse().ok()).expect("seq"))
            .collect();
        assert_eq!(
            seqs,
            (1..=hist.len() as i64).collect::<Vec<_>>(),
            "{id}: seq gaps or duplicates"
        );
        assert_eq!(
            p[3].as_deref(),
            Some(hist.len().to_string().as_str()),
            "{id}: history_seq"
        );
        let mut prev: Option<Pair> = None;
        let mut pairs = Vec::new();
        for r in hist {
            let event = r[2].as_deref().unwrap_or("");
            let pair: Pair = (r[4].clone(), r[6].clone());
            let recorded_prev: Pair = (r[3].clone(), r[5].clone());
            match (&prev, event) {
                (None, "first_seen") => assert_eq!(recorded_prev, (None, None), "{id}"),
                (Some(_), "returned") => assert_eq!(recorded_prev, (None, None), "{id}"),
                (Some(p), "changed") => {
                    assert_eq!(
                        &recorded_prev, p,
                        "{id}: previous_* must equal the row before"
                    );
                    assert_ne!(&pair, p, "{id}: a history row must be a change");
                }
                (Some(p), "removed") => assert_eq!(&recorded_prev, p, "{id}"),
                other => panic!("{id}: unexpected event order {other:?}"),
            }
            if event != "removed" {
                pairs.push(pair.clone());
            }
            prev = Some(pair);
        }
        let removed = p[4].as_deref() == Some("1");
        if !removed {
            assert_eq!(
                prev,
                Some((p[1].clone(), p[2].clone())),
                "{id}: current row = last history row"
            );
        }
        result.insert(id, pairs);
    }
    result
}

pub fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

/// A project ID from a test literal.
pub fn project_id(id: &str) -> ice_sync::domain::ProjectId {
    ice_sync::domain::ProjectId::parse(id).unwrap_or_else(|e| panic!("{e}"))
}

/// Project IDs from test literals.
pub fn project_ids<S: AsRef<str>>(ids: &[S]) -> Vec<ice_sync::domain::ProjectId> {
    ids.iter().map(|id| project_id(id.as_ref())).collect()
}

/// Polls `ids` now the way `ice-sync refresh` does in production: a poll request, then
/// a refresh cycle of `engine`, whose report is returned.
pub async fn poll_now<S: AsRef<str>>(
    engine: &Engine,
    ids: &[S],
) -> ice_sync::sync::engine::CycleReport {
    use ice_sync::storage::{RefreshSource, RefreshTarget};
    let store = engine.store();
    let now = match store.database_now().await.expect("database clock") {
        Some(now) => now,
        None => ice_sync::domain::Timestamp::from(ice_sync::clock::Clock::now(&**engine.clock())),
    };
    let target = RefreshTarget::Projects {
        ids: project_ids(ids),
        all_or_nothing: true,
    };
    store
        .refresh_queue()
        .queue_refreshes(&target, RefreshSource::Cli, now)
        .await
        .expect("request");
    let kind = ice_sync::sync::CycleKind::Refresh;
    engine.run(kind, &CancellationToken::new()).await
}

/// A scheduled cycle stops claiming a margin (30 s on the default 5-minute schedule)
/// before the next tick. Tests that run scheduled cycles on the production schedule and
/// expect them to finish wait here first if the next tick is that close.
pub async fn clear_of_the_claim_margin() {
    let into = chrono::Utc::now().timestamp_millis().rem_euclid(300_000) as u64;
    if into > 300_000 - 35_000 {
        tokio::time::sleep(std::time::Duration::from_millis(300_000 - into + 1_000)).await;
    }
}

/// Sleeps until `offset` into the next `period`-second window of the real clock (ticks of
/// an every-`period`-seconds schedule fall at the windows' starts).
pub async fn align_to(period: u64, offset: std::time::Duration) {
    use std::time::Duration;
    let now = chrono::Utc::now();
    let into = Duration::from_millis((now.timestamp_millis() as u64) % (period * 1000));
    let target = offset
        + if into < offset {
            Duration::ZERO
        } else {
            Duration::from_secs(period)
        };
    tokio::time::sleep(target.saturating_sub(into)).await;
}
