//! The three ways a job is found, and how long it is polled.

use std::time::{Duration, Instant};

use ice_sim::{EventCallback, JOB_FAILURE_CODE};
use tokio_util::sync::CancellationToken;

use super::{assert_stored_as_sent, stored};
use crate::on_both_backends;
use crate::support::{env_for, ice_sync_command, spawn_app, spawn_app_with, Backend};

on_both_backends!(
    found_entering_and_leaving_producing_and_polled_until_final,
    a_failed_job_and_its_reproduction_are_two_rows,
    backfill_pages_through_windows_of_tracked_projects,
    a_callback_writes_its_job_without_waiting_for_the_schedule,
    disabled_jobs_make_no_job_calls,
);

async fn found_entering_and_leaving_producing_and_polled_until_final(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = app.sim.populate(1, 0).remove(0);
    app.track(&[&id]).await;
    app.cycle().await; // Draft
    assert!(app.sim.advance(&id)); // Editing
    app.cycle().await;
    assert!(app.sim.advance(&id)); // Producing: the simulator starts a job
    let job = app.sim.jobs_of(&id).pop().expect("a job started");
    app.cycle().await;
    let running = stored(app.store(), &job)
        .await
        .expect("found on entering Producing");
    assert_eq!(running.status.as_deref(), Some("Processing"));
    assert_stored_as_sent(app.store(), &app.sim, &job).await;
    assert_eq!(app.sim.job_list_calls(&id), 1);
    assert_eq!(app.sim.job_calls(&job), 1);

    // Still running: polled on the schedule, not listed again.
    app.cycle().await;
    assert_eq!(app.sim.job_calls(&job), 2);
    assert_eq!(app.sim.job_list_calls(&id), 1);

    assert!(app.sim.advance(&id)); // Produced or ProduceFailed: the job ends
    app.cycle().await;
    let done = stored(app.store(), &job).await.expect("stored");
    assert!(
        matches!(done.status.as_deref(), Some("Success") | Some("Failed")),
        "{done:?}"
    );
    assert_stored_as_sent(app.store(), &app.sim, &job).await;
    let (gets, lists) = (app.sim.job_calls(&job), app.sim.job_list_calls(&id));
    assert_eq!((gets, lists), (3, 2));

    // Final: never asked for again; quiet cycles change nothing.
    let before = app
        .rows("SELECT job_id, status, CAST(last_changed_at AS TEXT) FROM media_producing_jobs")
        .await;
    for _ in 0..3 {
        app.cycle().await;
    }
    assert_eq!(app.sim.job_calls(&job), gets);
    assert_eq!(app.sim.job_list_calls(&id), lists);
    let after = app
        .rows("SELECT job_id, status, CAST(last_changed_at AS TEXT) FROM media_producing_jobs")
        .await;
    assert_eq!(before, after);
    assert_eq!(
        app.count("SELECT count(*) FROM media_producing_job_requests")
            .await,
        0
    );
}

async fn a_failed_job_and_its_reproduction_are_two_rows(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = app.sim.populate(1, 0).remove(0);
    app.track(&[&id]).await;
    app.cycle().await;
    let first = app.sim.start_production(&id).expect("starts");
    app.cycle().await;
    assert!(app.sim.finish_production(&first, false));
    app.cycle().await;
    let failed = stored(app.store(), &first).await.expect("stored");
    assert_eq!(failed.status.as_deref(), Some("Failed"));
    assert_eq!(failed.code.as_deref(), Some(JOB_FAILURE_CODE));
    assert!(failed.message.is_some());
    assert_stored_as_sent(app.store(), &app.sim, &first).await;

    let second = app.sim.start_production(&id).expect("produced again");
    app.cycle().await;
    assert!(app.sim.finish_production(&second, true));
    app.cycle().await;
    app.cycle().await;
    let success = stored(app.store(), &second).await.expect("stored");
    assert_eq!(success.status.as_deref(), Some("Success"));
    assert!(success.media_url.is_some() && success.duration.is_some());
    assert!(success.complete_time.is_some());
    assert_stored_as_sent(app.store(), &app.sim, &first).await;
    assert_stored_as_sent(app.store(), &app.sim, &second).await;
    // The failed job was fetched when it started and when it ended, never after: the
    // re-production's listing found it final.
    assert_eq!(app.sim.job_calls(&first), 2);
    assert_eq!(
        app.count("SELECT count(*) FROM media_producing_jobs").await,
        2
    );
    // The view: one row per job, the production time once final.
    let view = app
        .rows(&format!(
            "SELECT outcome, production_seconds IS NULL FROM editing_project_productions \
             WHERE project_id = '{id}' ORDER BY create_time, job_id"
        ))
        .await;
    assert_eq!(view.len(), 2);
}

