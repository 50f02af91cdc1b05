//! The named row types the writes bind: one per statement, each binding its columns in
//! the one order its statement numbers them, so a column cannot land at different
//! positions in two statements (`INSERT_PROJECT` and `UPDATE_PROJECT` share
//! [`ProjectRow`]).

use super::backend::{counted, Dialect, Query};
use super::counters::Counters;
use super::error::{StorageContext, StorageError};
use super::sql;
use crate::contract::{HistoryEntry, ProjectColumns, ProjectWrite, Transition};
use crate::domain::{ProjectId, Timestamp};

/// The values of one history row, `$1..$12` of `sql::INSERT_HISTORY`.
pub(super) struct HistoryBind<'a> {
    pub(super) project_id: &'a ProjectId,
    pub(super) observed_at: Timestamp,
    pub(super) request_id: Option<&'a str>,
    pub(super) run_id: Option<i64>,
    pub(super) h: &'a HistoryEntry,
}

impl HistoryBind<'_> {
    pub(super) fn bind<'q, DB: Dialect>(&self, q: Query<'q, DB>) -> Query<'q, DB> {
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

    /// Appends the row and announces it (see the module docs): one statement on
    /// PostgreSQL, one or two on SQLite.
    pub(super) async fn insert<DB: Dialect>(
        &self,
        conn: &mut DB::Connection,
        counters: &Counters,
        enqueue: bool,
    ) -> Result<(), StorageError> {
        let payload = || Transition::new(self.project_id, self.observed_at, self.h).payload();
        if let Some(announced) = DB::INSERT_HISTORY_ANNOUNCED {
            self.bind(counted::<DB>(counters, announced))
                .bind(payload())
                .bind(enqueue)
                .execute(&mut *conn)
                .await
                .ctx("appending history")?;
            return Ok(());
        }
        self.bind(counted::<DB>(counters, sql::INSERT_HISTORY))
            .execute(&mut *conn)
            .await
            .ctx("appending history")?;
        if enqueue {
            counted::<DB>(counters, sql::OUTBOX_ENQUEUE)
                .bind(self.project_id.as_str().to_string())
                .bind(self.h.seq)
                .bind(payload())
                .bind(self.observed_at)
                .execute(&mut *conn)
                .await
                .ctx("queueing the transition for webhook.url")?;
        }
        Ok(())
    }
}

/// The values of one `editing_project_rows` write, `$1..$26` of both `sql::INSERT_PROJECT`
/// and `sql::UPDATE_PROJECT`: one order, bound by [`ProjectRow::bind`], so a column has the
/// same number in both statements. The mirrored columns are bound by reference: a 10 MB
/// Timeline is not copied to be written.
pub(super) struct ProjectRow<'a> {
    /// `$1`
    pub(super) project_id: &'a str,
    /// `$2..$19`
    pub(super) columns: &'a ProjectColumns,
    /// `$20`
    pub(super) polled_at: Timestamp,
    /// `$21`: status pair or ModifiedTime changed (the update moves `last_changed_at`).
    pub(super) changed: bool,
    /// `$22`
    pub(super) request_id: Option<&'a str>,
    /// `$23`: the `history_seq` written.
    pub(super) history_seq: i64,
    /// `$24`: the `history_seq` an update expects to find.
    pub(super) expected_seq: i64,
    /// `$25`
    pub(super) content_hash: i64,
    /// `$26`
    pub(super) extra: Option<&'a str>,
}

impl<'a> ProjectRow<'a> {
    pub(super) fn of(w: &'a ProjectWrite) -> Self {
        ProjectRow {
            project_id: w.project_id.as_str(),
            columns: &w.columns,
            polled_at: w.polled_at,
            changed: w.changed,
            request_id: w.request_id.as_deref(),
            history_seq: w.history.as_ref().map_or(w.expected_seq, |h| h.seq),
            expected_seq: w.expected_seq,
            content_hash: w.content_hash,
            extra: w.columns.extra.as_deref(),
        }
    }

    pub(super) fn bind<DB: Dialect>(&self, q: Query<'a, DB>) -> Query<'a, DB> {
        let c = self.columns;
        q.bind(self.project_id)
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
            .bind(self.polled_at)
            .bind(self.changed)
            .bind(self.request_id)
            .bind(self.history_seq)
            .bind(self.expected_seq)
            .bind(self.content_hash)
            .bind(self.extra)
    }
}
