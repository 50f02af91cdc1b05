//! The schedule: a tick that fires while a cycle runs is skipped, never overlapped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ice_sync::config::Schedule;
use ice_sync::scheduler::{self, SchedulerHooks, SchedulerOptions};
use ice_sync::sync::engine::CycleReport;

use crate::on_both_backends;
use crate::support::{spawn_app_with, Backend};

on_both_backends!(slow_cycle_skips_ticks_and_never_overlaps);

#[derive(Default)]
struct Counts {
    finished: AtomicU64,
    skipped: AtomicU64,
}

impl SchedulerHooks for Counts {
    fn cycle_finished(&self, _: &CycleReport) {
        self.finished.fetch_add(1, Ordering::SeqCst);
    }
    fn tick_skipped(&self) {
        self.skipped.fetch_add(1, Ordering::SeqCst);
    }
}

async fn slow_cycle_skips_ticks_and_never_overlaps(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("ICE_SYNC__SYNC__CONCURRENCY", "1"),
            ("ICE_SYNC__SYNC__SCHEDULE", "* * * * * *"),
        ],
    )
    .await;
    app.sim.add_regular("slow1");
    app.track(&["slow1"]).await;
    // Each cycle takes ~2.5 s against a 1 s schedule.
    app.sim.set_latency(Duration::from_millis(2500));
    let counts = Arc::new(Counts::default());
    let options = SchedulerOptions {
        schedule: Schedule::parse("* * * * * *").expect("cron"),
        shutdown_timeout: Duration::from_secs(10),
        heartbeat: Duration::from_millis(200),
    };
    let shutdown = app.shutdown.clone();
    let runner = tokio::spawn(scheduler::run(
        app.engine.clone(),
        options,
        counts.clone(),
        shutdown.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(6200)).await;
    shutdown.cancel();
    let cycles = runner.await.expect("scheduler");
    assert!(cycles >= 2, "cycles {cycles}");
    assert!(
        counts.skipped.load(Ordering::SeqCst) >= 2,
        "ticks must have been skipped"
    );
    // Shutdown let the running cycle finish and record itself.
    assert_eq!(counts.finished.load(Ordering::SeqCst), cycles);
    let runs = app
        .rows(match backend {
            Backend::Sqlite => "SELECT started_at, finished_at FROM sync_runs ORDER BY id",
            Backend::Postgres => {
                "SELECT started_at::text, finished_at::text FROM sync_runs ORDER BY id"
            }
        })
        .await;
    assert_eq!(runs.len() as u64, cycles);
    for pair in runs.windows(2) {
        let (prev_end, next_start) = (pair[0][1].clone(), pair[1][0].clone());
        assert!(
            prev_end.is_some() && prev_end <= next_start,
            "overlap: {pair:?}"
        );
    }
    assert_eq!(app.settings.sync.concurrency, 1);
}
