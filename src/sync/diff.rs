//! The diff: what to write, given what is stored and what the API just said.
//!
//! A pure function with no I/O and no clock, so every rule of SPEC.md's "semantics
//! users rely on" is a unit test here: first observation, no-op re-polls, changes of
//! `Status` or `BusinessStatus`, stale answers, removal after repeated "not found",
//! and return. The storage layer executes the [`Plan`] in one transaction, guarded by
//! `expected_seq` so a plan made from an outdated read is refused, not half-applied.

use crate::domain::Timestamp;
use crate::ice::model::ListedProject;
use crate::ice::Project;

/// What is stored about one tracked project, as far as the diff cares.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stored {
    pub project_id: String,
    /// `None` if the project was never observed.
    pub row: Option<StoredRow>,
    /// Consecutive "does not exist" answers so far.
    pub not_found_count: i64,
    pub consecutive_failures: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredRow {
    pub status: Option<String>,
    pub business_status: Option<String>,
    pub modified_time: Option<Timestamp>,
    pub last_polled_at: Timestamp,
    pub removed_at: Option<Timestamp>,
    pub history_seq: i64,
    /// [`content_hash`] of the stored project; `None` for rows written before it existed.
    pub content_hash: Option<i64>,
}

/// What one poll saw.
#[derive(Debug, Clone)]
pub enum Observation {
    Found {
        project: Box<Project>,
        request_id: Option<String>,
        /// When the request was sent.
        polled_at: Timestamp,
    },
    /// The API says the project does not exist.
    NotFound {
        request_id: Option<String>,
        polled_at: Timestamp,
    },
}

/// One row for `editing_project_history`.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub seq: i64,
    pub event: HistoryEvent,
    pub previous_status: Option<String>,
    pub status: Option<String>,
    pub previous_business_status: Option<String>,
    pub business_status: Option<String>,
    pub modified_time: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryEvent {
    FirstSeen,
    Changed,
    Removed,
    Returned,
}

impl HistoryEvent {
    pub fn as_str(&self) -> &'static str {
        match self {
            HistoryEvent::FirstSeen => "first_seen",
            HistoryEvent::Changed => "changed",
            HistoryEvent::Removed => "removed",
            HistoryEvent::Returned => "returned",
        }
    }
}

/// The full current row to upsert into `editing_projects`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectWrite {
    pub project_id: String,
    pub project: Project,
    pub create_time: Option<Timestamp>,
    pub modified_time: Option<Timestamp>,
    pub polled_at: Timestamp,
    pub request_id: Option<String>,
    /// `true`: no row exists yet, insert one. `false`: update the row whose
    /// `history_seq` is still `expected_seq`.
    pub insert: bool,
    pub expected_seq: i64,
    /// Status pair or ModifiedTime changed: `last_changed_at` moves to `polled_at`.
    pub changed: bool,
    pub history: Option<HistoryEntry>,
    pub content_hash: i64,
}

/// Nothing the API returned differs from the stored row: only the poll is recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Touch {
    pub project_id: String,
    pub polled_at: Timestamp,
    pub request_id: Option<String>,
    pub expected_seq: i64,
}

/// A status change seen in a `ListEditingProjects` item. The item lacks Timeline,
/// Duration, TemplateId and ClipsParam, so only the fields it has are written; the
/// `GetEditingProject` that follows refreshes the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedWrite {
    pub project_id: String,
    pub item: ListedProject,
    pub create_time: Option<Timestamp>,
    pub modified_time: Option<Timestamp>,
    pub polled_at: Timestamp,
    pub request_id: Option<String>,
    pub insert: bool,
    pub expected_seq: i64,
    pub history: HistoryEntry,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// A status change from a list item (list mode).
    Listed(Box<ListedWrite>),
    /// A newer answer is already stored: write nothing.
    Stale,
    /// Unchanged: record the poll (batched by the engine).
    Touch(Touch),
    Write(Box<ProjectWrite>),
    /// "Not found", but not yet often enough to believe it (or nothing is stored to
    /// remove): only the tracking state changes.
    NotFoundPending {
        project_id: String,
        polled_at: Timestamp,
        not_found_count: i64,
    },
    MarkRemoved {
        project_id: String,
        polled_at: Timestamp,
        request_id: Option<String>,
        expected_seq: i64,
        history: HistoryEntry,
    },
}

impl Plan {
    /// History rows this plan appends.
    pub fn transitions(&self) -> u32 {
        match self {
            Plan::Write(w) if w.history.is_some() => 1,
            Plan::MarkRemoved { .. } | Plan::Listed(_) => 1,
            _ => 0,
        }
    }
}

