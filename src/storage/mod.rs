//! Storage: the tables of SPEC.md on SQLite or PostgreSQL.
//!
//! [`SqlStore`] is written once, generic over the sqlx backend, and runs the statements
//! in [`sql`]; [`postgres`] and [`sqlite`] only connect, migrate and (SQLite) hold the
//! single-writer lock. [`Store`] is what the rest of the program holds: it picks the
//! backend from `database.url`, and the few statements that must differ per backend
//! (claiming with leases vs. keyset pages, batched touches) by variant.
//!
//! The one rule this module enforces: a [`Plan`] is applied in one transaction, or not at
//! all (batches share a transaction, so a batch commits whole or not at all). The project
//! row, its history row and its tracking state commit together; a compare-and-set on
//! `history_seq` plus the unique `(project_id, seq)` key make a duplicate history row
//! impossible, even with racing writers.

pub mod postgres;
pub mod sql;
pub mod sqlite;
mod timestamp;

use anyhow::Context;
use sqlx::{Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use crate::config::{DatabaseKind, DatabaseSettings};
use crate::domain::Timestamp;
use crate::sync::diff::{HistoryEntry, Plan, ProjectWrite, Stored, StoredRow, Touch};

/// Process-wide totals of database round trips, for benchmarks and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageCounters {
    /// Statements sent (including BEGIN and COMMIT).
    pub statements: u64,
    /// Transactions committed.
    pub transactions: u64,
}

static STATEMENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static TRANSACTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn counters() -> StorageCounters {
    use std::sync::atomic::Ordering::Relaxed;
    StorageCounters {
        statements: STATEMENTS.load(Relaxed),
        transactions: TRANSACTIONS.load(Relaxed),
    }
}

fn count_statements(n: u64) {
    STATEMENTS.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
}

/// `sqlx::query`, counted.
fn query<DB: Database>(sql: &str) -> sqlx::query::Query<'_, DB, DB::Arguments<'_>> {
    count_statements(1);
    sqlx::query::<DB>(sql)
}

/// Commits, counting BEGIN and COMMIT as the two statements they are.
async fn commit<DB: Database>(tx: sqlx::Transaction<'_, DB>) -> Result<(), sqlx::Error> {
    count_statements(2);
    TRANSACTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tx.commit().await
}

/// What applying a plan did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Written,
    /// The stored row moved since the plan was made; nothing was written.
    Conflict,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrackedRow {
    pub project_id: String,
    pub added_at: Timestamp,
    pub source: String,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StatusRow {
    pub project_id: String,
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

/// A plan and what the engine decided about the project's next poll.
#[derive(Debug, Clone)]
pub struct WriteJob {
    pub plan: Plan,
    pub next_poll_at: Timestamp,
}

/// An unchanged project's poll, for [`Store::touch`].
#[derive(Debug, Clone)]
pub struct TouchJob {
    pub touch: Touch,
    pub next_poll_at: Timestamp,
}

/// How a cycle claims work.
#[derive(Debug, Clone)]
pub struct ClaimRequest<'a> {
    /// Only projects due at or before this instant are claimed.
    pub cycle_start: Timestamp,
    /// SQLite pages by ID: the last ID of the previous page.
    pub after: Option<&'a str>,
    pub limit: i64,
    /// PostgreSQL leases the claimed rows to this replica until `lease_until`.
    pub owner: &'a str,
    pub lease_until: Timestamp,
    /// Leases of `owner` expiring before this were taken by an earlier cycle.
    pub own_stale_before: Timestamp,
}

/// Totals of one cycle, for `sync_runs`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunTotals {
    pub outcome: String,
    pub projects_polled: i64,
    pub projects_changed: i64,
    pub transitions: i64,
    pub failures: i64,
    pub error: Option<String>,
}

/// The storage every command uses, whichever backend `database.url` names.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlStore<sqlx::Sqlite>),
    Postgres(SqlStore<sqlx::Postgres>),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Sqlite($s) => $e,
            Store::Postgres($s) => $e,
        }
    };
}

impl Store {
    /// Connects (creating a SQLite file if the URL says `mode=rwc`). Does not migrate.
    pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<Store> {
        let store = match settings.kind {
            DatabaseKind::Sqlite => Store::Sqlite(sqlite::connect(settings).await?),
            DatabaseKind::Postgres => Store::Postgres(postgres::connect(settings).await?),
        };
        Ok(store)
    }

