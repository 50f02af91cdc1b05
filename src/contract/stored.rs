//! What is stored about one claimed project, as far as the diff cares.

use crate::domain::{ProjectId, Timestamp};

/// The fencing token of one claim: the database increments it each time the project is
/// claimed, and a write that repeats an outdated token changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ClaimToken(pub i64);

/// A tracked project as claimed: its tracking counters, its current row (if it was ever
/// observed) and the token every write of this poll must carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub project_id: ProjectId,
    /// `None` if the project was never observed.
    pub(crate) row: Option<StoredRow>,
    /// Consecutive "does not exist" answers so far.
    pub(crate) not_found_count: i64,
    pub(crate) consecutive_failures: i64,
    pub claim: ClaimToken,
}

impl Stored {
    #[cfg(test)]
    /// A project never observed and never claimed (tests, first polls).
    pub(crate) fn new(project_id: ProjectId) -> Self {
        Self {
            project_id,
            row: None,
            not_found_count: 0,
            consecutive_failures: 0,
            claim: ClaimToken::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredRow {
    pub(crate) status: Option<String>,
    pub(crate) business_status: Option<String>,
    pub(crate) modified_time: Option<Timestamp>,
    pub(crate) last_polled_at: Timestamp,
    pub(crate) removed_at: Option<Timestamp>,
    pub(crate) history_seq: i64,
    /// Content hash of the stored project; `None` for rows written before it existed.
    pub(crate) content_hash: Option<i64>,
}
