//! The schedule, on paused time and a test clock (no wall-clock sleeps): a cycle runs at
//! every tick; a cycle still finishing at a tick delays that tick's cycle instead of
//! overlapping it or losing it; and a clock that steps neither stops the ticks nor
//! makes them burst.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ice_sync::clock::{SharedClock, TestClock};
use ice_sync::config::Schedule;
use ice_sync::scheduler::{self, Cycles, NoHooks, SchedulerHooks, SchedulerOptions};
use ice_sync::sync::CycleReport;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A stand-in for the engine: each cycle takes `takes` and records when it started.
struct FakeCycles {
    clock: SharedClock,
    takes: Duration,
    running: AtomicUsize,
    max_running: AtomicUsize,
    started: Mutex<Vec<Instant>>,
}

impl FakeCycles {
    fn new(clock: SharedClock, takes: Duration) -> Arc<Self> {
        Arc::new(Self {
            clock,
            takes,
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
            started: Mutex::new(Vec::new()),
        })
    }

    fn starts(&self) -> Vec<Instant> {
        self.started.lock().expect("lock").clone()
    }
}

impl Cycles for FakeCycles {
    fn clock(&self) -> &SharedClock {
        &self.clock
    }

    async fn run_cycle(&self, _shutdown: &CancellationToken) -> CycleReport {
        self.started.lock().expect("lock").push(Instant::now());
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.takes).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        CycleReport::default()
    }
}

#[derive(Default)]
struct Skips(AtomicU64);

impl SchedulerHooks for Skips {
    fn tick_skipped(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn options() -> SchedulerOptions {
    SchedulerOptions {
        schedule: Schedule::parse("* * * * * *").expect("cron"),
        shutdown_timeout: Duration::from_secs(10),
        heartbeat: Duration::from_millis(200),
    }
}

/// A wall clock starting just after a whole second, so ticks fall at +1 s, +2 s, ...
fn clock() -> Arc<TestClock> {
    let origin = chrono::DateTime::from_timestamp(1_900_000_000, 1_000_000).expect("valid");
    TestClock::starting_at(origin)
}

async fn run_for(
    cycles: Arc<FakeCycles>,
    hooks: Arc<dyn SchedulerHooks>,
    during: Duration,
    meanwhile: impl std::future::Future<Output = ()>,
) -> u64 {
    let shutdown = CancellationToken::new();
    let runner = tokio::spawn(scheduler::run(cycles, options(), hooks, shutdown.clone()));
    meanwhile.await;
    tokio::time::sleep(during).await;
    shutdown.cancel();
    runner.await.expect("scheduler")
}

#[tokio::test(start_paused = true)]
async fn a_quick_cycle_runs_at_every_tick() {
    let clock = clock();
    let cycles = FakeCycles::new(clock.clone(), Duration::from_millis(200));
    let skips = Arc::new(Skips::default());
    let ran = run_for(
        cycles.clone(),
        skips.clone(),
        Duration::from_millis(5_500),
        async {},
    )
    .await;
    // The start-up cycle, then one per tick at +1 s .. +5 s.
    assert_eq!(ran, 6);
    assert_eq!(skips.0.load(Ordering::SeqCst), 0);
    let starts = cycles.starts();
    for pair in starts.windows(2).skip(1) {
        let gap = pair[1] - pair[0];
        assert!(
            (Duration::from_millis(990)..=Duration::from_millis(1010)).contains(&gap),
            "{gap:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_cycle_still_running_at_a_tick_delays_it_never_overlaps() {
    let clock = clock();
    let cycles = FakeCycles::new(clock.clone(), Duration::from_millis(1_500));
    let skips = Arc::new(Skips::default());
    let ran = run_for(
        cycles.clone(),
        skips.clone(),
        Duration::from_millis(6_200),
        async {},
    )
    .await;
    assert_eq!(
        cycles.max_running.load(Ordering::SeqCst),
        1,
        "cycles overlapped"
    );
    // Each cycle starts as soon as the previous one is done: 0, 1.5, 3.0, 4.5, 6.0.
    assert_eq!(ran, 5, "{:?}", cycles.starts());
    // A whole tick passed while waiting (at +2 s, the cycle ran until +3 s): counted.
    assert!(skips.0.load(Ordering::SeqCst) >= 1);
}

#[tokio::test(start_paused = true)]
async fn a_clock_step_neither_stops_nor_bursts_the_ticks() {
    let clock = clock();
    let cycles = FakeCycles::new(clock.clone(), Duration::from_millis(100));
    let stepper = clock.clone();
    let ran = run_for(
        cycles.clone(),
        Arc::new(NoHooks),
        Duration::from_millis(6_200),
        async move {
            tokio::time::sleep(Duration::from_millis(2_500)).await;
            stepper.step(chrono::Duration::minutes(-10));
            tokio::time::sleep(Duration::from_millis(3_000)).await;
            stepper.step(chrono::Duration::seconds(90));
        },
    )
    .await;
    let starts = cycles.starts();
    // One cycle a second throughout: after the step back (the next tick is a second
    // away on the new clock, not ten minutes) and after the step forward (no catch-up).
    assert!((11..=13).contains(&ran), "{ran} cycles: {starts:?}");
    for pair in starts.windows(2).skip(1) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(400) && gap <= Duration::from_millis(1_600),
            "{gap:?} between cycles: {starts:?}"
        );
    }
}
