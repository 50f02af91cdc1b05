//! The analytics benchmark: a generated 1,000,000-row history in a fresh PostgreSQL database
//! and a fresh SQLite file (schema from the real migrations), then the latency of the
//! queries dashboards and `ice-sync history` run against it, with their plans
//! (`EXPLAIN (ANALYZE, BUFFERS)` on PostgreSQL, `EXPLAIN QUERY PLAN` on SQLite).
//! docs/analytics.md records one run.
//!
//! ```sh
//! cargo run --release --example history_bench                    # both backends, 1M rows
//! cargo run --release --example history_bench -- --backend sqlite --rows 200000 --no-plans
//! ```
//!
//! PostgreSQL comes from `ICE_SYNC_TEST_PG_URL` (see `ice_testkit`), like the tests; the
//! benchmark database is dropped at the end. The data is deterministic apart from its position in time: it ends
//! today, so "the last 24 hours" and "stuck for an hour" select what they would in production.

use std::time::{Duration, Instant};

use chrono::{Duration as ChronoDuration, Utc};
use clap::Parser;
use ice_sync::storage::{sql, Store};
use ice_sync::{app, config};
use ice_testkit::{Backend, Collation, SqlSession, TestDatabase};

#[derive(Debug, Parser)]
struct Args {
    /// History rows to generate (about; projects have 3 to 6 rows each)
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// sqlite, postgres or both
    #[arg(long, default_value = "both")]
    backend: String,
    /// Timed runs per query (after one warm-up run)
    #[arg(long, default_value_t = 30)]
    runs: usize,
    /// Do not print query plans
    #[arg(long)]
    no_plans: bool,
}

/// Average history rows per generated project (see the mix in `GENERATE_HISTORY`).
const ROWS_PER_PROJECT: f64 = 3.85;

/// The generated life cycles: 20% live projects (Reserving -> BroadCasting -> LiveFinished),
/// 55% produced first time, 10% produced after one failure, 10% still Producing, 5% removed
/// while Editing. Project i is first seen at base + 30 s * i (so the data spans about 90 days
/// for 1M rows); its steps are 10 to 70 minutes apart. `{id}` and `{ts}` are the only
/// dialect differences.
const GENERATE_HISTORY: &str = "
INSERT INTO editing_project_history (project_id, seq, observed_at, event, previous_status, status,
                                     previous_business_status, business_status)
WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {projects}),
pattern (kind, step, status, business_status) AS (VALUES
    ('live', 1, 'Editing', 'Reserving'), ('live', 2, 'Editing', 'BroadCasting'),
    ('live', 3, 'Editing', 'LiveFinished'),
    ('ok', 1, 'Draft', NULL), ('ok', 2, 'Editing', NULL), ('ok', 3, 'Producing', NULL),
    ('ok', 4, 'Produced', NULL),
    ('retry', 1, 'Draft', NULL), ('retry', 2, 'Editing', NULL), ('retry', 3, 'Producing', NULL),
    ('retry', 4, 'ProduceFailed', NULL), ('retry', 5, 'Producing', NULL),
    ('retry', 6, 'Produced', NULL),
    ('stuck', 1, 'Draft', NULL), ('stuck', 2, 'Editing', NULL), ('stuck', 3, 'Producing', NULL),
    ('removed', 1, 'Draft', NULL), ('removed', 2, 'Editing', NULL), ('removed', 3, NULL, NULL)
),
projects AS (
    SELECT i, {id} AS project_id,
           CASE WHEN i % 20 < 4 THEN 'live' WHEN i % 20 < 6 THEN 'retry'
                WHEN i % 20 < 8 THEN 'stuck' WHEN i % 20 = 8 THEN 'removed' ELSE 'ok' END AS kind
    FROM n
)
SELECT p.project_id, s.step, {ts},
       CASE WHEN s.step = 1 THEN 'first_seen' WHEN s.status IS NULL THEN 'removed' ELSE 'changed' END,
       prev.status, s.status, prev.business_status, s.business_status
FROM projects p
JOIN pattern s ON s.kind = p.kind
LEFT JOIN pattern prev ON prev.kind = p.kind AND prev.step = s.step - 1";

/// The current rows, consistent with the history: the latest row's pair (the one before a
/// removal for removed projects), `history_seq` = the latest seq.
const GENERATE_PROJECTS: &str = "
INSERT INTO editing_project_rows (project_id, title, status, business_status, project_type,
                              first_seen_at, last_polled_at, last_changed_at, removed_at, history_seq)
