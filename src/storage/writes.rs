//! Writing poll results: plans (project row, history row, tracking state in one
//! transaction), batched touches of unchanged projects, failure records and list-mode
//! due marks. Every write of a claimed project is fenced on its claim token.
//!
//! Each history row is announced in its own transaction: `NOTIFY ice_sync_transition`
//! on PostgreSQL, and a `webhook_outbox` row while the webhook is on (`Store::with_feed`),
//! so a rolled-back or fenced write announces nothing and a committed one cannot be lost.

use sqlx::Row;

use super::backend::{counted, for_every_backend, Dialect, Query, RowsAffected};
use super::counters::Counters;
use super::error::{StorageContext, StorageError};
use super::rows::ids_json;
use super::sql;
use crate::contract::{
    Applied, FailureJob, HistoryEntry, NextPoll, Plan, ProjectColumns, TouchJob, Transition,
    WriteJob,
};
use crate::domain::{ProjectId, Timestamp};

/// One unchanged poll, as the dialects' `TOUCH` reads it from `json_each` /
/// `jsonb_to_recordset`.
#[derive(serde::Serialize)]
struct TouchItem<'a> {
    project_id: &'a str,
    token: i64,
    polled_at: String,
    attempted_at: String,
    request_id: Option<&'a str>,
    next_poll_at: String,
    every_tick: bool,
}

fn touch_json(jobs: &[TouchJob]) -> String {
    let items: Vec<TouchItem<'_>> = jobs
        .iter()
        .map(|j| TouchItem {
            project_id: j.touch.project_id.as_str(),
            token: j.touch.claim.0,
            polled_at: j.touch.polled_at.to_text(),
            attempted_at: j.next.attempted.to_text(),
            request_id: j.touch.request_id.as_deref(),
            next_poll_at: j.next.at.to_text(),
            every_tick: j.next.every_tick,
        })
        .collect();
    serde_json::to_string(&items).unwrap_or_else(|_| "[]".to_string())
}

