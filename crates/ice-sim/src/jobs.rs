//! The producing jobs the simulator scripts, and the two actions that read them:
//! `GetMediaProducingJob` and `ListMediaProducingJobs`, in the shapes of
//! `tests/data/sample-responses/{get,list}-media-producing-job*.json`.
//!
//! A job starts when its project goes `Producing` (`Simulator::start_production`, or a
//! lifecycle step) as `Processing`, and ends when the project leaves it: `Success` with
//! MediaId, MediaURL, VodMediaId, Duration and Progress 100, or `Failed` with Code and
//! Message. A project produced again after a failure gets a new job. The list serves the
//! list model's fields only, newest first by CreateTime, with opaque `NextToken`s, and
//! refuses a window wider than 30 days; an unknown JobId is 404 `ResourceNotFound`.

use std::collections::{BTreeMap, HashMap};

use axum::http::StatusCode;
use chrono::{DateTime, Duration as ChronoDuration, Utc};

use super::api::{self, ApiError, SortKey, Success};
use super::lifecycle::timestamp;
use ice_wire::jobs_model::{
    GetMediaProducingJobResponse, ListMediaProducingJobsResponse, ListedMediaProducingJob,
    MediaProducingJob,
};
use ice_wire::model::Project;

const DEFAULT_MAX_RESULTS: u32 = 10;
const MAX_MAX_RESULTS: u32 = 100;
const MAX_WINDOW_DAYS: i64 = 30;
/// The failure `Simulator::finish_production` reports (one of the codes IMS documents).
pub const FAILURE_CODE: &str = "InvalidMaterial.NotFound";
/// The failures lifecycle steps draw from, with their messages.
pub(crate) const FAILURES: [(&str, &str); 3] = [
    (
        FAILURE_CODE,
        "The specified clips url not found:\"https://example-bucket.oss-cn-shanghai.aliyuncs.com/in/missing.mp4\"",
    ),
    ("ProduceTimelineFormatError", "The timeline format is invalid."),
    ("QueryMaterialFailed", "Query material info failed."),
];

#[derive(Default)]
pub(crate) struct JobState {
    pub jobs: BTreeMap<String, MediaProducingJob>,
    /// The running job of each project.
    pub running: HashMap<String, String>,
    /// `GetMediaProducingJob` requests per JobId, `ListMediaProducingJobs` per ProjectId
    /// (`""`: none given), whatever their outcome.
    pub get_calls: HashMap<String, u64>,
    pub list_calls: HashMap<String, u64>,
}

impl JobState {
    /// A new running job of `project`, created `now`.
    pub fn start(&mut self, job_id: &str, project: &Project, now: DateTime<Utc>) {
        let project_id = project.project_id.clone().unwrap_or_default();
        let mut extra = serde_json::Map::new();
        if let Some(timeline) = &project.timeline {
            extra.insert("Timeline".into(), timeline.clone().into());
        }
        if let Some(clips) = &project.clips_param {
            extra.insert("ClipsParam".into(), clips.clone().into());
        }
        let job = MediaProducingJob {
            job_id: Some(job_id.to_string()),
            project_id: Some(project_id.clone()),
            status: Some("Processing".into()),
            template_id: project.template_id.clone(),
            progress: Some(0),
            user_data: Some(
                r#"{"NotifyAddress":"https://ice-sync.example.com/ice/events"}"#.into(),
            ),
            create_time: Some(timestamp(now)),
            modified_time: Some(timestamp(now)),
            extra,
            ..Default::default()
        };
        self.jobs.insert(job_id.to_string(), job);
        self.running.insert(project_id, job_id.to_string());
    }

    /// Ends a running job; `duration` is the output's length on success. False if the
    /// job is unknown or already final.
    pub fn finish(&mut self, job_id: &str, success: bool, finished: Finished) -> bool {
        let Some(job) = self.jobs.get_mut(job_id) else {
            return false;
        };
        if ice_wire::jobs_model::is_final_job_status(job.status.as_deref()) {
            return false;
        }
        let now = timestamp(finished.at);
        if success {
            job.status = Some("Success".into());
            job.media_url = Some(format!(
                "https://example-bucket.oss-cn-shanghai.aliyuncs.com/out/{job_id}.mp4"
            ));
            job.media_id = Some(finished.media_id.clone());
            job.vod_media_id = Some(finished.media_id.chars().rev().collect());
            job.duration = Some(finished.duration.unwrap_or(30.5));
            job.progress = Some(100);
        } else {
            let (code, message) = FAILURES[finished.failure % FAILURES.len()];
            job.status = Some("Failed".into());
            job.code = Some(code.into());
            job.message = Some(message.into());
        }
        job.modified_time = Some(now.clone());
        job.complete_time = Some(now);
        if let Some(project_id) = &job.project_id {
            if self.running.get(project_id).map(String::as_str) == Some(job_id) {
                self.running.remove(project_id);
            }
        }
        true
    }

    /// Counts a request for the per-job and per-project counters.
    pub fn count(&mut self, action: &str, query: &[(String, String)]) {
        let value = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        match action {
            "GetMediaProducingJob" => *self.get_calls.entry(value("JobId")).or_insert(0) += 1,
            "ListMediaProducingJobs" => {
                *self.list_calls.entry(value("ProjectId")).or_insert(0) += 1
            }
            _ => {}
        }
    }
}

