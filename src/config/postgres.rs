//! The PostgreSQL-only keys of `[database]`: TLS (`sslmode`, `sslrootcert`, `sslcert`,
//! `sslkey`, named and meaning what libpq's parameters do) and the connection pooler in
//! front of the server (`pooler`, `direct_url`).
//!
//! Each TLS setting may be written in `database.url` (`?sslmode=verify-full&...`) or as a
//! key, not both: two places for one setting would leave the operator guessing which
//! wins. The keys also apply to `database.direct_url`.

use std::path::PathBuf;

use super::raw::RawDatabase;
use super::{ConfigError, DatabaseUrl};

/// libpq's `sslmode`, less `allow` (plaintext first, TLS only if the server insists),
/// which the driver cannot do and nobody should want.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub(crate) const NAMES: &'static str = "disable, prefer, require, verify-ca or verify-full";

    pub(crate) fn parse(text: &str) -> Option<SslMode> {
        Some(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// What sits between ice-sync and PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pooler {
    /// The server itself, or a pooler that keeps a server connection per client
    /// (PgBouncer `pool_mode = session`).
    #[default]
    None,
    /// A pooler that may hand each transaction to another server connection (PgBouncer
    /// `pool_mode = transaction`, cloud database proxies).
    Transaction,
}

impl Pooler {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Pooler::None => "none",
            Pooler::Transaction => "transaction",
        }
    }
}

/// The PostgreSQL connection settings beyond the URL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PostgresOptions {
    /// `None`: whatever the URL (or `PGSSLMODE`) says, else `prefer`, as libpq.
    pub(crate) sslmode: Option<SslMode>,
    pub(crate) sslrootcert: Option<PathBuf>,
    pub(crate) sslcert: Option<PathBuf>,
    pub(crate) sslkey: Option<PathBuf>,
    pub(crate) pooler: Pooler,
    /// A direct (unpooled) connection for migrations and `LISTEN`.
    pub(crate) direct_url: Option<DatabaseUrl>,
}

impl PostgresOptions {
    pub(crate) fn from_raw(raw: &RawDatabase, postgres: bool) -> Result<Self, ConfigError> {
        let url = DatabaseUrl::new(raw.url.trim());
        let mut options = PostgresOptions {
            pooler: match raw.pooler.trim() {
                "none" => Pooler::None,
                "transaction" => Pooler::Transaction,
                other => {
                    return Err(ConfigError::new(format!(
                        "database.pooler = {other:?}: use \"none\" (the server itself, or PgBouncer in \
                         session mode) or \"transaction\" (PgBouncer pool_mode = transaction, a cloud \
                         database proxy)"
                    )))
                }
            },
            ..Default::default()
        };
        if let Some(mode) = non_empty(&raw.sslmode) {
            options.sslmode = Some(SslMode::parse(mode).ok_or_else(|| {
                ConfigError::new(format!(
                    "database.sslmode = {mode:?}: use {}",
                    SslMode::NAMES
                ))
            })?);
        }
        options.sslrootcert = existing_file("sslrootcert", &raw.sslrootcert)?;
        options.sslcert = existing_file("sslcert", &raw.sslcert)?;
        options.sslkey = existing_file("sslkey", &raw.sslkey)?;
        if options.sslcert.is_some() != options.sslkey.is_some() {
            return Err(ConfigError::new(
                "database.sslcert and database.sslkey go together: a client certificate needs its key",
            ));
        }
        if let Some(direct) = non_empty(&raw.direct_url) {
            let direct = DatabaseUrl::new(direct);
            let text = direct.expose_secret();
            if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
                return Err(ConfigError::new(format!(
                    "database.direct_url = {direct}: must be a postgres:// URL of the server itself"
                )));
            }
            if options.pooler != Pooler::Transaction {
                return Err(ConfigError::new(
                    "database.direct_url is only used with database.pooler = \"transaction\": set the \
                     pooler, or remove direct_url",
                ));
            }
            check_url_params(&direct, "database.direct_url")?;
            options.direct_url = Some(direct);
        }
        if !postgres && options != PostgresOptions::default() {
            return Err(ConfigError::new(
                "database.sslmode, sslrootcert, sslcert, sslkey, pooler and direct_url apply to \
                 PostgreSQL only, and database.url names SQLite: remove them",
            ));
        }
        if postgres {
            check_url_params(&url, "database.url")?;
            for (key, _) in url_tls_params(&url) {
                if raw_key(raw, key).is_some() {
                    return Err(ConfigError::new(format!(
                        "{key} is set both in database.url and as database.{key}: keep one"
                    )));
                }
            }
        }
        Ok(options)
    }
}

