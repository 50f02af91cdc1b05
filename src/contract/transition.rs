//! The change feed's payload: one committed history row as a small JSON object, the
//! same bytes in PostgreSQL's `NOTIFY ice_sync_transition` and in the webhook's body.
//!
//! Storage builds it inside the write transaction (so the announcement and the row
//! commit together); the deliverer (`feed`) sends the stored text as it is, because the
//! signature covers those exact bytes. The project's columns (timeline and all) are not
//! in it: a consumer that wants them reads `editing_projects`.

use serde::{Deserialize, Serialize};

use super::plan::HistoryEntry;
use crate::domain::{ProjectId, Timestamp};

/// PostgreSQL refuses a `NOTIFY` payload of 8000 bytes or more (and the whole write
/// transaction with it); a payload above this is sent without its status strings.
pub const MAX_PAYLOAD_BYTES: usize = 7000;

/// What a consumer of the feed receives for one history row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub project_id: String,
    /// The row's `seq`: 1, 2, 3... per project, in order. With `project_id` it is the
    /// webhook's idempotency key.
    pub seq: i64,
    /// `first_seen`, `changed`, `removed` or `returned`.
    pub event: String,
    pub previous_status: Option<String>,
    pub previous_business_status: Option<String>,
    pub status: Option<String>,
    pub business_status: Option<String>,
    /// RFC 3339, UTC, milliseconds: the row's `observed_at`.
    pub observed_at: String,
    /// As the column: comma-separated lifecycle states jumped over, or null.
    pub skipped_states: Option<String>,
    /// Present (true) only when the status strings were too long to announce and were
    /// left out; read the row itself.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl Transition {
    pub(crate) fn new(project_id: &ProjectId, observed_at: Timestamp, h: &HistoryEntry) -> Self {
        Self {
            project_id: project_id.as_str().to_string(),
            seq: h.seq,
            event: h.event.as_str().to_string(),
            previous_status: h.previous_status.clone(),
            previous_business_status: h.previous_business_status.clone(),
            status: h.status.clone(),
            business_status: h.business_status.clone(),
            observed_at: observed_at.to_text(),
            skipped_states: h.skipped_states.clone(),
            truncated: false,
        }
    }

    /// `project_id:seq`, the webhook's `Idempotency-Key`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.project_id, self.seq)
    }

    /// The JSON text announced and sent, under [`MAX_PAYLOAD_BYTES`] whatever the
    /// values (statuses are stored verbatim, so an absurd one must not block the write).
    pub(crate) fn payload(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        if text.len() <= MAX_PAYLOAD_BYTES {
            return text;
        }
        let short = Transition {
            previous_status: None,
            previous_business_status: None,
            status: None,
            business_status: None,
            skipped_states: None,
            truncated: true,
            ..self.clone()
        };
        serde_json::to_string(&short).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::HistoryEvent;

    fn entry(status: &str) -> HistoryEntry {
        HistoryEntry {
            seq: 3,
            event: HistoryEvent::Changed,
            previous_status: Some("Editing".into()),
            status: Some(status.into()),
            previous_business_status: None,
            business_status: None,
            modified_time: None,
            skipped_states: Some("Producing".into()),
        }
    }

    #[test]
    fn payload_is_small_json_with_every_field() {
        let id = ProjectId::parse("p1").expect("id");
        let at = Timestamp::parse("2030-01-02T03:04:05.678Z").expect("ts");
        let t = Transition::new(&id, at, &entry("Produced"));
        let payload = t.payload();
        let v: serde_json::Value = serde_json::from_str(&payload).expect("json");
        assert_eq!(
            v,
            serde_json::json!({
                "project_id": "p1", "seq": 3, "event": "changed",
                "previous_status": "Editing", "previous_business_status": null,
                "status": "Produced", "business_status": null,
                "observed_at": "2030-01-02T03:04:05.678Z", "skipped_states": "Producing"
            })
        );
        assert_eq!(t.key(), "p1:3");
        let back: Transition = serde_json::from_str(&payload).expect("parses back");
        assert_eq!(back, t);
    }

    #[test]
    fn an_absurd_status_cannot_push_the_payload_over_the_notify_limit() {
        let id = ProjectId::parse("p1").expect("id");
        let at = Timestamp::parse("2030-01-02T03:04:05Z").expect("ts");
        let t = Transition::new(&id, at, &entry(&"X".repeat(20_000)));
        let payload = t.payload();
        assert!(payload.len() <= MAX_PAYLOAD_BYTES, "{}", payload.len());
        let back: Transition = serde_json::from_str(&payload).expect("json");
        assert!(back.truncated && back.status.is_none());
        assert_eq!((back.seq, back.key()), (3, "p1:3".to_string()));
    }
}
