//! `sync_runs`: one row per cycle, opened when it starts and closed with its totals.

use super::backend::{Dialect, RowGet, RowsAffected, SqlStore};
use super::error::{StorageContext, StorageError};
use super::sql;
use crate::contract::RunTotals;
use crate::domain::Timestamp;

impl<DB: Dialect> SqlStore<DB> {
    /// `trigger`: what started the cycle (`sync_runs.trigger`, see migration 0006).
    pub(crate) async fn begin_run(
        &self,
        at: Timestamp,
        replica_id: &str,
        trigger: &str,
    ) -> Result<i64, StorageError> {
        let row = self
            .query(sql::BEGIN_RUN)
            .bind(at)
            .bind(replica_id.to_string())
            .bind(trigger.to_string())
            .fetch_one(self.exec())
            .await
            .ctx("recording the start of a cycle in sync_runs")?;
        Ok(row.try_get::<i64, _>(0usize)?)
    }

    pub(crate) async fn finish_run(
        &self,
        id: i64,
        at: Timestamp,
        t: &RunTotals,
    ) -> Result<(), StorageError> {
        self.query(sql::FINISH_RUN)
            .bind(id)
            .bind(at)
            .bind(t.outcome.clone())
            .bind(t.projects_polled)
            .bind(t.projects_changed)
            .bind(t.transitions)
            .bind(t.failures)
            .bind(crate::text::storable_opt(t.error.as_deref()))
            .bind(t.overran)
            .execute(self.exec())
            .await
            .ctx("recording the end of a cycle in sync_runs")?;
        Ok(())
    }

    pub(crate) async fn discard_run(&self, id: i64) -> Result<(), StorageError> {
        self.query(sql::DISCARD_RUN)
            .bind(id)
            .execute(self.exec())
            .await
            .ctx("discarding an empty cycle from sync_runs")?;
        Ok(())
    }

    pub(crate) async fn running_replicas(&self) -> Result<Vec<String>, StorageError> {
        let rows = self
            .query(sql::RUNNING_REPLICAS)
            .fetch_all(self.exec())
            .await
            .ctx("reading which replicas have cycles running")?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>(0usize)?))
            .collect()
    }

    pub(crate) async fn abandon_runs(&self, replica_id: &str) -> Result<u64, StorageError> {
        let r = self
            .query(sql::ABANDON_RUNS)
            .bind(replica_id.to_string())
            .execute(self.exec())
            .await
            .ctx("closing cycles left running by a previous process")?;
        Ok(r.rows_affected_of())
    }
}

/// `sync_runs`: one row per cycle.
/// (`Store::runs`)
#[derive(Clone, Copy, Debug)]
pub struct Runs<'a>(pub(super) &'a super::Backend);

impl Runs<'_> {
    /// Opens a `sync_runs` row; `trigger` says what started the cycle.
    pub async fn begin_run(
        &self,
        at: Timestamp,
        replica_id: &str,
        trigger: &str,
    ) -> Result<i64, StorageError> {
        dispatch!(self.0, s => s.begin_run(at, replica_id, trigger).await)
    }

    pub async fn finish_run(
        &self,
        id: i64,
        at: Timestamp,
        totals: &RunTotals,
    ) -> Result<(), StorageError> {
        dispatch!(self.0, s => s.finish_run(id, at, totals).await)
    }

    /// Deletes a run still `running` that did nothing worth a row.
    pub(crate) async fn discard_run(&self, id: i64) -> Result<(), StorageError> {
        dispatch!(self.0, s => s.discard_run(id).await)
    }

    /// Closes as `aborted` the runs still `running` under exactly `replica_id`.
    pub(crate) async fn abandon_runs(&self, replica_id: &str) -> Result<u64, StorageError> {
        dispatch!(self.0, s => s.abandon_runs(replica_id).await)
    }

    /// The replica ids that have a run still `running`.
    pub(crate) async fn running_replicas(&self) -> Result<Vec<String>, StorageError> {
        dispatch!(self.0, s => s.running_replicas().await)
    }
}
