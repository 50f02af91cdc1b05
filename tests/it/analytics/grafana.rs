//! The Grafana dashboard's panel queries, extracted from dashboards/grafana/ice-sync.json and
//! run against the fixture on PostgreSQL (the dashboard's data source): a panel whose SQL
//! breaks, or whose answer changes, fails here. Every panel needs an expectation.
//!
//! Grafana macros are replaced the way Grafana expands them, for a dashboard time range of
//! the 30 days up to the fixture's pinned now.

use crate::analytics::fixture::{assert_rows, FixtureDb, NOW};
use crate::support::Backend;

const DASHBOARD: &str = include_str!("../../../dashboards/grafana/ice-sync.json");

/// The dashboard's time range in the test: 30 days up to the fixture's now.
const TIME_FROM: &str = "'2029-12-04T12:00:00Z'";
const TIME_TO: &str = "'2030-01-03T12:00:00Z'";

/// (panel title, SQL) of every query target, nested rows included.
fn panel_queries() -> Vec<(String, String)> {
    fn walk(panels: &[serde_json::Value], out: &mut Vec<(String, String)>) {
        for panel in panels {
            let title = panel["title"].as_str().unwrap_or("(untitled)").to_string();
            for target in panel["targets"].as_array().into_iter().flatten() {
                let sql = target["rawSql"]
                    .as_str()
                    .unwrap_or_else(|| panic!("panel {title:?} has a target without rawSql"));
                assert_eq!(
                    target["format"]
                        .as_str()
                        .map(|f| ["table", "time_series"].contains(&f)),
                    Some(true),
                    "panel {title:?}: format must be table or time_series"
                );
                out.push((title.clone(), sql.to_string()));
            }
            if let Some(nested) = panel["panels"].as_array() {
                walk(nested, out);
            }
        }
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(DASHBOARD).expect("dashboards/grafana/ice-sync.json is JSON");
    let mut out = Vec::new();
    walk(
        dashboard["panels"].as_array().expect("a panels array"),
        &mut out,
    );
    out
}

/// Expands the Grafana macros the dashboard uses; any other `$` is an error.
fn expand_macros(title: &str, sql: &str) -> String {
    let mut sql = sql
        .replace("$__timeFrom()", TIME_FROM)
        .replace("$__timeTo()", TIME_TO);
    while let Some(start) = sql.find("$__timeFilter(") {
        let end = start + sql[start..].find(')').expect("closing parenthesis");
        let column = &sql[start + "$__timeFilter(".len()..end];
        sql = format!(
            "{}{column} BETWEEN {TIME_FROM} AND {TIME_TO}{}",
            &sql[..start],
            &sql[end + 1..]
        );
    }
    assert!(
        !sql.contains('$'),
        "panel {title:?} uses a macro or variable this test does not expand:\n{sql}"
    );
    sql
}

fn expected(title: &str) -> &'static str {
    match title {
        "Present projects" => "12",
        "Stuck in Producing > 1 h" => "1",
        "Projects changed in the last 24 h" => "9",
        // 1 failed of 6 productions that ended in the range.
        "Production failure rate" => "16.667",
        "Projects by status now" => "
            EditingProject: Produced                         | 5
            EditingProject: Producing                        | 2
            EditingProject: Archived                         | 1
            EditingProject: Draft                            | 1
            LiveEditingProject: Editing / BroadCasting        | 1
            LiveEditingProject: Editing / LiveFinished        | 1
            LiveEditingProject: Editing / ReservationCanceled | 1
        ",
        "Live projects by business status" => "
            BroadCasting        | 1
            LiveFinished        | 1
            ReservationCanceled | 1
        ",
        "Status changes per day" => "
            2030-01-01T00:00:00.000Z | Editing                       | 3
            2030-01-01T00:00:00.000Z | Produced                      | 1
            2030-01-01T00:00:00.000Z | Producing                     | 2
            2030-01-02T00:00:00.000Z | Archived                      | 1
            2030-01-02T00:00:00.000Z | Editing                       | 1
            2030-01-02T00:00:00.000Z | Editing / BroadCasting        | 1
            2030-01-02T00:00:00.000Z | Editing / LiveFinished        | 1
            2030-01-02T00:00:00.000Z | Editing / ReservationCanceled | 1
            2030-01-02T00:00:00.000Z | ProduceFailed                 | 1
            2030-01-02T00:00:00.000Z | Produced                      | 3
            2030-01-02T00:00:00.000Z | Producing                     | 2
            2030-01-03T00:00:00.000Z | Editing / BroadCasting        | 1
            2030-01-03T00:00:00.000Z | Produced                      | 1
            2030-01-03T00:00:00.000Z | Producing                     | 2
        ",
        "Production outcomes per day" => "
            2030-01-01T00:00:00.000Z | 1 | 0 | 0
            2030-01-02T00:00:00.000Z | 3 | 1 | 25
            2030-01-03T00:00:00.000Z | 1 | 0 | 0
        ",
        // The 2nd: r02's failed attempt (1799.667 s) and r09's production (2400.456 s).
        "Producing time percentiles per day" => "
            2030-01-01T00:00:00.000Z | 1530.375 | 1530.375 | 1530.375
            2030-01-02T00:00:00.000Z | 2100.061 | 2340.377 | 2394.448
            2030-01-03T00:00:00.000Z | 2700.123 | 2700.123 | 2700.123
        ",
        "Producing time percentiles by outcome" => "
            ProduceFailed | 1 | 1799.667 | 1799.667 | 1799.667
            Produced      | 3 | 2400.456 | 2640.19  | 2694.13
        ",
        "Stuck in Producing for more than an hour" => {
            "r03-stuck | Weekly recap draft | 2030-01-03T09:00:00.500Z | 10799.5 | 2030-01-03T11:55:00.000Z"
        }
        // The fixture's producing jobs (fixture::JOBS), all inside the range.
        "Production failures by code and template" => "
            InvalidMaterial.NotFound   | (none) | 1 | 1
            InvalidMaterial.NotFound   | T1     | 1 | 1
            InvalidMaterial.NotFound   | T2     | 1 | 1
            ProduceTimelineFormatError | T2     | 1 | 1
        ",
        "Production time by template" => "
            (none) | failed  | 1 | 45.25 | 45.25 | 45.25
            T1     | failed  | 1 | 60.5  | 60.5  | 60.5
            T1     | success | 2 | 180   | 180   | 234
            T2     | failed  | 2 | 45    | 45    | 58.5
            T2     | success | 1 | 600   | 600   | 600
        ",
        other => panic!("panel {other:?} has no expected rows in tests/it/analytics/grafana.rs"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_panels_answer_on_the_fixture() {
    let queries = panel_queries();
    assert!(queries.len() >= 4, "the dashboard has its panels");
    let db = FixtureDb::load(Backend::Postgres).await;
    for (title, sql) in &queries {
        let sql = expand_macros(title, sql);
        // The failure names the panel, not only the SQL.
        if let Err(e) = db.try_lines(&sql).await {
            panic!("panel {title:?} fails on PostgreSQL (now = {NOW}): {e}\n{sql}");
        }
        assert_rows(&db, &sql, expected(title)).await;
    }
    db.finish().await;
}
