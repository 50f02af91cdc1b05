//! Storage guarantees that do not need the API: claims fence late writers, the
//! intervals view, config-tracked projects.

use std::time::Duration;

use ice_sync::contract::{Applied, ClaimScope, FailureJob, NextPoll, WriteJob};
use ice_sync::domain::Timestamp;
use ice_sync::ice::Project;
use ice_sync::storage::{ClaimRequest, Store};
use ice_sync::sync::diff::{self, Observation};

use crate::on_both_backends;
use crate::support::{picks_in_index_order, project_id, project_ids, s, spawn_app, Backend};

on_both_backends!(
    a_taken_over_claim_writes_nothing,
    a_late_failure_never_overwrites_the_successors_record,
    intervals_view_durations,
    config_projects_are_tracked_and_untracked,
    claims_read_tracked_projects_in_index_order,
    tracking_a_large_set_is_one_statement_with_the_same_counts,
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

fn job(plan: ice_sync::contract::Plan) -> WriteJob {
    WriteJob {
        plan,
        next: NextPoll {
            at: Timestamp::parse("2030-01-01T00:10:00Z").expect("ts"),
            attempted: Timestamp::parse("2030-01-01T00:10:00Z").expect("ts"),
            every_tick: true,
        },
    }
}

/// Claims `race1` for `owner` with a lease that is already over when the call returns,
/// so the next claimer can take the project over as if this one had stalled.
async fn claim_expired(store: &Store, owner: &str) -> ice_sync::contract::Stored {
    let now = ice_sync::app::now(store).await.expect("now");
    let mut claimed = store
        .claims()
        .claim_ids(&[project_id("race1")], owner, Duration::ZERO, now)
        .await
        .expect("claim");
    claimed.pop().expect("race1 is claimable")
}

async fn a_taken_over_claim_writes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    app.track(&["race1"]).await;
    let store = app.store();
    // Replica A claims, stalls past its lease; replica B claims and answers first.
    let a = claim_expired(store, "replica-a").await;
    let b = claim_expired(store, "replica-b").await;
    assert!(b.claim > a.claim, "each claim hands out a newer token");
    let from_b = diff::plan(&b, found("Produced", "2030-01-01T00:00:05Z"), 2);
    assert_eq!(
        store.writes().apply(&job(from_b), None).await.expect("b"),
        Applied::Written
    );
    // A's answer was sent earlier but arrives later; whatever its clock says, it is
    // fenced: no row, no history, no tracking update.
    let from_a = diff::plan(&a, found("Producing", "2030-01-01T00:09:00Z"), 2);
    assert_eq!(
        store.writes().apply(&job(from_a), None).await.expect("a"),
        Applied::Fenced
    );
    assert_eq!(
        app.rows("SELECT seq, status FROM editing_project_history ORDER BY seq")
            .await,
        vec![vec![s("1"), s("Produced")]]
    );
    assert_eq!(
        app.rows("SELECT status FROM editing_projects").await,
        vec![vec![s("Produced")]]
    );
    // Even a hand-made duplicate seq is refused by the schema itself.
    let dup = "INSERT INTO editing_project_history (project_id, seq, observed_at, event, status) \
               VALUES ('race1', 1, '2030-01-01T00:00:03.000Z', 'changed', 'X')";
    assert!(
        app.db.execute_script(dup).await.is_err(),
        "the unique (project_id, seq) key must refuse a duplicate"
    );
}

