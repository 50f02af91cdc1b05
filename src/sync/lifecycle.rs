//! The known lifecycle of an editing project, and the states a polled jump skipped.
//!
//! Polling sees only the states present at poll times, so `Editing -> Produced` means
//! the project went through `Producing` between two polls. This module names those
//! states (`editing_project_history.skipped_states`), from two small graphs of the
//! direct steps ICE documents or our simulator scripts:
//!
//! ```text
//! Status          Draft -> Editing -> Producing -> Produced | ProduceFailed
//!                 Draft -> Producing
//!                 Produced | ProduceFailed -> Editing | Producing   (edit, produce again)
//!                 any of them -> Deleted                           (terminal)
//! BusinessStatus  Reserving -> BroadCasting -> LiveFinished
//!                 Reserving -> ReservationCanceled
//! ```
//!
//! A state counts as skipped only if *every* path of the graph from the old value to
//! the new one passes through it; `Producing -> Editing`, which may have passed through
//! `Produced` or `ProduceFailed`, names neither. A jump with no path at all (going back
//! to `Draft`, leaving `Deleted`) and any value outside the graph (a new upstream value,
//! `LoadingFailed`, whose place in the live lifecycle no document gives) is not a gap:
//! what we do not know is never reported as missed.

/// Direct steps between `Status` values, in lifecycle order.
const STATUS: Graph = &[
    ("Draft", &["Editing", "Producing", "Deleted"]),
    ("Editing", &["Producing", "Deleted"]),
    ("Producing", &["Produced", "ProduceFailed", "Deleted"]),
    ("Produced", &["Editing", "Producing", "Deleted"]),
    ("ProduceFailed", &["Editing", "Producing", "Deleted"]),
    ("Deleted", &[]),
];

/// Direct steps between live projects' `BusinessStatus` values, in lifecycle order.
const BUSINESS: Graph = &[
    ("Reserving", &["BroadCasting", "ReservationCanceled"]),
    ("BroadCasting", &["LiveFinished"]),
    ("LiveFinished", &[]),
    ("ReservationCanceled", &[]),
];

type Graph = &'static [(&'static str, &'static [&'static str])];

/// The states a change of (`Status`, `BusinessStatus`) skipped, comma-separated in
/// lifecycle order (`Status` values first; the two sets of names are disjoint), or
/// `None` when it skipped nothing known. A `None` on either side of a pair (a first
/// observation, a return, a removal) skips nothing.
pub(crate) fn skipped_states(
    previous_status: Option<&str>,
    status: Option<&str>,
    previous_business_status: Option<&str>,
    business_status: Option<&str>,
) -> Option<String> {
    let mut skipped = skipped_in(STATUS, previous_status, status);
    skipped.extend(skipped_in(
        BUSINESS,
        previous_business_status,
        business_status,
    ));
    (!skipped.is_empty()).then(|| skipped.join(","))
}

/// Every state that all paths from `from` to `to` pass through.
fn skipped_in(graph: Graph, from: Option<&str>, to: Option<&str>) -> Vec<&'static str> {
    let (Some(from), Some(to)) = (from, to) else {
        return Vec::new();
    };
    let known = |s: &str| graph.iter().any(|(state, _)| *state == s);
    if from == to || !known(from) || !known(to) || !reachable(graph, from, to, None) {
        return Vec::new();
    }
    graph
        .iter()
        .map(|(state, _)| *state)
        .filter(|s| *s != from && *s != to && !reachable(graph, from, to, Some(s)))
        .collect()
}

/// Whether `to` can be reached from `from` without entering `avoiding`.
fn reachable(graph: Graph, from: &str, to: &str, avoiding: Option<&str>) -> bool {
    let mut seen: Vec<&str> = vec![from];
    let mut frontier: Vec<&str> = vec![from];
    while let Some(state) = frontier.pop() {
        let next = graph
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(&[][..], |(_, next)| *next);
        for &n in next {
            if n == to {
                return true;
            }
            if Some(n) != avoiding && !seen.contains(&n) {
                seen.push(n);
                frontier.push(n);
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(from: &str, to: &str) -> Option<String> {
        skipped_states(Some(from), Some(to), None, None)
    }

    fn live(from: &str, to: &str) -> Option<String> {
        skipped_states(Some("Editing"), Some("Editing"), Some(from), Some(to))
    }

    #[test]
    fn a_jump_over_a_state_names_it() {
        assert_eq!(status("Editing", "Produced").as_deref(), Some("Producing"));
        assert_eq!(
            status("Editing", "ProduceFailed").as_deref(),
            Some("Producing")
        );
        assert_eq!(status("Draft", "Produced").as_deref(), Some("Producing"));
        // A second production whose Producing fell between two polls.
        assert_eq!(
            status("Produced", "ProduceFailed").as_deref(),
            Some("Producing")
        );
        assert_eq!(
            status("ProduceFailed", "Produced").as_deref(),
            Some("Producing")
        );
        assert_eq!(
            live("Reserving", "LiveFinished").as_deref(),
            Some("BroadCasting")
        );
    }

    #[test]
    fn direct_neighbours_skip_nothing() {
        for (from, to) in [
            ("Draft", "Editing"),
            ("Draft", "Producing"),
            ("Editing", "Producing"),
            ("Producing", "Produced"),
            ("Producing", "ProduceFailed"),
            ("Produced", "Editing"),
            ("Produced", "Producing"),
            ("ProduceFailed", "Producing"),
            ("Editing", "Deleted"),
            ("Producing", "Deleted"),
        ] {
            assert_eq!(status(from, to), None, "{from} -> {to}");
        }
        for (from, to) in [
            ("Reserving", "BroadCasting"),
            ("BroadCasting", "LiveFinished"),
            ("Reserving", "ReservationCanceled"),
        ] {
            assert_eq!(live(from, to), None, "{from} -> {to}");
        }
    }

    #[test]
    fn ambiguous_or_impossible_jumps_skip_nothing() {
        // Produced or ProduceFailed: no state lies on every path.
        assert_eq!(status("Producing", "Editing"), None);
        // No path at all: the graph does not know how this happens.
        assert_eq!(status("Editing", "Draft"), None);
        assert_eq!(status("Deleted", "Editing"), None);
        assert_eq!(live("LiveFinished", "Reserving"), None);
        assert_eq!(live("BroadCasting", "ReservationCanceled"), None);
    }

    #[test]
    fn unknown_values_never_count_as_gaps() {
        assert_eq!(status("Normal", "Produced"), None);
        assert_eq!(status("Editing", "Archived"), None);
        assert_eq!(live("Reserving", "LoadingFailed"), None);
        assert_eq!(live("LoadingFailed", "LiveFinished"), None);
        assert_eq!(skipped_states(None, Some("Produced"), None, None), None);
        assert_eq!(skipped_states(Some("Editing"), None, None, None), None);
        assert_eq!(
            skipped_states(Some("Editing"), Some("Editing"), None, Some("LiveFinished")),
            None
        );
    }

    #[test]
    fn both_halves_of_a_pair_are_listed_status_first() {
        assert_eq!(
            skipped_states(
                Some("Editing"),
                Some("Produced"),
                Some("Reserving"),
                Some("LiveFinished")
            )
            .as_deref(),
            Some("Producing,BroadCasting")
        );
    }
}
