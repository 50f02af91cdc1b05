//! How a cycle ended: [`outcome`], a pure function of the [`CycleFacts`] the cycle's
//! phases gathered (`super::cycle`), so every rule that decides `success`, `partial` or
//! `failed`, whether the cycle overran, and the error it reports is a unit test here.
//!
//! The rules, first match wins: a cycle that could not go on (credentials, the
//! database) or whose every poll failed has failed; one stopped early (shutdown, the
//! next tick, `sync.cycle_timeout`) or with some failures is partial; else it succeeded.
//! A note on distrusted "not found" answers is appended to whatever error there is.

use super::report::CycleOutcome;

/// Where claiming stopped with work left, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoppedAt {
    /// The margin before the next tick of the schedule (an overrun).
    Tick,
    /// `sync.cycle_timeout`.
    Timeout,
}

/// What the cycle's phases found, all the end is decided from.
#[derive(Debug, Clone, Default)]
pub(crate) struct CycleFacts {
    /// Projects fetched (whatever the answer).
    pub(crate) polled: usize,
    /// Every failure of the cycle: fetches, list pages, rows the database refused.
    pub(crate) failures: usize,
    /// Credentials, clock or permissions: the cycle stopped (fetch, list or job step).
    pub(crate) auth_error: Option<String>,
    /// The database became unavailable while claiming or writing.
    pub(crate) unavailable: Option<String>,
    /// The first failed fetch or list page.
    pub(crate) fetch_error: Option<String>,
    /// The first row the database refused.
    pub(crate) write_error: Option<String>,
    /// Shutdown was asked for before the cycle ended.
    pub(crate) shutdown: bool,
    pub(crate) stopped_at: Option<StoppedAt>,
    /// Why this cycle's "not found" answers were not counted, if they were not.
    pub(crate) removal_note: Option<String>,
}

/// The end of a cycle, as its report and `sync_runs` record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ending {
    pub(crate) outcome: CycleOutcome,
    /// Stopped claiming before the next tick with projects still due.
    pub(crate) overran: bool,
    pub(crate) error: Option<String>,
}

const SHUTDOWN: &str = "stopped by shutdown before every due project was polled";
const OVERRAN: &str = "overran: stopped claiming before the next tick with projects still due; \
                       they go first next cycle (raise sync.max_qps or sync.concurrency, or \
                       lengthen sync.schedule)";
const TIMEOUT: &str = "sync.cycle_timeout reached before every due project was polled";

