//! List mode's sweep as storage keeps it between cycles: the cursor a replica resumes
//! ([`SweepCursor`]), what one processed page adds to it ([`SweepStep`]), how a sweep
//! ends ([`SweepEnd`]), and what the gauges read ([`SweepStatus`]).

use crate::domain::Timestamp;

/// The sweep in progress, leased to the replica that read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepCursor {
    pub(crate) id: i64,
    pub(crate) started_at: Timestamp,
    /// Pages processed so far.
    pub(crate) pages: i64,
    /// The `NextToken` of the next page; `None` means page one.
    pub next_token: Option<String>,
    /// The query this sweep pages through, as JSON (`[["ProjectType","..."], ...]`).
    pub(crate) params: String,
    /// The configuration the query was built from: a sweep whose filter differs from
    /// the running configuration's is abandoned.
    pub(crate) filter: String,
}

/// A new sweep, starting at page one.
#[derive(Debug, Clone)]
pub struct SweepStart {
    pub(crate) started_at: Timestamp,
    pub(crate) params: String,
    pub(crate) filter: String,
}

/// What processing one page adds to the cursor.
#[derive(Debug, Clone, Default)]
pub struct SweepStep {
    /// The page after the one processed (`None` after the last page).
    pub(crate) next_token: Option<String>,
    pub(crate) marked: i64,
    pub(crate) discovered: i64,
}

/// How a sweep ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepEnd {
    /// Its last page was processed.
    Completed,
    /// ICE refused its `NextToken` (expired or invalid): the next sweep starts from page one.
    Restarted,
    /// The list filter or page size changed: its token belongs to another query.
    Abandoned,
}

impl SweepEnd {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SweepEnd::Completed => "completed",
            SweepEnd::Restarted => "restarted",
            SweepEnd::Abandoned => "abandoned",
        }
    }
}

/// The sweep in progress and the last completed one, for the gauges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepStatus {
    /// When the sweep in progress fetched its page one, and its pages so far.
    pub(crate) running: Option<(Timestamp, i64)>,
    /// The last completed sweep: started, finished, pages.
    pub(crate) last_completed: Option<(Timestamp, Timestamp, i64)>,
}
