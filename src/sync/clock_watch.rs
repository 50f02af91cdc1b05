//! Noticing that the wall clock stepped (NTP, a VM restore, an operator's `date -s`).
//!
//! Between two looks, the wall clock should advance as much as the monotonic clock;
//! a difference beyond a small tolerance is a step. It is reported once, as a warning
//! with its size and in `ice_sync_clock_steps_total`, and the engine corrects what the
//! step would otherwise break (on SQLite, due times written on the old clock).

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// Differences smaller than this are drift or scheduling noise, not a step.
const TOLERANCE: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
pub(crate) struct ClockWatch {
    last: Mutex<Option<(DateTime<Utc>, Instant)>>,
}

impl ClockWatch {
    /// Records a reading; returns the step since the previous one, if the wall clock
    /// jumped (positive: forwards).
    pub(crate) fn observe(&self, wall: DateTime<Utc>, now: Instant) -> Option<chrono::Duration> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let previous = last.replace((wall, now));
        let (prev_wall, prev_instant) = previous?;
        let monotonic = chrono::Duration::from_std(now.duration_since(prev_instant)).ok()?;
        let step = (wall - prev_wall) - monotonic;
        let tolerance = chrono::Duration::from_std(TOLERANCE).ok()?;
        (step.abs() > tolerance).then_some(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sees_steps_both_ways_and_ignores_noise() {
        let watch = ClockWatch::default();
        let t0 = DateTime::from_timestamp(1_900_000_000, 0).expect("valid");
        assert_eq!(watch.observe(t0, Instant::now()), None);
        tokio::time::sleep(Duration::from_secs(5)).await;
        // Advanced as the monotonic clock did, within a second: no step.
        let t1 = t0 + chrono::Duration::milliseconds(5_800);
        assert_eq!(watch.observe(t1, Instant::now()), None);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let back = t1 + chrono::Duration::seconds(5) - chrono::Duration::minutes(10);
        assert_eq!(
            watch.observe(back, Instant::now()),
            Some(chrono::Duration::minutes(-10))
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        let ahead = back + chrono::Duration::seconds(91);
        assert_eq!(
            watch.observe(ahead, Instant::now()),
            Some(chrono::Duration::seconds(90))
        );
    }
}
