//! What is tracked: `track add/remove/list`, and reconciling `sync.projects` with the
//! table in a few set-based statements whatever the number of IDs.

use super::backend::{counted, Dialect, RowGet, RowsAffected, SqlStore};
use super::error::{StorageContext, StorageError};
use super::rows::{ids_json, project_id};
use super::sql;
use crate::contract::Stored;
use crate::domain::{ProjectId, Timestamp};

#[derive(Debug, Clone, PartialEq)]
pub struct TrackedRow {
    pub project_id: ProjectId,
    pub(crate) added_at: Timestamp,
    pub source: String,
    pub enabled: bool,
}

impl<DB: Dialect> SqlStore<DB> {
    /// Tracks `ids` (again) in one statement; returns how many were added, re-enabled
    /// or taken over by this `source`.
    pub(crate) async fn track_add(
        &self,
        ids: &[ProjectId],
        source: &str,
        now: Timestamp,
    ) -> Result<u64, StorageError> {
        let r = self
            .query(DB::TRACK_ADD_MANY)
            .bind(ids_json(ids))
            .bind(now)
            .bind(source.to_string())
            .bind(Timestamp::NEVER)
            .execute(self.exec())
            .await
            .ctx("tracking projects")?;
        Ok(r.rows_affected_of())
    }

    pub(crate) async fn track_remove(&self, ids: &[ProjectId]) -> Result<u64, StorageError> {
        let r = self
            .query(DB::TRACK_REMOVE_MANY)
            .bind(ids_json(ids))
            .execute(self.exec())
            .await
            .ctx("untracking projects")?;
        Ok(r.rows_affected_of())
    }

    pub(crate) async fn track_list(&self) -> Result<Vec<TrackedRow>, StorageError> {
        let rows = self
            .query(sql::TRACK_LIST)
            .fetch_all(self.exec())
            .await
            .ctx("listing tracked projects")?;
        rows.iter()
            .map(|r| {
                Ok(TrackedRow {
                    project_id: project_id(r.try_get("project_id")?)?,
                    added_at: r.try_get("added_at")?,
                    source: r.try_get("source")?,
                    enabled: r.try_get("enabled")?,
                })
            })
            .collect()
    }

    /// How many tracked projects are enabled.
    pub(crate) async fn count_tracked(&self) -> Result<u64, StorageError> {
        let row = self
            .query(sql::COUNT_TRACKED)
            .fetch_one(self.exec())
            .await
            .ctx("counting tracked projects")?;
        Ok(row.try_get::<i64, _>(0usize)?.max(0) as u64)
    }

    /// The enabled project with the lowest ID, if any.
    pub(crate) async fn first_tracked(&self) -> Result<Option<ProjectId>, StorageError> {
        let row = self
            .query(sql::FIRST_TRACKED)
            .fetch_optional(self.exec())
            .await
            .ctx("reading a tracked project")?;
        row.map(|r| project_id(r.try_get(0usize)?)).transpose()
    }

