//! The hand-written history every analytics test reads, and a database to load it into.
//!
//! Fourteen projects over three UTC days, 2030-01-01 to 2030-01-03, written so each edge of
//! the views is exercised: live and regular projects, a produce failure and retry across
//! midnight, a Producing that polling missed, a project first seen already Produced and
//! produced again, removed ones, one that was removed and returned, projects still in their
//! first state, an unknown Status, and millisecond timestamps whose differences are not exact
//! binary fractions (600.123 s, the float-noise trap).
//!
//! "Now" is pinned at [`NOW`] by replacing the `analytics_clock` view (the one place analytics
//! reads the time), so "stuck for an hour" and "the last 24 hours" have exact answers.
//!
//! The same SQL loads both backends: PostgreSQL casts the timestamp literals to timestamptz,
//! SQLite stores them as the fixed-width text the daemon writes.

use ice_sync::storage::{Cell, Store};
use ice_testkit::Collation;

use crate::support::{Backend, TestDatabase};

/// The pinned "now" of every fixture test.
pub const NOW: &str = "2030-01-03T12:00:00.000Z";

/// The current rows' own columns; the status pair, first_seen_at, last_changed_at and
/// history_seq are derived from [`HISTORY`]. `-` is NULL. Present projects were last polled
/// five minutes before [`NOW`]; a removal sets removed_at, last_polled_at and last_changed_at.
///
/// Stored the way the daemon stores them (migration 0009): the row, as of its last change, in
/// `editing_project_rows`, the latest poll in `tracked_projects`, so the `editing_projects`
/// view must combine the two. [`UNTRACKED`] has no tracking row: the view shows its row's own.
const PROJECTS: &str = "
    project_id        | project_type       | title               | removed_at               | last_polled_at
    l01-finished      | LiveEditingProject | Live desk 1         | -                        | 2030-01-03T11:55:00.000Z
    l02-canceled      | LiveEditingProject | Live desk 2         | -                        | 2030-01-03T11:55:00.000Z
    l03-on-air        | LiveEditingProject | Live desk 3         | -                        | 2030-01-03T11:55:00.000Z
    l04-removed       | LiveEditingProject | Live desk 4         | 2030-01-01T21:00:00.000Z | 2030-01-01T21:00:00.000Z
    r01-produced      | EditingProject     | Spring campaign cut | -                        | 2030-01-03T11:55:00.000Z
    r02-retried       | EditingProject     | Product launch v2   | -                        | 2030-01-03T11:55:00.000Z
    r03-stuck         | EditingProject     | Weekly recap draft  | -                        | 2030-01-03T11:55:00.000Z
    r04-producing-new | EditingProject     | Tutorial edit       | -                        | 2030-01-03T11:55:00.000Z
    r05-draft-once    | EditingProject     | Interview final     | -                        | 2030-01-03T11:55:00.000Z
    r06-removed       | EditingProject     | Trailer cut         | 2030-01-02T12:00:00.000Z | 2030-01-02T12:00:00.000Z
    r07-returned      | EditingProject     | Brand teaser        | -                        | 2030-01-03T11:55:00.000Z
    r08-skipped       | EditingProject     | Customer story      | -                        | 2030-01-03T11:55:00.000Z
    r09-reproduced    | EditingProject     | Event highlights    | -                        | 2030-01-03T11:55:00.000Z
    r10-unknown       | EditingProject     | Behind the scenes   | -                        | 2030-01-03T11:55:00.000Z
";

