//! Time, injected: every time-dependent decision (ticks, due times, leases, backoff,
//! clock-step detection) reads the wall clock through a [`Clock`], and measures elapsed
//! time with tokio's monotonic [`tokio::time::Instant`], so tests can pause, skew and
//! step time instead of sleeping.
//!
//! The wall clock may step (NTP corrections, VM restores); the monotonic one never does.
//! Where both matter, `sync::time_base` anchors one to the other.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// What production uses: the system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Shared handle to a clock.
pub type SharedClock = Arc<dyn Clock>;

/// The system clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock for tests: starts at a chosen instant, advances with tokio's (pausable)
/// monotonic time, and can be skewed or stepped at will.
#[derive(Debug)]
pub struct TestClock {
    origin: DateTime<Utc>,
    started: tokio::time::Instant,
    offset_ms: AtomicI64,
}

impl TestClock {
    pub fn starting_at(origin: DateTime<Utc>) -> Arc<Self> {
        Arc::new(Self {
            origin,
            started: tokio::time::Instant::now(),
            offset_ms: AtomicI64::new(0),
        })
    }

    /// Steps the clock by `delta` (negative: backwards), as NTP or a VM restore would.
    pub fn step(&self, delta: chrono::Duration) {
        self.offset_ms
            .fetch_add(delta.num_milliseconds(), Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(self.started.elapsed()).unwrap_or_default();
        let offset = chrono::Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst));
        self.origin + elapsed + offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn test_clock_follows_paused_time_and_steps() {
        let origin = DateTime::from_timestamp(1_900_000_000, 0).expect("valid");
        let clock = TestClock::starting_at(origin);
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        assert_eq!(clock.now(), origin + chrono::Duration::seconds(5));
        clock.step(chrono::Duration::minutes(-10));
        assert_eq!(clock.now(), origin + chrono::Duration::seconds(5 - 600));
    }
}
