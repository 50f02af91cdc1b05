//! Adaptive polling (due times per status, per-project backoff) and batched writes
//! (unchanged projects cost almost nothing; a batch commits whole or not at all).

use ice_sim::FaultConfig;
use ice_sync::contract::{Applied, HistoryEntry, HistoryEvent, NextPoll, Plan, WriteJob};
use ice_sync::domain::Timestamp;
use ice_sync::ice::Project;
use ice_sync::storage::Store;
use ice_sync::sync::diff::{self, Observation};

use crate::on_both_backends;
use crate::support::{check_invariants, project_id, s, spawn_app, Backend, TestApp};

on_both_backends!(
    due_times_follow_status,
    failing_projects_back_off_alone,
    a_failed_batch_writes_nothing,
);

/// The production engine (schedule `0 */5 * * * *`), on the test app's store.
async fn scheduled_engine(app: &TestApp) -> ice_sync::sync::engine::Engine {
    crate::support::clear_of_the_claim_margin().await;
    let creds = ice_sync::app::resolve_credentials(&app.settings).expect("creds");
    let client = ice_sync::app::build_client(&app.settings, creds).expect("client");
    ice_sync::sync::engine::Engine::new(
        app.store().clone(),
        client,
        ice_sync::app::engine_options(&app.settings),
    )
}

/// Seconds from now until each project is due, by project.
async fn due_in(app: &TestApp) -> std::collections::BTreeMap<String, i64> {
    let sql = match app.store().backend() {
        "sqlite" => {
            "SELECT project_id, CAST(unixepoch(next_poll_at) - unixepoch('now') AS INTEGER) FROM tracked_projects"
        }
        _ => {
            "SELECT project_id, CAST(EXTRACT(EPOCH FROM next_poll_at - now()) AS BIGINT) FROM tracked_projects"
        }
    };
    app.rows(sql)
        .await
        .into_iter()
        .map(|r| {
            (
                r[0].clone().unwrap_or_default(),
                r[1].as_deref()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(i64::MIN),
            )
        })
        .collect()
}

async fn shift_due_times(app: &TestApp, seconds: i64) {
    let sql = match app.store().backend() {
        "sqlite" => format!(
            "UPDATE tracked_projects SET next_poll_at = strftime('%Y-%m-%dT%H:%M:%fZ', next_poll_at, '{:+} seconds')",
            -seconds
        ),
        _ => format!(
            "UPDATE tracked_projects SET next_poll_at = next_poll_at - interval '{seconds} seconds'"
        ),
    };
    app.execute(&sql).await;
}

async fn due_times_follow_status(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sim.add_regular("producing");
    app.sim.set_status("producing", Some("Producing"), None);
    app.sim.add_regular("produced");
    app.sim.set_status("produced", Some("Produced"), None);
    app.sim.add_live("live-on");
    app.sim.set_status("live-on", None, Some("BroadCasting"));
    app.sim.add_live("live-done");
    app.sim.set_status("live-done", None, Some("LiveFinished"));
    app.track(&["producing", "produced", "live-on", "live-done"])
        .await;
    let engine = scheduled_engine(&app).await;

    let first = engine.run_cycle(&app.shutdown).await;
    assert_eq!(first.polled, 4, "never-polled projects are due at once");
    let due = due_in(&app).await;
    // Transient: before the next 5-minute tick. Settled: in about an hour.
    for id in ["producing", "live-on"] {
        assert!((-1..=300).contains(&due[id]), "{id}: due in {}s", due[id]);
    }
    for id in ["produced", "live-done"] {
        assert!(
            (3400..=3600).contains(&due[id]),
            "{id}: due in {}s",
            due[id]
        );
    }
    // Nothing is due again within this period.
    assert_eq!(engine.run_cycle(&app.shutdown).await.polled, 0);
    // Ten minutes later (two ticks): the transient ones only.
    shift_due_times(&app, 600).await;
    let later = engine.run_cycle(&app.shutdown).await;
    assert_eq!(later.polled, 2, "{later:?}");
    assert_eq!(app.sim.calls("producing"), 2);
    assert_eq!(app.sim.calls("produced"), 1);
    // An hour later: everyone.
    shift_due_times(&app, 3600).await;
    assert_eq!(engine.run_cycle(&app.shutdown).await.polled, 4);
}

