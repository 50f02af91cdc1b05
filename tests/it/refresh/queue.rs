//! The queue itself, driven by hand: what a request marks, what claims it, and that any
//! claim serves it (a poll is a poll).

use ice_sync::storage::{RefreshSource, RefreshTarget};
use ice_sync::sync::{CycleKind, CycleOutcome};

use crate::on_both_backends;
use crate::support::{picks_in_index_order, project_ids, rows, spawn_app, Backend, TestApp};

on_both_backends!(
    a_request_is_polled_once_by_a_requested_cycle,
    unknown_ids_are_reported_and_all_or_nothing_requests_nothing,
    all_and_status_select_the_right_projects,
    a_scheduled_claim_serves_a_pending_request,
    requested_claims_read_the_queue_in_index_order,
);

fn projects(ids: &[&str], all_or_nothing: bool) -> RefreshTarget {
    RefreshTarget::Projects {
        ids: project_ids(ids),
        all_or_nothing,
    }
}

async fn request(app: &TestApp, target: RefreshTarget) -> ice_sync::storage::RefreshOutcome {
    let now = ice_sync::app::now(app.store()).await.expect("now");
    app.store()
        .refresh_queue()
        .queue_refreshes(&target, RefreshSource::Cli, now)
        .await
        .expect("request")
}

/// Projects with a request pending, in ID order.
async fn pending(app: &TestApp) -> Vec<String> {
    rows(
        app.store(),
        "SELECT project_id FROM tracked_projects WHERE requested_at IS NOT NULL ORDER BY project_id",
    )
    .await
    .into_iter()
    .map(|r| r[0].clone().unwrap_or_default())
    .collect()
}

fn names(ids: &[ice_sync::domain::ProjectId]) -> Vec<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

async fn a_request_is_polled_once_by_a_requested_cycle(backend: Backend) {
    let app = spawn_app(backend).await;
    for id in ["a", "b", "c"] {
        app.sim.add_regular(id);
    }
    app.track(&["a", "b", "c"]).await;
    assert_eq!(
        app.cycle().await.polled,
        3,
        "the first cycle polls everything"
    );

    // Nothing requested: a refresh cycle claims nothing, and leaves no run behind.
    let idle = app.engine.run(CycleKind::Refresh, &app.shutdown).await;
    assert_eq!(
        (idle.polled, idle.outcome, idle.run_id),
        (0, CycleOutcome::Success, None)
    );

    app.sim.set_status("b", Some("Producing"), None);
    let outcome = request(&app, projects(&["b"], true)).await;
    assert_eq!(names(&outcome.requested), ["b"]);
    assert!(outcome.unknown.is_empty());
    assert_eq!(pending(&app).await, ["b"]);
    let before: Vec<u64> = ["a", "b", "c"].iter().map(|id| app.sim.calls(id)).collect();

    let report = app.engine.run(CycleKind::Refresh, &app.shutdown).await;
    assert_eq!(
        (report.polled, report.changed, report.outcome),
        (1, 1, CycleOutcome::Success)
    );
    let after: Vec<u64> = ["a", "b", "c"].iter().map(|id| app.sim.calls(id)).collect();
    assert_eq!(
        after,
        vec![before[0], before[1] + 1, before[2]],
        "only b polled"
    );
    assert!(
        pending(&app).await.is_empty(),
        "the claim cleared the request"
    );
    let last = app.history("b").await.pop().expect("history");
    assert_eq!(
        last.2.as_deref(),
        Some("Producing"),
        "the poll wrote the change"
    );

    // Recorded like any cycle, with what started it, under the replica's own id.
    let runs = rows(
        app.store(),
        "SELECT trigger, projects_polled, replica_id FROM sync_runs ORDER BY id",
    )
    .await;
    let triggers: Vec<(Option<String>, Option<String>)> =
        runs.iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        triggers,
        vec![(some("scheduled"), some("3")), (some("request"), some("1"))]
    );
    assert_eq!(
        runs[1][2].as_deref(),
        Some(app.engine.options().replica_id.as_str())
    );
    let leased = app
        .count("SELECT count(*) FROM tracked_projects WHERE lease_owner IS NOT NULL")
        .await;
    assert_eq!(leased, 0, "every lease given back");

    // A second refresh cycle finds nothing: one request, one poll.
    let again = app.engine.run(CycleKind::Refresh, &app.shutdown).await;
    assert_eq!(again.polled, 0);
    assert_eq!(app.sim.calls("b"), before[1] + 1);
}

