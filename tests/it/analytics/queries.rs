//! Every query in docs/queries.sql, run against the fixture on both backends, with the
//! exact rows it must return. A query added to the file without an expectation here fails.

use crate::analytics::fixture::{assert_rows, FixtureDb};
use crate::on_both_backends;
use crate::support::Backend;

on_both_backends!(documented_queries_answer_on_the_fixture);

const QUERIES_SQL: &str = include_str!("../../../docs/queries.sql");

/// The project Q9 ("what happened to one project") is run for, in place of the ID the file
/// shows.
const ONE_PROJECT: &str = "r07-returned";

#[derive(Debug)]
pub struct DocumentedQuery {
    pub number: u32,
    pub title: String,
    pub sql: String,
    pub postgres_only: bool,
}

/// The queries of docs/queries.sql: each starts at a `-- Qn. title` line and ends at the
/// first line ending in `;`; comment lines before the SQL describe it.
pub fn documented_queries() -> Vec<DocumentedQuery> {
    let mut queries: Vec<DocumentedQuery> = Vec::new();
    let mut open = false;
    for line in QUERIES_SQL.lines() {
        if let Some((number, title)) = line
            .strip_prefix("-- Q")
            .and_then(|rest| rest.split_once(". "))
            .and_then(|(n, title)| Some((n.parse::<u32>().ok()?, title)))
        {
            assert!(!open, "Q{number} starts before the query above it ended");
            queries.push(DocumentedQuery {
                number,
                title: title.to_string(),
                sql: String::new(),
                postgres_only: title.contains("PostgreSQL only"),
            });
            open = true;
            continue;
        }
        if !open {
            continue;
        }
        let query = queries.last_mut().expect("open query");
        if query.sql.is_empty() && line.starts_with("--") {
            query.postgres_only |= line.contains("PostgreSQL only");
            continue;
        }
        query.sql.push_str(line);
        query.sql.push('\n');
        if line.trim_end().ends_with(';') {
            open = false;
        }
    }
    assert!(!open, "the last query in docs/queries.sql has no ';'");
    queries
}

