//! What a cycle did: [`CycleOutcome`], [`CycleReport`].

use std::time::Duration;

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
    pub(crate) fn as_str(&self) -> &'static str {
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
    /// Answers dropped because another replica took the project over meanwhile (its
    /// claim was fenced off).
    pub fenced: usize,
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
