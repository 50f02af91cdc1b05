//! What `GET /healthz` answers: is the daemon doing its job right now?
//!
//! Healthy (200) when both hold:
//! * the most recent cycle finished with outcome `success` or `partial`, and finished
//!   within the last three schedule periods. `partial` counts as healthy on purpose: one
//!   project that keeps failing, or a cycle cut short by `sync.cycle_timeout`, is news
//!   for `ice-sync status` and the metrics, not a reason to page or restart. A `failed`
//!   cycle (auth rejected, database unwritable, every project failed) is unhealthy at
//!   once; a last cycle older than three periods means the loop or a cycle is stuck.
//! * the database answers `SELECT 1` within [`DB_PING_TIMEOUT`].
//!
//! Unhealthy (503) otherwise, including before the first cycle has finished (the daemon
//! has not shown yet that it can sync). The body is a short JSON object with the reason.
//! This module keeps the state the scheduler reports into; `ops::server` serves it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::storage::Store;
use crate::sync::engine::{CycleOutcome, CycleReport};

/// How long the database may take to answer the health ping.
pub const DB_PING_TIMEOUT: Duration = Duration::from_secs(2);
/// A cycle must have finished within this many schedule periods.
pub const PERIODS: u32 = 3;

/// The last finished cycle, as health needs it.
#[derive(Debug, Clone)]
pub struct LastCycle {
    pub outcome: CycleOutcome,
    pub finished: Instant,
    pub finished_at: chrono::DateTime<chrono::Utc>,
    pub run_id: Option<i64>,
    pub polled: usize,
    pub failures: usize,
    pub error: Option<String>,
}

/// A health answer: the status code to send and the JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub healthy: bool,
    pub body: serde_json::Value,
}

pub struct Health {
    store: Store,
    max_age: Duration,
    last: Mutex<Option<LastCycle>>,
}

impl Health {
    /// `period` is the schedule's typical gap between ticks.
    pub fn new(store: Store, period: Duration) -> Self {
        Self {
            store,
            max_age: period * PERIODS,
            last: Mutex::new(None),
        }
    }

    pub fn record(&self, report: &CycleReport) {
        let last = LastCycle {
            outcome: report.outcome,
            finished: Instant::now(),
            finished_at: chrono::Utc::now(),
            run_id: report.run_id,
            polled: report.polled,
            failures: report.failures,
            error: report.error.clone(),
        };
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(last);
    }

    /// Pings the database and judges.
    pub async fn check(&self) -> Verdict {
        let db = match tokio::time::timeout(DB_PING_TIMEOUT, self.store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(_) => Err(format!(
                "no answer to SELECT 1 within {}s",
                DB_PING_TIMEOUT.as_secs()
            )),
        };
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner()).clone();
        judge(last.as_ref(), Instant::now(), self.max_age, db)
    }
}

/// The rules of the module doc, as a pure function.
pub fn judge(
    last: Option<&LastCycle>,
    now: Instant,
    max_age: Duration,
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
        json!({
            "outcome": l.outcome.as_str(),
            "finished_at": l.finished_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "age_seconds": round(now.saturating_duration_since(l.finished).as_secs_f64()),
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
    let age = now.saturating_duration_since(last.finished);
    if age > max_age {
        return unhealthy(
            format!(
                "no sync cycle has finished for {}s (more than {PERIODS} schedule periods, {}s): \
                 a cycle or the scheduler is stuck",
                age.as_secs(),
                max_age.as_secs()
            ),
            described,
        );
    }
    Verdict {
        healthy: true,
        body: json!({"status": "ok", "last_cycle": described}),
    }
}

fn round(secs: f64) -> f64 {
    (secs * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cycle(outcome: CycleOutcome, finished: Instant) -> LastCycle {
        LastCycle {
            outcome,
            finished,
            finished_at: chrono::Utc::now(),
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

    #[test]
    fn rules() {
        let now = Instant::now();
        let max_age = Duration::from_secs(15);
        let recent = now - Duration::from_secs(2);

        let v = judge(None, now, max_age, Ok(()));
        assert!(!v.healthy && reason(&v).contains("no sync cycle has finished yet"));

        for ok in [CycleOutcome::Success, CycleOutcome::Partial] {
            let v = judge(Some(&cycle(ok, recent)), now, max_age, Ok(()));
            assert!(v.healthy, "{v:?}");
            assert_eq!(v.body["status"], "ok");
            assert_eq!(v.body["last_cycle"]["outcome"], ok.as_str());
        }

        let v = judge(
            Some(&cycle(CycleOutcome::Failed, recent)),
            now,
            max_age,
            Ok(()),
        );
        assert!(
            !v.healthy && reason(&v).contains("SignatureDoesNotMatch"),
            "{v:?}"
        );

        let old = now - Duration::from_secs(16);
        let v = judge(
            Some(&cycle(CycleOutcome::Success, old)),
            now,
            max_age,
            Ok(()),
        );
        assert!(!v.healthy && reason(&v).contains("stuck"), "{v:?}");

        let v = judge(
            Some(&cycle(CycleOutcome::Success, recent)),
            now,
            max_age,
            Err("connection refused".to_string()),
        );
        assert!(!v.healthy && reason(&v).contains("database"), "{v:?}");
        assert_eq!(v.body["status"], "unhealthy");
    }
}