SELECT h.project_id, 'Bench ' || h.project_id,
       CASE WHEN h.event = 'removed' THEN h.previous_status ELSE h.status END,
       CASE WHEN h.event = 'removed' THEN h.previous_business_status ELSE h.business_status END,
       CASE WHEN COALESCE(h.business_status, h.previous_business_status) IS NULL
            THEN 'EditingProject' ELSE 'LiveEditingProject' END,
       f.observed_at, h.observed_at, h.observed_at,
       CASE WHEN h.event = 'removed' THEN h.observed_at END,
       h.seq
FROM editing_project_history h
JOIN (SELECT project_id, MAX(seq) AS last_seq FROM editing_project_history GROUP BY project_id) l
  ON l.project_id = h.project_id AND l.last_seq = h.seq
JOIN editing_project_history f ON f.project_id = h.project_id AND f.seq = 1";

/// What is measured. `$1` is a project ID (a different one each run) where a query has it.
const QUERIES: &[(&str, &str)] = &[
    ("one project: history (ice-sync history)", sql::HISTORY),
    (
        "one project: status intervals",
        "SELECT * FROM editing_project_status_intervals WHERE project_id = $1",
    ),
    (
        "one project: lead times",
        "SELECT * FROM editing_project_lead_times WHERE project_id = $1",
    ),
    (
        "status summary (whole view)",
        "SELECT * FROM editing_project_status_summary ORDER BY projects DESC",
    ),
    (
        "stuck in Producing > 1 h (top 20)",
        "SELECT project_id, since, seconds_in_status FROM editing_project_current_status
         WHERE status = 'Producing' AND seconds_in_status > 3600
         ORDER BY seconds_in_status DESC LIMIT 20",
    ),
    (
        "daily transitions, one week",
        "SELECT * FROM editing_project_daily_transitions
         WHERE day >= '{week_start}' AND day < '{week_end}' ORDER BY day",
    ),
    (
        "history rows of the last 24 h, per status",
        "SELECT status, COUNT(*) AS n FROM editing_project_history
         WHERE observed_at >= (SELECT day_ago FROM analytics_clock) GROUP BY status",
    ),
    (
        "full scan: time in each status (all intervals)",
        "SELECT status, COUNT(*) AS n, AVG(duration_seconds) AS avg_s
         FROM editing_project_status_intervals WHERE left_at IS NOT NULL GROUP BY status",
    ),
    (
        "full scan: lead times by outcome (all projects)",
        "SELECT outcome, COUNT(*) AS n, AVG(seconds_producing) AS avg_s
         FROM editing_project_lead_times WHERE producing_at IS NOT NULL GROUP BY outcome",
    ),
    (
        "full scan: daily transitions (all days)",
        "SELECT day, SUM(transitions) AS n FROM editing_project_daily_transitions GROUP BY day",
    ),
];

struct Measured {
    name: &'static str,
    rows: usize,
    median: Duration,
    p95: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let projects = ((args.rows as f64) / ROWS_PER_PROJECT).ceil() as u64;
    // The data ends about now: project i is first seen at base + 30 s * i.
    let span = ChronoDuration::seconds(30 * projects as i64);
    let base = (Utc::now() - span - ChronoDuration::hours(2))
        .format("%Y-%m-%dT%H:%M:%S.000Z")
        .to_string();
    let week_start = (Utc::now() - span / 2).format("%Y-%m-%d").to_string();
    let week_end = (Utc::now() - span / 2 + ChronoDuration::days(7))
        .format("%Y-%m-%d")
        .to_string();
    let mut results = Vec::new();
    for backend in ["sqlite", "postgres"] {
        if args.backend != "both" && args.backend != backend {
            continue;
        }
        let (store, db) = open(backend).await?;
        let started = Instant::now();
        generate(&db, projects, &base).await?;
        let rows = scalar(&store, "SELECT COUNT(*) FROM editing_project_history").await?;
        let present = scalar(
            &store,
            "SELECT COUNT(*) FROM editing_projects WHERE removed_at IS NULL",
        )
        .await?;
        println!(
            "\n== {backend}: {rows} history rows, {projects} projects ({present} present), generated and analyzed in {:.1} s\n",
            started.elapsed().as_secs_f64()
        );
        // The queries run on a session of the benchmark's own: one connection, each
        // statement prepared once, as on one of the daemon's pooled connections.
        let mut session = db.sql().await?;
        for (name, query) in QUERIES {
            let query = query
                .replace("{week_start}", &week_start)
                .replace("{week_end}", &week_end);
            let measured = measure(&mut session, name, &query, projects, args.runs).await?;
            if !args.no_plans {
                println!("-- {name}\n{}\n", plan(&mut session, &query).await?);
            }
            results.push((backend, measured));
        }
        session.close().await;
        store.close().await;
        // Removes the SQLite file or drops the PostgreSQL database.
        drop(db);
    }
    println!(
        "\n{:<10} {:<48} {:>6} {:>11} {:>11}",
        "backend", "query", "rows", "median ms", "p95 ms"
    );
    for (backend, m) in &results {
        println!(
            "{:<10} {:<48} {:>6} {:>11.3} {:>11.3}",
            backend,
            m.name,
            m.rows,
            m.median.as_secs_f64() * 1000.0,
            m.p95.as_secs_f64() * 1000.0
        );
    }
    Ok(())
}

