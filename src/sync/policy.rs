//! When each project is next due: the adaptive polling policy.
//!
//! Pure arithmetic on (status, failures, now, schedule), so it is unit-tested here and
//! the engine only stores its answer in `tracked_projects.next_poll_at`. A cycle claims
//! the projects whose `next_poll_at` is at or before the cycle's start.
//!
//! * Projects that may change soon (`Producing`, `Draft`, `Editing`, a timeline that is
//!   `Converting`, live `Reserving` / `BroadCasting`, and any status this build does not
//!   know) are due again at the next tick.
//! * Settled projects (`Produced`, `ProduceFailed`, `Deleted`, live `LiveFinished` /
//!   `ReservationCanceled`, removed) are due again after `sync.settled_interval`.
//! * `sync.intervals` overrides either, per `Status` or `BusinessStatus` value.
//! * A project whose poll failed backs off on its own: one period, then doubling up to
//!   `sync.error_backoff_max`, without delaying anyone else.
//!
//! "Due at the next tick" is stored as the next tick minus a grace of a quarter period:
//! early enough that the next tick claims it however late in this cycle it was polled,
//! late enough that no replica whose current cycle started at this tick claims it twice.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::contract::NextPoll;
use crate::domain::Timestamp;

const SETTLED_STATUSES: &[&str] = &["Produced", "ProduceFailed", "Deleted"];
const SETTLED_BUSINESS: &[&str] = &["LiveFinished", "ReservationCanceled"];

#[derive(Debug, Clone)]
pub struct PollPolicy {
    /// The sync schedule; `None` makes every project due again immediately (one-off
    /// runs, the demo, tests that drive cycles by hand).
    pub schedule: Option<cron::Schedule>,
    pub(crate) settled_interval: Duration,
    /// Per-status overrides, keyed by a `Status` or `BusinessStatus` value.
    pub(crate) intervals: HashMap<String, Duration>,
    pub(crate) error_backoff_max: Duration,
    /// List mode: a project that polled fine is fetched again within this, whatever its
    /// status (the list sweep catches changes in between). Spread per project between
    /// half and all of it, so a large set does not come due at once.
    pub(crate) full_refresh: Option<Duration>,
}

impl Default for PollPolicy {
    fn default() -> Self {
        Self {
            schedule: None,
            settled_interval: Duration::from_secs(3600),
            intervals: HashMap::new(),
            error_backoff_max: Duration::from_secs(3600),
            full_refresh: None,
        }
    }
}

/// What the policy needs to know about a project after a poll.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PollState<'a> {
    pub(crate) project_id: &'a str,
    pub(crate) status: Option<&'a str>,
    pub(crate) business_status: Option<&'a str>,
    pub(crate) timeline_convert_status: Option<&'a str>,
    pub(crate) removed: bool,
    /// Consecutive failed polls, including this one (0 after a success).
    pub(crate) failures: i64,
}

impl PollPolicy {
    /// How long a project in this state may wait; `None` means "every tick".
    pub(crate) fn interval(&self, s: &PollState<'_>) -> Option<Duration> {
        let by_key = |k: Option<&str>| k.and_then(|k| self.intervals.get(k)).copied();
        if let Some(i) = by_key(s.business_status).or_else(|| by_key(s.status)) {
            return Some(i);
        }
        if s.timeline_convert_status == Some("Converting") {
            return None;
        }
        let settled = s.removed
            || s.business_status
                .is_some_and(|b| SETTLED_BUSINESS.contains(&b))
            || (s.business_status.is_none()
                && s.status.is_some_and(|st| SETTLED_STATUSES.contains(&st)));
        settled.then_some(self.settled_interval)
    }

    /// What a cycle starting at `now` claims: projects due by the latest tick at or before
    /// `now`. A cycle started off-tick (at start-up, `run --once`, a replica joining) thus
    /// never polls early what the current period's tick already polled.
    pub(crate) fn claim_cutoff(&self, now: Timestamp) -> Timestamp {
        let Some(schedule) = &self.schedule else {
            return now;
        };
        let just_after = now.as_datetime() + chrono::Duration::milliseconds(1);
        schedule
            .after(&just_after)
            .next_back()
            .map(Timestamp::from)
            .unwrap_or(now)
    }

    /// The first tick after `t` that leaves more than `margin` of room, and the period
    /// that ends with it (the gap from the tick before). Irregular schedules (office
    /// hours, weekdays) get their actual gaps, not the first gap of the expression.
    pub(crate) fn next_tick_after(
        &self,
        t: Timestamp,
        margin: Duration,
    ) -> Option<(Timestamp, Duration)> {
        let schedule = self.schedule.as_ref()?;
        let margin = chrono::Duration::from_std(margin).ok()?;
        let mut previous = self.claim_cutoff(t);
        for tick in schedule.after(&t.as_datetime()).take(1000) {
            let tick = Timestamp::from(tick);
            if tick.as_datetime() - margin > t.as_datetime() {
                let period = (tick.as_datetime() - previous.as_datetime())
                    .to_std()
                    .ok()?;
                return Some((tick, period));
            }
            previous = tick;
        }
        None
    }

