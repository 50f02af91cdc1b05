//! The diff: what to write, given what is stored and what the API just said.
//!
//! A pure function with no I/O and no clock, so every rule of SPEC.md's "semantics
//! users rely on" is a unit test here: first observation, no-op re-polls, changes of
//! `Status` or `BusinessStatus`, removal after repeated "not found", and return.
//!
//! Whether an answer is newer than what is stored is not decided here: only the holder
//! of a project's current claim can write it (storage fences every write on the claim
//! token), and a claim is handed out only after the previous one was released or
//! expired. What the diff does guard is the stored form: values are compared and hashed
//! exactly as they will be stored, and a project's observation times never run
//! backwards, whatever a clock did.

use crate::contract::{
    HistoryEntry, HistoryEvent, Plan, ProjectColumns, ProjectWrite, Stored, StoredRow, Touch,
};
use crate::domain::Timestamp;
use crate::ice::model::ListedProject;
use crate::ice::Project;

/// What one poll saw.
#[derive(Debug, Clone)]
pub enum Observation {
    Found {
        project: Box<Project>,
        request_id: Option<String>,
        /// When the request was sent, on the clock that decides (see `time_base`).
        polled_at: Timestamp,
    },
    /// The API says the project does not exist.
    NotFound {
        request_id: Option<String>,
        polled_at: Timestamp,
    },
}

impl Observation {
    pub(crate) fn polled_at(&self) -> Timestamp {
        match self {
            Observation::Found { polled_at, .. } | Observation::NotFound { polled_at, .. } => {
                *polled_at
            }
        }
    }
}

/// What a list item says about a tracked project (list mode's change detection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListedVerdict {
    /// Status pair and ModifiedTime as stored, or the item is older than what is
    /// stored: nothing to fetch.
    Same,
    /// Something changed: fetch the full project (its answer writes the history).
    Fetch,
}

/// Compares a list item with the stored state. A list item never writes history by
/// itself: a page may lag a `GetEditingProject` answer already stored, and recording
/// its status would write a transition backwards.
pub(crate) fn plan_listed(stored: &Stored, item: &ListedProject) -> ListedVerdict {
    let modified_time = item.modified_time.as_deref().and_then(Timestamp::parse);
    match &stored.row {
        None => ListedVerdict::Fetch,
        Some(r) if r.removed_at.is_some() => ListedVerdict::Fetch,
        // A lagging page: the stored answer is newer.
        Some(r) if matches!((modified_time, r.modified_time), (Some(i), Some(s)) if i < s) => {
            ListedVerdict::Same
        }
        Some(r)
            if r.status != storable(&item.status)
                || r.business_status != storable(&item.business_status)
                || r.modified_time != modified_time =>
        {
            ListedVerdict::Fetch
        }
        Some(_) => ListedVerdict::Same,
    }
}

