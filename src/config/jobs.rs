//! `[jobs]`: following the producing jobs of tracked projects (`sync::jobs`).

use serde::{Deserialize, Serialize};

use super::reload::Diff;
use super::ConfigError;

/// What the file and the `ICE_SYNC__JOBS__*` variables may say, with the defaults.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawJobs {
    pub(crate) enabled: bool,
}

impl Default for RawJobs {
    fn default() -> Self {
        Self {
            enabled: DEFAULT_JOBS_ENABLED,
        }
    }
}

/// `jobs.enabled` unless set: producing jobs are followed.
pub(crate) const DEFAULT_JOBS_ENABLED: bool = true;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobsSettings {
    /// `false`: no `GetMediaProducingJob` / `ListMediaProducingJobs` call at all.
    pub(crate) enabled: bool,
}

impl Default for JobsSettings {
    fn default() -> Self {
        Self {
            enabled: DEFAULT_JOBS_ENABLED,
        }
    }
}

impl JobsSettings {
    /// A boolean has no range to check: serde already refused anything else, naming the
    /// key.
    pub(crate) fn from_raw(raw: RawJobs) -> Result<Self, ConfigError> {
        Ok(Self {
            enabled: raw.enabled,
        })
    }
}

/// `[jobs]` in the reload diff: live, the next cycle follows jobs or not.
pub(super) fn changes(d: &mut Diff, a: &JobsSettings, b: &JobsSettings) {
    let JobsSettings { enabled } = a;
    d.value("jobs.enabled", enabled, &b.enabled, bool::to_string);
}
