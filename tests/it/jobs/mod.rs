//! Producing jobs (`media_producing_jobs`) and unnamed fields (`extra`): the real client
//! over HTTP to the simulator's scripted jobs, real databases, the real binary.
//!
//! * `discovery`: found when a project enters or leaves Producing, by backfill (also
//!   through the binary), and from a callback without waiting for the schedule; fields
//!   equal the simulator's; polling stops at a final status; a quiet cycle changes
//!   nothing; `jobs.enabled = false` makes no job call.
//! * `extra`: unnamed Project fields stored, updated, NULL when absent, no history.
//! * `crash`: SIGKILL of the daemon in the middle of job writes leaves no duplicate and
//!   loses no job.

mod api;
mod crash;
mod discovery;
mod extra;
mod measure;

use ice_sim::Simulator;
use ice_sync::contract::ProducingJobColumns;
use ice_sync::storage::Store;

/// The stored columns of one job, if it is stored.
pub async fn stored(store: &Store, job_id: &str) -> Option<ProducingJobColumns> {
    store
        .jobs()
        .stored_jobs(job_id, 10)
        .await
        .expect("read jobs")
        .into_iter()
        .find(|j| j.columns.job_id == job_id)
        .map(|j| j.columns)
}

/// What the simulator says about a job, in stored form.
pub fn truth(sim: &Simulator, job_id: &str) -> ProducingJobColumns {
    let job = sim.job(job_id).expect("the simulator knows the job");
    ice_sync::sync::jobs::observation(job, ice_sync::domain::Timestamp::now(), None)
        .expect("has an ID")
        .columns
}

/// Asserts the stored job equals the simulator's.
pub async fn assert_stored_as_sent(store: &Store, sim: &Simulator, job_id: &str) {
    let got = stored(store, job_id).await;
    assert_eq!(got.as_ref(), Some(&truth(sim, job_id)), "job {job_id}");
}
