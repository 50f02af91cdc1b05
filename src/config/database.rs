//! `[database]`: which backend, where (as a self-redacting [`DatabaseUrl`]), and how
//! many connections.

use super::postgres::PostgresOptions;
use super::raw::RawDatabase;
use super::{ConfigError, DatabaseUrl};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    pub url: DatabaseUrl,
    pub kind: DatabaseKind,
    pub max_connections: u32,
    /// TLS and the pooler (PostgreSQL only; the defaults on SQLite).
    pub postgres: PostgresOptions,
}

impl DatabaseSettings {
    pub fn from_raw(raw: RawDatabase) -> Result<Self, ConfigError> {
        let url = DatabaseUrl::new(raw.url.trim());
        let text = url.expose_secret();
        let kind = if text.starts_with("sqlite:") {
            DatabaseKind::Sqlite
        } else if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            DatabaseKind::Postgres
        } else {
            return Err(ConfigError::new(format!(
                "database.url = {url:?} is not supported: use sqlite://PATH?mode=rwc or postgres://USER@HOST/DB"
            )));
        };
        if raw.max_connections == 0 {
            return Err(ConfigError::new(
                "database.max_connections = 0: must be at least 1",
            ));
        }
        let postgres = PostgresOptions::from_raw(&raw, kind == DatabaseKind::Postgres)?;
        Ok(Self {
            url,
            kind,
            max_connections: raw.max_connections,
            postgres,
        })
    }
}
