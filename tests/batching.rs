//! What an unchanged cycle costs the database. A test binary of its own because the
//! statement counters are process-wide: no other test may run beside it.

// The harness of `tests/it`, of which only part is used here; this binary joins `it` once
// the statement counters are per store.
#[allow(dead_code, unused_imports)]
#[path = "it/support/mod.rs"]
mod support;

use support::{check_invariants, spawn_app, Backend};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_cycle_is_a_few_statements_per_thousand_projects() {
    // One backend after the other, so the counters see one cycle at a time.
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = spawn_app(backend).await;
        let ids = app.sim.populate(900, 100);
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        app.track(&refs).await;
        assert_eq!(app.cycle().await.transitions, 1000);
        let history_before = app
            .count("SELECT COUNT(*) FROM editing_project_history")
            .await;
        let before = ice_sync::storage::counters();
        let r = app.cycle().await;
        let after = ice_sync::storage::counters();
        assert_eq!((r.polled, r.transitions, r.changed), (1000, 0, 0), "{r:?}");
        assert_eq!(
            app.count("SELECT COUNT(*) FROM editing_project_history")
                .await,
            history_before
        );
        let statements = after.statements - before.statements;
        let transactions = after.transactions - before.transactions;
        println!(
            "unchanged cycle of 1000 projects ({backend:?}): {statements} statements, {transactions} transactions"
        );
        // At most one statement per 100 projects: claims, touches and the sync_runs row.
        assert!(
            statements <= 10,
            "{statements} statements for 1000 unchanged projects"
        );
        check_invariants(app.store()).await;
    }
}
