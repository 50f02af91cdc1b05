//! Writing poll results: plans (project row, history row, tracking state in one
//! transaction), batched touches of unchanged projects, failure records and list-mode
//! due marks. Every write of a claimed project is fenced on its claim token.
//!
//! Each history row is announced in its own transaction: `NOTIFY ice_sync_transition`
//! on PostgreSQL, and a `webhook_outbox` row while the webhook is on (`Store::with_feed`),
//! so a rolled-back or fenced write announces nothing and a committed one cannot be lost.

use super::backend::{counted, Dialect, RowGet, RowsAffected, SqlStore};
use super::counters::Counters;
use super::error::{StorageContext, StorageError};
use super::rows::ids_json;
use super::sql;
use super::write_rows::{HistoryBind, ProjectRow};
use crate::contract::{
    Applied, FailureJob, HistoryEntry, NextPoll, Plan, ProjectWrite, TouchJob, WriteJob,
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

impl<DB: Dialect> SqlStore<DB> {
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
        let target = HistoryTarget {
            run_id,
            enqueue: self.feed.is_some(),
        };
        let mut pooled = self.pool.acquire().await?;
        let result = async {
            let mut tx = sqlx::Connection::begin_with(&mut *pooled, DB::BEGIN).await?;
            let mut results = vec![Applied::Fenced; jobs.len()];
            for i in order {
                results[i] = Self::apply_one(&mut tx, &self.counters, &jobs[i], target)
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
            let queued = jobs
                .iter()
                .zip(&results)
                .any(|(job, applied)| *applied == Applied::Written && job.plan.history().is_some());
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
        history: HistoryTarget,
    ) -> Result<Applied, StorageError> {
        let next = job.next;
        let fenced = match &job.plan {
            // The poll of an unchanged project is recorded by its fence alone: the wide
            // row is not touched.
            Plan::Touch(t) => {
                let fence = Fence::success(&t.project_id, t.claim.0, t.polled_at, &t.request_id);
                !fence.track_success::<DB>(conn, counters, next).await?
            }
            Plan::Write(w) => !Self::write_project(conn, counters, w, next, history).await?,
            Plan::NotFoundPending {
                project_id,
                claim,
                not_found_count,
                ..
            } => {
                let message = format!(
                    "ICE says the project does not exist ({not_found_count} time(s) in a row)"
                );
                let fence = NotFound {
                    project_id,
                    token: claim.0,
                    count: *not_found_count,
                    message,
                };
                !fence.track::<DB>(conn, counters, next).await?
            }
            Plan::MarkRemoved { .. } => {
                !Self::mark_removed(conn, counters, &job.plan, next, history).await?
            }
        };
        Ok(if fenced {
            Applied::Fenced
        } else {
            Applied::Written
        })
    }

    /// A changed project: its fence, its wide row, its history row. `false`: fenced.
    async fn write_project(
        conn: &mut DB::Connection,
        counters: &Counters,
        w: &ProjectWrite,
        next: NextPoll,
        history: HistoryTarget,
    ) -> Result<bool, StorageError> {
        let fence = Fence::success(&w.project_id, w.claim.0, w.polled_at, &w.request_id);
        if !fence.track_success::<DB>(conn, counters, next).await? {
            return Ok(false);
        }
        let row = ProjectRow::of(w);
        let sql = if w.insert {
            sql::INSERT_PROJECT
        } else {
            sql::UPDATE_PROJECT
        };
        let result = row
            .bind(counted::<DB>(counters, sql))
            .execute(&mut *conn)
            .await?;
        if result.rows_affected_of() == 0 {
            return Err(moved_under_claim(&w.project_id));
        }
        let Some(h) = &w.history else {
            return Ok(true);
        };
        let entry = HistoryBind {
            project_id: &w.project_id,
            observed_at: w.polled_at,
            request_id: w.request_id.as_deref(),
            run_id: history.run_id,
            h,
        };
        entry.insert::<DB>(conn, counters, history.enqueue).await?;
        if touches_producing(h) {
            counted::<DB>(counters, sql::JOB_REQUEST_PROJECT)
                .bind(w.project_id.as_str())
                .bind(w.polled_at)
                .execute(&mut *conn)
                .await
                .ctx("queueing a look at the project's producing jobs")?;
        }
        Ok(true)
    }

    /// ICE said "not found" often enough: the row is marked removed and the removal
    /// goes into history. `false`: fenced.
    async fn mark_removed(
        conn: &mut DB::Connection,
        counters: &Counters,
        plan: &Plan,
        next: NextPoll,
        target: HistoryTarget,
    ) -> Result<bool, StorageError> {
        let Plan::MarkRemoved {
            project_id,
            claim,
            polled_at,
            request_id,
            expected_seq,
            history,
        } = plan
        else {
            return Ok(false);
        };
        let fence = NotFound {
            project_id,
            token: claim.0,
            count: 0,
            message: "ICE says the project does not exist: marked removed".to_string(),
        };
        if !fence.track::<DB>(conn, counters, next).await? {
            return Ok(false);
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
        let entry = HistoryBind {
            project_id,
            observed_at: *polled_at,
            request_id: request_id.as_deref(),
            run_id: target.run_id,
            h: history,
        };
        entry.insert::<DB>(conn, counters, target.enqueue).await?;
        Ok(true)
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
        Ok(if r.rows_affected_of() > 0 {
            Applied::Written
        } else {
            Applied::Fenced
        })
    }

    /// List mode: the projects a list page showed changed become due by `at`.
    pub(crate) async fn mark_due(
        &self,
        ids: &[ProjectId],
        at: Timestamp,
    ) -> Result<u64, StorageError> {
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

/// Where a history row goes besides its table: the cycle's run, and the webhook's outbox
/// while the webhook is on.
#[derive(Clone, Copy)]
struct HistoryTarget {
    run_id: Option<i64>,
    enqueue: bool,
}

/// The fence of an answered poll (`sql::TRACK_SUCCESS`, `$1..$7`): the claim's tracking
/// row, updated only while it still carries `token`.
struct Fence<'a> {
    project_id: &'a ProjectId,
    token: i64,
    polled_at: Timestamp,
    request_id: Option<&'a str>,
}

impl<'a> Fence<'a> {
    fn success(
        project_id: &'a ProjectId,
        token: i64,
        polled_at: Timestamp,
        request_id: &'a Option<String>,
    ) -> Self {
        Fence {
            project_id,
            token,
            polled_at,
            request_id: request_id.as_deref(),
        }
    }

    /// `false`: the claim was taken over, nothing written.
    async fn track_success<DB: Dialect>(
        &self,
        conn: &mut DB::Connection,
        counters: &Counters,
        next: NextPoll,
    ) -> Result<bool, StorageError> {
        let r = counted::<DB>(counters, sql::TRACK_SUCCESS)
            .bind(self.project_id.as_str())
            .bind(next.attempted)
            .bind(next.at)
            .bind(next.every_tick)
            .bind(self.token)
            .bind(self.polled_at)
            .bind(self.request_id)
            .execute(&mut *conn)
            .await?;
        Ok(r.rows_affected_of() > 0)
    }
}

/// The fence of a "not found" answer (`sql::TRACK_NOT_FOUND`, `$1..$7`).
struct NotFound<'a> {
    project_id: &'a ProjectId,
    token: i64,
    count: i64,
    message: String,
}

impl NotFound<'_> {
    /// `false`: the claim was taken over, nothing written.
    async fn track<DB: Dialect>(
        self,
        conn: &mut DB::Connection,
        counters: &Counters,
        next: NextPoll,
    ) -> Result<bool, StorageError> {
        let r = counted::<DB>(counters, sql::TRACK_NOT_FOUND)
            .bind(self.project_id.as_str().to_string())
            .bind(next.attempted)
            .bind(self.count)
            .bind(Some(self.message))
            .bind(next.at)
            .bind(next.every_tick)
            .bind(self.token)
            .execute(&mut *conn)
            .await?;
        Ok(r.rows_affected_of() > 0)
    }
}

/// Writes of poll results, fenced on their claims.
/// (`Store::writes`)
#[derive(Clone, Copy, Debug)]
pub struct Writes<'a>(pub(super) &'a super::Backend);

impl Writes<'_> {
    /// Applies one job in its own transaction.
    pub async fn apply(
        &self,
        job: &WriteJob,
        run_id: Option<i64>,
    ) -> Result<Applied, StorageError> {
        let applied = self.apply_batch(std::slice::from_ref(job), run_id).await?;
        Ok(applied.first().copied().unwrap_or(Applied::Fenced))
    }

    /// Applies many jobs in one transaction: all of them or none.
    pub async fn apply_batch(
        &self,
        jobs: &[WriteJob],
        run_id: Option<i64>,
    ) -> Result<Vec<Applied>, StorageError> {
        dispatch!(self.0, s => s.apply_batch(jobs, run_id).await)
    }

    /// Records the polls of unchanged projects; returns the IDs applied.
    pub(crate) async fn touch(&self, jobs: &[TouchJob]) -> Result<Vec<ProjectId>, StorageError> {
        dispatch!(self.0, s => s.touch(jobs).await)
    }

    pub async fn record_failure(&self, job: &FailureJob) -> Result<Applied, StorageError> {
        dispatch!(self.0, s => s.record_failure(job).await)
    }

    /// List mode: these projects changed, so they are due by `at`.
    pub(crate) async fn mark_due(
        &self,
        ids: &[ProjectId],
        at: Timestamp,
    ) -> Result<u64, StorageError> {
        dispatch!(self.0, s => s.mark_due(ids, at).await)
    }
}
