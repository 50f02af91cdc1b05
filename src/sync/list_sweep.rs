//! List mode's change detection: page through `ListEditingProjects`, compare each item
//! with what is stored, and make the projects that changed (and, with `sync.discover`,
//! the new ones) due now. The cycle's claims then fetch them in full, fenced like every
//! other poll: a list item never writes history itself, so a page that lags an answer
//! already stored cannot write a transition backwards.
//!
//! A sweep outlives its cycles: where it stands (the next page's `NextToken`) is kept in
//! `list_sweeps`, so a set too large to list in one cycle is listed over several, each
//! spending only its time budget ([`Sweep::leg`]) and resuming where the last one
//! stopped. A sweep completes at its last page and the next one starts from page one:
//! at once if the completed one began in an earlier cycle (a set too large for one cycle
//! is swept back to back), else in the next cycle (a set that fits is swept once per
//! cycle, not as often as time allows). A token ICE refuses (expired,
//! invalid) ends the sweep as `restarted` and a new one starts from page one at once:
//! the pages not yet read are read by the new sweep, so no change is lost.
//!
//! One replica sweeps at a time: the cursor carries a lease (renewed while sweeping,
//! fenced on every page), and a replica that cannot take it just claims. While one
//! page's items are compared and marked, the next page's request is already in flight.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::ListFilter;
use crate::contract::{Stored, SweepCursor, SweepEnd, SweepStart, SweepStep};
use crate::domain::{ProjectId, Timestamp};
use crate::ice::model::{ListEditingProjectsResponse, ListedProject};
use crate::ice::{ErrorClass, Fetched, IceClient, IceError};
use crate::metric_names;
use crate::storage::Store;

use super::diff::{self, ListedVerdict};
use super::time_base::TimeBase;
use super::writer::ToWriter;

/// The API's largest page.
pub(crate) const MAX_PAGE_SIZE: u32 = 100;

/// How list mode is configured.
#[derive(Debug, Clone)]
pub struct ListMode {
    pub(crate) filter: ListFilter,
    /// Track projects the list shows that are not tracked yet (`source = 'discovered'`).
    pub(crate) discover: bool,
    /// The share of a cycle's budget (the time until it stops claiming) the sweep may
    /// use before the claims run (`sync.list_sweep_share`).
    pub(crate) sweep_share: f64,
    /// Items per page, 1 to [`MAX_PAGE_SIZE`].
    pub page_size: u32,
}

impl Default for ListMode {
    fn default() -> Self {
        Self {
            filter: ListFilter::default(),
            discover: false,
            sweep_share: 0.5,
            page_size: MAX_PAGE_SIZE,
        }
    }
}

/// What the sweep did in one cycle (over both of its legs).
#[derive(Debug, Default)]
pub(crate) struct SweepTotals {
    pub(crate) pages: usize,
    pub(crate) discovered: usize,
    /// Projects the list showed changed, made due for the claims.
    pub(crate) marked: u64,
    pub(crate) failures: usize,
    pub(crate) auth_error: Option<String>,
    pub(crate) error: Option<String>,
    /// Sweeps completed in this cycle.
    pub(crate) completed: usize,
    /// A sweep begun in this cycle completed: no other starts before the next cycle.
    pub(crate) swept_this_cycle: bool,
    /// Sweeps ended because ICE refused their token.
    pub(crate) restarted: usize,
}

impl SweepTotals {
    /// Whether another leg may run in this cycle.
    fn may_go_on(&self) -> bool {
        !self.swept_this_cycle && self.auth_error.is_none() && self.error.is_none()
    }
}

pub(crate) struct Sweep<'a> {
    pub(crate) client: &'a IceClient,
    pub(crate) store: &'a Store,
    pub(crate) writer: &'a mpsc::Sender<ToWriter>,
    pub(crate) mode: &'a ListMode,
    /// Changed projects become due by this (the cycle's claim cutoff).
    pub(crate) due_by: Timestamp,
    /// When the cycle started: a sweep begun and completed since (by any replica) was
    /// this cycle's one.
    pub(crate) cycle_start: Timestamp,
    pub(crate) base: TimeBase,
    /// This replica, the lease's owner.
    pub(crate) owner: &'a str,
    pub(crate) lease_ttl: Duration,
    pub(crate) stop: CancellationToken,
}

type PageResult = Result<Fetched<ListEditingProjectsResponse>, IceError>;

