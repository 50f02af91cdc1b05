//! The poll-request queue: `tracked_projects.requested_at` (migration 0006), filled by
//! `ice-sync refresh`, `POST /refresh` and ICE callbacks, emptied by claims.
//!
//! A request only marks projects; the daemon's refresh cycle claims them (and every
//! other claim clears the mark too, so a scheduled poll serves a pending request). On
//! PostgreSQL the request's transaction also sends `NOTIFY ice_sync_poll_requests`, so
//! every replica wakes at commit and exactly one claims each project; on SQLite (one
//! daemon per file) the daemon polls a cheap `EXISTS` on the queue's partial index.
//! `refresh_signal` is that wake-up, whichever backend is behind it.

use std::time::Duration;

use futures::FutureExt;

use super::backend::{counted, Dialect, RowGet, RowsAffected, SqlStore};
use super::counters::Counters;
use super::error::{StorageContext, StorageError};
use super::refresh_signal::RefreshSignal;
use super::rows::{ids_json, project_id};
use super::sql;
use crate::domain::{ProjectId, Timestamp};

/// The channel a request notifies on PostgreSQL.
pub(crate) const NOTIFY_CHANNEL: &str = "ice_sync_poll_requests";

/// Which projects a request asks to poll now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshTarget {
    /// These projects. Those not tracked (or disabled) are returned as unknown; with
    /// `all_or_nothing`, one unknown ID means nothing is requested at all.
    Projects {
        ids: Vec<ProjectId>,
        all_or_nothing: bool,
    },
    /// Every enabled tracked project.
    AllEnabled,
    /// Enabled projects whose current `status` or `business_status` equals this value.
    Status(String),
}

/// Who asked: the `source` label of `ice_sync_poll_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshSource {
    /// `ice-sync refresh`.
    Cli,
    /// `POST /refresh` on the metrics listener.
    Http,
    /// An ICE event callback.
    Callback,
}

impl RefreshSource {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RefreshSource::Cli => "cli",
            RefreshSource::Http => "http",
            RefreshSource::Callback => "callback",
        }
    }
}

/// What a request did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshOutcome {
    /// The projects now requested (already pending ones included), sorted.
    pub requested: Vec<ProjectId>,
    /// Given IDs that are not tracked, or tracked but disabled: nothing was requested for
    /// them (and, with `all_or_nothing`, for nobody).
    pub unknown: Vec<ProjectId>,
    /// Projects newly tracked (or re-enabled) by [`Store::track_and_refresh`]; 0 otherwise.
    ///
    /// [`Store::track_and_refresh`]: super::Store::track_and_refresh
    pub tracked: u64,
}

/// Whether a requested claim would find work now.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PendingRefreshes {
    /// A requested project no live claim holds: a refresh cycle would poll it.
    pub(crate) claimable: bool,
    /// Any request pending, claimable or held by a claim (served when that lease ends).
    pub(crate) waiting: bool,
    /// How long the oldest claimable request has waited (on the deciding clock).
    pub(crate) oldest: Option<Duration>,
}

/// What `ice-sync refresh` reads of one requested project while it waits.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshState {
    pub(crate) project_id: ProjectId,
    /// Still queued: no claim has picked it up yet.
    pub(crate) requested: bool,
    /// When the current lease ends, if a claim holds (or held) it.
    pub(crate) lease_expires_at: Option<Timestamp>,
    pub(crate) last_attempt_at: Option<Timestamp>,
    pub(crate) last_error: Option<String>,
    pub(crate) last_error_at: Option<Timestamp>,
    pub(crate) status: Option<String>,
    pub(crate) business_status: Option<String>,
    pub(crate) last_polled_at: Option<Timestamp>,
}

impl<DB: Dialect> SqlStore<DB> {
    /// Marks the target's enabled projects as requested at `at` (an earlier pending request
    /// keeps its time), in one transaction that also notifies, where the backend can.
    /// With `track`, the given IDs are first tracked under that source (a callback naming
    /// an unknown project, with discovery on).
    pub(crate) async fn queue_refreshes(
        &self,
        target: &RefreshTarget,
        at: Timestamp,
        track: Option<&str>,
    ) -> Result<RefreshOutcome, StorageError> {
        let target = target.clone();
        let track = track.map(str::to_string);
        self.transaction(move |conn, counters| {
            async move {
                let mut outcome = RefreshOutcome::default();
                if let (Some(source), RefreshTarget::Projects { ids, .. }) = (&track, &target) {
                    outcome.tracked = Self::track_in(conn, counters, ids, source, at).await?;
                }
                Self::refresh_in(conn, counters, &target, at, outcome).await
            }
            .boxed()
        })
        .await
        .inspect(|outcome| {
            if !outcome.requested.is_empty() {
                self.requests.notify_one();
            }
        })
    }

