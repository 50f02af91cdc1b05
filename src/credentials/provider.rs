//! [`CredentialProvider`]: what the ICE client asks for credentials before signing each
//! request. Static sources hand out fixed credentials; expiring ones (STS, ECS metadata)
//! are cached and refreshed ahead of expiry, one refresh at a time.
//!
//! The refresh rule, for credentials valid for `lifetime` (Expiration minus fetch time):
//! * **fresh** until `Expiration − min(lifetime / 4, 15 min)`: the cached value is served;
//! * **due** from then until `Expiration − min(lifetime / 20, 30 s)`: the first caller
//!   refreshes (single flight, `try_lock`); everyone else, and that caller too if the
//!   refresh fails, keeps using the cached value. A failed refresh is retried no sooner
//!   than a backoff (1 s doubling to 60 s) later;
//! * **expired** after that: callers wait for one refresh; if it fails, they get a
//!   [`CredentialError`] naming the source, and until the backoff has passed later callers
//!   get the same error without another request to STS or the metadata service.
//!
//! For a one-hour STS token that is a refresh 15 minutes before expiry and a hard stop
//! 30 s before it (the SDKs' 180 s / 15 min points, credentials.md section 8); for
//! STS's 15-minute minimum it is 3¾ minutes before. ICE rejecting a token anyway (revoked
//! early, clock skew) makes the client call [`CredentialProvider::invalidate`], which
//! forces the next caller to refresh.
//!
//! Time comes from a [`Clock`] (`crate::clock`), so expiry is tested without sleeping.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use secrecy::ExposeSecret;
use tokio::sync::OnceCell;

use super::{CredentialError, Credentials};

/// The crate's clock: the daemon uses [`SystemClock`]; tests drive a manual one.
pub use crate::clock::{Clock, SystemClock};

const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(15 * 60);
const MAX_EXPIRY_MARGIN: Duration = Duration::from_secs(30);
const BACKOFF_BASE: Duration = Duration::from_secs(1);
const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// What one fetch from an expiring source produced.
pub struct Fetched {
    pub(crate) credentials: Credentials,
    /// `None` for credentials that do not expire (a static profile behind a chain).
    pub(crate) expiration: Option<DateTime<Utc>>,
}

/// A source that can be asked again: ECS metadata, AssumeRole, AssumeRoleWithOIDC.
pub(crate) trait Fetch: Send + Sync {
    fn fetch(&self) -> BoxFuture<'_, Result<Fetched, CredentialError>>;
    /// The "source in use" line: what and where, never a secret.
    fn describe(&self) -> String;
    /// A short stable label (`ecs_ram_role`, `ram_role_arn`, ...) for logs and metrics.
    fn kind(&self) -> &'static str;
}

/// Credentials as handed to one request, with the generation they belong to so that a
/// rejection can invalidate exactly them and not a newer set.
#[derive(Clone)]
pub(crate) struct Issued {
    pub(crate) credentials: Credentials,
    pub(crate) generation: u64,
}

/// Cheap to clone; every clone shares one cache.
#[derive(Clone)]
pub struct CredentialProvider {
    inner: Arc<Inner>,
}

enum Inner {
    Static {
        credentials: Credentials,
        kind: &'static str,
    },
    Refreshing(Refreshing),
    Chain(Chain),
}

impl fmt::Debug for CredentialProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialProvider")
            .field("source", &self.source())
            .finish_non_exhaustive()
    }
}

impl From<Credentials> for CredentialProvider {
    fn from(credentials: Credentials) -> Self {
        CredentialProvider::fixed(credentials, "static")
    }
}

impl CredentialProvider {
    /// Credentials that never change (an AccessKey, or an STS token someone else renews).
    pub(crate) fn fixed(credentials: Credentials, kind: &'static str) -> Self {
        Self {
            inner: Arc::new(Inner::Static { credentials, kind }),
        }
    }

