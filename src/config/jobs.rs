//! `[jobs]`: following the producing jobs of tracked projects (`sync::jobs`).

use super::raw::RawJobs;
use super::ConfigError;

/// `jobs.enabled` unless set: producing jobs are followed.
pub const DEFAULT_JOBS_ENABLED: bool = true;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobsSettings {
    /// `false`: no `GetMediaProducingJob` / `ListMediaProducingJobs` call at all.
    pub enabled: bool,
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
    pub fn from_raw(raw: RawJobs) -> Result<Self, ConfigError> {
        Ok(Self {
            enabled: raw.enabled,
        })
    }
}
