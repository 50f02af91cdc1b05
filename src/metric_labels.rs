//! Label values that come from outside, bounded. Every distinct label value is a series
//! the metrics registry keeps for the process's life, so a value taken from ICE's
//! answers (or from a proxy in front of it) must come from a bounded set, or `/metrics`
//! grows without end.

use std::collections::HashSet;
use std::sync::Mutex;

/// Distinct ICE error codes kept as label values; later new ones are `other`.
pub(crate) const MAX_ERROR_CODES: usize = 64;
/// The longest error code kept as a label value.
const MAX_CODE_LEN: usize = 64;

static SEEN_CODES: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// The `code` label of `ice_sync_api_requests_total`: ICE's error `Code` as sent when
/// it looks like one (at most 64 characters of letters, digits, `.`, `_`, `-`) and is
/// among the first [`MAX_ERROR_CODES`] distinct codes this process saw; else `other`.
pub(crate) fn error_code(code: &str) -> String {
    let plausible = !code.is_empty()
        && code.len() <= MAX_CODE_LEN
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !plausible {
        return "other".to_string();
    }
    let mut seen = SEEN_CODES.lock().unwrap_or_else(|p| p.into_inner());
    let seen = seen.get_or_insert_with(HashSet::new);
    if seen.contains(code) {
        return code.to_string();
    }
    if seen.len() < MAX_ERROR_CODES {
        seen.insert(code.to_string());
        return code.to_string();
    }
    "other".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_a_bounded_set() {
        assert_eq!(error_code("Throttling.User"), "Throttling.User");
        assert_eq!(error_code("bad code\n"), "other");
        assert_eq!(error_code(&"A".repeat(65)), "other");
        let labels: HashSet<String> = (0..500)
            .map(|i| error_code(&format!("Weird.Code{i}")))
            .collect();
        assert!(labels.len() <= MAX_ERROR_CODES + 1, "{}", labels.len());
        assert!(labels.contains("other"));
        // A code seen early keeps its own label.
        assert_eq!(error_code("Throttling.User"), "Throttling.User");
    }
}