    /// Tracks `ids` under `source` inside a request's transaction; returns how many were
    /// added or re-enabled.
    async fn track_in(
        conn: &mut DB::Connection,
        counters: &Counters,
        ids: &[ProjectId],
        source: &str,
        at: Timestamp,
    ) -> Result<u64, StorageError> {
        let mut tracked = 0;
        for id in ids {
            tracked += counted::<DB>(counters, sql::TRACK_ADD)
                .bind(id.as_str().to_string())
                .bind(at)
                .bind(source.to_string())
                .bind(Timestamp::NEVER)
                .execute(&mut *conn)
                .await
                .with_ctx(|| format!("tracking {id}"))?
                .rows_affected_of();
        }
        Ok(tracked)
    }

    /// Marks the target requested inside the caller's transaction and notifies, where the
    /// backend can.
    async fn refresh_in(
        conn: &mut DB::Connection,
        counters: &Counters,
        target: &RefreshTarget,
        at: Timestamp,
        mut outcome: RefreshOutcome,
    ) -> Result<RefreshOutcome, StorageError> {
        let rows = match target {
            RefreshTarget::Projects {
                ids,
                all_or_nothing,
            } => {
                let json = ids_json(ids);
                if *all_or_nothing {
                    let known = counted::<DB>(counters, DB::ENABLED_AMONG)
                        .bind(json.clone())
                        .fetch_all(&mut *conn)
                        .await
                        .ctx("reading which projects are tracked")?;
                    outcome.unknown = unknown(ids, &Self::ids_of(&known)?);
                    if !outcome.unknown.is_empty() {
                        return Ok(outcome);
                    }
                }
                let rows = counted::<DB>(counters, DB::REQUEST_IDS)
                    .bind(json)
                    .bind(at)
                    .fetch_all(&mut *conn)
                    .await
                    .ctx("requesting polls")?;
                outcome.requested = Self::ids_of(&rows)?;
                outcome.unknown = unknown(ids, &outcome.requested);
                rows
            }
            RefreshTarget::AllEnabled => counted::<DB>(counters, sql::REQUEST_ALL)
                .bind(at)
                .fetch_all(&mut *conn)
                .await
                .ctx("requesting polls of every enabled project")?,
            RefreshTarget::Status(value) => counted::<DB>(counters, sql::REQUEST_STATUS)
                .bind(at)
                .bind(crate::text::storable(value).into_owned())
                .fetch_all(&mut *conn)
                .await
                .with_ctx(|| format!("requesting polls of projects in status {value:?}"))?,
        };
        if outcome.requested.is_empty() {
            outcome.requested = Self::ids_of(&rows)?;
        }
        outcome.requested.sort();
        if let (Some(notify), false) = (DB::REQUEST_NOTIFY, outcome.requested.is_empty()) {
            counted::<DB>(counters, notify)
                .execute(&mut *conn)
                .await
                .ctx("notifying replicas of the request")?;
        }
        Ok(outcome)
    }

    /// Whether a requested claim would find work, and whether any request is pending.
    pub(crate) async fn pending_refreshes(
        &self,
        now: Timestamp,
    ) -> Result<PendingRefreshes, StorageError> {
        let row = DB::bind_now(self.query(DB::REQUESTS_PENDING), now)
            .fetch_one(self.exec())
            .await
            .ctx("looking for poll requests")?;
        let oldest: Option<f64> = row.try_get(0usize)?;
        Ok(PendingRefreshes {
            claimable: oldest.is_some(),
            waiting: row.try_get::<bool, _>(1usize)?,
            oldest: oldest.map(|s| Duration::from_secs_f64(s.max(0.0))),
        })
    }

    /// Where the requests for these projects stand (untracked ones are absent).
    pub(crate) async fn refresh_states(
        &self,
        ids: &[ProjectId],
    ) -> Result<Vec<RefreshState>, StorageError> {
        let rows = self
            .query(DB::REQUEST_STATES)
            .bind(ids_json(ids))
            .fetch_all(self.exec())
            .await
            .ctx("reading requested projects")?;
        rows.iter()
            .map(|r| {
                Ok(RefreshState {
                    project_id: project_id(r.try_get("project_id")?)?,
                    requested: r.try_get("requested")?,
                    lease_expires_at: r.try_get("lease_expires_at")?,
                    last_attempt_at: r.try_get("last_attempt_at")?,
                    last_error: r.try_get("last_error")?,
                    last_error_at: r.try_get("last_error_at")?,
                    status: r.try_get("status")?,
                    business_status: r.try_get("business_status")?,
                    last_polled_at: r.try_get("last_polled_at")?,
                })
            })
            .collect()
    }

