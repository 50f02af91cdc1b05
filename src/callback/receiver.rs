//! What happens to one callback request, whatever carries it: authenticate (signature,
//! then a fresh timestamp on the injected clock), parse, then record and queue a poll in
//! one transaction. Every path ends in an [`Outcome`] that says the HTTP status, the
//! metric label and the log line; none calls ICE, so the answer goes back at once.
//!
//! The callback is a hint, never data: nothing here writes a project or its history.
//! A forged or replayed callback that gets through costs one extra poll at most.

use std::time::Duration;

use axum::http::StatusCode;

use super::bounds::{capped, BodyVerdict, SignatureBodies, TrackingBudget};
use super::envelope;
use super::keys::KeyRing;
use super::signature;
use crate::clock::SharedClock;
use crate::config::CallbackSettings;
use crate::domain::{ProjectId, Timestamp};
use crate::storage::{CallbackEvent, CallbackRecord, StorageError, Store};

/// How long the database may take to record an event before ICE is told to retry.
const RECORD_TIMEOUT: Duration = Duration::from_secs(2);

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A poll of a tracked project is queued.
    Accepted {
        project_id: ProjectId,
        event_type: String,
        job_id: String,
    },
    /// `callback.track_unknown`: the project is now tracked and its first poll queued.
    Tracked {
        project_id: ProjectId,
        event_type: String,
        job_id: String,
    },
    /// The event was received before (a retry, a duplicate, a replay): nothing queued,
    /// but ICE is told it arrived so it stops retrying.
    Duplicate {
        event_type: String,
        job_id: String,
    },
    /// No `X-ICE-TIMESTAMP` / `X-ICE-SIGNATURE`, or not of their shape.
    Unsigned(&'static str),
    /// Signed, but with no accepted key (or over another URL).
    BadSignature,
    /// Signed with an accepted key, but the timestamp is too far from now.
    Stale {
        skew_seconds: i64,
    },
    TooLarge,
    /// Not an event that names a project and a job.
    BadRequest(String),
    UnknownProject {
        project_id: ProjectId,
        disabled: bool,
    },
    /// The database cannot take the event: ICE retries on anything but 200.
    Unavailable(String),
    /// Authentic signature, but it already carried `MAX_BODIES_PER_SIGNATURE` other
    /// bodies: a captured signature reused with invented bodies. Nothing queued.
    Replayed,
    /// `callback.track_unknown` has added its hourly budget of projects already.
    TrackBudgetSpent {
        project_id: ProjectId,
    },
    /// A path other than `callback.path`.
    NotFound,
    MethodNotAllowed,
}

