//! Looking at a database without changing it, for `ice-sync check`: open it without
//! creating anything, and compare its migrations with those built into this binary.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{Migrate, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::ConnectOptions;

use super::backend::SqlStore;
use super::{Backend, Store};
use crate::config::{DatabaseKind, DatabaseSettings};

/// Why a database could not be opened for inspection.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// Nothing is broken yet: the SQLite file does not exist (the daemon creates it).
    NotCreatedYet(String),
    Failed(String),
}

/// Opens the database `settings` names, creating nothing; returns it and a description
/// of where it is (no secrets).
pub(crate) async fn open_existing(
    settings: &DatabaseSettings,
    timeout: Duration,
) -> Result<(Store, String), OpenError> {
    match settings.kind {
        DatabaseKind::Sqlite => open_sqlite(settings, timeout).await,
        DatabaseKind::Postgres => open_postgres(settings, timeout).await,
    }
}

async fn open_sqlite(
    db: &DatabaseSettings,
    timeout: Duration,
) -> Result<(Store, String), OpenError> {
    let options = SqliteConnectOptions::from_str(db.url.expose_secret())
        .map_err(|e| {
            OpenError::Failed(format!(
                "database.url = {:?} is not a SQLite URL ({}); use sqlite:///var/lib/ice-sync/ice-sync.db?mode=rwc",
                db.url,
                db.url.scrub(&e.to_string())
            ))
        })?
        .create_if_missing(false)
        // Nothing written through this connection, whatever the caller does with it.
        .read_only(true)
        .log_slow_statements(log::LevelFilter::Off, Duration::MAX);
    let file = options.get_filename().to_path_buf();
    let place = format!("sqlite file {}", file.display());
    if !file.exists() {
        let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
        return Err(OpenError::NotCreatedYet(match dir {
            Some(d) if !d.exists() => format!(
                "{place} does not exist yet, nor does its directory {}: create the directory \
                 (under systemd, StateDirectory=ice-sync creates /var/lib/ice-sync at the first start)",
                d.display()
            ),
            _ => format!(
                "{place} does not exist yet; `ice-sync run` or `ice-sync migrate` creates it (the URL needs ?mode=rwc)"
            ),
        }));
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(timeout)
        .connect_with(options)
        .await
        .map_err(|e| {
            OpenError::Failed(format!(
                "cannot open {place}: {}; check that it is a SQLite database and readable by this user",
                db.url.scrub(&e.to_string())
            ))
        })?;
    Ok((Store::from(Backend::Sqlite(SqlStore::new(pool))), place))
}

async fn open_postgres(
    db: &DatabaseSettings,
    timeout: Duration,
) -> Result<(Store, String), OpenError> {
    let place = format!("postgres {}", db.url);
    let store = super::postgres::open(db, 1, timeout)
        .await
        .map_err(|e| OpenError::Failed(e.to_string()))?;
    Ok((Store::from(Backend::Postgres(store)), place))
}

/// The database's migrations compared with those built into this binary.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct MigrationState {
    pub(crate) known: usize,
    pub(crate) applied: usize,
    pub(crate) pending: usize,
    /// Applied in the database but unknown to this binary: a newer ice-sync migrated it.
    pub(crate) unknown: Vec<i64>,
    /// Applied, but with a different checksum than the file built in.
    pub(crate) changed: Vec<i64>,
    /// Started but never finished.
    pub(crate) dirty: Option<i64>,
    /// The highest migration version applied in the database (`None`: none yet).
    pub(crate) database_version: Option<i64>,
    /// The highest migration version built into this binary.
    pub(crate) binary_version: i64,
}

impl Store {
    pub(crate) async fn migration_state(&self) -> anyhow::Result<MigrationState> {
        // Catalog queries, not a read of `_sqlx_migrations` that might fail: a fresh
        // database has no such table, and that is not an error.
        match &self.backend {
            Backend::Sqlite(s) => {
                let mut conn = s.pool.acquire().await?;
                let exists: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
                )
                .fetch_one(&mut *conn)
                .await?;
                compare(
                    &sqlx::migrate!("./migrations/sqlite"),
                    &mut *conn,
                    exists > 0,
                )
                .await
            }
            Backend::Postgres(s) => {
                // Behind a transaction pooler: one transaction, so every round trip
                // reaches the same server connection, and the migrator's named
                // statements are deallocated before another client gets it.
                let pooled = s.counters.transaction_pooled;
                let mut tx = s.pool.begin().await?;
                if pooled {
                    sqlx::raw_sql("DEALLOCATE ALL").execute(&mut *tx).await?;
                }
                let exists: bool =
                    sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                        .persistent(!pooled)
                        .fetch_one(&mut *tx)
                        .await?;
                let state =
                    compare(&sqlx::migrate!("./migrations/postgres"), &mut *tx, exists).await?;
                if pooled {
                    sqlx::raw_sql("DEALLOCATE ALL").execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(state)
            }
        }
    }
}

async fn compare(
    migrator: &Migrator,
    conn: &mut impl Migrate,
    table_exists: bool,
) -> anyhow::Result<MigrationState> {
    let known: Vec<_> = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .collect();
    let mut state = MigrationState {
        known: known.len(),
        binary_version: known.iter().map(|m| m.version).max().unwrap_or(0),
        ..Default::default()
    };
    if !table_exists {
        state.pending = known.len();
        return Ok(state);
    }
    state.dirty = conn.dirty_version().await?;
    let applied = conn.list_applied_migrations().await?;
    state.database_version = applied.iter().map(|a| a.version).max();
    for a in &applied {
        match known.iter().find(|m| m.version == a.version) {
            None => state.unknown.push(a.version),
            Some(m) if m.checksum != a.checksum => state.changed.push(a.version),
            Some(_) => state.applied += 1,
        }
    }
    state.pending = known
        .iter()
        .filter(|m| !applied.iter().any(|a| a.version == m.version))
        .count();
    Ok(state)
}

impl Store {
    /// What `check` says about the connection's TLS: `(encrypted, description)`, or
    /// `None` on SQLite (a file, no network).
    pub async fn tls_status(&self) -> Option<(bool, String)> {
        let Backend::Postgres(s) = &self.backend else {
            return None;
        };
        let settings = s.settings.as_deref()?;
        let options = s.pool.connect_options();
        let ssl: Option<bool> =
            sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .persistent(!s.counters.transaction_pooled)
                .fetch_optional(s.exec())
                .await
                .ok()
                .flatten();
        Some(super::pg_connect::describe_tls(settings, &options, ssl))
    }
}