for_every_backend! {
    /// Applies many plans in one transaction: all of them or none. Projects are written
    /// in ID order, so two replicas' batches lock rows in the same order and cannot
    /// deadlock each other. Results are in the order of `jobs`.
    pub(crate) async fn apply_batch(
        &self,
        jobs: &[WriteJob],
        run_id: Option<i64>,
    ) -> Result<Vec<Applied>, StorageError> {
        let mut order: Vec<usize> = (0..jobs.len()).collect();
        order.sort_by(|&a, &b| jobs[a].plan.project_id().cmp(jobs[b].plan.project_id()));
        let enqueue = self.feed.is_some();
        let mut pooled = self.pool.acquire().await?;
        let result = async {
            let mut tx = sqlx::Connection::begin_with(&mut *pooled, DB::BEGIN).await?;
            let mut results = vec![Applied::Fenced; jobs.len()];
            for i in order {
                results[i] = Self::apply_one(&mut tx, &self.counters, &jobs[i], run_id, enqueue)
                    .await
                    .with_ctx(|| format!("writing project {}", jobs[i].plan.project_id()))?;
            }
            tx.commit().await?;
            self.counters.committed();
            Ok(results)
        }
        .await;
        let results = Self::settle(pooled, result).await?;
        if let Some(feed) = &self.feed {
            let queued = jobs.iter().zip(&results).any(|(job, applied)| {
                *applied == Applied::Written && job.plan.history().is_some()
            });
            if queued {
                feed.notify_one();
            }
        }
        Ok(results)
    }

    /// One project's statements inside the caller's transaction. The first statement is
    /// the fence; if it matches nothing, nothing else is written.
    async fn apply_one(
        conn: &mut DB::Connection,
        counters: &Counters,
        job: &WriteJob,
        run_id: Option<i64>,
        enqueue: bool,
    ) -> Result<Applied, StorageError> {
        let next = job.next;
        match &job.plan {
            // The poll of an unchanged project is recorded by its fence alone: the wide
            // row is not touched.
            Plan::Touch(t) => {
                let polled = (t.polled_at, t.request_id.as_deref());
                let written = Self::track_success(conn, counters, &t.project_id, t.claim.0, next, polled).await?;
                Ok(if written { Applied::Written } else { Applied::Fenced })
            }
            Plan::Write(w) => {
                let polled = (w.polled_at, w.request_id.as_deref());
                if !Self::track_success(conn, counters, &w.project_id, w.claim.0, next, polled).await? {
                    return Ok(Applied::Fenced);
                }
                let new_seq = w.history.as_ref().map_or(w.expected_seq, |h| h.seq);
                let id = w.project_id.as_str();
                let result = if w.insert {
                    bind_columns::<DB>(counted::<DB>(counters, sql::INSERT_PROJECT), id, &w.columns)
                        .bind(w.polled_at)
                        .bind(w.request_id.as_deref())
                        .bind(new_seq)
                        .bind(w.content_hash)
                        .bind(w.columns.extra.as_deref())
                        .execute(&mut *conn)
                        .await?
                } else {
                    bind_columns::<DB>(counted::<DB>(counters, sql::UPDATE_PROJECT), id, &w.columns)
                        .bind(w.polled_at)
                        .bind(w.changed)
                        .bind(w.request_id.as_deref())
                        .bind(new_seq)
                        .bind(w.expected_seq)
                        .bind(w.content_hash)
                        .bind(w.columns.extra.as_deref())
                        .execute(&mut *conn)
                        .await?
                };
                if result.rows_affected_of() == 0 {
                    return Err(moved_under_claim(&w.project_id));
                }
                if let Some(h) = &w.history {
                    Self::insert_history(conn, counters, &w.project_id, w.polled_at, w.request_id.as_deref(), run_id, h, enqueue).await?;
                    if touches_producing(h) {
                        counted::<DB>(counters, sql::JOB_REQUEST_PROJECT)
                            .bind(w.project_id.as_str())
                            .bind(w.polled_at)
                            .execute(&mut *conn)
                            .await
                            .ctx("queueing a look at the project's producing jobs")?;
                    }
                }
                Ok(Applied::Written)
            }
            Plan::NotFoundPending { project_id, claim, not_found_count, .. } => {
                let message = format!(
                    "ICE says the project does not exist ({not_found_count} time(s) in a row)"
                );
                let fenced = !Self::track_not_found(conn, counters, project_id, claim.0, *not_found_count, message, next).await?;
                Ok(if fenced { Applied::Fenced } else { Applied::Written })
            }
            Plan::MarkRemoved { project_id, claim, polled_at, request_id, expected_seq, history } => {
                let message = "ICE says the project does not exist: marked removed".to_string();
                if !Self::track_not_found(conn, counters, project_id, claim.0, 0, message, next).await? {
                    return Ok(Applied::Fenced);
                }
                let result = counted::<DB>(counters, sql::MARK_REMOVED)
                    .bind(project_id.as_str())
                    .bind(*polled_at)
                    .bind(request_id.as_deref())
                    .bind(history.seq)
                    .bind(*expected_seq)
                    .execute(&mut *conn)
                    .await?;
                if result.rows_affected_of() == 0 {
                    return Err(moved_under_claim(project_id));
                }
                counted::<DB>(counters, sql::TRACK_POLLED)
                    .bind(project_id.as_str())
                    .bind(*polled_at)
                    .bind(request_id.as_deref())
                    .execute(&mut *conn)
                    .await?;
                Self::insert_history(conn, counters, project_id, *polled_at, request_id.as_deref(), run_id, history, enqueue).await?;
                Ok(Applied::Written)
            }
        }
    }

    async fn track_success(
        conn: &mut DB::Connection,
        counters: &Counters,
        project_id: &ProjectId,
        token: i64,
        next: NextPoll,
        (polled_at, request_id): (Timestamp, Option<&str>),
    ) -> Result<bool, StorageError> {
        let r = counted::<DB>(counters, sql::TRACK_SUCCESS)
            .bind(project_id.as_str())
            .bind(next.attempted)
            .bind(next.at)
            .bind(next.every_tick)
            .bind(token)
            .bind(polled_at)
            .bind(request_id)
            .execute(&mut *conn)
            .await?;
        Ok(r.rows_affected_of() > 0)
    }

    async fn track_not_found(
        conn: &mut DB::Connection,
        counters: &Counters,
        project_id: &ProjectId,
        token: i64,
        not_found_count: i64,
        message: String,
        next: NextPoll,
    ) -> Result<bool, StorageError> {
        let r = counted::<DB>(counters, sql::TRACK_NOT_FOUND)
            .bind(project_id.as_str().to_string())
            .bind(next.attempted)
            .bind(not_found_count)
            .bind(Some(message))
            .bind(next.at)
            .bind(next.every_tick)
            .bind(token)
            .execute(&mut *conn)
            .await?;
        Ok(r.rows_affected_of() > 0)
    }

    /// Appends one history row and announces it (see the module docs): one statement
    /// on PostgreSQL, one or two on SQLite.
    #[allow(clippy::too_many_arguments)]
    async fn insert_history(
        conn: &mut DB::Connection,
        counters: &Counters,
        project_id: &ProjectId,
        observed_at: Timestamp,
        request_id: Option<&str>,
        run_id: Option<i64>,
        h: &HistoryEntry,
        enqueue: bool,
    ) -> Result<(), StorageError> {
        let row = HistoryBind { project_id, observed_at, request_id, run_id, h };
        if let Some(announced) = DB::INSERT_HISTORY_ANNOUNCED {
            let payload = Transition::new(project_id, observed_at, h).payload();
            row.bind::<DB>(counted::<DB>(counters, announced))
                .bind(payload)
                .bind(enqueue)
                .execute(&mut *conn)
                .await
                .ctx("appending history")?;
            return Ok(());
        }
        row.bind::<DB>(counted::<DB>(counters, sql::INSERT_HISTORY))
            .execute(&mut *conn)
            .await
            .ctx("appending history")?;
        if enqueue {
            counted::<DB>(counters, sql::OUTBOX_ENQUEUE)
                .bind(project_id.as_str().to_string())
                .bind(h.seq)
                .bind(Transition::new(project_id, observed_at, h).payload())
                .bind(observed_at)
                .execute(&mut *conn)
                .await
                .ctx("queueing the transition for webhook.url")?;
        }
        Ok(())
    }

    /// Records the polls of unchanged projects, a whole batch in one statement on their
    /// tracking rows (atomic on its own). Returns the IDs applied; the others were fenced
    /// (claimed by someone else since).
    pub(crate) async fn touch(&self, jobs: &[TouchJob]) -> Result<Vec<ProjectId>, StorageError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .query(DB::TOUCH)
            .bind(touch_json(jobs))
            .fetch_all(self.exec())
            .await
            .ctx("recording unchanged polls")?;
        rows.iter()
            .map(|r| super::rows::project_id(r.try_get::<String, _>(0usize)?))
            .collect()
    }

    /// Records a failed poll on the tracking row (fenced: a late failure never
    /// overwrites the record of the replica that took the project over).
    pub(crate) async fn record_failure(&self, job: &FailureJob) -> Result<Applied, StorageError> {
        let r = self
            .query(sql::TRACK_FAILURE)
            .bind(job.project_id.as_str().to_string())
            .bind(job.at)
            // An ICE error message may carry U+0000; the record must not fail on it
            // (that would leave the project without backoff and the cycle's run open).
            .bind(crate::text::storable(&job.error).into_owned())
            .bind(job.next.at)
            .bind(job.next.every_tick)
            .bind(job.claim.0)
            .execute(self.exec())
            .await
            .with_ctx(|| format!("recording the failure of {}", job.project_id))?;
        Ok(if r.rows_affected_of() > 0 { Applied::Written } else { Applied::Fenced })
    }

    /// List mode: the projects a list page showed changed become due by `at`.
    pub(crate) async fn mark_due(&self, ids: &[ProjectId], at: Timestamp) -> Result<u64, StorageError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let r = self
            .query(DB::MARK_DUE)
            .bind(ids_json(ids))
            .bind(at)
            .execute(self.exec())
            .await
            .ctx("marking changed projects due")?;
        Ok(r.rows_affected_of())
    }
}

