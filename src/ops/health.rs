//! What `GET /healthz` answers: is the daemon doing its job right now?
//!
//! Healthy (200) when all hold:
//! * the most recent cycle finished with outcome `success` or `partial`. `partial`
//!   counts as healthy on purpose: one project that keeps failing, or a cycle cut short
//!   by `sync.cycle_timeout`, is news for `ice-sync status` and the metrics, not a
//!   reason to page or restart. A `failed` cycle (auth rejected, database unwritable,
//!   every project failed) is unhealthy at once.
//! * at most one tick of `sync.schedule` has gone by without a finished cycle: the last
//!   finished cycle started no earlier than the tick before the latest tick, judged
//!   [`margin`] late so the latest tick's cycle has time to finish. The ticks are the
//!   schedule's actual ones (UTC), so `0 */5 9-17 * * MON-FRI` stays healthy through the
//!   night and the weekend, and a daemon that stopped polling turns unhealthy once a
//!   tick is missed.
//! * the database answers `SELECT 1` within [`DB_PING_TIMEOUT`].
//!
//! Unhealthy (503) otherwise, including before the first cycle has finished (the daemon
//! has not shown yet that it can sync). The body is a short JSON object with the reason.
//! This module keeps the state the scheduler reports into; `ops::server` serves it.
//! [`judge`] is the whole rule as a pure function of (schedule, last cycle, now).

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use crate::config::Schedule;
use crate::storage::Store;
use crate::sync::engine::{CycleOutcome, CycleReport};

/// How long the database may take to answer the health ping.
pub(crate) const DB_PING_TIMEOUT: Duration = Duration::from_secs(2);
/// The most a cycle may finish after the tick that follows its own.
pub(crate) const MARGIN_CAP: Duration = Duration::from_secs(60);

/// The last finished cycle, as health needs it.
#[derive(Debug, Clone)]
pub(crate) struct LastCycle {
    pub(crate) outcome: CycleOutcome,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) finished_at: DateTime<Utc>,
    pub(crate) run_id: Option<i64>,
    pub(crate) polled: usize,
    pub(crate) failures: usize,
    pub(crate) error: Option<String>,
}

/// A health answer: the status code to send and the JSON body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Verdict {
    pub(crate) healthy: bool,
    pub(crate) body: serde_json::Value,
}

pub(crate) struct Health {
    store: Store,
    schedule: Mutex<Schedule>,
    last: Mutex<Option<LastCycle>>,
}

impl Health {
    pub(crate) fn new(store: Store, schedule: Schedule) -> Self {
        Self {
            store,
            schedule: Mutex::new(schedule),
            last: Mutex::new(None),
        }
    }

    /// A reloaded `sync.schedule` is judged from now on.
    pub(crate) fn set_schedule(&self, schedule: Schedule) {
        *self.schedule.lock().unwrap_or_else(|p| p.into_inner()) = schedule;
    }

    pub(crate) fn record(&self, report: &CycleReport) {
        let finished_at = Utc::now();
        let took = chrono::Duration::from_std(report.duration).unwrap_or_default();
        let last = LastCycle {
            outcome: report.outcome,
            started_at: finished_at - took,
            finished_at,
            run_id: report.run_id,
            polled: report.polled,
            failures: report.failures,
            error: report.error.clone(),
        };
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(last);
    }

    /// Pings the database and judges.
    pub(crate) async fn check(&self) -> Verdict {
        let db = match tokio::time::timeout(DB_PING_TIMEOUT, self.store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(_) => Err(format!(
                "no answer to SELECT 1 within {}s",
                DB_PING_TIMEOUT.as_secs()
            )),
        };
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let schedule = self
            .schedule
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        judge(&schedule, last.as_ref(), Utc::now(), db)
    }
}

/// How late the tick rule is judged: the gap around `now`, at most [`MARGIN_CAP`], so a
/// cycle may still finish that long after the next tick (in-flight fetches end after
/// the cycle's deadline) without the daemon being called stuck.
pub(crate) fn margin(schedule: &Schedule, now: DateTime<Utc>) -> Duration {
    schedule
        .period_around(now)
        .map_or(MARGIN_CAP, |gap| gap.min(MARGIN_CAP))
}

