//! Retention and one region per database, on both backends: the prune deletes exactly the
//! bookkeeping older than each setting (history and current rows untouched, history keeping
//! its `sync_run_id`), `prune --dry-run` (the real binary) deletes nothing and prints the
//! counts `prune` then removes, a running daemon prunes on its own (the interval shortened
//! by `ICE_SYNC_PRUNE_INTERVAL`) while it keeps polling, the outbox's overdue rows are
//! dropped and counted, and a database refuses a start configured for another region
//! (exit 2) unless `ice.rewrite_database_region` says otherwise.

use std::time::{Duration, Instant};

use ice_sync::domain::Timestamp;
use ice_sync::storage::Store;
use tokio_util::sync::CancellationToken;

use crate::on_both_backends;
use crate::ops::daemon::{describe, get, run_to_end, Daemon};
use crate::refresh::daemon::Fleet;
use crate::support::{count, execute, rows, Backend};

on_both_backends!(
    prune_deletes_exactly_what_is_older_than_each_setting,
    dry_run_deletes_nothing_and_counts_what_prune_removes,
    the_daemon_prunes_on_its_own_while_it_keeps_polling,
    a_database_refuses_a_start_for_another_region,
    a_large_backlog_goes_batch_after_batch,
);

const DAY: i64 = 24 * 3600;

fn ago(now: Timestamp, days: i64) -> String {
    now.shifted(chrono::Duration::seconds(-days * DAY - 60))
        .to_text()
}

/// Bookkeeping on both sides of each default cutoff (90d / 30d / 7d / 7d), with the rows
/// that must stay whatever their age: a `running` cycle, the `running` sweep and the latest
/// completed one. Returns the ids of the runs to be pruned.
async fn seed_bookkeeping(fleet: &Fleet, project: &str) -> Vec<i64> {
    let store = &fleet.store;
    let now = ice_sync::app::now(store).await.expect("now");
    let run = |days: i64, outcome: &str| {
        format!(
            "INSERT INTO sync_runs (started_at, finished_at, outcome, replica_id) \
             VALUES ('{s}', {f}, '{outcome}', 'seed')",
            s = ago(now, days),
            f = if outcome == "running" {
                "NULL".to_string()
            } else {
                format!("'{}'", ago(now, days))
            },
        )
    };
    for sql in [
        run(200, "success"),
        run(91, "partial"),
        run(300, "running"),
        run(89, "success"),
    ] {
        execute(&fleet.db, &sql).await;
    }
    let sweep = |days: i64, outcome: &str| {
        format!(
            "INSERT INTO list_sweeps (started_at, updated_at, finished_at, outcome, params, \
             filter, replica_id) VALUES ('{t}', '{t}', {f}, '{outcome}', '{{}}', '{{}}', 'seed')",
            t = ago(now, days),
            f = if outcome == "running" {
                "NULL".to_string()
            } else {
                format!("'{}'", ago(now, days))
            },
        )
    };
    // Pruned: the old restarted and the old completed one before the latest completed.
    for sql in [
        sweep(60, "completed"),
        sweep(50, "restarted"),
        sweep(40, "completed"),
        sweep(35, "running"),
    ] {
        execute(&fleet.db, &sql).await;
    }
    for (job, days) in [("old-1", 8), ("old-2", 30), ("new-1", 6)] {
        execute(
            &fleet.db,
            &format!(
                "INSERT INTO callback_events (event_type, job_id, project_id, received_at, \
                 received_by) VALUES ('ProduceMediaComplete', '{job}', '{project}', '{}', 'seed')",
                ago(now, days)
            ),
        )
        .await;
    }
    for (seq, days) in [(900, 8), (901, 6)] {
        execute(
            &fleet.db,
            &format!(
                "INSERT INTO webhook_outbox (project_id, seq, payload, observed_at) \
                 VALUES ('{project}', {seq}, '{{}}', '{}')",
                ago(now, days)
            ),
        )
        .await;
    }
    let old = rows(
        store,
        "SELECT id FROM sync_runs WHERE replica_id = 'seed' AND outcome <> 'running' \
         AND finished_at IS NOT NULL ORDER BY id LIMIT 2",
    )
    .await;
    old.iter()
        .map(|r| r[0].as_deref().and_then(|v| v.parse().ok()).expect("id"))
        .collect()
}

