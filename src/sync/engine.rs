//! The sync engine: one cycle = claim due projects -> fetch -> diff -> write -> report.
//!
//! [`Engine::run_cycle`] is the unit of work the scheduler calls and tests drive
//! directly; [`Engine::poll_one`] is one project's fetch-diff-write. Neither sleeps on a
//! schedule nor reads config files: they get everything at construction, and stop
//! when the `CancellationToken` they are given is cancelled (no new requests start;
//! in-flight projects finish and commit).
//!
//! Inside a cycle, work streams: due projects are claimed a batch at a time (leased to
//! this replica on PostgreSQL), fetched with at most `concurrency` requests in flight,
//! and handed to one writer task. The writer records unchanged projects many per
//! statement (a "touch") and writes changed ones in batched transactions, each project
//! still guarded by its own compare-and-set. Memory stays flat whatever the number of
//! tracked projects.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::diff::{self, Observation, Plan, Stored};
use super::policy::{PollPolicy, PollState};
use crate::domain::Timestamp;
use crate::ice::{ErrorClass, Fetched, IceClient, IceError, Project};
use crate::storage::{Applied, ClaimRequest, RunTotals, Store, TouchJob, WriteJob};

/// Storage failures in one cycle after which it stops: the database is most likely down,
/// and polling on would spend API quota on answers that cannot be stored.
const MAX_STORAGE_FAILURES: usize = 3;

/// How many times a project is re-planned when another writer got there first.
const MAX_CONFLICT_RETRIES: usize = 3;

/// Changed projects are flushed at least this often, so a slow cycle's history is
/// visible early. Unchanged ones wait for a full batch (or `TOUCH_FLUSH_INTERVAL`): they
/// carry no news, and fewer, larger touches are what makes an unchanged cycle cheap.
const FLUSH_INTERVAL: Duration = Duration::from_millis(500);
const TOUCH_FLUSH_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub concurrency: usize,
    pub removal_confirmations: u32,
    /// Stop claiming work after this long; the cycle is then `partial`.
    pub cycle_timeout: Option<Duration>,
    pub replica_id: String,
    pub policy: PollPolicy,
    /// How long a claim lasts before another replica may take the project.
    pub lease_ttl: Duration,
    /// Projects per claim; 0 picks a size from the backend, concurrency and lease.
    pub claim_batch: usize,
    /// Unchanged projects recorded per touch statement.
    pub touch_batch: usize,
    /// Changed projects per write transaction.
    pub write_batch: usize,
    /// The client's rate limit, to size claims so a batch finishes within its lease.
    pub max_qps: Option<u32>,
    /// `Some` in list mode: each cycle starts with a sweep of `ListEditingProjects`.
    pub list: Option<ListMode>,
}

#[derive(Debug, Clone, Default)]
pub struct ListMode {
    pub filter: crate::config::ListFilter,
    /// Track projects the list shows that are not tracked yet (`source = 'discovered'`).
    pub discover: bool,
}

/// What a list sweep did.
#[derive(Debug, Default)]
struct SweepTotals {
    pages: usize,
    discovered: usize,
    fetched: usize,
    changed: usize,
    transitions: u64,
    failures: usize,
    auth_error: Option<String>,
    error: Option<String>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            concurrency: 16,
            removal_confirmations: 2,
            cycle_timeout: None,
            replica_id: "local".to_string(),
            policy: PollPolicy::default(),
            lease_ttl: Duration::from_secs(60),
            claim_batch: 0,
            touch_batch: 1000,
            write_batch: 64,
            max_qps: None,
            list: None,
        }
    }
}