async fn backfill_pages_through_windows_of_tracked_projects(backend: Backend) {
    let app = spawn_app(backend).await;
    let ids = app.sim.populate(2, 0);
    let (tracked, untracked) = (&ids[0], &ids[1]);
    app.track(&[tracked]).await;
    let now = chrono::Utc::now();
    let job = |n: u8, project: &str, days_ago: i64, ok: bool| {
        let created = now - chrono::Duration::days(days_ago);
        let done = created + chrono::Duration::seconds(95);
        let t = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        ice_sync::ice::jobs_model::MediaProducingJob {
            job_id: Some(format!("{n:032x}")),
            project_id: Some(project.to_string()),
            status: Some(if ok { "Success" } else { "Failed" }.into()),
            code: (!ok).then(|| "QueryMaterialFailed".into()),
            duration: ok.then_some(12.25),
            create_time: Some(t(created)),
            modified_time: Some(t(done)),
            complete_time: Some(t(done)),
            ..Default::default()
        }
    };
    // Two inside 90 days (different windows), one older, one of an untracked project.
    for j in [
        job(1, tracked, 10, true),
        job(2, tracked, 45, false),
        job(3, tracked, 400, true),
        job(4, untracked, 5, true),
    ] {
        app.sim.insert_job(j);
    }
    let totals = app
        .engine
        .backfill_jobs(90, &CancellationToken::new())
        .await;
    assert_eq!(totals.failures, 0, "{totals:?}");
    assert_eq!(
        app.sim.job_list_calls(tracked),
        3,
        "90 days: three 30-day windows"
    );
    assert_eq!(app.sim.job_list_calls(untracked), 0);
    let (one, two) = (format!("{:032x}", 1), format!("{:032x}", 2));
    assert_stored_as_sent(app.store(), &app.sim, &one).await;
    assert_stored_as_sent(app.store(), &app.sim, &two).await;
    assert_eq!(
        app.count("SELECT count(*) FROM media_producing_jobs").await,
        2
    );

    // Again, through the binary: final jobs are not fetched again.
    let gets = app.sim.calls_by_action("GetMediaProducingJob");
    let url = app.settings.database.url.expose_secret().to_string();
    let env = env_for(&url, &app.sim, &[]);
    let out = ice_sync_command(&env, &["jobs", "backfill", "--since", "90d"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(app.sim.calls_by_action("GetMediaProducingJob"), gets);
    let out = ice_sync_command(&env, &["jobs", tracked, "--output", "json"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let listed: Vec<&str> = json
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|j| j["job_id"].as_str())
        .collect();
    assert_eq!(listed, [two.as_str(), one.as_str()], "oldest first");
    assert_eq!(json[0]["code"], "QueryMaterialFailed");
}

async fn a_callback_writes_its_job_without_waiting_for_the_schedule(backend: Backend) {
    const URL: &str = "https://ice-sync.example.com/ice/events";
    const KEY: &str = "TestKey001";
    let app = spawn_app_with(
        backend,
        &[
            ("ICE_SYNC__CALLBACK__LISTEN", "127.0.0.1:0"),
            ("ICE_SYNC__CALLBACK__URL", URL),
            ("ICE_SYNC__CALLBACK__AUTH_KEY", KEY),
        ],
    )
    .await;
    let bound = ice_sync::app::bind_callbacks(&app.settings, &app.engine)
        .await
        .expect("binds")
        .expect("callback.listen is set");
    let addr = bound.local_addr().expect("address");
    let _serving = bound.serve(app.shutdown.clone());
    let engine = app.engine.clone();
    tokio::spawn(ice_sync::refresh::daemon::serve_refreshes(
        move || engine.clone(),
        |_| {},
        app.shutdown.clone(),
    ));
    app.sim
        .set_event_callback(Some(EventCallback::http(URL, Some(KEY))));
    app.sim.route_callbacks_to(addr);

    let id = app.sim.populate(1, 0).remove(0);
    app.track(&[&id]).await;
    app.cycle().await; // Draft; no scheduled cycle runs after this
    let job = app.sim.start_production(&id).expect("starts");
    let mut latencies = Vec::new();
    let finished = Instant::now();
    assert!(app.sim.finish_production(&job, true));
    loop {
        if stored(app.store(), &job).await.is_some() {
            latencies.push(finished.elapsed());
            break;
        }
        assert!(
            finished.elapsed() < Duration::from_secs(5),
            "the callback's job is not stored after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_stored_as_sent(app.store(), &app.sim, &job).await;
    // Draft -> Produced skips Producing: only the callback can have found the job.
    assert_eq!(app.sim.job_list_calls(&id), 0);
    assert_eq!(app.sim.job_calls(&job), 1);
    println!("callback to job row: {:?}", latencies[0]);
    app.shutdown.cancel();
}

async fn disabled_jobs_make_no_job_calls(backend: Backend) {
    let app = spawn_app_with(backend, &[("ICE_SYNC__JOBS__ENABLED", "false")]).await;
    let ids = app.sim.populate(3, 0);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.track(&refs).await;
    for _ in 0..4 {
        app.cycle().await;
        app.sim.advance_random(1.0);
    }
    let job = app.sim.start_production(&ids[0]).expect("starts");
    app.cycle().await;
    app.sim.finish_production(&job, false);
    app.cycle().await;
    assert!(
        !app.sim.jobs_of(&ids[1]).is_empty(),
        "the lifecycle produced"
    );
    assert_eq!(app.sim.calls_by_action("GetMediaProducingJob"), 0);
    assert_eq!(app.sim.calls_by_action("ListMediaProducingJobs"), 0);
    assert_eq!(
        app.count("SELECT count(*) FROM media_producing_jobs").await,
        0
    );
}
