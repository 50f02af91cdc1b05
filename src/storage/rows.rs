//! Reading rows back into the contract's types.

use super::backend::{Dialect, RowGet, SqlStore};
use super::error::StorageError;
use crate::contract::{ClaimToken, Stored, StoredRow};
use crate::domain::{ProjectId, Timestamp};

/// A project ID read from the database: it was valid when it was written, so an invalid
/// one means somebody inserted it by hand.
pub(crate) fn project_id(raw: String) -> Result<ProjectId, StorageError> {
    ProjectId::parse(&raw).map_err(|e| {
        StorageError::Invalid(format!(
            "tracked_projects holds {e}; remove it with `ice-sync track remove`"
        ))
    })
}

impl<DB: Dialect> SqlStore<DB> {
    pub(crate) fn stored_from_row(row: &DB::Row) -> Result<Stored, StorageError> {
        // `history_seq` is NOT NULL in editing_project_rows: NULL means the outer join
        // found no row (the project was never answered for).
        let history_seq: Option<i64> = row.try_get("history_seq")?;
        let last_polled_at: Option<Timestamp> = row.try_get("last_polled_at")?;
        let stored_row = match (history_seq, last_polled_at) {
            (Some(history_seq), Some(last_polled_at)) => Some(StoredRow {
                status: row.try_get("status")?,
                business_status: row.try_get("business_status")?,
                modified_time: row.try_get("modified_time")?,
                last_polled_at,
                removed_at: row.try_get("removed_at")?,
                history_seq,
                content_hash: row.try_get("content_hash")?,
            }),
            _ => None,
        };
        Ok(Stored {
            project_id: project_id(row.try_get("project_id")?)?,
            row: stored_row,
            not_found_count: row.try_get("not_found_count")?,
            consecutive_failures: row.try_get("consecutive_failures")?,
            claim: ClaimToken(row.try_get("claim_token")?),
        })
    }

    pub(crate) fn stored_rows(rows: &[DB::Row]) -> Result<Vec<Stored>, StorageError> {
        rows.iter().map(Self::stored_from_row).collect()
    }
}

/// A JSON array of IDs, the one way sets of IDs are passed to SQL on both backends.
pub(crate) fn ids_json(ids: &[ProjectId]) -> String {
    let items: Vec<&str> = ids.iter().map(ProjectId::as_str).collect();
    serde_json::to_string(&items).unwrap_or_else(|_| "[]".to_string())
}