/// What happened to one project in one cycle.
#[derive(Debug, Clone, PartialEq)]
pub enum PollOutcome {
    Unchanged,
    Changed {
        transitions: u32,
    },
    /// A newer answer was already stored: this one was dropped.
    Stale,
    NotFound,
    Removed,
    /// Recorded on the project's tracking row; the cycle goes on.
    Failed {
        code: String,
        message: String,
    },
    /// Credentials, clock or permissions: the cycle stops.
    AuthFailed {
        message: String,
    },
    /// The database write failed: the observation was not stored.
    StorageFailed {
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CycleOutcome {
    Success,
    /// Stopped early (deadline or shutdown) or some projects failed.
    Partial,
    /// Nothing could be done: auth failure, database unreachable.
    Failed,
}

impl CycleOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            CycleOutcome::Success => "success",
            CycleOutcome::Partial => "partial",
            CycleOutcome::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct CycleReport {
    pub run_id: Option<i64>,
    pub outcome: CycleOutcome,
    /// Projects claimed (due and not claimed by another replica).
    pub due: usize,
    pub polled: usize,
    pub changed: usize,
    pub transitions: u64,
    pub failures: usize,
    pub stale: usize,
    pub removed: usize,
    pub duration: Duration,
    /// Why the cycle failed or stopped early, if it did.
    pub error: Option<String>,
}

pub struct Engine {
    store: Store,
    client: IceClient,
    options: EngineOptions,
    /// Held for the engine's lifetime: the SQLite single-writer lock, if any.
    _lock: Option<std::fs::File>,
}

/// A fetched project on its way to the writer.
enum Polled {
    Observed(Stored, Observation),
    Failed {
        project_id: String,
        failures: i64,
        message: String,
    },
}

/// What the writer did, summed over a cycle.
#[derive(Debug, Default)]
struct WriterTotals {
    changed: usize,
    transitions: u64,
    removed: usize,
    stale: usize,
    storage_failures: usize,
    first_error: Option<String>,
}

impl Engine {
    pub fn new(store: Store, client: IceClient, options: EngineOptions) -> Self {
        Self {
            store,
            client,
            options,
            _lock: None,
        }
    }

    /// Keeps `lock` (see `storage::sqlite::lock_writer`) until the engine is dropped.
    pub fn holding(mut self, lock: Option<std::fs::File>) -> Self {
        self._lock = lock;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    fn claim_limit(&self) -> i64 {
        if self.options.claim_batch > 0 {
            return self.options.claim_batch as i64;
        }
        match self.store {
            // Single writer: a page is only a read, so make it large.
            Store::Sqlite(_) => 1000,
            Store::Postgres(_) => {
                let by_concurrency = (self.options.concurrency * 16).clamp(256, 1000);
                // A claimed batch must be polled well within its lease.
                let by_lease = self.options.max_qps.map_or(usize::MAX, |qps| {
                    (qps as usize * self.options.lease_ttl.as_secs() as usize / 2).max(1)
                });
                by_concurrency.min(by_lease) as i64
            }
        }
    }

    /// One full cycle. Every failure is reported in the [`CycleReport`], never raised.
    #[tracing::instrument(skip_all, fields(sync_run_id))]
    pub async fn run_cycle(&self, shutdown: &CancellationToken) -> CycleReport {
        let clock = Instant::now();
        let cycle_start = Timestamp::now();
        let mut report = CycleReport {
            run_id: None,
            outcome: CycleOutcome::Success,
            due: 0,
            polled: 0,
            changed: 0,
            transitions: 0,
            failures: 0,
            stale: 0,
            removed: 0,
            duration: Duration::ZERO,
            error: None,
        };
        let run_id = match self
            .store
            .begin_run(cycle_start, &self.options.replica_id)
            .await
        {
            Ok(id) => id,
            Err(e) => return self.failed(report, clock, format!("{e:#}")),
        };
        report.run_id = Some(run_id);
        tracing::Span::current().record("sync_run_id", run_id);

        // `stop` ends claiming: shutdown, deadline, an auth failure or a dead database.
        // Requests already in flight finish and commit.
        let stop = shutdown.child_token();
        let deadline_hit = Arc::new(AtomicBool::new(false));
        let deadline = self.options.cycle_timeout.map(|t| {
            let stop = stop.clone();
            let hit = deadline_hit.clone();
            tokio::spawn(async move {
                tokio::time::sleep(t).await;
                hit.store(true, Ordering::SeqCst);
                stop.cancel();
            })
        });

        let sweep = match &self.options.list {
            Some(list) => self.list_sweep(list, run_id, &stop).await,
            None => SweepTotals::default(),
        };
        if sweep.auth_error.is_some() {
            stop.cancel();
        }

        // Each queued item holds a whole project (Timeline included): keep the queue short.
        let (to_writer, from_fetchers) =
            mpsc::channel::<Polled>(self.options.concurrency.max(1) * 2);
        let writer = tokio::spawn(writer_task(
            self.store.clone(),
            from_fetchers,
            run_id,
            self.options.clone(),
            stop.clone(),
        ));

        let claim_error: Arc<std::sync::Mutex<Option<String>>> = Default::default();
        let claimed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let cutoff = self.options.policy.claim_cutoff(cycle_start);
        let claims = {
            let (store, stop, claim_error, claimed) = (
                self.store.clone(),
                stop.clone(),
                claim_error.clone(),
                claimed.clone(),
            );
            let limit = self.claim_limit();
            let owner = self.options.replica_id.clone();
            let ttl = chrono::Duration::from_std(self.options.lease_ttl).unwrap_or_default();
            futures::stream::unfold(Some(None::<String>), move |state| {
                let (store, stop, claim_error, claimed, owner) = (
                    store.clone(),
                    stop.clone(),
                    claim_error.clone(),
                    claimed.clone(),
                    owner.clone(),
                );
                async move {
                    let after = state?;
                    if stop.is_cancelled() {
                        return None;
                    }
                    let request = ClaimRequest {
                        cycle_start: cutoff,
                        after: after.as_deref(),
                        limit,
                        owner: &owner,
                        lease_until: Timestamp::from(chrono::Utc::now() + ttl),
                        own_stale_before: Timestamp::from(cycle_start.as_datetime() + ttl),
                    };
                    match store.claim(&request).await {
                        Ok(batch) if batch.is_empty() => None,
                        Ok(batch) => {
                            claimed.fetch_add(batch.len(), Ordering::Relaxed);
                            let last = batch.last().map(|s| s.project_id.clone());
                            let next = if (batch.len() as i64) < limit {
                                None
                            } else {
                                Some(last)
                            };
                            Some((futures::stream::iter(batch), next))
                        }
                        Err(e) => {
                            let mut slot = claim_error.lock().unwrap_or_else(|p| p.into_inner());
                            *slot = Some(format!("{e:#}"));
                            None
                        }
                    }
                }
            })
            .flatten()
        };

        let claim_stop = stop.clone();
        let fetches = claims
            .take_while(move |_| std::future::ready(!claim_stop.is_cancelled()))
            .map(|stored| async move {
                let result = self.client.get_editing_project(&stored.project_id).await;
                (stored, result)
            })
            .buffer_unordered(self.options.concurrency.max(1));
        let mut fetches = std::pin::pin!(fetches);

        let mut auth_error: Option<String> = sweep.auth_error.clone();
        let mut fetch_error: Option<String> = sweep.error.clone();
        report.polled += sweep.fetched;
        report.failures += sweep.failures;
        while let Some((stored, result)) = fetches.next().await {
            report.polled += 1;
            let polled = match classify(stored, result) {
                Classified::Observed(stored, observation) => Polled::Observed(stored, observation),
                Classified::Auth(message) => {
                    report.failures += 1;
                    if auth_error.is_none() {
                        tracing::error!("{message}; stopping this cycle");
                        auth_error = Some(message);
                    }
                    stop.cancel();
                    continue;
                }
                Classified::Failed { stored, error } => {
                    report.failures += 1;
                    let message = error.to_string();
                    tracing::warn!(
                        project_id = %stored.project_id,
                        request_id = error.request_id(),
                        code = error.code(),
                        "polling failed: {message}"
                    );
                    fetch_error.get_or_insert_with(|| message.clone());
                    Polled::Failed {
                        project_id: stored.project_id,
                        failures: stored.consecutive_failures + 1,
                        message,
                    }
                }
            };
            if to_writer.send(polled).await.is_err() {
                break; // the writer stopped: the database is gone
            }
        }
        drop(to_writer);
        let totals = writer.await.unwrap_or_else(|e| WriterTotals {
            storage_failures: MAX_STORAGE_FAILURES,
            first_error: Some(format!("the writer task failed: {e}")),
            ..Default::default()
        });
        if let Some(handle) = deadline {
            handle.abort();
        }
        if matches!(self.store, Store::Postgres(_)) {
            if let Err(e) = self.store.release_leases(&self.options.replica_id).await {
                tracing::warn!("could not release claims: {e:#}");
            }
        }

        report.due = claimed.load(Ordering::Relaxed) + sweep.fetched;
        report.changed = totals.changed + sweep.changed;
        report.transitions = totals.transitions + sweep.transitions;
        report.removed = totals.removed;
        report.stale = totals.stale;
        report.failures += totals.storage_failures;
        report.duration = clock.elapsed();
        let claim_error = claim_error.lock().unwrap_or_else(|p| p.into_inner()).take();
        let database_down =
            claim_error.is_some() || totals.storage_failures >= MAX_STORAGE_FAILURES;
        let interrupted = shutdown.is_cancelled() || deadline_hit.load(Ordering::SeqCst);
        report.outcome = if auth_error.is_some()
            || database_down
            || (report.polled > 0 && report.failures >= report.polled)
        {
            report.error = auth_error
                .or(claim_error.map(|e| format!("database unavailable: {e}")))
                .or(totals
                    .first_error
                    .clone()
                    .map(|e| format!("database unavailable: {e}")))
                .or(fetch_error);
            CycleOutcome::Failed
        } else if interrupted {
            report.error = Some(if deadline_hit.load(Ordering::SeqCst) {
                "sync.cycle_timeout reached before every due project was polled".to_string()
            } else {
                "stopped by shutdown before every due project was polled".to_string()
            });
            CycleOutcome::Partial
        } else if report.failures > 0 {
            report.error = fetch_error.or(totals.first_error);
            CycleOutcome::Partial
        } else {
            CycleOutcome::Success
        };
        self.finish(&report).await;
        report
    }

    /// List mode's change detection: pages through `ListEditingProjects`, records status
    /// changes straight from the items, and fetches in full only the projects whose
    /// status pair or ModifiedTime differs from what is stored (and new ones).
    async fn list_sweep(
        &self,
        list: &ListMode,
        run_id: i64,
        stop: &CancellationToken,
    ) -> SweepTotals {
        let mut totals = SweepTotals::default();
        let mut params: Vec<(String, String)> = Vec::new();
        if let Some(v) = &list.filter.project_type {
            params.push(("ProjectType".into(), v.clone()));
        }
        if let Some(v) = &list.filter.create_source {
            params.push(("CreateSource".into(), v.clone()));
        }
        if let Some(within) = list.filter.created_within {
            let since = chrono::Utc::now() - chrono::Duration::from_std(within).unwrap_or_default();
            params.push((
                "StartTime".into(),
                since.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            ));
        }
        let mut token: Option<String> = None;
        loop {
            if stop.is_cancelled() {
                break;
            }
            let page = match self
                .client
                .list_editing_projects(&params, token.as_deref(), 100)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    let message = e.to_string();
                    if e.class() == ErrorClass::Auth {
                        tracing::error!("{message}; stopping this cycle");
                        totals.auth_error = Some(message);
                    } else {
                        tracing::warn!(
                            request_id = e.request_id(),
                            "listing projects failed: {message}"
                        );
                        totals.error.get_or_insert(message);
                        totals.failures += 1;
                    }
                    break;
                }
            };
            totals.pages += 1;
            let polled_at = Timestamp::from(page.started_at);
            let items: Vec<_> = page
                .value
                .project_list
                .into_iter()
                .filter(|i| {
                    i.project_id
                        .as_deref()
                        .is_some_and(|id| crate::domain::ProjectId::parse(id).is_ok())
                })
                .collect();
            let ids: Vec<String> = items.iter().filter_map(|i| i.project_id.clone()).collect();
            let mut stored: std::collections::HashMap<String, Stored> =
                match self.store.load_many(&ids).await {
                    Ok(rows) => rows
                        .into_iter()
                        .map(|s| (s.project_id.clone(), s))
                        .collect(),
                    Err(e) => {
                        totals
                            .error
                            .get_or_insert(format!("database unavailable: {e:#}"));
                        break;
                    }
                };
            if list.discover {
                let new: Vec<String> = ids
                    .iter()
                    .filter(|id| !stored.contains_key(*id))
                    .cloned()
                    .collect();
                if !new.is_empty() {
                    match self.store.track_add(&new, "discovered").await {
                        Ok(n) => totals.discovered += n as usize,
                        Err(e) => tracing::warn!("could not track discovered projects: {e:#}"),
                    }
                    if let Ok(rows) = self.store.load_many(&new).await {
                        stored.extend(rows.into_iter().map(|s| (s.project_id.clone(), s)));
                    }
                }
            }
            let mut to_fetch = Vec::new();
            for item in &items {
                let Some(st) = item.project_id.as_ref().and_then(|id| stored.get(id)) else {
                    continue;
                };
                match diff::plan_listed(st, item, page.request_id.clone(), polled_at) {
                    diff::ListedVerdict::Same => {}
                    diff::ListedVerdict::Changed(plan) => {
                        if let Some(plan) = plan {
                            match self.store.apply(&plan, Some(run_id), None).await {
                                Ok(Applied::Written) => {
                                    record_transition(&plan);
                                    totals.changed += 1;
                                    totals.transitions += 1;
                                }
                                Ok(Applied::Conflict) => {}
                                Err(e) => {
                                    totals
                                        .error
                                        .get_or_insert(format!("database unavailable: {e:#}"));
                                    return totals;
                                }
                            }
                        }
                        to_fetch.push(st.project_id.clone());
                    }
                }
            }
            // Fetch what changed, with the same concurrency limit as a get cycle.
            let outcomes: Vec<PollOutcome> = futures::stream::iter(to_fetch)
                .map(|id| async move {
                    match self.store.load(&id).await {
                        Ok(Some(fresh)) => self.poll_one(fresh, Some(run_id)).await,
                        Ok(None) => PollOutcome::Stale,
                        Err(e) => PollOutcome::StorageFailed {
                            message: format!("{e:#}"),
                        },
                    }
                })
                .buffer_unordered(self.options.concurrency.max(1))
                .collect()
                .await;
            for outcome in outcomes {
                totals.fetched += 1;
                match outcome {
                    // The list already counted the change; the fetch refreshed the row.
                    PollOutcome::Changed { transitions } => {
                        totals.transitions += u64::from(transitions)
                    }
                    PollOutcome::Failed { message, .. }
                    | PollOutcome::StorageFailed { message } => {
                        totals.failures += 1;
                        totals.error.get_or_insert(message);
                    }
                    PollOutcome::AuthFailed { message } => {
                        totals.failures += 1;
                        totals.auth_error.get_or_insert(message);
                    }
                    _ => {}
                }
            }
            if totals.auth_error.is_some() {
                break;
            }
            token = page.value.next_token.filter(|t| !t.is_empty());
            if token.is_none() {
                break;
            }
        }
        tracing::debug!(
            pages = totals.pages,
            discovered = totals.discovered,
            fetched = totals.fetched,
            "list sweep done"
        );
        totals
    }

    fn failed(&self, mut report: CycleReport, clock: Instant, error: String) -> CycleReport {
        tracing::error!("sync cycle failed: {error}");
        report.outcome = CycleOutcome::Failed;
        report.error = Some(error);
        report.duration = clock.elapsed();
        report
    }

    async fn finish(&self, report: &CycleReport) {
        let Some(run_id) = report.run_id else { return };
        let totals = RunTotals {
            outcome: report.outcome.as_str().to_string(),
            projects_polled: report.polled as i64,
            projects_changed: report.changed as i64,
            transitions: report.transitions as i64,
            failures: report.failures as i64,
            error: report.error.clone(),
        };
        if let Err(e) = self
            .store
            .finish_run(run_id, Timestamp::now(), &totals)
            .await
        {
            tracing::warn!("could not record the end of sync run {run_id}: {e:#}");
        }
    }

    /// Fetch, diff and write one project, unbatched. Never panics on what the API sends
    /// and never returns an error: every failure is an outcome.
    #[tracing::instrument(skip_all, fields(project_id = %stored.project_id))]
    pub async fn poll_one(&self, stored: Stored, run_id: Option<i64>) -> PollOutcome {
        let result = self.client.get_editing_project(&stored.project_id).await;
        match classify(stored, result) {
            Classified::Observed(stored, observation) => {
                match write_single(&self.store, &self.options, stored, observation, run_id).await {
                    Ok(outcome) => outcome,
                    Err(message) => PollOutcome::StorageFailed { message },
                }
            }
            Classified::Auth(message) => PollOutcome::AuthFailed { message },
            Classified::Failed { stored, error } => {
                let message = error.to_string();
                let next = failure_next_poll(&self.options.policy, stored.consecutive_failures + 1);
                if let Err(db) = self
                    .store
                    .record_failure(&stored.project_id, Timestamp::now(), &message, Some(next))
                    .await
                {
                    tracing::warn!("{db:#}");
                }
                PollOutcome::Failed {
                    code: error.code().to_string(),
                    message,
                }
            }
        }
    }
}

enum Classified {
    Observed(Stored, Observation),
    Auth(String),
    Failed { stored: Stored, error: IceError },
}

/// Turns a fetch result into an observation, or says what kind of failure it was.
fn classify(stored: Stored, result: Result<Fetched<Project>, IceError>) -> Classified {
    match result {
        Ok(fetched) => Classified::Observed(
            stored,
            Observation::Found {
                project: Box::new(fetched.value),
                request_id: fetched.request_id,
                polled_at: Timestamp::from(fetched.started_at),
            },
        ),
        Err(e) => match e.class() {
            ErrorClass::NotFound => Classified::Observed(
                stored,
                Observation::NotFound {
                    request_id: e.request_id().map(str::to_string),
                    polled_at: Timestamp::now(),
                },
            ),
            ErrorClass::Auth => Classified::Auth(e.to_string()),
            ErrorClass::Retryable | ErrorClass::Permanent => {
                Classified::Failed { stored, error: e }
            }
        },
    }
}

/// The state the polling policy sees after a successful poll.
fn poll_state<'a>(
    stored: &'a Stored,
    plan: &'a Plan,
    observation: &'a Observation,
) -> PollState<'a> {
    match observation {
        Observation::Found { project, .. } => PollState {
            project_id: &stored.project_id,
            status: project.status.as_deref(),
            business_status: project.business_status.as_deref(),
            timeline_convert_status: project.timeline_convert_status.as_deref(),
            removed: false,
            failures: 0,
        },
        // Not found: confirm quickly (every tick) unless it is, or now becomes, removed.
        Observation::NotFound { .. } => PollState {
            project_id: &stored.project_id,
            status: None,
            business_status: None,
            timeline_convert_status: None,
            removed: matches!(plan, Plan::MarkRemoved { .. })
                || stored.row.as_ref().is_some_and(|r| r.removed_at.is_some()),
            failures: 0,
        },
    }
}