    /// The `project_id` column of rows.
    fn ids_of(rows: &[DB::Row]) -> Result<Vec<ProjectId>, StorageError> {
        rows.iter()
            .map(|r| project_id(r.try_get::<String, _>(0usize)?))
            .collect()
    }
}

/// The IDs of `given` missing from `found`, sorted and once each.
fn unknown(given: &[ProjectId], found: &[ProjectId]) -> Vec<ProjectId> {
    let found: std::collections::HashSet<&ProjectId> = found.iter().collect();
    let mut missing: Vec<ProjectId> = given
        .iter()
        .filter(|id| !found.contains(id))
        .cloned()
        .collect();
    missing.sort();
    missing.dedup();
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<ProjectId> {
        v.iter().map(|s| ProjectId::parse(s).expect("id")).collect()
    }

    #[test]
    fn unknown_ids_are_those_not_found_once_each() {
        assert_eq!(
            unknown(&ids(&["b", "a", "c", "b"]), &ids(&["c"])),
            ids(&["a", "b"])
        );
        assert!(unknown(&ids(&["a"]), &ids(&["a"])).is_empty());
    }

    #[test]
    fn sources_are_metric_labels() {
        let labels: Vec<&str> = [
            RefreshSource::Cli,
            RefreshSource::Http,
            RefreshSource::Callback,
        ]
        .iter()
        .map(|s| s.as_str())
        .collect();
        assert_eq!(labels, ["cli", "http", "callback"]);
    }
}

/// The poll-request queue: asking, waiting, waking.
/// (`Store::requests`)
#[derive(Clone, Copy, Debug)]
pub struct RefreshQueue<'a>(pub(super) &'a super::Backend);

impl RefreshQueue<'_> {
    /// Asks for an immediate poll of `target`'s enabled projects (see [`requests`]): marks
    /// them requested at `at` and, on PostgreSQL, notifies every replica at commit.
    pub async fn queue_refreshes(
        &self,
        target: &RefreshTarget,
        source: RefreshSource,
        at: Timestamp,
    ) -> Result<RefreshOutcome, StorageError> {
        let outcome = dispatch!(self.0, s => s.queue_refreshes(target, at, None).await)?;
        super::count_refreshes(source, &outcome);
        Ok(outcome)
    }

    /// Tracks these projects under `track_source` (as `track add` would: re-enabling a
    /// disabled one) and requests a poll of them, in one transaction: for a callback naming
    /// a project not tracked yet.
    pub async fn track_and_refresh(
        &self,
        ids: &[ProjectId],
        track_source: &str,
        source: RefreshSource,
        at: Timestamp,
    ) -> Result<RefreshOutcome, StorageError> {
        let target = RefreshTarget::Projects {
            ids: ids.to_vec(),
            all_or_nothing: false,
        };
        let outcome =
            dispatch!(self.0, s => s.queue_refreshes(&target, at, Some(track_source)).await)?;
        super::count_refreshes(source, &outcome);
        Ok(outcome)
    }

    /// Whether a refresh cycle would find work at `now`, and whether any request waits.
    pub(crate) async fn pending_refreshes(
        &self,
        now: Timestamp,
    ) -> Result<PendingRefreshes, StorageError> {
        dispatch!(self.0, s => s.pending_refreshes(now).await)
    }

    /// Where the requests for these projects stand (for `ice-sync refresh`).
    pub(crate) async fn refresh_states(
        &self,
        ids: &[ProjectId],
    ) -> Result<Vec<RefreshState>, StorageError> {
        dispatch!(self.0, s => s.refresh_states(ids).await)
    }

    /// The wake-up of a daemon's refresh cycles: `LISTEN` on PostgreSQL, a short poll
    /// of the queue on SQLite (comparing leases with `clock`) and behind a transaction
    /// pooler without `database.direct_url`, where no connection can listen.
    pub(crate) async fn refresh_signal(&self, clock: crate::clock::SharedClock) -> RefreshSignal {
        match self.0 {
            super::Backend::Sqlite(s) => RefreshSignal::sqlite(s.clone(), clock).await,
            super::Backend::Postgres(s) => match super::postgres::listen_options(s) {
                Some(options) => RefreshSignal::postgres(options).await,
                None => RefreshSignal::postgres_polling(s.clone(), clock),
            },
        }
    }
}