    fn period(&self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, Duration)> {
        let schedule = self.schedule.as_ref()?;
        let mut ticks = schedule.after(&now);
        let next = ticks.next()?;
        let after = ticks.next()?;
        Some((next, (after - next).to_std().ok()?))
    }

    /// When the project is next due, and whether it is due at every tick (what
    /// `run --once` polls however recently it was polled).
    pub(crate) fn next_poll(&self, now: Timestamp, s: &PollState<'_>) -> NextPoll {
        let every_tick = s.failures == 0
            && (self.full_refresh.is_none() || (s.status.is_none() && !s.removed))
            && self.interval(s).is_none();
        NextPoll {
            at: self.next_poll_at(now, s),
            attempted: now,
            every_tick,
        }
    }

    /// When the project is next due, given the state a poll at `now` left it in.
    pub(crate) fn next_poll_at(&self, now: Timestamp, s: &PollState<'_>) -> Timestamp {
        let now_dt = now.as_datetime();
        let Some((next_tick, period)) = self.period(now_dt) else {
            return now;
        };
        let grace = period / 4;
        let at = |delay: Duration| -> Timestamp {
            let d = chrono::Duration::from_std(delay.saturating_sub(grace)).unwrap_or_default();
            Timestamp::from(now_dt + d)
        };
        if s.failures > 0 {
            let doublings = u32::try_from(s.failures - 1).unwrap_or(u32::MAX).min(20);
            let delay = period
                .saturating_mul(1 << doublings)
                .min(self.error_backoff_max.max(period));
            return at(delay);
        }
        if let Some(full) = self
            .full_refresh
            .filter(|_| s.status.is_some() || s.removed)
        {
            // FNV-1a of the ID: a stable spread that needs no randomness.
            let hash = s.project_id.bytes().fold(0xcbf29ce484222325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
            });
            let fraction = 0.5 + (hash % 1000) as f64 / 2000.0;
            return at(full.mul_f64(fraction));
        }
        match self.interval(s) {
            Some(interval) => at(interval),
            None => {
                let d = chrono::Duration::from_std(grace).unwrap_or_default();
                Timestamp::from(next_tick - d).max(now)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn policy() -> PollPolicy {
        PollPolicy {
            schedule: Some(cron::Schedule::from_str("0 */5 * * * *").expect("cron")),
            ..Default::default()
        }
    }

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).expect("ts")
    }

