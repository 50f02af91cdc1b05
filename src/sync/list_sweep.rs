//! List mode's change detection: page through `ListEditingProjects`, compare each item
//! with what is stored, and make the projects that changed (and, with `sync.discover`,
//! the new ones) due now. The cycle's claims then fetch them in full, fenced like every
//! other poll: a list item never writes history itself, so a page that lags an answer
//! already stored cannot write a transition backwards.

use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::ListFilter;
use crate::contract::Stored;
use crate::domain::{ProjectId, Timestamp};
use crate::ice::{ErrorClass, IceClient};
use crate::storage::Store;

use super::diff::{self, ListedVerdict};
use super::writer::ToWriter;

/// How list mode is configured.
#[derive(Debug, Clone, Default)]
pub struct ListMode {
    pub filter: ListFilter,
    /// Track projects the list shows that are not tracked yet (`source = 'discovered'`).
    pub discover: bool,
}

/// What a sweep did.
#[derive(Debug, Default)]
pub(crate) struct SweepTotals {
    pub pages: usize,
    pub discovered: usize,
    /// Projects the list showed changed, made due for this cycle's claims.
    pub marked: u64,
    pub failures: usize,
    pub auth_error: Option<String>,
    pub error: Option<String>,
}

pub(crate) struct Sweep<'a> {
    pub client: &'a IceClient,
    pub store: &'a Store,
    pub writer: &'a mpsc::Sender<ToWriter>,
    pub mode: &'a ListMode,
    /// Changed projects become due by this (the cycle's claim cutoff).
    pub due_by: Timestamp,
    /// For the `created_within` filter.
    pub now: Timestamp,
    pub stop: &'a CancellationToken,
}

impl Sweep<'_> {
    pub async fn run(&self) -> SweepTotals {
        let mut totals = SweepTotals::default();
        let params = self.params();
        let mut token: Option<String> = None;
        while !self.stop.is_cancelled() {
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
            let items = page.value.project_list;
            let ids: Vec<ProjectId> = items
                .iter()
                .filter_map(|i| i.project_id.as_deref())
                .filter_map(|id| ProjectId::parse(id).ok())
                .collect();
            if let Err(e) = self.page(&items, &ids, &mut totals).await {
                totals.error.get_or_insert(e);
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
            marked = totals.marked,
            "list sweep done"
        );
        totals
    }

    async fn page(
        &self,
        items: &[crate::ice::model::ListedProject],
        ids: &[ProjectId],
        totals: &mut SweepTotals,
    ) -> Result<(), String> {
        let stored: HashMap<ProjectId, Stored> = self
            .store
            .load_many(ids)
            .await
            .map_err(|e| format!("database unavailable: {e:#}"))?
            .into_iter()
            .map(|s| (s.project_id.clone(), s))
            .collect();
        if self.mode.discover {
            let new: Vec<ProjectId> = ids
                .iter()
                .filter(|id| !stored.contains_key(*id))
                .cloned()
                .collect();
            if !new.is_empty() {
                totals.discovered += self
                    .ask(|done| ToWriter::Discover { ids: new, done })
                    .await? as usize;
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
            totals.marked += self
                .ask(|done| ToWriter::MarkDue {
                    ids: changed,
                    at,
                    done,
                })
                .await?;
        }
        Ok(())
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
            let since =
                self.now.as_datetime() - chrono::Duration::from_std(within).unwrap_or_default();
            params.push((
                "StartTime".into(),
                since.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            ));
        }
        params
    }
}
