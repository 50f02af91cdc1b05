//! The wire shapes of ICE's producing-job actions, `GetMediaProducingJob` and
//! `ListMediaProducingJobs`, shared by the client (parsing) and the simulator (serving).
//!
//! The same tolerance as `model`: every field optional, enum values plain strings. A
//! full job keeps the fields this build does not name (Timeline, ClipsParam,
//! SubJobMaterials, and whatever ICE adds) in `extra`, so they are stored as sent. A
//! list row is a partial view (no Progress, VodMediaId, Timeline, SubJobMaterials): the
//! sync only reads its ID and status, then fetches the job itself.

use serde::{Deserialize, Deserializer, Serialize};

/// Statuses after which a job never changes (compared exactly: the list model's own doc
/// example spells `Sucess`, which is not final).
pub const FINAL_JOB_STATUSES: [&str; 2] = ["Success", "Failed"];

/// Whether a job in this status is done: polled never again.
pub fn is_final_job_status(status: Option<&str>) -> bool {
    status.is_some_and(|s| FINAL_JOB_STATUSES.contains(&s))
}

/// One producing job as `GetMediaProducingJob` returns it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MediaProducingJob {
    #[serde(rename = "JobId", skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(rename = "ProjectId", skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(rename = "Status", skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(rename = "Code", skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(rename = "Message", skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(rename = "MediaId", skip_serializing_if = "Option::is_none")]
    pub media_id: Option<String>,
    #[serde(rename = "MediaURL", skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    #[serde(rename = "VodMediaId", skip_serializing_if = "Option::is_none")]
    pub vod_media_id: Option<String>,
    #[serde(rename = "TemplateId", skip_serializing_if = "Option::is_none")]
    pub template_id: Option<String>,
    #[serde(rename = "Duration", skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    #[serde(rename = "Progress", skip_serializing_if = "Option::is_none")]
    pub progress: Option<i64>,
    #[serde(rename = "UserData", skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    #[serde(rename = "CreateTime", skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    #[serde(rename = "ModifiedTime", skip_serializing_if = "Option::is_none")]
    pub modified_time: Option<String>,
    #[serde(rename = "CompleteTime", skip_serializing_if = "Option::is_none")]
    pub complete_time: Option<String>,
    /// Every other field, as sent (`media_producing_jobs.extra`).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// `GetMediaProducingJob` success body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetMediaProducingJobResponse {
    #[serde(rename = "RequestId", default)]
    pub request_id: Option<String>,
    #[serde(rename = "MediaProducingJob", default)]
    pub job: Option<MediaProducingJob>,
}

/// One item of `ListMediaProducingJobs`: the list model's fields only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListedMediaProducingJob {
    #[serde(rename = "JobId", skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(rename = "ProjectId", skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(rename = "Status", skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(rename = "Code", skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(rename = "Message", skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(rename = "MediaId", skip_serializing_if = "Option::is_none")]
    pub media_id: Option<String>,
    #[serde(rename = "MediaURL", skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    #[serde(rename = "TemplateId", skip_serializing_if = "Option::is_none")]
    pub template_id: Option<String>,
    #[serde(rename = "ClipsParam", skip_serializing_if = "Option::is_none")]
    pub clips_param: Option<String>,
    #[serde(rename = "Duration", skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    #[serde(rename = "UserData", skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    #[serde(rename = "CreateTime", skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    #[serde(rename = "ModifiedTime", skip_serializing_if = "Option::is_none")]
    pub modified_time: Option<String>,
    #[serde(rename = "CompleteTime", skip_serializing_if = "Option::is_none")]
    pub complete_time: Option<String>,
}

/// `ListMediaProducingJobs` success body. `MaxResults` is a string in the response
/// models (an integer in the request): either is accepted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListMediaProducingJobsResponse {
    #[serde(rename = "RequestId", default)]
    pub request_id: Option<String>,
    #[serde(
        rename = "MaxResults",
        default,
        deserialize_with = "string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_results: Option<String>,
    #[serde(rename = "NextToken", default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    /// Required, as for `ListEditingProjects`: a page without it is malformed, not empty.
    #[serde(rename = "MediaProducingJobList")]
    pub jobs: Vec<ListedMediaProducingJob>,
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        Number(i64),
    }
    Ok(Option::<Either>::deserialize(d)?.map(|v| match v {
        Either::Text(s) => s,
        Either::Number(n) => n.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::sample;

    #[test]
    fn every_job_sample_parses_and_round_trips() {
        for name in [
            "get-media-producing-job.failed.json",
            "get-media-producing-job.processing.json",
            "get-media-producing-job.success.json",
        ] {
            let raw = sample(name);
            let parsed: GetMediaProducingJobResponse = serde_json::from_str(&raw).expect(name);
            assert!(parsed
                .job
                .as_ref()
                .and_then(|j| j.job_id.as_ref())
                .is_some());
            let original: serde_json::Value = serde_json::from_str(&raw).expect(name);
            assert_eq!(
                original,
                serde_json::to_value(&parsed).expect(name),
                "{name}"
            );
        }
        let success: GetMediaProducingJobResponse =
            serde_json::from_str(&sample("get-media-producing-job.success.json")).expect("ok");
        let job = success.job.expect("job");
        assert_eq!(job.duration, Some(30.5));
        assert_eq!(job.progress, Some(100));
        // Unnamed fields are kept, named ones are not repeated there.
        let extra: Vec<&str> = job.extra.keys().map(String::as_str).collect();
        assert_eq!(extra, ["ClipsParam", "Timeline"]);
    }

    #[test]
    fn list_page_parses_with_a_string_max_results() {
        let raw = sample("list-media-producing-jobs.page.json");
        let list: ListMediaProducingJobsResponse = serde_json::from_str(&raw).expect("list");
        assert_eq!(list.max_results.as_deref(), Some("2"));
        assert_eq!(list.next_token.as_deref(), Some("8EqYpQbZ6Eh7+Zz8DxVYoQ=="));
        assert_eq!(list.jobs.len(), 2);
        let original: serde_json::Value = serde_json::from_str(&raw).expect("json");
        assert_eq!(original, serde_json::to_value(&list).expect("again"));
        let numeric: ListMediaProducingJobsResponse =
            serde_json::from_str(r#"{"MaxResults":100,"MediaProducingJobList":[]}"#).expect("n");
        assert_eq!(numeric.max_results.as_deref(), Some("100"));
        assert!(serde_json::from_str::<ListMediaProducingJobsResponse>("{}").is_err());
    }

    #[test]
    fn final_means_exactly_success_or_failed() {
        assert!(is_final_job_status(Some("Success")));
        assert!(is_final_job_status(Some("Failed")));
        for other in [None, Some("Sucess"), Some("Processing"), Some("failed")] {
            assert!(!is_final_job_status(other), "{other:?}");
        }
    }
}
