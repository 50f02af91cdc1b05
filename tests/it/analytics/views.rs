//! Every BI view against the fixture, with exact expected rows (durations to the
//! millisecond). Each test runs on SQLite and on PostgreSQL against the same expected text,
//! so passing on both means both backends give the same answers.

use crate::analytics::fixture::{assert_rows, FixtureDb};
use crate::on_both_backends;
use crate::support::Backend;

on_both_backends!(
    status_intervals_at_the_edges,
    status_summary_counts_present_projects,
    current_status_and_time_in_it,
    lead_times_per_project,
    daily_transitions_per_utc_day,
    durations_are_exact_doubles,
    clock_is_now_in_the_stored_format,
);

/// The current stretch is open, a removal closes the stretch before it and opens none, a
/// return opens a new one, a project seen once has one open stretch, an unknown status is a
/// stretch like any other.
async fn status_intervals_at_the_edges(backend: Backend) {
    let db = FixtureDb::load(backend).await;
    assert_rows(
        &db,
        "SELECT project_id, status, business_status, entered_at, left_at, duration_seconds
         FROM editing_project_status_intervals ORDER BY project_id, entered_at",
        "
        l01-finished      | Editing       | Reserving           | 2030-01-01T07:00:00.000Z | 2030-01-02T18:00:00.000Z | 126000
        l01-finished      | Editing       | BroadCasting        | 2030-01-02T18:00:00.000Z | 2030-01-02T20:30:00.750Z | 9000.75
        l01-finished      | Editing       | LiveFinished        | 2030-01-02T20:30:00.750Z | NULL                     | NULL
        l02-canceled      | Editing       | Reserving           | 2030-01-02T09:00:00.000Z | 2030-01-02T15:00:00.000Z | 21600
        l02-canceled      | Editing       | ReservationCanceled | 2030-01-02T15:00:00.000Z | NULL                     | NULL
        l03-on-air        | Editing       | Reserving           | 2030-01-03T06:00:00.000Z | 2030-01-03T11:00:00.000Z | 18000
        l03-on-air        | Editing       | BroadCasting        | 2030-01-03T11:00:00.000Z | NULL                     | NULL
        l04-removed       | Editing       | Reserving           | 2030-01-01T09:00:00.000Z | 2030-01-01T21:00:00.000Z | 43200
        r01-produced      | Draft         | NULL                | 2030-01-01T09:00:00.000Z | 2030-01-01T09:10:00.250Z | 600.25
        r01-produced      | Editing       | NULL                | 2030-01-01T09:10:00.250Z | 2030-01-01T09:20:00.125Z | 599.875
        r01-produced      | Producing     | NULL                | 2030-01-01T09:20:00.125Z | 2030-01-01T09:45:30.500Z | 1530.375
        r01-produced      | Produced      | NULL                | 2030-01-01T09:45:30.500Z | NULL                     | NULL
        r02-retried       | Draft         | NULL                | 2030-01-01T22:00:00.000Z | 2030-01-01T22:30:00.000Z | 1800
        r02-retried       | Editing       | NULL                | 2030-01-01T22:30:00.000Z | 2030-01-01T23:50:00.333Z | 4800.333
        r02-retried       | Producing     | NULL                | 2030-01-01T23:50:00.333Z | 2030-01-02T00:20:00.000Z | 1799.667
        r02-retried       | ProduceFailed | NULL                | 2030-01-02T00:20:00.000Z | 2030-01-02T01:00:00.000Z | 2400
        r02-retried       | Producing     | NULL                | 2030-01-02T01:00:00.000Z | 2030-01-02T01:30:00.999Z | 1800.999
        r02-retried       | Produced      | NULL                | 2030-01-02T01:30:00.999Z | NULL                     | NULL
        r03-stuck         | Draft         | NULL                | 2030-01-03T08:00:00.000Z | 2030-01-03T09:00:00.500Z | 3600.5
        r03-stuck         | Producing     | NULL                | 2030-01-03T09:00:00.500Z | NULL                     | NULL
        r04-producing-new | Producing     | NULL                | 2030-01-03T11:30:00.000Z | NULL                     | NULL
        r05-draft-once    | Draft         | NULL                | 2030-01-02T10:00:00.000Z | NULL                     | NULL
        r06-removed       | Draft         | NULL                | 2030-01-01T12:00:00.000Z | 2030-01-01T13:00:00.000Z | 3600
        r06-removed       | Editing       | NULL                | 2030-01-01T13:00:00.000Z | 2030-01-02T12:00:00.000Z | 82800
        r07-returned      | Editing       | NULL                | 2030-01-01T08:00:00.000Z | 2030-01-02T08:00:00.000Z | 86400
        r07-returned      | Editing       | NULL                | 2030-01-02T20:00:00.000Z | 2030-01-03T10:30:00.000Z | 52200
        r07-returned      | Producing     | NULL                | 2030-01-03T10:30:00.000Z | 2030-01-03T11:15:00.123Z | 2700.123
        r07-returned      | Produced      | NULL                | 2030-01-03T11:15:00.123Z | NULL                     | NULL
        r08-skipped       | Editing       | NULL                | 2030-01-02T09:00:00.000Z | 2030-01-02T09:05:00.000Z | 300
        r08-skipped       | Produced      | NULL                | 2030-01-02T09:05:00.000Z | NULL                     | NULL
        r09-reproduced    | Produced      | NULL                | 2030-01-01T10:00:00.000Z | 2030-01-02T11:00:00.000Z | 90000
        r09-reproduced    | Editing       | NULL                | 2030-01-02T11:00:00.000Z | 2030-01-02T11:30:00.000Z | 1800
        r09-reproduced    | Producing     | NULL                | 2030-01-02T11:30:00.000Z | 2030-01-02T12:10:00.456Z | 2400.456
        r09-reproduced    | Produced      | NULL                | 2030-01-02T12:10:00.456Z | NULL                     | NULL
        r10-unknown       | Draft         | NULL                | 2030-01-02T14:00:00.000Z | 2030-01-02T15:00:00.000Z | 3600
        r10-unknown       | Archived      | NULL                | 2030-01-02T15:00:00.000Z | NULL                     | NULL
        ",
    )
    .await;
    db.finish().await;
}