fn failure_next_poll(policy: &PollPolicy, failures: i64) -> Timestamp {
    policy.next_poll_at(
        Timestamp::now(),
        &PollState {
            project_id: "",
            status: None,
            business_status: None,
            timeline_convert_status: None,
            removed: false,
            failures,
        },
    )
}

fn outcome_of(plan: &Plan) -> PollOutcome {
    match plan {
        Plan::Stale => PollOutcome::Stale,
        Plan::Touch(_) => PollOutcome::Unchanged,
        Plan::Write(w) if w.history.is_some() => PollOutcome::Changed { transitions: 1 },
        Plan::Write(_) => PollOutcome::Unchanged,
        Plan::NotFoundPending { .. } => PollOutcome::NotFound,
        Plan::MarkRemoved { .. } => PollOutcome::Removed,
        Plan::Listed(_) => PollOutcome::Changed { transitions: 1 },
    }
}

/// Counts a committed history row by the status it entered (`removed` for removals).
fn record_transition(plan: &Plan) {
    let status = match plan {
        Plan::Write(w) => match &w.history {
            Some(h) => h.status.clone().unwrap_or_else(|| "(none)".to_string()),
            None => return,
        },
        Plan::MarkRemoved { .. } => "removed".to_string(),
        Plan::Listed(w) => w
            .history
            .status
            .clone()
            .unwrap_or_else(|| "(none)".to_string()),
        _ => return,
    };
    tracing::debug!(status, "stored a transition");
    metrics::counter!("ice_sync_transitions_total", "status" => status).increment(1);
}

