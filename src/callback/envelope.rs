//! The IMS event envelope (`EventType`, `UserId`, `EventTime`, `MessageBody`) and the
//! part of `ProduceMediaComplete`'s `MessageBody` ice-sync acts on: which project, which
//! job, and whether it succeeded.
//!
//! Pure parsing, tolerant where the documentation is vague: `UserId` is a number in the
//! samples but a string is accepted too, `Status` is compared case-insensitively and
//! anything but `Success` counts as a failure, unknown fields are ignored, and a
//! `MessageBody` that arrives as JSON text instead of an object is read all the same.
//! What the receiver needs to act — an event type, a `JobId` to dedupe on and a valid
//! `ProjectId` — is required; an event without them is refused with what is missing.

use serde::Deserialize;
use serde_json::Value;

use crate::domain::ProjectId;

/// The longest `EventType` and `JobId` kept (they are stored as the dedupe key).
const MAX_KEY_LEN: usize = 128;

/// How a production job ended, as the event says (a hint: the poll decides what is
/// written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JobStatus {
    Success,
    /// `Fail`, `Failed`, or anything else that is not `Success`, as sent.
    Failed(String),
    /// No `Status` in the body.
    Unknown,
}

impl JobStatus {
    /// What is stored in `callback_events.status`.
    pub(crate) fn as_stored(&self) -> Option<&str> {
        match self {
            JobStatus::Success => Some("Success"),
            JobStatus::Failed(s) => Some(s),
            JobStatus::Unknown => None,
        }
    }
}

/// An event that names a project and a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) event_type: String,
    pub(crate) user_id: Option<u64>,
    /// As sent (`yyyy-MM-ddTHH:mm:ssZ`); not interpreted: freshness is decided by the
    /// signed `X-ICE-TIMESTAMP`.
    pub(crate) event_time: Option<String>,
    pub(crate) job_id: String,
    pub(crate) project_id: ProjectId,
    pub(crate) status: JobStatus,
}

/// Why a body is not an event ice-sync can act on; the text says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct EnvelopeError(pub String);

#[derive(Deserialize)]
struct Wire {
    #[serde(rename = "EventType")]
    event_type: Option<String>,
    #[serde(rename = "UserId")]
    user_id: Option<Value>,
    #[serde(rename = "EventTime")]
    event_time: Option<String>,
    #[serde(rename = "MessageBody")]
    message_body: Option<Value>,
}

#[derive(Deserialize)]
struct Body {
    #[serde(rename = "Status")]
    status: Option<String>,
    #[serde(rename = "JobId")]
    job_id: Option<String>,
    #[serde(rename = "ProjectId")]
    project_id: Option<String>,
}

fn bad(message: impl Into<String>) -> EnvelopeError {
    EnvelopeError(message.into())
}

/// A dedupe-key field: present, short, visible ASCII.
fn key_field(name: &str, value: Option<String>) -> Result<String, EnvelopeError> {
    let value = value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad(format!("the event has no {name}")))?;
    if value.len() > MAX_KEY_LEN || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(format!(
            "{name} must be at most {MAX_KEY_LEN} visible ASCII characters"
        )));
    }
    Ok(value)
}

fn user_id(value: Option<Value>) -> Result<Option<u64>, EnvelopeError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| bad("UserId is not a non-negative integer")),
        Some(Value::String(s)) => s
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| bad("UserId is a string but not an account ID")),
        Some(_) => Err(bad("UserId must be a number or a string")),
    }
}

