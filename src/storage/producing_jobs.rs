//! `media_producing_jobs` and its to-do list `media_producing_job_requests`.
//!
//! A job's row, its bookkeeping and the request that led to it change in one
//! transaction: a crash leaves the request queued (the lookup is repeated, and the upsert
//! on `job_id` makes that harmless), never a half-written job. A write is fenced like a
//! project's: a finished job is never turned back into a running one, and an answer
//! whose ModifiedTime is older than the stored one changes nothing.

use futures::FutureExt;

use super::backend::{counted, Dialect, RowGet, RowsAffected, SqlStore};
use super::error::{StorageContext, StorageError};
use super::rows::project_id;
use crate::contract::{JobObservation, JobRequest, ProducingJobColumns, StoredJob};
use crate::domain::{ProjectId, Timestamp};

const JOB_UPSERT: &str = "\
INSERT INTO media_producing_jobs (
    job_id, project_id, status, code, message, media_id, media_url, vod_media_id,
    template_id, duration, progress, user_data, create_time, modified_time, complete_time,
    first_seen_at, last_polled_at, last_changed_at, extra, last_request_id, not_found_count,
    content_hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
        $16, $16, $16, $17, $18, 0, $19)
ON CONFLICT (job_id) DO UPDATE SET
    project_id = excluded.project_id, status = excluded.status, code = excluded.code,
    message = excluded.message, media_id = excluded.media_id, media_url = excluded.media_url,
    vod_media_id = excluded.vod_media_id, template_id = excluded.template_id,
    duration = excluded.duration, progress = excluded.progress,
    user_data = excluded.user_data, create_time = excluded.create_time,
    modified_time = excluded.modified_time, complete_time = excluded.complete_time,
    extra = excluded.extra,
    last_polled_at = excluded.last_polled_at,
    last_changed_at = CASE WHEN media_producing_jobs.content_hash = excluded.content_hash
                           THEN media_producing_jobs.last_changed_at
                           ELSE excluded.last_changed_at END,
    last_request_id = excluded.last_request_id,
    not_found_count = 0,
    content_hash = excluded.content_hash
WHERE NOT (media_producing_jobs.status IN ('Success', 'Failed')
           AND (excluded.status IS NULL OR excluded.status NOT IN ('Success', 'Failed')))
  AND (media_producing_jobs.modified_time IS NULL OR excluded.modified_time IS NULL
       OR excluded.modified_time >= media_producing_jobs.modified_time)";

const JOB_NOT_FOUND: &str = "\
UPDATE media_producing_jobs SET not_found_count = not_found_count + 1, last_polled_at = $2
WHERE job_id = $1";

const REQUEST_DONE: &str = "\
DELETE FROM media_producing_job_requests WHERE project_id = $1 AND job_id = $2";

const REQUESTS_CLEAR: &str = "DELETE FROM media_producing_job_requests";

const REQUESTS: &str = "\
SELECT project_id, job_id FROM media_producing_job_requests
ORDER BY requested_at, project_id, job_id LIMIT $1";

/// Running jobs, least recently polled first; two "not found" answers in a row end it.
const UNFINISHED: &str = "\
SELECT job_id FROM media_producing_jobs
WHERE (status IS NULL OR status NOT IN ('Success', 'Failed')) AND not_found_count < 2
ORDER BY last_polled_at, job_id LIMIT $1";

const PROJECT_JOB_STATUSES: &str = "\
SELECT job_id, status FROM media_producing_jobs WHERE project_id = $1";

const TRACKED_AFTER: &str = "\
SELECT project_id FROM tracked_projects WHERE enabled AND project_id > $1
ORDER BY project_id LIMIT $2";

const JOB_COLUMNS: &str = "\
SELECT job_id, project_id, status, code, message, media_id, media_url, vod_media_id,
       template_id, duration, progress, user_data, create_time, modified_time, complete_time,
       extra, first_seen_at, last_polled_at, last_changed_at
FROM media_producing_jobs";

/// `$1` '' for all, else a project ID or a job ID; `$2` limit.
const JOBS_MATCHING: &str = "\
 WHERE $1 = '' OR project_id = $1 OR job_id = $1
ORDER BY project_id, create_time, job_id LIMIT $2";