/// A transition into or out of `Producing`: the moment a producing job starts or ends.
fn touches_producing(h: &HistoryEntry) -> bool {
    let producing = |s: &Option<String>| s.as_deref() == Some("Producing");
    producing(&h.status) || producing(&h.previous_status)
}

fn moved_under_claim(project_id: &ProjectId) -> StorageError {
    StorageError::Invalid(format!(
        "the stored row of {project_id} changed under a valid claim (edited by hand?); \
         it will be re-read on the next poll"
    ))
}

/// The values of one history row, `$1..$12` of `sql::INSERT_HISTORY`.
struct HistoryBind<'a> {
    project_id: &'a ProjectId,
    observed_at: Timestamp,
    request_id: Option<&'a str>,
    run_id: Option<i64>,
    h: &'a HistoryEntry,
}

impl HistoryBind<'_> {
    fn bind<'q, DB>(&self, q: Query<'q, DB>) -> Query<'q, DB>
    where
        DB: Dialect,
        for<'a> String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
        for<'a> Option<String>: sqlx::Encode<'a, DB>,
        for<'a> i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
        for<'a> Option<i64>: sqlx::Encode<'a, DB>,
        for<'a> Timestamp: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
        for<'a> Option<Timestamp>: sqlx::Encode<'a, DB>,
    {
        let h = self.h;
        q.bind(self.project_id.as_str().to_string())
            .bind(h.seq)
            .bind(self.observed_at)
            .bind(h.event.as_str().to_string())
            .bind(h.previous_status.clone())
            .bind(h.status.clone())
            .bind(h.previous_business_status.clone())
            .bind(h.business_status.clone())
            .bind(h.modified_time)
            .bind(self.request_id.map(str::to_string))
            .bind(self.run_id)
            .bind(h.skipped_states.clone())
    }
}