/// Plans and applies one observation on its own, re-reading and re-planning when another
/// writer got there first. The slow path: conflicts and single-project polls.
async fn write_single(
    store: &Store,
    options: &EngineOptions,
    mut stored: Stored,
    observation: Observation,
    run_id: Option<i64>,
) -> Result<PollOutcome, String> {
    for _ in 0..MAX_CONFLICT_RETRIES {
        let plan = diff::plan(&stored, observation.clone(), options.removal_confirmations);
        if plan == Plan::Stale {
            return Ok(PollOutcome::Stale);
        }
        let next = options
            .policy
            .next_poll_at(Timestamp::now(), &poll_state(&stored, &plan, &observation));
        match store.apply(&plan, run_id, Some(next)).await {
            Ok(Applied::Written) => {
                record_transition(&plan);
                return Ok(outcome_of(&plan));
            }
            Ok(Applied::Conflict) => match store.load(&stored.project_id).await {
                Ok(Some(fresh)) => stored = fresh,
                Ok(None) => return Ok(PollOutcome::Stale),
                Err(e) => return Err(format!("{e:#}")),
            },
            Err(e) => {
                let message = format!("{e:#}");
                tracing::warn!(project_id = %stored.project_id, "could not store the observation: {message}");
                return Err(message);
            }
        }
    }
    Ok(PollOutcome::Stale)
}