/// One leg while it pages: the sweep it holds (named to the lease keeper through
/// `held`), that sweep's query, when it must stop, and what it did.
struct Leg<'l> {
    cursor: SweepCursor,
    params: Vec<(String, String)>,
    until: Option<Instant>,
    held: &'l AtomicI64,
    totals: &'l mut SweepTotals,
}

/// Whether paging goes on, with the next page's request if one is in flight.
type Paging = ControlFlow<(), Option<Pending>>;

/// A page request in flight, and the token it asked with.
struct Pending {
    token: Option<String>,
    handle: JoinHandle<PageResult>,
}

impl Sweep<'_> {
    /// Sweeps until `until` (`None`: until the sweep completes), the `stop` token, or a
    /// failure, resuming the sweep in progress (or starting one). Does nothing if another
    /// replica holds the sweep or one begun in this cycle already completed.
    pub(crate) async fn leg(&self, until: Option<Instant>, totals: &mut SweepTotals) {
        if !totals.may_go_on() || !self.may_fetch(until) {
            return;
        }
        let cursor = match self.acquire().await {
            Ok(Some(cursor)) => cursor,
            Ok(None) => return,
            Err(message) => {
                totals.failures += 1;
                totals.error.get_or_insert(message);
                return;
            }
        };
        let held = Arc::new(AtomicI64::new(cursor.id));
        let keeper_done = CancellationToken::new();
        let keeper = self.keep_lease(held.clone(), keeper_done.clone());
        // A leg dropped half-way (its cycle abandoned) stops renewing, like a dead process.
        let _stop_keeper = keeper_done.clone().drop_guard();
        if let Some(params) = parse_params(&cursor.params) {
            let mut leg = Leg {
                cursor,
                params,
                until,
                held: &held,
                totals,
            };
            self.pages(&mut leg).await;
        }
        keeper_done.cancel();
        let _ = keeper.await;
        // Between legs (and cycles) the sweep is anyone's: a replica with time on its
        // hands continues it rather than waiting for this lease to expire.
        if let Err(e) = self.store.sweeps().sweep_release(self.owner).await {
            tracing::warn!("could not release the list sweep: {e:#}");
        }
    }

    /// After the cycle's last leg: the gauges.
    pub(crate) async fn report(&self, totals: &SweepTotals) {
        metrics::gauge!(metric_names::LIST_CYCLE_PAGES).set(totals.pages as f64);
        match self.store.sweeps().sweep_status().await {
            Ok(status) => {
                let age = status.running.map_or(0.0, |(started, _)| {
                    seconds_between(started, self.base.now()).max(0.0)
                });
                metrics::gauge!(metric_names::LIST_SWEEP_AGE).set(age);
            }
            Err(e) => tracing::debug!("could not read the list sweep's state: {e:#}"),
        }
    }

    fn may_fetch(&self, until: Option<Instant>) -> bool {
        !self.stop.is_cancelled() && until.is_none_or(|u| Instant::now() < u)
    }

    /// The sweep to continue: the one in progress if its lease is free, else a new one
    /// unless one is in progress elsewhere or one begun in this cycle completed.
    async fn acquire(&self) -> Result<Option<SweepCursor>, String> {
        let db = |e: crate::storage::StorageError| format!("database unavailable: {e:#}");
        let now = self.base.now();
        let taken = self
            .store
            .sweeps()
            .sweep_take(self.owner, self.lease_ttl, now)
            .await
            .map_err(db)?;
        if let Some(cursor) = taken {
            if cursor.filter == self.filter_key() && parse_params(&cursor.params).is_some() {
                return Ok(Some(cursor));
            }
            tracing::info!(
                pages = cursor.pages,
                "sync.list changed since the list sweep in progress started; starting a new one"
            );
            self.end(&cursor, SweepEnd::Abandoned, None).await?;
            return self.start().await;
        }
        let status = self.store.sweeps().sweep_status().await.map_err(db)?;
        if status.running.is_some() {
            return Ok(None); // another replica is sweeping
        }
        let swept_this_cycle = status
            .last_completed
            .is_some_and(|(started, finished, _)| started >= self.cycle_start && finished <= now);
        if swept_this_cycle {
            return Ok(None);
        }
        self.start().await
    }

    /// A new sweep from page one; `None` if another replica started one first.
    async fn start(&self) -> Result<Option<SweepCursor>, String> {
        let start = SweepStart {
            started_at: self.base.now(),
            params: serde_json::to_string(&self.params()).unwrap_or_else(|_| "[]".into()),
            filter: self.filter_key(),
        };
        self.store
            .sweeps()
            .sweep_start(&start, self.owner, self.lease_ttl, self.base.now())
            .await
            .map_err(|e| format!("database unavailable: {e:#}"))
    }

    /// Ends `cursor`'s sweep; `false` if the lease had been lost (nothing recorded).
    async fn end(
        &self,
        cursor: &SweepCursor,
        end: SweepEnd,
        last: Option<&SweepStep>,
    ) -> Result<bool, String> {
        let now = self.base.now();
        let ended = self
            .store
            .sweeps()
            .sweep_finish(cursor.id, self.owner, end, last, now)
            .await
            .map_err(|e| format!("database unavailable: {e:#}"))?;
        if ended {
            metrics::counter!(metric_names::LIST_SWEEPS, "outcome" => end.as_str()).increment(1);
        }
        Ok(ended)
    }

    /// Pages from `cursor` on, one request ahead, until the sweep completes, time runs
    /// out, or something fails.
    async fn pages(&self, leg: &mut Leg<'_>) {
        let mut pending = Some(self.fetch(&leg.params, leg.cursor.next_token.clone()));
        while let Some(request) = pending.take() {
            match self.one_page(request, leg).await {
                ControlFlow::Continue(next) => pending = next,
                ControlFlow::Break(()) => return,
            }
        }
    }

    /// Waits for one page and handles it; the next page's request, if any, goes on.
    async fn one_page(&self, request: Pending, leg: &mut Leg<'_>) -> Paging {
        let asked_with_token = request.token.is_some();
        let result = match request.handle.await {
            Ok(result) => result,
            Err(e) => return fail(leg.totals, format!("listing projects stopped: {e}")),
        };
        let page = match result {
            Ok(page) => page,
            Err(e) if asked_with_token && token_refused(&e) => return self.restart(leg, e).await,
            Err(e) => {
                page_failed(leg.totals, e);
                return ControlFlow::Break(());
            }
        };
        leg.totals.pages += 1;
        metrics::counter!(metric_names::LIST_PAGES).increment(1);
        let next = page.value.next_token.filter(|t| !t.is_empty());
        // The next page is fetched while this one's items are compared and marked.
        let mut pending = (next.is_some() && self.may_fetch(leg.until))
            .then(|| self.fetch(&leg.params, next.clone()));
        let mut step = match self.page(&page.value.project_list, leg.totals).await {
            Ok(step) => step,
            Err(message) => {
                abort(&mut pending);
                return fail(leg.totals, message);
            }
        };
        step.next_token = next;
        let now = self.base.now();
        if step.next_token.is_none() {
            return self.complete(leg, &step, now).await;
        }
        match self
            .store
            .sweeps()
            .sweep_advance(leg.cursor.id, self.owner, &step, self.lease_ttl, now)
            .await
        {
            Ok(true) => {
                leg.cursor.pages += 1;
                leg.cursor.next_token = step.next_token;
                ControlFlow::Continue(pending)
            }
            Ok(false) => {
                tracing::warn!(
                    "another replica took the list sweep over (this one stalled past \
                     sync.lease_ttl); it continues from there"
                );
                abort(&mut pending);
                ControlFlow::Break(())
            }
            Err(e) => {
                abort(&mut pending);
                fail(leg.totals, format!("database unavailable: {e:#}"))
            }
        }
    }

    /// ICE refused the sweep's `NextToken`: that sweep ends as `restarted` and a new
    /// one starts from page one.
    async fn restart(&self, leg: &mut Leg<'_>, e: IceError) -> Paging {
        tracing::warn!(
            pages = leg.cursor.pages,
            request_id = e.request_id(),
            "ICE refused the list sweep's NextToken ({e}); starting the sweep again \
             from page one"
        );
        match self.end(&leg.cursor, SweepEnd::Restarted, None).await {
            Ok(true) => leg.totals.restarted += 1,
            // Taken over meanwhile: the new holder decides.
            Ok(false) => return ControlFlow::Break(()),
            Err(message) => return fail(leg.totals, message),
        }
        self.start_over(leg).await
    }

    /// The last page was read: the sweep completes, and if it began before this cycle
    /// the next one starts at once.
    async fn complete(&self, leg: &mut Leg<'_>, last: &SweepStep, now: Timestamp) -> Paging {
        match self.end(&leg.cursor, SweepEnd::Completed, Some(last)).await {
            Ok(true) => {
                leg.totals.completed += 1;
                let took = seconds_between(leg.cursor.started_at, now);
                metrics::gauge!(metric_names::LIST_SWEEP_DURATION).set(took);
                tracing::info!(
                    pages = leg.cursor.pages + 1,
                    seconds = took,
                    "list sweep complete"
                );
            }
            Ok(false) => return ControlFlow::Break(()),
            Err(message) => return fail(leg.totals, message),
        }
        if leg.cursor.started_at >= self.cycle_start {
            leg.totals.swept_this_cycle = true;
            return ControlFlow::Break(());
        }
        // It took more than a cycle: the next one starts at once.
        self.start_over(leg).await
    }

    /// A new sweep from page one, held by this leg from now on.
    async fn start_over(&self, leg: &mut Leg<'_>) -> Paging {
        let fresh = match self.start().await {
            Ok(Some(fresh)) => fresh,
            Ok(None) => return ControlFlow::Break(()),
            Err(message) => return fail(leg.totals, message),
        };
        leg.held.store(fresh.id, Ordering::SeqCst);
        leg.params = parse_params(&fresh.params).unwrap_or_default();
        leg.cursor = fresh;
        ControlFlow::Continue(
            self.may_fetch(leg.until)
                .then(|| self.fetch(&leg.params, None)),
        )
    }

    fn fetch(&self, params: &[(String, String)], token: Option<String>) -> Pending {
        let (client, params, asked) = (self.client.clone(), params.to_vec(), token.clone());
        let page_size = self.mode.page_size.clamp(1, MAX_PAGE_SIZE);
        let handle = tokio::spawn(async move {
            client
                .list_editing_projects(&params, asked.as_deref(), page_size)
                .await
        });
        Pending { token, handle }
    }

    /// Compares one page with the stored state and marks what changed due.
    async fn page(
        &self,
        items: &[ListedProject],
        totals: &mut SweepTotals,
    ) -> Result<SweepStep, String> {
        let ids: Vec<ProjectId> = items
            .iter()
            .filter_map(|i| i.project_id.as_deref())
            .filter_map(|id| ProjectId::parse(id).ok())
            .collect();
        let stored: HashMap<ProjectId, Stored> = self
            .store
            .tracking()
            .load_many(&ids)
            .await
            .map_err(|e| format!("database unavailable: {e:#}"))?
            .into_iter()
            .map(|s| (s.project_id.clone(), s))
            .collect();
        let mut step = SweepStep::default();
        if self.mode.discover {
            let new: Vec<ProjectId> = ids
                .iter()
                .filter(|id| !stored.contains_key(*id))
                .cloned()
                .collect();
            if !new.is_empty() {
                let n = self
                    .ask(|done| ToWriter::Discover { ids: new, done })
                    .await?;
                totals.discovered += n as usize;
                step.discovered = n as i64;
            }
        }
        let changed: Vec<ProjectId> = items
            .iter()
            .filter_map(|item| {
                let id = ProjectId::parse(item.project_id.as_deref()?).ok()?;
                let verdict = stored
                    .get(&id)
                    .map_or(ListedVerdict::Fetch, |s| diff::plan_listed(s, item));
                (verdict == ListedVerdict::Fetch).then_some(id)
            })
            .collect();
        if !changed.is_empty() {
            let at = self.due_by;
            let n = self
                .ask(|done| ToWriter::MarkDue {
                    ids: changed,
                    at,
                    done,
                })
                .await?;
            totals.marked += n;
            step.marked = n as i64;
        }
        Ok(step)
    }

    /// Sends a request to the writer and waits for its answer.
    async fn ask(
        &self,
        message: impl FnOnce(oneshot::Sender<Result<u64, String>>) -> ToWriter,
    ) -> Result<u64, String> {
        let (done, answer) = oneshot::channel();
        self.writer
            .send(message(done))
            .await
            .map_err(|_| "the writer stopped".to_string())?;
        answer.await.map_err(|_| "the writer stopped".to_string())?
    }

    /// Renews the lease on the sweep `held` names every third of its TTL until `done`,
    /// so a page that takes long (throttling, retries) does not lose it.
    fn keep_lease(&self, held: Arc<AtomicI64>, done: CancellationToken) -> JoinHandle<()> {
        let (store, owner, ttl, base) = (
            self.store.clone(),
            self.owner.to_string(),
            self.lease_ttl,
            self.base,
        );
        tokio::spawn(async move {
            let every = (ttl / 3).max(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = done.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                let id = held.load(Ordering::SeqCst);
                if let Err(e) = store
                    .sweeps()
                    .sweep_renew(id, &owner, ttl, base.now())
                    .await
                {
                    tracing::warn!("could not renew the list sweep's lease: {e:#}");
                }
            }
        })
    }

    /// What the configuration asks the list for; a sweep started under another is
    /// abandoned (its token belongs to that query).
    fn filter_key(&self) -> String {
        let f = &self.mode.filter;
        format!(
            "page_size={};project_type={};create_source={};created_within={}",
            self.mode.page_size,
            f.project_type.as_deref().unwrap_or(""),
            f.create_source.as_deref().unwrap_or(""),
            f.created_within
                .map_or(String::new(), |d| format!("{}s", d.as_secs()))
        )
    }

    /// The query of a new sweep. `created_within` becomes a fixed `StartTime`, so every
    /// page of the sweep asks the same question.
    fn params(&self) -> Vec<(String, String)> {
        let filter = &self.mode.filter;
        let mut params: Vec<(String, String)> = Vec::new();
        if let Some(v) = &filter.project_type {
            params.push(("ProjectType".into(), v.clone()));
        }
        if let Some(v) = &filter.create_source {
            params.push(("CreateSource".into(), v.clone()));
        }
        if let Some(within) = filter.created_within {
            let since = self.base.now().as_datetime()
                - chrono::Duration::from_std(within).unwrap_or_default();
            params.push((
                "StartTime".into(),
                since.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            ));
        }
        params
    }
}

