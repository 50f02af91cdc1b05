//! [`SqlSession`]: a connection of the tests' own to a database the product also uses, for
//! the SQL only tests, benchmarks and examples run (fixture scripts, query plans, timed row
//! counts, an older release's schema), so the product's `Store` carries none of it.
//!
//! The session opens its own connection next to the `Store`'s pool, never one of the
//! pool's: on SQLite it uses the product's WAL journal and busy timeout, so it waits for
//! the daemon's writer instead of failing or deadlocking; on PostgreSQL it is an ordinary
//! session on the same database.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, PgConnection, Row, SqliteConnection};

use crate::database::TestDatabase;

/// One connection to a test's database, on either backend.
#[derive(Debug)]
pub struct SqlSession {
    conn: Conn,
}

#[derive(Debug)]
enum Conn {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

impl SqlSession {
    /// Connects to `url` (`sqlite:` or `postgres:`). A test database's URL, or another
    /// server's (a TLS-only cluster, with `sslmode` and `sslrootcert` in the URL).
    pub async fn connect(url: &str) -> anyhow::Result<SqlSession> {
        let conn = if url.starts_with("sqlite:") {
            Conn::Sqlite(sqlite_options(url)?.connect().await.with_context(|| {
                format!("opening {url} for test SQL: does the directory still exist?")
            })?)
        } else {
            let options = PgConnectOptions::from_str(url)
                .context("the test database URL is not a PostgreSQL URL")?
                // Fixture scripts run for seconds; they are not slow statements worth a
                // warning in the test output.
                .disable_statement_logging();
            Conn::Postgres(options.connect().await.context(
                "connecting to the test database for test SQL: is PostgreSQL still running?",
            )?)
        };
        Ok(SqlSession { conn })
    }

    /// Runs statements without parameters or results (a script, `ANALYZE`, DDL).
    pub async fn execute_script(&mut self, sql: &str) -> anyhow::Result<()> {
        match &mut self.conn {
            Conn::Sqlite(c) => sqlx::raw_sql(sql).execute(c).await.map(drop),
            Conn::Postgres(c) => sqlx::raw_sql(sql).execute(c).await.map(drop),
        }
        .context("running a test script")
    }

    /// The plan of a query (`$1`, if any, bound to `bind`): PostgreSQL's `EXPLAIN` with
    /// sequential scans disabled, so a tiny table still shows whether an index path
    /// exists; SQLite's `EXPLAIN QUERY PLAN`, one line per step (its `detail` column).
    pub async fn explain(&mut self, sql: &str, bind: Option<&str>) -> anyhow::Result<Vec<String>> {
        self.plan(sql, bind, false).await
    }

    /// The plan as executed: PostgreSQL's `EXPLAIN (ANALYZE, BUFFERS)` as planned (scans
    /// allowed); SQLite has no such form and gives [`SqlSession::explain`]'s plan.
    pub async fn explain_analyze(
        &mut self,
        sql: &str,
        bind: Option<&str>,
    ) -> anyhow::Result<Vec<String>> {
        self.plan(sql, bind, true).await
    }

    async fn plan(
        &mut self,
        sql: &str,
        bind: Option<&str>,
        analyze: bool,
    ) -> anyhow::Result<Vec<String>> {
        match &mut self.conn {
            Conn::Sqlite(c) => {
                let explain = format!("EXPLAIN QUERY PLAN {sql}");
                let rows = bound(sqlx::query(&explain), bind)
                    .fetch_all(c)
                    .await
                    .context("explaining a query")?;
                rows.iter()
                    .map(|r| r.try_get::<String, _>(3).context("reading the plan"))
                    .collect()
            }
            Conn::Postgres(c) => pg_plan(c, sql, bind, analyze).await,
        }
    }

    /// Runs a query (`$1` bound to `bind`, if given) and counts its rows: for timing
    /// queries. The statement is prepared once per session, as the daemon's pool does.
    pub async fn fetch_count(&mut self, sql: &str, bind: Option<&str>) -> anyhow::Result<usize> {
        let rows = match &mut self.conn {
            Conn::Sqlite(c) => bound(sqlx::query(sql), bind)
                .fetch_all(c)
                .await
                .map(|r| r.len()),
            Conn::Postgres(c) => bound(sqlx::query(sql), bind)
                .fetch_all(c)
                .await
                .map(|r| r.len()),
        };
        rows.context("running a counted query")
    }