/// Receives fetched projects and writes them in batches. The only task that writes
/// during a cycle, so SQLite never sees two writers of ours contend.
async fn writer_task(
    store: Store,
    mut rx: mpsc::Receiver<Polled>,
    run_id: i64,
    options: EngineOptions,
    stop: CancellationToken,
) -> WriterTotals {
    let mut totals = WriterTotals::default();
    // Touches keep only the small job: an unchanged answer that loses a race carries no
    // news, so it is dropped rather than re-planned (the project stays due).
    let mut touches: Vec<TouchJob> = Vec::new();
    let mut writes: Vec<(WriteJob, Stored, Observation)> = Vec::new();
    let mut writes_due = tokio::time::Instant::now() + FLUSH_INTERVAL;
    let mut touches_due = tokio::time::Instant::now() + TOUCH_FLUSH_INTERVAL;
    loop {
        let received = tokio::select! {
            item = rx.recv() => item,
            _ = tokio::time::sleep_until(writes_due) => {
                flush(&store, &options, run_id, &mut Vec::new(), &mut writes, &mut totals, &stop).await;
                writes_due = tokio::time::Instant::now() + FLUSH_INTERVAL;
                continue;
            }
            _ = tokio::time::sleep_until(touches_due) => {
                flush(&store, &options, run_id, &mut touches, &mut Vec::new(), &mut totals, &stop).await;
                touches_due = tokio::time::Instant::now() + TOUCH_FLUSH_INTERVAL;
                continue;
            }
        };
        let Some(item) = received else { break };
        if totals.storage_failures >= MAX_STORAGE_FAILURES {
            continue; // the database is down: drain without writing
        }
        match item {
            Polled::Observed(stored, observation) => {
                let plan = diff::plan(&stored, observation.clone(), options.removal_confirmations);
                let next_poll_at = options
                    .policy
                    .next_poll_at(Timestamp::now(), &poll_state(&stored, &plan, &observation));
                match plan {
                    Plan::Stale => totals.stale += 1,
                    Plan::Touch(touch) => touches.push(TouchJob {
                        touch,
                        next_poll_at,
                    }),
                    plan => writes.push((WriteJob { plan, next_poll_at }, stored, observation)),
                }
            }
            Polled::Failed {
                project_id,
                failures,
                message,
            } => {
                let next = failure_next_poll(&options.policy, failures);
                if let Err(e) = store
                    .record_failure(&project_id, Timestamp::now(), &message, Some(next))
                    .await
                {
                    storage_failed(&mut totals, 1, format!("{e:#}"), &stop);
                }
            }
        }
        if touches.len() >= options.touch_batch {
            flush(
                &store,
                &options,
                run_id,
                &mut touches,
                &mut Vec::new(),
                &mut totals,
                &stop,
            )
            .await;
            touches_due = tokio::time::Instant::now() + TOUCH_FLUSH_INTERVAL;
        }
        if writes.len() >= options.write_batch {
            flush(
                &store,
                &options,
                run_id,
                &mut Vec::new(),
                &mut writes,
                &mut totals,
                &stop,
            )
            .await;
            writes_due = tokio::time::Instant::now() + FLUSH_INTERVAL;
        }
    }
    if totals.storage_failures < MAX_STORAGE_FAILURES {
        flush(
            &store,
            &options,
            run_id,
            &mut touches,
            &mut writes,
            &mut totals,
            &stop,
        )
        .await;
    }
    totals
}