async fn a_late_failure_never_overwrites_the_successors_record(backend: Backend) {
    let app = spawn_app(backend).await;
    app.track(&["race1"]).await;
    let store = app.store();
    let a = claim_expired(store, "replica-a").await;
    let b = claim_expired(store, "replica-b").await;
    let from_b = diff::plan(&b, found("Editing", "2030-01-01T00:00:05Z"), 2);
    store.writes().apply(&job(from_b), None).await.expect("b");
    // A's retries ran out long after B succeeded: its failure record is fenced.
    let late = FailureJob {
        project_id: a.project_id.clone(),
        claim: a.claim,
        at: Timestamp::parse("2030-01-01T00:02:00Z").expect("ts"),
        error: "Throttling.User after 6 attempts".into(),
        next: NextPoll {
            at: Timestamp::parse("2030-01-01T01:00:00Z").expect("ts"),
            attempted: Timestamp::parse("2030-01-01T01:00:00Z").expect("ts"),
            every_tick: false,
        },
    };
    assert_eq!(
        store.writes().record_failure(&late).await.expect("failure"),
        Applied::Fenced
    );
    assert_eq!(
        app.rows("SELECT consecutive_failures, last_error FROM tracked_projects")
            .await,
        vec![vec![s("0"), None]]
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
    // The current rows the writer commits with that history: the open stretch is the
    // history row each one names (`history_seq`, migration 0012).
    for (id, seq, at) in [
        ("a", 3, "2030-01-01T01:10:30.500Z"),
        ("b", 2, "2030-01-01T00:05:00.000Z"),
        ("c", 1, "2030-01-02T00:00:00.000Z"),
    ] {
        app.execute(&format!(
            "INSERT INTO editing_project_rows (project_id, first_seen_at, last_polled_at, \
             last_changed_at, history_seq) VALUES ('{id}', {t}, {t}, {t}, {seq})",
            t = ts(at)
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
    let now = ice_sync::app::now(store).await.expect("now");
    assert_eq!(
        store
            .tracking()
            .sync_config_projects(&project_ids(&["c1", "c2", "c3"]), now)
            .await
            .expect("sync"),
        (3, 0)
    );
    store
        .tracking()
        .track_add(&project_ids(&["cli1"]), "cli", now)
        .await
        .expect("add");
    // `track add` of a project that came from the config makes it the user's own.
    assert_eq!(
        store
            .tracking()
            .track_add(&project_ids(&["c3"]), "cli", now)
            .await
            .expect("add"),
        1
    );
    // c2 and c3 leave the config: c2 is disabled (not deleted), c3 stays (added by
    // hand), cli1 is untouched.
    assert_eq!(
        store
            .tracking()
            .sync_config_projects(&project_ids(&["c1"]), now)
            .await
            .expect("sync"),
        (0, 1)
    );
    let list = store.tracking().track_list().await.expect("list");
    let view: Vec<(String, String, bool)> = list
        .into_iter()
        .map(|r| (r.project_id.to_string(), r.source, r.enabled))
        .collect();
    assert_eq!(
        view,
        vec![
            ("c1".into(), "config".into(), true),
            ("c2".into(), "config".into(), false),
            ("c3".into(), "cli".into(), true),
            ("cli1".into(), "cli".into(), true),
        ]
    );
    // A disabled config project listed again is enabled again; one listed twice counts once.
    assert_eq!(
        store
            .tracking()
            .sync_config_projects(&project_ids(&["c1", "c2", "c2"]), now)
            .await
            .expect("sync"),
        (1, 0)
    );
    let due = store
        .claims()
        .claim(&ClaimRequest {
            scope: ClaimScope::DueBy(now),
            cycle_start: now,
            limit: 100,
            owner: "test",
            lease_ttl: Duration::from_secs(60),
            now,
        })
        .await
        .expect("claim");
    let mut due: Vec<String> = due.iter().map(|d| d.project_id.to_string()).collect();
    due.sort();
    assert_eq!(due, vec!["c1", "c2", "c3", "cli1"]);
}

/// Most overdue first must come from `tracked_projects_due_idx`, not from sorting or
/// scanning the whole table each claim (the plan, read with EXPLAIN / EXPLAIN QUERY PLAN).
async fn claims_read_tracked_projects_in_index_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let store = app.store();
    let now = ice_sync::app::now(store).await.expect("now");
    let ids: Vec<String> = (0..2_000).map(|i| format!("p{i:05}")).collect();
    store
        .tracking()
        .sync_config_projects(&project_ids(&ids), now)
        .await
        .expect("track");
    app.execute("ANALYZE").await;
    for scope in [ClaimScope::DueBy(now), ClaimScope::All] {
        let plan = store
            .claims()
            .explain_claim(&ClaimRequest {
                scope,
                cycle_start: now,
                limit: 256,
                owner: "test",
                lease_ttl: Duration::from_secs(60),
                now,
            })
            .await
            .expect("explain")
            .join("\n");
        println!("{backend:?} {scope:?}:\n{plan}");
        assert!(
            picks_in_index_order(backend, &plan, "tracked_projects_due_idx"),
            "{backend:?} {scope:?}: due projects are not read in index order:\n{plan}"
        );
        assert!(
            plan.contains("tracked_projects_due_idx"),
            "{backend:?} {scope:?}:\n{plan}"
        );
    }
}

/// `track add/import/remove` send one statement per call whatever the number of IDs,
/// and count as the one-row statements did: duplicates and already tracked IDs are not
/// new, a disabled one is re-enabled, and taking over a config project counts.
async fn tracking_a_large_set_is_one_statement_with_the_same_counts(backend: Backend) {
    let app = spawn_app(backend).await;
    let store = app.store();
    let now = ice_sync::app::now(store).await.expect("now");
    let many: Vec<String> = (0..25_000).map(|n| format!("bulk{n:05}")).collect();
    let before = store.counters().statements;
    assert_eq!(
        store
            .tracking()
            .track_add(&project_ids(&many), "import", now)
            .await
            .expect("import"),
        25_000
    );
    assert_eq!(store.counters().statements - before, 1, "one statement");
    assert_eq!(
        store.tracking().count_tracked().await.expect("count"),
        25_000
    );

    store
        .tracking()
        .sync_config_projects(&project_ids(&["cfg1"]), now)
        .await
        .expect("config");
    store
        .tracking()
        .sync_config_projects(&project_ids::<&str>(&[]), now)
        .await
        .expect("config disables cfg1");
    // bulk00000 twice, bulk00001 tracked already, cfg1 disabled, new1 new: 2 counted.
    let again = project_ids(&["bulk00000", "bulk00000", "bulk00001", "cfg1", "new1"]);
    assert_eq!(
        store
            .tracking()
            .track_add(&again, "import", now)
            .await
            .expect("again"),
        2
    );
    let list = store.tracking().track_list().await.expect("list");
    let cfg1 = list
        .iter()
        .find(|r| r.project_id.as_str() == "cfg1")
        .expect("cfg1 listed");
    assert!(cfg1.enabled && cfg1.source == "import", "{cfg1:?}");

    let before = store.counters().statements;
    let removed = store
        .tracking()
        .track_remove(&project_ids(&many[..20_000]))
        .await
        .expect("remove");
    assert_eq!(removed, 20_000);
    assert_eq!(store.counters().statements - before, 1, "one statement");
    assert_eq!(
        store.tracking().count_tracked().await.expect("count"),
        5_002
    );
}
