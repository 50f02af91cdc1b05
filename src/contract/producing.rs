//! Producing jobs between `sync` and `storage`: a job as it is stored, one answer to
//! write, and the queued lookups (`media_producing_job_requests`).

use crate::domain::{ProjectId, Timestamp};

/// The columns of one `media_producing_jobs` row, in stored form.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct ProducingJobColumns {
    pub job_id: String,
    pub(crate) project_id: String,
    pub status: Option<String>,
    pub code: Option<String>,
    pub message: Option<String>,
    pub(crate) media_id: Option<String>,
    pub media_url: Option<String>,
    pub(crate) vod_media_id: Option<String>,
    pub(crate) template_id: Option<String>,
    pub duration: Option<f64>,
    pub(crate) progress: Option<i64>,
    pub(crate) user_data: Option<String>,
    pub(crate) create_time: Option<Timestamp>,
    pub(crate) modified_time: Option<Timestamp>,
    pub complete_time: Option<Timestamp>,
    /// The fields SPEC.md does not name, as one JSON object (`None`: there are none).
    pub(crate) extra: Option<String>,
}

/// One `GetMediaProducingJob` answer to store.
#[derive(Debug, Clone, PartialEq)]
pub struct JobObservation {
    pub columns: ProducingJobColumns,
    pub(crate) polled_at: Timestamp,
    pub(crate) request_id: Option<String>,
    /// Fingerprint of the answer: an unchanged one moves only `last_polled_at`.
    pub(crate) content_hash: i64,
}

/// A queued lookup: a project's jobs to list, or one job to fetch (from a callback).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobRequest {
    pub(crate) project_id: ProjectId,
    /// `None`: list the project's jobs.
    pub(crate) job_id: Option<String>,
}

/// A stored job, as `ice-sync jobs` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredJob {
    #[serde(flatten)]
    pub columns: ProducingJobColumns,
    pub(crate) first_seen_at: Timestamp,
    pub(crate) last_polled_at: Timestamp,
    pub(crate) last_changed_at: Timestamp,
}
