//! Reads for people and for the engine outside a claim: `ice-sync status`, `history`,
//! the stored state list mode compares list items with, how many projects a claim would
//! still find (a cycle's progress total), and the staleness metrics' read.

use super::backend::{Dialect, RowGet, SqlStore};
use super::error::{StorageContext, StorageError};
use super::listing::{ProjectStatus, StatusQuery};
use super::rows::{ids_json, project_id};
use super::sql;
use crate::contract::{ClaimScope, Stored};
use crate::domain::{ProjectId, Timestamp};

#[derive(Debug, Clone, PartialEq)]
pub struct StatusRow {
    pub(crate) project_id: ProjectId,
    pub(crate) enabled: bool,
    pub(crate) status: Option<String>,
    pub(crate) business_status: Option<String>,
    pub(crate) last_polled_at: Option<Timestamp>,
    pub(crate) last_changed_at: Option<Timestamp>,
    pub(crate) removed_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub(crate) consecutive_failures: i64,
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
    pub(crate) request_id: Option<String>,
    /// The lifecycle states this change jumped over (see `sync::lifecycle`).
    pub skipped_states: Option<String>,
}

/// When the least recently polled enabled projects were last polled (or, never polled,
/// added): among those the policy wants at every tick (`every_tick`: a transient status,
/// not failing) and among the others (settled, backing off after failures, or left to
/// list mode's sweep). `None` where there is no such project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OldestObservations {
    pub every_tick: Option<Timestamp>,
    pub other: Option<Timestamp>,
}