impl<DB: Dialect> SqlStore<DB> {
    /// Stores `jobs` and marks `done` handled, in one transaction. Returns how many job
    /// rows changed (a fenced answer changes none).
    pub(crate) async fn write_jobs(
        &self,
        jobs: &[JobObservation],
        done: Option<&JobRequest>,
    ) -> Result<u64, StorageError> {
        let jobs = jobs.to_vec();
        let done = done.cloned();
        self.transaction(move |conn, counters| {
            async move {
                let mut written = 0;
                for job in &jobs {
                    let c = &job.columns;
                    written += counted::<DB>(counters, JOB_UPSERT)
                        .bind(c.job_id.as_str())
                        .bind(c.project_id.as_str())
                        .bind(c.status.as_deref())
                        .bind(c.code.as_deref())
                        .bind(c.message.as_deref())
                        .bind(c.media_id.as_deref())
                        .bind(c.media_url.as_deref())
                        .bind(c.vod_media_id.as_deref())
                        .bind(c.template_id.as_deref())
                        .bind(c.duration)
                        .bind(c.progress)
                        .bind(c.user_data.as_deref())
                        .bind(c.create_time)
                        .bind(c.modified_time)
                        .bind(c.complete_time)
                        .bind(job.polled_at)
                        .bind(c.extra.as_deref())
                        .bind(job.request_id.as_deref())
                        .bind(job.content_hash)
                        .execute(&mut *conn)
                        .await
                        .with_ctx(|| format!("writing producing job {}", c.job_id))?
                        .rows_affected_of();
                }
                if let Some(done) = &done {
                    counted::<DB>(counters, REQUEST_DONE)
                        .bind(done.project_id.as_str())
                        .bind(done.job_id.as_deref().unwrap_or(""))
                        .execute(&mut *conn)
                        .await
                        .ctx("marking a producing-job lookup done")?;
                }
                Ok(written)
            }
            .boxed()
        })
        .await
    }

    /// ICE says the job does not exist (it expired): counted, so polling it stops after
    /// a repeat; the row is kept. `done` is marked handled in the same transaction.
    pub(crate) async fn job_not_found(
        &self,
        job_id: &str,
        at: Timestamp,
        done: Option<&JobRequest>,
    ) -> Result<(), StorageError> {
        let job_id = job_id.to_string();
        let done = done.cloned();
        self.transaction(move |conn, counters| {
            async move {
                counted::<DB>(counters, JOB_NOT_FOUND)
                    .bind(job_id.as_str())
                    .bind(at)
                    .execute(&mut *conn)
                    .await
                    .ctx("counting a job ICE no longer knows")?;
                if let Some(done) = &done {
                    counted::<DB>(counters, REQUEST_DONE)
                        .bind(done.project_id.as_str())
                        .bind(done.job_id.as_deref().unwrap_or(""))
                        .execute(&mut *conn)
                        .await
                        .ctx("marking a producing-job lookup done")?;
                }
                Ok(())
            }
            .boxed()
        })
        .await
    }

    /// Drops every queued lookup (`jobs.enabled = false`: nobody will serve them, and
    /// callbacks keep queueing). Returns how many.
    pub(crate) async fn clear_job_requests(&self) -> Result<u64, StorageError> {
        let r = self
            .query(REQUESTS_CLEAR)
            .execute(self.exec())
            .await
            .ctx("dropping queued producing-job lookups")?;
        Ok(r.rows_affected_of())
    }

    /// The oldest queued lookups, at most `limit`.
    pub(crate) async fn job_requests(&self, limit: i64) -> Result<Vec<JobRequest>, StorageError> {
        let rows = self
            .query(REQUESTS)
            .bind(limit)
            .fetch_all(self.exec())
            .await
            .ctx("reading queued producing-job lookups")?;
        rows.iter()
            .map(|r| {
                let job_id: String = r.try_get("job_id")?;
                Ok(JobRequest {
                    project_id: project_id(r.try_get("project_id")?)?,
                    job_id: Some(job_id).filter(|j| !j.is_empty()),
                })
            })
            .collect()
    }