    pub(crate) fn refreshing(source: Box<dyn Fetch>, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner::Refreshing(Refreshing {
                source,
                clock,
                state: Mutex::new(CacheState::default()),
                flight: tokio::sync::Mutex::new(()),
            })),
        }
    }

    /// The default chain: candidates in order, the first that yields credentials wins
    /// and is used from then on (the SDKs do the same, credentials.md section 1).
    pub(crate) fn chain(candidates: Vec<Candidate>, hint: String) -> Self {
        Self {
            inner: Arc::new(Inner::Chain(Chain {
                candidates,
                hint,
                chosen: OnceCell::new(),
            })),
        }
    }

    /// Current credentials, refreshed if due.
    pub async fn credentials(&self) -> Result<Credentials, CredentialError> {
        self.issue().await.map(|i| i.credentials)
    }

    pub(crate) fn issue(&self) -> BoxFuture<'_, Result<Issued, CredentialError>> {
        Box::pin(async move {
            match &*self.inner {
                Inner::Static { credentials, .. } => Ok(Issued {
                    credentials: credentials.clone(),
                    generation: 0,
                }),
                Inner::Refreshing(r) => r.get().await,
                Inner::Chain(c) => c.resolve().await?.issue().await,
            }
        })
    }

    /// The credentials in `generation` were rejected (ICE said the token expired):
    /// the next caller fetches new ones. A no-op for static credentials.
    pub(crate) fn invalidate(&self, generation: u64) {
        match &*self.inner {
            Inner::Static { .. } => {}
            Inner::Refreshing(r) => r.invalidate(generation),
            Inner::Chain(c) => {
                if let Some(p) = c.chosen.get() {
                    p.invalidate(generation)
                }
            }
        }
    }

    /// Whether [`invalidate`](Self::invalidate) can lead to different credentials.
    pub(crate) fn refreshable(&self) -> bool {
        match &*self.inner {
            Inner::Static { .. } => false,
            Inner::Refreshing(_) => true,
            Inner::Chain(c) => c.chosen.get().is_some_and(|p| p.refreshable()),
        }
    }

    /// The source in use, for `ice-sync check` and the start-up log: what kind and where
    /// from, never a secret. Before a chain has resolved, the candidates it will try.
    pub fn source(&self) -> String {
        match &*self.inner {
            Inner::Static { credentials, .. } => credentials.source.clone(),
            Inner::Refreshing(r) => r.source.describe(),
            Inner::Chain(c) => match c.chosen.get() {
                Some(p) => p.source(),
                None => format!("default chain, not resolved yet ({})", c.names()),
            },
        }
    }

    /// `default/<kind>` as the SDKs log it: `env`, `ecs_ram_role`, `ram_role_arn`, ...
    pub fn kind(&self) -> String {
        match &*self.inner {
            Inner::Static { kind, .. } => format!("default/{kind}"),
            Inner::Refreshing(r) => format!("default/{}", r.source.kind()),
            Inner::Chain(c) => match c.chosen.get() {
                Some(p) => p.kind(),
                None => "default/unresolved".to_string(),
            },
        }
    }
}

