//! The queries that must stay index-driven at millions of history rows have an index path:
//! a regression guard for the views' shapes (a filter on a view must reach the index through
//! its window functions and aggregates) and for the indexes of migration 0002.
//!
//! The fixture is tiny, so a planner would rightly prefer scanning it; PostgreSQL is told not
//! to (`enable_seqscan = off` only leaves a sequential scan where no index can serve), and
//! SQLite has no statistics to prefer it. Timings at 1M rows are in docs/analytics.md.

use ice_sync::storage::sql;

use crate::analytics::fixture::FixtureDb;
use crate::on_both_backends;
use crate::support::{Backend, TestDatabase};

on_both_backends!(hot_queries_have_an_index_path);

/// (what, query with `$1` = a project ID where needed, the indexes its plan must use on
/// PostgreSQL, on SQLite).
const HOT_QUERIES: &[(&str, &str, &[&str], &[&str])] = &[
    (
        "history of one project (ice-sync history)",
        sql::HISTORY,
        &["editing_project_history_seq_key"],
        &["sqlite_autoindex_editing_project_history_1"],
    ),
    (
        "status intervals of one project",
        "SELECT * FROM editing_project_status_intervals WHERE project_id = $1",
        &["editing_project_history_seq_key"],
        &["sqlite_autoindex_editing_project_history_1"],
    ),
    (
        "lead times of one project",
        "SELECT * FROM editing_project_lead_times WHERE project_id = $1",
        &["editing_project_lead_facts_pkey", "editing_projects_pkey"],
        &[
            "SEARCH f USING PRIMARY KEY (project_id=?)",
            "sqlite_autoindex_editing_project_rows_1",
        ],
    ),
    (
        "status summary",
        "SELECT * FROM editing_project_status_summary",
        &["editing_projects_present_status_idx"],
        &["editing_projects_present_status_idx"],
    ),
    (
        "stuck in Producing",
        "SELECT project_id FROM editing_project_current_status
         WHERE status = 'Producing' AND seconds_in_status > 3600",
        &[
            "editing_projects_present_status_idx",
            "editing_project_history_seq_key",
        ],
        &[
            "editing_projects_present_status_idx",
            "sqlite_autoindex_editing_project_history_1",
        ],
    ),
    (
        "daily transitions of a range of days",
        "SELECT * FROM editing_project_daily_transitions
         WHERE day >= '2030-01-02' AND day < '2030-01-03'",
        &["editing_project_daily_counts_pkey"],
        &["editing_project_daily_counts USING PRIMARY KEY"],
    ),
    (
        "producing times of a time range (the percentile panels)",
        "SELECT seconds_producing FROM editing_project_lead_times
         WHERE finished_at BETWEEN '2030-01-02T00:00:00.000Z' AND '2030-01-03T00:00:00.000Z'",
        &["editing_project_lead_facts_finished_idx"],
        &["editing_project_lead_facts_finished_idx"],
    ),
    (
        // Since 0014 the stretches are a view over history: the window's next rows by
        // observed_at, each probing the row before it through the unique key.
        "finished stretches of one status in a time range",
        "SELECT duration_seconds FROM editing_project_stretches
         WHERE status = 'Producing'
           AND left_at BETWEEN '2030-01-02T00:00:00.000Z' AND '2030-01-03T00:00:00.000Z'",
        &[
            "editing_project_history_observed_idx",
            "editing_project_history_seq_key",
        ],
        // PostgreSQL only: SQLite has no percentiles, and its averages per status over days
        // come from the rollup (next).
        &[],
    ),
    (
        "producing time percentiles by outcome (Q8)",
        "SELECT outcome, percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds_producing)
         FROM editing_project_lead_times WHERE seconds_producing IS NOT NULL GROUP BY outcome",
        // (Index-only at scale; the fixture's pages are not yet all-visible.)
        &["editing_project_lead_facts_outcome_idx"],
        // PostgreSQL only: SQLite has no percentile_cont.
        &[],
    ),
    (
        "finished stretches of one status over a range of days (the rollup)",
        "SELECT SUM(stretches), MAX(max_seconds) FROM editing_project_stretch_days
         WHERE day >= '2030-01-02' AND day < '2030-01-03' AND status = 'Producing'",
        &["editing_project_stretch_days_pkey"],
        &["editing_project_stretch_days USING PRIMARY KEY"],
    ),
    (
        "history of the last 24 hours, bounded the plannable way",
        "SELECT h.project_id FROM analytics_clock c
         CROSS JOIN editing_project_history h WHERE h.observed_at >= c.day_ago",
        &["editing_project_history_observed_idx"],
        &["editing_project_history_observed_idx"],
    ),
    (
        "history of the last 24 hours",
        "SELECT project_id FROM editing_project_history
         WHERE observed_at >= (SELECT day_ago FROM analytics_clock)",
        &["editing_project_history_observed_idx"],
        &["editing_project_history_observed_idx"],
    ),
];

async fn hot_queries_have_an_index_path(backend: Backend) {
    let db = FixtureDb::load(backend).await;
    for (what, query, pg_indexes, sqlite_indexes) in HOT_QUERIES {
        if backend == Backend::Sqlite && sqlite_indexes.is_empty() {
            continue;
        }
        let plan = plan(&db.db, query).await;
        let (indexes, full_scans): (&[&str], &[&str]) = match backend {
            Backend::Postgres => (
                pg_indexes,
                &[
                    "Seq Scan on editing_project_history",
                    "Seq Scan on editing_project_rows",
                    "Seq Scan on tracked_projects",
                    "Seq Scan on editing_project_lead_facts",
                    "Seq Scan on editing_project_daily_counts",
                ],
            ),
            // A SCAN of a table or of a whole index reads every row; SCAN of a subquery or
            // a CTE co-routine reads what its own SEARCH produced. Reading all of the partial
            // index of present projects is the summary's plan (it holds nothing else).
            Backend::Sqlite => (
                sqlite_indexes,
                &[
                    "SCAN editing_project_history",
                    "SCAN editing_project_rows",
                    "SCAN tracked_projects",
                    "SCAN h",
                    "SCAN x",
                    "SCAN p",
                    "SCAN t",
                    "SCAN f",
                    "SCAN editing_project_lead_facts",
                    "SCAN editing_project_daily_counts",
                ],
            ),
        };
        for index in indexes {
            assert!(
                plan.contains(index),
                "{backend:?}: {what} does not use {index}:\n{plan}"
            );
        }
        for scan in full_scans {
            let reads_all = |line: &str| match backend {
                Backend::Postgres => line.contains(scan),
                Backend::Sqlite => {
                    (line == *scan || line.starts_with(&format!("{scan} ")))
                        && !line.ends_with("INDEX editing_projects_present_status_idx")
                }
            };
            assert!(
                !plan.lines().any(|l| reads_all(l.trim())),
                "{backend:?}: {what} reads a whole table ({scan}):\n{plan}"
            );
        }
    }
    db.finish().await;
}

/// The plan as text, with `$1` bound to a fixture project.
async fn plan(db: &TestDatabase, query: &str) -> String {
    let bind = query.contains("$1").then_some("r02-retried");
    db.explain(query, bind)
        .await
        .unwrap_or_else(|e| panic!("EXPLAIN {query}: {e:#}"))
        .join("\n")
}
