//! The wire shapes of ICE responses, shared by the client (parsing) and the simulator
//! (serving).
//!
//! Parsing is tolerant where the API is loose and strict where a wrong value would
//! land in the database: every field is optional (a shape's `#[serde(default)]`: a missing
//! field is `None`; `None` is not served back), unknown fields are ignored, enum
//! values are plain strings stored verbatim, `Duration` may be an integer or a float.
//! A value of the wrong JSON type (a string `Duration`, a number `Title`) is an error,
//! because guessing would write a row the API never sent.

use serde::{Deserialize, Serialize};

/// One editing project as `GetEditingProject` returns it. Field order follows the
/// API's own responses so the simulator serves the same bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Project {
    #[serde(rename = "ProjectId", skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(rename = "Title", skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(rename = "Description", skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(rename = "Timeline", skip_serializing_if = "Option::is_none")]
    pub timeline: Option<String>,
    #[serde(rename = "CoverURL", skip_serializing_if = "Option::is_none")]
    pub cover_url: Option<String>,
    #[serde(rename = "CreateTime", skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    #[serde(rename = "ModifiedTime", skip_serializing_if = "Option::is_none")]
    pub modified_time: Option<String>,
    #[serde(rename = "ProjectType", skip_serializing_if = "Option::is_none")]
    pub project_type: Option<String>,
    #[serde(rename = "CreateSource", skip_serializing_if = "Option::is_none")]
    pub create_source: Option<String>,
    #[serde(rename = "ModifiedSource", skip_serializing_if = "Option::is_none")]
    pub modified_source: Option<String>,
    #[serde(rename = "TemplateType", skip_serializing_if = "Option::is_none")]
    pub template_type: Option<String>,
    #[serde(
        rename = "TimelineConvertStatus",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeline_convert_status: Option<String>,
    #[serde(
        rename = "TimelineConvertErrorMessage",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeline_convert_error_message: Option<String>,
    #[serde(
        rename = "Duration",
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_duration"
    )]
    pub duration: Option<f64>,
    #[serde(rename = "Status", skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(rename = "BusinessStatus", skip_serializing_if = "Option::is_none")]
    pub business_status: Option<String>,
    #[serde(rename = "BusinessConfig", skip_serializing_if = "Option::is_none")]
    pub business_config: Option<String>,
    #[serde(rename = "TemplateId", skip_serializing_if = "Option::is_none")]
    pub template_id: Option<String>,
    #[serde(rename = "ClipsParam", skip_serializing_if = "Option::is_none")]
    pub clips_param: Option<String>,
    /// Every field SPEC.md does not name, as sent (`editing_projects.extra`): a field ICE
    /// adds later is kept, and a change to it is a change of the project.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The API writes whole durations as integers (`30`) and others as floats (`30.04`).
fn serialize_duration<S: serde::Serializer>(d: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => s.serialize_i64(*v as i64),
        Some(v) => s.serialize_f64(*v),
        None => s.serialize_none(),
    }
}

/// `GetEditingProject` success body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetEditingProjectResponse {
    #[serde(rename = "RequestId", default)]
    pub request_id: Option<String>,
    #[serde(rename = "Project", default)]
    pub project: Option<Project>,
}

/// One item of `ListEditingProjects`: no Timeline, Duration, TemplateId or ClipsParam.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListedProject {
    #[serde(rename = "ProjectId", skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(rename = "Title", skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(rename = "Description", skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(rename = "CoverURL", skip_serializing_if = "Option::is_none")]
    pub cover_url: Option<String>,
    #[serde(rename = "Status", skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(rename = "BusinessStatus", skip_serializing_if = "Option::is_none")]
    pub business_status: Option<String>,
    #[serde(rename = "BusinessConfig", skip_serializing_if = "Option::is_none")]
    pub business_config: Option<String>,
    #[serde(rename = "CreateTime", skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    #[serde(rename = "ModifiedTime", skip_serializing_if = "Option::is_none")]
    pub modified_time: Option<String>,
    #[serde(rename = "CreateSource", skip_serializing_if = "Option::is_none")]
    pub create_source: Option<String>,
    #[serde(rename = "ModifiedSource", skip_serializing_if = "Option::is_none")]
    pub modified_source: Option<String>,
    #[serde(rename = "ProjectType", skip_serializing_if = "Option::is_none")]
    pub project_type: Option<String>,
    #[serde(rename = "TemplateType", skip_serializing_if = "Option::is_none")]
    pub template_type: Option<String>,
    #[serde(rename = "ErrorCode", skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(rename = "ErrorMessage", skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// `ListEditingProjects` success body. An empty or missing `NextToken` means the last page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListEditingProjectsResponse {
    #[serde(rename = "RequestId", default)]
    pub request_id: Option<String>,
    #[serde(
        rename = "MaxResults",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_results: Option<i64>,
    #[serde(rename = "NextToken", default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    /// Required: a page without it is malformed, not empty. Reading it as empty could
    /// make a sweep believe every project vanished.
    #[serde(rename = "ProjectList")]
    pub project_list: Vec<ListedProject>,
}