/// One entry of the chain as found on this machine: usable, or why not.
pub(crate) enum Candidate {
    /// Not configured here (variables unset, file absent): a reason for the final error.
    Absent { name: &'static str, why: String },
    /// Configured but unusable (a broken file): tried and reported like a failure.
    Broken { name: &'static str, error: String },
    Ready {
        name: &'static str,
        provider: CredentialProvider,
    },
}

impl Candidate {
    /// A source read from a file: absent if the file is, else what loading it gives.
    pub(crate) fn from_file(
        name: &'static str,
        path: &std::path::Path,
        load: impl FnOnce(&std::path::Path) -> Result<CredentialProvider, String>,
    ) -> Candidate {
        if !path.exists() {
            return Candidate::Absent {
                name,
                why: format!("{} does not exist", path.display()),
            };
        }
        match load(path) {
            Ok(provider) => Candidate::Ready { name, provider },
            Err(error) => Candidate::Broken { name, error },
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Candidate::Absent { name, .. }
            | Candidate::Broken { name, .. }
            | Candidate::Ready { name, .. } => name,
        }
    }
}

struct Chain {
    candidates: Vec<Candidate>,
    hint: String,
    chosen: OnceCell<CredentialProvider>,
}

impl Chain {
    fn names(&self) -> String {
        self.candidates
            .iter()
            .filter(|c| !matches!(c, Candidate::Absent { .. }))
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    async fn resolve(&self) -> Result<&CredentialProvider, CredentialError> {
        // OnceCell runs one initializer at a time: 64 first requests walk the chain once.
        self.chosen
            .get_or_try_init(|| async {
                let mut tried = Vec::new();
                let mut transient = false;
                for candidate in &self.candidates {
                    match candidate {
                        Candidate::Absent { name, why } => tried.push(format!("{name}: {why}")),
                        Candidate::Broken { name, error } => {
                            tried.push(format!("{name}: {error}"))
                        }
                        Candidate::Ready { name, provider } => match provider.issue().await {
                            Ok(_) => {
                                tracing::debug!(source = %provider.source(), "credential chain resolved");
                                return Ok(provider.clone());
                            }
                            Err(e) => {
                                transient |= e.transient;
                                tried.push(format!("{name}: {}", e.detail));
                            }
                        },
                    }
                }
                Err(CredentialError {
                    origin: "default credential chain".to_string(),
                    detail: format!(
                        "no Alibaba Cloud credentials found; tried {}. {}",
                        tried.join("; "),
                        self.hint
                    ),
                    transient,
                })
            })
            .await
    }
}

#[derive(Clone)]
struct Cached {
    credentials: Credentials,
    generation: u64,
    refresh_at: DateTime<Utc>,
    usable_until: DateTime<Utc>,
}

#[derive(Default)]
struct CacheState {
    current: Option<Cached>,
    generation: u64,
    failures: u32,
    next_attempt: Option<DateTime<Utc>>,
    last_error: Option<CredentialError>,
}

struct Refreshing {
    source: Box<dyn Fetch>,
    clock: Arc<dyn Clock>,
    state: Mutex<CacheState>,
    /// Held by the one caller that is refreshing.
    flight: tokio::sync::Mutex<()>,
}

enum Phase {
    Fresh(Issued),
    Due(Issued),
    Expired,
}

fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Fresh-until and usable-until points for credentials fetched at `now`.
fn schedule(now: DateTime<Utc>, expiration: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let lifetime = (expiration - now).to_std().unwrap_or(Duration::ZERO);
    let refresh_margin = (lifetime / 4).min(MAX_REFRESH_MARGIN);
    let expiry_margin = (lifetime / 20).min(MAX_EXPIRY_MARGIN);
    (
        expiration - chrono_of(refresh_margin),
        expiration - chrono_of(expiry_margin),
    )
}

fn backoff(failures: u32) -> Duration {
    BACKOFF_BASE
        .saturating_mul(1u32 << failures.saturating_sub(1).min(10))
        .min(BACKOFF_CAP)
}

impl Refreshing {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn phase(&self, now: DateTime<Utc>) -> Phase {
        let state = self.lock();
        match &state.current {
            Some(c) => {
                let issued = Issued {
                    credentials: c.credentials.clone(),
                    generation: c.generation,
                };
                if now < c.refresh_at {
                    Phase::Fresh(issued)
                } else if now < c.usable_until {
                    Phase::Due(issued)
                } else {
                    Phase::Expired
                }
            }
            None => Phase::Expired,
        }
    }

    /// The last failure, if it is too recent to try again.
    fn backing_off(&self, now: DateTime<Utc>) -> Option<CredentialError> {
        let state = self.lock();
        match (&state.next_attempt, &state.last_error) {
            (Some(at), Some(e)) if now < *at => Some(e.clone()),
            _ => None,
        }
    }

    async fn get(&self) -> Result<Issued, CredentialError> {
        let now = self.clock.now();
        match self.phase(now) {
            Phase::Fresh(issued) => Ok(issued),
            Phase::Due(issued) => {
                if self.backing_off(now).is_some() {
                    return Ok(issued);
                }
                // Single flight: whoever is already refreshing will update the cache.
                let Ok(_guard) = self.flight.try_lock() else {
                    return Ok(issued);
                };
                if let Phase::Fresh(newer) = self.phase(self.clock.now()) {
                    return Ok(newer);
                }
                match self.refresh().await {
                    Ok(newer) => Ok(newer),
                    Err(e) => {
                        tracing::warn!(
                            source = %self.source.describe(),
                            error = %e.detail,
                            "credential refresh failed; the current credentials are still valid and will be used meanwhile"
                        );
                        Ok(issued)
                    }
                }
            }
            Phase::Expired => {
                if let Some(e) = self.backing_off(now) {
                    return Err(e);
                }
                let _guard = self.flight.lock().await;
                // Someone else may have refreshed (or failed) while we waited.
                let now = self.clock.now();
                match self.phase(now) {
                    Phase::Fresh(i) | Phase::Due(i) => return Ok(i),
                    Phase::Expired => {}
                }
                if let Some(e) = self.backing_off(now) {
                    return Err(e);
                }
                self.refresh().await
            }
        }
    }

    async fn refresh(&self) -> Result<Issued, CredentialError> {
        let kind = self.source.kind();
        let result = self.source.fetch().await;
        let now = self.clock.now();
        let result = result.and_then(|f| {
            let expiration = f
                .expiration
                .unwrap_or(now + chrono::Duration::days(365 * 100));
            if expiration <= now {
                return Err(CredentialError::permanent(
                    self.source.describe(),
                    format!(
                        "the credentials it returned expire at {} but this host's clock says {}: \
                         check the system clock (NTP)",
                        expiration.format("%Y-%m-%dT%H:%M:%SZ"),
                        now.format("%Y-%m-%dT%H:%M:%SZ")
                    ),
                ));
            }
            check_header_safe(&f.credentials)?;
            Ok((f.credentials, expiration))
        });
        let mut state = self.lock();
        match result {
            Ok((credentials, expiration)) => {
                metrics::counter!(crate::metric_names::CREDENTIAL_REFRESHES, "kind" => kind, "outcome" => "ok")
                    .increment(1);
                state.generation += 1;
                let (refresh_at, usable_until) = schedule(now, expiration);
                let cached = Cached {
                    credentials,
                    generation: state.generation,
                    refresh_at,
                    usable_until,
                };
                state.current = Some(cached.clone());
                state.failures = 0;
                state.next_attempt = None;
                state.last_error = None;
                tracing::debug!(
                    source = %self.source.describe(),
                    expiration = %expiration.format("%Y-%m-%dT%H:%M:%SZ"),
                    refresh_at = %refresh_at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                    "credentials refreshed"
                );
                Ok(Issued {
                    credentials: cached.credentials,
                    generation: cached.generation,
                })
            }
            Err(e) => {
                metrics::counter!(crate::metric_names::CREDENTIAL_REFRESHES, "kind" => kind, "outcome" => "error")
                    .increment(1);
                state.failures += 1;
                state.next_attempt = Some(now + chrono_of(backoff(state.failures)));
                state.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    fn invalidate(&self, generation: u64) {
        let now = self.clock.now();
        let mut state = self.lock();
        if let Some(c) = state.current.as_mut() {
            if c.generation == generation && c.usable_until > now {
                c.refresh_at = now;
                c.usable_until = now;
                // A rejection is news: try at once rather than after an old backoff.
                state.next_attempt = None;
                tracing::info!(
                    source = %self.source.describe(),
                    "ICE rejected the temporary credentials; fetching new ones"
                );
            }
        }
    }
}

/// These go into HTTP headers; a stray newline or NUL would break every request.
pub(crate) fn check_header_safe(c: &Credentials) -> Result<(), CredentialError> {
    let token = c.security_token.as_ref().map(|t| t.expose_secret());
    for (what, value) in [
        ("access key id", Some(c.access_key_id.as_str())),
        (
            "access key secret",
            Some(c.access_key_secret.expose_secret()),
        ),
        ("security token", token),
    ] {
        let Some(value) = value else { continue };
        if value.is_empty() && what != "security token" {
            return Err(CredentialError::permanent(
                c.source.clone(),
                format!("the {what} is empty"),
            ));
        }
        if value.chars().any(|ch| ch.is_control()) {
            return Err(CredentialError::permanent(
                c.source.clone(),
                format!("the {what} contains control characters; remove them"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use secrecy::SecretString;
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    /// A clock the test moves by hand (milliseconds since an arbitrary start).
    #[derive(Debug)]
    pub(crate) struct ManualClock(AtomicU64);

    impl ManualClock {
        pub(crate) fn new() -> Arc<Self> {
            Arc::new(Self(AtomicU64::new(0)))
        }
        pub(crate) fn advance(&self, d: Duration) {
            self.0.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> DateTime<Utc> {
            DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap_or_default()
                + chrono::Duration::milliseconds(self.0.load(Ordering::SeqCst) as i64)
        }
    }

    /// Issues credentials valid for `lifetime` from the clock's now; fails while `failing`.
    struct Counting {
        clock: Arc<ManualClock>,
        lifetime: Duration,
        calls: Arc<AtomicU32>,
        failing: Arc<std::sync::atomic::AtomicBool>,
        delay: Duration,
    }

    impl Fetch for Counting {
        fn fetch(&self) -> BoxFuture<'_, Result<Fetched, CredentialError>> {
            Box::pin(async move {
                let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
                if !self.delay.is_zero() {
                    tokio::time::sleep(self.delay).await;
                }
                if self.failing.load(Ordering::SeqCst) {
                    return Err(CredentialError::transient(
                        "test source".into(),
                        "metadata unreachable".into(),
                    ));
                }
                Ok(Fetched {
                    credentials: Credentials {
                        access_key_id: format!("STS.{n}"),
                        access_key_secret: SecretString::from(format!("secret-{n}")),
                        security_token: Some(SecretString::from(format!("token-{n}"))),
                        source: "test source".into(),
                    },
                    expiration: Some(self.clock.now() + chrono_of(self.lifetime)),
                })
            })
        }
        fn describe(&self) -> String {
            "test source".into()
        }
        fn kind(&self) -> &'static str {
            "test"
        }
    }

    struct Rig {
        clock: Arc<ManualClock>,
        calls: Arc<AtomicU32>,
        failing: Arc<std::sync::atomic::AtomicBool>,
        provider: CredentialProvider,
    }

    fn rig(lifetime: Duration, delay: Duration) -> Rig {
        let clock = ManualClock::new();
        let calls = Arc::new(AtomicU32::new(0));
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let provider = CredentialProvider::refreshing(
            Box::new(Counting {
                clock: clock.clone(),
                lifetime,
                calls: calls.clone(),
                failing: failing.clone(),
                delay,
            }),
            clock.clone(),
        );
        Rig {
            clock,
            calls,
            failing,
            provider,
        }
    }

    async fn id(p: &CredentialProvider) -> String {
        p.credentials().await.expect("credentials").access_key_id
    }

    #[test]
    fn refresh_points_follow_the_documented_rule() {
        let now = Utc::now();
        let (r, u) = schedule(now, now + chrono::Duration::hours(1));
        assert_eq!(r, now + chrono::Duration::minutes(45));
        assert_eq!(u, now + chrono::Duration::seconds(3570));
        let (r, u) = schedule(now, now + chrono::Duration::seconds(900));
        assert_eq!(r, now + chrono::Duration::seconds(675));
        assert_eq!(u, now + chrono::Duration::seconds(870));
        let (r, _) = schedule(now, now + chrono::Duration::hours(6));
        assert_eq!(r, now + chrono::Duration::minutes(345));
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(30), BACKOFF_CAP);
    }

    #[tokio::test]
    async fn cached_until_due_then_refreshed_once() {
        let r = rig(Duration::from_secs(3600), Duration::ZERO);
        assert_eq!(id(&r.provider).await, "STS.1");
        r.clock.advance(Duration::from_secs(44 * 60));
        assert_eq!(id(&r.provider).await, "STS.1");
        assert_eq!(r.calls.load(Ordering::SeqCst), 1);
        r.clock.advance(Duration::from_secs(2 * 60));
        assert_eq!(id(&r.provider).await, "STS.2");
        assert_eq!(id(&r.provider).await, "STS.2");
        assert_eq!(r.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_refresh_serves_the_valid_token_and_backs_off() {
        let r = rig(Duration::from_secs(3600), Duration::ZERO);
        assert_eq!(id(&r.provider).await, "STS.1");
        r.failing.store(true, Ordering::SeqCst);
        r.clock.advance(Duration::from_secs(50 * 60));
        // Due: the refresh fails, the still-valid credentials are served.
        assert_eq!(id(&r.provider).await, "STS.1");
        assert_eq!(r.calls.load(Ordering::SeqCst), 2);
        // Within the backoff nothing is asked.
        assert_eq!(id(&r.provider).await, "STS.1");
        assert_eq!(r.calls.load(Ordering::SeqCst), 2);
        r.clock.advance(Duration::from_millis(1500));
        assert_eq!(id(&r.provider).await, "STS.1");
        assert_eq!(r.calls.load(Ordering::SeqCst), 3);
        // Past expiry, the error names the source; repeated callers do not hammer it.
        r.clock.advance(Duration::from_secs(10 * 60));
        let e = r.provider.credentials().await.expect_err("expired");
        assert!(e.to_string().contains("test source"), "{e}");
        assert!(e.transient);
        let calls = r.calls.load(Ordering::SeqCst);
        for _ in 0..10 {
            assert!(r.provider.credentials().await.is_err());
        }
        assert_eq!(r.calls.load(Ordering::SeqCst), calls);
        r.failing.store(false, Ordering::SeqCst);
        r.clock.advance(BACKOFF_CAP);
        assert_eq!(id(&r.provider).await, format!("STS.{}", calls + 1));
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_refresh() {
        let r = rig(Duration::from_secs(3600), Duration::from_millis(50));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let p = r.provider.clone();
                tokio::spawn(async move { id(&p).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.expect("join"), "STS.1");
        }
        assert_eq!(r.calls.load(Ordering::SeqCst), 1);
        // Due: one caller refreshes while the other 63 carry on with the old ones.
        r.clock.advance(Duration::from_secs(50 * 60));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let p = r.provider.clone();
                tokio::spawn(async move { id(&p).await })
            })
            .collect();
        for t in tasks {
            t.await.expect("join");
        }
        assert_eq!(r.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn invalidation_refreshes_once_per_generation() {
        let r = rig(Duration::from_secs(3600), Duration::ZERO);
        let first = r.provider.issue().await.expect("issue");
        r.provider.invalidate(first.generation);
        let second = r.provider.issue().await.expect("issue");
        assert_eq!(second.credentials.access_key_id, "STS.2");
        // A late rejection of the old generation changes nothing.
        r.provider.invalidate(first.generation);
        assert_eq!(id(&r.provider).await, "STS.2");
        assert_eq!(r.calls.load(Ordering::SeqCst), 2);
        assert!(r.provider.refreshable());
    }

    #[tokio::test]
    async fn debug_never_shows_secrets() {
        let r = rig(Duration::from_secs(3600), Duration::ZERO);
        let c = r.provider.credentials().await.expect("credentials");
        let text = format!("{:?} {:?}", r.provider, c);
        assert!(
            !text.contains("secret-1") && !text.contains("token-1"),
            "{text}"
        );
    }
}
