//! How far the running cycle has got: a few atomics the cycle bumps and anyone may read
//! ([`CycleProgress::snapshot`]), plus the pure rate and ETA arithmetic.
//!
//! The engine owns one [`CycleProgress`] ([`Engine::progress`]); renderers (the terminal
//! bar, the periodic log line, systemd's status text: `ops::progress`) poll it. It knows
//! nothing about cycles beyond "begun with about this many projects, one more polled,
//! ended", so other long jobs (a future `refresh --all`) can report through it too.
//!
//! The total is an estimate taken when polling starts: one `count(*)` with the claim's
//! predicate. It costs a statement, so it is taken only while someone watches
//! ([`CycleProgress::watch`]); unwatched cycles (tests, benchmarks) run exactly as before.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::contract::ClaimScope;
use crate::domain::Timestamp;

use super::engine::Engine;

/// `total` when nobody counted (or the count failed).
const UNKNOWN: u64 = u64::MAX;

/// The progress of the latest cycle, updated while it runs.
#[derive(Debug)]
pub(crate) struct CycleProgress {
    /// What `*_ns` fields are measured from (monotonic).
    origin: Instant,
    watchers: AtomicUsize,
    /// Cycles begun so far; 0 before the first.
    generation: AtomicU64,
    running: AtomicBool,
    total: AtomicU64,
    polled: AtomicU64,
    started_ns: AtomicU64,
    ended_ns: AtomicU64,
}

impl Default for CycleProgress {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            watchers: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            running: AtomicBool::new(false),
            total: AtomicU64::new(UNKNOWN),
            polled: AtomicU64::new(0),
            started_ns: AtomicU64::new(0),
            ended_ns: AtomicU64::new(0),
        }
    }
}

/// What a renderer reads: the latest cycle's counts and timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProgressSnapshot {
    /// Which cycle this is (1 for the first); 0 means none has begun.
    pub(crate) generation: u64,
    pub(crate) running: bool,
    /// The estimated number of projects this cycle polls; `None` if not counted. Never
    /// below `polled`.
    pub(crate) total: Option<u64>,
    pub(crate) polled: u64,
    /// Since polling began; frozen once the cycle ended.
    pub(crate) elapsed: Duration,
}

impl ProgressSnapshot {
    /// Projects per second so far.
    pub(crate) fn rate(&self) -> f64 {
        rate(self.polled, self.elapsed)
    }

    /// Whole percent done (floored, so 100 means finished), if the total is known.
    pub(crate) fn percent(&self) -> Option<u64> {
        let total = self.total?;
        Some(
            (self.polled.min(total) * 100)
                .checked_div(total)
                .unwrap_or(100),
        )
    }

    /// Time left at the rate so far, if there is a total and a rate.
    pub(crate) fn eta(&self) -> Option<Duration> {
        eta(self.polled, self.total?, self.elapsed)
    }
}

/// `polled` over `elapsed`, in projects per second (0 before any time has passed).
pub(crate) fn rate(polled: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        0.0
    } else {
        polled as f64 / secs
    }
}

/// How long the rest of `total` takes at the average rate so far: `None` until something
/// was polled; zero once `polled` reaches `total`.
pub(crate) fn eta(polled: u64, total: u64, elapsed: Duration) -> Option<Duration> {
    let remaining = total.saturating_sub(polled);
    if remaining == 0 {
        return Some(Duration::ZERO);
    }
    let per_second = rate(polled, elapsed);
    if per_second <= 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(remaining as f64 / per_second).ok()
}

/// Keeps [`CycleProgress::watched`] true while alive.
#[derive(Debug)]
pub(crate) struct Watch(Arc<CycleProgress>);

impl Drop for Watch {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Marks the cycle ended when dropped, however the cycle ends (returned, or its task
/// aborted at shutdown).
#[derive(Debug)]
pub(crate) struct Running<'a>(&'a CycleProgress);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let p = self.0;
        p.ended_ns.store(p.ns_at(Instant::now()), Ordering::SeqCst);
        p.running.store(false, Ordering::SeqCst);
    }
}

