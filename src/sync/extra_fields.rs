//! Noticing fields ICE sends that this build does not name: each new name is logged once
//! per process at info level (they are stored in `extra` whatever happens here), so an
//! operator learns that the API grew without a log line per poll.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

/// Names remembered per process: a stranger's API answers cannot grow the set (and the
/// log) without bound. Past it, new names are still stored, just not logged.
const MAX_NAMES: usize = 1024;

fn seen() -> &'static Mutex<HashSet<String>> {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    SEEN.get_or_init(Default::default)
}

/// Logs the names in `extra` not logged before for this `object` (`Project`,
/// `MediaProducingJob`).
pub(crate) fn note(object: &str, extra: &serde_json::Map<String, serde_json::Value>) {
    if extra.is_empty() {
        return;
    }
    let mut seen = seen().lock().unwrap_or_else(|p| p.into_inner());
    for name in extra.keys() {
        if seen.len() >= MAX_NAMES {
            return;
        }
        if seen.insert(format!("{object}.{name}")) {
            tracing::info!(
                object,
                field = name.as_str(),
                "ICE sent a field this version does not name: it is kept in the extra column"
            );
        }
    }
}