/// Decides how the cycle ended from what its phases found.
pub(crate) fn outcome(facts: &CycleFacts) -> Ending {
    let f = facts;
    // A shutdown, not the schedule, is what stopped a cycle that was shutting down.
    let overran = f.stopped_at == Some(StoppedAt::Tick) && !f.shutdown;
    let every_poll_failed = f.polled > 0 && f.failures >= f.polled;
    let (outcome, error) = if f.auth_error.is_some() || f.unavailable.is_some() || every_poll_failed
    {
        let unavailable = f.unavailable.as_ref();
        let error = f
            .auth_error
            .clone()
            .or_else(|| unavailable.map(|e| format!("database unavailable: {e}")))
            .or_else(|| f.fetch_error.clone())
            .or_else(|| f.write_error.clone());
        (CycleOutcome::Failed, error)
    } else if f.shutdown {
        (CycleOutcome::Partial, Some(SHUTDOWN.to_string()))
    } else if overran {
        (CycleOutcome::Partial, Some(OVERRAN.to_string()))
    } else if f.stopped_at.is_some() {
        (CycleOutcome::Partial, Some(TIMEOUT.to_string()))
    } else if f.failures > 0 {
        let error = f.fetch_error.clone().or_else(|| f.write_error.clone());
        (CycleOutcome::Partial, error)
    } else {
        (CycleOutcome::Success, None)
    };
    let error = match (error, &f.removal_note) {
        (Some(e), Some(note)) => Some(format!("{e}; {note}")),
        (None, Some(note)) => Some(note.clone()),
        (error, None) => error,
    };
    Ending {
        outcome,
        overran,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CycleOutcome::{Failed, Partial, Success};

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    fn polled(polled: usize, failures: usize) -> CycleFacts {
        CycleFacts {
            polled,
            failures,
            ..Default::default()
        }
    }

    #[test]
    fn every_rule_of_the_ending() {
        let auth = || some("ICE rejected the credentials");
        let fetch = || some("InternalError");
        let write = || some("a row was refused");
        let note = "most answers were not found; none was counted";
        #[rustfmt::skip]
        let cases: Vec<(&str, CycleFacts, CycleOutcome, bool, Option<String>)> = vec![
            ("nothing was due", CycleFacts::default(), Success, false, None),
            ("every poll succeeded", polled(5, 0), Success, false, None),
            ("some polls failed",
             CycleFacts { fetch_error: fetch(), ..polled(5, 2) }, Partial, false, fetch()),
            ("only a write was refused",
             CycleFacts { write_error: write(), ..polled(5, 1) }, Partial, false, write()),
            ("the fetch error is named before the write error",
             CycleFacts { fetch_error: fetch(), write_error: write(), ..polled(5, 2) },
             Partial, false, fetch()),
            ("a failure without a message",
             polled(5, 1), Partial, false, None),
            ("only the list failed (nothing polled)",
             CycleFacts { fetch_error: fetch(), ..polled(0, 1) }, Partial, false, fetch()),
            ("every poll failed",
             CycleFacts { fetch_error: fetch(), ..polled(5, 5) }, Failed, false, fetch()),
            ("more failures than polls (list and writes)",
             CycleFacts { write_error: write(), ..polled(2, 3) }, Failed, false, write()),
            ("credentials: failed, whatever else happened",
             CycleFacts { auth_error: auth(), fetch_error: fetch(), shutdown: true,
                          ..polled(5, 1) },
             Failed, false, auth()),
            ("the database went away",
             CycleFacts { unavailable: some("disk full"), fetch_error: fetch(), ..polled(5, 1) },
             Failed, false, some("database unavailable: disk full")),
            ("credentials are named before the database",
             CycleFacts { auth_error: auth(), unavailable: some("disk full"), ..polled(1, 1) },
             Failed, false, auth()),
            ("shutdown", CycleFacts { shutdown: true, ..polled(3, 1) },
             Partial, false, some(SHUTDOWN)),
            ("shutdown at the tick's margin is no overrun",
             CycleFacts { shutdown: true, stopped_at: Some(StoppedAt::Tick), ..polled(3, 0) },
             Partial, false, some(SHUTDOWN)),
            ("the next tick came",
             CycleFacts { stopped_at: Some(StoppedAt::Tick), fetch_error: fetch(),
                          ..polled(3, 1) },
             Partial, true, some(OVERRAN)),
            ("an overrun that failed too is still counted as one",
             CycleFacts { stopped_at: Some(StoppedAt::Tick), auth_error: auth(), ..polled(3, 1) },
             Failed, true, auth()),
            ("the cycle timeout came",
             CycleFacts { stopped_at: Some(StoppedAt::Timeout), ..polled(3, 0) },
             Partial, false, some(TIMEOUT)),
            ("a removal note alone",
             CycleFacts { removal_note: some(note), ..polled(9, 0) },
             Success, false, some(note)),
            ("a removal note after the error",
             CycleFacts { removal_note: some(note), fetch_error: fetch(), ..polled(9, 1) },
             Partial, false, Some(format!("InternalError; {note}"))),
        ];
        for (name, facts, expected, overran, error) in cases {
            let ending = outcome(&facts);
            assert_eq!(
                ending,
                Ending {
                    outcome: expected,
                    overran,
                    error
                },
                "{name}: {facts:?}"
            );
        }
    }
}