/// (sync_runs, list_sweeps, callback_events, webhook_outbox) row counts.
async fn sizes(store: &Store) -> [i64; 4] {
    let mut out = [0; 4];
    for (i, table) in [
        "sync_runs",
        "list_sweeps",
        "callback_events",
        "webhook_outbox",
    ]
    .iter()
    .enumerate()
    {
        out[i] = count(store, &format!("SELECT count(*) FROM {table}")).await;
    }
    out
}

async fn prune_deletes_exactly_what_is_older_than_each_setting(backend: Backend) {
    let fleet = Fleet::new(backend, 3).await;
    // A daemon's worth of state: tracked projects, current rows, history, a cycle's run.
    let out = run_to_end(&fleet.env(&[]), &["run", "--once"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let store = &fleet.store;
    let project = fleet.ids[0].clone();
    let old_runs = seed_bookkeeping(&fleet, &project).await;
    // History written by cycles that are about to be pruned keeps their ids.
    execute(
        &fleet.db,
        &format!(
            "UPDATE editing_project_history SET sync_run_id = {} WHERE project_id = '{project}'",
            old_runs[0]
        ),
    )
    .await;
    let history = rows(
        store,
        "SELECT id, project_id, seq, status, sync_run_id FROM editing_project_history ORDER BY id",
    )
    .await;
    let current = rows(
        store,
        "SELECT project_id, status, business_status, history_seq FROM editing_projects ORDER BY project_id",
    )
    .await;
    let tracked = count(store, "SELECT count(*) FROM tracked_projects").await;
    let before = sizes(store).await;

    let settings = ice_sync::config::load_from(None, fleet.env(&[])).expect("settings");
    let rules = ice_sync::retention::rules(&settings);
    let now = ice_sync::app::now(store).await.expect("now");
    let pruned = ice_sync::retention::prune(store, &rules, now, &CancellationToken::new())
        .await
        .expect("prune");
    let removed: Vec<(&str, u64)> = pruned
        .iter()
        .map(|p| (p.rule.target.table(), p.rows))
        .collect();
    assert_eq!(
        removed,
        [
            ("sync_runs", 2),
            ("list_sweeps", 2),
            ("callback_events", 2),
            ("webhook_outbox", 1)
        ],
        "exactly the rows past each cutoff"
    );
    assert_eq!(
        sizes(store).await,
        [before[0] - 2, before[1] - 2, before[2] - 2, before[3] - 1]
    );
    // What stays: the runs inside 90 days and the one still running, the sweep cursor and
    // the latest completed sweep, the recent callback and outbox rows.
    for id in &old_runs {
        assert_eq!(
            count(
                store,
                &format!("SELECT count(*) FROM sync_runs WHERE id = {id}")
            )
            .await,
            0
        );
    }
    assert_eq!(
        count(
            store,
            "SELECT count(*) FROM sync_runs WHERE replica_id = 'seed'"
        )
        .await,
        2,
        "the 89-day run and the running one stay"
    );
    assert_eq!(
        rows(store, "SELECT outcome FROM list_sweeps ORDER BY id").await,
        vec![
            vec![Some("completed".to_string())],
            vec![Some("running".to_string())]
        ]
    );
    assert_eq!(
        rows(store, "SELECT job_id FROM callback_events").await,
        vec![vec![Some("new-1".to_string())]]
    );
    assert_eq!(
        rows(store, "SELECT seq FROM webhook_outbox").await,
        vec![vec![Some("901".to_string())]]
    );
    // History and current rows: every row as it was, sync_run_id included (the id of a
    // run that no longer exists).
    assert_eq!(
        rows(
            store,
            "SELECT id, project_id, seq, status, sync_run_id FROM editing_project_history ORDER BY id",
        )
        .await,
        history
    );
    assert!(history
        .iter()
        .any(|r| r[4].as_deref() == Some(old_runs[0].to_string().as_str())));
    assert_eq!(
        rows(
            store,
            "SELECT project_id, status, business_status, history_seq FROM editing_projects ORDER BY project_id",
        )
        .await,
        current
    );
    assert_eq!(
        count(store, "SELECT count(*) FROM tracked_projects").await,
        tracked
    );
    // A second pass finds nothing more.
    let again = ice_sync::retention::prune(store, &rules, now, &CancellationToken::new())
        .await
        .expect("prune");
    assert!(again.iter().all(|p| p.rows == 0), "{again:?}");
}

/// The per-table counts of `prune`'s table (its rows end with the setting `key = value`).
fn printed_counts(stdout: &str) -> Vec<(String, u64)> {
    stdout
        .lines()
        .filter(|l| l.contains(" = "))
        .filter_map(|l| {
            let mut cols = l.split_whitespace();
            let table = cols.next()?;
            let n = cols.next()?.parse().ok()?;
            Some((table.to_string(), n))
        })
        .collect()
}

async fn dry_run_deletes_nothing_and_counts_what_prune_removes(backend: Backend) {
    let fleet = Fleet::new(backend, 2).await;
    let env = fleet.bare_env();
    seed_bookkeeping(&fleet, &fleet.ids[0]).await;
    let before = sizes(&fleet.store).await;

    let dry = run_to_end(&env, &["prune", "--dry-run"]).await;
    assert_eq!(dry.status.code(), Some(0), "{}", describe(&dry));
    let dry_text = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert_eq!(
        sizes(&fleet.store).await,
        before,
        "a dry run deletes nothing"
    );
    assert!(dry_text.contains("nothing was deleted"), "{dry_text}");

    let real = run_to_end(&env, &["prune"]).await;
    assert_eq!(real.status.code(), Some(0), "{}", describe(&real));
    let real_text = String::from_utf8_lossy(&real.stdout).into_owned();
    let counts = printed_counts(&real_text);
    assert_eq!(printed_counts(&dry_text), counts, "{dry_text}\n{real_text}");
    assert_eq!(
        counts,
        [
            ("sync_runs".to_string(), 2),
            ("list_sweeps".to_string(), 2),
            ("callback_events".to_string(), 2),
            ("webhook_outbox".to_string(), 1)
        ]
    );
    assert_eq!(
        sizes(&fleet.store).await,
        [before[0] - 2, before[1] - 2, before[2] - 2, before[3] - 1]
    );
    assert!(
        real_text.contains("retention.sync_runs = 90d"),
        "{real_text}"
    );
}

async fn the_daemon_prunes_on_its_own_while_it_keeps_polling(backend: Backend) {
    let fleet = Fleet::new(backend, 2).await;
    seed_bookkeeping(&fleet, &fleet.ids[0]).await;
    let mut env = fleet.env(&[("ICE_SYNC__SYNC__SCHEDULE", "*/1 * * * * *")]);
    env.push(("ICE_SYNC_PRUNE_INTERVAL".to_string(), "300ms".to_string()));
    let mut daemon = Daemon::start(&env);
    let addr = daemon.metrics_addr().await;
    daemon
        .wait_for_line(
            |l| l.contains("pruned old bookkeeping rows"),
            Duration::from_secs(30),
        )
        .await;
    let store = &fleet.store;
    let start = Instant::now();
    loop {
        let gone = count(
            store,
            "SELECT count(*) FROM sync_runs WHERE replica_id = 'seed'",
        )
        .await
            == 2
            && count(store, "SELECT count(*) FROM webhook_outbox WHERE seq = 900").await == 0;
        if gone {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Cycles go on beside the pass: each second's tick records a run.
    let runs = count(
        store,
        "SELECT count(*) FROM sync_runs WHERE replica_id <> 'seed'",
    )
    .await;
    let start = Instant::now();
    while count(
        store,
        "SELECT count(*) FROM sync_runs WHERE replica_id <> 'seed'",
    )
    .await
        <= runs
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no cycle after the prune:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, metrics) = get(&addr, "/metrics").await;
    assert_eq!(status, 200);
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"))
    };
    assert_eq!(value("ice_sync_webhook_dropped_total"), 1.0, "{metrics}");
    assert_eq!(
        value("ice_sync_pruned_rows_total{table=\"sync_runs\"}"),
        2.0,
        "{metrics}"
    );
    assert_eq!(
        value("ice_sync_pruned_rows_total{table=\"webhook_outbox\"}"),
        1.0
    );
    assert!(daemon
        .log()
        .contains("dropped webhook deliveries still unacknowledged"));
    daemon.stop().await;
}

async fn a_database_refuses_a_start_for_another_region(backend: Backend) {
    let fleet = Fleet::new(backend, 2).await;
    let store = &fleet.store;
    // First start: records the region.
    let out = run_to_end(&fleet.env(&[]), &["run", "--once"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        rows(store, "SELECT region, account FROM database_identity").await,
        vec![vec![Some("cn-shanghai".to_string()), None]]
    );
    // Another region: `run --once`, `refresh` and the daemon are refused with exit 2.
    let beijing = fleet.env(&[("ICE_SYNC__ICE__REGION", "cn-beijing")]);
    let polls = fleet.sim.total_calls();
    for args in [
        vec!["run", "--once"],
        vec!["refresh", fleet.ids[0].as_str()],
    ] {
        let out = run_to_end(&beijing, &args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("this database mirrors ICE region cn-shanghai")
                && err.contains("for region cn-beijing"),
            "{err}"
        );
        assert!(err.contains("ice.rewrite_database_region"), "{err}");
    }
    let mut daemon = Daemon::start(&beijing);
    let status = daemon.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(2), "{}", daemon.log());
    assert!(daemon.log().contains("mirrors ICE region cn-shanghai"));
    assert_eq!(fleet.sim.total_calls(), polls, "nothing was polled");
    assert_eq!(
        count(
            store,
            "SELECT count(*) FROM tracked_projects WHERE requested_at IS NOT NULL"
        )
        .await,
        0,
        "the refused refresh requested nothing"
    );
    // The override rewrites the record, and from then on the old region is the stranger.
    let out = run_to_end(
        &fleet.env(&[
            ("ICE_SYNC__ICE__REGION", "cn-beijing"),
            ("ICE_SYNC__ICE__REWRITE_DATABASE_REGION", "true"),
        ]),
        &["run", "--once"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        rows(store, "SELECT region FROM database_identity").await,
        vec![vec![Some("cn-beijing".to_string())]]
    );
    let out = run_to_end(&fleet.env(&[]), &["run", "--once"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("mirrors ICE region cn-beijing"),
        "{}",
        describe(&out)
    );
}

async fn a_large_backlog_goes_batch_after_batch(backend: Backend) {
    let fleet = Fleet::new(backend, 1).await;
    let store = &fleet.store;
    let now = ice_sync::app::now(store).await.expect("now");
    // 2,500 runs sharing one start time (each batch resumes at the last one's newest time,
    // so ties must not be skipped), 2,500 spread over older days, 10 inside the window.
    let typed = |t: String| match backend {
        Backend::Postgres => format!("'{t}'::timestamptz"),
        Backend::Sqlite => format!("'{t}'"),
    };
    let tie = typed(ago(now, 100));
    let spread = match backend {
        Backend::Postgres => "now() - make_interval(days => 100 + i)".to_string(),
        Backend::Sqlite => {
            "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', printf('-%d days', 100 + i))".to_string()
        }
    };
    for (start, n, tag) in [
        (tie.clone(), 2500, "tie"),
        (spread, 2500, "spread"),
        (typed(ago(now, 10)), 10, "recent"),
    ] {
        execute(
            &fleet.db,
            &format!(
                "WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) \
                 INSERT INTO sync_runs (started_at, finished_at, outcome, replica_id) \
                 SELECT {start}, {start}, 'success', '{tag}' FROM n"
            ),
        )
        .await;
    }
    let settings = ice_sync::config::load_from(None, fleet.env(&[])).expect("settings");
    let rules = ice_sync::retention::rules(&settings);
    let pruned = ice_sync::retention::prune(store, &rules, now, &CancellationToken::new())
        .await
        .expect("prune");
    assert_eq!(pruned[0].rows, 5000, "{pruned:?}");
    assert_eq!(
        rows(
            store,
            "SELECT replica_id, count(*) FROM sync_runs GROUP BY replica_id ORDER BY replica_id"
        )
        .await,
        vec![vec![Some("recent".to_string()), Some("10".to_string())]]
    );
}
