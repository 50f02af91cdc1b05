//! The range of every duration, size and count key, checked at load.
//!
//! Each section's file lists its own ranges next to its keys (`DURATION_MAX` and
//! `counts` in `config::sync`, `config::ice`, ...); this file gathers them and checks
//! them, so that no later arithmetic (`Instant + d`, `chrono::Duration::from_std`,
//! PostgreSQL intervals, `concurrency × buffer`) can overflow or wrap on a value the
//! operator typed: a value outside its range is a load error naming the key (exit 2),
//! never a panic later. The ranges are generous for real use; they exist to refuse the
//! absurd.

use std::time::Duration;

use super::raw::RawSettings;
use super::ConfigError;

pub(super) const SECOND: u64 = 1;
pub(super) const MINUTE: u64 = 60 * SECOND;
pub(super) const HOUR: u64 = 60 * MINUTE;
pub(super) const DAY: u64 = 24 * HOUR;

/// `(key, largest value in seconds)` of every section. A key ending in `.` covers every
/// key under it (`sync.intervals.` is each status). Every duration must also be above
/// zero.
const DURATION_MAX: &[&[(&str, u64)]] = &[
    super::ice::DURATION_MAX,
    super::sync::DURATION_MAX,
    super::callback::DURATION_MAX,
    super::webhook::DURATION_MAX,
    super::retention::DURATION_MAX,
];

/// For a duration key not in [`DURATION_MAX`] (a key added later): one year.
const DEFAULT_DURATION_MAX: u64 = 366 * DAY;

/// The largest value of duration `key`.
pub(crate) fn duration_max(key: &str) -> Duration {
    let secs = DURATION_MAX
        .iter()
        .flat_map(|section| section.iter())
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
pub(crate) fn parse_cli_duration(text: &str) -> Result<Duration, String> {
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
pub(super) struct Count {
    key: &'static str,
    value: u64,
    min: u64,
    max: u64,
}

impl Count {
    pub(super) fn new(key: &'static str, value: u64, min: u64, max: u64) -> Self {
        Self {
            key,
            value,
            min,
            max,
        }
    }
}

/// Every count and size key with its range, section by section. Keys with a smaller
/// minimum of their own (checked with a more specific message in their section) list
/// that minimum here too.
fn counts(raw: &RawSettings) -> Vec<Count> {
    let mut all = super::database::counts(&raw.database);
    all.extend(super::ice::counts(&raw.ice));
    all.extend(super::sync::counts(&raw.sync));
    all.extend(super::callback::counts(&raw.callback));
    all
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