/// How a job ended.
pub(crate) struct Finished {
    pub at: DateTime<Utc>,
    /// Index into [`FAILURES`] when the job fails.
    pub failure: usize,
    pub media_id: String,
    pub duration: Option<f64>,
}

pub(crate) fn is_job_action(action: &str) -> bool {
    matches!(action, "GetMediaProducingJob" | "ListMediaProducingJobs")
}

/// Answers one authenticated job action.
pub(crate) fn answer(
    state: &JobState,
    action: &str,
    query: &[(String, String)],
    request_id: &str,
    token_key: u64,
    now: DateTime<Utc>,
) -> Result<Success, ApiError> {
    match action {
        "GetMediaProducingJob" => {
            let id = api::param(query, "JobId").ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "MissingParameter",
                    "The input parameter \"JobId\" that is mandatory for processing this request is not supplied.",
                )
            })?;
            let job = state.jobs.get(id).cloned().ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFound",
                    "Resource not found",
                )
            })?;
            Ok(Success::JobGet(Box::new(GetMediaProducingJobResponse {
                request_id: Some(request_id.to_string()),
                job: Some(job),
            })))
        }
        _ => list(state, query, request_id, token_key, now).map(Success::JobList),
    }
}

fn list(
    state: &JobState,
    query: &[(String, String)],
    request_id: &str,
    token_key: u64,
    now: DateTime<Utc>,
) -> Result<ListMediaProducingJobsResponse, ApiError> {
    let invalid = |name: &str| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            &format!("The specified parameter {name} is not valid."),
        )
    };
    let max_results = match api::param(query, "MaxResults") {
        None => DEFAULT_MAX_RESULTS,
        Some(raw) => raw
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_MAX_RESULTS).contains(n))
            .ok_or_else(|| invalid("MaxResults"))?,
    };
    let time = |name: &str| match api::param(query, name) {
        None => Ok(None),
        Some(raw) => api::parse_time(raw).map(Some).ok_or_else(|| invalid(name)),
    };
    let end = time("EndTime")?.unwrap_or(now);
    let start = time("StartTime")?.unwrap_or(end - ChronoDuration::days(MAX_WINDOW_DAYS));
    if end < start || end - start > ChronoDuration::days(MAX_WINDOW_DAYS) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            "The specified parameter EndTime is not valid: EndTime - StartTime must not exceed 30 days.",
        ));
    }
    let ascending = match api::param(query, "SortBy") {
        None | Some("CreationTime:Desc") => false,
        Some("CreationTime:Asc") => true,
        Some(_) => return Err(invalid("SortBy")),
    };
    let cursor = match api::param(query, "NextToken") {
        None => None,
        Some(token) => {
            Some(api::decode_token(token, token_key).ok_or_else(|| invalid("NextToken"))?)
        }
    };
    let project = api::param(query, "ProjectId");
    let status = api::param(query, "Status");
    let mut matching: Vec<(SortKey, &MediaProducingJob)> = state
        .jobs
        .iter()
        .filter(|(_, j)| project.is_none_or(|p| j.project_id.as_deref() == Some(p)))
        .filter(|(_, j)| status.is_none_or(|s| j.status.as_deref() == Some(s)))
        .filter(|(_, j)| {
            let created = j.create_time.as_deref().and_then(api::parse_time);
            created.is_some_and(|c| c >= start && c <= end)
        })
        .map(|(id, j)| ((j.create_time.clone().unwrap_or_default(), id.clone()), j))
        .collect();
    matching.sort_by(|a, b| {
        if ascending {
            a.0.cmp(&b.0)
        } else {
            b.0.cmp(&a.0)
        }
    });
    let after: Vec<&(SortKey, &MediaProducingJob)> = matching
        .iter()
        .filter(|(key, _)| match &cursor {
            None => true,
            Some(c) if ascending => key > c,
            Some(c) => key < c,
        })
        .collect();
    let page = max_results as usize;
    let next_token = (after.len() > page)
        .then(|| {
            after
                .get(page - 1)
                .map(|(key, _)| api::encode_token(key, token_key))
        })
        .flatten();
    Ok(ListMediaProducingJobsResponse {
        request_id: Some(request_id.to_string()),
        max_results: Some(max_results.to_string()),
        next_token,
        jobs: after.iter().take(page).map(|(_, j)| listed(j)).collect(),
    })
}

/// The list model's view of a job: no Progress, VodMediaId, Timeline, SubJobMaterials.
fn listed(job: &MediaProducingJob) -> ListedMediaProducingJob {
    ListedMediaProducingJob {
        job_id: job.job_id.clone(),
        project_id: job.project_id.clone(),
        status: job.status.clone(),
        code: job.code.clone(),
        message: job.message.clone(),
        media_id: job.media_id.clone(),
        media_url: job.media_url.clone(),
        template_id: job.template_id.clone(),
        clips_param: job
            .extra
            .get("ClipsParam")
            .and_then(|v| v.as_str())
            .map(str::to_string),
        duration: job.duration,
        user_data: job.user_data.clone(),
        create_time: job.create_time.clone(),
        modified_time: job.modified_time.clone(),
        complete_time: job.complete_time.clone(),
    }
}