/// Producing jobs (`media_producing_jobs`, migration 0013) of the fixture's projects:
/// failures with two codes on two templates, a retry across midnight, one running, one on
/// a project without a template. `-` is NULL. Production times: j01 120, j02 60.5, j03
/// 240, j04 30, j05 60, j06 600, j08 45.25 seconds.
const JOBS: &str = "
    job_id | project_id        | status     | code                       | template_id | create_time              | complete_time
    j01    | r01-produced      | Success    | -                          | T1          | 2030-01-01T10:00:00.000Z | 2030-01-01T10:02:00.000Z
    j02    | r02-retried       | Failed     | InvalidMaterial.NotFound   | T1          | 2030-01-01T23:50:00.000Z | 2030-01-01T23:51:00.500Z
    j03    | r02-retried       | Success    | -                          | T1          | 2030-01-02T00:10:00.000Z | 2030-01-02T00:14:00.000Z
    j04    | r09-reproduced    | Failed     | ProduceTimelineFormatError | T2          | 2030-01-02T08:00:00.000Z | 2030-01-02T08:00:30.000Z
    j05    | r09-reproduced    | Failed     | InvalidMaterial.NotFound   | T2          | 2030-01-02T09:00:00.000Z | 2030-01-02T09:01:00.000Z
    j06    | r09-reproduced    | Success    | -                          | T2          | 2030-01-02T10:00:00.000Z | 2030-01-02T10:10:00.000Z
    j07    | r04-producing-new | Processing | -                          | T2          | 2030-01-03T11:00:00.000Z | -
    j08    | r03-stuck         | Failed     | InvalidMaterial.NotFound   | -           | 2030-01-03T09:00:00.000Z | 2030-01-03T09:00:45.250Z
";

/// A removed project nobody tracks any more.
const UNTRACKED: &str = "r06-removed";

/// The history, oldest first per project; `-` is NULL. The `previous_*` columns are the row
/// before's values (NULL after a removal: a return is written like a first sighting).
const HISTORY: &str = "
    project_id        | seq | observed_at              | event      | status        | business_status
    # Live: Reserving -> BroadCasting -> LiveFinished; Status stays Editing.
    l01-finished      | 1   | 2030-01-01T07:00:00.000Z | first_seen | Editing       | Reserving
    l01-finished      | 2   | 2030-01-02T18:00:00.000Z | changed    | Editing       | BroadCasting
    l01-finished      | 3   | 2030-01-02T20:30:00.750Z | changed    | Editing       | LiveFinished
    l02-canceled      | 1   | 2030-01-02T09:00:00.000Z | first_seen | Editing       | Reserving
    l02-canceled      | 2   | 2030-01-02T15:00:00.000Z | changed    | Editing       | ReservationCanceled
    l03-on-air        | 1   | 2030-01-03T06:00:00.000Z | first_seen | Editing       | Reserving
    l03-on-air        | 2   | 2030-01-03T11:00:00.000Z | changed    | Editing       | BroadCasting
    l04-removed       | 1   | 2030-01-01T09:00:00.000Z | first_seen | Editing       | Reserving
    l04-removed       | 2   | 2030-01-01T21:00:00.000Z | removed    | -             | -
    # Regular: the whole lifecycle, at millisecond precision.
    r01-produced      | 1   | 2030-01-01T09:00:00.000Z | first_seen | Draft         | -
    r01-produced      | 2   | 2030-01-01T09:10:00.250Z | changed    | Editing       | -
    r01-produced      | 3   | 2030-01-01T09:20:00.125Z | changed    | Producing     | -
    r01-produced      | 4   | 2030-01-01T09:45:30.500Z | changed    | Produced      | -
    # Fails just after midnight (UTC), is retried and produced.
    r02-retried       | 1   | 2030-01-01T22:00:00.000Z | first_seen | Draft         | -
    r02-retried       | 2   | 2030-01-01T22:30:00.000Z | changed    | Editing       | -
    r02-retried       | 3   | 2030-01-01T23:50:00.333Z | changed    | Producing     | -
    r02-retried       | 4   | 2030-01-02T00:20:00.000Z | changed    | ProduceFailed | -
    r02-retried       | 5   | 2030-01-02T01:00:00.000Z | changed    | Producing     | -
    r02-retried       | 6   | 2030-01-02T01:30:00.999Z | changed    | Produced      | -
    # Polling missed Editing; Producing for three hours at NOW.
    r03-stuck         | 1   | 2030-01-03T08:00:00.000Z | first_seen | Draft         | -
    r03-stuck         | 2   | 2030-01-03T09:00:00.500Z | changed    | Producing     | -
    # Seen once each, still in their first state.
    r04-producing-new | 1   | 2030-01-03T11:30:00.000Z | first_seen | Producing     | -
    r05-draft-once    | 1   | 2030-01-02T10:00:00.000Z | first_seen | Draft         | -
    r06-removed       | 1   | 2030-01-01T12:00:00.000Z | first_seen | Draft         | -
    r06-removed       | 2   | 2030-01-01T13:00:00.000Z | changed    | Editing       | -
    r06-removed       | 3   | 2030-01-02T12:00:00.000Z | removed    | -             | -
    r07-returned      | 1   | 2030-01-01T08:00:00.000Z | first_seen | Editing       | -
    r07-returned      | 2   | 2030-01-02T08:00:00.000Z | removed    | -             | -
    r07-returned      | 3   | 2030-01-02T20:00:00.000Z | returned   | Editing       | -
    r07-returned      | 4   | 2030-01-03T10:30:00.000Z | changed    | Producing     | -
    r07-returned      | 5   | 2030-01-03T11:15:00.123Z | changed    | Produced      | -
    # Polling missed Producing.
    r08-skipped       | 1   | 2030-01-02T09:00:00.000Z | first_seen | Editing       | -
    r08-skipped       | 2   | 2030-01-02T09:05:00.000Z | changed    | Produced      | -
    # Tracked when already Produced, then edited and produced again.
    r09-reproduced    | 1   | 2030-01-01T10:00:00.000Z | first_seen | Produced      | -
    r09-reproduced    | 2   | 2030-01-02T11:00:00.000Z | changed    | Editing       | -
    r09-reproduced    | 3   | 2030-01-02T11:30:00.000Z | changed    | Producing     | -
    r09-reproduced    | 4   | 2030-01-02T12:10:00.456Z | changed    | Produced      | -
    # A Status this build has never heard of, stored verbatim.
    r10-unknown       | 1   | 2030-01-02T14:00:00.000Z | first_seen | Draft         | -
    r10-unknown       | 2   | 2030-01-02T15:00:00.000Z | changed    | Archived      | -