async fn unknown_ids_are_reported_and_all_or_nothing_requests_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    app.track(&["a", "b"]).await;
    app.execute("UPDATE tracked_projects SET enabled = FALSE WHERE project_id = 'b'")
        .await;

    let strict = request(&app, projects(&["a", "ghost", "b"], true)).await;
    assert!(strict.requested.is_empty(), "{strict:?}");
    assert_eq!(
        names(&strict.unknown),
        ["b", "ghost"],
        "disabled counts as unknown"
    );
    assert!(
        pending(&app).await.is_empty(),
        "all or nothing: nothing requested"
    );

    let lenient = request(&app, projects(&["ghost", "a", "a"], false)).await;
    assert_eq!(names(&lenient.requested), ["a"]);
    assert_eq!(names(&lenient.unknown), ["ghost"]);
    assert_eq!(pending(&app).await, ["a"]);

    // A second request keeps the first one's time: the queue stays in order.
    let first = rows(
        app.store(),
        "SELECT CAST(requested_at AS TEXT) FROM tracked_projects WHERE project_id = 'a'",
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    request(&app, projects(&["a"], true)).await;
    let second = rows(
        app.store(),
        "SELECT CAST(requested_at AS TEXT) FROM tracked_projects WHERE project_id = 'a'",
    )
    .await;
    assert_eq!(first, second);

    // Tracking and requesting in one call (what a callback for a new project does).
    let now = ice_sync::app::now(app.store()).await.expect("now");
    let tracked = app
        .store()
        .refresh_queue()
        .track_and_refresh(
            &project_ids(&["newcomer", "a"]),
            "callback",
            RefreshSource::Callback,
            now,
        )
        .await
        .expect("track and request");
    assert_eq!(tracked.tracked, 1);
    assert_eq!(names(&tracked.requested), ["a", "newcomer"]);
    assert!(tracked.unknown.is_empty());
    assert_eq!(pending(&app).await, ["a", "newcomer"]);
    let source = rows(
        app.store(),
        "SELECT source FROM tracked_projects WHERE project_id = 'newcomer'",
    )
    .await;
    assert_eq!(source, vec![vec![Some("callback".to_string())]]);
}

async fn all_and_status_select_the_right_projects(backend: Backend) {
    let app = spawn_app(backend).await;
    for id in ["draft", "producing", "produced", "live", "off"] {
        app.sim.add_regular(id);
    }
    app.sim.set_status("producing", Some("Producing"), None);
    app.sim.set_status("produced", Some("Produced"), None);
    app.sim
        .set_status("live", Some("Editing"), Some("Producing"));
    app.track(&["draft", "producing", "produced", "live", "off"])
        .await;
    app.cycle().await;
    app.execute("UPDATE tracked_projects SET enabled = FALSE WHERE project_id = 'off'")
        .await;

    // Status or business status: both name a state a project can be in.
    let by_status = request(&app, RefreshTarget::Status("Producing".into())).await;
    assert_eq!(names(&by_status.requested), ["live", "producing"]);
    assert_eq!(pending(&app).await, ["live", "producing"]);
    let none = request(&app, RefreshTarget::Status("NoSuchState".into())).await;
    assert!(none.requested.is_empty());

    let all = request(&app, RefreshTarget::AllEnabled).await;
    assert_eq!(
        names(&all.requested),
        ["draft", "live", "produced", "producing"],
        "every enabled project, the disabled one not"
    );
    let report = app.engine.run(CycleKind::Refresh, &app.shutdown).await;
    assert_eq!(report.polled, 4);
    assert!(pending(&app).await.is_empty());
}

async fn a_scheduled_claim_serves_a_pending_request(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sim.add_regular("a");
    app.track(&["a"]).await;
    app.cycle().await;
    request(&app, projects(&["a"], true)).await;
    let before = app.sim.calls("a");
    // Every project is due at every cycle here (no schedule): the scheduled claim polls
    // it, and that poll is the one the request asked for.
    assert_eq!(app.cycle().await.polled, 1);
    assert!(pending(&app).await.is_empty());
    let requested = app.engine.run(CycleKind::Refresh, &app.shutdown).await;
    assert_eq!(requested.polled, 0, "no second poll");
    assert_eq!(app.sim.calls("a"), before + 1);

    // `run --once --all` and a refresh cycle of that one ID clear it the same way.
    request(&app, projects(&["a"], true)).await;
    app.engine.run(CycleKind::All, &app.shutdown).await;
    assert!(pending(&app).await.is_empty());
    request(&app, projects(&["a"], true)).await;
    app.engine.run(CycleKind::Refresh, &app.shutdown).await;
    assert!(pending(&app).await.is_empty());
    assert_eq!(app.sim.calls("a"), before + 3);
}

/// The requested claim reads the queue's partial index in order: no scan, no sort, at
/// any number of tracked projects.
async fn requested_claims_read_the_queue_in_index_order(backend: Backend) {
    use ice_sync::contract::ClaimScope;
    use ice_sync::storage::ClaimRequest;
    let app = spawn_app(backend).await;
    let store = app.store();
    let now = ice_sync::app::now(store).await.expect("now");
    let ids: Vec<String> = (0..2_000).map(|i| format!("p{i:05}")).collect();
    store
        .tracking()
        .sync_config_projects(&project_ids(&ids), now)
        .await
        .expect("track");
    request(&app, projects(&["p00007", "p01000"], true)).await;
    app.execute("ANALYZE").await;
    let plan = store
        .claims()
        .explain_claim(&ClaimRequest {
            scope: ClaimScope::Refresh,
            cycle_start: now,
            limit: 256,
            owner: "test",
            lease_ttl: std::time::Duration::from_secs(60),
            now,
        })
        .await
        .expect("explain")
        .join("\n");
    println!("{backend:?} requested claim:\n{plan}");
    assert!(
        picks_in_index_order(backend, &plan, "tracked_projects_requested_idx"),
        "{backend:?}: requested projects are not read in queue order:\n{plan}"
    );
}
