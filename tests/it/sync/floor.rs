//! What a poll costs at the floor: an unchanged poll writes one narrow row (never the wide
//! one with the Timeline), an oversized answer is refused before it is held whole, write
//! batches are bounded by bytes, and the tracked-projects gauge is a count.

use ice_sync::storage::sql;
use ice_sync::sync::engine::CycleOutcome;

use crate::on_both_backends;
use crate::support::{
    check_invariants, project_ids, spawn_app, spawn_app_tuned, spawn_app_with, Backend, TestApp,
};

on_both_backends!(
    an_unchanged_poll_leaves_the_wide_row_untouched,
    an_oversized_answer_fails_its_project_alone,
    large_changed_projects_are_written_in_byte_bounded_batches,
    the_tracked_gauge_is_a_count,
);

/// Timelines like the benchmark's: real ones run to kilobytes.
const TIMELINE_BYTES: usize = 2048;

/// Something that moves whenever a project's wide row is written: PostgreSQL's `xmin` (the
/// transaction that wrote the row version), and on SQLite a count kept by a trigger that
/// fires on every UPDATE of the row, whether or not a value changed.
async fn install_row_writes(app: &TestApp, backend: Backend) {
    if backend == Backend::Sqlite {
        app.execute(
            "CREATE TABLE row_writes (project_id TEXT PRIMARY KEY, n INTEGER NOT NULL);
             CREATE TRIGGER count_row_writes AFTER UPDATE ON editing_project_rows BEGIN
                 INSERT INTO row_writes VALUES (NEW.project_id, 1)
                 ON CONFLICT (project_id) DO UPDATE SET n = n + 1;
             END",
        )
        .await;
    }
}

/// (project_id, its row's write marker) for every wide row, by ID.
async fn row_writes(app: &TestApp, backend: Backend) -> Vec<Vec<Option<String>>> {
    app.rows(match backend {
        Backend::Postgres => {
            "SELECT project_id, xmin::text FROM editing_project_rows ORDER BY project_id"
        }
        Backend::Sqlite => {
            "SELECT p.project_id, CAST(COALESCE(w.n, 0) AS TEXT) FROM editing_project_rows p
             LEFT JOIN row_writes w ON w.project_id = p.project_id ORDER BY p.project_id"
        }
    })
    .await
}

/// (project_id, last_polled_at, last_request_id) as a user reads them, by ID.
async fn polls(app: &TestApp, backend: Backend) -> Vec<Vec<Option<String>>> {
    app.rows(match backend {
        Backend::Postgres => {
            "SELECT project_id, to_char(last_polled_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                    last_request_id FROM editing_projects ORDER BY project_id"
        }
        Backend::Sqlite => {
            "SELECT project_id, last_polled_at, last_request_id FROM editing_projects ORDER BY project_id"
        }
    })
    .await
}

/// What the database wrote to its log over `work`: SQLite WAL frames (pages), or
/// PostgreSQL WAL bytes (server-wide, so other tests running beside this one add to it).
async fn wal_written<F: std::future::Future<Output = ()>>(
    app: &TestApp,
    backend: Backend,
    work: F,
) -> u64 {
    match backend {
        Backend::Sqlite => {
            // An empty log first, so its size afterwards is exactly what `work` wrote.
            app.execute("PRAGMA wal_checkpoint(TRUNCATE)").await;
            work.await;
            let wal = app
                .db
                .dir()
                .expect("a SQLite directory")
                .join("ice-sync.db-wal");
            let bytes = std::fs::metadata(&wal).map_or(0, |m| m.len());
            let page = app.count("PRAGMA page_size").await as u64;
            // A 32-byte header, then one 24-byte header and one page per frame.
            bytes.saturating_sub(32) / (page + 24)
        }
        Backend::Postgres => {
            let lsn = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint";
            let before = app.count(lsn).await;
            work.await;
            (app.count(lsn).await - before).max(0) as u64
        }
    }
}