/// Removed projects (l04, r06) are not counted; the returned one (r07) is.
async fn status_summary_counts_present_projects(backend: Backend) {
    let db = FixtureDb::load(backend).await;
    assert_rows(
        &db,
        "SELECT project_type, status, business_status, projects
         FROM editing_project_status_summary ORDER BY project_type, status, business_status",
        "
        EditingProject     | Archived  | NULL                | 1
        EditingProject     | Draft     | NULL                | 1
        EditingProject     | Produced  | NULL                | 5
        EditingProject     | Producing | NULL                | 2
        LiveEditingProject | Editing   | BroadCasting        | 1
        LiveEditingProject | Editing   | LiveFinished        | 1
        LiveEditingProject | Editing   | ReservationCanceled | 1
        ",
    )
    .await;
    db.finish().await;
}

/// `since` is when the current pair was first observed (a return counts as a new start for
/// r07), seconds_in_status runs to the pinned now; removed projects are absent.
async fn current_status_and_time_in_it(backend: Backend) {
    let db = FixtureDb::load(backend).await;
    assert_rows(
        &db,
        "SELECT project_id, project_type, title, status, business_status, since,
                seconds_in_status, last_polled_at
         FROM editing_project_current_status ORDER BY project_id",
        "
        l01-finished      | LiveEditingProject | Live desk 1         | Editing   | LiveFinished        | 2030-01-02T20:30:00.750Z | 55799.25   | 2030-01-03T11:55:00.000Z
        l02-canceled      | LiveEditingProject | Live desk 2         | Editing   | ReservationCanceled | 2030-01-02T15:00:00.000Z | 75600      | 2030-01-03T11:55:00.000Z
        l03-on-air        | LiveEditingProject | Live desk 3         | Editing   | BroadCasting        | 2030-01-03T11:00:00.000Z | 3600       | 2030-01-03T11:55:00.000Z
        r01-produced      | EditingProject     | Spring campaign cut | Produced  | NULL                | 2030-01-01T09:45:30.500Z | 180869.5   | 2030-01-03T11:55:00.000Z
        r02-retried       | EditingProject     | Product launch v2   | Produced  | NULL                | 2030-01-02T01:30:00.999Z | 124199.001 | 2030-01-03T11:55:00.000Z
        r03-stuck         | EditingProject     | Weekly recap draft  | Producing | NULL                | 2030-01-03T09:00:00.500Z | 10799.5    | 2030-01-03T11:55:00.000Z
        r04-producing-new | EditingProject     | Tutorial edit       | Producing | NULL                | 2030-01-03T11:30:00.000Z | 1800       | 2030-01-03T11:55:00.000Z
        r05-draft-once    | EditingProject     | Interview final     | Draft     | NULL                | 2030-01-02T10:00:00.000Z | 93600      | 2030-01-03T11:55:00.000Z
        r07-returned      | EditingProject     | Brand teaser        | Produced  | NULL                | 2030-01-03T11:15:00.123Z | 2699.877   | 2030-01-03T11:55:00.000Z
        r08-skipped       | EditingProject     | Customer story      | Produced  | NULL                | 2030-01-02T09:05:00.000Z | 96900      | 2030-01-03T11:55:00.000Z
        r09-reproduced    | EditingProject     | Event highlights    | Produced  | NULL                | 2030-01-02T12:10:00.456Z | 85799.544  | 2030-01-03T11:55:00.000Z
        r10-unknown       | EditingProject     | Behind the scenes   | Archived  | NULL                | 2030-01-02T15:00:00.000Z | 75600      | 2030-01-03T11:55:00.000Z
        ",
    )
    .await;
    db.finish().await;
}