/// What a list item says about a tracked project.
#[derive(Debug, Clone, PartialEq)]
pub enum ListedVerdict {
    /// Status pair and ModifiedTime as stored: nothing to fetch.
    Same,
    /// Something changed: fetch the full project. `Some(plan)` records a status change
    /// right away, from the item itself.
    Changed(Option<Plan>),
}

/// Compares a list item with the stored state (list mode's change detection).
pub fn plan_listed(
    stored: &Stored,
    item: &ListedProject,
    request_id: Option<String>,
    polled_at: Timestamp,
) -> ListedVerdict {
    let modified_time = item.modified_time.as_deref().and_then(Timestamp::parse);
    let create_time = item.create_time.as_deref().and_then(Timestamp::parse);
    let listed = |insert: bool, expected_seq: i64, event, previous: Option<&StoredRow>| {
        Plan::Listed(Box::new(ListedWrite {
            project_id: stored.project_id.clone(),
            item: item.clone(),
            create_time,
            modified_time,
            polled_at,
            request_id: request_id.clone(),
            insert,
            expected_seq,
            history: HistoryEntry {
                seq: expected_seq + 1,
                event,
                previous_status: previous.and_then(|r| r.status.clone()),
                status: item.status.clone(),
                previous_business_status: previous.and_then(|r| r.business_status.clone()),
                business_status: item.business_status.clone(),
                modified_time,
            },
        }))
    };
    match &stored.row {
        None => ListedVerdict::Changed(Some(listed(true, 0, HistoryEvent::FirstSeen, None))),
        // A removed project that lists again: its Get records the return.
        Some(r) if r.removed_at.is_some() => ListedVerdict::Changed(None),
        Some(r) if r.last_polled_at >= polled_at => ListedVerdict::Same,
        Some(r) if r.status != item.status || r.business_status != item.business_status => {
            ListedVerdict::Changed(Some(listed(
                false,
                r.history_seq,
                HistoryEvent::Changed,
                Some(r),
            )))
        }
        Some(r) if r.modified_time != modified_time => ListedVerdict::Changed(None),
        Some(_) => ListedVerdict::Same,
    }
}

