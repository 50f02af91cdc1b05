//! Producing jobs (`media_producing_jobs`): found three ways and polled until final.
//!
//! * A project write that enters or leaves `Producing` queues a lookup of its jobs in
//!   the same transaction (`storage::writes`); a `ProduceMediaComplete` callback queues
//!   its JobId with its dedupe row (`storage::callbacks`). Every cycle's job step ends the
//!   queued lookups: `ListMediaProducingJobs` filtered by `ProjectId` over the last 30
//!   days (the API's widest window), then `GetMediaProducingJob` for each listed job not
//!   stored as final (a list row is partial); a callback's job is fetched directly.
//! * Scheduled cycles then poll the stored jobs that are not final, least recently
//!   polled first; a final job (`Success`, `Failed`) is never asked for again, and one ICE
//!   no longer knows (twice) is left as stored.
//! * `ice-sync jobs backfill` lists every tracked project's jobs, 30-day window by window.
//!
//! Every call goes through the engine's one [`IceClient`] (signing, credentials,
//! `sync.max_qps`, retries, the `action` label of the API metrics). A lookup's jobs and
//! the removal of the lookup commit together, so a crash repeats the lookup and the
//! upsert on `job_id` keeps that from writing twice.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::contract::{JobObservation, JobRequest, ProducingJobColumns};
use crate::domain::{ProjectId, Timestamp};
use crate::ice::jobs_model::{is_final_job_status, MediaProducingJob};
use crate::ice::{ErrorClass, IceError};

use super::diff::{extra_text, storable};
use super::engine::{CycleKind, Engine};
use super::time_base::TimeBase;

/// The API's limit on `EndTime - StartTime`.
pub(crate) const WINDOW_DAYS: i64 = 30;
/// How far past "now" a window reaches, so a job created on a clock a little ahead of
/// ours is still inside it.
const WINDOW_SLACK_MINUTES: i64 = 60;
const PAGE_SIZE: u32 = 100;
/// Pages per window: a bound on one project's lookup (10,000 jobs).
const MAX_PAGES: usize = 100;
/// Queued lookups and running jobs handled per cycle; the rest wait for the next one.
const PER_CYCLE: i64 = 1000;
/// Tracked projects read per page by the backfill.
const BACKFILL_PAGE: i64 = 500;
/// Documented fields SPEC.md leaves to `extra`: not news, so not logged.
const DOCUMENTED_EXTRA: [&str; 3] = ["ClipsParam", "Timeline", "SubJobMaterials"];

/// What a job step or a backfill did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobTotals {
    /// `ListMediaProducingJobs` pages read.
    pub(crate) pages: u64,
    /// `GetMediaProducingJob` answers received (found or not).
    pub(crate) fetched: u64,
    /// Job rows inserted or changed.
    pub(crate) written: u64,
    pub failures: u64,
    pub(crate) first_error: Option<String>,
    /// Credentials or permissions: the step stopped.
    pub(crate) auth_error: Option<String>,
}

impl JobTotals {
    fn add(&mut self, other: JobTotals) {
        self.pages += other.pages;
        self.fetched += other.fetched;
        self.written += other.written;
        self.failures += other.failures;
        self.first_error = self.first_error.take().or(other.first_error);
        self.auth_error = self.auth_error.take().or(other.auth_error);
    }

    fn failed(&mut self, error: &IceError) {
        if error.class() == ErrorClass::Auth {
            self.auth_error.get_or_insert_with(|| error.to_string());
        }
        self.failures += 1;
        self.first_error.get_or_insert_with(|| error.to_string());
    }

    fn storage(&mut self, error: &crate::storage::StorageError) {
        self.failures += 1;
        self.first_error.get_or_insert_with(|| format!("{error:#}"));
    }
}

/// The `[StartTime, EndTime]` windows, newest first, that cover `days` back from a
/// little after `now`: ⌈days / 30⌉ of them.
pub(crate) fn windows(now: Timestamp, days: i64) -> Vec<(String, String)> {
    let format = |t: Timestamp| t.as_datetime().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut end = now.shifted(chrono::Duration::minutes(WINDOW_SLACK_MINUTES));
    let oldest = end.shifted(-chrono::Duration::days(days.max(1)));
    let mut out = Vec::new();
    while end > oldest {
        let start = end.shifted(-chrono::Duration::days(WINDOW_DAYS));
        out.push((format(start), format(end)));
        end = start;
    }
    out
}

