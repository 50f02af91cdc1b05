//! `[database]`: which backend, where (as a self-redacting [`DatabaseUrl`]), and how
//! many connections; its raw keys with their defaults, their ranges and their reload
//! diff (the whole section is fixed: the pool is built once).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::bounds::Count;
use super::postgres::PostgresOptions;
use super::reload::{debug, Diff};
use super::{ConfigError, DatabaseUrl};

/// What the file and the `ICE_SYNC__DATABASE__*` variables may say, with the defaults,
/// in the order `ice-sync config` lists them. Serialized only by `ice-sync config`,
/// which masks the URLs' passwords.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawDatabase {
    /// May carry a password: never shown except through `DatabaseUrl`.
    pub(crate) url: String,
    /// A file holding the URL (a password kept out of config.toml); replaces `url`.
    pub(crate) url_file: Option<PathBuf>,
    pub(crate) max_connections: u32,
    pub(crate) pooler: String,
    /// May carry a password, like `url`.
    pub(crate) direct_url: Option<String>,
    /// PostgreSQL TLS, as libpq's parameters of the same names (see `config::postgres`).
    pub(crate) sslmode: Option<String>,
    pub(crate) sslrootcert: Option<String>,
    pub(crate) sslcert: Option<String>,
    pub(crate) sslkey: Option<String>,
}

impl std::fmt::Debug for RawDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawDatabase")
            .field("url", &super::DatabaseUrl::new(self.url.clone()))
            .field("max_connections", &self.max_connections)
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .field("sslcert", &self.sslcert)
            .field("sslkey", &self.sslkey)
            .field("pooler", &self.pooler)
            .field(
                "direct_url",
                &self.direct_url.clone().map(super::DatabaseUrl::new),
            )
            .field("url_file", &self.url_file)
            .finish()
    }
}

impl Default for RawDatabase {
    fn default() -> Self {
        Self {
            url: "sqlite://ice-sync.db?mode=rwc".into(),
            max_connections: 5,
            sslmode: None,
            sslrootcert: None,
            sslcert: None,
            sslkey: None,
            pooler: "none".into(),
            direct_url: None,
            url_file: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

/// The range of each `[database]` count key (`config::bounds`).
pub(super) fn counts(raw: &RawDatabase) -> Vec<Count> {
    vec![Count::new(
        "database.max_connections",
        raw.max_connections.into(),
        1,
        1_000,
    )]
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
    pub(crate) fn from_raw(raw: RawDatabase) -> Result<Self, ConfigError> {
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

/// `[database]`. `database.url_file` is resolved into `url` at load: a new file or new
/// content shows as a changed `database.url`.
pub(super) fn changes(d: &mut Diff, a: &DatabaseSettings, b: &DatabaseSettings) {
    let DatabaseSettings {
        url,
        // Derived from the URL's scheme: not a key of its own.
        kind: _,
        max_connections,
        postgres,
    } = a;
    if *url != b.url {
        let (was, now) = (url.to_string(), b.url.to_string());
        let description = if was == now {
            "database.url changed (a secret in it differs)".to_string()
        } else {
            format!("database.url: {was} -> {now}")
        };
        d.push("database.url", description);
    }
    d.value(
        "database.max_connections",
        max_connections,
        &b.max_connections,
        u32::to_string,
    );
    let PostgresOptions {
        sslmode,
        sslrootcert,
        sslcert,
        sslkey,
        pooler,
        direct_url,
    } = postgres;
    let pb = &b.postgres;
    let mode = |m: &Option<super::SslMode>| format!("{:?}", m.map(|m| m.as_str()));
    d.value("database.sslmode", sslmode, &pb.sslmode, mode);
    d.value("database.sslrootcert", sslrootcert, &pb.sslrootcert, debug);
    d.value("database.sslcert", sslcert, &pb.sslcert, debug);
    d.value("database.sslkey", sslkey, &pb.sslkey, debug);
    d.value("database.pooler", pooler, &pb.pooler, |p| {
        p.as_str().to_string()
    });
    d.changed("database.direct_url", *direct_url != pb.direct_url);
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