    /// Makes the `source = 'config'` rows match `sync.projects`: adds the new ones,
    /// re-enables config rows that are listed again and disables those no longer
    /// listed. Projects added by hand or discovered are left alone. Returns
    /// (added or re-enabled, disabled). The IDs reach the database a chunk at a time
    /// through a temporary table, so a million of them never make one parameter (a
    /// 35 MB JSON text, and as much again where the database parses it).
    pub(crate) async fn sync_config_projects(
        &self,
        ids: &[ProjectId],
        now: Timestamp,
    ) -> Result<(u64, u64), StorageError> {
        let mut pooled = self.pool.acquire().await?;
        let result = async {
            let mut tx = sqlx::Connection::begin_with(&mut *pooled, DB::BEGIN).await?;
            for statement in DB::CONFIG_STAGE {
                counted::<DB>(&self.counters, statement)
                    .execute(&mut *tx)
                    .await
                    .ctx("staging the IDs of sync.projects")?;
            }
            for chunk in ids.chunks(CONFIG_CHUNK) {
                counted::<DB>(&self.counters, DB::CONFIG_STAGE_IDS)
                    .bind(ids_json(chunk))
                    .execute(&mut *tx)
                    .await
                    .ctx("staging the IDs of sync.projects")?;
            }
            let added = counted::<DB>(&self.counters, DB::CONFIG_ADD)
                .bind(now)
                .bind(Timestamp::NEVER)
                .execute(&mut *tx)
                .await
                .ctx("tracking the projects of sync.projects")?
                .rows_affected_of();
            let disabled = counted::<DB>(&self.counters, DB::CONFIG_DISABLE)
                .execute(&mut *tx)
                .await
                .ctx("disabling projects no longer in sync.projects")?
                .rows_affected_of();
            if let Some(unstage) = DB::CONFIG_UNSTAGE {
                counted::<DB>(&self.counters, unstage)
                    .execute(&mut *tx)
                    .await
                    .ctx("dropping the staged IDs of sync.projects")?;
            }
            tx.commit().await?;
            self.counters.committed();
            Ok((added, disabled))
        }
        .await;
        Self::settle(pooled, result).await
    }
}

/// IDs per statement staging `sync.projects` (~350 KB of JSON).
const CONFIG_CHUNK: usize = 10_000;

/// What is tracked, and the stored state of tracked projects.
/// (`Store::tracking`)
#[derive(Clone, Copy, Debug)]
pub struct Tracking<'a>(pub(super) &'a super::Backend);

impl Tracking<'_> {
    pub async fn load(&self, id: &ProjectId) -> Result<Option<Stored>, StorageError> {
        dispatch!(self.0, s => s.load(id).await)
    }

    /// Stored state of the tracked projects among `ids` (untracked ones are absent).
    pub(crate) async fn load_many(&self, ids: &[ProjectId]) -> Result<Vec<Stored>, StorageError> {
        dispatch!(self.0, s => s.load_many(ids).await)
    }

    pub async fn track_add(
        &self,
        ids: &[ProjectId],
        source: &str,
        now: Timestamp,
    ) -> Result<u64, StorageError> {
        dispatch!(self.0, s => s.track_add(ids, source, now).await)
    }

    pub async fn track_remove(&self, ids: &[ProjectId]) -> Result<u64, StorageError> {
        dispatch!(self.0, s => s.track_remove(ids).await)
    }

    pub async fn track_list(&self) -> Result<Vec<TrackedRow>, StorageError> {
        dispatch!(self.0, s => s.track_list().await)
    }

    /// How many tracked projects are enabled: a `count(*)`, nothing read back per project.
    pub async fn count_tracked(&self) -> Result<u64, StorageError> {
        dispatch!(self.0, s => s.count_tracked().await)
    }

    /// The enabled project with the lowest ID, if any (one row read, whatever is tracked).
    pub async fn first_tracked(&self) -> Result<Option<ProjectId>, StorageError> {
        dispatch!(self.0, s => s.first_tracked().await)
    }

    /// Makes the `source = 'config'` rows match `sync.projects`. Returns (added, disabled).
    pub async fn sync_config_projects(
        &self,
        ids: &[ProjectId],
        now: Timestamp,
    ) -> Result<(u64, u64), StorageError> {
        dispatch!(self.0, s => s.sync_config_projects(ids, now).await)
    }

    /// Streams `tracked_projects` in ID order to `each` (false stops).
    pub(crate) async fn track_list_each(
        &self,
        each: &mut dyn FnMut(TrackedRow) -> bool,
    ) -> Result<u64, StorageError> {
        dispatch!(self.0, s => s.track_list_each(each).await)
    }

    /// The tracked rows among `ids`, whatever their state; untracked IDs are absent.
    pub(crate) async fn tracked_among(
        &self,
        ids: &[ProjectId],
    ) -> Result<Vec<TrackedRow>, StorageError> {
        dispatch!(self.0, s => s.tracked_among(ids).await)
    }
}
