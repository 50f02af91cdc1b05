//! The analytics facts of migration 0012 (closed stretches, lead facts, daily rollups) equal
//! a recomputation from history (`Store::facts_drift`): when the real writer produced the
//! history, when the backfill built them from a history written before 0012, and when the
//! history trigger built them from the hand-written fixture. The crash case is in
//! sync/process.rs (SIGKILL at random points, then this same check).

use ice_sync::storage::Store;
use ice_testkit::Collation;

use crate::analytics::fixture::{projects_fixture_sql, FixtureDb};
use crate::on_both_backends;
use crate::support::{spawn_app, Backend, TestDatabase};

on_both_backends!(
    facts_follow_the_writer_through_lifecycles,
    backfill_builds_the_facts_of_an_existing_history,
    trigger_builds_the_facts_of_the_fixture,
);

/// Every facts table equals its recomputation from history, naming the first that does not.
pub async fn assert_facts_match_history(store: &Store) {
    let drift = store.facts_drift().await.expect("facts_drift");
    assert!(
        drift.iter().all(|(_, rows)| *rows == 0),
        "{}: facts differ from history (rows per table): {drift:?}",
        store.backend()
    );
}

async fn rows_of(store: &Store, table: &str) -> i64 {
    store
        .query_i64(&format!("SELECT COUNT(*) FROM {table}"))
        .await
        .expect("count")
}

/// Regular and live projects through several cycles, with removals and a return.
async fn facts_follow_the_writer_through_lifecycles(backend: Backend) {
    let app = spawn_app(backend).await;
    let ids = app.sim.populate(30, 10);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.track(&refs).await;
    app.cycle().await;
    for round in 0..6 {
        app.sim.advance_random(0.6);
        if round == 2 {
            let gone = app.sim.remove(&ids[0]).expect("exists");
            app.sim.remove(&ids[1]).expect("exists");
            app.cycle().await;
            app.sim.restore(gone);
        }
        app.cycle().await;
        assert_facts_match_history(app.store()).await;
    }
    let store = app.store();
    assert_eq!(rows_of(store, "editing_project_lead_facts").await, 40);
    assert!(rows_of(store, "editing_project_stretches").await > 40);
    assert_eq!(
        rows_of(store, "editing_project_history").await,
        store
            .query_i64("SELECT SUM(transitions) FROM editing_project_daily_counts")
            .await
            .expect("sum")
    );
}

/// A database at migration 0010 (the last release before the facts) holding the fixture's
/// history is upgraded: the facts are built from it, and the views answer as before.
async fn backfill_builds_the_facts_of_an_existing_history(backend: Backend) {
    let db = TestDatabase::create(backend, Collation::Bytewise)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let store = Store::connect(&db.settings(2)).await.expect("connect");
    db.migrate_through(10).await.expect("migrate to 0010");
    let intervals = "SELECT COUNT(*) FROM editing_project_status_intervals
                     WHERE left_at IS NOT NULL";
    db.execute_script(&projects_fixture_sql())
        .await
        .expect("fixture");
    let closed_before = store.query_i64(intervals).await.expect("before");
    assert_eq!(store.migrate().await.expect("migrate"), later(&store).await);
    assert_facts_match_history(&store).await;
    assert_eq!(
        rows_of(&store, "editing_project_stretches").await,
        closed_before
    );
    assert_eq!(
        store.query_i64(intervals).await.expect("after"),
        closed_before
    );
    assert_eq!(rows_of(&store, "editing_project_lead_facts").await, 14);
    store.close().await;
}

/// Migrations after 0010: what the upgrade applied (0012's facts and other features' ones).
async fn later(store: &Store) -> usize {
    store
        .query_i64("SELECT COUNT(*) FROM _sqlx_migrations WHERE version > 10")
        .await
        .expect("migrations") as usize
}

async fn trigger_builds_the_facts_of_the_fixture(backend: Backend) {
    let db = FixtureDb::load(backend).await;
    assert_facts_match_history(&db.store).await;
    // (UTC day ended, status pair) of the fixture's 24 finished stretches: 4 on the 1st
    // (Reserving, Draft, Editing, Producing), 7 on the 2nd, 4 on the 3rd.
    let pairs =
        "(SELECT DISTINCT day, status, business_status FROM editing_project_stretch_days) d";
    assert_eq!(rows_of(&db.store, pairs).await, 15);
    db.finish().await;
}
