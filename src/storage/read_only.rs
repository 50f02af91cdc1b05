//! Opening the database for a command that only reads (`status`, `history`, `track
//! list`, `jobs`, `config`): nothing is created, nothing migrated, and a schema this
//! binary does not match is one message naming both versions and what to run.
//!
//! SQLite is opened with `SQLITE_OPEN_READONLY`, so a reader run as root leaves no
//! root-owned file behind and a newer binary can never migrate under an older daemon.

use std::time::Duration;

use super::inspect::{self, MigrationState, OpenError};
use super::Store;
use crate::config::DatabaseSettings;

/// How long a reading command waits for the database before it says why not.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a reading command could not use the database.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadOnlyError {
    /// No SQLite file yet (the daemon or `ice-sync migrate` creates it).
    #[error("{0}")]
    NotCreatedYet(String),
    /// The schema is not the one this binary reads: older (migrate) or newer (upgrade).
    #[error("{0}")]
    SchemaMismatch(String),
    #[error("{0}")]
    Unavailable(String),
}

/// Opens the database `settings` names for reading only, creating and migrating
/// nothing, and refuses a schema this binary does not match.
pub(crate) async fn open_read_only(settings: &DatabaseSettings) -> Result<Store, ReadOnlyError> {
    let (store, place) = inspect::open_existing(settings, OPEN_TIMEOUT)
        .await
        .map_err(|e| match e {
            OpenError::NotCreatedYet(why) => ReadOnlyError::NotCreatedYet(why),
            OpenError::Failed(why) => ReadOnlyError::Unavailable(why),
        })?;
    let state = match store.migration_state().await {
        Ok(state) => state,
        Err(e) => {
            store.close().await;
            return Err(ReadOnlyError::Unavailable(format!(
                "{place}: cannot read its schema version: {e:#}"
            )));
        }
    };
    if let Some(why) = schema_mismatch(&state) {
        store.close().await;
        return Err(ReadOnlyError::SchemaMismatch(format!("{place}: {why}")));
    }
    Ok(store)
}

/// What is wrong with a schema for this binary, if anything, and what to run.
pub(crate) fn schema_mismatch(state: &MigrationState) -> Option<String> {
    let database = state
        .database_version
        .map_or("none (empty database)".to_string(), |v| v.to_string());
    let binary = state.binary_version;
    let version = env!("CARGO_PKG_VERSION");
    if let Some(v) = state.dirty {
        return Some(format!(
            "migration {v} failed part-way (schema version {database}, this ice-sync {version} \
             expects {binary}): restore the database from a backup taken before the upgrade"
        ));
    }
    if !state.unknown.is_empty() || state.database_version.is_some_and(|v| v > binary) {
        return Some(format!(
            "the database schema is at version {database}, newer than the {binary} this \
             ice-sync {version} knows: a newer ice-sync migrated it; upgrade this binary \
             (downgrades are not supported)"
        ));
    }
    if !state.changed.is_empty() {
        return Some(format!(
            "migration(s) {:?} differ from what was applied (schema version {database}): this \
             binary was built from edited migrations; install a released build",
            state.changed
        ));
    }
    (state.pending > 0).then(|| {
        format!(
            "the database schema is at version {database}, older than the {binary} this \
             ice-sync {version} reads: run `ice-sync migrate` (as the service's user), or \
             start the daemon, which migrates at start-up"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_both_versions_and_the_command() {
        let older = MigrationState {
            known: 10,
            applied: 9,
            pending: 1,
            database_version: Some(9),
            binary_version: 10,
            ..Default::default()
        };
        let text = schema_mismatch(&older).expect("older schema refused");
        assert!(text.contains("version 9") && text.contains("10"), "{text}");
        assert!(text.contains("ice-sync migrate"), "{text}");
        let newer = MigrationState {
            known: 10,
            applied: 10,
            unknown: vec![11],
            database_version: Some(11),
            binary_version: 10,
            ..Default::default()
        };
        let text = schema_mismatch(&newer).expect("newer schema refused");
        assert!(
            text.contains("version 11") && text.contains("upgrade"),
            "{text}"
        );
        let same = MigrationState {
            known: 10,
            applied: 10,
            database_version: Some(10),
            binary_version: 10,
            ..Default::default()
        };
        assert_eq!(schema_mismatch(&same), None);
    }
}