/// Binds the mirrored columns by reference: a 10 MB Timeline is not copied to be written.
fn bind_columns<'q, DB>(q: Query<'q, DB>, id: &'q str, c: &'q ProjectColumns) -> Query<'q, DB>
where
    DB: Dialect,
    for<'a> &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> Option<&'a str>: sqlx::Encode<'a, DB>,
    for<'a> Option<f64>: sqlx::Encode<'a, DB>,
    f64: sqlx::Type<DB>,
    for<'a> Option<Timestamp>: sqlx::Encode<'a, DB>,
    Timestamp: sqlx::Type<DB>,
{
    q.bind(id)
        .bind(c.title.as_deref())
        .bind(c.description.as_deref())
        .bind(c.status.as_deref())
        .bind(c.business_status.as_deref())
        .bind(c.project_type.as_deref())
        .bind(c.template_id.as_deref())
        .bind(c.template_type.as_deref())
        .bind(c.clips_param.as_deref())
        .bind(c.timeline.as_deref())
        .bind(c.cover_url.as_deref())
        .bind(c.create_source.as_deref())
        .bind(c.modified_source.as_deref())
        .bind(c.business_config.as_deref())
        .bind(c.timeline_convert_status.as_deref())
        .bind(c.timeline_convert_error_message.as_deref())
        .bind(c.duration)
        .bind(c.create_time)
        .bind(c.modified_time)
}
