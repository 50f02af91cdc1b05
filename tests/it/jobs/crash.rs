//! SIGKILL of the daemon in the middle of job writes, then a restart.

use std::time::{Duration, Instant};

use ice_sim::{Simulator, SimulatorConfig};
use rand::{Rng, SeedableRng};

use super::{stored, truth};
use crate::on_both_backends;
use crate::support::{count, env_for, open_store, signal, spawn_logged, Backend, TestDatabase};

on_both_backends!(sigkill_during_job_writes_leaves_no_duplicate_and_loses_no_job);

async fn sigkill_during_job_writes_leaves_no_duplicate_and_loses_no_job(backend: Backend) {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let ids = sim.populate(40, 0);
    // Every project producing (twice, the first failed), so the first cycles are mostly
    // job lookups; slow answers keep them in flight when the kill comes.
    let mut jobs = Vec::new();
    for id in &ids {
        let first = sim.start_production(id).expect("starts");
        sim.finish_production(&first, false);
        jobs.push(first);
        jobs.push(sim.start_production(id).expect("again"));
    }
    sim.set_latency(Duration::from_millis(15));
    let db = TestDatabase::new(backend).await;
    let projects = ids.join(",");
    let env = env_for(
        &db.url,
        &sim,
        &[
            ("ICE_SYNC__SYNC__PROJECTS", &projects),
            ("ICE_SYNC__SYNC__CONCURRENCY", "4"),
            ("ICE_SYNC__SYNC__SCHEDULE", "*/1 * * * * *"),
        ],
    );
    let dir = tempfile::tempdir().expect("dir");
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let store = open_store(&db.url).await;
    for round in 0..4 {
        let log = dir.path().join(format!("daemon-{round}.log"));
        let child = spawn_logged(&env, &["run"], &log);
        let gets = sim.calls_by_action("GetMediaProducingJob");
        // Kill once job calls are under way: some lookups written, others in flight.
        let started = Instant::now();
        while sim.calls_by_action("GetMediaProducingJob") < gets + 3 + rng.gen_range(0..20) {
            assert!(started.elapsed() < Duration::from_secs(30), "no job calls");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        signal(&child, "-KILL");
        drop(child);
        if round == 1 {
            // The running jobs end while the daemon is down.
            for pair in jobs.chunks(2) {
                sim.finish_production(&pair[1], true);
            }
        }
    }
    // The last run, to the end: every job final.
    let log = dir.path().join("daemon-last.log");
    let _child = spawn_logged(&env, &["run"], &log);
    let started = Instant::now();
    loop {
        let finals = count(
            &store,
            "SELECT count(*) FROM media_producing_jobs WHERE status IN ('Success', 'Failed')",
        )
        .await;
        if finals == jobs.len() as i64 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{finals} of {} jobs final\n{}",
            jobs.len(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        count(&store, "SELECT count(*) FROM media_producing_jobs").await,
        jobs.len() as i64
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(DISTINCT job_id) FROM media_producing_jobs"
        )
        .await,
        jobs.len() as i64
    );
    for job in &jobs {
        assert_eq!(stored(&store, job).await, Some(truth(&sim, job)), "{job}");
    }
    store.close().await;
}
