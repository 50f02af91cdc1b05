//! What the polling policy is told about a project after its poll, and so when it is
//! due next.

use crate::contract::{NextPoll, Plan, Stored};
use crate::domain::Timestamp;

use super::diff::Observation;
use super::policy::{PollPolicy, PollState};

/// After a successful poll (found or not found).
pub(crate) fn after_poll(
    policy: &PollPolicy,
    stored: &Stored,
    plan: &Plan,
    observation: &Observation,
    now: Timestamp,
) -> NextPoll {
    let state = match observation {
        Observation::Found { project, .. } => PollState {
            project_id: stored.project_id.as_str(),
            status: project.status.as_deref(),
            business_status: project.business_status.as_deref(),
            timeline_convert_status: project.timeline_convert_status.as_deref(),
            removed: false,
            failures: 0,
        },
        // Not found: confirm quickly (every tick) unless it is, or now becomes, removed.
        Observation::NotFound { .. } => PollState {
            project_id: stored.project_id.as_str(),
            status: None,
            business_status: None,
            timeline_convert_status: None,
            removed: matches!(plan, Plan::MarkRemoved { .. })
                || stored.row.as_ref().is_some_and(|r| r.removed_at.is_some()),
            failures: 0,
        },
    };
    policy.next_poll(now, &state)
}

/// After a failed poll: the project backs off on its own.
pub(crate) fn after_failure(policy: &PollPolicy, stored: &Stored, now: Timestamp) -> NextPoll {
    policy.next_poll(
        now,
        &PollState {
            project_id: stored.project_id.as_str(),
            status: None,
            business_status: None,
            timeline_convert_status: None,
            removed: false,
            failures: stored.consecutive_failures + 1,
        },
    )
}
