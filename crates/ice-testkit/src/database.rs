//! [`TestDatabase`]: a database nobody else uses, on SQLite (a file in a temporary directory)
//! or PostgreSQL (a uniquely named database on the server of `ICE_SYNC_TEST_PG_URL`), removed
//! when the value is dropped.

use std::path::PathBuf;

use anyhow::Context;
use reqwest::Url;
use sqlx::{ConnectOptions, Connection};

use ice_sync::config::{DatabaseKind, DatabaseSettings};

/// The server the tests, benchmarks and examples use unless `ICE_SYNC_TEST_PG_URL` says
/// otherwise.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The environment variable naming the PostgreSQL server (an admin database URL).
const PG_URL_VAR: &str = "ICE_SYNC_TEST_PG_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How a new PostgreSQL database sorts text (SQLite always sorts byte-wise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collation {
    /// The server's default.
    ServerDefault,
    /// `C`: byte-wise, as SQLite, whatever the server's default is.
    Bytewise,
}

/// `ICE_SYNC_TEST_PG_URL`, or [`DEFAULT_PG_URL`].
pub fn pg_admin_url() -> String {
    std::env::var(PG_URL_VAR).unwrap_or_else(|_| DEFAULT_PG_URL.to_string())
}

/// `host:port` of the PostgreSQL server (for tests that put a proxy in front of it).
pub fn pg_server_addr() -> String {
    let admin = pg_admin_url();
    let url = parse_admin(&admin).unwrap_or_else(|e| panic!("{e:#}"));
    let host = url
        .host_str()
        .unwrap_or_else(|| panic!("{PG_URL_VAR} = {} names no host", shown(&url)));
    format!("{host}:{}", url.port().unwrap_or(5432))
}

fn parse_admin(admin: &str) -> anyhow::Result<Url> {
    Url::parse(admin)
        .with_context(|| format!("{PG_URL_VAR} is not a URL; set it to e.g. {DEFAULT_PG_URL}"))
}

/// The URL without its password, for messages.
fn shown(url: &Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    url.to_string()
}

/// A fresh, empty database and its URL. Dropping it deletes the SQLite directory or drops
/// the PostgreSQL database (`WITH (FORCE)`, so pools still open do not keep it alive).
#[derive(Debug)]
pub struct TestDatabase {
    pub url: String,
    pub backend: Backend,
    /// The SQLite file's directory.
    dir: Option<tempfile::TempDir>,
    /// (admin URL, database name) of the PostgreSQL database to drop.
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    /// For tests: a fresh database, or a panic saying what is missing.
    pub async fn new(backend: Backend) -> TestDatabase {
        TestDatabase::create(backend, Collation::ServerDefault)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// A fresh database; the error says what to set or start when there is none.
    pub async fn create(backend: Backend, collation: Collation) -> anyhow::Result<TestDatabase> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::Builder::new()
                    .prefix("ice-sync-test-")
                    .tempdir()
                    .context("creating a temporary directory for the SQLite file")?;
                let path: PathBuf = dir.path().join("ice-sync.db");
                Ok(TestDatabase {
                    url: format!("sqlite://{}?mode=rwc", path.display()),
                    backend,
                    dir: Some(dir),
                    postgres: None,
                })
            }
            Backend::Postgres => {
                let admin = pg_admin_url();
                let mut url = parse_admin(&admin)?;
                let name = format!(
                    "ice_sync_test_{}_{:012x}",
                    std::process::id(),
                    rand::random::<u64>() >> 16
                );
                let mut conn = admin_connection(&admin).await.with_context(|| {
                    format!(
                        "PostgreSQL tests need a server at {} (start one, or set {PG_URL_VAR})",
                        shown(&url)
                    )
                })?;
                let create = match collation {
                    Collation::ServerDefault => format!("CREATE DATABASE {name}"),
                    Collation::Bytewise => format!(
                        "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' \
                         LC_COLLATE 'C' LC_CTYPE 'C'"
                    ),
                };
                sqlx::query(&create)
                    .execute(&mut conn)
                    .await
                    .with_context(|| {
                        format!(
                            "creating database {name} at {}; the {PG_URL_VAR} user needs CREATEDB",
                            shown(&url)
                        )
                    })?;
                conn.close().await.ok();
                url.set_path(&format!("/{name}"));
                Ok(TestDatabase {
                    url: url.to_string(),
                    backend,
                    dir: None,
                    postgres: Some((admin, name)),
                })
            }
        }
    }

    pub fn kind(&self) -> DatabaseKind {
        match self.backend {
            Backend::Sqlite => DatabaseKind::Sqlite,
            Backend::Postgres => DatabaseKind::Postgres,
        }
    }

    /// The `[database]` settings of a daemon using this database.
    pub fn settings(&self, max_connections: u32) -> DatabaseSettings {
        DatabaseSettings {
            url: self.url.clone().into(),
            kind: self.kind(),
            max_connections,
            postgres: Default::default(),
        }
    }

    /// The SQLite file's directory (None on PostgreSQL).
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_ref().map(|d| d.path())
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else {
            return;
        };
        // Drop cannot await, and may run inside a runtime (which must not be blocked on
        // from within): a short-lived thread with a runtime of its own does the work.
        let dropped = std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting a runtime to drop the test database")?;
            runtime.block_on(drop_database(&admin, &name))
        })
        .join();
        let failure = match dropped {
            Ok(Ok(())) => return,
            Ok(Err(e)) => format!("{e:#}"),
            Err(_) => "the thread dropping it panicked".to_string(),
        };
        // Not a panic: this may run while a failed test is already unwinding.
        eprintln!("warning: test database left behind ({failure}); drop it by hand");
    }
}

