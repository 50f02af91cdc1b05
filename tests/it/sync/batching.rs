//! What an unchanged cycle costs the database: a few statements per thousand projects,
//! counted on the cycle's own store (counters are per store, so tests beside it do not
//! disturb the count).

use crate::on_both_backends;
use crate::support::{check_invariants, spawn_app, Backend};

on_both_backends!(unchanged_cycle_is_a_few_statements_per_thousand_projects);

async fn unchanged_cycle_is_a_few_statements_per_thousand_projects(backend: Backend) {
    {
        let app = spawn_app(backend).await;
        let ids = app.sim.populate(900, 100);
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        app.track(&refs).await;
        assert_eq!(app.cycle().await.transitions, 1000);
        let history_before = app
            .count("SELECT COUNT(*) FROM editing_project_history")
            .await;
        let before = app.store().counters();
        let r = app.cycle().await;
        let after = app.store().counters();
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
        // About one statement per 100 projects: the sync_runs row (2), claims (one per batch
        // of up to 1000, two on SQLite, plus the one that finds nothing left), touches (one
        // transaction per 1000), the database clock (PostgreSQL) and the lease release.
        assert!(
            statements <= 16,
            "{statements} statements for 1000 unchanged projects"
        );
        check_invariants(app.store()).await;
    }
}