/// A stable 64-bit fingerprint of everything the API returned for a project. SHA-256 of
/// the serialized fields (fixed order) rather than `std::hash`, whose output may change
/// between Rust releases and would make every stored hash look stale after an upgrade.
pub fn content_hash(project: &Project) -> i64 {
    use sha2::{Digest, Sha256};
    let bytes = serde_json::to_vec(project).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// Decides what to write. `removal_confirmations` is how many consecutive "not found"
/// answers mark a project removed.
pub fn plan(stored: &Stored, observation: Observation, removal_confirmations: u32) -> Plan {
    let row = stored.row.as_ref();
    let polled_at = match &observation {
        Observation::Found { polled_at, .. } | Observation::NotFound { polled_at, .. } => {
            *polled_at
        }
    };
    if row.is_some_and(|r| r.last_polled_at >= polled_at) {
        return Plan::Stale;
    }
    match observation {
        Observation::Found {
            project,
            request_id,
            polled_at,
        } => {
            let hash = content_hash(&project);
            if let Some(r) = row {
                if r.removed_at.is_none() && r.content_hash == Some(hash) {
                    return Plan::Touch(Touch {
                        project_id: stored.project_id.clone(),
                        polled_at,
                        request_id,
                        expected_seq: r.history_seq,
                    });
                }
            }
            let modified_time = project.modified_time.as_deref().and_then(Timestamp::parse);
            let create_time = project.create_time.as_deref().and_then(Timestamp::parse);
            let expected_seq = row.map_or(0, |r| r.history_seq);
            let entry = |event, previous: Option<&StoredRow>| HistoryEntry {
                seq: expected_seq + 1,
                event,
                previous_status: previous.and_then(|r| r.status.clone()),
                status: project.status.clone(),
                previous_business_status: previous.and_then(|r| r.business_status.clone()),
                business_status: project.business_status.clone(),
                modified_time,
            };
            let (history, changed) = match row {
                None => (Some(entry(HistoryEvent::FirstSeen, None)), true),
                Some(r) if r.removed_at.is_some() => {
                    (Some(entry(HistoryEvent::Returned, None)), true)
                }
                Some(r)
                    if r.status != project.status
                        || r.business_status != project.business_status =>
                {
                    (Some(entry(HistoryEvent::Changed, Some(r))), true)
                }
                Some(r) => (None, r.modified_time != modified_time),
            };
            Plan::Write(Box::new(ProjectWrite {
                project_id: stored.project_id.clone(),
                create_time,
                modified_time,
                polled_at,
                request_id,
                insert: row.is_none(),
                expected_seq,
                changed,
                history,
                content_hash: hash,
                project: *project,
            }))
        }
        Observation::NotFound {
            request_id,
            polled_at,
        } => {
            let count = stored.not_found_count + 1;
            match row {
                Some(r) if r.removed_at.is_none() && count >= i64::from(removal_confirmations) => {
                    Plan::MarkRemoved {
                        project_id: stored.project_id.clone(),
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
                        },
                    }
                }
                _ => Plan::NotFoundPending {
                    project_id: stored.project_id.clone(),
                    polled_at,
                    not_found_count: count,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from(chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid"))
    }

    fn project(status: &str, business: Option<&str>, modified: &str) -> Project {
        Project {
            project_id: Some("p1".into()),
            status: Some(status.into()),
            business_status: business.map(str::to_string),
            modified_time: Some(modified.into()),
            ..Default::default()
        }
    }

    fn found(p: Project, at: i64) -> Observation {
        Observation::Found {
            project: Box::new(p),
            request_id: Some("r".into()),
            polled_at: t(at),
        }
    }

    fn stored(status: &str, business: Option<&str>, seq: i64, polled: i64) -> Stored {
        Stored {
            project_id: "p1".into(),
            row: Some(StoredRow {
                status: Some(status.into()),
                business_status: business.map(str::to_string),
                modified_time: Timestamp::parse("2024-05-20T08:00:00Z"),
                last_polled_at: t(polled),
                removed_at: None,
                history_seq: seq,
                content_hash: None,
            }),
            not_found_count: 0,
            consecutive_failures: 0,
        }
    }

    fn write(plan: Plan) -> ProjectWrite {
        match plan {
            Plan::Write(w) => *w,
            other => panic!("expected a write, got {other:?}"),
        }
    }

    #[test]
    fn first_observation_is_a_history_row_without_previous() {
        let s = Stored {
            project_id: "p1".into(),
            ..Default::default()
        };
        let w = write(plan(
            &s,
            found(project("Draft", None, "2024-05-20T08:00:00Z"), 1),
            2,
        ));
        assert!(w.insert && w.changed);
        let h = w.history.expect("history");
        assert_eq!((h.seq, h.event), (1, HistoryEvent::FirstSeen));
        assert_eq!(h.previous_status, None);
        assert_eq!(h.status.as_deref(), Some("Draft"));
    }

    #[test]
    fn unchanged_pair_writes_no_history() {
        let s = stored("Editing", None, 3, 1);
        let w = write(plan(
            &s,
            found(project("Editing", None, "2024-05-20T08:00:00Z"), 2),
            2,
        ));
        assert!(!w.insert && !w.changed && w.history.is_none());
        assert_eq!(w.expected_seq, 3);
    }

    #[test]
    fn identical_answer_is_a_touch() {
        let p = project("Editing", None, "2024-05-20T08:00:00Z");
        let mut s = stored("Editing", None, 3, 1);
        if let Some(r) = s.row.as_mut() {
            r.content_hash = Some(content_hash(&p));
        }
        match plan(&s, found(p.clone(), 2), 2) {
            Plan::Touch(touch) => assert_eq!((touch.expected_seq, touch.polled_at), (3, t(2))),
            other => panic!("expected a touch, got {other:?}"),
        }
        // Any other field changing makes it a full write (without history).
        let mut retitled = p;
        retitled.title = Some("new title".into());
        let w = write(plan(&s, found(retitled, 2), 2));
        assert!(
            w.history.is_none()
                && w.content_hash != s.row.and_then(|r| r.content_hash).unwrap_or(0)
        );
    }

    #[test]
    fn modified_time_alone_moves_last_changed_but_adds_no_history() {
        let s = stored("Editing", None, 3, 1);
        let w = write(plan(
            &s,
            found(project("Editing", None, "2024-05-20T09:00:00Z"), 2),
            2,
        ));
        assert!(w.changed && w.history.is_none());
    }

    #[test]
    fn status_change_appends_the_next_seq() {
        let s = stored("Editing", None, 3, 1);
        let h = write(plan(
            &s,
            found(project("Producing", None, "2024-05-20T08:00:00Z"), 2),
            2,
        ))
        .history
        .expect("history");
        assert_eq!((h.seq, h.event), (4, HistoryEvent::Changed));
        assert_eq!(h.previous_status.as_deref(), Some("Editing"));
        assert_eq!(h.status.as_deref(), Some("Producing"));
    }

    #[test]
    fn business_status_only_change_on_a_live_project() {
        let s = stored("Editing", Some("Reserving"), 1, 1);
        let h = write(plan(
            &s,
            found(
                project("Editing", Some("BroadCasting"), "2024-05-20T08:00:00Z"),
                2,
            ),
            2,
        ))
        .history
        .expect("history");
        assert_eq!(h.previous_business_status.as_deref(), Some("Reserving"));
        assert_eq!(h.business_status.as_deref(), Some("BroadCasting"));
        assert_eq!(h.status, h.previous_status);
    }

    #[test]
    fn unknown_status_is_kept_verbatim() {
        let s = stored("Editing", None, 1, 1);
        let h = write(plan(&s, found(project("Archived-2031", None, "x"), 2), 2))
            .history
            .expect("history");
        assert_eq!(h.status.as_deref(), Some("Archived-2031"));
    }

    #[test]
    fn older_or_equal_answers_are_stale() {
        let s = stored("Produced", None, 4, 10);
        assert_eq!(
            plan(&s, found(project("Producing", None, "x"), 9), 2),
            Plan::Stale
        );
        assert_eq!(
            plan(&s, found(project("Producing", None, "x"), 10), 2),
            Plan::Stale
        );
        let nf = Observation::NotFound {
            request_id: None,
            polled_at: t(5),
        };
        assert_eq!(plan(&s, nf, 2), Plan::Stale);
    }

    #[test]
    fn removal_needs_confirmations_then_return_reopens() {
        let mut s = stored("Produced", None, 4, 1);
        let nf = |at| Observation::NotFound {
            request_id: Some("r".into()),
            polled_at: t(at),
        };
        assert!(matches!(
            plan(&s, nf(2), 2),
            Plan::NotFoundPending {
                not_found_count: 1,
                ..
            }
        ));
        s.not_found_count = 1;
        let removed = plan(&s, nf(3), 2);
        assert_eq!(removed.transitions(), 1);
        match removed {
            Plan::MarkRemoved {
                history,
                expected_seq,
                ..
            } => {
                assert_eq!((expected_seq, history.seq), (4, 5));
                assert_eq!(history.event, HistoryEvent::Removed);
                assert_eq!(history.previous_status.as_deref(), Some("Produced"));
                assert_eq!(history.status, None);
            }
            other => panic!("{other:?}"),
        }
        // Stored as removed: a later answer brings it back with a history row.
        if let Some(r) = s.row.as_mut() {
            r.removed_at = Some(t(3));
            r.history_seq = 5;
            r.last_polled_at = t(3);
        }
        let w = write(plan(&s, found(project("Produced", None, "x"), 4), 2));
        let h = w.history.expect("history");
        assert_eq!((h.seq, h.event), (6, HistoryEvent::Returned));
        assert_eq!(h.previous_status, None);
    }

    #[test]
    fn list_items_decide_what_to_fetch() {
        let s = stored("Editing", None, 2, 1);
        let item = |status: &str, modified: &str| ListedProject {
            project_id: Some("p1".into()),
            status: Some(status.into()),
            modified_time: Some(modified.into()),
            ..Default::default()
        };
        let same = item("Editing", "2024-05-20T08:00:00Z");
        assert_eq!(plan_listed(&s, &same, None, t(2)), ListedVerdict::Same);
        // Only ModifiedTime moved (a title edit): fetch, no history.
        let edited = item("Editing", "2024-05-20T09:00:00Z");
        assert_eq!(
            plan_listed(&s, &edited, None, t(2)),
            ListedVerdict::Changed(None)
        );
        // Status moved: recorded from the item at once, then fetched.
        match plan_listed(&s, &item("Producing", "2024-05-20T09:00:00Z"), None, t(2)) {
            ListedVerdict::Changed(Some(Plan::Listed(w))) => {
                assert_eq!((w.history.seq, w.expected_seq, w.insert), (3, 2, false));
                assert_eq!(w.history.previous_status.as_deref(), Some("Editing"));
                assert_eq!(w.history.status.as_deref(), Some("Producing"));
            }
            other => panic!("{other:?}"),
        }
        // An older list answer changes nothing.
        assert_eq!(
            plan_listed(&s, &item("Producing", "x"), None, t(1)),
            ListedVerdict::Same
        );
        // Never seen: a first_seen row from the item.
        let new = Stored {
            project_id: "p1".into(),
            ..Default::default()
        };
        assert!(matches!(
            plan_listed(&new, &same, None, t(2)),
            ListedVerdict::Changed(Some(Plan::Listed(w))) if w.insert && w.history.event == HistoryEvent::FirstSeen
        ));
    }

    #[test]
    fn not_found_for_a_never_seen_project_only_counts() {
        let s = Stored {
            project_id: "p1".into(),
            not_found_count: 5,
            ..Default::default()
        };
        let p = plan(
            &s,
            Observation::NotFound {
                request_id: None,
                polled_at: t(1),
            },
            2,
        );
        assert!(matches!(
            p,
            Plan::NotFoundPending {
                not_found_count: 6,
                ..
            }
        ));
        assert_eq!(p.transitions(), 0);
    }
}
