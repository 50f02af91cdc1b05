//! Reads for the operator's commands that may cover every tracked project (`status`,
//! `track list`): streamed row by row to a callback, so a million tracked projects never
//! sit in memory at once, with the filters `status` takes; and which of some IDs are
//! tracked, with their source (`track` counts, config projects the daemon has not synced).

use futures::TryStreamExt;

use super::backend::{Dialect, RowGet, SqlStore};
use super::error::{StorageContext, StorageError};
use super::rows::project_id;
use super::tracking::TrackedRow;
use crate::domain::{ProjectId, Timestamp};

/// IDs per `IN (...)` list: well under SQLite's limit on bound parameters.
const IDS_PER_STATEMENT: usize = 500;

/// Which projects `status` shows. Empty `ids`: every tracked project.
#[derive(Debug, Clone, Default)]
pub(crate) struct StatusQuery {
    pub(crate) ids: Vec<ProjectId>,
    /// `status` or `business_status` equal to this.
    pub(crate) status: Option<String>,
    /// Only projects whose last poll failed.
    pub(crate) failing: bool,
    /// Only enabled projects not polled since this time, oldest first.
    pub(crate) stale_before: Option<Timestamp>,
    pub(crate) limit: Option<u64>,
}

/// One tracked project as `status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProjectStatus {
    pub(crate) project_id: ProjectId,
    pub(crate) source: String,
    pub(crate) enabled: bool,
    pub(crate) added_at: Timestamp,
    pub(crate) status: Option<String>,
    pub(crate) business_status: Option<String>,
    /// The last poll that got an answer.
    pub(crate) last_polled_at: Option<Timestamp>,
    /// The last poll that finished, answered or failed.
    pub(crate) last_attempt_at: Option<Timestamp>,
    pub(crate) next_poll_at: Option<Timestamp>,
    pub(crate) every_tick: bool,
    pub(crate) last_changed_at: Option<Timestamp>,
    pub(crate) removed_at: Option<Timestamp>,
    pub(crate) last_error: Option<String>,
    pub(crate) consecutive_failures: i64,
}

impl ProjectStatus {
    /// What staleness is measured from.
    pub(crate) fn observed_since(&self) -> Timestamp {
        self.last_attempt_at.unwrap_or(self.added_at)
    }
}

const STATUS_COLUMNS: &str = "\
SELECT t.project_id, t.source, t.enabled, t.added_at, t.last_attempt_at, t.next_poll_at,
       t.every_tick, t.last_error, t.consecutive_failures, p.status, p.business_status,
       COALESCE(t.last_polled_at, p.last_polled_at) AS last_polled_at,
       p.last_changed_at, p.removed_at
FROM tracked_projects t LEFT JOIN editing_project_rows p ON p.project_id = t.project_id";

/// `IN ($first, ..., $first + n - 1)`.
fn placeholders(first: usize, n: usize) -> String {
    let list: Vec<String> = (first..first + n).map(|i| format!("${i}")).collect();
    list.join(", ")
}

/// The statement for one chunk of `query` (`ids`: the chunk's IDs, or none for all).
fn status_sql(query: &StatusQuery, ids: usize, limit: Option<u64>) -> String {
    let mut sql = format!("{STATUS_COLUMNS} WHERE TRUE");
    let mut next = 1;
    if query.status.is_some() {
        sql.push_str(&format!(
            " AND (p.status = ${next} OR p.business_status = ${next})"
        ));
        next += 1;
    }
    if query.failing {
        sql.push_str(" AND t.consecutive_failures > 0");
    }
    if query.stale_before.is_some() {
        sql.push_str(&format!(
            " AND t.enabled AND COALESCE(t.last_attempt_at, t.added_at) < ${next}"
        ));
        next += 1;
    }
    if ids > 0 {
        sql.push_str(&format!(
            " AND t.project_id IN ({})",
            placeholders(next, ids)
        ));
    }
    if query.stale_before.is_some() && ids == 0 {
        sql.push_str(" ORDER BY COALESCE(t.last_attempt_at, t.added_at), t.project_id");
    } else {
        sql.push_str(" ORDER BY t.project_id");
    }
    if let Some(n) = limit {
        sql.push_str(&format!(" LIMIT {n}"));
    }
    sql
}