    /// Applies the product's migrations numbered up to `last` only (the files under
    /// migrations/, embedded here as in the product), so a test or benchmark builds the
    /// schema an older release left, fills it, then lets `Store::migrate` upgrade it as a
    /// new release would: same files, same checksums. Returns how many were applied.
    pub async fn migrate_through(&mut self, last: i64) -> anyhow::Result<usize> {
        let before = self.applied_migrations().await;
        match &mut self.conn {
            Conn::Sqlite(c) => through(sqlx::migrate!("../../migrations/sqlite"), last)
                .run(c)
                .await
                .context("applying SQLite migrations")?,
            Conn::Postgres(c) => through(sqlx::migrate!("../../migrations/postgres"), last)
                .run(c)
                .await
                .context("applying PostgreSQL migrations")?,
        }
        Ok(self.applied_migrations().await.saturating_sub(before))
    }

    /// Migrations recorded as applied (none before the first run creates the table).
    async fn applied_migrations(&mut self) -> usize {
        let count = "SELECT count(*) FROM _sqlx_migrations WHERE success";
        let applied = match &mut self.conn {
            Conn::Sqlite(c) => sqlx::query_scalar::<_, i64>(count).fetch_one(c).await,
            Conn::Postgres(c) => sqlx::query_scalar::<_, i64>(count).fetch_one(c).await,
        };
        applied.map_or(0, |n| n as usize)
    }

    /// Closes the connection cleanly (dropping it also closes it, abruptly).
    pub async fn close(self) {
        // A failed close leaves nothing to undo: the server or file sees the session end.
        let _ = match self.conn {
            Conn::Sqlite(c) => c.close().await,
            Conn::Postgres(c) => c.close().await,
        };
    }
}

/// The product's own SQLite settings (storage::sqlite): WAL, so the daemon's readers and
/// this session do not block each other; a busy timeout, so a write waits for the
/// daemon's writer; foreign keys on, so fixtures are checked as the daemon's writes are.
fn sqlite_options(url: &str) -> anyhow::Result<SqliteConnectOptions> {
    Ok(SqliteConnectOptions::from_str(url)
        .with_context(|| format!("{url} is not a SQLite URL"))?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true))
}

/// `migrator` limited to the migrations numbered up to `last`.
fn through(migrator: Migrator, last: i64) -> Migrator {
    let kept: Vec<_> = migrator
        .migrations
        .iter()
        .filter(|m| m.version <= last)
        .cloned()
        .collect();
    Migrator {
        migrations: Cow::Owned(kept),
        ..migrator
    }
}

fn bound<'q, DB>(
    query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    bind: Option<&str>,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    match bind {
        Some(v) => query.bind(v.to_string()),
        None => query,
    }
}

/// One transaction with `SET LOCAL`: the setting ends with it.
async fn pg_plan(
    conn: &mut PgConnection,
    sql: &str,
    bind: Option<&str>,
    analyze: bool,
) -> anyhow::Result<Vec<String>> {
    let mut tx = conn.begin().await?;
    let seqscan = if analyze { "on" } else { "off" };
    sqlx::raw_sql(&format!("SET LOCAL enable_seqscan = {seqscan}"))
        .execute(&mut *tx)
        .await?;
    let explain = if analyze {
        format!("EXPLAIN (ANALYZE, BUFFERS) {sql}")
    } else {
        format!("EXPLAIN {sql}")
    };
    let lines = bound(sqlx::query(&explain).persistent(false), bind)
        .fetch_all(&mut *tx)
        .await
        .context("explaining a query")?
        .iter()
        .map(|r| r.try_get::<String, _>(0).context("reading the plan"))
        .collect::<anyhow::Result<Vec<String>>>()?;
    tx.commit().await?;
    Ok(lines)
}

/// One-off SQL on a test database, each call through a session of its own (hold a
/// [`SqlSession`] from [`TestDatabase::sql`] to time queries or to run many).
impl TestDatabase {
    /// A connection of the test's own to this database, beside any `Store` on it.
    pub async fn sql(&self) -> anyhow::Result<SqlSession> {
        SqlSession::connect(&self.url).await
    }