impl Outcome {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Outcome::Accepted { .. } | Outcome::Tracked { .. } | Outcome::Duplicate { .. } => {
                StatusCode::OK
            }
            Outcome::Unsigned(_) | Outcome::BadSignature => StatusCode::UNAUTHORIZED,
            Outcome::Stale { .. } => StatusCode::FORBIDDEN,
            Outcome::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Outcome::BadRequest(_) => StatusCode::BAD_REQUEST,
            Outcome::UnknownProject { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            // 429, not 503: a refusal, not an outage. ICE retries any non-200 twice, 1 s
            // apart; a genuine event re-signed in a later second gets a fresh signature
            // and budget, and the regular poll catches up on anything lost.
            Outcome::Replayed | Outcome::TrackBudgetSpent { .. } => StatusCode::TOO_MANY_REQUESTS,
            Outcome::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Outcome::NotFound => StatusCode::NOT_FOUND,
            Outcome::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// The `outcome` label of `ice_sync_callbacks_total` (one of
    /// `metric_names::CALLBACK_OUTCOMES`).
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Outcome::Accepted { .. } => "accepted",
            Outcome::Tracked { .. } => "tracked",
            Outcome::Duplicate { .. } => "duplicate",
            Outcome::Unsigned(_) => "unsigned",
            Outcome::BadSignature => "bad_signature",
            Outcome::Stale { .. } => "stale",
            Outcome::TooLarge => "too_large",
            Outcome::BadRequest(_) => "bad_request",
            Outcome::UnknownProject { .. } => "unknown_project",
            Outcome::Unavailable(_) => "unavailable",
            Outcome::NotFound => "not_found",
            Outcome::MethodNotAllowed => "method_not_allowed",
            Outcome::Replayed => "replayed",
            Outcome::TrackBudgetSpent { .. } => "track_budget_spent",
        }
    }

    #[cfg(test)]
    /// Whether a poll was queued.
    pub(crate) fn queued(&self) -> bool {
        matches!(self, Outcome::Accepted { .. } | Outcome::Tracked { .. })
    }

    /// The response body: one line for whoever reads it (ICE ignores it), saying what to
    /// do next where something is wrong. Never a key.
    pub(crate) fn message(&self, path: &str) -> String {
        match self {
            Outcome::Accepted { project_id, .. } => format!("accepted: a poll of {project_id} is queued"),
            Outcome::Tracked { project_id, .. } => {
                format!("accepted: {project_id} is now tracked and its first poll is queued")
            }
            Outcome::Duplicate { event_type, job_id } => {
                format!("already received: {event_type} of job {job_id}; nothing more to do")
            }
            Outcome::Unsigned(why) => format!(
                "unauthenticated: {why}; set AuthSwitch=on and an AuthKey with SetEventCallback"
            ),
            Outcome::BadSignature => "unauthenticated: X-ICE-SIGNATURE matches no accepted key; check that callback.auth_key holds the AuthKey given to SetEventCallback and that callback.url is the CallbackURL exactly as registered".to_string(),
            Outcome::Stale { skew_seconds } => format!(
                "refused: X-ICE-TIMESTAMP is {skew_seconds} s away from this server's clock, more than callback.max_skew; check NTP on both sides"
            ),
            Outcome::TooLarge => "refused: the body is larger than callback.max_body_bytes".to_string(),
            Outcome::BadRequest(why) => format!("bad request: {why}"),
            Outcome::UnknownProject { project_id, disabled: false } => format!(
                "refused: project {project_id} is not tracked; add it with `ice-sync track add {project_id}` or set callback.track_unknown = true"
            ),
            Outcome::UnknownProject { project_id, disabled: true } => format!(
                "refused: project {project_id} is tracked but disabled (removed from sync.projects)"
            ),
            Outcome::Unavailable(_) => {
                "unavailable: the database cannot record the event now; ICE will retry".to_string()
            }
            Outcome::NotFound => format!("not found: ice-sync takes ICE callbacks on POST {path}"),
            Outcome::MethodNotAllowed => format!("method not allowed: ICE callbacks are POST {path}"),
            Outcome::Replayed => format!(
                "refused: this X-ICE-SIGNATURE already carried {} different bodies; nothing queued",
                super::bounds::MAX_BODIES_PER_SIGNATURE
            ),
            Outcome::TrackBudgetSpent { project_id } => format!(
                "refused: callback.track_unknown already added {} projects in the last hour; {project_id} is not tracked (add it with `ice-sync track add {project_id}`)",
                super::bounds::TRACK_UNKNOWN_PER_HOUR
            ),
        }
    }
}

/// The authentication headers of a request, as received.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Headers<'a> {
    pub(crate) timestamp: Option<&'a str>,
    pub(crate) signature: Option<&'a str>,
}

/// Everything a callback needs, assembled once at start-up.
pub(crate) struct Receiver {
    url: String,
    path: String,
    keys: KeyRing,
    max_skew: Duration,
    max_body_bytes: usize,
    track_unknown: bool,
    replica_id: String,
    store: Store,
    clock: SharedClock,
    bodies: SignatureBodies,
    budget: TrackingBudget,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("url", &self.url)
            .field("path", &self.path)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// `None` when `callback.listen` is not set, or set without `callback.url` (which
    /// validated settings rule out).
    pub(crate) fn new(
        settings: &CallbackSettings,
        keys: KeyRing,
        replica_id: &str,
        store: Store,
        clock: SharedClock,
    ) -> Option<Receiver> {
        Some(Receiver {
            url: settings.url.clone()?,
            path: settings.path.clone(),
            keys,
            max_skew: settings.max_skew,
            max_body_bytes: settings.max_body_bytes,
            track_unknown: settings.track_unknown,
            replica_id: replica_id.to_string(),
            store,
            clock,
            bodies: SignatureBodies::new(settings.max_skew),
            budget: TrackingBudget::default(),
        })
    }

    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    pub(crate) fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// How many keys are accepted and where they came from (never the keys).
    pub(crate) fn describe_keys(&self) -> String {
        format!("{:?}", self.keys)
    }