/// The POP gateway's error body. The SDK also accepts lower-case keys, so do we.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(rename = "RequestId", alias = "requestId", default)]
    pub request_id: Option<String>,
    #[serde(rename = "HostId", default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    #[serde(rename = "Code", alias = "code", default)]
    pub code: Option<String>,
    #[serde(rename = "Message", alias = "message", default)]
    pub message: Option<String>,
    #[serde(rename = "Recommend", default, skip_serializing_if = "Option::is_none")]
    pub recommend: Option<String>,
}

/// Just the request id, to name it in an error about a body that did not parse.
#[derive(Deserialize)]
pub struct RequestIdOnly {
    #[serde(rename = "RequestId", alias = "requestId", default)]
    pub request_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::sample;

    #[test]
    fn every_get_sample_parses_and_round_trips() {
        for name in [
            "get-editing-project.editing.json",
            "get-editing-project.live-broadcasting.json",
            "get-editing-project.minimal-optional-fields-missing.json",
            "get-editing-project.produce-failed.json",
            "get-editing-project.produced-float-duration.json",
            "get-editing-project.producing.json",
            "get-editing-project.template.json",
        ] {
            let raw = sample(name);
            let parsed: GetEditingProjectResponse = serde_json::from_str(&raw).expect(name);
            let project = parsed.project.clone().expect(name);
            assert!(project.project_id.is_some(), "{name}");
            // Serving what we parsed gives back the same JSON value: the simulator's shapes
            // are the API's shapes.
            let original: serde_json::Value = serde_json::from_str(&raw).expect(name);
            let again = serde_json::to_value(&parsed).expect(name);
            assert_eq!(original, again, "{name}");
        }
    }

    #[test]
    fn float_duration_and_missing_fields() {
        let p: GetEditingProjectResponse =
            serde_json::from_str(&sample("get-editing-project.produced-float-duration.json"))
                .expect("parses");
        assert_eq!(p.project.and_then(|p| p.duration), Some(30.04));
        let m: GetEditingProjectResponse = serde_json::from_str(&sample(
            "get-editing-project.minimal-optional-fields-missing.json",
        ))
        .expect("parses");
        let m = m.project.expect("project");
        assert_eq!(m.status.as_deref(), Some("Draft"));
        assert_eq!(m.title, None);
        assert_eq!(m.project_type, None);
    }

    #[test]
    fn unknown_fields_and_enum_values_are_kept() {
        let raw =
            r#"{"RequestId":"r","Project":{"ProjectId":"p","Status":"Archived","Brand":"new"}}"#;
        let p: GetEditingProjectResponse = serde_json::from_str(raw).expect("parses");
        let p = p.project.expect("project");
        assert_eq!(p.status.as_deref(), Some("Archived"));
        assert_eq!(p.extra.get("Brand"), Some(&serde_json::json!("new")));
        let sample: GetEditingProjectResponse =
            serde_json::from_str(&sample("get-editing-project.unknown-field.json")).expect("ok");
        let extra = sample.project.expect("project").extra;
        assert_eq!(
            serde_json::Value::Object(extra),
            serde_json::json!({"NewField": {"a": 1}})
        );
    }

    #[test]
    fn wrong_types_are_errors_not_guesses() {
        for raw in [
            r#"{"Project":{"ProjectId":"p","Duration":"30"}}"#,
            r#"{"Project":{"ProjectId":"p","Title":12}}"#,
            r#"{"Project":"p"}"#,
        ] {
            assert!(
                serde_json::from_str::<GetEditingProjectResponse>(raw).is_err(),
                "{raw}"
            );
        }
    }

    #[test]
    fn list_and_error_samples_parse() {
        let list: ListEditingProjectsResponse =
            serde_json::from_str(&sample("list-editing-projects.page.json")).expect("list");
        assert_eq!(list.project_list.len(), 2);
        assert_eq!(list.next_token.as_deref(), Some("8EqYpQbZ6Eh7+Zz8DxVYoQ=="));
        for name in [
            "error.forbidden-ram.json",
            "error.internal.json",
            "error.signature-mismatch.json",
            "error.throttling-user.json",
            "error.unknown-project.json",
        ] {
            let wrapper: serde_json::Value = serde_json::from_str(&sample(name)).expect(name);
            let body: ErrorBody = serde_json::from_value(wrapper["body"].clone()).expect(name);
            assert!(body.code.is_some() && body.request_id.is_some(), "{name}");
        }
    }
}