async fn failing_projects_back_off_alone(backend: Backend) {
    let app = spawn_app(backend).await;
    let ids = app.sim.populate(3, 0);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.track(&refs).await;
    let engine = scheduled_engine(&app).await;
    app.sim.set_faults(FaultConfig {
        server_error: 1.0,
        ..Default::default()
    });
    let mut waits = Vec::new();
    for _ in 0..3 {
        let r = engine.run_cycle(&app.shutdown).await;
        assert_eq!(r.failures, 3);
        let due = due_in(&app).await;
        waits.push(due[&ids[0]]);
        // Jump past the tick after it is due again (a cycle claims what was due at its
        // latest tick).
        shift_due_times(&app, due[&ids[0]] + 301).await;
    }
    // 5 min, then 10, then 20 (each less the 75 s grace), less the seconds the retries
    // of the failing cycle took.
    let expected = [225, 525, 1125];
    for (got, want) in waits.iter().zip(expected) {
        assert!((want - 15..=want).contains(got), "waits {waits:?}");
    }
    assert_eq!(
        app.count("SELECT MAX(consecutive_failures) FROM tracked_projects")
            .await,
        3
    );
    // A healthy newcomer is not held back by the failing ones.
    app.sim.set_faults(FaultConfig::default());
    app.sim.add_regular("fresh");
    app.track(&["fresh"]).await;
    shift_due_times(&app, -10_000).await; // the failing ones are far from due
    let r = engine.run_cycle(&app.shutdown).await;
    assert_eq!((r.polled, r.failures), (1, 0), "{r:?}");
}

async fn plan_for(store: &Store, id: &str) -> Plan {
    let stored = store
        .tracking()
        .load(&project_id(id))
        .await
        .expect("load")
        .expect("tracked");
    let observation = Observation::Found {
        project: Box::new(Project {
            project_id: s(id),
            status: s("Draft"),
            ..Default::default()
        }),
        request_id: s("r"),
        polled_at: Timestamp::parse("2030-01-01T00:00:00Z").expect("ts"),
    };
    diff::plan(&stored, observation, 2)
}

async fn a_failed_batch_writes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    app.track(&["b1", "b2", "b3"]).await;
    let store = app.store();

    let job = |plan: Plan| WriteJob {
        plan,
        next: NextPoll {
            at: Timestamp::now(),
            attempted: Timestamp::now(),
            every_tick: true,
        },
    };

    // b2's plan is corrupted so its history insert violates the unique key mid-batch.
    let mut bad = plan_for(store, "b2").await;
    if let Plan::Write(w) = &mut bad {
        w.history = Some(HistoryEntry {
            seq: 1,
            event: HistoryEvent::FirstSeen,
            previous_status: None,
            status: s("Draft"),
            previous_business_status: None,
            business_status: None,
            modified_time: None,
            skipped_states: None,
        });
    }
    // Pre-existing row with seq 1 for b2 makes that insert collide.
    app.execute(
        "INSERT INTO editing_project_history (project_id, seq, observed_at, event, status) \
         VALUES ('b2', 1, '2029-01-01T00:00:00.000Z', 'first_seen', 'Draft')",
    )
    .await;
    let jobs = vec![
        job(plan_for(store, "b1").await),
        job(bad),
        job(plan_for(store, "b3").await),
    ];
    assert!(store.writes().apply_batch(&jobs, None).await.is_err());
    // Nothing of the batch was written: not b1 before the failure, not half of b2.
    assert_eq!(app.count("SELECT COUNT(*) FROM editing_projects").await, 0);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM editing_project_history")
            .await,
        1
    );
    // A job whose claim was used already (by the write above) skips only that project.
    app.execute("DELETE FROM editing_project_history").await;
    let jobs = vec![
        job(plan_for(store, "b1").await),
        job(plan_for(store, "b3").await),
    ];
    let stale_b3 = jobs[1].clone();
    assert_eq!(
        store
            .writes()
            .apply_batch(&jobs, None)
            .await
            .expect("batch"),
        vec![Applied::Written, Applied::Written]
    );
    let again = vec![job(plan_for(store, "b2").await), stale_b3];
    assert_eq!(
        store
            .writes()
            .apply_batch(&again, None)
            .await
            .expect("batch"),
        vec![Applied::Written, Applied::Fenced]
    );
    check_invariants(store).await;
}
