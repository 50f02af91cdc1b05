//! The documented range of every duration, size and count key, checked at load.
//!
//! One table, so the ranges are read (and documented) in one place, and so that no
//! later arithmetic (`Instant + d`, `chrono::Duration::from_std`, PostgreSQL intervals,
//! `concurrency × buffer`) can overflow or wrap on a value the operator typed: a value
//! outside its range is a load error naming the key (exit 2), never a panic later.
//! The ranges are generous for real use; they exist to refuse the absurd.

use std::time::Duration;

use super::raw::RawSettings;
use super::ConfigError;

const SECOND: u64 = 1;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// `(key, largest value in seconds)`. A key ending in `.` covers every key under it
/// (`sync.intervals.` is each status). Every duration must also be above zero.
const DURATION_MAX: &[(&str, u64)] = &[
    ("ice.timeout", HOUR),
    ("sync.shutdown_timeout", HOUR),
    ("sync.cycle_timeout", 7 * DAY),
    ("sync.settled_interval", 366 * DAY),
    ("sync.intervals.", 366 * DAY),
    ("sync.error_backoff_max", 30 * DAY),
    ("sync.lease_ttl", DAY),
    ("sync.full_refresh_interval", 366 * DAY),
    ("sync.list.created_within", 10 * 366 * DAY),
    ("callback.max_skew", HOUR),
    ("webhook.timeout", HOUR),
    ("webhook.max_backoff", DAY),
    ("webhook.max_pending_age", 365 * DAY),
    ("retention.", 3650 * DAY),
];

/// For a duration key not in [`DURATION_MAX`] (a key added later): one year.
const DEFAULT_DURATION_MAX: u64 = 366 * DAY;

/// The largest value of duration `key`.
pub(crate) fn duration_max(key: &str) -> Duration {
    let secs = DURATION_MAX
        .iter()
        .find(|(k, _)| {
            if k.ends_with('.') {
                key.starts_with(k)
            } else {
                key == *k
            }
        })
        .map_or(DEFAULT_DURATION_MAX, |(_, max)| *max);
    Duration::from_secs(secs)
}

/// The error of a duration above its range, in humantime's spelling.
pub(crate) fn check_duration(key: &str, value: &str, d: Duration) -> Result<(), ConfigError> {
    let max = duration_max(key);
    if d > max {
        return Err(ConfigError::new(format!(
            "{key} = {value:?} is longer than its limit of {}: use a value from 1s to {}",
            humantime::format_duration(max),
            humantime::format_duration(max)
        )));
    }
    Ok(())
}

