//! Turning a fetch result into what the diff and the writer need: an observation
//! stamped on the deciding clock, a per-project failure, or a reason to stop the cycle.

use crate::contract::Stored;
use crate::ice::budget::Reserved;
use crate::ice::{ErrorClass, Fetched, IceError, Project};

use super::diff::Observation;
use super::time_base::TimeBase;

pub(crate) enum Classified {
    /// With the answer's share of the in-flight budget, to hold until written.
    Observed(Stored, Observation, Reserved),
    /// Credentials, clock or permissions: every other request would fail the same way.
    Auth(String),
    Failed {
        stored: Stored,
        error: IceError,
    },
}

pub(crate) fn classify(
    stored: Stored,
    result: Result<Fetched<Project>, IceError>,
    base: &TimeBase,
) -> Classified {
    match result {
        Ok(fetched) => {
            super::extra_fields::note("Project", &fetched.value.extra);
            Classified::Observed(
                stored,
                Observation::Found {
                    project: Box::new(fetched.value),
                    request_id: fetched.request_id,
                    polled_at: base.at(fetched.sent),
                },
                fetched.reserved,
            )
        }
        Err(e) => match e.class() {
            ErrorClass::NotFound => Classified::Observed(
                stored,
                Observation::NotFound {
                    request_id: e.request_id().map(str::to_string),
                    polled_at: base.now(),
                },
                Reserved::default(),
            ),
            ErrorClass::Auth => Classified::Auth(e.to_string()),
            ErrorClass::Retryable | ErrorClass::Permanent => {
                Classified::Failed { stored, error: e }
            }
        },
    }
}
