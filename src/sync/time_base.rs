//! The clock a cycle stamps its writes with.
//!
//! On PostgreSQL that is the database server's clock, so replicas whose own clocks
//! disagree still write one timeline; on SQLite (one daemon per file) it is the local
//! clock. Reading the server's clock for every timestamp would cost a round trip each,
//! so a [`TimeBase`] pairs one reading of it with a monotonic instant and derives every
//! later time from the monotonic clock, which never steps. Cycles re-anchor at start.

use tokio::time::Instant;

use crate::domain::Timestamp;

#[derive(Debug, Clone, Copy)]
pub(crate) struct TimeBase {
    wall: Timestamp,
    at: Instant,
}

impl TimeBase {
    /// `wall` was true at `at`.
    pub(crate) fn new(wall: Timestamp, at: Instant) -> Self {
        Self { wall, at }
    }

    /// The deciding clock's time at `instant`.
    pub(crate) fn at(&self, instant: Instant) -> Timestamp {
        let delta = if instant >= self.at {
            chrono::Duration::from_std(instant - self.at).unwrap_or_default()
        } else {
            -chrono::Duration::from_std(self.at - instant).unwrap_or_default()
        };
        self.wall.shifted(delta)
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.at(Instant::now())
    }

    /// The monotonic instant at which the deciding clock reads `wall`.
    pub(crate) fn instant_of(&self, wall: Timestamp) -> Instant {
        let delta = wall.as_datetime() - self.wall.as_datetime();
        match delta.to_std() {
            Ok(ahead) => self.at + ahead,
            Err(_) => self
                .at
                .checked_sub((-delta).to_std().unwrap_or_default())
                .unwrap_or(self.at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn derives_times_from_the_monotonic_clock() {
        let wall = Timestamp::parse("2030-01-01T10:00:00Z").expect("ts");
        let base = TimeBase::new(wall, Instant::now());
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        assert_eq!(
            base.now(),
            Timestamp::parse("2030-01-01T10:00:01.5Z").expect("ts")
        );
        let later = Timestamp::parse("2030-01-01T10:00:05Z").expect("ts");
        assert_eq!(base.at(base.instant_of(later)), later);
    }
}