/// A stable 64-bit fingerprint of everything the API returned for a project, in its
/// stored form. SHA-256 of the serialized fields (fixed order) rather than `std::hash`,
/// whose output may change between Rust releases and would make every stored hash look
/// stale after an upgrade.
pub(crate) fn content_hash(project: &Project) -> i64 {
    use sha2::{Digest, Sha256};
    use std::io::Write;
    /// The serialized bytes go straight into the hash: a 10 MB Timeline is not copied.
    struct Hashing(Sha256);
    impl Write for Hashing {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.update(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    // Buffered, because the serializer writes a JSON string in many small pieces.
    let mut writer = std::io::BufWriter::with_capacity(8 * 1024, Hashing(Sha256::new()));
    // Serializing these fields cannot fail, and writing into the hash never does.
    let _ = serde_json::to_writer(&mut writer, project);
    let _ = writer.flush();
    let digest = writer.into_parts().0 .0.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// PostgreSQL `text` cannot hold U+0000, which JSON can carry (`"\u0000"`). It becomes
/// U+FFFD on both backends, so they store the same value; every other character,
/// control characters included, is stored as sent.
pub(crate) fn storable(value: &Option<String>) -> Option<String> {
    value.as_ref().map(|v| {
        if v.contains('\0') {
            v.replace('\0', "\u{FFFD}")
        } else {
            v.clone()
        }
    })
}

/// [`storable`], keeping the value itself when there is nothing to replace (no copy).
fn into_storable(value: Option<String>) -> Option<String> {
    value.map(|v| {
        if v.contains('\0') {
            v.replace('\0', "\u{FFFD}")
        } else {
            v
        }
    })
}

/// The project as it will be stored: U+0000 replaced in every text field, so a project
/// carrying one compares equal to its stored self and is not rewritten at every poll.
pub(crate) fn stored_form(project: Project) -> Project {
    let s = into_storable;
    Project {
        project_id: s(project.project_id),
        title: s(project.title),
        description: s(project.description),
        timeline: s(project.timeline),
        cover_url: s(project.cover_url),
        create_time: s(project.create_time),
        modified_time: s(project.modified_time),
        project_type: s(project.project_type),
        create_source: s(project.create_source),
        modified_source: s(project.modified_source),
        template_type: s(project.template_type),
        timeline_convert_status: s(project.timeline_convert_status),
        timeline_convert_error_message: s(project.timeline_convert_error_message),
        duration: project.duration,
        status: s(project.status),
        business_status: s(project.business_status),
        business_config: s(project.business_config),
        template_id: s(project.template_id),
        clips_param: s(project.clips_param),
        extra: project.extra,
    }
}

fn columns(p: Project) -> ProjectColumns {
    ProjectColumns {
        create_time: p.create_time.as_deref().and_then(Timestamp::parse),
        modified_time: p.modified_time.as_deref().and_then(Timestamp::parse),
        title: p.title,
        description: p.description,
        status: p.status,
        business_status: p.business_status,
        project_type: p.project_type,
        template_id: p.template_id,
        template_type: p.template_type,
        clips_param: p.clips_param,
        timeline: p.timeline,
        cover_url: p.cover_url,
        create_source: p.create_source,
        modified_source: p.modified_source,
        business_config: p.business_config,
        timeline_convert_status: p.timeline_convert_status,
        timeline_convert_error_message: p.timeline_convert_error_message,
        duration: p.duration,
        extra: extra_text(&p.extra),
    }
}

/// `editing_projects.extra`: the unnamed fields as one JSON object, `None` when there are
/// none. U+0000 is replaced as in every other text column (see [`storable`]).
pub(crate) fn extra_text(extra: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    if extra.is_empty() {
        return None;
    }
    storable(&serde_json::to_string(extra).ok())
}

/// When an observation is recorded: when its request was sent, but never at or before
/// the project's previous observation, so durations in the history stay positive even
/// after the clock that stamps them stepped back.
fn observed_at(row: Option<&StoredRow>, polled_at: Timestamp) -> Timestamp {
    match row {
        Some(r) if polled_at <= r.last_polled_at => {
            r.last_polled_at.shifted(chrono::Duration::milliseconds(1))
        }
        _ => polled_at,
    }
}

/// Decides what to write. `removal_confirmations` is how many consecutive "not found"
/// answers mark a project removed.
pub fn plan(stored: &Stored, observation: Observation, removal_confirmations: u32) -> Plan {
    match observation {
        Observation::Found {
            project,
            request_id,
            polled_at,
        } => plan_found(stored, *project, request_id, polled_at),
        Observation::NotFound {
            request_id,
            polled_at,
        } => plan_not_found(stored, request_id, polled_at, removal_confirmations),
    }
}

/// The project was found: a touch if nothing stored changed, else a write (with a
/// history row if it is new, returned, or its status pair changed).
fn plan_found(
    stored: &Stored,
    project: Project,
    request_id: Option<String>,
    polled_at: Timestamp,
) -> Plan {
    let row = stored.row.as_ref();
    let claim = stored.claim;
    let polled_at = observed_at(row, polled_at);
    let project = stored_form(project);
    let hash = content_hash(&project);
    if let Some(r) = row {
        if r.removed_at.is_none() && r.content_hash == Some(hash) {
            return Plan::Touch(Touch {
                project_id: stored.project_id.clone(),
                claim,
                polled_at,
                request_id,
                expected_seq: r.history_seq,
            });
        }
    }
    let columns = columns(project);
    let expected_seq = row.map_or(0, |r| r.history_seq);
    let entry = |event, previous| history_entry(expected_seq + 1, event, previous, &columns);
    let (history, changed) = match row {
        None => (Some(entry(HistoryEvent::FirstSeen, None)), true),
        Some(r) if r.removed_at.is_some() => (Some(entry(HistoryEvent::Returned, None)), true),
        Some(r) if r.status != columns.status || r.business_status != columns.business_status => {
            (Some(entry(HistoryEvent::Changed, Some(r))), true)
        }
        Some(r) => (None, r.modified_time != columns.modified_time),
    };
    Plan::Write(Box::new(ProjectWrite {
        project_id: stored.project_id.clone(),
        claim,
        polled_at,
        request_id,
        insert: row.is_none(),
        expected_seq,
        changed,
        history,
        content_hash: hash,
        columns,
    }))
}

/// The history row that moves a project from `previous` (none: first seen, or
/// returned) to `columns`.
fn history_entry(
    seq: i64,
    event: HistoryEvent,
    previous: Option<&StoredRow>,
    columns: &ProjectColumns,
) -> HistoryEntry {
    HistoryEntry {
        seq,
        event,
        previous_status: previous.and_then(|r| r.status.clone()),
        status: columns.status.clone(),
        previous_business_status: previous.and_then(|r| r.business_status.clone()),
        business_status: columns.business_status.clone(),
        modified_time: columns.modified_time,
        skipped_states: previous.and_then(|r| {
            super::lifecycle::skipped_states(
                r.status.as_deref(),
                columns.status.as_deref(),
                r.business_status.as_deref(),
                columns.business_status.as_deref(),
            )
        }),
    }
}

/// The API says the project does not exist: counted, and once confirmed often enough
/// the project is marked removed.
fn plan_not_found(
    stored: &Stored,
    request_id: Option<String>,
    polled_at: Timestamp,
    removal_confirmations: u32,
) -> Plan {
    let polled_at = observed_at(stored.row.as_ref(), polled_at);
    let count = stored.not_found_count + 1;
    match &stored.row {
        Some(r) if r.removed_at.is_none() && count >= i64::from(removal_confirmations) => {
            Plan::MarkRemoved {
                project_id: stored.project_id.clone(),
                claim: stored.claim,
                polled_at,
                request_id,
                expected_seq: r.history_seq,
                history: HistoryEntry {
                    seq: r.history_seq + 1,
                    event: HistoryEvent::Removed,
                    previous_status: r.status.clone(),
                    status: None,
                    previous_business_status: r.business_status.clone(),
                    business_status: None,
                    modified_time: None,
                    skipped_states: None,
                },
            }
        }
        _ => Plan::NotFoundPending {
            project_id: stored.project_id.clone(),
            claim: stored.claim,
            polled_at,
            not_found_count: count,
        },
    }
}

/// A "not found" answer that is not counted as evidence (most of the cycle's projects
/// came back not found: an API change or a proxy is more likely than mass deletion).
pub(crate) fn not_found_unconfirmed(stored: &Stored, polled_at: Timestamp) -> Plan {
    Plan::NotFoundPending {
        project_id: stored.project_id.clone(),
        claim: stored.claim,
        polled_at: observed_at(stored.row.as_ref(), polled_at),
        not_found_count: stored.not_found_count,
    }
}

#[cfg(test)]
mod tests;