/// The first attempt's outcome (r02 failed first), a Producing nobody saw (r08: no
/// producing time, but a time to finish), a project first seen Produced and produced again
/// (r09: the production after its first Producing), one just seen in Producing (r04: 0 s to
/// Producing), live, removed and unfinished projects with NULLs.
async fn lead_times_per_project(backend: Backend) {
    let db = FixtureDb::load(backend).await;
    assert_rows(
        &db,
        "SELECT project_id, project_type, first_status, first_seen_at, producing_at,
                finished_at, outcome, seconds_to_producing, seconds_producing,
                seconds_to_finished
         FROM editing_project_lead_times ORDER BY project_id",
        "
        l01-finished      | LiveEditingProject | Editing   | 2030-01-01T07:00:00.000Z | NULL                     | NULL                     | NULL          | NULL     | NULL     | NULL
        l02-canceled      | LiveEditingProject | Editing   | 2030-01-02T09:00:00.000Z | NULL                     | NULL                     | NULL          | NULL     | NULL     | NULL
        l03-on-air        | LiveEditingProject | Editing   | 2030-01-03T06:00:00.000Z | NULL                     | NULL                     | NULL          | NULL     | NULL     | NULL
        l04-removed       | LiveEditingProject | Editing   | 2030-01-01T09:00:00.000Z | NULL                     | NULL                     | NULL          | NULL     | NULL     | NULL
        r01-produced      | EditingProject     | Draft     | 2030-01-01T09:00:00.000Z | 2030-01-01T09:20:00.125Z | 2030-01-01T09:45:30.500Z | Produced      | 1200.125 | 1530.375 | 2730.5
        r02-retried       | EditingProject     | Draft     | 2030-01-01T22:00:00.000Z | 2030-01-01T23:50:00.333Z | 2030-01-02T00:20:00.000Z | ProduceFailed | 6600.333 | 1799.667 | 8400
        r03-stuck         | EditingProject     | Draft     | 2030-01-03T08:00:00.000Z | 2030-01-03T09:00:00.500Z | NULL                     | NULL          | 3600.5   | NULL     | NULL
        r04-producing-new | EditingProject     | Producing | 2030-01-03T11:30:00.000Z | 2030-01-03T11:30:00.000Z | NULL                     | NULL          | 0        | NULL     | NULL
        r05-draft-once    | EditingProject     | Draft     | 2030-01-02T10:00:00.000Z | NULL                     | NULL                     | NULL          | NULL     | NULL     | NULL
        r06-removed       | EditingProject     | Draft     | 2030-01-01T12:00:00.000Z | NULL                     | NULL                     | NULL          | NULL     | NULL     | NULL
        r07-returned      | EditingProject     | Editing   | 2030-01-01T08:00:00.000Z | 2030-01-03T10:30:00.000Z | 2030-01-03T11:15:00.123Z | Produced      | 181800   | 2700.123 | 184500.123
        r08-skipped       | EditingProject     | Editing   | 2030-01-02T09:00:00.000Z | NULL                     | 2030-01-02T09:05:00.000Z | Produced      | NULL     | NULL     | 300
        r09-reproduced    | EditingProject     | Produced  | 2030-01-01T10:00:00.000Z | 2030-01-02T11:30:00.000Z | 2030-01-02T12:10:00.456Z | Produced      | 91800    | 2400.456 | 94200.456
        r10-unknown       | EditingProject     | Draft     | 2030-01-02T14:00:00.000Z | NULL                     | NULL                     | NULL          | NULL     | NULL     | NULL
        ",
    )
    .await;
    db.finish().await;
}