async fn an_unchanged_poll_leaves_the_wide_row_untouched(backend: Backend) {
    let app = spawn_app(backend).await;
    let ids = app.sim.populate(450, 50);
    for id in &ids {
        assert!(app.sim.inflate(id, TIMELINE_BYTES));
    }
    app.track(&ids.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    let first = app.cycle().await;
    assert_eq!((first.polled, first.changed), (500, 500), "{first:?}");
    install_row_writes(&app, backend).await;
    let rows_before = row_writes(&app, backend).await;
    let polls_before = polls(&app, backend).await;

    let mut report = None;
    let wal = wal_written(&app, backend, async { report = Some(app.cycle().await) }).await;
    let r = report.expect("a cycle ran");
    assert_eq!((r.polled, r.changed, r.failures), (500, 0, 0), "{r:?}");
    let unit = match backend {
        Backend::Sqlite => "WAL pages",
        Backend::Postgres => "WAL bytes (server-wide)",
    };
    println!(
        "unchanged cycle of 500 projects ({backend:?}): {wal} {unit}, {:.2} per poll",
        wal as f64 / 500.0
    );
    if backend == Backend::Sqlite {
        // Claims and the touch rewrite the narrow tracked_projects pages (about 20 rows to
        // a page) and their index entries; one wide row alone is a page with its Timeline.
        assert!(
            wal <= 250,
            "{wal} WAL pages for 500 unchanged polls: is the wide row written again?"
        );
    }

    assert_eq!(
        row_writes(&app, backend).await,
        rows_before,
        "an unchanged poll wrote a wide row"
    );
    let polls_after = polls(&app, backend).await;
    assert_eq!(polls_after.len(), 500);
    for (before, after) in polls_before.iter().zip(&polls_after) {
        assert_eq!(before[0], after[0]);
        assert!(
            after[1] > before[1],
            "{:?}: last_polled_at did not move ({:?} -> {:?})",
            after[0],
            before[1],
            after[1]
        );
        assert!(
            after[2].is_some() && after[2] != before[2],
            "{:?}: last_request_id is still {:?}",
            after[0],
            before[2]
        );
    }

    // The check sees writes: a change rewrites exactly that project's wide row.
    let changed = &ids[3];
    assert!(app.sim.advance(changed));
    let r = app.cycle().await;
    assert_eq!((r.polled, r.changed), (500, 1), "{r:?}");
    let rows_after = row_writes(&app, backend).await;
    let rewritten: Vec<_> = rows_before
        .iter()
        .zip(&rows_after)
        .filter(|(a, b)| a != b)
        .map(|(_, b)| b[0].clone())
        .collect();
    assert_eq!(rewritten, vec![Some(changed.clone())]);
    check_invariants(app.store()).await;
}

async fn an_oversized_answer_fails_its_project_alone(backend: Backend) {
    const CAP: usize = 64 * 1024;
    let cap = CAP.to_string();
    let app = spawn_app_with(backend, &[("ICE_SYNC__ICE__MAX_RESPONSE_BYTES", &cap)]).await;
    let ids = app.sim.populate(10, 0);
    // Never stored: too large from its first answer.
    let never = app.sim.populate(1, 0).remove(0);
    assert!(app.sim.inflate(&never, 4 * CAP));
    let mut tracked = ids.clone();
    tracked.push(never.clone());
    app.track(&tracked.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    let r = app.cycle().await;
    assert_eq!((r.polled, r.changed, r.failures), (11, 10, 1), "{r:?}");
    assert_eq!(r.outcome, CycleOutcome::Partial, "{r:?}");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM editing_projects WHERE project_id = '{never}'"
        ))
        .await,
        0
    );

    // A stored project grows past the cap: its answer is refused by Content-Length, then,
    // streamed without one, as soon as the cap is passed. Either way nothing of it is
    // written and the others are polled as usual.
    for (round, (big, chunked)) in [(&ids[2], false), (&ids[5], true)].into_iter().enumerate() {
        app.sim.set_chunked(chunked);
        let stored = app
            .rows(&format!(
                "SELECT timeline, history_seq FROM editing_projects WHERE project_id = '{big}'"
            ))
            .await;
        assert!(app.sim.inflate(big, 4 * CAP));
        let history_before = app
            .count("SELECT COUNT(*) FROM editing_project_history")
            .await;
        let r = app.cycle().await;
        // The earlier oversized projects fail again (they are due at every test cycle).
        assert_eq!(r.polled, 11, "{r:?}");
        assert_eq!(r.failures, 2 + round, "{r:?}");
        assert_eq!(r.changed, 0, "{r:?}");
        assert_eq!(
            app.rows(&format!(
                "SELECT timeline, history_seq FROM editing_projects WHERE project_id = '{big}'"
            ))
            .await,
            stored,
            "{big}: nothing of the refused answer may be written"
        );
        assert_eq!(
            app.count("SELECT COUNT(*) FROM editing_project_history")
                .await,
            history_before
        );
        let error = app
            .rows(&format!(
                "SELECT last_error, consecutive_failures FROM tracked_projects WHERE project_id = '{big}'"
            ))
            .await;
        let message = error[0][0].clone().unwrap_or_default();
        assert!(
            message.contains(&format!("ice.max_response_bytes = {CAP}")),
            "{message}"
        );
        let size = if chunked {
            "reading stopped there".to_string()
        } else {
            "Content-Length".to_string()
        };
        assert!(message.contains(&size), "{message}");
        assert_eq!(error[0][1].as_deref(), Some("1"), "one failure, no retries");
    }
    // Refused answers were not retried: one request per poll.
    assert_eq!(app.sim.calls(&ids[2]), 3);
    assert_eq!(app.sim.calls(&never), 3);
    app.sim.set_chunked(false);
    check_invariants(app.store()).await;
}

