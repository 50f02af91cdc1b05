//! What the polling policy is told about a project after its poll, and so when it is
//! due next.

use crate::contract::{NextPoll, Plan, Stored, WriteJob};
use crate::domain::Timestamp;

use super::diff::{self, Observation};
use super::policy::{PollPolicy, PollState};

/// The diff's plan for an answered poll, and when the project is due next. A found
/// project is judged by what the API said before the diff takes the observation over, so
/// the observation (a 10 MB Timeline, say) is never copied.
pub(crate) fn plan_poll(
    policy: &PollPolicy,
    stored: &Stored,
    observation: Observation,
    removal_confirmations: u32,
    now: Timestamp,
) -> WriteJob {
    if let Observation::Found { project, .. } = &observation {
        let next = policy.next_poll(now, &found(stored, project));
        let plan = diff::plan(stored, observation, removal_confirmations);
        return WriteJob { plan, next };
    }
    let plan = diff::plan(stored, observation, removal_confirmations);
    let next = policy.next_poll(now, &not_found(stored, &plan));
    WriteJob { plan, next }
}

fn found<'a>(stored: &'a Stored, project: &'a crate::ice::Project) -> PollState<'a> {
    PollState {
        project_id: stored.project_id.as_str(),
        status: project.status.as_deref(),
        business_status: project.business_status.as_deref(),
        timeline_convert_status: project.timeline_convert_status.as_deref(),
        removed: false,
        failures: 0,
    }
}

/// After a successful poll (found or not found).
pub(crate) fn after_poll(
    policy: &PollPolicy,
    stored: &Stored,
    plan: &Plan,
    observation: &Observation,
    now: Timestamp,
) -> NextPoll {
    let state = match observation {
        Observation::Found { project, .. } => found(stored, project),
        Observation::NotFound { .. } => not_found(stored, plan),
    };
    policy.next_poll(now, &state)
}

/// Not found: confirm quickly (every tick) unless it is, or now becomes, removed.
fn not_found<'a>(stored: &'a Stored, plan: &Plan) -> PollState<'a> {
    PollState {
        project_id: stored.project_id.as_str(),
        status: None,
        business_status: None,
        timeline_convert_status: None,
        removed: matches!(plan, Plan::MarkRemoved { .. })
            || stored.row.as_ref().is_some_and(|r| r.removed_at.is_some()),
        failures: 0,
    }
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
