//! The jobs the writer hands storage, and what storage answers.

use crate::domain::{ProjectId, Timestamp};

use super::plan::{Plan, Touch};
use super::stored::ClaimToken;

/// When a project is due next, as the polling policy decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextPoll {
    pub at: Timestamp,
    /// When this poll was made, on the deciding clock: `last_attempt_at`. (The observation
    /// time written to the project may be placed later, to keep its history in order.)
    pub attempted: Timestamp,
    /// Due at every tick (transient status, no failures): `run --once` polls it whatever
    /// `at` says.
    pub every_tick: bool,
}

/// A plan and the project's next poll.
#[derive(Debug, Clone)]
pub struct WriteJob {
    pub plan: Plan,
    pub next: NextPoll,
}

/// An unchanged project's poll.
#[derive(Debug, Clone)]
pub struct TouchJob {
    pub(crate) touch: Touch,
    pub(crate) next: NextPoll,
}

/// A poll that failed: recorded on the tracking row, the project backs off.
#[derive(Debug, Clone)]
pub struct FailureJob {
    pub project_id: ProjectId,
    pub claim: ClaimToken,
    pub at: Timestamp,
    pub error: String,
    pub next: NextPoll,
}

/// What applying a job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Written,
    /// The claim is no longer the project's current one (another replica took it over
    /// after the lease expired): nothing was written.
    Fenced,
}

/// Which projects a cycle claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimScope {
    /// Due at or before the cutoff (the latest tick): a scheduled cycle.
    DueBy(Timestamp),
    /// `run --once`: due by `now`, plus every project due at every tick.
    Once(Timestamp),
    /// `run --once --all`: every enabled project.
    All,
    /// Projects someone asked to poll now (`requested_at` set), oldest request first.
    Refresh,
}

/// Totals of one cycle, for `sync_runs`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunTotals {
    pub outcome: String,
    pub projects_polled: i64,
    pub projects_changed: i64,
    pub transitions: i64,
    pub failures: i64,
    pub overran: bool,
    pub error: Option<String>,
}