    /// Applies pending migrations; returns how many were applied.
    pub async fn migrate(&self) -> anyhow::Result<usize> {
        match self {
            Store::Sqlite(s) => sqlite::migrate(&s.pool).await,
            Store::Postgres(s) => postgres::migrate(&s.pool).await,
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    pub async fn ping(&self) -> anyhow::Result<()> {
        dispatch!(self, s => s.ping().await)
    }
    pub async fn due_projects(&self, now: Timestamp) -> anyhow::Result<Vec<Stored>> {
        dispatch!(self, s => s.due_projects(now).await)
    }
    pub async fn load(&self, project_id: &str) -> anyhow::Result<Option<Stored>> {
        dispatch!(self, s => s.load(project_id).await)
    }
    /// Applies one plan in its own transaction.
    pub async fn apply(
        &self,
        plan: &Plan,
        run_id: Option<i64>,
        next_poll_at: Option<Timestamp>,
    ) -> anyhow::Result<Applied> {
        let next_poll_at = next_poll_at.unwrap_or_else(Timestamp::now);
        let job = WriteJob {
            plan: plan.clone(),
            next_poll_at,
        };
        let applied = self.apply_batch(std::slice::from_ref(&job), run_id).await?;
        Ok(applied.first().copied().unwrap_or(Applied::Conflict))
    }

    /// Applies many plans in one transaction: all of them or none. Each project's row,
    /// history and tracking state are still guarded individually; a project whose
    /// stored state moved is skipped and reported as [`Applied::Conflict`].
    pub async fn apply_batch(
        &self,
        jobs: &[WriteJob],
        run_id: Option<i64>,
    ) -> anyhow::Result<Vec<Applied>> {
        dispatch!(self, s => s.apply_batch(jobs, run_id).await)
    }

    /// Records the polls of unchanged projects, a whole batch per statement or two.
    /// Returns the IDs applied; the others moved meanwhile and need re-planning.
    pub async fn touch(&self, jobs: &[TouchJob]) -> anyhow::Result<Vec<String>> {
        match self {
            Store::Sqlite(s) => s.touch_sqlite(jobs).await,
            Store::Postgres(s) => s.touch_postgres(jobs).await,
        }
    }

    /// The next batch of due projects for this cycle (see [`ClaimRequest`]).
    pub async fn claim(&self, request: &ClaimRequest<'_>) -> anyhow::Result<Vec<Stored>> {
        match self {
            Store::Sqlite(s) => s.claim_page(request).await,
            Store::Postgres(s) => s.claim_leased(request).await,
        }
    }

    /// Stored state of the tracked projects among `ids` (untracked ones are absent).
    pub async fn load_many(&self, ids: &[String]) -> anyhow::Result<Vec<Stored>> {
        let sql = match self {
            Store::Sqlite(_) => sql::LOAD_MANY_SQLITE,
            Store::Postgres(_) => sql::LOAD_MANY_POSTGRES,
        };
        let json = serde_json::to_string(ids).context("encoding IDs")?;
        dispatch!(self, s => s.load_many(sql, json).await)
    }

    /// Replicas holding leases whose id matches a `LIKE` pattern.
    pub async fn lease_owners(&self, pattern: &str) -> anyhow::Result<Vec<String>> {
        dispatch!(self, s => s.lease_owners(pattern).await)
    }

    /// Gives back claims this replica did not get to poll.
    pub async fn release_leases(&self, owner: &str) -> anyhow::Result<u64> {
        dispatch!(self, s => s.release_leases(owner).await)
    }
    pub async fn record_failure(
        &self,
        project_id: &str,
        at: Timestamp,
        error: &str,
        next_poll_at: Option<Timestamp>,
    ) -> anyhow::Result<()> {
        dispatch!(self, s => s.record_failure(project_id, at, error, next_poll_at).await)
    }
    pub async fn track_add(&self, ids: &[String], source: &str) -> anyhow::Result<u64> {
        dispatch!(self, s => s.track_add(ids, source).await)
    }
    pub async fn track_remove(&self, ids: &[String]) -> anyhow::Result<u64> {
        dispatch!(self, s => s.track_remove(ids).await)
    }
    pub async fn track_list(&self) -> anyhow::Result<Vec<TrackedRow>> {
        dispatch!(self, s => s.track_list().await)
    }
    /// Makes the `source = 'config'` rows match `sync.projects`: adds the new ones and
    /// disables those no longer listed. Returns (added, disabled).
    pub async fn sync_config_projects(&self, ids: &[String]) -> anyhow::Result<(u64, u64)> {
        dispatch!(self, s => s.sync_config_projects(ids).await)
    }
    pub async fn begin_run(&self, at: Timestamp, replica_id: &str) -> anyhow::Result<i64> {
        dispatch!(self, s => s.begin_run(at, replica_id).await)
    }
    pub async fn finish_run(
        &self,
        id: i64,
        at: Timestamp,
        totals: &RunTotals,
    ) -> anyhow::Result<()> {
        dispatch!(self, s => s.finish_run(id, at, totals).await)
    }
    pub async fn abandon_runs(&self, replica_id: &str) -> anyhow::Result<u64> {
        dispatch!(self, s => s.abandon_runs(replica_id).await)
    }
    pub async fn status(&self) -> anyhow::Result<Vec<StatusRow>> {
        dispatch!(self, s => s.status().await)
    }
    pub async fn history(&self, project_id: &str) -> anyhow::Result<Vec<HistoryRow>> {
        dispatch!(self, s => s.history(project_id).await)
    }
    pub async fn close(&self) {
        dispatch!(self, s => s.pool.close().await)
    }
}

/// The backend-independent implementation.
#[derive(Debug)]
pub struct SqlStore<DB: Database> {
    pub pool: Pool<DB>,
}

// Derived Clone would demand `DB: Clone`; only the pool (an Arc inside) is cloned.
impl<DB: Database> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
        }
    }
}