/// The rows each documented query returns on the fixture (NOW = 2030-01-03T12:00:00.000Z).
fn expected(number: u32) -> &'static str {
    match number {
        // Removed l04 and r06 are not counted; returned r07 is.
        1 => "
            EditingProject     | Produced  | NULL                | 5
            EditingProject     | Producing | NULL                | 2
            EditingProject     | Archived  | NULL                | 1
            EditingProject     | Draft     | NULL                | 1
            LiveEditingProject | Editing   | BroadCasting        | 1
            LiveEditingProject | Editing   | LiveFinished        | 1
            LiveEditingProject | Editing   | ReservationCanceled | 1
        ",
        // Editing: 599.875 + 4800.333 + 82800 + 86400 + 52200 + 300 + 1800 = 228900.208 / 7.
        2 => "
            Draft         | NULL         | 5 | 2640.15   | 3600.5
            Editing       | NULL         | 7 | 32700.03  | 86400
            Editing       | BroadCasting | 1 | 9000.75   | 9000.75
            Editing       | Reserving    | 4 | 52200     | 126000
            ProduceFailed | NULL         | 1 | 2400      | 2400
            Produced      | NULL         | 1 | 90000     | 90000
            Producing     | NULL         | 5 | 2046.324  | 2700.123
        ",
        // r04 has been Producing for 30 minutes only.
        3 => "r03-stuck | Weekly recap draft | 2030-01-03T09:00:00.500Z | 10799.5 | 2030-01-03T11:55:00.000Z",
        // r02 failed at 00:20 on the 2nd (UTC) and was produced at 01:30; r08 was produced
        // without a Producing seen; r09 produced again.
        4 => "
            2030-01-01 | 1 | 0 | 0
            2030-01-02 | 3 | 1 | 25
            2030-01-03 | 1 | 0 | 0
        ",
        5 => "
            BroadCasting        | 1
            LiveFinished        | 1
            ReservationCanceled | 1
        ",
        // Since 2030-01-02T12:00:00.000Z inclusive: r06's removal at exactly that instant
        // counts, r09's changes at 11:00 and 11:30 do not.
        6 => "
            r04-producing-new | 1 | 2030-01-03T11:30:00.000Z | Producing | NULL                | NULL
            r07-returned      | 3 | 2030-01-03T11:15:00.123Z | Produced  | NULL                | NULL
            l03-on-air        | 2 | 2030-01-03T11:00:00.000Z | Editing   | BroadCasting        | NULL
            r03-stuck         | 2 | 2030-01-03T09:00:00.500Z | Producing | NULL                | NULL
            l01-finished      | 2 | 2030-01-02T20:30:00.750Z | Editing   | LiveFinished        | NULL
            l02-canceled      | 1 | 2030-01-02T15:00:00.000Z | Editing   | ReservationCanceled | NULL
            r10-unknown       | 2 | 2030-01-02T15:00:00.000Z | Archived  | NULL                | NULL
            r09-reproduced    | 1 | 2030-01-02T12:10:00.456Z | Produced  | NULL                | NULL
            r06-removed       | 1 | 2030-01-02T12:00:00.000Z | Editing   | NULL                | 2030-01-02T12:00:00.000Z
        ",
        // Produced: r01 1530.375, r09 2400.456, r07 2700.123.
        7 => "
            ProduceFailed | 1 | 1799.667 | 1799.667 | 1799.667
            Produced      | 3 | 2210.318 | 1530.375 | 2700.123
        ",
        // Linear interpolation: p90 = 2400.456 + 0.8 * 299.667, p99 = ... + 0.98 * 299.667.
        8 => "
            ProduceFailed | 1 | 1799.667 | 1799.667 | 1799.667
            Produced      | 3 | 2400.456 | 2640.19  | 2694.13
        ",
        9 => "
            1 | 2030-01-01T08:00:00.000Z | first_seen | NULL      | Editing   | NULL | NULL
            2 | 2030-01-02T08:00:00.000Z | removed    | Editing   | NULL      | NULL | NULL
            3 | 2030-01-02T20:00:00.000Z | returned   | NULL      | Editing   | NULL | NULL
            4 | 2030-01-03T10:30:00.000Z | changed    | Editing   | Producing | NULL | NULL
            5 | 2030-01-03T11:15:00.123Z | changed    | Producing | Produced  | NULL | NULL
        ",
        10 => "
            2030-01-01 | 7 | 6  | 1 | 0
            2030-01-02 | 4 | 11 | 2 | 1
            2030-01-03 | 3 | 4  | 0 | 0
        ",
        // The fixture's producing jobs (fixture::JOBS): four failures in the last week.
        11 => "
            InvalidMaterial.NotFound   | (none) | 1 | 1
            InvalidMaterial.NotFound   | T1     | 1 | 1
            InvalidMaterial.NotFound   | T2     | 1 | 1
            ProduceTimelineFormatError | T2     | 1 | 1
        ",
        // T1 success: 120 and 240; T2 failed: 30 and 60; the running j07 is left out.
        12 => "
            (none) | failed  | 1 | 45.25 | 45.25 | 45.25
            T1     | failed  | 1 | 60.5  | 60.5  | 60.5
            T1     | success | 2 | 180   | 120   | 240
            T2     | failed  | 2 | 45    | 30    | 60
            T2     | success | 1 | 600   | 600   | 600
        ",
        // p95 of (120, 240): 120 + 0.95 * 120.
        13 => "
            T1 | 2 | 180 | 234
            T2 | 1 | 600 | 600
        ",
        other => panic!("docs/queries.sql Q{other} has no expected rows in tests/it/analytics/queries.rs"),
    }
}

/// Puts the fixture's project in place of the ID the documentation shows.
fn for_fixture(query: &DocumentedQuery) -> String {
    if query.number != 9 {
        return query.sql.clone();
    }
    let (before, rest) = query
        .sql
        .split_once("project_id = '")
        .expect("Q9 filters on project_id = '...'");
    let (_, after) = rest.split_once('\'').expect("a closing quote");
    format!("{before}project_id = '{ONE_PROJECT}'{after}")
}

async fn documented_queries_answer_on_the_fixture(backend: Backend) {
    let queries = documented_queries();
    assert_eq!(
        queries.iter().map(|q| q.number).collect::<Vec<_>>(),
        (1..=13).collect::<Vec<_>>(),
        "docs/queries.sql is numbered Q1..Q13"
    );
    let db = FixtureDb::load(backend).await;
    for query in &queries {
        let sql = for_fixture(query);
        if query.postgres_only && backend == Backend::Sqlite {
            assert!(
                db.try_lines(&sql).await.is_err(),
                "Q{} ({}) is documented as PostgreSQL only but runs on SQLite",
                query.number,
                query.title
            );
            continue;
        }
        assert_rows(&db, &sql, expected(query.number)).await;
    }
    db.finish().await;
}
