//! The retention benchmark: `sync_runs` generated in SQL (10,000,000 rows on PostgreSQL by
//! default, 1,000,000 on SQLite), nine in ten of them older than `retention.sync_runs`,
//! then one prune pass exactly as the daemon runs it (`retention::prune`: batches of
//! `retention::BATCH` rows, `retention::PAUSE` between them). Meanwhile a probe does what a
//! cycle does to the database every 100 ms (opens and closes a `sync_runs` row, counts the
//! due projects) and records how long each took: the daemon keeps polling while it prunes
//! when those stay short. Prints the table's size before and after, rows/s, and the probe's
//! latencies. docs/operations.md ("Retention") records one run.
//!
//! ```sh
//! cargo run --release --example prune_bench                          # both backends
//! cargo run --release --example prune_bench -- --backend postgres --rows 10000000
//! ```
//!
//! PostgreSQL comes from `ICE_SYNC_TEST_PG_URL` (see `ice_testkit`); the database is
//! dropped at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use ice_sync::contract::{ClaimScope, RunTotals};
use ice_sync::storage::Store;
use ice_sync::{app, config, retention};
use ice_testkit::{Backend, TestDatabase};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
struct Args {
    /// sync_runs rows on PostgreSQL
    #[arg(long, default_value_t = 10_000_000)]
    pg_rows: u64,
    /// sync_runs rows on SQLite
    #[arg(long, default_value_t = 1_000_000)]
    sqlite_rows: u64,
    /// sqlite, postgres or both
    #[arg(long, default_value = "both")]
    backend: String,
}

/// `{rows}` runs spread evenly over the last 900 days (run i started 900 d * (rows - i) /
/// rows ago), so nine in ten are older than the default `retention.sync_runs` of 90 days.
const GENERATE_PG: &str = "
INSERT INTO sync_runs (started_at, finished_at, outcome, projects_polled, projects_changed,
                       transitions, failures, replica_id, trigger)
SELECT now() - make_interval(secs => 77760000.0 * ({rows} - i) / {rows}),
       now() - make_interval(secs => 77760000.0 * ({rows} - i) / {rows}) + interval '2 seconds',
       'success', 1000, 3, 3, 0, 'bench-host:1234:abcd', 'scheduled'
FROM generate_series(1, {rows}) AS i";

const GENERATE_SQLITE: &str = "
WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
INSERT INTO sync_runs (started_at, finished_at, outcome, projects_polled, projects_changed,
                       transitions, failures, replica_id, trigger)
SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now', printf('-%.3f seconds', 77760000.0 * ({rows} - i) / {rows})),
       strftime('%Y-%m-%dT%H:%M:%fZ', 'now', printf('-%.3f seconds', 77760000.0 * ({rows} - i) / {rows} - 2)),
       'success', 1000, 3, 3, 0, 'bench-host:1234:abcd', 'scheduled'
FROM n";

const SIZE_PG: &str = "SELECT pg_total_relation_size('sync_runs')::bigint";
const SIZE_SQLITE: &str =
    "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name IN ('sync_runs', 'sync_runs_started_idx')";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.backend != "postgres" {
        bench(Backend::Sqlite, args.sqlite_rows).await?;
    }
    if args.backend != "sqlite" {
        bench(Backend::Postgres, args.pg_rows).await?;
    }
    Ok(())
}

async fn bench(backend: Backend, rows: u64) -> anyhow::Result<()> {
    let db = TestDatabase::new(backend).await;
    let settings = config::load_from(
        None,
        vec![("ICE_SYNC__DATABASE__URL".to_string(), db.url.clone())],
    )?;
    let store = app::open_store(&settings).await?;
    let (generate, size) = match backend {
        Backend::Postgres => (GENERATE_PG, SIZE_PG),
        Backend::Sqlite => (GENERATE_SQLITE, SIZE_SQLITE),
    };
    let started = Instant::now();
    db.execute_script(&generate.replace("{rows}", &rows.to_string()))
        .await?;
    if backend == Backend::Postgres {
        db.execute_script("VACUUM ANALYZE sync_runs").await?;
    }
    println!(
        "{backend:?}: {rows} sync_runs rows generated in {:.1} s, {} MiB (table and indexes)",
        started.elapsed().as_secs_f64(),
        mib(&store, size).await?
    );

    let stop = CancellationToken::new();
    let probe = tokio::spawn(probe(store.clone(), stop.clone()));
    let rules = retention::rules(&settings);
    let now = retention::now(&store, &ice_sync::clock::system()).await?;
    let started = Instant::now();
    let pruned = retention::prune(&store, &rules, now, &CancellationToken::new()).await?;
    let took = started.elapsed().as_secs_f64();
    stop.cancel();
    let latencies = probe.await?;
    let deleted: u64 = pruned.iter().map(|p| p.rows).sum();
    println!(
        "{backend:?}: pruned {deleted} rows in {took:.1} s: {:.0} rows/s (batches of {}, {} ms apart); {} rows left, {} MiB",
        deleted as f64 / took,
        retention::BATCH,
        retention::PAUSE.as_millis(),
        store.query_i64("SELECT count(*) FROM sync_runs").await?,
        mib(&store, size).await?
    );
    report_probe(backend, &latencies);
    store.close().await;
    Ok(())
}

async fn mib(store: &Store, size_sql: &str) -> anyhow::Result<String> {
    Ok(format!(
        "{:.0}",
        store.query_i64(size_sql).await? as f64 / (1024.0 * 1024.0)
    ))
}

/// A cycle's database round trips every 100 ms until `stop`: each one's duration.
async fn probe(store: Store, stop: CancellationToken) -> Vec<Duration> {
    let mut out = Vec::new();
    let clock = ice_sync::clock::system();
    let store = Arc::new(store);
    while !stop.is_cancelled() {
        let started = Instant::now();
        let now = ice_sync::domain::Timestamp::from(clock.now());
        let ok = async {
            let id = store.runs().begin_run(now, "probe", "scheduled").await?;
            store
                .claims()
                .count_due(ClaimScope::DueBy(now), now)
                .await?;
            store
                .runs()
                .finish_run(
                    id,
                    now,
                    &RunTotals {
                        outcome: "success".to_string(),
                        projects_polled: 0,
                        projects_changed: 0,
                        transitions: 0,
                        failures: 0,
                        overran: false,
                        error: None,
                    },
                )
                .await?;
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = ok {
            eprintln!("probe failed: {e:#}");
        }
        out.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    out
}

fn report_probe(backend: Backend, latencies: &[Duration]) {
    let mut ms: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    if ms.is_empty() {
        return;
    }
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    println!(
        "{backend:?}: a cycle's writes during the prune ({} probes): median {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}