    /// Jobs not yet final, least recently polled first, at most `limit`.
    pub(crate) async fn unfinished_jobs(&self, limit: i64) -> Result<Vec<String>, StorageError> {
        let rows = self
            .query(UNFINISHED)
            .bind(limit)
            .fetch_all(self.exec())
            .await
            .ctx("reading running producing jobs")?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>(0usize)?))
            .collect()
    }

    /// The stored status of each job of one project.
    pub(crate) async fn project_job_statuses(
        &self,
        project: &ProjectId,
    ) -> Result<Vec<(String, Option<String>)>, StorageError> {
        let rows = self
            .query(PROJECT_JOB_STATUSES)
            .bind(project.as_str().to_string())
            .fetch_all(self.exec())
            .await
            .ctx("reading a project's producing jobs")?;
        rows.iter()
            .map(|r| Ok((r.try_get("job_id")?, r.try_get("status")?)))
            .collect()
    }

    /// Enabled tracked projects after `after` in ID order, at most `limit` (backfill
    /// pages through them without holding them all).
    pub(crate) async fn tracked_after(
        &self,
        after: &str,
        limit: i64,
    ) -> Result<Vec<ProjectId>, StorageError> {
        let rows = self
            .query(TRACKED_AFTER)
            .bind(after.to_string())
            .bind(limit)
            .fetch_all(self.exec())
            .await
            .ctx("listing tracked projects")?;
        rows.iter()
            .map(|r| project_id(r.try_get(0usize)?))
            .collect()
    }

    /// Stored jobs: all (`filter` empty), or those of a project or with a job ID.
    pub(crate) async fn stored_jobs(
        &self,
        filter: &str,
        limit: i64,
    ) -> Result<Vec<StoredJob>, StorageError> {
        let sql = format!("{JOB_COLUMNS} {JOBS_MATCHING}");
        let rows = self
            .query(&sql)
            .bind(filter.to_string())
            .bind(limit)
            .fetch_all(self.exec())
            .await
            .ctx("reading producing jobs")?;
        rows.iter()
            .map(|r| {
                Ok(StoredJob {
                    columns: ProducingJobColumns {
                        job_id: r.try_get("job_id")?,
                        project_id: r.try_get("project_id")?,
                        status: r.try_get("status")?,
                        code: r.try_get("code")?,
                        message: r.try_get("message")?,
                        media_id: r.try_get("media_id")?,
                        media_url: r.try_get("media_url")?,
                        vod_media_id: r.try_get("vod_media_id")?,
                        template_id: r.try_get("template_id")?,
                        duration: r.try_get("duration")?,
                        progress: r.try_get("progress")?,
                        user_data: r.try_get("user_data")?,
                        create_time: r.try_get("create_time")?,
                        modified_time: r.try_get("modified_time")?,
                        complete_time: r.try_get("complete_time")?,
                        extra: r.try_get("extra")?,
                    },
                    first_seen_at: r.try_get("first_seen_at")?,
                    last_polled_at: r.try_get("last_polled_at")?,
                    last_changed_at: r.try_get("last_changed_at")?,
                })
            })
            .collect()
    }
}

/// `media_producing_jobs` and its queued lookups.
/// (`Store::jobs`)
#[derive(Clone, Copy, Debug)]
pub struct Jobs<'a>(pub(super) &'a super::Backend);

impl Jobs<'_> {
    /// Stores producing jobs and marks `done` handled, in one transaction.
    pub(crate) async fn write_jobs(
        &self,
        jobs: &[JobObservation],
        done: Option<&JobRequest>,
    ) -> Result<u64, StorageError> {
        dispatch!(self.0, s => s.write_jobs(jobs, done).await)
    }

    /// A job ICE no longer knows: counted (polling stops after a repeat), row kept.
    pub(crate) async fn job_not_found(
        &self,
        job_id: &str,
        at: Timestamp,
        done: Option<&JobRequest>,
    ) -> Result<(), StorageError> {
        dispatch!(self.0, s => s.job_not_found(job_id, at, done).await)
    }

    /// Drops every queued producing-job lookup (jobs are off).
    pub(crate) async fn clear_job_requests(&self) -> Result<u64, StorageError> {
        dispatch!(self.0, s => s.clear_job_requests().await)
    }

    pub(crate) async fn job_requests(&self, limit: i64) -> Result<Vec<JobRequest>, StorageError> {
        dispatch!(self.0, s => s.job_requests(limit).await)
    }

    pub(crate) async fn unfinished_jobs(&self, limit: i64) -> Result<Vec<String>, StorageError> {
        dispatch!(self.0, s => s.unfinished_jobs(limit).await)
    }

    pub(crate) async fn project_job_statuses(
        &self,
        project: &ProjectId,
    ) -> Result<Vec<(String, Option<String>)>, StorageError> {
        dispatch!(self.0, s => s.project_job_statuses(project).await)
    }

    pub(crate) async fn tracked_after(
        &self,
        after: &str,
        limit: i64,
    ) -> Result<Vec<ProjectId>, StorageError> {
        dispatch!(self.0, s => s.tracked_after(after, limit).await)
    }

    /// Stored jobs: all (`filter` empty), a project's, or one job.
    pub async fn stored_jobs(
        &self,
        filter: &str,
        limit: i64,
    ) -> Result<Vec<StoredJob>, StorageError> {
        dispatch!(self.0, s => s.stored_jobs(filter, limit).await)
    }
}