/// UTC days (r02 fails at 00:20 on the 2nd, not the 1st), every event kind, business-status
/// changes with from_status = to_status. NULLs sort differently on the two backends, hence
/// the COALESCEs in the ORDER BY.
async fn daily_transitions_per_utc_day(backend: Backend) {
    let db = FixtureDb::load(backend).await;
    assert_rows(
        &db,
        "SELECT day, event, from_status, to_status, from_business_status, to_business_status,
                transitions
         FROM editing_project_daily_transitions
         ORDER BY day, event, COALESCE(from_status, ''), COALESCE(to_status, ''),
                  COALESCE(from_business_status, ''), COALESCE(to_business_status, '')",
        "
        2030-01-01 | changed    | Draft         | Editing       | NULL         | NULL                | 3
        2030-01-01 | changed    | Editing       | Producing     | NULL         | NULL                | 2
        2030-01-01 | changed    | Producing     | Produced      | NULL         | NULL                | 1
        2030-01-01 | first_seen | NULL          | Draft         | NULL         | NULL                | 3
        2030-01-01 | first_seen | NULL          | Editing       | NULL         | NULL                | 1
        2030-01-01 | first_seen | NULL          | Editing       | NULL         | Reserving           | 2
        2030-01-01 | first_seen | NULL          | Produced      | NULL         | NULL                | 1
        2030-01-01 | removed    | Editing       | NULL          | Reserving    | NULL                | 1
        2030-01-02 | changed    | Draft         | Archived      | NULL         | NULL                | 1
        2030-01-02 | changed    | Editing       | Editing       | BroadCasting | LiveFinished        | 1
        2030-01-02 | changed    | Editing       | Editing       | Reserving    | BroadCasting        | 1
        2030-01-02 | changed    | Editing       | Editing       | Reserving    | ReservationCanceled | 1
        2030-01-02 | changed    | Editing       | Produced      | NULL         | NULL                | 1
        2030-01-02 | changed    | Editing       | Producing     | NULL         | NULL                | 1
        2030-01-02 | changed    | ProduceFailed | Producing     | NULL         | NULL                | 1
        2030-01-02 | changed    | Produced      | Editing       | NULL         | NULL                | 1
        2030-01-02 | changed    | Producing     | ProduceFailed | NULL         | NULL                | 1
        2030-01-02 | changed    | Producing     | Produced      | NULL         | NULL                | 2
        2030-01-02 | first_seen | NULL          | Draft         | NULL         | NULL                | 2
        2030-01-02 | first_seen | NULL          | Editing       | NULL         | NULL                | 1
        2030-01-02 | first_seen | NULL          | Editing       | NULL         | Reserving           | 1
        2030-01-02 | removed    | Editing       | NULL          | NULL         | NULL                | 2
        2030-01-02 | returned   | NULL          | Editing       | NULL         | NULL                | 1
        2030-01-03 | changed    | Draft         | Producing     | NULL         | NULL                | 1
        2030-01-03 | changed    | Editing       | Editing       | Reserving    | BroadCasting        | 1
        2030-01-03 | changed    | Editing       | Producing     | NULL         | NULL                | 1
        2030-01-03 | changed    | Producing     | Produced      | NULL         | NULL                | 1
        2030-01-03 | first_seen | NULL          | Draft         | NULL         | NULL                | 1
        2030-01-03 | first_seen | NULL          | Editing       | NULL         | Reserving           | 1
        2030-01-03 | first_seen | NULL          | Producing     | NULL         | NULL                | 1
        ",
    )
    .await;
    // A day range reads like a 'YYYY-MM-DD' comparison on both backends.
    assert_rows(
        &db,
        "SELECT day, SUM(transitions) FROM editing_project_daily_transitions
         WHERE day >= '2030-01-02' AND day < '2030-01-03' GROUP BY day",
        "2030-01-02 | 18",
    )
    .await;
    db.finish().await;
}