    /// [`SqlSession::execute_script`].
    pub async fn execute_script(&self, sql: &str) -> anyhow::Result<()> {
        self.once(async |s| s.execute_script(sql).await).await
    }

    /// [`SqlSession::explain`].
    pub async fn explain(&self, sql: &str, bind: Option<&str>) -> anyhow::Result<Vec<String>> {
        self.once(async |s| s.explain(sql, bind).await).await
    }

    /// [`SqlSession::explain_analyze`].
    pub async fn explain_analyze(
        &self,
        sql: &str,
        bind: Option<&str>,
    ) -> anyhow::Result<Vec<String>> {
        self.once(async |s| s.explain_analyze(sql, bind).await)
            .await
    }

    /// [`SqlSession::migrate_through`].
    pub async fn migrate_through(&self, last: i64) -> anyhow::Result<usize> {
        self.once(async |s| s.migrate_through(last).await).await
    }

    /// [`SqlSession::fetch_count`].
    pub async fn fetch_count(&self, sql: &str, bind: Option<&str>) -> anyhow::Result<usize> {
        self.once(async |s| s.fetch_count(sql, bind).await).await
    }

    /// `work` on a session opened for it and closed after it, whatever it returned.
    async fn once<T>(
        &self,
        work: impl AsyncFnOnce(&mut SqlSession) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut session = self.sql().await?;
        let done = work(&mut session).await;
        session.close().await;
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::database::Backend;
    use ice_sync::storage::Store;

    /// A session beside a `Store` on the same database: the store sees what the session
    /// wrote, the session counts and plans what the store wrote, and on SQLite a write
    /// waits for the store's open write transaction instead of failing.
    async fn a_session_shares_the_stores_database(backend: Backend) {
        let db = TestDatabase::new(backend).await;
        // An older release's schema first, then the daemon's upgrade.
        assert_eq!(db.migrate_through(1).await.expect("0001"), 1);
        let store = Store::connect(&db.settings(2)).await.expect("connect");
        assert!(store.migrate().await.expect("migrate") > 0);
        db.execute_script(
            "INSERT INTO sync_runs (started_at, outcome, replica_id) \
             VALUES ('2030-01-01T00:00:00Z', 'running', 'a'); \
             INSERT INTO sync_runs (started_at, outcome, replica_id) \
             VALUES ('2030-01-01T00:00:01Z', 'running', 'b')",
        )
        .await
        .expect("script");
        let count = "SELECT COUNT(*) FROM sync_runs";
        assert_eq!(store.query_i64(count).await.expect("store count"), 2);
        let by_replica = "SELECT id FROM sync_runs WHERE replica_id = $1";
        assert_eq!(db.fetch_count(by_replica, Some("a")).await.expect("n"), 1);
        let plan = db.explain(by_replica, Some("a")).await.expect("plan");
        assert!(plan.join("\n").contains("sync_runs"), "{plan:?}");
        let plan = db
            .explain_analyze(by_replica, Some("a"))
            .await
            .expect("analyze");
        assert!(plan.join("\n").contains("sync_runs"), "{plan:?}");

        // Another writer (the daemon's, say) holds the write lock for a moment: the
        // session's write waits for it instead of failing with "database is locked".
        let mut writer = db.sql().await.expect("writer");
        writer
            .execute_script(
                "BEGIN; UPDATE sync_runs SET outcome = 'partial' WHERE replica_id = 'b'",
            )
            .await
            .expect("begin");
        let mut session = db.sql().await.expect("session");
        let (committed, written) = tokio::join!(
            async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                writer.execute_script("COMMIT").await
            },
            session.execute_script(
                "UPDATE sync_runs SET outcome = 'success' WHERE replica_id IN ('a', 'b')"
            ),
        );
        committed.expect("commit");
        written.expect("the session's write waited");
        let success = "SELECT COUNT(*) FROM sync_runs WHERE outcome = 'success'";
        assert_eq!(store.query_i64(success).await.expect("after"), 2);
        writer.close().await;
        session.close().await;
        store.close().await;
    }

    #[tokio::test]
    async fn a_session_shares_the_stores_database_sqlite() {
        a_session_shares_the_stores_database(Backend::Sqlite).await;
    }

    #[tokio::test]
    async fn a_session_shares_the_stores_database_postgres() {
        a_session_shares_the_stores_database(Backend::Postgres).await;
    }
}
