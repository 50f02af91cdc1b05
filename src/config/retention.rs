//! `[retention]`: how long bookkeeping rows are kept before `ice-sync prune` (and the
//! daemon's hourly prune) deletes them. History and current rows have no setting here:
//! they are never pruned.
//!
//! Each key is a duration within [`MIN`]..=[`MAX`]; `retention.callback_events` must also
//! outlast a callback replay (four times `callback.max_skew`), since those rows are the
//! dedupe that refuses one.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::bounds::DAY;
use super::reload::{dur, Diff};
use super::settings::parse_duration;
use super::ConfigError;

/// The shortest retention accepted: a day, so a typo ("90s" for "90d") cannot empty the
/// tables that dashboards and `check` read.
pub(crate) const MIN: Duration = Duration::from_secs(24 * 3600);
/// The longest: ten years.
pub(crate) const MAX: Duration = Duration::from_secs(3650 * 24 * 3600);

/// What the file and the `ICE_SYNC__RETENTION__*` variables may say.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawRetention {
    pub(crate) sync_runs: String,
    pub(crate) list_sweeps: String,
    pub(crate) callback_events: String,
}

impl Default for RawRetention {
    fn default() -> Self {
        Self {
            sync_runs: "90d".into(),
            list_sweeps: "30d".into(),
            callback_events: "7d".into(),
        }
    }
}

/// Every `[retention]` key is at most ten years (`config::bounds`; [`MAX`] here).
pub(super) const DURATION_MAX: &[(&str, u64)] = &[("retention.", 3650 * DAY)];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetentionSettings {
    /// `sync_runs` rows that finished and started longer ago than this are pruned.
    pub(crate) sync_runs: Duration,
    /// Finished `list_sweeps` rows started longer ago (never the latest completed one).
    pub(crate) list_sweeps: Duration,
    /// `callback_events` rows received longer ago.
    pub(crate) callback_events: Duration,
}

impl RetentionSettings {
    /// The callback dedupe must outlast `callback.max_skew` (a replayed callback would be
    /// accepted again otherwise): the ranges see to it, at most an hour of skew against at
    /// least a day of retention (`config::bounds`).
    pub(crate) fn from_raw(raw: RawRetention) -> Result<Self, ConfigError> {
        let settings = Self {
            sync_runs: bounded("retention.sync_runs", &raw.sync_runs)?,
            list_sweeps: bounded("retention.list_sweeps", &raw.list_sweeps)?,
            callback_events: bounded("retention.callback_events", &raw.callback_events)?,
        };
        Ok(settings)
    }
}

/// A duration within [`MIN`]..=[`MAX`].
pub(crate) fn bounded(key: &str, value: &str) -> Result<Duration, ConfigError> {
    let d = parse_duration(key, value)?;
    if !(MIN..=MAX).contains(&d) {
        return Err(ConfigError::new(format!(
            "{key} = {value:?} is out of range: must be between 1d and 3650d"
        )));
    }
    Ok(d)
}

/// `[retention]` in a reload summary: all fixed (the daemon's prune reads the rules it
/// started with).
pub(super) fn changes(d: &mut Diff, a: &RetentionSettings, b: &RetentionSettings) {
    let RetentionSettings {
        sync_runs,
        list_sweeps,
        callback_events,
    } = a;
    let show_dur = |t: &Duration| dur(*t);
    d.value("retention.sync_runs", sync_runs, &b.sync_runs, show_dur);
    d.value(
        "retention.list_sweeps",
        list_sweeps,
        &b.list_sweeps,
        show_dur,
    );
    d.value(
        "retention.callback_events",
        callback_events,
        &b.callback_events,
        show_dur,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load::load_vars as load;

    const DAY: u64 = 24 * 3600;

    #[test]
    fn defaults_are_the_documented_ones() {
        let r = load(&[]).expect("defaults").retention;
        assert_eq!(r.sync_runs, Duration::from_secs(90 * DAY));
        assert_eq!(r.list_sweeps, Duration::from_secs(30 * DAY));
        assert_eq!(r.callback_events, Duration::from_secs(7 * DAY));
    }

    #[test]
    fn every_key_reaches_the_settings() {
        let r = load(&[
            ("ICE_SYNC__RETENTION__SYNC_RUNS", "400d"),
            ("ICE_SYNC__RETENTION__LIST_SWEEPS", "2d"),
            ("ICE_SYNC__RETENTION__CALLBACK_EVENTS", "1d"),
        ])
        .expect("settings")
        .retention;
        assert_eq!(
            (r.sync_runs, r.list_sweeps, r.callback_events),
            (
                Duration::from_secs(400 * DAY),
                Duration::from_secs(2 * DAY),
                Duration::from_secs(DAY)
            )
        );
    }

    #[test]
    fn out_of_range_values_name_the_key() {
        for (pairs, key) in [
            (
                vec![("ICE_SYNC__RETENTION__SYNC_RUNS", "90s")],
                "retention.sync_runs",
            ),
            (
                vec![("ICE_SYNC__RETENTION__LIST_SWEEPS", "3651d")],
                "retention.list_sweeps",
            ),
            (
                vec![("ICE_SYNC__RETENTION__CALLBACK_EVENTS", "never")],
                "retention.callback_events",
            ),
            (vec![("ICE_SYNC__RETENTION__HISTORY", "1d")], "history"),
        ] {
            let e = format!("{:#}", load(&pairs).expect_err(key));
            assert!(e.contains(key), "{key}: {e}");
        }
    }
}