/// Why the daemon is stale at `now`, given when its last finished cycle started; `None`
/// while at most one tick has gone by without a finished cycle.
pub(crate) fn stale(
    schedule: &Schedule,
    last_started: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<String> {
    let grace = margin(schedule, now);
    let judged = now - chrono::Duration::from_std(grace).unwrap_or_default();
    let latest = schedule.tick_at_or_before(judged)?;
    let before = schedule.tick_before(latest)?;
    // Cycles start on the tick, give or take timer jitter.
    let gap = (latest - before).to_std().unwrap_or_default();
    let slack = (gap / 4).min(Duration::from_secs(1));
    let slack = chrono::Duration::from_std(slack).unwrap_or_default();
    (last_started < before - slack).then(|| {
        format!(
            "no sync cycle started at or after the tick of {} has finished, and the tick of {} \
             has passed too (the last finished cycle started at {}; schedule {:?}, UTC): \
             a cycle or the scheduler is stuck",
            stamp(before),
            stamp(latest),
            stamp(last_started),
            schedule.expression,
        )
    })
}

/// The rules of the module doc, as a pure function.
pub(crate) fn judge(
    schedule: &Schedule,
    last: Option<&LastCycle>,
    now: DateTime<Utc>,
    db: Result<(), String>,
) -> Verdict {
    let unhealthy = |reason: String, last: Option<serde_json::Value>| Verdict {
        healthy: false,
        body: match last {
            Some(l) => json!({"status": "unhealthy", "reason": reason, "last_cycle": l}),
            None => json!({"status": "unhealthy", "reason": reason}),
        },
    };
    let described = last.map(|l| {
        let age = (now - l.finished_at).to_std().unwrap_or_default();
        json!({
            "outcome": l.outcome.as_str(),
            "started_at": stamp(l.started_at),
            "finished_at": stamp(l.finished_at),
            "age_seconds": round(age.as_secs_f64()),
            "sync_run_id": l.run_id,
            "polled": l.polled,
            "failures": l.failures,
        })
    });
    if let Err(e) = db {
        return unhealthy(format!("the database does not answer: {e}"), described);
    }
    let Some(last) = last else {
        return unhealthy("starting: no sync cycle has finished yet".to_string(), None);
    };
    if last.outcome == CycleOutcome::Failed {
        let why = last.error.as_deref().unwrap_or("no reason recorded");
        return unhealthy(format!("the last sync cycle failed: {why}"), described);
    }
    if let Some(why) = stale(schedule, last.started_at, now) {
        return unhealthy(why, described);
    }
    Verdict {
        healthy: true,
        body: json!({"status": "ok", "last_cycle": described}),
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn round(secs: f64) -> f64 {
    (secs * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        // December 2026: the 4th is a Friday.
        Utc.with_ymd_and_hms(2026, 12, d, h, mi, s)
            .single()
            .expect("valid")
    }

    fn secs(n: i64) -> chrono::Duration {
        chrono::Duration::seconds(n)
    }

    fn cycle(outcome: CycleOutcome, started_at: DateTime<Utc>) -> LastCycle {
        LastCycle {
            outcome,
            started_at,
            finished_at: started_at + secs(3),
            run_id: Some(7),
            polled: 4,
            failures: usize::from(outcome != CycleOutcome::Success),
            error: (outcome == CycleOutcome::Failed)
                .then(|| "ICE rejected the signature (SignatureDoesNotMatch)".to_string()),
        }
    }

    fn reason(v: &Verdict) -> String {
        v.body["reason"].as_str().unwrap_or_default().to_string()
    }

    fn schedule(expr: &str) -> Schedule {
        Schedule::parse(expr).expect("cron")
    }

    #[test]
    fn rules() {
        let s = schedule("*/5 * * * * *");
        let now = at(1, 12, 0, 7);
        let recent = at(1, 12, 0, 5);

        let v = judge(&s, None, now, Ok(()));
        assert!(!v.healthy && reason(&v).contains("no sync cycle has finished yet"));

        for ok in [CycleOutcome::Success, CycleOutcome::Partial] {
            let v = judge(&s, Some(&cycle(ok, recent)), now, Ok(()));
            assert!(v.healthy, "{v:?}");
            assert_eq!(v.body["status"], "ok");
            assert_eq!(v.body["last_cycle"]["outcome"], ok.as_str());
            assert_eq!(v.body["last_cycle"]["age_seconds"], 0.0);
        }

        let v = judge(&s, Some(&cycle(CycleOutcome::Failed, recent)), now, Ok(()));
        assert!(
            !v.healthy && reason(&v).contains("SignatureDoesNotMatch"),
            "{v:?}"
        );

        let old = at(1, 11, 59, 50);
        let v = judge(&s, Some(&cycle(CycleOutcome::Success, old)), now, Ok(()));
        assert!(!v.healthy && reason(&v).contains("stuck"), "{v:?}");
        assert!(reason(&v).contains("UTC"), "{v:?}");

        let v = judge(
            &s,
            Some(&cycle(CycleOutcome::Success, recent)),
            now,
            Err("connection refused".to_string()),
        );
        assert!(!v.healthy && reason(&v).contains("database"), "{v:?}");
        assert_eq!(v.body["status"], "unhealthy");
    }

    #[test]
    fn one_missed_tick_turns_unhealthy_after_the_margin() {
        let s = schedule("0 */5 * * * *");
        // The 12:00 cycle finished; the daemon then stopped polling.
        let started = at(1, 12, 0, 0) + chrono::Duration::milliseconds(30);
        // 12:05's cycle may be running; 12:10's tick plus one minute is the limit.
        for now in [at(1, 12, 4, 0), at(1, 12, 6, 0), at(1, 12, 10, 59)] {
            assert_eq!(stale(&s, started, now), None, "{now}");
        }
        for now in [at(1, 12, 11, 1), at(1, 13, 0, 0)] {
            let why = stale(&s, started, now).expect("stale");
            assert!(why.contains("stuck"), "{why}");
        }
        // A cycle that starts a little before its tick (timer jitter) still counts.
        let early = at(1, 12, 5, 0) - chrono::Duration::milliseconds(200);
        assert_eq!(stale(&s, early, at(1, 12, 11, 1)), None);
    }

    #[test]
    fn office_hours_stay_healthy_overnight_and_over_the_weekend() {
        let s = schedule("0 */5 9-17 * * MON-FRI");
        // Tuesday: the last tick of the day is 17:55.
        let evening = at(1, 17, 55, 0);
        for now in [
            at(1, 18, 30, 0),
            at(1, 23, 59, 0),
            at(2, 3, 0, 0),
            at(2, 8, 59, 59),
        ] {
            assert_eq!(stale(&s, evening, now), None, "{now}");
        }
        // Wednesday morning: 9:00 may still be running at 9:00:59, not after 9:05's margin.
        assert_eq!(stale(&s, evening, at(2, 9, 5, 59)), None);
        assert!(stale(&s, evening, at(2, 9, 6, 1)).is_some());
        assert_eq!(stale(&s, at(2, 9, 0, 0), at(2, 9, 6, 1)), None);

        // Friday 17:55 to Monday 9:00.
        let friday = at(4, 17, 55, 0);
        for now in [
            at(5, 12, 0, 0),
            at(6, 23, 0, 0),
            at(7, 9, 1, 0),
            at(7, 9, 5, 30),
        ] {
            assert_eq!(stale(&s, friday, now), None, "{now}");
        }
        assert!(stale(&s, friday, at(7, 9, 6, 1)).is_some());

        // A daemon that died Friday at noon is reported within the afternoon, and stays
        // reported all weekend.
        let noon = at(4, 12, 0, 0);
        assert!(stale(&s, noon, at(4, 12, 11, 1)).is_some());
        assert!(stale(&s, noon, at(6, 12, 0, 0)).is_some());

        // The judgement reads only its arguments: a cycle at 23:00 (a restart overnight)
        // counts for the next morning.
        let verdict = judge(
            &s,
            Some(&cycle(CycleOutcome::Success, at(6, 23, 0, 0))),
            at(7, 9, 3, 0),
            Ok(()),
        );
        assert!(verdict.healthy, "{verdict:?}");
    }

    #[test]
    fn before_the_schedule_ever_fired_a_finished_cycle_is_enough() {
        let s = schedule("0 0 0 1 1 * 2030");
        assert_eq!(stale(&s, at(1, 12, 0, 0), at(1, 12, 0, 5)), None);
    }
}
