//! List mode: change detection from `ListEditingProjects`, discovery, and the promise
//! that it records the same history as get mode for a fraction of the API calls.

use std::sync::Arc;

use ice_sync::app;
use ice_sync::config;
use ice_sync::sync::engine::Engine;

use crate::on_both_backends;
use crate::support::{check_invariants, env_for, spawn_app, Backend, TestApp, TestDatabase};

on_both_backends!(
    list_mode_records_the_same_history_as_get_mode,
    list_mode_costs_pages_plus_changes,
    discovery_tracks_what_the_filtered_list_shows,
);

/// A list-mode daemon on its own database, against `app`'s simulator, with the
/// production schedule so full refreshes are spread over a day.
async fn list_engine(
    app: &TestApp,
    backend: Backend,
    extra: &[(&str, &str)],
) -> (Arc<Engine>, TestDatabase) {
    let db = TestDatabase::new(backend).await;
    let mut env = vec![("ICE_SYNC__SYNC__MODE", "list")];
    env.extend_from_slice(extra);
    let settings = config::load_from(None, env_for(&db.url, &app.sim, &env)).expect("settings");
    crate::support::clear_of_the_claim_margin().await;
    let engine = app::prepare_engine(&settings).await.expect("engine");
    (engine, db)
}

async fn list_mode_records_the_same_history_as_get_mode(backend: Backend) {
    let app = spawn_app(backend).await; // get mode, every project every cycle
    let ids = app.sim.populate(240, 60);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.track(&refs).await;
    let (list, _db) = list_engine(&app, backend, &[]).await;
    list.store()
        .track_add(
            &crate::support::project_ids(&ids),
            "cli",
            ice_sync::domain::Timestamp::now(),
        )
        .await
        .expect("track");
    for cycle in 0..8 {
        if cycle > 0 {
            app.sim.advance_random(0.2);
        }
        let g = app.cycle().await;
        let l = list.run_cycle(&app.shutdown).await;
        assert_eq!(
            g.transitions, l.transitions,
            "cycle {cycle}: get {g:?} list {l:?}"
        );
    }
    let by_get = check_invariants(app.store()).await;
    let by_list = check_invariants(list.store()).await;
    assert_eq!(by_get, by_list, "same script, same history");
    // The full rows agree too: the list's changes were refreshed by GetEditingProject.
    let row_sql =
        "SELECT project_id, status, business_status, title, timeline, duration, cover_url \
                   FROM editing_projects ORDER BY project_id";
    assert_eq!(
        crate::support::rows(app.store(), row_sql).await,
        crate::support::rows(list.store(), row_sql).await
    );
}

async fn list_mode_costs_pages_plus_changes(backend: Backend) {
    // ICE_SYNC_LIST_PROJECTS=10000 reproduces the 10,000-project figure.
    let n: usize = std::env::var("ICE_SYNC_LIST_PROJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let app = spawn_app(backend).await;
    let ids = app.sim.populate(n - n / 10, n / 10);
    let (list, _db) = list_engine(&app, backend, &[]).await;
    list.store()
        .track_add(
            &crate::support::project_ids(&ids),
            "cli",
            ice_sync::domain::Timestamp::now(),
        )
        .await
        .expect("track");
    let first = list.run_cycle(&app.shutdown).await;
    assert_eq!(
        first.transitions, n as u64,
        "the first sweep sees everything"
    );
    let mut worst = 0u64;
    for _ in 0..3 {
        let (lists, gets) = (
            app.sim.calls_by_action("ListEditingProjects"),
            app.sim.calls_by_action("GetEditingProject"),
        );
        let moved = app.sim.advance_random(0.01) as u64;
        let r = list.run_cycle(&app.shutdown).await;
        let list_calls = app.sim.calls_by_action("ListEditingProjects") - lists;
        let get_calls = app.sim.calls_by_action("GetEditingProject") - gets;
        assert_eq!(list_calls, n.div_ceil(100) as u64, "100 projects per page");
        assert_eq!(get_calls, moved, "one fetch per changed project");
        assert_eq!(r.transitions, moved, "{r:?}");
        worst = worst.max(list_calls + get_calls);
    }
    println!("list mode ({backend:?}): at most {worst} API calls per cycle for {n} projects, 1% changing (get mode: {n})");
}

async fn discovery_tracks_what_the_filtered_list_shows(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sim.populate(30, 20);
    let (list, _db) = list_engine(
        &app,
        backend,
        &[
            ("ICE_SYNC__SYNC__DISCOVER", "true"),
            ("ICE_SYNC__SYNC__LIST__PROJECT_TYPE", "LiveEditingProject"),
        ],
    )
    .await;
    let r = list.run_cycle(&app.shutdown).await;
    assert_eq!(r.transitions, 20, "{r:?}");
    let tracked = list.store().track_list().await.expect("list");
    assert_eq!(tracked.len(), 20);
    assert!(tracked
        .iter()
        .all(|t| t.source == "discovered" && t.enabled));
    // Discovered projects were fetched in full (the list has no Timeline).
    let store = list.store();
    assert_eq!(
        crate::support::count(
            store,
            "SELECT COUNT(*) FROM editing_projects WHERE timeline IS NOT NULL AND project_type = 'LiveEditingProject'"
        )
        .await,
        20
    );
    // A second sweep with nothing new discovers nothing and fetches nothing.
    let gets = app.sim.calls_by_action("GetEditingProject");
    let again = list.run_cycle(&app.shutdown).await;
    assert_eq!((again.transitions, again.polled), (0, 0), "{again:?}");
    assert_eq!(app.sim.calls_by_action("GetEditingProject"), gets);
    check_invariants(store).await;
}
