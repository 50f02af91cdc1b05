//! What the diff decided to write for one observation.

use crate::domain::{ProjectId, Timestamp};

use super::stored::ClaimToken;

/// One row for `editing_project_history`.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub seq: i64,
    pub event: HistoryEvent,
    pub previous_status: Option<String>,
    pub status: Option<String>,
    pub previous_business_status: Option<String>,
    pub business_status: Option<String>,
    pub modified_time: Option<Timestamp>,
    /// The states of the known lifecycle this change jumped over, comma-separated in
    /// lifecycle order (`sync::lifecycle`); `None` when it skipped none.
    pub skipped_states: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryEvent {
    FirstSeen,
    Changed,
    Removed,
    Returned,
}

impl HistoryEvent {
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            HistoryEvent::FirstSeen => "first_seen",
            HistoryEvent::Changed => "changed",
            HistoryEvent::Removed => "removed",
            HistoryEvent::Returned => "returned",
        }
    }
}

/// The mirrored columns of `editing_projects`, in the form they are stored (text that
/// PostgreSQL can hold, timestamps parsed), so what is compared is what is written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProjectColumns {
    pub(crate) title: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) business_status: Option<String>,
    pub(crate) project_type: Option<String>,
    pub(crate) template_id: Option<String>,
    pub(crate) template_type: Option<String>,
    pub(crate) clips_param: Option<String>,
    pub(crate) timeline: Option<String>,
    pub(crate) cover_url: Option<String>,
    pub(crate) create_source: Option<String>,
    pub(crate) modified_source: Option<String>,
    pub(crate) business_config: Option<String>,
    pub(crate) timeline_convert_status: Option<String>,
    pub(crate) timeline_convert_error_message: Option<String>,
    pub(crate) duration: Option<f64>,
    pub(crate) create_time: Option<Timestamp>,
    pub(crate) modified_time: Option<Timestamp>,
    /// The fields SPEC.md does not name, as one JSON object (`None`: there are none).
    pub(crate) extra: Option<String>,
}

impl ProjectColumns {
    /// The bytes of its text: what writing it costs, near enough (write batches are
    /// bounded by it).
    pub(crate) fn stored_bytes(&self) -> usize {
        [
            &self.title,
            &self.description,
            &self.status,
            &self.business_status,
            &self.project_type,
            &self.template_id,
            &self.template_type,
            &self.clips_param,
            &self.timeline,
            &self.cover_url,
            &self.create_source,
            &self.modified_source,
            &self.business_config,
            &self.timeline_convert_status,
            &self.timeline_convert_error_message,
            &self.extra,
        ]
        .iter()
        .map(|v| v.as_deref().map_or(0, str::len))
        .sum()
    }
}

/// The full current row to upsert into `editing_project_rows` (the `editing_projects` view).
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectWrite {
    pub(crate) project_id: ProjectId,
    pub(crate) claim: ClaimToken,
    pub(crate) columns: ProjectColumns,
    pub(crate) polled_at: Timestamp,
    pub(crate) request_id: Option<String>,
    /// `true`: no row exists yet, insert one. `false`: update the row whose
    /// `history_seq` is still `expected_seq`.
    pub(crate) insert: bool,
    pub(crate) expected_seq: i64,
    /// Status pair or ModifiedTime changed: `last_changed_at` moves to `polled_at`.
    pub(crate) changed: bool,
    pub history: Option<HistoryEntry>,
    pub(crate) content_hash: i64,
}

/// Nothing the API returned differs from the stored row: only the poll is recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Touch {
    pub(crate) project_id: ProjectId,
    pub(crate) claim: ClaimToken,
    pub(crate) polled_at: Timestamp,
    pub(crate) request_id: Option<String>,
    pub(crate) expected_seq: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Unchanged: record the poll (batched by the writer).
    Touch(Touch),
    Write(Box<ProjectWrite>),
    /// "Not found", but not yet often enough to believe it (or nothing is stored to
    /// remove): only the tracking state changes.
    NotFoundPending {
        project_id: ProjectId,
        claim: ClaimToken,
        polled_at: Timestamp,
        not_found_count: i64,
    },
    MarkRemoved {
        project_id: ProjectId,
        claim: ClaimToken,
        polled_at: Timestamp,
        request_id: Option<String>,
        expected_seq: i64,
        history: HistoryEntry,
    },
}

impl Plan {
    pub(crate) fn project_id(&self) -> &ProjectId {
        match self {
            Plan::Touch(t) => &t.project_id,
            Plan::Write(w) => &w.project_id,
            Plan::NotFoundPending { project_id, .. } | Plan::MarkRemoved { project_id, .. } => {
                project_id
            }
        }
    }

    /// The claim this plan was made under.
    pub(crate) fn claim(&self) -> ClaimToken {
        match self {
            Plan::Touch(t) => t.claim,
            Plan::Write(w) => w.claim,
            Plan::NotFoundPending { claim, .. } | Plan::MarkRemoved { claim, .. } => *claim,
        }
    }

    /// History rows this plan appends.
    pub(crate) fn transitions(&self) -> u32 {
        match self {
            Plan::Write(w) if w.history.is_some() => 1,
            Plan::MarkRemoved { .. } => 1,
            _ => 0,
        }
    }

    /// The stored size of the project row it writes (0 when it writes none).
    pub(crate) fn stored_bytes(&self) -> usize {
        match self {
            Plan::Write(w) => w.columns.stored_bytes(),
            _ => 0,
        }
    }

    /// The history row this plan appends, if any.
    pub(crate) fn history(&self) -> Option<&HistoryEntry> {
        match self {
            Plan::Write(w) => w.history.as_ref(),
            Plan::MarkRemoved { history, .. } => Some(history),
            _ => None,
        }
    }
}
