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
        let text = match &raw.url_file {
            Some(path) => read_url_file(path)?,
            None => raw.url.clone(),
        };
        let url = DatabaseUrl::new(text.trim());
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

/// The systemd credential that stands in for `database.url_file` inside the unit
/// (`LoadCredential=database-url:/etc/ice-sync/database-url`): the service's dynamic user
/// cannot read the root-only file itself, while `sudo ice-sync ...` reads it directly.
/// Either way both read the same file, named once in config.toml.
const URL_CREDENTIAL: &str = "database-url";

/// The systemd credential standing in for `database.url_file`, when the unit passed one
/// (`ice-sync config` names it as the source).
pub(crate) fn url_credential() -> Option<std::path::PathBuf> {
    std::env::var("CREDENTIALS_DIRECTORY")
        .ok()
        .filter(|d| !d.trim().is_empty())
        .map(|d| std::path::Path::new(d.trim()).join(URL_CREDENTIAL))
        .filter(|p| p.exists())
}

/// `database.url_file`: the systemd credential when the unit passed one, else the file.
fn read_url_file(path: &std::path::Path) -> Result<String, ConfigError> {
    let credential = url_credential();
    let source = credential.as_deref().unwrap_or(path);
    let text = std::fs::read_to_string(source).map_err(|e| {
        ConfigError::new(format!(
            "database.url_file = {}: cannot read {} ({e}); run as a user that may read it, or \
             pass it to the unit with LoadCredential={URL_CREDENTIAL}:{}",
            path.display(),
            source.display(),
            path.display()
        ))
    })?;
    let url = text.trim().to_string();
    if url.is_empty() {
        return Err(ConfigError::new(format!(
            "database.url_file = {}: the file is empty; write the database URL on one line",
            path.display()
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod url_file_tests {
    #[test]
    fn url_file_replaces_url_and_a_missing_one_names_the_key() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("database-url");
        std::fs::write(&file, "postgres://u:secret@db/ice\n").expect("write");
        let path = file.display().to_string();
        let s = crate::config::load::load_vars(&[("ICE_SYNC__DATABASE__URL_FILE", &path)])
            .expect("loads");
        assert_eq!(s.database.url.expose_secret(), "postgres://u:secret@db/ice");
        let missing = dir.path().join("nope").display().to_string();
        let e = crate::config::load::load_vars(&[("ICE_SYNC__DATABASE__URL_FILE", &missing)])
            .expect_err("refused");
        let text = format!("{e:#}");
        assert!(
            text.contains("database.url_file") && !text.contains("secret"),
            "{text}"
        );
    }
}