impl<DB: Dialect> SqlStore<DB> {
    /// Streams the projects `query` selects to `each`, in order; `each` returns false to
    /// stop early (a closed pipe). Returns how many rows were handed over.
    pub(crate) async fn status_each(
        &self,
        query: &StatusQuery,
        each: &mut dyn FnMut(ProjectStatus) -> bool,
    ) -> Result<u64, StorageError> {
        let mut ids = query.ids.clone();
        ids.sort();
        ids.dedup();
        let chunks: Vec<&[ProjectId]> = if ids.is_empty() {
            vec![&[]]
        } else {
            ids.chunks(IDS_PER_STATEMENT).collect()
        };
        let mut handed = 0u64;
        for chunk in chunks {
            let limit = query.limit.map(|n| n.saturating_sub(handed));
            if limit == Some(0) {
                break;
            }
            let sql = status_sql(query, chunk.len(), limit);
            let mut q = self.query(&sql);
            if let Some(s) = &query.status {
                q = q.bind(s.clone());
            }
            if let Some(before) = query.stale_before {
                q = q.bind(before);
            }
            for id in chunk {
                q = q.bind(id.as_str().to_string());
            }
            let mut rows = q.fetch(&self.pool);
            while let Some(r) = rows.try_next().await.ctx("reading project status")? {
                handed += 1;
                if !each(Self::project_status(&r)?) {
                    return Ok(handed);
                }
            }
        }
        Ok(handed)
    }

    fn project_status(r: &DB::Row) -> Result<ProjectStatus, StorageError> {
        Ok(ProjectStatus {
            project_id: project_id(r.try_get("project_id")?)?,
            source: r.try_get("source")?,
            enabled: r.try_get("enabled")?,
            added_at: r.try_get("added_at")?,
            status: r.try_get("status")?,
            business_status: r.try_get("business_status")?,
            last_polled_at: r.try_get("last_polled_at")?,
            last_attempt_at: r.try_get("last_attempt_at")?,
            next_poll_at: r.try_get("next_poll_at")?,
            every_tick: r.try_get("every_tick")?,
            last_changed_at: r.try_get("last_changed_at")?,
            removed_at: r.try_get("removed_at")?,
            last_error: r.try_get("last_error")?,
            consecutive_failures: r.try_get("consecutive_failures")?,
        })
    }

    /// Streams `tracked_projects` in ID order to `each` (false stops).
    pub(crate) async fn track_list_each(
        &self,
        each: &mut dyn FnMut(TrackedRow) -> bool,
    ) -> Result<u64, StorageError> {
        let mut rows = self.query(super::sql::TRACK_LIST).fetch(&self.pool);
        let mut handed = 0u64;
        while let Some(r) = rows.try_next().await.ctx("listing tracked projects")? {
            handed += 1;
            let row = TrackedRow {
                project_id: project_id(r.try_get("project_id")?)?,
                added_at: r.try_get("added_at")?,
                source: r.try_get("source")?,
                enabled: r.try_get("enabled")?,
            };
            if !each(row) {
                break;
            }
        }
        Ok(handed)
    }

    /// The rows of `tracked_projects` among `ids` (untracked IDs are absent).
    pub(crate) async fn tracked_among(
        &self,
        ids: &[ProjectId],
    ) -> Result<Vec<TrackedRow>, StorageError> {
        let mut found = Vec::new();
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "SELECT project_id, added_at, source, enabled FROM tracked_projects \
                 WHERE project_id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = self.query(&sql);
            for id in chunk {
                q = q.bind(id.as_str().to_string());
            }
            let rows = q
                .fetch_all(&self.pool)
                .await
                .ctx("reading tracked projects")?;
            for r in rows {
                found.push(TrackedRow {
                    project_id: project_id(r.try_get("project_id")?)?,
                    added_at: r.try_get("added_at")?,
                    source: r.try_get("source")?,
                    enabled: r.try_get("enabled")?,
                });
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_numbered_parameters() {
        let query = StatusQuery {
            status: Some("Producing".into()),
            failing: true,
            stale_before: Some(Timestamp::NEVER),
            ..Default::default()
        };
        let sql = status_sql(&query, 2, Some(5));
        assert!(sql.contains("p.status = $1"), "{sql}");
        assert!(sql.contains("< $2"), "{sql}");
        assert!(sql.contains("IN ($3, $4)"), "{sql}");
        assert!(sql.ends_with("LIMIT 5"), "{sql}");
    }
}
