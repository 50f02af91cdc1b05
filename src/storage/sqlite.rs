//! SQLite: connecting and migrating. The queries are shared (`storage::sql`).
//!
//! WAL journal so readers (`ice-sync status`, a BI tool) never block the daemon;
//! `synchronous = NORMAL`, which in WAL mode keeps the file consistent through a crash
//! or power loss but may lose the last commits on power loss (the next cycle
//! re-observes them); a generous busy timeout because writers queue on one lock; a
//! small page cache per connection, because memory matters more than cache hits here.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Sqlite;

use super::SqlStore;
use crate::config::DatabaseSettings;

pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<SqlStore<Sqlite>> {
    let options = SqliteConnectOptions::from_str(settings.url.expose_secret())
        .map_err(|e| anyhow::anyhow!(settings.url.scrub(&e.to_string())))
        .with_context(|| format!("database.url = {:?} is not a SQLite URL", settings.url))?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true)
        // 512 KiB of page cache per connection instead of SQLite's 2 MiB default: writes go
        // through one writer anyway, and the pool's caches were most of the daemon's RSS.
        .pragma("cache_size", "-512");
    let pool = SqlitePoolOptions::new()
        // SQLite has one writer; a second connection lets reads (claims, `status`) proceed
        // beside it. More only add page caches: `database.max_connections` caps at 2 here.
        .max_connections(settings.max_connections.min(2))
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .with_context(|| {
            format!(
                "cannot open database.url = {:?}: does the directory exist and is it writable? \
                 (add ?mode=rwc to create the file)",
                settings.url
            )
        })?;
    Ok(SqlStore { pool })
}

/// Takes the single-writer lock of a SQLite database: an advisory lock on `PATH.lock`
/// beside the file, released by the kernel when the process exits, however it exits
/// (so a crashed daemon never blocks its own restart). `None` for PostgreSQL and for
/// in-memory databases.
pub fn lock_writer(settings: &DatabaseSettings) -> anyhow::Result<Option<std::fs::File>> {
    if settings.kind != crate::config::DatabaseKind::Sqlite {
        return Ok(None);
    }
    let Some(path) = file_path(settings.url.expose_secret()) else {
        return Ok(None);
    };
    let lock_path = format!("{path}.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| {
            format!("cannot create the lock file {lock_path}: is the directory writable?")
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another ice-sync daemon is already syncing into {path} (it holds {lock_path}); \
             SQLite takes one daemon per database file: stop the other one, or use PostgreSQL \
             to run several replicas"
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {lock_path}"))
        }
    }
}

/// The file behind a `sqlite:` URL, or `None` for an in-memory database.
fn file_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| path.to_string())
}

pub async fn migrate(pool: &SqlitePool) -> anyhow::Result<usize> {
    let migrator = sqlx::migrate!("./migrations/sqlite");
    let before = applied(pool).await;
    migrator
        .run(pool)
        .await
        .context("applying SQLite migrations")?;
    Ok(applied(pool).await.saturating_sub(before))
}

async fn applied(pool: &SqlitePool) -> usize {
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .map_or(0, |n| n as usize)
}