";

/// The data rows of a `|` table: header line and `#` comments skipped, `-` as None.
fn parse_table(text: &str) -> Vec<Vec<Option<&str>>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .skip(1)
        .map(|l| {
            l.split('|')
                .map(str::trim)
                .map(|cell| (cell != "-").then_some(cell))
                .collect()
        })
        .collect()
}

/// A migrated database of one backend holding the fixture, with "now" pinned.
pub struct FixtureDb {
    pub backend: Backend,
    pub store: Store,
    /// Declared after the store, so the database is removed after the pool is dropped.
    pub db: TestDatabase,
}

impl FixtureDb {
    /// A fresh database with the migrations applied, the fixture loaded and the clock pinned.
    pub async fn load(backend: Backend) -> FixtureDb {
        let db = FixtureDb::empty(backend).await;
        db.execute_script(&fixture_sql()).await;
        db.pin_clock(NOW).await;
        db
    }

    /// A fresh, migrated, empty database. PostgreSQL databases are created with the C
    /// collation, so text sorts byte-wise as on SQLite whatever the server's default is.
    pub async fn empty(backend: Backend) -> FixtureDb {
        let db = TestDatabase::create(backend, Collation::Bytewise)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        let store = Store::connect(&db.settings(2)).await.expect("connect");
        store.migrate().await.expect("migrate");
        FixtureDb { backend, store, db }
    }

    /// Closes the pool; dropping the value removes the database, also when a test panics.
    pub async fn finish(self) {
        self.store.close().await;
    }