impl CycleProgress {
    fn ns_at(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin)
            .as_nanos()
            .min(u64::MAX as u128) as u64
    }

    /// Says someone shows progress, so cycles count their total, until the guard drops.
    pub(crate) fn watch(self: &Arc<Self>) -> Watch {
        self.watchers.fetch_add(1, Ordering::SeqCst);
        Watch(self.clone())
    }

    pub(crate) fn watched(&self) -> bool {
        self.watchers.load(Ordering::SeqCst) > 0
    }

    /// A cycle (or another long job) starts polling about `total` projects.
    pub(crate) fn begin(&self, total: Option<u64>) -> Running<'_> {
        self.begin_at(total, Instant::now())
    }

    fn begin_at(&self, total: Option<u64>, at: Instant) -> Running<'_> {
        self.total.store(total.unwrap_or(UNKNOWN), Ordering::SeqCst);
        self.polled.store(0, Ordering::SeqCst);
        self.started_ns.store(self.ns_at(at), Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.running.store(true, Ordering::SeqCst);
        Running(self)
    }

    /// One more project polled (whatever came of it).
    pub(crate) fn polled_one(&self) {
        self.polled.fetch_add(1, Ordering::Relaxed);
    }

    /// The latest cycle's state; counts read while a new cycle begins may mix the two,
    /// which a display shrugs off at its next read.
    pub(crate) fn snapshot(&self) -> ProgressSnapshot {
        self.snapshot_at(Instant::now())
    }

    fn snapshot_at(&self, now: Instant) -> ProgressSnapshot {
        let running = self.running.load(Ordering::SeqCst);
        let generation = self.generation.load(Ordering::SeqCst);
        let polled = self.polled.load(Ordering::Relaxed);
        let total = match self.total.load(Ordering::SeqCst) {
            UNKNOWN => None,
            // Projects that became due meanwhile can push the count past the estimate.
            n => Some(n.max(polled)),
        };
        let started = self.started_ns.load(Ordering::SeqCst);
        let until = if running {
            self.ns_at(now)
        } else {
            self.ended_ns.load(Ordering::SeqCst)
        };
        ProgressSnapshot {
            generation,
            running,
            total,
            polled,
            elapsed: Duration::from_nanos(until.saturating_sub(started)),
        }
    }
}

impl Engine {
    /// The progress of this engine's cycles, for renderers.
    pub(crate) fn progress(&self) -> &Arc<CycleProgress> {
        &self.progress
    }

    /// Begins the progress of a cycle about to claim `scope`, with a total counted at
    /// `now` if anyone watches. A failed count only costs the percentage.
    pub(super) async fn begin_progress(&self, scope: ClaimScope, now: Timestamp) -> Running<'_> {
        let total = if self.progress.watched() {
            match self.store.claims().count_due(scope, now).await {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::debug!("could not count due projects for progress: {e:#}");
                    None
                }
            }
        } else {
            None
        };
        self.progress.begin(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_eta_follow_the_average_so_far() {
        let s = Duration::from_secs;
        assert_eq!(rate(0, Duration::ZERO), 0.0);
        assert_eq!(rate(2100, s(25)), 84.0);
        // 2,900 left at 84/s: 34.5 s.
        let left = eta(2100, 5000, s(25)).expect("eta");
        assert!(
            (left.as_secs_f64() - 2900.0 / 84.0).abs() < 1e-6,
            "{left:?}"
        );
        assert_eq!(eta(0, 5000, s(3)), None, "no rate yet, no ETA");
        assert_eq!(eta(5000, 5000, s(3)), Some(Duration::ZERO));
        assert_eq!(
            eta(5200, 5000, s(3)),
            Some(Duration::ZERO),
            "past the estimate"
        );
        assert_eq!(eta(0, 0, Duration::ZERO), Some(Duration::ZERO));
    }

    #[test]
    fn percent_is_floored_and_capped() {
        let snap = |polled, total| ProgressSnapshot {
            generation: 1,
            running: true,
            total,
            polled,
            elapsed: Duration::from_secs(1),
        };
        assert_eq!(snap(2100, Some(5000)).percent(), Some(42));
        assert_eq!(snap(4999, Some(5000)).percent(), Some(99));
        assert_eq!(snap(5000, Some(5000)).percent(), Some(100));
        assert_eq!(snap(0, Some(0)).percent(), Some(100));
        assert_eq!(snap(7, None).percent(), None);
        assert_eq!(snap(7, None).eta(), None);
    }

    #[test]
    fn a_cycle_begins_counts_and_ends() {
        let progress = Arc::new(CycleProgress::default());
        assert_eq!(progress.snapshot().generation, 0);
        assert!(!progress.watched());
        let watch = progress.watch();
        assert!(progress.watched());
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        {
            let _running = progress.begin_at(Some(10), t0);
            for _ in 0..4 {
                progress.polled_one();
            }
            let s = progress.snapshot_at(at(2));
            assert_eq!(
                (s.generation, s.running, s.total, s.polled),
                (1, true, Some(10), 4)
            );
            assert_eq!(s.elapsed, Duration::from_secs(2));
            assert_eq!(s.rate(), 2.0);
            assert_eq!(s.eta(), Some(Duration::from_secs(3)));
        }
        let ended = progress.snapshot_at(at(60));
        assert!(!ended.running);
        assert_eq!(
            ended.elapsed,
            progress.snapshot_at(at(90)).elapsed,
            "frozen"
        );
        drop(watch);
        assert!(!progress.watched());
        let _second = progress.begin(None);
        let s = progress.snapshot();
        assert_eq!((s.generation, s.total, s.polled), (2, None, 0));
    }
}