fn storage_failed(
    totals: &mut WriterTotals,
    projects: usize,
    message: String,
    stop: &CancellationToken,
) {
    let before = totals.storage_failures;
    totals.storage_failures += projects;
    totals.first_error.get_or_insert_with(|| message.clone());
    if before < MAX_STORAGE_FAILURES && totals.storage_failures >= MAX_STORAGE_FAILURES {
        tracing::error!(
            "{} projects could not be stored ({message}); stopping this cycle until the database answers again",
            totals.storage_failures
        );
        stop.cancel();
    } else {
        tracing::warn!("could not store observations: {message}");
    }
}

async fn flush(
    store: &Store,
    options: &EngineOptions,
    run_id: i64,
    touches: &mut Vec<TouchJob>,
    writes: &mut Vec<(WriteJob, Stored, Observation)>,
    totals: &mut WriterTotals,
    stop: &CancellationToken,
) {
    let mut conflicts: Vec<(Stored, Observation)> = Vec::new();
    if !touches.is_empty() {
        let jobs = std::mem::take(touches);
        match store.touch(&jobs).await {
            Ok(applied) => totals.stale += jobs.len().saturating_sub(applied.len()),
            Err(e) => storage_failed(totals, jobs.len(), format!("{e:#}"), stop),
        }
    }
    if !writes.is_empty() {
        let batch = std::mem::take(writes);
        let jobs: Vec<WriteJob> = batch.iter().map(|(j, _, _)| j.clone()).collect();
        match store.apply_batch(&jobs, Some(run_id)).await {
            Ok(results) => {
                for ((job, stored, observation), applied) in batch.into_iter().zip(results) {
                    match applied {
                        Applied::Written => count_written(totals, &job.plan),
                        Applied::Conflict => conflicts.push((stored, observation)),
                    }
                }
            }
            Err(e) => storage_failed(totals, batch.len(), format!("{e:#}"), stop),
        }
    }
    for (stored, observation) in conflicts {
        match write_single(store, options, stored, observation, Some(run_id)).await {
            Ok(PollOutcome::Stale) => totals.stale += 1,
            Ok(PollOutcome::Changed { transitions }) => {
                totals.changed += 1;
                totals.transitions += u64::from(transitions);
            }
            Ok(PollOutcome::Removed) => {
                totals.changed += 1;
                totals.removed += 1;
                totals.transitions += 1;
            }
            Ok(_) => {}
            Err(message) => storage_failed(totals, 1, message, stop),
        }
    }
}

fn count_written(totals: &mut WriterTotals, plan: &Plan) {
    record_transition(plan);
    match outcome_of(plan) {
        PollOutcome::Changed { transitions } => {
            totals.changed += 1;
            totals.transitions += u64::from(transitions);
        }
        PollOutcome::Removed => {
            totals.changed += 1;
            totals.removed += 1;
            totals.transitions += 1;
        }
        _ => {}
    }
}