    /// Replaces `analytics_clock` so that "now" is `at` (same columns and types).
    pub async fn pin_clock(&self, at: &str) {
        let sql = match self.backend {
            Backend::Postgres => format!(
                "CREATE OR REPLACE VIEW analytics_clock AS
                 SELECT now_at,
                        now_at - INTERVAL '1 hour' AS hour_ago,
                        now_at - INTERVAL '1 day' AS day_ago,
                        now_at - INTERVAL '7 days' AS week_ago
                 FROM (SELECT TIMESTAMPTZ '{at}' AS now_at) n"
            ),
            Backend::Sqlite => format!(
                "DROP VIEW analytics_clock;
                 CREATE VIEW analytics_clock AS
                 SELECT strftime('%Y-%m-%dT%H:%M:%fZ', '{at}') AS now_at,
                        strftime('%Y-%m-%dT%H:%M:%fZ', '{at}', '-1 hour') AS hour_ago,
                        strftime('%Y-%m-%dT%H:%M:%fZ', '{at}', '-1 day') AS day_ago,
                        strftime('%Y-%m-%dT%H:%M:%fZ', '{at}', '-7 days') AS week_ago"
            ),
        };
        self.execute_script(&sql).await;
    }

    /// Runs statements separated by `;` (no parameters), on a connection of the test's own.
    pub async fn execute_script(&self, sql: &str) {
        self.db
            .execute_script(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}\n{e:#}"));
    }

    /// The rows of a query as `a | b | c` lines, rendered the same way on both backends
    /// (see [`cell`]).
    pub async fn lines(&self, sql: &str) -> Vec<String> {
        self.try_lines(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}\n{e}"))
    }

    pub async fn try_lines(
        &self,
        sql: &str,
    ) -> Result<Vec<String>, ice_sync::storage::StorageError> {
        let table = self.store.query_cells(sql).await?;
        let headers = table.headers.clone();
        Ok(table
            .rows
            .iter()
            .map(|row| {
                row.iter()
                    .enumerate()
                    .map(|(i, c)| cell(c, headers.get(i).map_or("?", String::as_str)))
                    .collect::<Vec<_>>()
                    .join(" | ")
            })
            .collect())
    }
}

/// The fixture as SQL: history rows with their `previous_*` columns, the current rows
/// the engine would have written for that history, then the producing jobs.
pub fn fixture_sql() -> String {
    projects_fixture_sql() + &jobs_fixture_sql()
}

/// The fixture's history and current rows only: what a database from before the producing
/// jobs (migration 0013) can hold.
pub fn projects_fixture_sql() -> String {
    let q = |v: Option<&str>| v.map_or("NULL".to_string(), |v| format!("'{v}'"));
    let history = parse_table(HISTORY);
    let mut sql = String::new();
    for (i, row) in history.iter().enumerate() {
        let [id, seq, at, event, status, business] = row[..] else {
            panic!("HISTORY row {row:?} does not have 6 cells")
        };
        let (id, seq, at, event) = (id.unwrap(), seq.unwrap(), at.unwrap(), event.unwrap());
        let previous = i
            .checked_sub(1)
            .map(|p| &history[p])
            .filter(|p| p[0] == Some(id));
        let (prev_status, prev_business) = previous.map_or((None, None), |p| (p[4], p[5]));
        sql += &format!(
            "INSERT INTO editing_project_history (project_id, seq, observed_at, event, \
             previous_status, status, previous_business_status, business_status, request_id) \
             VALUES ('{id}', {seq}, '{at}', '{event}', {}, {}, {}, {}, 'req-{id}-{seq}');\n",
            q(prev_status),
            q(status),
            q(prev_business),
            q(business)
        );
    }
    for row in parse_table(PROJECTS) {
        let [Some(id), Some(project_type), Some(title), removed_at, Some(polled)] = row[..] else {
            panic!("PROJECTS row {row:?} does not have 5 cells")
        };
        let rows: Vec<_> = history.iter().filter(|h| h[0] == Some(id)).collect();
        let (first, last) = (
            rows.first().expect("history"),
            rows.last().expect("history"),
        );
        // A removal keeps the last observed pair on the current row.
        let pair = rows
            .iter()
            .rev()
            .find(|h| h[3] != Some("removed"))
            .expect("an observation");
        let (first_seen, last_changed, seq) =
            (first[2].unwrap(), last[2].unwrap(), last[1].unwrap());
        sql += &format!(
            "INSERT INTO editing_project_rows (project_id, title, status, business_status, \
             project_type, first_seen_at, last_polled_at, last_changed_at, removed_at, \
             history_seq, last_request_id) \
             VALUES ('{id}', '{title}', {}, {}, '{project_type}', '{first_seen}', \
             '{last_changed}', '{last_changed}', {}, {seq}, 'req-{id}-{seq}');\n",
            q(pair[4]),
            q(pair[5]),
            q(removed_at),
        );
        if id == UNTRACKED {
            assert_eq!(
                polled, last_changed,
                "{id}: untracked, so last polled at its last change"
            );
        } else {
            sql += &format!(
                "INSERT INTO tracked_projects (project_id, added_at, source, next_poll_at, \
                 last_polled_at, last_request_id) \
                 VALUES ('{id}', '{first_seen}', 'cli', '{polled}', '{polled}', 'poll-{id}');\n"
            );
        }
    }
    sql
}

/// The fixture's producing jobs (`media_producing_jobs`).
fn jobs_fixture_sql() -> String {
    let q = |v: Option<&str>| v.map_or("NULL".to_string(), |v| format!("'{v}'"));
    let mut sql = String::new();
    for row in parse_table(JOBS) {
        let [Some(job), Some(project), Some(status), code, template, Some(created), completed] =
            row[..]
        else {
            panic!("JOBS row {row:?} does not have 7 cells")
        };
        let polled = completed.unwrap_or(created);
        sql += &format!(
            "INSERT INTO media_producing_jobs (job_id, project_id, status, code, template_id, \
             create_time, modified_time, complete_time, first_seen_at, last_polled_at, \
             last_changed_at, content_hash) \
             VALUES ('{job}', '{project}', '{status}', {}, {}, '{created}', '{polled}', {}, \
             '{created}', '{polled}', '{polled}', 0);\n",
            q(code),
            q(template),
            q(completed),
        );
    }
    sql
}

/// Doubles are shown rounded to the millisecond (what the views promise), without trailing
/// zeros, so 600.0 and 600 read the same and an AVG computed in a different order by the
/// two backends compares equal. NULL is `NULL`.
fn float(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// One value as both backends render it: text as is, integers, floats by [`float`],
/// timestamps in SQLite's fixed-width text form.
fn cell(c: &Cell, column: &str) -> String {
    match c {
        Cell::Null => "NULL".into(),
        Cell::Text(v) | Cell::Date(v) => v.clone(),
        Cell::Int(v) => v.to_string(),
        Cell::Float(v) => float(*v),
        Cell::Bool(v) => v.to_string(),
        Cell::Timestamp(v) => v.to_text(),
        Cell::Unsupported(other) => panic!(
            "column {column} is {other}: return text, integers, double precision, timestamptz or \
             date (a numeric, e.g. SUM of a bigint, reads differently on SQLite: cast it)"
        ),
    }
}

/// An expected table written as aligned `a | b | c` lines: whitespace around cells and blank
/// lines are ignored.
pub fn table(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.split('|').map(str::trim).collect::<Vec<_>>().join(" | "))
        .collect()
}

/// Asserts that a query returns exactly `expected` (in order), naming the backend on failure.
pub async fn assert_rows(db: &FixtureDb, sql: &str, expected: &str) {
    let got = db.lines(sql).await;
    let want = table(expected);
    assert_eq!(
        got,
        want,
        "\n{:?}: {sql}\n--- got:\n{}\n--- expected:\n{}\n",
        db.backend,
        got.join("\n"),
        want.join("\n")
    );
}
