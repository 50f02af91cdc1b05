//! What a callback can cost, bounded. ICE signs `url|timestamp|key`, not the body, so one
//! captured `(X-ICE-TIMESTAMP, X-ICE-SIGNATURE)` pair would otherwise carry any number of
//! invented bodies while the timestamp is fresh. Three bounds:
//!
//! - [`SignatureBodies`]: each fresh signature may carry at most
//!   [`MAX_BODIES_PER_SIGNATURE`] distinct bodies (genuine events sent in the same second
//!   share a signature, so one is not enough); the same body again is let through (an
//!   idempotent retry); a further distinct body is refused and queues nothing. Body
//!   hashes are remembered for `callback.max_skew` past their timestamp, in memory: the
//!   bound holds per replica and since the daemon started.
//! - [`TrackingBudget`]: `callback.track_unknown` adds at most [`TRACK_UNKNOWN_PER_HOUR`]
//!   projects an hour (a token bucket of that size, refilled evenly); past it an unknown
//!   project is refused, nothing is written, and `ice-sync track add` still works.
//! - [`capped`]: the free-text fields kept in `callback_events` (`Status`, `EventTime`)
//!   are cut to [`MAX_STORED_FIELD_CHARS`] characters.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// Distinct bodies one signature may carry.
pub const MAX_BODIES_PER_SIGNATURE: usize = 8;
/// Projects `callback.track_unknown` may add per hour.
pub const TRACK_UNKNOWN_PER_HOUR: u32 = 60;
/// The longest `Status` or `EventTime` stored (real ones are under 30).
pub const MAX_STORED_FIELD_CHARS: usize = 64;

/// What a signature may still carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyVerdict {
    /// This body came with this signature before.
    Repeat,
    /// A new body, within the bound.
    New,
    /// A new body past the bound: refuse it.
    Spent,
}

/// A signature as ICE sends it: `(X-ICE-TIMESTAMP, X-ICE-SIGNATURE)`.
type SignatureKey = (i64, String);
/// SHA-256 of one body.
type BodyHash = [u8; 32];

/// Body hashes per fresh `(timestamp, signature)`.
#[derive(Debug)]
pub(crate) struct SignatureBodies {
    max_skew: Duration,
    seen: Mutex<HashMap<SignatureKey, Vec<BodyHash>>>,
}

impl SignatureBodies {
    pub(crate) fn new(max_skew: Duration) -> SignatureBodies {
        SignatureBodies {
            max_skew,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records `body` under an authenticated `(timestamp, signature)` at `now` (Unix
    /// seconds), and forgets signatures that can no longer pass the freshness check.
    /// Only authenticated requests get here, so the map holds at most (accepted keys) x
    /// (2 x max_skew in seconds) signatures of at most 8 hashes each.
    pub(crate) fn admit(
        &self,
        timestamp: i64,
        signature: &str,
        body: &[u8],
        now: i64,
    ) -> BodyVerdict {
        let hash: [u8; 32] = Sha256::digest(body).into();
        let horizon = i64::try_from(self.max_skew.as_secs()).unwrap_or(i64::MAX);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|(ts, _), _| now.saturating_sub(*ts) <= horizon);
        let bodies = seen
            .entry((timestamp, signature.to_ascii_lowercase()))
            .or_default();
        if bodies.contains(&hash) {
            BodyVerdict::Repeat
        } else if bodies.len() >= MAX_BODIES_PER_SIGNATURE {
            BodyVerdict::Spent
        } else {
            bodies.push(hash);
            BodyVerdict::New
        }
    }
}

/// A token bucket of [`TRACK_UNKNOWN_PER_HOUR`], on the receiver's injected clock.
#[derive(Debug)]
pub(crate) struct TrackingBudget {
    state: Mutex<Option<(f64, DateTime<Utc>)>>,
}

impl Default for TrackingBudget {
    fn default() -> Self {
        TrackingBudget {
            state: Mutex::new(None),
        }
    }
}

impl TrackingBudget {
    /// Takes one project from the budget, if any is left at `now`.
    pub(crate) fn take(&self, now: DateTime<Utc>) -> bool {
        let capacity = f64::from(TRACK_UNKNOWN_PER_HOUR);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = state.unwrap_or((capacity, now));
        let elapsed = (now - last).num_milliseconds().max(0) as f64 / 1000.0;
        let tokens = (tokens + elapsed * capacity / 3600.0).min(capacity);
        if tokens >= 1.0 {
            *state = Some((tokens - 1.0, now));
            true
        } else {
            *state = Some((tokens, now));
            false
        }
    }
}

/// `value` cut to [`MAX_STORED_FIELD_CHARS`] characters.
pub(crate) fn capped(value: Option<String>) -> Option<String> {
    value.map(|v| match v.char_indices().nth(MAX_STORED_FIELD_CHARS) {
        Some((cut, _)) => v[..cut].to_string(),
        None => v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_carries_a_few_bodies_and_repeats() {
        let bodies = SignatureBodies::new(Duration::from_secs(300));
        for i in 0..MAX_BODIES_PER_SIGNATURE {
            let body = format!("body {i}");
            assert_eq!(
                bodies.admit(1000, "AB", body.as_bytes(), 1000),
                BodyVerdict::New
            );
        }
        assert_eq!(
            bodies.admit(1000, "ab", b"body 0", 1001),
            BodyVerdict::Repeat
        );
        assert_eq!(
            bodies.admit(1000, "ab", b"another", 1001),
            BodyVerdict::Spent
        );
        // Another second is another signature.
        assert_eq!(bodies.admit(1001, "cd", b"another", 1001), BodyVerdict::New);
        // Forgotten once stale (it could not pass authentication any more anyway).
        bodies.admit(2000, "ef", b"x", 2000);
        assert_eq!(bodies.seen.lock().unwrap().len(), 1);
    }

    #[test]
    fn tracking_refills_evenly() {
        let budget = TrackingBudget::default();
        let t0 = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        let taken = (0..100).filter(|_| budget.take(t0)).count();
        assert_eq!(taken, TRACK_UNKNOWN_PER_HOUR as usize);
        assert!(budget.take(t0 + chrono::Duration::seconds(60)));
        assert!(!budget.take(t0 + chrono::Duration::seconds(61)));
    }

    #[test]
    fn stored_fields_are_cut_on_a_character_boundary() {
        let long = "é".repeat(100);
        assert_eq!(
            capped(Some(long)).unwrap().chars().count(),
            MAX_STORED_FIELD_CHARS
        );
        assert_eq!(capped(Some("Success".into())).as_deref(), Some("Success"));
    }
}