async fn large_changed_projects_are_written_in_byte_bounded_batches(backend: Backend) {
    const TIMELINE: usize = 300 * 1024;
    const BOUND: usize = 1024 * 1024;
    const PROJECTS: usize = 24;
    let app = spawn_app_tuned(backend, &[], |o| {
        o.write_batch = 64;
        o.write_batch_bytes = BOUND;
    })
    .await;
    let ids = app.sim.populate(PROJECTS, 0);
    for id in &ids {
        assert!(app.sim.inflate(id, TIMELINE));
    }
    app.track(&ids.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    let before = app.store().counters();
    let r = app.cycle().await;
    let after = app.store().counters();
    assert_eq!(
        (r.polled, r.changed, r.failures),
        (PROJECTS, PROJECTS, 0),
        "{r:?}"
    );
    // Three projects fit under the bound, a fourth would pass it: at least eight write
    // transactions (the count alone would allow one), besides the claims.
    let per_batch = BOUND / TIMELINE;
    let least = PROJECTS.div_ceil(per_batch) as u64;
    let transactions = after.transactions - before.transactions;
    println!("{PROJECTS} projects of {TIMELINE} bytes, bound {BOUND}: {transactions} transactions");
    assert!(
        transactions >= least,
        "{transactions} transactions for {PROJECTS} projects of {TIMELINE} bytes, bound {BOUND}"
    );
    if backend == Backend::Postgres {
        // The rows one transaction wrote share its xmin: each batch stayed under the bound.
        let batches = app
            .rows(
                "SELECT xmin::text, COUNT(*), SUM(length(timeline))::bigint
                 FROM editing_project_rows GROUP BY 1 ORDER BY 1",
            )
            .await;
        assert!(batches.len() as u64 >= least, "{batches:?}");
        for batch in &batches {
            let bytes: usize = batch[2]
                .as_deref()
                .and_then(|v| v.parse().ok())
                .expect("sum");
            assert!(bytes <= BOUND, "a batch of {bytes} bytes: {batches:?}");
        }
    }
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM editing_projects WHERE length(timeline) >= {TIMELINE}"
        ))
        .await,
        PROJECTS as i64
    );
    check_invariants(app.store()).await;
}

async fn the_tracked_gauge_is_a_count(backend: Backend) {
    let app = spawn_app(backend).await;
    let store = app.store();
    app.track(&["g1", "g2", "g3"]).await;
    let now = ice_sync::app::now(store).await.expect("now");
    store
        .tracking()
        .sync_config_projects(&project_ids(&["c1", "c2"]), now)
        .await
        .expect("config");
    store
        .tracking()
        .sync_config_projects(&project_ids(&["c2"]), now)
        .await
        .expect("config");
    assert_eq!(store.tracking().count_tracked().await.expect("count"), 4);
    // What `check` probes the API with: the lowest enabled ID (c1 is disabled), one row read.
    assert_eq!(
        store.tracking().first_tracked().await.expect("first"),
        Some(crate::support::project_id("c2"))
    );
    // One row comes back, computed by the database, and nothing but tracked_projects is read.
    let cells = store.query_cells(sql::COUNT_TRACKED).await.expect("count");
    assert_eq!(cells.rows.len(), 1);
    let plan = app
        .db
        .explain(sql::COUNT_TRACKED, None)
        .await
        .expect("plan")
        .join("\n");
    assert!(plan.contains("tracked_projects"), "{plan}");
    assert!(!plan.contains("editing_project"), "{plan}");
    if backend == Backend::Postgres {
        assert!(plan.contains("Aggregate"), "{plan}");
    }
    let before = store.counters();
    store.tracking().count_tracked().await.expect("count");
    assert_eq!(store.counters().statements - before.statements, 1);
}