impl<DB> SqlStore<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Option<f64>: Encode<'q, DB>,
    f64: Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> Timestamp: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Timestamp>: Encode<'q, DB>,
    for<'r> String: Decode<'r, DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'r> bool: Decode<'r, DB>,
    for<'r> Timestamp: Decode<'r, DB>,
    for<'r> &'r str: sqlx::ColumnIndex<DB::Row>,
    usize: sqlx::ColumnIndex<DB::Row>,
    DB::QueryResult: RowsAffected,
{
    async fn ping(&self) -> anyhow::Result<()> {
        query::<DB>(sql::PING)
            .execute(&self.pool)
            .await
            .context("the database did not answer")?;
        Ok(())
    }

    fn stored_from_row(row: &DB::Row) -> Result<Stored, sqlx::Error> {
        let last_polled_at: Option<Timestamp> = row.try_get("last_polled_at")?;
        let stored_row = match last_polled_at {
            Some(last_polled_at) => Some(StoredRow {
                status: row.try_get("status")?,
                business_status: row.try_get("business_status")?,
                modified_time: row.try_get("modified_time")?,
                last_polled_at,
                removed_at: row.try_get("removed_at")?,
                history_seq: row.try_get::<Option<i64>, _>("history_seq")?.unwrap_or(0),
                content_hash: row.try_get("content_hash")?,
            }),
            None => None,
        };
        Ok(Stored {
            project_id: row.try_get("project_id")?,
            row: stored_row,
            not_found_count: row.try_get("not_found_count")?,
            consecutive_failures: row.try_get("consecutive_failures")?,
        })
    }

    fn stored_rows(rows: &[DB::Row]) -> anyhow::Result<Vec<Stored>> {
        rows.iter()
            .map(|r| Self::stored_from_row(r).context("reading a tracked project"))
            .collect()
    }

    async fn due_projects(&self, now: Timestamp) -> anyhow::Result<Vec<Stored>> {
        let rows = query::<DB>(sql::DUE_PROJECTS)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .context("reading the tracked projects")?;
        Self::stored_rows(&rows)
    }

    async fn load(&self, project_id: &str) -> anyhow::Result<Option<Stored>> {
        let row = query::<DB>(sql::ONE_PROJECT)
            .bind(project_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .with_context(|| format!("reading project {project_id}"))?;
        row.map(|r| Self::stored_from_row(&r).context("reading a tracked project"))
            .transpose()
    }

    fn bind_project_columns<'q>(
        query: sqlx::query::Query<'q, DB, DB::Arguments<'q>>,
        w: &ProjectWrite,
    ) -> sqlx::query::Query<'q, DB, DB::Arguments<'q>> {
        let p = &w.project;
        query
            .bind(w.project_id.clone())
            .bind(storable(&p.title))
            .bind(storable(&p.description))
            .bind(storable(&p.status))
            .bind(storable(&p.business_status))
            .bind(storable(&p.project_type))
            .bind(storable(&p.template_id))
            .bind(storable(&p.template_type))
            .bind(storable(&p.clips_param))
            .bind(storable(&p.timeline))
            .bind(storable(&p.cover_url))
            .bind(storable(&p.create_source))
            .bind(storable(&p.modified_source))
            .bind(storable(&p.business_config))
            .bind(storable(&p.timeline_convert_status))
            .bind(storable(&p.timeline_convert_error_message))
            .bind(p.duration)
            .bind(w.create_time)
            .bind(w.modified_time)
    }

    async fn insert_history(
        conn: &mut DB::Connection,
        project_id: &str,
        observed_at: Timestamp,
        request_id: Option<&str>,
        run_id: Option<i64>,
        h: &HistoryEntry,
    ) -> Result<(), sqlx::Error> {
        query::<DB>(sql::INSERT_HISTORY)
            .bind(project_id.to_string())
            .bind(h.seq)
            .bind(observed_at)
            .bind(h.event.as_str().to_string())
            .bind(storable(&h.previous_status))
            .bind(storable(&h.status))
            .bind(storable(&h.previous_business_status))
            .bind(storable(&h.business_status))
            .bind(h.modified_time)
            .bind(request_id.map(str::to_string))
            .bind(run_id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn apply_batch(
        &self,
        jobs: &[WriteJob],
        run_id: Option<i64>,
    ) -> anyhow::Result<Vec<Applied>> {
        let mut tx = self.pool.begin().await.context("starting a transaction")?;
        let mut results = Vec::with_capacity(jobs.len());
        for job in jobs {
            results.push(Self::apply_one(&mut tx, job, run_id).await?);
        }
        commit(tx).await.context("committing")?;
        Ok(results)
    }

    /// One project's statements inside the caller's transaction. The first statement is
    /// the compare-and-set; if it matches nothing, nothing else is written.
    async fn apply_one(
        tx: &mut DB::Connection,
        job: &WriteJob,
        run_id: Option<i64>,
    ) -> anyhow::Result<Applied> {
        let next_poll_at = job.next_poll_at;
        match &job.plan {
            Plan::Stale => Ok(Applied::Written),
            Plan::Touch(t) => {
                // Rare outside `touch` batches (single-project polls): the same effect.
                let r = query::<DB>(sql::TOUCH_ONE)
                    .bind(t.project_id.clone())
                    .bind(t.polled_at)
                    .bind(t.request_id.clone())
                    .bind(t.expected_seq)
                    .execute(&mut *tx)
                    .await
                    .with_context(|| format!("recording the poll of {}", t.project_id))?;
                if DB::QueryResult::rows_affected_of(&r) == 0 {
                    return Ok(Applied::Conflict);
                }
                Self::track_success(tx, &t.project_id, t.polled_at, next_poll_at).await?;
                Ok(Applied::Written)
            }
            Plan::Write(w) => {
                let new_seq = w.history.as_ref().map_or(w.expected_seq, |h| h.seq);
                let result = if w.insert {
                    Self::bind_project_columns(query::<DB>(sql::INSERT_PROJECT), w)
                        .bind(w.polled_at)
                        .bind(w.request_id.clone())
                        .bind(new_seq)
                        .bind(w.content_hash)
                        .execute(&mut *tx)
                        .await
                } else {
                    Self::bind_project_columns(query::<DB>(sql::UPDATE_PROJECT), w)
                        .bind(w.polled_at)
                        .bind(w.changed)
                        .bind(w.request_id.clone())
                        .bind(new_seq)
                        .bind(w.expected_seq)
                        .bind(w.content_hash)
                        .execute(&mut *tx)
                        .await
                };
                let affected = DB::QueryResult::rows_affected_of(
                    &result.with_context(|| format!("writing project {}", w.project_id))?,
                );
                if affected == 0 {
                    return Ok(Applied::Conflict);
                }
                if let Some(h) = &w.history {
                    Self::insert_history(
                        tx,
                        &w.project_id,
                        w.polled_at,
                        w.request_id.as_deref(),
                        run_id,
                        h,
                    )
                    .await
                    .with_context(|| format!("appending history of {}", w.project_id))?;
                }
                Self::track_success(tx, &w.project_id, w.polled_at, next_poll_at).await?;
                Ok(Applied::Written)
            }
            Plan::Listed(w) => {
                let i = &w.item;
                let q = query::<DB>(if w.insert {
                    sql::INSERT_LISTED
                } else {
                    sql::UPDATE_LISTED
                })
                .bind(w.project_id.clone())
                .bind(storable(&i.title))
                .bind(storable(&i.description))
                .bind(storable(&i.status))
                .bind(storable(&i.business_status))
                .bind(storable(&i.project_type))
                .bind(storable(&i.template_type))
                .bind(storable(&i.cover_url))
                .bind(storable(&i.create_source))
                .bind(storable(&i.modified_source))
                .bind(storable(&i.business_config))
                .bind(w.create_time)
                .bind(w.modified_time)
                .bind(w.polled_at)
                .bind(w.request_id.clone())
                .bind(w.history.seq);
                let q = if w.insert { q } else { q.bind(w.expected_seq) };
                let r = q
                    .execute(&mut *tx)
                    .await
                    .with_context(|| format!("writing project {} from the list", w.project_id))?;
                if DB::QueryResult::rows_affected_of(&r) == 0 {
                    return Ok(Applied::Conflict);
                }
                Self::insert_history(
                    tx,
                    &w.project_id,
                    w.polled_at,
                    w.request_id.as_deref(),
                    run_id,
                    &w.history,
                )
                .await
                .with_context(|| format!("appending history of {}", w.project_id))?;
                Ok(Applied::Written)
            }
            Plan::NotFoundPending {
                project_id,
                polled_at,
                not_found_count,
            } => {
                query::<DB>(sql::TRACK_NOT_FOUND)
                    .bind(project_id.clone())
                    .bind(*polled_at)
                    .bind(*not_found_count)
                    .bind(Some(format!(
                        "ICE says the project does not exist ({not_found_count} time(s) in a row)"
                    )))
                    .bind(next_poll_at)
                    .execute(&mut *tx)
                    .await
                    .context("updating tracking state")?;
                Ok(Applied::Written)
            }
            Plan::MarkRemoved {
                project_id,
                polled_at,
                request_id,
                expected_seq,
                history,
            } => {
                let result = query::<DB>(sql::MARK_REMOVED)
                    .bind(project_id.clone())
                    .bind(*polled_at)
                    .bind(request_id.clone())
                    .bind(history.seq)
                    .bind(*expected_seq)
                    .execute(&mut *tx)
                    .await
                    .with_context(|| format!("marking {project_id} removed"))?;
                if DB::QueryResult::rows_affected_of(&result) == 0 {
                    return Ok(Applied::Conflict);
                }
                Self::insert_history(
                    tx,
                    project_id,
                    *polled_at,
                    request_id.as_deref(),
                    run_id,
                    history,
                )
                .await
                .with_context(|| format!("appending history of {project_id}"))?;
                query::<DB>(sql::TRACK_NOT_FOUND)
                    .bind(project_id.clone())
                    .bind(*polled_at)
                    .bind(0i64)
                    .bind(Some(
                        "ICE says the project does not exist: marked removed".to_string(),
                    ))
                    .bind(next_poll_at)
                    .execute(&mut *tx)
                    .await
                    .context("updating tracking state")?;
                Ok(Applied::Written)
            }
        }
    }

    async fn track_success(
        tx: &mut DB::Connection,
        project_id: &str,
        polled_at: Timestamp,
        next_poll_at: Timestamp,
    ) -> anyhow::Result<()> {
        query::<DB>(sql::TRACK_SUCCESS)
            .bind(project_id.to_string())
            .bind(polled_at)
            .bind(next_poll_at)
            .execute(&mut *tx)
            .await
            .context("updating tracking state")?;
        Ok(())
    }

    fn touch_json(jobs: &[TouchJob]) -> String {
        let items: Vec<serde_json::Value> = jobs
            .iter()
            .map(|j| {
                serde_json::json!({
                    "project_id": j.touch.project_id,
                    "polled_at": j.touch.polled_at.to_text(),
                    "request_id": j.touch.request_id,
                    "expected_seq": j.touch.expected_seq,
                    "next_poll_at": j.next_poll_at.to_text(),
                })
            })
            .collect();
        serde_json::Value::Array(items).to_string()
    }

    async fn touch_postgres(&self, jobs: &[TouchJob]) -> anyhow::Result<Vec<String>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let rows = query::<DB>(sql::TOUCH_POSTGRES)
            .bind(Self::touch_json(jobs))
            .fetch_all(&self.pool)
            .await
            .context("recording unchanged polls")?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0usize))
            .collect::<Result<_, _>>()
            .context("reading touched projects")
    }

    async fn touch_sqlite(&self, jobs: &[TouchJob]) -> anyhow::Result<Vec<String>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await.context("starting a transaction")?;
        let rows = query::<DB>(sql::TOUCH_PROJECTS_SQLITE)
            .bind(Self::touch_json(jobs))
            .fetch_all(&mut *tx)
            .await
            .context("recording unchanged polls")?;
        let applied: std::collections::HashSet<String> = rows
            .iter()
            .map(|r| r.try_get::<String, _>(0usize))
            .collect::<Result<_, _>>()
            .context("reading touched projects")?;
        let touched: Vec<TouchJob> = jobs
            .iter()
            .filter(|j| applied.contains(&j.touch.project_id))
            .cloned()
            .collect();
        if !touched.is_empty() {
            query::<DB>(sql::TOUCH_TRACKING_SQLITE)
                .bind(Self::touch_json(&touched))
                .execute(&mut *tx)
                .await
                .context("recording unchanged polls")?;
        }
        commit(tx).await.context("committing")?;
        Ok(touched.into_iter().map(|j| j.touch.project_id).collect())
    }

    async fn claim_page(&self, r: &ClaimRequest<'_>) -> anyhow::Result<Vec<Stored>> {
        let rows = query::<DB>(sql::CLAIM_PAGE)
            .bind(r.cycle_start)
            .bind(r.after.unwrap_or("").to_string())
            .bind(r.limit)
            .fetch_all(&self.pool)
            .await
            .context("claiming due projects")?;
        Self::stored_rows(&rows)
    }

    async fn claim_leased(&self, r: &ClaimRequest<'_>) -> anyhow::Result<Vec<Stored>> {
        let rows = query::<DB>(sql::CLAIM_LEASED)
            .bind(r.cycle_start)
            .bind(Timestamp::now())
            .bind(r.limit)
            .bind(r.owner.to_string())
            .bind(r.lease_until)
            .bind(r.own_stale_before)
            .fetch_all(&self.pool)
            .await
            .context("claiming due projects")?;
        Self::stored_rows(&rows)
    }

    async fn load_many(&self, sql: &'static str, ids_json: String) -> anyhow::Result<Vec<Stored>> {
        let rows = query::<DB>(sql)
            .bind(ids_json)
            .fetch_all(&self.pool)
            .await
            .context("reading tracked projects")?;
        Self::stored_rows(&rows)
    }

    async fn lease_owners(&self, pattern: &str) -> anyhow::Result<Vec<String>> {
        let rows = query::<DB>(sql::LEASE_OWNERS)
            .bind(pattern.to_string())
            .fetch_all(&self.pool)
            .await
            .context("listing lease owners")?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0usize))
            .collect::<Result<_, _>>()
            .context("reading lease owners")
    }

    async fn release_leases(&self, owner: &str) -> anyhow::Result<u64> {
        let r = query::<DB>(sql::RELEASE_LEASES)
            .bind(owner.to_string())
            .execute(&self.pool)
            .await
            .context("releasing claims")?;
        Ok(DB::QueryResult::rows_affected_of(&r))
    }

    async fn record_failure(
        &self,
        project_id: &str,
        at: Timestamp,
        error: &str,
        next_poll_at: Option<Timestamp>,
    ) -> anyhow::Result<()> {
        query::<DB>(sql::TRACK_FAILURE)
            .bind(project_id.to_string())
            .bind(at)
            .bind(error.to_string())
            .bind(next_poll_at)
            .execute(&self.pool)
            .await
            .with_context(|| format!("recording the failure of {project_id}"))?;
        Ok(())
    }

    async fn track_add(&self, ids: &[String], source: &str) -> anyhow::Result<u64> {
        let now = Timestamp::now();
        let mut tx = self.pool.begin().await.context("starting a transaction")?;
        let mut added = 0;
        for id in ids {
            let r = query::<DB>(sql::TRACK_ADD)
                .bind(id.clone())
                .bind(now)
                .bind(source.to_string())
                .execute(&mut *tx)
                .await
                .with_context(|| format!("tracking {id}"))?;
            added += DB::QueryResult::rows_affected_of(&r);
        }
        commit(tx).await.context("committing")?;
        Ok(added)
    }

    async fn track_remove(&self, ids: &[String]) -> anyhow::Result<u64> {
        let mut tx = self.pool.begin().await.context("starting a transaction")?;
        let mut removed = 0;
        for id in ids {
            let r = query::<DB>(sql::TRACK_REMOVE)
                .bind(id.clone())
                .execute(&mut *tx)
                .await
                .with_context(|| format!("untracking {id}"))?;
            removed += DB::QueryResult::rows_affected_of(&r);
        }
        commit(tx).await.context("committing")?;
        Ok(removed)
    }

    async fn track_list(&self) -> anyhow::Result<Vec<TrackedRow>> {
        let rows = query::<DB>(sql::TRACK_LIST)
            .fetch_all(&self.pool)
            .await
            .context("listing tracked projects")?;
        rows.iter()
            .map(|r| {
                Ok(TrackedRow {
                    project_id: r.try_get("project_id")?,
                    added_at: r.try_get("added_at")?,
                    source: r.try_get("source")?,
                    enabled: r.try_get("enabled")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .context("reading tracked projects")
    }

    async fn sync_config_projects(&self, ids: &[String]) -> anyhow::Result<(u64, u64)> {
        let added = self.track_add(ids, "config").await?;
        let mut disabled = 0;
        for row in self.track_list().await? {
            if row.source == "config" && row.enabled && !ids.contains(&row.project_id) {
                query::<DB>(sql::TRACK_DISABLE)
                    .bind(row.project_id.clone())
                    .execute(&self.pool)
                    .await
                    .context("disabling a project no longer in sync.projects")?;
                disabled += 1;
            }
        }
        Ok((added, disabled))
    }

    async fn begin_run(&self, at: Timestamp, replica_id: &str) -> anyhow::Result<i64> {
        let row = query::<DB>(sql::BEGIN_RUN)
            .bind(at)
            .bind(replica_id.to_string())
            .fetch_one(&self.pool)
            .await
            .context("recording the start of a cycle in sync_runs")?;
        Ok(row.try_get::<i64, _>(0usize)?)
    }

    async fn finish_run(&self, id: i64, at: Timestamp, t: &RunTotals) -> anyhow::Result<()> {
        query::<DB>(sql::FINISH_RUN)
            .bind(id)
            .bind(at)
            .bind(t.outcome.clone())
            .bind(t.projects_polled)
            .bind(t.projects_changed)
            .bind(t.transitions)
            .bind(t.failures)
            .bind(t.error.clone())
            .execute(&self.pool)
            .await
            .context("recording the end of a cycle in sync_runs")?;
        Ok(())
    }

    async fn abandon_runs(&self, replica_id: &str) -> anyhow::Result<u64> {
        let r = query::<DB>(sql::ABANDON_RUNS)
            .bind(replica_id.to_string())
            .execute(&self.pool)
            .await
            .context("closing cycles left running by a previous process")?;
        Ok(DB::QueryResult::rows_affected_of(&r))
    }

    async fn status(&self) -> anyhow::Result<Vec<StatusRow>> {
        let rows = query::<DB>(sql::STATUS)
            .fetch_all(&self.pool)
            .await
            .context("reading project status")?;
        rows.iter()
            .map(|r| {
                Ok(StatusRow {
                    project_id: r.try_get("project_id")?,
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
            .collect::<Result<_, sqlx::Error>>()
            .context("reading project status")
    }

    async fn history(&self, project_id: &str) -> anyhow::Result<Vec<HistoryRow>> {
        let rows = query::<DB>(sql::HISTORY)
            .bind(project_id.to_string())
            .fetch_all(&self.pool)
            .await
            .with_context(|| format!("reading the history of {project_id}"))?;
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
            .collect::<Result<_, sqlx::Error>>()
            .context("reading history")
    }
}

/// PostgreSQL `text` cannot hold U+0000, which JSON can carry (`"\u0000"`). It becomes
/// U+FFFD on both backends, so they store the same value; every other character,
/// control characters included, is stored as sent.
fn storable(value: &Option<String>) -> Option<String> {
    value.as_ref().map(|v| {
        if v.contains('\0') {
            v.replace('\0', "\u{FFFD}")
        } else {
            v.clone()
        }
    })
}

/// `rows_affected` has no common trait in sqlx; each backend's result type has it.
pub trait RowsAffected {
    fn rows_affected_of(result: &Self) -> u64;
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected_of(result: &Self) -> u64 {
        result.rows_affected()
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected_of(result: &Self) -> u64 {
        result.rows_affected()
    }
}
