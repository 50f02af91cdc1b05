//! Staleness you can alert on: how long ago the least recently polled project was
//! polled, as a gauge refreshed at every scrape.
//!
//! `ice_sync_oldest_observation_age_seconds` has two series:
//! * `projects="unsettled"`: enabled projects the policy wants at every tick (a
//!   transient status, not failing). Healthy, it stays below one schedule period plus a
//!   cycle's duration; above two periods, polling is not keeping up (the daemon is
//!   stopped or stuck, cycles overrun, claims starve).
//! * `projects="all"`: every enabled project, settled and failing ones included, whose
//!   polls come every `sync.settled_interval` or on the error backoff.
//!
//! A poll counts when it finished, answered or failed (`tracked_projects.last_attempt_at`):
//! failures have their own metrics, and a project failing for a week would otherwise
//! keep a staleness alert firing for that week. A project never polled counts from when
//! it was tracked (`added_at`). No project in a set: the age is 0.
//!
//! The age is measured on the clock that stamped the polls: the database's on
//! PostgreSQL, the local one on SQLite. The read is two index probes (migration 0005),
//! so it is cheap enough for every scrape; a scrape whose read fails or takes longer
//! than [`READ_TIMEOUT`] keeps the previous values.

use std::time::Duration;

use crate::clock::SharedClock;
use crate::domain::Timestamp;
use crate::metric_names::OLDEST_OBSERVATION_AGE;
use crate::storage::{OldestObservations, Store};

/// A scrape waits this long for the database, at most.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Ages in seconds of the oldest observations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ages {
    pub unsettled: f64,
    pub all: f64,
}

/// How old the oldest observations are at `now`; pure. A time after `now` (a clock
/// that stepped back) is age 0, never negative.
pub fn ages(oldest: &OldestObservations, now: Timestamp) -> Ages {
    let age = |t: Option<Timestamp>| {
        t.map_or(0.0, |t| {
            ((now.as_datetime() - t.as_datetime()).num_milliseconds() as f64 / 1000.0).max(0.0)
        })
    };
    Ages {
        unsettled: age(oldest.every_tick),
        all: age(oldest.all()),
    }
}

/// Sets the gauges.
pub(crate) fn record(ages: Ages) {
    metrics::gauge!(OLDEST_OBSERVATION_AGE, "projects" => "unsettled").set(ages.unsettled);
    metrics::gauge!(OLDEST_OBSERVATION_AGE, "projects" => "all").set(ages.all);
}

/// Reads the oldest observations and sets the gauges.
#[derive(Debug, Clone)]
pub struct Staleness {
    store: Store,
    clock: SharedClock,
}

impl Staleness {
    /// `clock` is used where the local clock stamps the polls (SQLite).
    pub fn new(store: Store, clock: SharedClock) -> Self {
        Self { store, clock }
    }

    /// One read and the gauges set from it.
    pub async fn refresh(&self) -> anyhow::Result<Ages> {
        let oldest = self.store.reads().oldest_observations().await?;
        let now = match self.store.database_now().await? {
            Some(now) => now,
            None => Timestamp::from(self.clock.now()),
        };
        let ages = ages(&oldest, now);
        record(ages);
        Ok(ages)
    }

    /// [`Staleness::refresh`] within [`READ_TIMEOUT`], for a scrape: on failure the
    /// gauges keep their previous values.
    pub(crate) async fn refresh_for_scrape(&self) {
        match tokio::time::timeout(READ_TIMEOUT, self.refresh()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!("staleness gauges not refreshed: {e:#}"),
            Err(_) => tracing::debug!(
                "staleness gauges not refreshed: the database took over {READ_TIMEOUT:?}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> Timestamp {
        Timestamp::parse(text).expect("ts")
    }

    #[test]
    fn ages_follow_now_and_take_the_older_of_both_sets() {
        let oldest = OldestObservations {
            every_tick: Some(t("2030-01-01T10:00:00Z")),
            other: Some(t("2030-01-01T09:00:00Z")),
        };
        let a = ages(&oldest, t("2030-01-01T10:05:30.500Z"));
        assert_eq!((a.unsettled, a.all), (330.5, 3930.5));
        // The settled set may be the newer one, or empty.
        let only_unsettled = OldestObservations {
            every_tick: Some(t("2030-01-01T10:00:00Z")),
            other: None,
        };
        let a = ages(&only_unsettled, t("2030-01-01T10:01:00Z"));
        assert_eq!((a.unsettled, a.all), (60.0, 60.0));
    }

    #[test]
    fn no_projects_and_clocks_behind_are_age_zero() {
        let a = ages(&OldestObservations::default(), t("2030-01-01T10:00:00Z"));
        assert_eq!((a.unsettled, a.all), (0.0, 0.0));
        let ahead = OldestObservations {
            every_tick: Some(t("2030-01-01T10:00:10Z")),
            other: None,
        };
        assert_eq!(ages(&ahead, t("2030-01-01T10:00:00Z")).unsettled, 0.0);
    }
}
