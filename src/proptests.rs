//! Generated inputs for every parser that takes input from outside (issue 20): the
//! callback envelope, `GetEditingProject` and `ListEditingProjects` bodies, `POST
//! /refresh` bodies, and configuration durations. Each must, on any input, return
//! without panicking, and when it refuses, say why in a non-empty, one-line message.
//!
//! Inputs are random bytes, and JSON shaped like the real thing: the documented field
//! names with values of every type (huge numbers, NUL, control characters, non-ASCII),
//! nested at random.

use proptest::prelude::*;
use serde_json::{Map, Value};

/// Field names the parsers look for, plus some they do not.
const FIELDS: &[&str] = &[
    "EventType",
    "UserId",
    "EventTime",
    "MessageBody",
    "Status",
    "JobId",
    "ProjectId",
    "RequestId",
    "Project",
    "ProjectList",
    "NextToken",
    "MaxResults",
    "Title",
    "Timeline",
    "CreateTime",
    "ModifiedTime",
    "Duration",
    "BusinessStatus",
    "projects",
    "all",
    "status",
    "other",
];

fn odd_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9]{0,40}",
        "\\PC{0,30}",
        "[\\x00-\\x1f\\x7f\\u{85}\\u{2028}a-z]{0,20}",
        Just("ProduceMediaComplete".to_string()),
        Just("Success".to_string()),
        Just("2024-06-10T06:13:20Z".to_string()),
        Just("4f4bf84d0d8b4b7e9c2b8a6f0e1d2c3b".to_string()),
        Just("{\"ProjectId\":\"p1\",\"JobId\":\"j\"}".to_string()),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        odd_string().prop_map(Value::String),
    ]
}

/// JSON whose objects use the real field names, nested up to four deep.
fn json_like() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..8).prop_map(|pairs| {
                Value::Object(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

/// Bytes: random, or generated JSON (sometimes cut short).
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        json_like().prop_map(|v| v.to_string().into_bytes()),
        (json_like(), any::<prop::sample::Index>()).prop_map(|(v, cut)| {
            let text = v.to_string().into_bytes();
            let at = cut.index(text.len() + 1);
            text[..at].to_vec()
        }),
    ]
}

fn clear(message: &str) -> Result<(), TestCaseError> {
    prop_assert!(!message.trim().is_empty(), "an empty error");
    prop_assert!(!message.contains('\n'), "a multi-line error: {message:?}");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn callback_envelopes(bytes in body()) {
        match crate::callback::envelope::parse(&bytes) {
            Ok(event) => {
                prop_assert!(!event.job_id.is_empty() && !event.event_type.is_empty());
                prop_assert!(!event.event_time.as_deref().unwrap_or("").contains('\0'));
                prop_assert!(!event.status.as_stored().unwrap_or("").contains('\0'));
            }
            Err(e) => clear(&e.0)?,
        }
    }

    #[test]
    fn get_editing_project_bodies(bytes in body()) {
        use crate::ice::model::GetEditingProjectResponse;
        match serde_json::from_slice::<GetEditingProjectResponse>(&bytes) {
            Ok(parsed) => {
                if let Some(project) = parsed.project {
                    let _ = project.create_time.as_deref().map(crate::domain::Timestamp::parse);
                    let _ = project.modified_time.as_deref().map(crate::domain::Timestamp::parse);
                    let stored = crate::sync::diff::stored_form(project);
                    prop_assert!(!stored.title.as_deref().unwrap_or("").contains('\0'));
                    prop_assert!(!stored.status.as_deref().unwrap_or("").contains('\0'));
                }
            }
            Err(e) => clear(&e.to_string())?,
        }
    }

    #[test]
    fn list_editing_projects_bodies(bytes in body()) {
        use crate::ice::model::ListEditingProjectsResponse;
        match serde_json::from_slice::<ListEditingProjectsResponse>(&bytes) {
            Ok(parsed) => {
                for listed in parsed.project_list {
                    let _ = listed.modified_time.as_deref().map(crate::domain::Timestamp::parse);
                    if let Some(id) = &listed.project_id {
                        let _ = crate::domain::ProjectId::parse(id);
                    }
                }
            }
            Err(e) => clear(&e.to_string())?,
        }
    }

    #[test]
    fn refresh_bodies(bytes in body()) {
        use crate::storage::RefreshTarget;
        match crate::refresh::http::parse_target(&bytes) {
            Ok(RefreshTarget::Status(status)) => {
                prop_assert!(!status.trim().is_empty() && !status.contains('\0'));
            }
            Ok(RefreshTarget::Projects { ids, .. }) => prop_assert!(!ids.is_empty()),
            Ok(_) => {}
            Err(e) => {
                clear(&e)?;
                prop_assert!(e.contains("send {"), "no hint at the shape: {e}");
            }
        }
    }

    #[test]
    fn durations(text in prop_oneof![
        "[0-9]{1,30} ?(ns|us|ms|s|m|min|h|d|w|M|y|years)",
        "[0-9]{1,25}[a-z]{1,3}( [0-9]{1,25}[a-zA-Z]{1,3}){0,3}",
        "-?[0-9.]{0,10}[a-z]{0,4}",
        "\\PC{0,30}",
    ]) {
        let key = "sync.settled_interval";
        match crate::config::settings::parse_duration(key, &text) {
            Ok(d) => {
                prop_assert!(!d.is_zero());
                prop_assert!(d <= crate::config::bounds::duration_max(key));
                // What the scheduler and the databases do with it cannot overflow.
                prop_assert!(chrono::Duration::from_std(d).is_ok());
                prop_assert!(std::time::Instant::now().checked_add(d).is_some());
            }
            Err(e) => {
                let e = e.to_string();
                clear(&e)?;
                prop_assert!(e.contains(key), "{e}");
            }
        }
    }
}
