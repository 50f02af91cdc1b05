//! Storage guarantees that do not need the API: compare-and-set against racing
//! writers, the intervals view, config-tracked projects.

use ice_sync::domain::Timestamp;
use ice_sync::ice::Project;
use ice_sync::storage::Applied;
use ice_sync::sync::diff::{self, Observation, Plan};

use crate::on_both_backends;
use crate::support::{s, spawn_app, Backend};

on_both_backends!(
    racing_writers_never_duplicate_history,
    stale_answer_never_overwrites_newer_state,
    intervals_view_durations,
    config_projects_are_tracked_and_untracked,
);

fn found(status: &str, at: &str) -> Observation {
    Observation::Found {
        project: Box::new(Project {
            project_id: s("race1"),
            status: s(status),
            ..Default::default()
        }),
        request_id: s("req"),
        polled_at: Timestamp::parse(at).expect("ts"),
    }
}

async fn racing_writers_never_duplicate_history(backend: Backend) {
    let app = spawn_app(backend).await;
    app.track(&["race1"]).await;
    let store = app.store();
    let stored = store.load("race1").await.expect("load").expect("tracked");
    // Two writers read the same state and both plan seq 1.
    let a = diff::plan(&stored, found("Draft", "2030-01-01T00:00:01Z"), 2);
    let b = diff::plan(&stored, found("Editing", "2030-01-01T00:00:02Z"), 2);
    assert_eq!(
        store.apply(&a, None, None).await.expect("a"),
        Applied::Written
    );
    assert_eq!(
        store.apply(&b, None, None).await.expect("b"),
        Applied::Conflict
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM editing_project_history")
            .await,
        1
    );
    // Re-planned from a fresh read, b applies as the next seq.
    let fresh = store.load("race1").await.expect("load").expect("row");
    let b2 = diff::plan(&fresh, found("Editing", "2030-01-01T00:00:02Z"), 2);
    assert_eq!(
        store.apply(&b2, None, None).await.expect("b2"),
        Applied::Written
    );
    assert_eq!(
        app.rows("SELECT seq, status FROM editing_project_history ORDER BY seq")
            .await,
        vec![vec![s("1"), s("Draft")], vec![s("2"), s("Editing")]]
    );
    // Even a hand-made duplicate seq is refused by the schema itself.
    let dup = "INSERT INTO editing_project_history (project_id, seq, observed_at, event, status) \
               VALUES ('race1', 2, '2030-01-01T00:00:03.000Z', 'changed', 'X')";
    let refused = match store {
        ice_sync::storage::Store::Sqlite(s) => sqlx::query(dup).execute(&s.pool).await.is_err(),
        ice_sync::storage::Store::Postgres(s) => sqlx::query(dup).execute(&s.pool).await.is_err(),
    };
    assert!(
        refused,
        "the unique (project_id, seq) key must refuse a duplicate"
    );
}

async fn stale_answer_never_overwrites_newer_state(backend: Backend) {
    let app = spawn_app(backend).await;
    app.track(&["race1"]).await;
    let store = app.store();
    let stored = store.load("race1").await.expect("load").expect("tracked");
    // The request sent later answered first ...
    let newer = diff::plan(&stored, found("Produced", "2030-01-01T00:00:05Z"), 2);
    store.apply(&newer, None, None).await.expect("newer");
    // ... then the earlier one arrives, planned from the state it read before.
    let older = diff::plan(&stored, found("Producing", "2030-01-01T00:00:04Z"), 2);
    assert_eq!(
        store.apply(&older, None, None).await.expect("older"),
        Applied::Conflict
    );
    let fresh = store.load("race1").await.expect("load").expect("row");
    assert_eq!(
        diff::plan(&fresh, found("Producing", "2030-01-01T00:00:04Z"), 2),
        Plan::Stale
    );
    assert_eq!(
        app.rows("SELECT status FROM editing_projects").await,
        vec![vec![s("Produced")]]
    );
}

async fn intervals_view_durations(backend: Backend) {
    let app = spawn_app(backend).await;
    let ts = |t: &str| match backend {
        Backend::Sqlite => format!("'{t}'"),
        Backend::Postgres => format!("TIMESTAMPTZ '{t}'"),
    };
    let rows = [
        (
            "a",
            1,
            "2030-01-01T00:00:00.000Z",
            "first_seen",
            Some("Draft"),
            None,
        ),
        (
            "a",
            2,
            "2030-01-01T00:10:00.000Z",
            "changed",
            Some("Producing"),
            None,
        ),
        (
            "a",
            3,
            "2030-01-01T01:10:30.500Z",
            "changed",
            Some("Produced"),
            None,
        ),
        (
            "b",
            1,
            "2030-01-01T00:00:00.000Z",
            "first_seen",
            Some("Editing"),
            Some("Reserving"),
        ),
        ("b", 2, "2030-01-01T00:05:00.000Z", "removed", None, None),
        (
            "c",
            1,
            "2030-01-02T00:00:00.000Z",
            "first_seen",
            Some("Draft"),
            None,
        ),
    ];
    for (id, seq, at, event, status, business) in rows {
        let q = |v: Option<&str>| v.map_or("NULL".to_string(), |v| format!("'{v}'"));
        app.execute(&format!(
            "INSERT INTO editing_project_history (project_id, seq, observed_at, event, status, business_status) \
             VALUES ('{id}', {seq}, {}, '{event}', {}, {})",
            ts(at),
            q(status),
            q(business)
        ))
        .await;
    }
    let got = app
        .rows(
            "SELECT project_id, status, business_status, duration_seconds,
                    CASE WHEN left_at IS NULL THEN 'open' ELSE 'closed' END
             FROM editing_project_status_intervals ORDER BY project_id, entered_at",
        )
        .await;
    assert_eq!(
        got,
        vec![
            vec![s("a"), s("Draft"), None, s("600"), s("closed")],
            vec![s("a"), s("Producing"), None, s("3630.5"), s("closed")],
            vec![s("a"), s("Produced"), None, None, s("open")],
            // Removal closes the stretch before it and opens none.
            vec![s("b"), s("Editing"), s("Reserving"), s("300"), s("closed")],
            vec![s("c"), s("Draft"), None, None, s("open")],
        ]
    );
}

async fn config_projects_are_tracked_and_untracked(backend: Backend) {
    let app = spawn_app(backend).await;
    let store = app.store();
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        store
            .sync_config_projects(&ids(&["c1", "c2"]))
            .await
            .expect("sync"),
        (2, 0)
    );
    store.track_add(&ids(&["cli1"]), "cli").await.expect("add");
    // c2 leaves the config: disabled, not deleted; cli1 is untouched.
    assert_eq!(
        store
            .sync_config_projects(&ids(&["c1"]))
            .await
            .expect("sync"),
        (0, 1)
    );
    let list = store.track_list().await.expect("list");
    let view: Vec<(String, String, bool)> = list
        .into_iter()
        .map(|r| (r.project_id, r.source, r.enabled))
        .collect();
    assert_eq!(
        view,
        vec![
            ("c1".into(), "config".into(), true),
            ("c2".into(), "config".into(), false),
            ("cli1".into(), "cli".into(), true),
        ]
    );
    let due = store.due_projects(Timestamp::now()).await.expect("due");
    assert_eq!(
        due.iter()
            .map(|d| d.project_id.as_str())
            .collect::<Vec<_>>(),
        vec!["c1", "cli1"]
    );
}
