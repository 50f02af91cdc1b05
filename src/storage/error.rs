//! Typed storage errors: callers tell "the database is unavailable" (stop the cycle,
//! try again next tick) from "this row was refused" (record it, go on) and from
//! contention (a deadlock or serialization failure: retry).

use std::borrow::Cow;

/// What kind of failure a storage error is, and so what the caller should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageErrorKind {
    /// Connection lost, pool exhausted, disk full, server shutting down: nothing will be
    /// stored until it recovers. Stop spending API calls on answers that cannot be kept.
    Unavailable,
    /// Deadlock, serialization failure, a busy snapshot: the same write may succeed if
    /// retried in a new transaction.
    Contention,
    /// The database refused this statement's data (a constraint, a value it cannot
    /// hold, a row it cannot decode): a problem of this row only.
    Refused,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{context}{}{source}", if context.is_empty() { "" } else { ": " })]
    Database {
        context: Cow<'static, str>,
        #[source]
        source: sqlx::Error,
    },
    /// The database cannot be reached or opened; the message is rendered already (with
    /// any secret of the URL scrubbed).
    #[error("{0}")]
    Unavailable(String),
    /// A value in the database that this version cannot use (e.g. an invalid project ID
    /// inserted by hand).
    #[error("{0}")]
    Invalid(String),
}

impl From<sqlx::Error> for StorageError {
    fn from(source: sqlx::Error) -> Self {
        StorageError::Database {
            context: Cow::Borrowed(""),
            source,
        }
    }
}

impl StorageError {
    pub(crate) fn kind(&self) -> StorageErrorKind {
        match self {
            StorageError::Database { source, .. } => classify(source),
            StorageError::Unavailable(_) => StorageErrorKind::Unavailable,
            StorageError::Invalid(_) => StorageErrorKind::Refused,
        }
    }

    pub(crate) fn is_unavailable(&self) -> bool {
        self.kind() == StorageErrorKind::Unavailable
    }

    /// Says what was being attempted, keeping the kind.
    pub(crate) fn context(self, what: impl Into<Cow<'static, str>>) -> Self {
        match self {
            StorageError::Database { context, source } => {
                let what = what.into();
                let context = if context.is_empty() {
                    what
                } else {
                    Cow::Owned(format!("{what}: {context}"))
                };
                StorageError::Database { context, source }
            }
            other => other,
        }
    }
}

/// Adds context to storage results, as `anyhow::Context` does.
pub(crate) trait StorageContext<T> {
    fn ctx(self, what: &'static str) -> Result<T, StorageError>;
    fn with_ctx(self, what: impl FnOnce() -> String) -> Result<T, StorageError>;
}

impl<T, E: Into<StorageError>> StorageContext<T> for Result<T, E> {
    fn ctx(self, what: &'static str) -> Result<T, StorageError> {
        self.map_err(|e| e.into().context(what))
    }
    fn with_ctx(self, what: impl FnOnce() -> String) -> Result<T, StorageError> {
        self.map_err(|e| e.into().context(what()))
    }
}

fn classify(e: &sqlx::Error) -> StorageErrorKind {
    use sqlx::Error as E;
    match e {
        E::Io(_)
        | E::Tls(_)
        | E::Protocol(_)
        | E::PoolTimedOut
        | E::PoolClosed
        | E::WorkerCrashed
        | E::Configuration(_) => StorageErrorKind::Unavailable,
        E::Database(db) => match db.code() {
            Some(code) => classify_code(&code),
            None => StorageErrorKind::Refused,
        },
        _ => StorageErrorKind::Refused,
    }
}

/// SQLSTATE (PostgreSQL, always five characters, often all digits) or the extended
/// result code as a number (SQLite, at most four digits).
fn classify_code(code: &str) -> StorageErrorKind {
    if let Some(sqlite) = code.parse::<u32>().ok().filter(|_| code.len() < 5) {
        return match (sqlite & 0xff, sqlite) {
            // BUSY_SNAPSHOT: an old read snapshot; a fresh transaction can proceed.
            (5, 517) | (6, _) => StorageErrorKind::Contention,
            // BUSY after the busy timeout, IOERR, CORRUPT, FULL, CANTOPEN, NOTADB,
            // READONLY, NOMEM: the file cannot take writes now.
            (5 | 7 | 8 | 10 | 11 | 13 | 14 | 26, _) => StorageErrorKind::Unavailable,
            _ => StorageErrorKind::Refused,
        };
    }
    match code {
        "40001" | "40P01" | "55P03" => StorageErrorKind::Contention,
        // Connection exceptions, insufficient resources (disk full, out of memory,
        // too many connections), operator intervention (shutdown), system errors.
        c if c.starts_with("08")
            || c.starts_with("53")
            || c.starts_with("57")
            || c.starts_with("58") =>
        {
            StorageErrorKind::Unavailable
        }
        _ => StorageErrorKind::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_say_what_to_do() {
        for (code, kind) in [
            ("40001", StorageErrorKind::Contention),
            ("40P01", StorageErrorKind::Contention),
            ("57P01", StorageErrorKind::Unavailable),
            ("53100", StorageErrorKind::Unavailable),
            ("08006", StorageErrorKind::Unavailable),
            ("23505", StorageErrorKind::Refused),
            ("22021", StorageErrorKind::Refused),
            ("13", StorageErrorKind::Unavailable),
            ("517", StorageErrorKind::Contention),
            ("5", StorageErrorKind::Unavailable),
            ("2067", StorageErrorKind::Refused),
        ] {
            assert_eq!(classify_code(code), kind, "{code}");
        }
        assert_eq!(
            StorageError::from(sqlx::Error::PoolTimedOut).kind(),
            StorageErrorKind::Unavailable
        );
        assert_eq!(
            StorageError::from(sqlx::Error::RowNotFound).kind(),
            StorageErrorKind::Refused
        );
    }

    #[test]
    fn context_keeps_the_kind_and_reads_outside_in() {
        let e = StorageError::from(sqlx::Error::PoolClosed)
            .context("claiming")
            .context("cycle 7");
        assert!(e.is_unavailable());
        assert!(e.to_string().starts_with("cycle 7: claiming: "), "{e}");
    }
}