/// A duration given on the command line (`refresh --wait`, `status --stale`, the
/// demo's options): the same spelling as the configuration, at most a year, so that
/// `Instant::now() + d` and date arithmetic cannot overflow.
pub fn parse_cli_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration ({e}); use e.g. \"30s\", \"5m\""))?;
    let max = Duration::from_secs(DEFAULT_DURATION_MAX);
    if d > max {
        return Err(format!(
            "{text:?} is longer than {}",
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}

/// One count or size key: `(key, value, smallest, largest)`.
struct Count {
    key: &'static str,
    value: u64,
    min: u64,
    max: u64,
}

/// Every count and size key with its range. Keys with a smaller minimum of their own
/// (checked with a more specific message in their section) list that minimum here too.
fn counts(raw: &RawSettings) -> [Count; 7] {
    let c = |key, value: u64, min, max| Count {
        key,
        value,
        min,
        max,
    };
    [
        c(
            "database.max_connections",
            raw.database.max_connections.into(),
            1,
            1_000,
        ),
        c(
            "ice.max_response_bytes",
            raw.ice.max_response_bytes,
            4096,
            1 << 30,
        ),
        c(
            "sync.concurrency",
            u64::try_from(raw.sync.concurrency).unwrap_or(u64::MAX),
            1,
            1_024,
        ),
        c("sync.max_qps", raw.sync.max_qps.into(), 0, 10_000),
        c("sync.max_retries", raw.sync.max_retries.into(), 0, 100),
        c(
            "sync.removal_confirmations",
            raw.sync.removal_confirmations.into(),
            1,
            1_000,
        ),
        c(
            "callback.max_body_bytes",
            u64::try_from(raw.callback.max_body_bytes).unwrap_or(u64::MAX),
            1024,
            16 << 20,
        ),
    ]
}

/// Checks the upper bound of every count and size key (the lower bounds are checked by
/// the sections, with messages that say why).
pub(crate) fn check_counts(raw: &RawSettings) -> Result<(), ConfigError> {
    for Count {
        key,
        value,
        min,
        max,
    } in counts(raw)
    {
        if value > max {
            return Err(ConfigError::new(format!(
                "{key} = {value} is above its limit: use a value from {min} to {max}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load::load_vars;

    fn refused(key: &str, value: &str) -> String {
        let var = format!("ICE_SYNC__{}", key.replace('.', "__").to_ascii_uppercase());
        let e = format!(
            "{:#}",
            load_vars(&[(&var, value)]).expect_err(&format!("{key} = {value}"))
        );
        assert!(e.contains(key), "{key} = {value} gave {e:?}");
        e
    }

    #[test]
    fn absurd_durations_are_refused_naming_the_key() {
        // Each once panicked, inverted its meaning, or failed every cycle later on.
        for (key, value) in [
            ("sync.cycle_timeout", "300000000000y"),
            ("sync.list.created_within", "1000000y"),
            ("sync.settled_interval", "1000000000y"),
            ("sync.error_backoff_max", "100y"),
            ("sync.lease_ttl", "1000y"),
            ("sync.full_refresh_interval", "2y"),
            ("sync.shutdown_timeout", "1000y"),
            ("callback.max_skew", "31y"),
            ("ice.timeout", "2h"),
            ("webhook.timeout", "1000y"),
            ("webhook.max_backoff", "1000y"),
        ] {
            let e = refused(key, value);
            assert!(e.contains("limit"), "{e}");
        }
        let e = format!(
            "{:#}",
            load_vars(&[("ICE_SYNC__SYNC__INTERVALS__Producing", "1000000000y")])
                .expect_err("huge interval")
        );
        assert!(e.contains("sync.intervals."), "{e}");
    }

    #[test]
    fn absurd_counts_are_refused_naming_the_key() {
        for (key, value) in [
            ("sync.concurrency", "2305843009213693952"),
            ("sync.concurrency", "1025"),
            ("database.max_connections", "100000"),
            ("sync.max_qps", "1000000"),
            ("sync.max_retries", "4000000000"),
            ("sync.removal_confirmations", "4000000000"),
            ("ice.max_response_bytes", "18446744073709551615"),
            ("callback.max_body_bytes", "18446744073709551615"),
        ] {
            refused(key, value);
        }
    }

    #[test]
    fn command_line_durations_are_bounded_too() {
        assert_eq!(parse_cli_duration("90s"), Ok(Duration::from_secs(90)));
        for bad in ["300000000000y", "2y", "soon"] {
            assert!(parse_cli_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_largest_value_of_each_range_loads() {
        let s = load_vars(&[
            ("ICE_SYNC__SYNC__CYCLE_TIMEOUT", "7days"),
            ("ICE_SYNC__SYNC__LEASE_TTL", "1day"),
            ("ICE_SYNC__SYNC__SETTLED_INTERVAL", "366days"),
            ("ICE_SYNC__SYNC__CONCURRENCY", "1024"),
            ("ICE_SYNC__CALLBACK__MAX_SKEW", "1h"),
        ])
        .expect("the limits themselves load");
        assert_eq!(s.sync.concurrency, 1024);
        assert_eq!(s.sync.lease_ttl, Duration::from_secs(DAY));
    }
}