fn abort(pending: &mut Option<Pending>) {
    if let Some(request) = pending.take() {
        request.handle.abort();
    }
}

/// Counts a failure that ends the leg (the sweep resumes from its page next time).
fn fail<T>(totals: &mut SweepTotals, message: String) -> ControlFlow<(), T> {
    totals.failures += 1;
    totals.error.get_or_insert(message);
    ControlFlow::Break(())
}

/// A page ICE would not give: an auth failure stops the cycle, anything else this leg.
fn page_failed(totals: &mut SweepTotals, e: IceError) {
    let message = e.to_string();
    if e.class() == ErrorClass::Auth {
        tracing::error!("{message}; stopping this cycle");
        totals.auth_error = Some(message);
    } else {
        tracing::warn!(
            request_id = e.request_id(),
            "listing projects failed: {message}; the sweep resumes from this page next time"
        );
        totals.error.get_or_insert(message);
        totals.failures += 1;
    }
}

/// ICE answers a `NextToken` it no longer honours (expired, or never valid) with a
/// client error such as `InvalidParameter`; throttling, server and auth errors say
/// nothing about the token.
fn token_refused(e: &IceError) -> bool {
    matches!(e, IceError::Api { .. }) && e.class() == ErrorClass::Permanent
}

fn parse_params(json: &str) -> Option<Vec<(String, String)>> {
    serde_json::from_str(json).ok()
}

fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    (to.as_datetime() - from.as_datetime()).num_milliseconds() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: &str, status: u16) -> IceError {
        IceError::Api {
            http_status: status,
            code: code.to_string(),
            message: "m".to_string(),
            request_id: None,
            retry_after: None,
        }
    }

    #[test]
    fn only_a_client_error_refuses_the_token() {
        assert!(token_refused(&api("InvalidParameter", 400)));
        assert!(token_refused(&api("InvalidNextToken", 400)));
        assert!(!token_refused(&api("Throttling.User", 400)));
        assert!(!token_refused(&api("InternalError", 500)));
        assert!(!token_refused(&api("Forbidden.RAM", 403)));
        assert!(!token_refused(&IceError::Timeout(Duration::from_secs(1))));
    }

    #[test]
    fn params_survive_the_database() {
        let params = vec![
            ("ProjectType".to_string(), "LiveEditingProject".to_string()),
            ("StartTime".to_string(), "2030-01-01T00:00:00Z".to_string()),
        ];
        let json = serde_json::to_string(&params).expect("json");
        assert_eq!(parse_params(&json), Some(params));
        assert_eq!(parse_params("not json"), None);
    }
}