    fn state(status: &str, business: Option<&str>) -> PollState<'static> {
        PollState {
            project_id: "p1",
            status: Some(Box::leak(status.to_string().into_boxed_str())),
            business_status: business.map(|b| &*Box::leak(b.to_string().into_boxed_str())),
            timeline_convert_status: None,
            removed: false,
            failures: 0,
        }
    }

    #[test]
    fn transient_projects_are_due_before_the_next_tick_but_after_this_one() {
        let p = policy();
        // Polled early or late in the 10:00 cycle: due by 10:05, not before 10:03:45.
        for polled in ["2030-01-01T10:00:01Z", "2030-01-01T10:04:30Z"] {
            let next = p.next_poll_at(at(polled), &state("Producing", None));
            assert_eq!(next, at("2030-01-01T10:03:45Z").max(at(polled)), "{polled}");
            assert!(next <= at("2030-01-01T10:05:00Z") && next > at("2030-01-01T10:00:00Z"));
        }
        for (status, business) in [
            ("Draft", None),
            ("Editing", Some("BroadCasting")),
            ("Brand-new", None),
        ] {
            assert_eq!(p.interval(&state(status, business)), None, "{status}");
        }
    }

    #[test]
    fn settled_projects_wait_the_settled_interval() {
        let p = policy();
        for (status, business) in [
            ("Produced", None),
            ("ProduceFailed", None),
            ("Deleted", None),
            ("Editing", Some("LiveFinished")),
            ("Editing", Some("ReservationCanceled")),
        ] {
            assert_eq!(
                p.interval(&state(status, business)),
                Some(Duration::from_secs(3600))
            );
        }
        let mut removed = state("Editing", None);
        removed.removed = true;
        assert_eq!(p.interval(&removed), Some(Duration::from_secs(3600)));
        let next = p.next_poll_at(at("2030-01-01T10:00:10Z"), &state("Produced", None));
        assert_eq!(next, at("2030-01-01T10:58:55Z"));
    }

    #[test]
    fn converting_timelines_and_overrides() {
        let mut p = policy();
        let mut s = state("Produced", None);
        s.timeline_convert_status = Some("Converting");
        assert_eq!(p.interval(&s), None);
        p.intervals
            .insert("Produced".into(), Duration::from_secs(86_400));
        p.intervals
            .insert("BroadCasting".into(), Duration::from_secs(60));
        assert_eq!(
            p.interval(&state("Produced", None)),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(
            p.interval(&state("Editing", Some("BroadCasting"))),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn failures_back_off_per_project_up_to_the_cap() {
        let p = policy();
        let now = at("2030-01-01T10:00:00Z");
        let delays: Vec<i64> = (1..=7)
            .map(|failures| {
                let mut s = state("Producing", None);
                s.failures = failures;
                (p.next_poll_at(now, &s).as_datetime() - now.as_datetime()).num_seconds()
            })
            .collect();
        // 5, 10, 20, 40, 60 (cap), 60 minutes, each minus the 75 s grace.
        assert_eq!(delays, vec![225, 525, 1125, 2325, 3525, 3525, 3525]);
    }

    #[test]
    fn cycles_claim_what_was_due_at_the_latest_tick() {
        let p = policy();
        assert_eq!(
            p.claim_cutoff(at("2030-01-01T10:07:12Z")),
            at("2030-01-01T10:05:00Z")
        );
        assert_eq!(
            p.claim_cutoff(at("2030-01-01T10:05:00Z")),
            at("2030-01-01T10:05:00Z")
        );
        // A project polled at the 10:05 tick is due again at 10:08:45: not claimable by a
        // replica starting at 10:09 (cutoff 10:05), claimable at the 10:10 tick.
        let next = p.next_poll_at(at("2030-01-01T10:05:01Z"), &state("Producing", None));
        assert!(next > p.claim_cutoff(at("2030-01-01T10:09:00Z")));
        assert!(next <= p.claim_cutoff(at("2030-01-01T10:10:00.020Z")));
        assert_eq!(
            PollPolicy::default().claim_cutoff(at("2030-01-01T10:07:12Z")),
            at("2030-01-01T10:07:12Z")
        );
    }

    #[test]
    fn list_mode_refreshes_everyone_within_the_full_refresh_interval() {
        let mut p = policy();
        p.full_refresh = Some(Duration::from_secs(86_400));
        let now = at("2030-01-01T10:00:00Z");
        let delays: Vec<i64> = ["a", "b", "c", "d"]
            .iter()
            .map(|id| {
                let mut s = state("Producing", None);
                s.project_id = id;
                (p.next_poll_at(now, &s).as_datetime() - now.as_datetime()).num_seconds()
            })
            .collect();
        assert!(
            delays.iter().all(|d| (43_125..=86_325).contains(d)),
            "{delays:?}"
        );
        assert!(
            delays.windows(2).any(|w| w[0] != w[1]),
            "spread: {delays:?}"
        );
        // Not-found projects still confirm at the next tick.
        let mut nf = state("x", None);
        nf.status = None;
        assert!((p.next_poll_at(now, &nf).as_datetime() - now.as_datetime()).num_seconds() <= 300);
    }

    #[test]
    fn the_claim_deadline_uses_the_actual_ticks_of_irregular_schedules() {
        // Office hours: every 5 minutes 09:00-17:55 on weekdays.
        let p = PollPolicy {
            schedule: Some(cron::Schedule::from_str("0 */5 9-17 * * MON-FRI").expect("cron")),
            ..Default::default()
        };
        // 2030-01-04 is a Friday. During the day: the next tick, a 5-minute period.
        let (next, period) = p
            .next_tick_after(at("2030-01-04T10:02:00Z"), Duration::from_secs(30))
            .expect("tick");
        assert_eq!(
            (next, period),
            (at("2030-01-04T10:05:00Z"), Duration::from_secs(300))
        );
        // The last cycle of the week has until Monday's first tick, not five minutes.
        let (next, period) = p
            .next_tick_after(at("2030-01-04T17:55:00Z"), Duration::from_secs(30))
            .expect("tick");
        assert_eq!(next, at("2030-01-07T09:00:00Z"));
        assert_eq!(period, Duration::from_secs(((2 * 24 + 15) * 60 + 5) * 60));
        // Started inside the margin before a tick: the tick after it.
        let (next, _) = p
            .next_tick_after(at("2030-01-04T10:04:50Z"), Duration::from_secs(30))
            .expect("tick");
        assert_eq!(next, at("2030-01-04T10:10:00Z"));
    }

    #[test]
    fn every_tick_is_what_run_once_always_polls() {
        let p = policy();
        let now = at("2030-01-01T10:00:00Z");
        assert!(p.next_poll(now, &state("Producing", None)).every_tick);
        assert!(!p.next_poll(now, &state("Produced", None)).every_tick);
        let mut failing = state("Producing", None);
        failing.failures = 1;
        assert!(!p.next_poll(now, &failing).every_tick);
    }

    #[test]
    fn without_a_schedule_everything_is_due_at_once() {
        let p = PollPolicy::default();
        let now = at("2030-01-01T10:00:00Z");
        assert_eq!(p.next_poll_at(now, &state("Produced", None)), now);
    }
}
