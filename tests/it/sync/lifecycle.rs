//! A project's life, cycle by cycle, as the history table records it.

use crate::on_both_backends;
use crate::support::{s, spawn_app, Backend};

on_both_backends!(
    regular_project_walks_its_lifecycle,
    unchanged_cycle_writes_no_history,
    removed_project_and_its_return,
    live_project_business_status_only_changes,
    unknown_status_is_stored_verbatim,
    every_field_is_mirrored,
);

async fn regular_project_walks_its_lifecycle(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sim.add_regular("p1");
    app.track(&["p1"]).await;

    let first = app.cycle().await;
    assert_eq!((first.polled, first.transitions), (1, 1));
    for _ in 0..3 {
        assert!(app.sim.advance("p1"));
        let r = app.cycle().await;
        assert_eq!(r.transitions, 1, "{r:?}");
    }
    let final_status = app
        .sim
        .project("p1")
        .and_then(|p| p.status)
        .expect("status");
    assert!(final_status == "Produced" || final_status == "ProduceFailed");

    let h = app.history("p1").await;
    assert_eq!(
        h,
        vec![
            ("first_seen".into(), None, s("Draft"), None, None),
            ("changed".into(), s("Draft"), s("Editing"), None, None),
            ("changed".into(), s("Editing"), s("Producing"), None, None),
            (
                "changed".into(),
                s("Producing"),
                s(&final_status),
                None,
                None
            ),
        ]
    );
    // sync_runs has one row per cycle, and the history rows point at them.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sync_runs WHERE outcome = 'success'")
            .await,
        4
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM editing_project_history h JOIN sync_runs r ON r.id = h.sync_run_id").await,
        4
    );
}

async fn unchanged_cycle_writes_no_history(backend: Backend) {
    let app = spawn_app(backend).await;
    let ids = app.sim.populate(20, 5);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.track(&refs).await;
    let first = app.cycle().await;
    assert_eq!(first.transitions, 25);
    let before = app
        .count("SELECT COUNT(*) FROM editing_project_history")
        .await;
    let second = app.cycle().await;
    assert_eq!(
        (second.polled, second.changed, second.transitions),
        (25, 0, 0)
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM editing_project_history")
            .await,
        before
    );
    // Every project was polled twice, and the stored poll time moved.
    assert!(ids.iter().all(|id| app.sim.calls(id) == 2));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM editing_projects WHERE last_polled_at > first_seen_at")
            .await,
        25
    );
}

async fn removed_project_and_its_return(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sim.add_regular("gone1");
    app.track(&["gone1"]).await;
    app.cycle().await;
    let project = app.sim.remove("gone1").expect("existed");

    // One "not found" is not proof (the API's error is a generic InvalidParameter).
    let r = app.cycle().await;
    assert_eq!((r.transitions, r.removed), (0, 0));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM editing_projects WHERE removed_at IS NOT NULL")
            .await,
        0
    );
    let r = app.cycle().await;
    assert_eq!((r.transitions, r.removed), (1, 1));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM editing_projects WHERE removed_at IS NOT NULL")
            .await,
        1
    );
    // Still removed: no further rows.
    assert_eq!(app.cycle().await.transitions, 0);

    app.sim.restore(project);
    assert_eq!(app.cycle().await.transitions, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM editing_projects WHERE removed_at IS NOT NULL")
            .await,
        0
    );
    assert_eq!(
        app.history("gone1").await,
        vec![
            ("first_seen".into(), None, s("Draft"), None, None),
            ("removed".into(), s("Draft"), None, None, None),
            ("returned".into(), None, s("Draft"), None, None),
        ]
    );
    let status = app.store().reads().status().await.expect("status");
    assert_eq!(status[0].last_error, None);
}

async fn live_project_business_status_only_changes(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sim.add_live("live1");
    app.track(&["live1"]).await;
    app.cycle().await;
    app.sim
        .set_status("live1", Some("Editing"), Some("BroadCasting"));
    assert_eq!(app.cycle().await.transitions, 1);
    app.sim
        .set_status("live1", Some("Editing"), Some("LiveFinished"));
    assert_eq!(app.cycle().await.transitions, 1);
    assert_eq!(
        app.history("live1").await,
        vec![
            (
                "first_seen".into(),
                None,
                s("Editing"),
                None,
                s("Reserving")
            ),
            (
                "changed".into(),
                s("Editing"),
                s("Editing"),
                s("Reserving"),
                s("BroadCasting")
            ),
            (
                "changed".into(),
                s("Editing"),
                s("Editing"),
                s("BroadCasting"),
                s("LiveFinished")
            ),
        ]
    );
}

async fn unknown_status_is_stored_verbatim(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sim.add_regular("odd1");
    app.track(&["odd1"]).await;
    app.cycle().await;
    app.sim
        .set_status("odd1", Some("Archived2031"), Some("SomethingNew"));
    let r = app.cycle().await;
    assert_eq!((r.transitions, r.failures), (1, 0));
    assert_eq!(
        app.rows("SELECT status, business_status FROM editing_projects WHERE project_id = 'odd1'")
            .await,
        vec![vec![s("Archived2031"), s("SomethingNew")]]
    );
}

async fn every_field_is_mirrored(backend: Backend) {
    let app = spawn_app(backend).await;
    let raw = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/sample-responses/get-editing-project.template.json"
    ))
    .expect("sample");
    let body: ice_sync::ice::model::GetEditingProjectResponse =
        serde_json::from_str(&raw).expect("parse");
    let mut project = body.project.expect("project");
    project.project_id = s("tmpl1");
    project.duration = Some(30.04);
    project.business_config = s("{\"a\":1}");
    project.timeline_convert_error_message = s("boom ✂ \u{1}");
    app.sim.insert(project.clone());
    app.track(&["tmpl1"]).await;
    app.cycle().await;
    let rows = app
        .rows(
            "SELECT title, description, status, business_status, project_type, template_id, template_type,
                    clips_param, timeline, cover_url, create_source, modified_source, business_config,
                    timeline_convert_status, timeline_convert_error_message, last_request_id
             FROM editing_projects WHERE project_id = 'tmpl1'",
        )
        .await;
    let p = &project;
    let row = &rows[0];
    let expected = vec![
        p.title.clone(),
        p.description.clone(),
        p.status.clone(),
        p.business_status.clone(),
        p.project_type.clone(),
        p.template_id.clone(),
        p.template_type.clone(),
        p.clips_param.clone(),
        p.timeline.clone(),
        p.cover_url.clone(),
        p.create_source.clone(),
        p.modified_source.clone(),
        p.business_config.clone(),
        p.timeline_convert_status.clone(),
        p.timeline_convert_error_message.clone(),
    ];
    assert_eq!(&row[..15], &expected[..]);
    assert!(row[15].is_some(), "the request id is stored");
    assert_eq!(
        app.rows("SELECT duration FROM editing_projects WHERE project_id = 'tmpl1'")
            .await,
        vec![vec![s("30.04")]]
    );
    // CreateTime / ModifiedTime are real timestamps on both backends.
    let create = match backend {
        Backend::Sqlite => "SELECT create_time FROM editing_projects",
        Backend::Postgres => {
            "SELECT to_char(create_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM editing_projects"
        }
    };
    assert_eq!(
        app.rows(create).await,
        vec![vec![s("2024-05-18T02:11:09.000Z")]]
    );
}