    /// The signature and the timestamp's freshness; the body is not needed (ICE does not
    /// sign it), so a stranger's request is refused before it is read.
    pub(crate) fn authenticate(&self, headers: Headers<'_>) -> Result<(), Outcome> {
        let (Some(timestamp), Some(sig)) = (headers.timestamp, headers.signature) else {
            return Err(Outcome::Unsigned(
                "X-ICE-TIMESTAMP and X-ICE-SIGNATURE are required",
            ));
        };
        let timestamp = timestamp.trim();
        let Ok(seconds) = timestamp.parse::<i64>() else {
            return Err(Outcome::Unsigned(
                "X-ICE-TIMESTAMP is not a Unix time in seconds",
            ));
        };
        if signature::verify(&self.url, timestamp, sig, self.keys.keys()).is_none() {
            return Err(Outcome::BadSignature);
        }
        let skew = self.clock.now().timestamp().saturating_sub(seconds);
        if skew.unsigned_abs() > self.max_skew.as_secs() {
            return Err(Outcome::Stale { skew_seconds: skew });
        }
        Ok(())
    }

    /// A body whose `headers` passed [`Receiver::authenticate`]: refused once its
    /// signature has carried too many other bodies, else [`Receiver::accept`]ed.
    pub(crate) async fn accept_signed(&self, headers: Headers<'_>, body: &[u8]) -> Outcome {
        let (Some(timestamp), Some(signature)) = (headers.timestamp, headers.signature) else {
            return Outcome::Unsigned("X-ICE-TIMESTAMP and X-ICE-SIGNATURE are required");
        };
        let Ok(seconds) = timestamp.trim().parse::<i64>() else {
            return Outcome::Unsigned("X-ICE-TIMESTAMP is not a Unix time in seconds");
        };
        let now = self.clock.now().timestamp();
        match self.bodies.admit(seconds, signature.trim(), body, now) {
            BodyVerdict::Spent => Outcome::Replayed,
            BodyVerdict::New | BodyVerdict::Repeat => self.accept(body).await,
        }
    }

    /// An authenticated body: parse it, record it and queue its poll.
    pub(crate) async fn accept(&self, body: &[u8]) -> Outcome {
        let event = match envelope::parse(body) {
            Ok(event) => event,
            Err(e) => return Outcome::BadRequest(e.0),
        };
        let record = CallbackEvent {
            event_type: event.event_type.clone(),
            job_id: event.job_id.clone(),
            project_id: event.project_id.clone(),
            status: capped(event.status.as_stored().map(str::to_string)),
            event_time: capped(event.event_time.clone()),
            received_by: self.replica_id.clone(),
            // Asked first as if off: tracking a new project takes from the budget.
            track_unknown: false,
        };
        let at = Timestamp::from(self.clock.now());
        let mut recorded = self.record(record.clone(), at).await;
        if matches!(recorded, Ok(CallbackRecord::Untracked)) && self.track_unknown {
            if !self.budget.take(self.clock.now()) {
                return Outcome::TrackBudgetSpent {
                    project_id: event.project_id,
                };
            }
            let record = CallbackEvent {
                track_unknown: true,
                ..record
            };
            recorded = self.record(record, at).await;
        }
        let recorded = match recorded {
            Ok(recorded) => recorded,
            Err(outcome) => return outcome,
        };
        match recorded {
            CallbackRecord::Queued => Outcome::Accepted {
                project_id: event.project_id,
                event_type: event.event_type,
                job_id: event.job_id,
            },
            CallbackRecord::Tracked => Outcome::Tracked {
                project_id: event.project_id,
                event_type: event.event_type,
                job_id: event.job_id,
            },
            CallbackRecord::Duplicate => Outcome::Duplicate {
                event_type: event.event_type,
                job_id: event.job_id,
            },
            CallbackRecord::Untracked => Outcome::UnknownProject {
                project_id: event.project_id,
                disabled: false,
            },
            CallbackRecord::Disabled => Outcome::UnknownProject {
                project_id: event.project_id,
                disabled: true,
            },
        }
    }
}

impl Receiver {
    /// Records one event. ICE waits 3 s for the answer. The write runs on a task of its
    /// own, so when the database is slower than RECORD_TIMEOUT the answer is a 503 (ICE
    /// retries) while the write still completes or fails whole; a retry then finds it
    /// done.
    async fn record(
        &self,
        record: CallbackEvent,
        at: Timestamp,
    ) -> Result<CallbackRecord, Outcome> {
        let store = self.store.clone();
        let write =
            tokio::spawn(async move { store.callbacks().record_callback(&record, at).await });
        match tokio::time::timeout(RECORD_TIMEOUT, write).await {
            Ok(Ok(result)) => result.map_err(|e| Outcome::Unavailable(describe(&e))),
            Ok(Err(join)) => Err(Outcome::Unavailable(format!("the write failed: {join}"))),
            Err(_) => Err(Outcome::Unavailable(format!(
                "the database did not answer within {RECORD_TIMEOUT:?}"
            ))),
        }
    }
}