async fn drop_database(admin: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = admin_connection(admin)
        .await
        .with_context(|| format!("connecting to drop database {name}"))?;
    // FORCE: pools of the test may still hold sessions.
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .with_context(|| format!("dropping database {name}"))?;
    conn.close().await.ok();
    Ok(())
}

/// A connection for CREATE and DROP DATABASE. Statement logging is off: `DROP DATABASE`
/// can take a second or more and sqlx would log it as a slow statement.
async fn admin_connection(admin: &str) -> anyhow::Result<sqlx::PgConnection> {
    let options: sqlx::postgres::PgConnectOptions = admin
        .parse()
        .with_context(|| format!("{PG_URL_VAR} is not a PostgreSQL URL"))?;
    Ok(options.disable_statement_logging().connect().await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn exists(name: &str) -> bool {
        let mut conn = admin_connection(&pg_admin_url()).await.expect("connect");
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM pg_database WHERE datname = $1")
            .bind(name)
            .fetch_one(&mut conn)
            .await
            .expect("pg_database")
            == 1
    }

    #[tokio::test]
    async fn postgres_database_is_dropped_with_the_value() {
        let db = TestDatabase::new(Backend::Postgres).await;
        let name = db.postgres.as_ref().expect("postgres").1.clone();
        // A pool still open at drop time must not keep the database alive.
        let mut open = sqlx::PgConnection::connect(&db.url).await.expect("connect");
        sqlx::query("SELECT 1")
            .execute(&mut open)
            .await
            .expect("query");
        assert!(exists(&name).await);
        drop(db);
        assert!(!exists(&name).await, "{name} still exists");
    }

    #[tokio::test]
    async fn sqlite_directory_is_removed_with_the_value() {
        let db = TestDatabase::new(Backend::Sqlite).await;
        let dir = db.dir().expect("dir").to_path_buf();
        std::fs::write(dir.join("ice-sync.db"), b"x").expect("write");
        drop(db);
        assert!(!dir.exists());
    }

    #[test]
    fn server_address_comes_from_the_url() {
        // The default (or the CI's) URL always names a host and port.
        let addr = pg_server_addr();
        assert!(addr.contains(':'), "{addr}");
    }
}
