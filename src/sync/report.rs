//! What a poll and a cycle did: [`PollOutcome`], [`CycleOutcome`], [`CycleReport`].

use std::time::Duration;

/// What happened to one project in one poll.
#[derive(Debug, Clone, PartialEq)]
pub enum PollOutcome {
    Unchanged,
    Changed {
        transitions: u32,
    },
    /// The claim was taken over by another replica before the answer was stored: it
    /// was dropped (the other replica's answer is newer).
    Fenced,
    /// Another replica holds the project right now; it was not polled.
    Busy,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CycleOutcome {
    #[default]
    Success,
    /// Stopped early (deadline, overrun, shutdown) or some projects failed.
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

#[derive(Debug, Clone, Default)]
pub struct CycleReport {
    pub run_id: Option<i64>,
    pub outcome: CycleOutcome,
    /// Projects claimed (due and not claimed by another replica).
    pub due: usize,
    pub polled: usize,
    pub changed: usize,
    pub transitions: u64,
    pub failures: usize,
    /// Answers dropped because another replica took the project over meanwhile.
    pub stale: usize,
    pub removed: usize,
    /// Stopped claiming before the next tick with projects still due.
    pub overran: bool,
    pub duration: Duration,
    /// List mode: `ListEditingProjects` pages this cycle fetched and processed.
    pub list_pages: usize,
    /// List mode: sweeps completed in this cycle.
    pub sweeps_completed: usize,
    /// Why the cycle failed or stopped early, if it did.
    pub error: Option<String>,
}