fn describe(e: &StorageError) -> String {
    format!("{e:#}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TestClock;
    use secrecy::SecretString;

    const URL: &str = "https://ice-sync.example.com/ice/events";

    fn settings(dir: &tempfile::TempDir) -> crate::config::Settings {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("db").display());
        crate::config::load_from(
            None,
            vec![
                ("ICE_SYNC__DATABASE__URL".to_string(), url),
                (
                    "ICE_SYNC__CALLBACK__LISTEN".to_string(),
                    "127.0.0.1:0".to_string(),
                ),
                ("ICE_SYNC__CALLBACK__URL".to_string(), URL.to_string()),
            ],
        )
        .expect("settings")
    }

    async fn store(dir: &tempfile::TempDir) -> Store {
        Store::connect(&settings(dir).database)
            .await
            .expect("store")
    }

    fn receiver(store: Store, clock: SharedClock) -> Receiver {
        let dir = tempfile::tempdir().expect("dir");
        let keys = KeyRing::from_keys(vec![SecretString::from("TestKey001".to_string())]);
        Receiver::new(&settings(&dir).callback, keys, "test", store, clock).expect("on")
    }

    fn at(seconds: i64) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(seconds, 0).expect("valid")
    }

    fn h<'a>(timestamp: &'a str, signature: &'a str) -> Headers<'a> {
        Headers {
            timestamp: Some(timestamp),
            signature: Some(signature),
        }
    }

    #[tokio::test]
    async fn freshness_is_read_on_the_injected_clock() {
        // The store connects first, on real time: paused time would time its pool out.
        let (r, _dir, clock) = {
            let dir = tempfile::tempdir().expect("dir");
            let store = store(&dir).await;
            tokio::time::pause();
            let clock = TestClock::starting_at(at(1_718_000_000));
            (receiver(store, clock.clone()), dir, clock)
        };
        // Our own vector of shared/reference/ice-callbacks.md, in both cases.
        let ok = "bb3ca5540db3dced48b9b9e2bf83b766";
        assert_eq!(r.authenticate(h("1718000000", ok)), Ok(()));
        let upper = ok.to_ascii_uppercase();
        assert_eq!(r.authenticate(h("1718000000", &upper)), Ok(()));
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert_eq!(
            r.authenticate(h("1718000000", ok)),
            Ok(()),
            "5 min is inside"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            r.authenticate(h("1718000000", ok)),
            Err(Outcome::Stale { skew_seconds: 301 })
        );
        // A clock behind the sender's counts the same way.
        clock.step(chrono::Duration::seconds(-602));
        assert_eq!(
            r.authenticate(h("1718000000", ok)),
            Err(Outcome::Stale { skew_seconds: -301 })
        );
        // A bad signature is refused as such whatever the time.
        let other = signature::digest(URL, "1718000000", "OtherKey9");
        assert_eq!(
            r.authenticate(h("1718000000", &other)),
            Err(Outcome::BadSignature)
        );
        assert!(matches!(
            r.authenticate(Headers::default()),
            Err(Outcome::Unsigned(_))
        ));
        assert!(matches!(
            r.authenticate(h("yesterday", ok)),
            Err(Outcome::Unsigned(_))
        ));
    }

    #[test]
    fn every_outcome_has_a_listed_label_and_a_status() {
        let id = ProjectId::parse("p1").expect("id");
        let all = [
            Outcome::Accepted {
                project_id: id.clone(),
                event_type: "E".into(),
                job_id: "j".into(),
            },
            Outcome::Tracked {
                project_id: id.clone(),
                event_type: "E".into(),
                job_id: "j".into(),
            },
            Outcome::Duplicate {
                event_type: "E".into(),
                job_id: "j".into(),
            },
            Outcome::Unsigned("x"),
            Outcome::BadSignature,
            Outcome::Stale { skew_seconds: 1 },
            Outcome::TooLarge,
            Outcome::BadRequest("x".into()),
            Outcome::UnknownProject {
                project_id: id.clone(),
                disabled: false,
            },
            Outcome::Unavailable("x".into()),
            Outcome::NotFound,
            Outcome::MethodNotAllowed,
            Outcome::Replayed,
            Outcome::TrackBudgetSpent { project_id: id },
        ];
        let labels: Vec<&str> = all.iter().map(Outcome::label).collect();
        assert_eq!(labels, crate::metric_names::CALLBACK_OUTCOMES);
        for o in &all {
            assert_eq!(
                o.status().is_success(),
                o.queued() || o.label() == "duplicate"
            );
            assert!(!o.message("/ice/events").contains('\n'));
        }
    }
}