/// A migrated, empty store in a throwaway database (removed when the second value is
/// dropped), opened by the same `app` code and `[database]` settings as the daemon's.
async fn open(backend: &str) -> anyhow::Result<(Store, TestDatabase)> {
    let backend = if backend == "sqlite" {
        Backend::Sqlite
    } else {
        Backend::Postgres
    };
    let db = TestDatabase::create(backend, Collation::ServerDefault).await?;
    let settings = config::load_from(
        None,
        [
            ("ICE_SYNC__DATABASE__URL".to_string(), db.url.clone()),
            (
                "ICE_SYNC__DATABASE__MAX_CONNECTIONS".to_string(),
                "2".to_string(),
            ),
        ],
    )?;
    let store = app::open_store(&settings).await?;
    Ok((store, db))
}

async fn generate(db: &TestDatabase, projects: u64, base: &str) -> anyhow::Result<()> {
    let offset = "i * 30 + (s.step - 1) * (600 + i % 3600)";
    let history = GENERATE_HISTORY.replace("{projects}", &projects.to_string());
    let (history, analyze) = if db.backend == Backend::Postgres {
        (
            history.replace("{id}", "lpad(to_hex(i), 32, '0')").replace(
                "{ts}",
                &format!("TIMESTAMPTZ '{base}' + make_interval(secs => {offset})"),
            ),
            // One statement each: PostgreSQL refuses VACUUM in a multi-statement string
            // (an implicit transaction block).
            &[
                "VACUUM ANALYZE editing_project_history",
                "VACUUM ANALYZE editing_project_rows",
            ][..],
        )
    } else {
        (
            history.replace("{id}", "printf('%032x', i)").replace(
                "{ts}",
                &format!(
                    "strftime('%Y-%m-%dT%H:%M:%fZ', '{base}', '+' || ({offset}) || ' seconds')"
                ),
            ),
            &["ANALYZE"][..],
        )
    };
    let mut session = db.sql().await?;
    session.execute_script(&history).await?;
    session.execute_script(GENERATE_PROJECTS).await?;
    for statement in analyze {
        session.execute_script(statement).await?;
    }
    session.close().await;
    Ok(())
}

async fn scalar(store: &Store, query: &str) -> anyhow::Result<i64> {
    Ok(store.query_i64(query).await?)
}

/// The project ID of run `n`: spread over the whole range, the same on both backends.
fn project_id(n: usize, projects: u64) -> String {
    let i = (n as u64).wrapping_mul(7_919).wrapping_mul(104_729) % projects + 1;
    format!("{i:032x}")
}

/// Runs the query once to warm up, then `runs` times; rows of the last run.
async fn measure(
    session: &mut SqlSession,
    name: &'static str,
    query: &str,
    projects: u64,
    runs: usize,
) -> anyhow::Result<Measured> {
    let mut times = Vec::with_capacity(runs);
    let mut rows = 0;
    for n in 0..=runs {
        let id = project_id(n, projects);
        let started = Instant::now();
        let bind = query.contains("$1").then_some(id.as_str());
        rows = session.fetch_count(query, bind).await?;
        if n > 0 {
            times.push(started.elapsed());
        }
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    Ok(Measured {
        name,
        rows,
        median: at(0.5),
        p95: at(0.95),
    })
}

/// The plan the backend uses for the query, for project 24: one that failed and was
/// retried (six history rows), so every part of the per-project views runs.
async fn plan(session: &mut SqlSession, query: &str) -> anyhow::Result<String> {
    let id = format!("{:032x}", 24);
    let bind = query.contains("$1").then_some(id.as_str());
    Ok(session.explain_analyze(query, bind).await?.join("\n"))
}