/// One answer in its stored form, with its fingerprint.
pub fn observation(
    job: MediaProducingJob,
    polled_at: Timestamp,
    request_id: Option<String>,
) -> Option<JobObservation> {
    let s = |v: &Option<String>| storable(v);
    let time = |v: &Option<String>| v.as_deref().and_then(Timestamp::parse);
    let columns = ProducingJobColumns {
        job_id: storable(&job.job_id)?,
        project_id: s(&job.project_id).unwrap_or_default(),
        status: s(&job.status),
        code: s(&job.code),
        message: s(&job.message),
        media_id: s(&job.media_id),
        media_url: s(&job.media_url),
        vod_media_id: s(&job.vod_media_id),
        template_id: s(&job.template_id),
        duration: job.duration,
        progress: job.progress,
        user_data: s(&job.user_data),
        create_time: time(&job.create_time),
        modified_time: time(&job.modified_time),
        complete_time: time(&job.complete_time),
        extra: extra_text(&job.extra),
    };
    let content_hash = fingerprint(&columns);
    Some(JobObservation {
        columns,
        polled_at,
        request_id,
        content_hash,
    })
}

/// First 8 bytes of SHA-256 over the stored columns (stable across Rust releases).
fn fingerprint(columns: &ProducingJobColumns) -> i64 {
    use sha2::{Digest, Sha256};
    let bytes = serde_json::to_vec(columns).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

fn note_extra(job: &MediaProducingJob) {
    let news: serde_json::Map<String, serde_json::Value> = job
        .extra
        .iter()
        .filter(|(k, _)| !DOCUMENTED_EXTRA.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    super::extra_fields::note("MediaProducingJob", &news);
}

/// What fetching one job gave.
enum Fetch {
    Found(Box<JobObservation>),
    Gone,
    Failed(IceError),
}

impl Engine {
    /// A cycle's job step: the queued lookups, then (except refresh cycles, which serve
    /// callbacks) the running jobs. Never raises: failures are counted and the lookups
    /// stay queued for the next cycle.
    pub(crate) async fn sync_jobs(
        &self,
        kind: CycleKind,
        base: &TimeBase,
        stop: &CancellationToken,
    ) -> JobTotals {
        let mut totals = JobTotals::default();
        let mut fetched: HashSet<String> = HashSet::new();
        match self.store.jobs().job_requests(PER_CYCLE).await {
            Ok(requests) => {
                let results: Vec<(JobTotals, Vec<String>)> = futures::stream::iter(requests)
                    .take_while(|_| std::future::ready(!stop.is_cancelled()))
                    .map(|request| self.serve_request(request, base))
                    .buffer_unordered(self.options.sync.concurrency.max(1))
                    .collect()
                    .await;
                for (t, ids) in results {
                    totals.add(t);
                    fetched.extend(ids);
                }
            }
            Err(e) => totals.storage(&e),
        }
        if kind == CycleKind::Refresh || totals.auth_error.is_some() {
            return totals;
        }
        let running = match self.store.jobs().unfinished_jobs(PER_CYCLE).await {
            Ok(ids) => ids,
            Err(e) => {
                totals.storage(&e);
                return totals;
            }
        };
        let polls: Vec<JobTotals> = futures::stream::iter(running)
            .filter(|id| std::future::ready(!fetched.contains(id)))
            .take_while(|_| std::future::ready(!stop.is_cancelled()))
            .map(|id| self.poll_job(id, base))
            .buffer_unordered(self.options.sync.concurrency.max(1))
            .collect()
            .await;
        for t in polls {
            totals.add(t);
        }
        totals
    }

    /// One running job: fetched and stored, or counted as gone.
    async fn poll_job(&self, job_id: String, base: &TimeBase) -> JobTotals {
        let mut totals = JobTotals::default();
        match self.fetch_job(&job_id, base).await {
            Fetch::Found(obs) => {
                totals.fetched += 1;
                match self
                    .store
                    .jobs()
                    .write_jobs(std::slice::from_ref(&*obs), None)
                    .await
                {
                    Ok(n) => totals.written += n,
                    Err(e) => totals.storage(&e),
                }
            }
            Fetch::Gone => {
                totals.fetched += 1;
                if let Err(e) = self
                    .store
                    .jobs()
                    .job_not_found(&job_id, base.now(), None)
                    .await
                {
                    totals.storage(&e);
                }
            }
            Fetch::Failed(e) => totals.failed(&e),
        }
        totals
    }

    async fn fetch_job(&self, job_id: &str, base: &TimeBase) -> Fetch {
        match self.client.get_media_producing_job(job_id).await {
            Ok(fetched) => {
                note_extra(&fetched.value);
                let at = base.at(fetched.sent);
                match observation(fetched.value, at, fetched.request_id) {
                    Some(obs) => Fetch::Found(Box::new(obs)),
                    None => Fetch::Gone,
                }
            }
            Err(e) if e.class() == ErrorClass::NotFound => Fetch::Gone,
            Err(e) => {
                tracing::warn!(
                    job_id,
                    code = e.code(),
                    "fetching a producing job failed: {e}"
                );
                Fetch::Failed(e)
            }
        }
    }

    /// One queued lookup, ended in one transaction with the jobs it found. Returns the
    /// IDs fetched, so the same step does not poll them again.
    async fn serve_request(
        &self,
        request: JobRequest,
        base: &TimeBase,
    ) -> (JobTotals, Vec<String>) {
        let mut totals = JobTotals::default();
        let stored = match self
            .store
            .jobs()
            .project_job_statuses(&request.project_id)
            .await
        {
            Ok(rows) => rows.into_iter().collect::<HashMap<_, _>>(),
            Err(e) => {
                totals.storage(&e);
                return (totals, Vec::new());
            }
        };
        let candidates: Vec<String> = match &request.job_id {
            Some(job_id) => vec![job_id.clone()],
            None => {
                let windows = windows(base.now(), WINDOW_DAYS);
                match self
                    .list_jobs(&request.project_id, &windows, &mut totals)
                    .await
                {
                    Some(ids) => ids,
                    None => return (totals, Vec::new()),
                }
            }
        };
        let to_fetch: Vec<String> = candidates
            .into_iter()
            .filter(|id| {
                !stored
                    .get(id)
                    .is_some_and(|s| is_final_job_status(s.as_deref()))
            })
            .collect();
        let (observations, complete) = self.fetch_all(&to_fetch, base, &mut totals).await;
        // A lookup with a failed fetch stays queued (its found jobs are stored anyway).
        let done = complete.then_some(&request);
        match self.store.jobs().write_jobs(&observations, done).await {
            Ok(n) => totals.written += n,
            Err(e) => totals.storage(&e),
        }
        (totals, to_fetch)
    }

    /// Fetches each job; `false` when one failed (not "not found": that one is over).
    async fn fetch_all(
        &self,
        ids: &[String],
        base: &TimeBase,
        totals: &mut JobTotals,
    ) -> (Vec<JobObservation>, bool) {
        let mut observations = Vec::with_capacity(ids.len());
        let mut complete = true;
        for id in ids {
            match self.fetch_job(id, base).await {
                Fetch::Found(obs) => {
                    totals.fetched += 1;
                    observations.push(*obs);
                }
                Fetch::Gone => totals.fetched += 1,
                Fetch::Failed(e) => {
                    totals.failed(&e);
                    complete = false;
                    if e.class() == ErrorClass::Auth {
                        break;
                    }
                }
            }
        }
        (observations, complete)
    }

    /// The IDs of a project's jobs in these windows, every page; `None` if a page failed.
    async fn list_jobs(
        &self,
        project: &ProjectId,
        windows: &[(String, String)],
        totals: &mut JobTotals,
    ) -> Option<Vec<String>> {
        let mut ids = Vec::new();
        for (start, end) in windows {
            let params = vec![
                ("ProjectId".to_string(), project.as_str().to_string()),
                ("StartTime".to_string(), start.clone()),
                ("EndTime".to_string(), end.clone()),
            ];
            let mut token: Option<String> = None;
            for _ in 0..MAX_PAGES {
                let page = match self
                    .client
                    .list_media_producing_jobs(&params, token.as_deref(), PAGE_SIZE)
                    .await
                {
                    Ok(page) => page.value,
                    Err(e) => {
                        tracing::warn!(project_id = %project, code = e.code(), "listing producing jobs failed: {e}");
                        totals.failed(&e);
                        return None;
                    }
                };
                totals.pages += 1;
                ids.extend(page.jobs.into_iter().filter_map(|j| j.job_id));
                token = page.next_token.filter(|t| !t.is_empty());
                if token.is_none() {
                    break;
                }
            }
        }
        ids.sort();
        ids.dedup();
        Some(ids)
    }

    /// `ice-sync jobs backfill`: every enabled tracked project's jobs of the last
    /// `days` days, in 30-day windows; each project's jobs commit together.
    pub async fn backfill_jobs(&self, days: i64, stop: &CancellationToken) -> JobTotals {
        let mut totals = JobTotals::default();
        let base = match self.store.database_now().await {
            Ok(Some(now)) => TimeBase::new(now, tokio::time::Instant::now()),
            Ok(None) => TimeBase::new(self.clock.now().into(), tokio::time::Instant::now()),
            Err(e) => {
                totals.storage(&e);
                return totals;
            }
        };
        let windows = windows(base.now(), days);
        let mut after = String::new();
        while !stop.is_cancelled() && totals.auth_error.is_none() {
            let page = match self.store.jobs().tracked_after(&after, BACKFILL_PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    totals.storage(&e);
                    break;
                }
            };
            let Some(last) = page.last() else { break };
            after = last.as_str().to_string();
            let results: Vec<JobTotals> = futures::stream::iter(page)
                .map(|project| self.backfill_project(project, &windows, &base))
                .buffer_unordered(self.options.sync.concurrency.max(1))
                .collect()
                .await;
            for t in results {
                totals.add(t);
            }
        }
        totals
    }

    async fn backfill_project(
        &self,
        project: ProjectId,
        windows: &[(String, String)],
        base: &TimeBase,
    ) -> JobTotals {
        let mut totals = JobTotals::default();
        let Some(ids) = self.list_jobs(&project, windows, &mut totals).await else {
            return totals;
        };
        let stored = match self.store.jobs().project_job_statuses(&project).await {
            Ok(rows) => rows.into_iter().collect::<HashMap<_, _>>(),
            Err(e) => {
                totals.storage(&e);
                return totals;
            }
        };
        let to_fetch: Vec<String> = ids
            .into_iter()
            .filter(|id| {
                !stored
                    .get(id)
                    .is_some_and(|s| is_final_job_status(s.as_deref()))
            })
            .collect();
        let (observations, _) = self.fetch_all(&to_fetch, base, &mut totals).await;
        match self.store.jobs().write_jobs(&observations, None).await {
            Ok(n) => totals.written += n,
            Err(e) => totals.storage(&e),
        }
        totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_span_thirty_days_at_a_time() {
        let now = Timestamp::parse("2024-06-30T00:00:00Z").expect("time");
        let w = windows(now, 30);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].1, "2024-06-30T01:00:00Z");
        assert_eq!(w[0].0, "2024-05-31T01:00:00Z");
        let w = windows(now, 90);
        assert_eq!(w.len(), 3);
        assert_eq!(windows(now, 31).len(), 2);
        for pair in w.windows(2) {
            assert_eq!(pair[0].0, pair[1].1, "windows meet without a gap");
        }
    }

    #[test]
    fn an_answer_in_stored_form() {
        let raw = r#"{"JobId":"j","ProjectId":"p","Status":"Failed","Code":"C",
            "CreateTime":"2024-05-20T08:31:02Z","CompleteTime":"2024-05-20T08:33:10Z",
            "Timeline":"{}","Brand":{"a":1}}"#;
        let job: MediaProducingJob = serde_json::from_str(raw).expect("job");
        let at = Timestamp::parse("2024-05-20T09:00:00Z").expect("time");
        let obs = observation(job.clone(), at, None).expect("has an ID");
        assert_eq!(obs.columns.job_id, "j");
        assert_eq!(obs.columns.code.as_deref(), Some("C"));
        assert_eq!(
            obs.columns.extra.as_deref(),
            Some(r#"{"Brand":{"a":1},"Timeline":"{}"}"#)
        );
        assert_eq!(
            obs.content_hash,
            observation(job.clone(), at, Some("r".into()))
                .expect("again")
                .content_hash
        );
        let mut changed = job;
        changed.extra.insert("Brand".into(), serde_json::json!(2));
        assert_ne!(
            obs.content_hash,
            observation(changed, at, None).expect("x").content_hash
        );
    }
}
