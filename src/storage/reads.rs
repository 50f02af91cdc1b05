//! Reads for people and for the engine outside a claim: `ice-sync status`, `history`,
//! and the stored state list mode compares list items with.

use sqlx::Row;

use super::backend::for_every_backend;
use super::error::{StorageContext, StorageError};
use super::rows::{ids_json, project_id};
use super::sql;
use crate::contract::Stored;
use crate::domain::{ProjectId, Timestamp};

#[derive(Debug, Clone, PartialEq)]
pub struct StatusRow {
    pub project_id: ProjectId,
    pub enabled: bool,
    pub status: Option<String>,
    pub business_status: Option<String>,
    pub last_polled_at: Option<Timestamp>,
    pub last_changed_at: Option<Timestamp>,
    pub removed_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub consecutive_failures: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    pub seq: i64,
    pub observed_at: Timestamp,
    pub event: String,
    pub previous_status: Option<String>,
    pub status: Option<String>,
    pub previous_business_status: Option<String>,
    pub business_status: Option<String>,
    pub request_id: Option<String>,
}

for_every_backend! {
    pub(crate) async fn ping(&self) -> Result<(), StorageError> {
        self.query(sql::PING)
            .execute(&self.pool)
            .await
            .ctx("the database did not answer")?;
        Ok(())
    }

    /// The stored state of one tracked project (its current claim token included).
    pub(crate) async fn load(&self, id: &ProjectId) -> Result<Option<Stored>, StorageError> {
        let row = self
            .query(sql::ONE_PROJECT)
            .bind(id.as_str().to_string())
            .fetch_optional(&self.pool)
            .await
            .with_ctx(|| format!("reading project {id}"))?;
        row.map(|r| Self::stored_from_row(&r)).transpose()
    }

    /// Stored state of the tracked projects among `ids` (untracked ones are absent).
    pub(crate) async fn load_many(&self, ids: &[ProjectId]) -> Result<Vec<Stored>, StorageError> {
        let rows = self
            .query(DB::LOAD_MANY)
            .bind(ids_json(ids))
            .fetch_all(&self.pool)
            .await
            .ctx("reading tracked projects")?;
        Self::stored_rows(&rows)
    }

    pub(crate) async fn status(&self) -> Result<Vec<StatusRow>, StorageError> {
        let rows = self
            .query(sql::STATUS)
            .fetch_all(&self.pool)
            .await
            .ctx("reading project status")?;
        rows.iter()
            .map(|r| {
                Ok(StatusRow {
                    project_id: project_id(r.try_get("project_id")?)?,
                    enabled: r.try_get("enabled")?,
                    status: r.try_get("status")?,
                    business_status: r.try_get("business_status")?,
                    last_polled_at: r.try_get("last_polled_at")?,
                    last_changed_at: r.try_get("last_changed_at")?,
                    removed_at: r.try_get("removed_at")?,
                    last_error: r.try_get("last_error")?,
                    consecutive_failures: r.try_get("consecutive_failures")?,
                })
            })
            .collect()
    }

    pub(crate) async fn history(&self, id: &ProjectId) -> Result<Vec<HistoryRow>, StorageError> {
        let rows = self
            .query(sql::HISTORY)
            .bind(id.as_str().to_string())
            .fetch_all(&self.pool)
            .await
            .with_ctx(|| format!("reading the history of {id}"))?;
        rows.iter()
            .map(|r| {
                Ok(HistoryRow {
                    seq: r.try_get("seq")?,
                    observed_at: r.try_get("observed_at")?,
                    event: r.try_get("event")?,
                    previous_status: r.try_get("previous_status")?,
                    status: r.try_get("status")?,
                    previous_business_status: r.try_get("previous_business_status")?,
                    business_status: r.try_get("business_status")?,
                    request_id: r.try_get("request_id")?,
                })
            })
            .collect()
    }
}
