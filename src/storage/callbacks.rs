//! ICE event callbacks: an accepted event is deduped on (EventType, JobId), its project
//! tracked if it may be, and a poll of it queued — all in one transaction, so an event
//! that was counted is always one that queued a poll, and a database failure leaves
//! nothing half done for ICE's retry to trip over. Old rows are pruned by age
//! (`retention`).

use futures::FutureExt;

use super::backend::{counted, Dialect, RowGet, RowsAffected, SqlStore};
use super::counters::Counters;
use super::error::{StorageContext, StorageError};
use super::refresh_queue::RefreshSource;
use super::rows::ids_json;
use super::sql;
use crate::domain::{ProjectId, Timestamp};
use crate::text::{storable, storable_opt};

const PRODUCE_MEDIA_COMPLETE: &str = "ProduceMediaComplete";

const REQUEST_EVENT_JOB: &str = "\
INSERT INTO media_producing_job_requests (project_id, job_id, requested_at)
VALUES ($1, $2, $3)
ON CONFLICT (project_id, job_id) DO NOTHING";

/// What the receiver hands storage for one verified event.
#[derive(Debug, Clone)]
pub(crate) struct CallbackEvent {
    pub(crate) event_type: String,
    pub(crate) job_id: String,
    pub(crate) project_id: ProjectId,
    /// `MessageBody.Status` and `EventTime` as sent.
    pub(crate) status: Option<String>,
    pub(crate) event_time: Option<String>,
    /// `sync.replica_id` of the receiving daemon.
    pub(crate) received_by: String,
    /// Make an untracked project tracked (source `callback`) rather than refuse it.
    pub(crate) track_unknown: bool,
}

/// What recording an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallbackRecord {
    /// A poll of a tracked project is queued.
    Queued,
    /// The project was not tracked; it is now, and its first poll is queued.
    Tracked,
    /// This (EventType, JobId) was seen before: nothing queued.
    Duplicate,
    /// Not tracked, and `track_unknown` is off: nothing written.
    Untracked,
    /// Tracked but disabled (removed from `sync.projects`): nothing written.
    Disabled,
}

impl<DB: Dialect> SqlStore<DB> {
    pub(crate) async fn record_callback(
        &self,
        event: &CallbackEvent,
        at: Timestamp,
    ) -> Result<CallbackRecord, StorageError> {
        let event = event.clone();
        self.transaction(move |conn, counters| {
            async move { Self::record_in(conn, counters, &event, at).await }.boxed()
        })
        .await
        .inspect(|record| {
            if matches!(record, CallbackRecord::Queued | CallbackRecord::Tracked) {
                self.requests.notify_one();
            }
        })
    }

    /// The callback's statements inside its transaction: whether its project is tracked,
    /// the dedupe row, tracking an unknown project, and the queued poll.
    async fn record_in(
        conn: &mut DB::Connection,
        counters: &Counters,
        event: &CallbackEvent,
        at: Timestamp,
    ) -> Result<CallbackRecord, StorageError> {
        let id = event.project_id.as_str().to_string();
        let enabled: Option<bool> = match counted::<DB>(counters, sql::CALLBACK_TRACKED)
            .bind(id.clone())
            .fetch_optional(&mut *conn)
            .await
            .ctx("reading whether the callback's project is tracked")?
        {
            Some(row) => Some(row.try_get::<bool, _>(0usize)?),
            None => None,
        };
        match enabled {
            Some(false) => return Ok(CallbackRecord::Disabled),
            None if !event.track_unknown => return Ok(CallbackRecord::Untracked),
            _ => {}
        }
        let inserted = counted::<DB>(counters, sql::CALLBACK_RECORD)
            // Checked by the envelope parser; stored NUL-free whatever the caller.
            .bind(storable(&event.event_type).into_owned())
            .bind(storable(&event.job_id).into_owned())
            .bind(id.clone())
            .bind(storable_opt(event.status.as_deref()))
            .bind(storable_opt(event.event_time.as_deref()))
            .bind(at)
            .bind(storable(&event.received_by).into_owned())
            .execute(&mut *conn)
            .await
            .ctx("recording the callback in callback_events")?
            .rows_affected_of();
        if inserted == 0 {
            return Ok(CallbackRecord::Duplicate);
        }
        let record = if enabled.is_none() {
            counted::<DB>(counters, sql::CALLBACK_TRACK)
                .bind(id.clone())
                .bind(at)
                .bind(Timestamp::NEVER)
                .execute(&mut *conn)
                .await
                .ctx("tracking the callback's project")?;
            CallbackRecord::Tracked
        } else {
            CallbackRecord::Queued
        };
        Self::queue_poll(conn, counters, event, at).await?;
        Ok(record)
    }

    /// The request queue's own statements (`storage::refresh_queue`), in the callback's
    /// transaction: the dedupe row and the request commit together.
    async fn queue_poll(
        conn: &mut DB::Connection,
        counters: &Counters,
        event: &CallbackEvent,
        at: Timestamp,
    ) -> Result<(), StorageError> {
        let id = event.project_id.as_str();
        let requested = counted::<DB>(counters, DB::REQUEST_IDS)
            .bind(ids_json(std::slice::from_ref(&event.project_id)))
            .bind(at)
            .fetch_all(&mut *conn)
            .await
            .ctx("queueing a poll of the callback's project")?;
        if requested.is_empty() {
            // Disabled between the read and the request: undo the dedupe row, so
            // ICE's retry is answered for what the project is by then.
            return Err(StorageError::Invalid(format!(
                "project {id} stopped being tracked while its callback was recorded"
            )));
        }
        // The event names its job: fetch it at once (`sync::jobs`), queued with
        // the poll so a crash loses neither.
        if event.event_type == PRODUCE_MEDIA_COMPLETE && !event.job_id.is_empty() {
            counted::<DB>(counters, REQUEST_EVENT_JOB)
                .bind(id.to_string())
                .bind(event.job_id.clone())
                .bind(at)
                .execute(&mut *conn)
                .await
                .ctx("queueing a fetch of the callback's producing job")?;
        }
        if let Some(notify) = DB::REQUEST_NOTIFY {
            counted::<DB>(counters, notify)
                .execute(&mut *conn)
                .await
                .ctx("notifying replicas of the queued poll")?;
        }
        Ok(())
    }
}

/// ICE event callbacks: recorded once, each queueing a poll.
/// (`Store::callbacks`)
#[derive(Clone, Copy, Debug)]
pub(crate) struct Callbacks<'a>(pub(super) &'a super::Backend);

impl Callbacks<'_> {
    /// Records a verified ICE event callback and queues a poll of its project, in one
    /// transaction: at most once per (EventType, JobId) across every replica.
    pub(crate) async fn record_callback(
        &self,
        event: &CallbackEvent,
        at: Timestamp,
    ) -> Result<CallbackRecord, StorageError> {
        let record = dispatch!(self.0, s => s.record_callback(event, at).await)?;
        if matches!(record, CallbackRecord::Queued | CallbackRecord::Tracked) {
            metrics::counter!(
                crate::metric_names::POLL_REQUESTS,
                "source" => RefreshSource::Callback.as_str()
            )
            .increment(1);
        }
        Ok(record)
    }
}
