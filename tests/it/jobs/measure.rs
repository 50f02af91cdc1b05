//! A measurement, not a check (run by hand, `--ignored --nocapture`): the job calls one
//! production costs, on top of the project polls, for the typical lifecycle
//! Draft -> Editing -> Producing (PRODUCING_CYCLES cycles) -> Produced/ProduceFailed, and
//! what that makes per 1,000 projects producing once a day.

use crate::support::{spawn_app, Backend};

const PROJECTS: usize = 200;
const PRODUCING_CYCLES: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: prints figures"]
async fn job_calls_per_production() {
    let app = spawn_app(Backend::Sqlite).await;
    let ids = app.sim.populate(PROJECTS, 0);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.track(&refs).await;
    let advance_all = || {
        for id in &ids {
            app.sim.advance(id);
        }
    };
    app.cycle().await; // Draft
    advance_all(); // Editing
    app.cycle().await;
    let project_polls_before = app.sim.calls_by_action("GetEditingProject");
    advance_all(); // Producing
    for _ in 0..PRODUCING_CYCLES {
        app.cycle().await;
    }
    advance_all(); // Produced or ProduceFailed
    for _ in 0..3 {
        app.cycle().await; // the last two are quiet
    }
    let gets = app.sim.calls_by_action("GetMediaProducingJob");
    let lists = app.sim.calls_by_action("ListMediaProducingJobs");
    let polls = app.sim.calls_by_action("GetEditingProject") - project_polls_before;
    let per = |n: u64| n as f64 / PROJECTS as f64;
    println!(
        "{PROJECTS} productions seen for {PRODUCING_CYCLES} cycles each: {gets} GetMediaProducingJob, \
         {lists} ListMediaProducingJobs = {:.2} job calls per production ({:.2} get, {:.2} list); \
         {polls} project polls over the same cycles; per 1,000 projects producing once a day: {:.0} job calls",
        per(gets + lists),
        per(gets),
        per(lists),
        per(gets + lists) * 1000.0
    );
}
