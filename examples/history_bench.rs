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
//! PostgreSQL comes from `ICE_SYNC_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), like the tests; the benchmark database is
//! dropped at the end. The data is deterministic apart from its position in time: it ends
//! today, so "the last 24 hours" and "stuck for an hour" select what they would in production.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{Duration as ChronoDuration, Utc};
use clap::Parser;
use ice_sync::config::{DatabaseKind, DatabaseSettings};
use ice_sync::storage::{sql, Store};
use sqlx::{Connection, Row};

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
INSERT INTO editing_projects (project_id, title, status, business_status, project_type,
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
        let (store, cleanup) = open(backend).await?;
        let started = Instant::now();
        generate(&store, projects, &base).await?;
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
        for (name, query) in QUERIES {
            let query = query
                .replace("{week_start}", &week_start)
                .replace("{week_end}", &week_end);
            let measured = measure(&store, name, &query, projects, args.runs).await?;
            if !args.no_plans {
                println!("-- {name}\n{}\n", plan(&store, &query).await?);
            }
            results.push((backend, measured));
        }
        store.close().await;
        if let Cleanup::PostgresDatabase(name) = cleanup {
            drop_database(&name).await?;
        }
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

fn pg_admin_url() -> String {
    std::env::var("ICE_SYNC_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// What to delete once a backend is measured.
enum Cleanup {
    SqliteDir(#[allow(dead_code)] tempfile::TempDir),
    PostgresDatabase(String),
}

/// A migrated, empty store, and what to delete afterwards.
async fn open(backend: &str) -> anyhow::Result<(Store, Cleanup)> {
    let (url, kind, cleanup) = if backend == "sqlite" {
        let dir = tempfile::tempdir()?;
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        );
        (url, DatabaseKind::Sqlite, Cleanup::SqliteDir(dir))
    } else {
        let admin = pg_admin_url();
        let name = format!("ice_sync_bench_{:08x}", rand::random::<u32>());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .with_context(|| format!("connecting to {admin} (set ICE_SYNC_TEST_PG_URL)"))?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        let base = admin.rsplit_once('/').context("URL has no database")?.0;
        (
            format!("{base}/{name}"),
            DatabaseKind::Postgres,
            Cleanup::PostgresDatabase(name),
        )
    };
    let store = Store::connect(&DatabaseSettings {
        url: url.into(),
        kind,
        max_connections: 2,
    })
    .await?;
    store.migrate().await?;
    Ok((store, cleanup))
}

async fn drop_database(name: &str) -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect(&pg_admin_url()).await?;
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    Ok(())
}

async fn generate(store: &Store, projects: u64, base: &str) -> anyhow::Result<()> {
    let offset = "i * 30 + (s.step - 1) * (600 + i % 3600)";
    let history = GENERATE_HISTORY.replace("{projects}", &projects.to_string());
    match store {
        Store::Postgres(s) => {
            let history = history.replace("{id}", "lpad(to_hex(i), 32, '0')").replace(
                "{ts}",
                &format!("TIMESTAMPTZ '{base}' + make_interval(secs => {offset})"),
            );
            sqlx::query(&history).execute(&s.pool).await?;
            sqlx::query(GENERATE_PROJECTS).execute(&s.pool).await?;
            sqlx::query("VACUUM ANALYZE editing_project_history")
                .execute(&s.pool)
                .await?;
            sqlx::query("VACUUM ANALYZE editing_projects")
                .execute(&s.pool)
                .await?;
        }
        Store::Sqlite(s) => {
            let history = history.replace("{id}", "printf('%032x', i)").replace(
                "{ts}",
                &format!(
                    "strftime('%Y-%m-%dT%H:%M:%fZ', '{base}', '+' || ({offset}) || ' seconds')"
                ),
            );
            sqlx::query(&history).execute(&s.pool).await?;
            sqlx::query(GENERATE_PROJECTS).execute(&s.pool).await?;
            sqlx::query("ANALYZE").execute(&s.pool).await?;
        }
    }
    Ok(())
}

async fn scalar(store: &Store, query: &str) -> anyhow::Result<i64> {
    Ok(match store {
        Store::Postgres(s) => sqlx::query_scalar(query).fetch_one(&s.pool).await?,
        Store::Sqlite(s) => sqlx::query_scalar(query).fetch_one(&s.pool).await?,
    })
}

/// The project ID of run `n`: spread over the whole range, the same on both backends.
fn project_id(n: usize, projects: u64) -> String {
    let i = (n as u64).wrapping_mul(7_919).wrapping_mul(104_729) % projects + 1;
    format!("{i:032x}")
}

/// Runs the query once to warm up, then `runs` times; rows of the last run.
async fn measure(
    store: &Store,
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
        rows = match store {
            Store::Postgres(s) => {
                let mut q = sqlx::query(query);
                if query.contains("$1") {
                    q = q.bind(id);
                }
                q.fetch_all(&s.pool).await?.len()
            }
            Store::Sqlite(s) => {
                let mut q = sqlx::query(query);
                if query.contains("$1") {
                    q = q.bind(id);
                }
                q.fetch_all(&s.pool).await?.len()
            }
        };
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
async fn plan(store: &Store, query: &str) -> anyhow::Result<String> {
    let id = format!("{:032x}", 24);
    let lines: Vec<String> = match store {
        Store::Postgres(s) => {
            let explain = format!("EXPLAIN (ANALYZE, BUFFERS) {query}");
            let mut q = sqlx::query(&explain);
            if query.contains("$1") {
                q = q.bind(id);
            }
            q.fetch_all(&s.pool)
                .await?
                .iter()
                .map(|r| r.get::<String, _>(0))
                .collect()
        }
        Store::Sqlite(s) => {
            let explain = format!("EXPLAIN QUERY PLAN {query}");
            let mut q = sqlx::query(&explain);
            if query.contains("$1") {
                q = q.bind(id);
            }
            // (id, parent, notused, detail): indent each step under its parent.
            let mut depth = std::collections::HashMap::new();
            let mut lines = Vec::new();
            for row in q.fetch_all(&s.pool).await? {
                let (id, parent): (i64, i64) = (row.get(0), row.get(1));
                let d = depth.get(&parent).map_or(0, |d| d + 1);
                depth.insert(id, d);
                lines.push(format!("{}{}", "  ".repeat(d), row.get::<String, _>(3)));
            }
            lines
        }
    };
    Ok(lines.join("\n"))
}
