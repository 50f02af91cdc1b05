//! A claim is read to its end even while the fetchers wait for the writer. The claim used
//! to run inside the stream the fetchers pull from, which they poll only while they have
//! room: with the writer's queue full, a half-read claim kept its statement open (on
//! SQLite, the write lock), the writer waited for that lock, and the cycle stalled for the
//! 30 s busy timeout and failed with "database is locked" (seen in the daemon benchmark's
//! zero-latency first cycles).

use ice_sync::sync::engine::CycleOutcome;

use crate::on_both_backends;
use crate::support::{check_invariants, spawn_app_tuned, Backend};

on_both_backends!(a_claim_completes_while_the_writer_is_behind);

async fn a_claim_completes_while_the_writer_is_behind(backend: Backend) {
    // The stall ended the cycle `failed` after the busy timeout; with the claim in a task
    // of its own every project is written. Zero latency, few fetchers, a short writer queue and one transaction per new
    // project: the fetchers are always waiting for the writer when the next claim of
    // several hundred rows (more than the SQLite driver buffers) is made.
    let app = spawn_app_tuned(backend, &[], |o| {
        o.sync.concurrency = 4;
        o.claim_batch = 300;
        o.write_batch = 1;
    })
    .await;
    let ids = app.sim.populate(900, 100);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.track(&refs).await;

    let report = app.cycle().await;
    assert_eq!(report.outcome, CycleOutcome::Success, "{report:?}");
    assert_eq!((report.polled, report.failures), (1_000, 0), "{report:?}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM editing_project_rows").await,
        1_000
    );
    check_invariants(app.store()).await;
}