/// The rendering above rounds to the millisecond; this checks the stored doubles themselves
/// are the nearest double to a millisecond value (what PostgreSQL's exact EXTRACT(EPOCH)
/// gives), not float noise like 4800.332999944687 (what unixepoch(..., 'subsec')
/// differences gave on SQLite before migration 0002).
async fn durations_are_exact_doubles(backend: Backend) {
    let db = FixtureDb::load(backend).await;
    let sql = "SELECT duration_seconds FROM editing_project_status_intervals
               UNION ALL SELECT seconds_in_status FROM editing_project_current_status
               UNION ALL SELECT seconds_to_producing FROM editing_project_lead_times
               UNION ALL SELECT seconds_producing FROM editing_project_lead_times
               UNION ALL SELECT seconds_to_finished FROM editing_project_lead_times";
    let values: Vec<Option<f64>> = db
        .store
        .query_cells(sql)
        .await
        .expect(sql)
        .rows
        .iter()
        .map(|r| match r.first() {
            Some(ice_sync::storage::Cell::Float(v)) => Some(*v),
            Some(ice_sync::storage::Cell::Null) => None,
            other => panic!("{sql}: not a double: {other:?}"),
        })
        .collect();
    let values: Vec<f64> = values.into_iter().flatten().collect();
    // 24 closed stretches, 12 present projects, 6 + 4 + 5 lead-time gaps.
    assert_eq!(values.len(), 24 + 12 + 6 + 4 + 5, "{values:?}");
    for v in values {
        let exact: f64 = format!("{v:.3}").parse().expect("a number");
        assert_eq!(v.to_bits(), exact.to_bits(), "{v:?} is not {exact}");
    }
    db.finish().await;
}

/// Unpinned, analytics_clock is the current time in the stored timestamps' form, and its
/// horizons are exactly one hour, day and week before it.
async fn clock_is_now_in_the_stored_format(backend: Backend) {
    use chrono::{DateTime, Utc};
    let db = FixtureDb::empty(backend).await;
    let sql = "SELECT now_at, hour_ago, day_ago, week_ago FROM analytics_clock";
    let before = Utc::now();
    let line = db.lines(sql).await.remove(0);
    let after = Utc::now();
    let times: Vec<DateTime<Utc>> = line
        .split(" | ")
        .map(|t| {
            assert_eq!(t.len(), 24, "{t} is not YYYY-MM-DDTHH:MM:SS.mmmZ");
            DateTime::parse_from_rfc3339(t)
                .unwrap_or_else(|e| panic!("{t}: {e}"))
                .with_timezone(&Utc)
        })
        .collect();
    let now = times[0];
    // Milliseconds, like the stored timestamps; the server clock is this machine's.
    assert_eq!(now.timestamp_subsec_micros() % 1000, 0);
    assert!(
        now >= before - chrono::Duration::milliseconds(1) && now <= after,
        "{now} is not between {before} and {after}"
    );
    let seconds: Vec<i64> = times[1..]
        .iter()
        .map(|t| (now - *t).num_seconds())
        .collect();
    assert_eq!(seconds, vec![3_600, 86_400, 7 * 86_400]);
    db.finish().await;
}

/// The views a BI tool lists: same names, same columns in the same order, on both backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_have_the_same_columns_on_both_backends() {
    let sqlite = FixtureDb::empty(Backend::Sqlite).await;
    let postgres = FixtureDb::empty(Backend::Postgres).await;
    let names = sqlite
        .lines("SELECT name FROM sqlite_schema WHERE type = 'view' ORDER BY name")
        .await;
    let pg_names = postgres
        .lines(
            "SELECT table_name::text FROM information_schema.views
             WHERE table_schema = 'public' ORDER BY table_name",
        )
        .await;
    assert_eq!(names, pg_names);
    assert_eq!(
        names,
        [
            "analytics_clock",
            "editing_project_current_status",
            "editing_project_daily_transitions",
            "editing_project_lead_times",
            // One row per producing job (migration 0013).
            "editing_project_productions",
            "editing_project_status_intervals",
            "editing_project_status_summary",
            // A facts table of 0012, a view over history with the same columns since 0014.
            "editing_project_stretches",
            // The current state since migration 0009 (over editing_project_rows).
            "editing_projects",
        ]
    );
    for view in &names {
        let sqlite_columns = sqlite
            .lines(&format!(
                "SELECT name FROM pragma_table_info('{view}') ORDER BY cid"
            ))
            .await;
        let pg_columns = postgres
            .lines(&format!(
                "SELECT column_name::text FROM information_schema.columns
                 WHERE table_schema = 'public' AND table_name = '{view}'
                 ORDER BY ordinal_position"
            ))
            .await;
        assert_eq!(sqlite_columns, pg_columns, "columns of {view}");
    }
    sqlite.finish().await;
    postgres.finish().await;
}