impl OldestObservations {
    /// Over all enabled projects.
    pub(crate) fn all(&self) -> Option<Timestamp> {
        match (self.every_tick, self.other) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// An enabled project not polled within the asked duration (`ice-sync status --stale`).
#[derive(Debug, Clone, PartialEq)]
pub struct StaleRow {
    pub project_id: ProjectId,
    pub added_at: Timestamp,
    /// The last poll that finished, answered or failed; `None`: never polled.
    pub last_attempt_at: Option<Timestamp>,
    pub(crate) next_poll_at: Option<Timestamp>,
    pub every_tick: bool,
    pub(crate) status: Option<String>,
    pub(crate) business_status: Option<String>,
    /// The last poll that got an answer.
    pub(crate) last_polled_at: Option<Timestamp>,
    pub(crate) last_error: Option<String>,
    pub(crate) consecutive_failures: i64,
}

impl StaleRow {}

/// The claim statements' predicate (see `postgres.rs` and `sqlite.rs`), counted instead of
/// claimed: `$1` the cutoff (not for `All`), then now for the lease comparison.
// Keep in step with the claims' predicates (storage::postgres, storage::sqlite).
const COUNT_DUE: &str = "SELECT count(*) FROM tracked_projects WHERE enabled AND \
     next_poll_at <= $1 AND (last_attempt_at IS NULL OR last_attempt_at < $2) \
     AND (lease_expires_at IS NULL OR lease_expires_at <= $2)";
const COUNT_ONCE: &str = "SELECT count(*) FROM tracked_projects WHERE enabled AND \
     (next_poll_at <= $1 OR every_tick) AND (last_attempt_at IS NULL OR last_attempt_at < $2) \
     AND (lease_expires_at IS NULL OR lease_expires_at <= $2)";
const COUNT_REQUESTED: &str = "SELECT count(*) FROM tracked_projects WHERE enabled AND \
     requested_at IS NOT NULL AND (lease_expires_at IS NULL OR lease_expires_at <= $1)";

impl<DB: Dialect> SqlStore<DB> {
    /// How many projects a claim of `scope` would find now: what is due and not leased.
    pub(crate) async fn count_due(
        &self,
        scope: ClaimScope,
        now: Timestamp,
    ) -> Result<u64, StorageError> {
        let q = match scope {
            ClaimScope::DueBy(cutoff) => self.query(COUNT_DUE).bind(cutoff),
            ClaimScope::Once(cutoff) => self.query(COUNT_ONCE).bind(cutoff),
            ClaimScope::All => self.query(COUNT_DUE).bind(Timestamp::END_OF_TIME),
            ClaimScope::Refresh => self.query(COUNT_REQUESTED),
        };
        let row = q
            .bind(now)
            .fetch_one(self.exec())
            .await
            .ctx("counting due projects")?;
        Ok(row.try_get::<i64, _>(0usize)?.max(0) as u64)
    }

    pub(crate) async fn ping(&self) -> Result<(), StorageError> {
        self.query(sql::PING)
            .execute(self.exec())
            .await
            .ctx("the database did not answer")?;
        Ok(())
    }

    /// The stored state of one tracked project (its current claim token included).
    pub async fn load(&self, id: &ProjectId) -> Result<Option<Stored>, StorageError> {
        let row = self
            .query(sql::ONE_PROJECT)
            .bind(id.as_str().to_string())
            .fetch_optional(self.exec())
            .await
            .with_ctx(|| format!("reading project {id}"))?;
        row.map(|r| Self::stored_from_row(&r)).transpose()
    }

    /// Stored state of the tracked projects among `ids` (untracked ones are absent).
    pub(crate) async fn load_many(&self, ids: &[ProjectId]) -> Result<Vec<Stored>, StorageError> {
        let rows = self
            .query(DB::LOAD_MANY)
            .bind(ids_json(ids))
            .fetch_all(self.exec())
            .await
            .ctx("reading tracked projects")?;
        Self::stored_rows(&rows)
    }

    pub(crate) async fn status(&self) -> Result<Vec<StatusRow>, StorageError> {
        let rows = self
            .query(sql::STATUS)
            .fetch_all(self.exec())
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

    pub(crate) async fn oldest_observations(&self) -> Result<OldestObservations, StorageError> {
        let row = self
            .query(sql::OLDEST_OBSERVATIONS)
            .fetch_one(self.exec())
            .await
            .ctx("reading the oldest observations")?;
        Ok(OldestObservations {
            every_tick: row.try_get("every_tick")?,
            other: row.try_get("other")?,
        })
    }

    pub(crate) async fn stale(&self, before: Timestamp) -> Result<Vec<StaleRow>, StorageError> {
        let rows = self
            .query(sql::STALE)
            .bind(before)
            .fetch_all(self.exec())
            .await
            .ctx("reading projects not polled lately")?;
        rows.iter()
            .map(|r| {
                Ok(StaleRow {
                    project_id: project_id(r.try_get("project_id")?)?,
                    added_at: r.try_get("added_at")?,
                    last_attempt_at: r.try_get("last_attempt_at")?,
                    next_poll_at: r.try_get("next_poll_at")?,
                    every_tick: r.try_get("every_tick")?,
                    status: r.try_get("status")?,
                    business_status: r.try_get("business_status")?,
                    last_polled_at: r.try_get("last_polled_at")?,
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
            .fetch_all(self.exec())
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
                    skipped_states: r.try_get("skipped_states")?,
                })
            })
            .collect()
    }
}

/// What `status`, `history`, `stale` and the gauges read.
/// (`Store::reads`)
#[derive(Clone, Copy, Debug)]
pub struct Reads<'a>(pub(super) &'a super::Backend);

impl Reads<'_> {
    pub async fn status(&self) -> Result<Vec<StatusRow>, StorageError> {
        dispatch!(self.0, s => s.status().await)
    }

    /// The oldest observations among enabled projects (index probes: cheap per scrape).
    pub async fn oldest_observations(&self) -> Result<OldestObservations, StorageError> {
        dispatch!(self.0, s => s.oldest_observations().await)
    }

    /// Enabled projects not polled since `before`, oldest first.
    pub async fn stale(&self, before: Timestamp) -> Result<Vec<StaleRow>, StorageError> {
        dispatch!(self.0, s => s.stale(before).await)
    }

    pub async fn history(&self, id: &ProjectId) -> Result<Vec<HistoryRow>, StorageError> {
        dispatch!(self.0, s => s.history(id).await)
    }

    /// Streams the projects `query` selects to `each` (false stops); returns how many
    /// were handed over. Memory does not grow with the number of projects.
    pub(crate) async fn status_each(
        &self,
        query: &StatusQuery,
        each: &mut dyn FnMut(ProjectStatus) -> bool,
    ) -> Result<u64, StorageError> {
        dispatch!(self.0, s => s.status_each(query, each).await)
    }
}