/// Parses a callback body.
pub(crate) fn parse(body: &[u8]) -> Result<Event, EnvelopeError> {
    let wire: Wire = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "the body is not an IMS event envelope in JSON ({e})"
        ))
    })?;
    let event_type = key_field("EventType", wire.event_type)?;
    let message_body = match wire.message_body {
        Some(Value::Object(map)) => Value::Object(map),
        // Some transports hand the body on as JSON text.
        Some(Value::String(text)) => serde_json::from_str::<Value>(&text)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| bad("MessageBody is a string that is not a JSON object"))?,
        Some(_) => return Err(bad("MessageBody must be a JSON object")),
        None => return Err(bad("the event has no MessageBody")),
    };
    let body: Body = serde_json::from_value(message_body)
        .map_err(|e| bad(format!("MessageBody has an unexpected shape ({e})")))?;
    let project_id = body
        .project_id
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| {
            bad(format!(
                "{event_type} has no MessageBody.ProjectId: only events about an editing project (ProduceMediaComplete) can trigger a poll"
            ))
        })?;
    let project_id =
        ProjectId::parse(&project_id).map_err(|e| bad(format!("MessageBody.ProjectId: {e}")))?;
    let job_id = key_field("MessageBody.JobId", body.job_id)?;
    // PostgreSQL `text` cannot hold U+0000: refused here (a 400), not failed at the
    // write (a 503, which ICE would retry for ever).
    for (name, value) in [
        ("EventTime", wire.event_time.as_deref()),
        ("MessageBody.Status", body.status.as_deref()),
    ] {
        if value.is_some_and(|v| v.contains('\0')) {
            return Err(bad(format!("{name} contains a NUL character (U+0000)")));
        }
    }
    let status = match body.status.as_deref().map(str::trim) {
        None | Some("") => JobStatus::Unknown,
        Some(s) if s.eq_ignore_ascii_case("success") => JobStatus::Success,
        Some(s) => JobStatus::Failed(s.chars().take(MAX_KEY_LEN).collect()),
    };
    Ok(Event {
        event_type,
        user_id: user_id(wire.user_id)?,
        event_time: wire.event_time,
        job_id,
        project_id,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The complete example of shared/reference/ice-callbacks.md, section 5.
    const SAMPLE: &str = r#"{
      "EventType": "ProduceMediaComplete",
      "UserId": 1234567890123456,
      "EventTime": "2024-06-10T06:13:20Z",
      "MessageBody": {
        "Status": "Success",
        "JobId": "a1b2c3d4e5f60718293a4b5c6d7e8f90",
        "ProjectId": "4f4bf84d0d8b4b7e9c2b8a6f0e1d2c3b",
        "MediaId": "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b",
        "MediaURL": "https://example-bucket.oss-cn-shanghai.aliyuncs.com/out/4f4bf84d.mp4",
        "ErrorCode": "",
        "ErrorMessage": "",
        "UserData": "{\"NotifyAddress\":\"https://ice-sync.example.com/ice/events\",\"tenant\":\"a\"}"
      }
    }"#;

    #[test]
    fn the_documented_sample_parses() {
        let e = parse(SAMPLE.as_bytes()).expect("sample");
        assert_eq!(e.event_type, "ProduceMediaComplete");
        assert_eq!(e.user_id, Some(1234567890123456));
        assert_eq!(e.event_time.as_deref(), Some("2024-06-10T06:13:20Z"));
        assert_eq!(e.job_id, "a1b2c3d4e5f60718293a4b5c6d7e8f90");
        assert_eq!(e.project_id.as_str(), "4f4bf84d0d8b4b7e9c2b8a6f0e1d2c3b");
        assert_eq!(e.status, JobStatus::Success);
    }

    fn with(replace: &str, by: &str) -> Result<Event, EnvelopeError> {
        assert!(SAMPLE.contains(replace), "{replace}");
        parse(SAMPLE.replace(replace, by).as_bytes())
    }

    #[test]
    fn tolerant_where_the_documentation_is_vague() {
        let e = with("1234567890123456", "\"1234567890123456\"").expect("string UserId");
        assert_eq!(e.user_id, Some(1234567890123456));
        assert_eq!(
            with("\"UserId\": 1234567890123456,", "")
                .expect("none")
                .user_id,
            None
        );
        for (sent, status) in [
            ("SUCCESS", JobStatus::Success),
            ("success", JobStatus::Success),
            ("Fail", JobStatus::Failed("Fail".into())),
            ("Failed", JobStatus::Failed("Failed".into())),
            ("", JobStatus::Unknown),
        ] {
            let e = with(
                "\"Status\": \"Success\"",
                &format!("\"Status\": \"{sent}\""),
            )
            .expect(sent);
            assert_eq!(e.status, status, "{sent}");
        }
        let as_text = serde_json::json!({
            "EventType": "ProduceMediaComplete",
            "MessageBody": "{\"JobId\":\"j1\",\"ProjectId\":\"p1\",\"Status\":\"Success\"}",
        });
        let e = parse(as_text.to_string().as_bytes()).expect("body as text");
        assert_eq!((e.job_id.as_str(), e.project_id.as_str()), ("j1", "p1"));
    }

    #[test]
    fn what_cannot_be_acted_on_is_refused_with_the_reason() {
        let cases: Vec<(Result<Event, EnvelopeError>, &str)> = vec![
            (parse(b"not json"), "not an IMS event envelope"),
            (parse(b"[1,2]"), "not an IMS event envelope"),
            (parse(b"{}"), "EventType"),
            (
                with("\"ProjectId\": \"4f4bf84d0d8b4b7e9c2b8a6f0e1d2c3b\",", ""),
                "ProjectId",
            ),
            (
                with("4f4bf84d0d8b4b7e9c2b8a6f0e1d2c3b", "not an id!"),
                "MessageBody.ProjectId",
            ),
            (
                with("\"JobId\": \"a1b2c3d4e5f60718293a4b5c6d7e8f90\",", ""),
                "JobId",
            ),
            (with("1234567890123456", "-5"), "UserId"),
            (with("1234567890123456", "true"), "UserId"),
            (
                parse(br#"{"EventType":"BatchProduceMediaComplete","MessageBody":{"Status":"Finished","JobId":"j"}}"#),
                "no MessageBody.ProjectId",
            ),
            (parse(br#"{"EventType":"X","MessageBody":7}"#), "MessageBody"),
            (parse(br#"{"EventType":"X"}"#), "MessageBody"),
        ];
        for (result, needle) in cases {
            let e = result.expect_err(needle);
            assert!(e.0.contains(needle), "{e} does not mention {needle}");
        }
    }
}