fn raw_key<'a>(raw: &'a RawDatabase, key: &str) -> Option<&'a str> {
    let value = match key {
        "sslmode" => &raw.sslmode,
        "sslrootcert" => &raw.sslrootcert,
        "sslcert" => &raw.sslcert,
        "sslkey" => &raw.sslkey,
        _ => return None,
    };
    non_empty(value)
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn existing_file(key: &str, value: &Option<String>) -> Result<Option<PathBuf>, ConfigError> {
    let Some(path) = non_empty(value) else {
        return Ok(None);
    };
    let path = PathBuf::from(path);
    if !path.is_file() {
        return Err(ConfigError::new(format!(
            "database.{key} = {}: no such file (a PEM file readable by this user)",
            path.display()
        )));
    }
    Ok(Some(path))
}

/// The TLS parameters in a URL's query, percent-decoded: `(name, value)`.
pub(crate) fn url_tls_params(url: &DatabaseUrl) -> Vec<(&'static str, String)> {
    let text = url.expose_secret();
    let Some((_, query)) = text.split_once('?') else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        for key in ["sslmode", "sslrootcert", "sslcert", "sslkey"] {
            if name == key {
                let value = percent_encoding::percent_decode_str(value)
                    .decode_utf8_lossy()
                    .into_owned();
                found.push((key, value));
            }
        }
    }
    found
}

/// An `sslmode` in a URL is checked here too, so `allow` or a typo fails at load, naming
/// the key, rather than at the first connection.
fn check_url_params(url: &DatabaseUrl, key: &str) -> Result<(), ConfigError> {
    for (name, value) in url_tls_params(url) {
        if name == "sslmode" && SslMode::parse(&value).is_none() {
            return Err(ConfigError::new(format!(
                "{key} has sslmode={value}: use {}",
                SslMode::NAMES
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(url: &str) -> RawDatabase {
        RawDatabase {
            url: url.to_string(),
            ..RawDatabase::default()
        }
    }

    fn err(raw: RawDatabase) -> String {
        let postgres = raw.url.starts_with("postgres");
        PostgresOptions::from_raw(&raw, postgres)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn every_libpq_sslmode_but_allow_is_accepted() {
        for mode in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
            let mut r = raw("postgres://u@h/db");
            r.sslmode = Some(mode.to_string());
            let o = PostgresOptions::from_raw(&r, true).expect(mode);
            assert_eq!(o.sslmode.map(SslMode::as_str), Some(mode));
        }
        let mut r = raw("postgres://u@h/db");
        r.sslmode = Some("allow".into());
        assert!(err(r).contains("database.sslmode = \"allow\""));
        assert!(err(raw("postgres://u@h/db?sslmode=verify_full"))
            .contains("database.url has sslmode=verify_full"));
    }

    #[test]
    fn a_setting_in_the_url_and_as_a_key_is_an_error() {
        let mut r = raw("postgres://u@h/db?sslmode=require");
        r.sslmode = Some("verify-full".into());
        assert!(err(r).contains("sslmode is set both in database.url and as database.sslmode"));
    }

    #[test]
    fn files_must_exist_and_certificate_and_key_go_together() {
        let mut r = raw("postgres://u@h/db");
        r.sslrootcert = Some("/nonexistent/ca.pem".into());
        assert!(err(r).contains("database.sslrootcert = /nonexistent/ca.pem: no such file"));
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let mut r = raw("postgres://u@h/db");
        r.sslcert = Some(file.path().display().to_string());
        assert!(err(r).contains("database.sslcert and database.sslkey go together"));
    }

    #[test]
    fn pooler_keys_are_checked() {
        let mut r = raw("postgres://u@h/db");
        r.pooler = "statement".into();
        assert!(err(r).contains("database.pooler = \"statement\""));
        let mut r = raw("postgres://u@h/db");
        r.direct_url = Some("postgres://u@h:5432/db".into());
        assert!(err(r).contains("only used with database.pooler = \"transaction\""));
        let mut r = raw("postgres://u@h:6432/db");
        r.pooler = "transaction".into();
        r.direct_url = Some("postgres://u:secret@h:5432/db".into());
        let o = PostgresOptions::from_raw(&r, true).expect("valid");
        assert_eq!(o.pooler, Pooler::Transaction);
        assert!(!format!("{o:?}").contains("secret"));
    }

    #[test]
    fn postgres_keys_on_sqlite_are_an_error() {
        let mut r = raw("sqlite://x.db?mode=rwc");
        r.sslmode = Some("require".into());
        assert!(err(r).contains("apply to PostgreSQL only"));
    }
}
