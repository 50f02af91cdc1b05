//! The diff's rules, one test each.

use super::*;
use crate::contract::{ClaimToken, Stored, StoredRow};
use crate::domain::ProjectId;

fn t(secs: i64) -> Timestamp {
    Timestamp::from(chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid"))
}

fn id() -> ProjectId {
    ProjectId::parse("p1").expect("valid")
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
        project_id: id(),
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
        claim: ClaimToken(7),
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
    let w = write(plan(
        &Stored::new(id()),
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
fn every_write_carries_the_claim_it_was_made_under() {
    let s = stored("Editing", None, 3, 1);
    let w = write(plan(&s, found(project("Producing", None, "x"), 2), 2));
    assert_eq!(w.claim, ClaimToken(7));
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
        w.history.is_none() && w.content_hash != s.row.and_then(|r| r.content_hash).unwrap_or(0)
    );
}

#[test]
fn a_nul_character_is_compared_in_its_stored_form() {
    // Stored as U+FFFD; the same answer again must be a touch, not a "change".
    let raw = project("Editing\0", None, "2024-05-20T08:00:00Z");
    let first = write(plan(&Stored::new(id()), found(raw.clone(), 1), 2));
    assert_eq!(first.columns.status.as_deref(), Some("Editing\u{FFFD}"));
    let mut s = stored("Editing\u{FFFD}", None, 1, 1);
    if let Some(r) = s.row.as_mut() {
        r.content_hash = Some(first.content_hash);
    }
    assert!(matches!(plan(&s, found(raw, 2), 2), Plan::Touch(_)));
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
fn an_answer_stamped_before_the_stored_one_is_kept_and_ordered_after_it() {
    // The clock that stamps observations stepped back: the answer is still good (its
    // claim is current), and its time is placed just after the stored one.
    let s = stored("Producing", None, 4, 10);
    let w = write(plan(&s, found(project("Produced", None, "x"), 9), 2));
    assert_eq!(
        w.polled_at,
        t(10).shifted(chrono::Duration::milliseconds(1))
    );
    assert_eq!(w.history.map(|h| h.seq), Some(5));
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
fn an_unconfirmed_not_found_keeps_the_count() {
    let mut s = stored("Produced", None, 4, 1);
    s.not_found_count = 1;
    assert!(matches!(
        not_found_unconfirmed(&s, t(2)),
        Plan::NotFoundPending {
            not_found_count: 1,
            ..
        }
    ));
}

#[test]
fn list_items_decide_what_to_fetch_and_never_go_backwards() {
    let s = stored("Editing", None, 2, 1);
    let item = |status: &str, modified: &str| ListedProject {
        project_id: Some("p1".into()),
        status: Some(status.into()),
        modified_time: Some(modified.into()),
        ..Default::default()
    };
    assert_eq!(
        plan_listed(&s, &item("Editing", "2024-05-20T08:00:00Z")),
        ListedVerdict::Same
    );
    // Only ModifiedTime moved (a title edit), or the status moved: fetch.
    assert_eq!(
        plan_listed(&s, &item("Editing", "2024-05-20T09:00:00Z")),
        ListedVerdict::Fetch
    );
    assert_eq!(
        plan_listed(&s, &item("Producing", "2024-05-20T09:00:00Z")),
        ListedVerdict::Fetch
    );
    // A page that lags what is stored (older ModifiedTime) changes nothing.
    assert_eq!(
        plan_listed(&s, &item("Draft", "2024-05-20T07:00:00Z")),
        ListedVerdict::Same
    );
    // Never seen: fetch it.
    assert_eq!(
        plan_listed(&Stored::new(id()), &item("Editing", "x")),
        ListedVerdict::Fetch
    );
}

#[test]
fn not_found_for_a_never_seen_project_only_counts() {
    let mut s = Stored::new(id());
    s.not_found_count = 5;
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
