//! A loopback ICE: a real HTTP server that verifies ACS3-HMAC-SHA256 signatures and
//! answers `GetEditingProject` and `ListEditingProjects` like the real gateway, for
//! tests, benchmarks and `ice-sync demo`. It also keeps the region's event-callback
//! setting (`SetEventCallback` / `GetEventCallback`) and, when a producing job it scripts
//! finishes, sends the signed `ProduceMediaComplete` callback with IMS's retries
//! (`events`). The same port also serves the credential
//! sources' services: STS (`sts`: AssumeRole, AssumeRoleWithOIDC) and the ECS metadata
//! service (`metadata`); the temporary credentials they issue are accepted by the ICE
//! side until they expire.
//!
//! [`SignedCaller`] (`caller`) is the bare signed client of this API, for tests and the
//! benchmarks' bare floor.
//!
//! This file owns the public API ([`Simulator`], [`SimulatorConfig`]), the shared state
//! and the request pipeline: count, delay, verify (`auth`), draw a fault (`faults`),
//! answer (`api`). Projects and their lifecycles come from `lifecycle`.
//!
//! The state sits behind one `std::sync::Mutex` that is never held across an `.await`:
//! every pipeline step takes the lock, does its bookkeeping and lets go before sleeping
//! or writing to the socket.

mod api;
mod auth;
mod caller;
mod events;
mod faults;
mod hostile;
mod jobs;
mod lifecycle;
mod metadata;
mod sts;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use chrono::Utc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use ice_wire::model::Project;

pub use caller::SignedCaller;
pub use events::{Delivery, EventCallback, PRODUCE_MEDIA_COMPLETE};
pub use faults::{FaultConfig, MalformedKind};
pub use hostile::Hostile;
pub use jobs::FAILURE_CODE as JOB_FAILURE_CODE;
pub use metadata::{MetadataCalls, MetadataMode, DEFAULT_ROLE as DEFAULT_ECS_ROLE};
pub use sts::{DEFAULT_OIDC_PROVIDER_ARN, DEFAULT_OIDC_TOKEN, DEFAULT_ROLE_ARN};

/// How far back the nonce cache reaches; far more than any test sends in 15 minutes.
const NONCE_CAPACITY: usize = 200_000;
/// How long `shutdown` lets in-flight requests (say, a slow fault) finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// What the simulator accepts and how it misbehaves.
#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    pub access_key_id: String,
    pub access_key_secret: String,
    /// When set, requests must carry this `x-acs-security-token` and an
    /// `x-acs-accesskey-id`, both signed. When unset, a request carrying a token is
    /// refused (the token cannot belong to a long-term AccessKey).
    pub security_token: Option<String>,
    /// Seeds project generation, lifecycle outcomes, fault draws and paging tokens.
    pub seed: u64,
    /// Added to every response.
    pub latency: Duration,
    pub faults: FaultConfig,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            access_key_id: "LTAI5tSimulatorKey0001".to_string(),
            access_key_secret: "SimulatorSecret0123456789abcdef".to_string(),
            security_token: None,
            seed: 42,
            latency: Duration::ZERO,
            faults: FaultConfig::default(),
        }
    }
}

struct Inner {
    credentials: auth::Credentials,
    latency: Duration,
    /// Answers go out without a Content-Length, in chunks (see `set_chunked`).
    chunked: bool,
    faults: FaultConfig,
    hostile: Hostile,
    malformed_kinds: Vec<MalformedKind>,
    /// When set, every signed API request is answered with this error (see
    /// `set_api_error`).
    api_error: Option<api::ApiError>,
    projects: BTreeMap<String, Project>,
    /// When set, `ListEditingProjects` answers from this older copy (see `lag_list`).
    list_snapshot: Option<BTreeMap<String, Project>>,
    /// The creation order pages are read from (`api::creation_order`), of `projects`
    /// (rebuilt when one is added or removed) and of the snapshot.
    list_order: Option<Vec<api::SortKey>>,
    snapshot_order: Vec<api::SortKey>,
    /// The `NextToken` of every `ListEditingProjects` request (`None`: page one).
    list_tokens: Vec<Option<String>>,
    calls: HashMap<String, u64>,
    calls_by_action: HashMap<String, u64>,
    total_calls: u64,
    faults_injected: u64,
    arrivals: Vec<Instant>,
    nonces: auth::NonceCache,
    /// Separate streams, so that e.g. the number of requests served does not change
    /// which projects `populate` generates or how `advance` turns out.
    content_rng: StdRng,
    id_rng: StdRng,
    fault_rng: StdRng,
    request_id_rng: StdRng,
    token_key: u64,
    /// Temporary credentials from STS and the metadata service.
    issued: sts::IssuedKeys,
    issue_rng: StdRng,
    sts: sts::StsState,
    metadata: metadata::MetadataState,
    /// ICE requests that verified with issued (temporary) credentials.
    issued_ice_calls: u64,
    /// The event-callback setting, producing jobs and callback deliveries.
    events: events::EventState,
    /// The producing jobs as `GetMediaProducingJob` reports them (`jobs`).
    jobs: jobs::JobState,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Inner> {
    // A panic while holding the lock cannot leave the maps half-updated in a way that
    // matters to a test double; keep serving.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running simulator. Dropping it aborts the server; [`Simulator::shutdown`] stops it
/// gracefully.
pub struct Simulator {
    shared: Shared,
    addr: SocketAddr,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Starts on `127.0.0.1` with a free port.
    pub async fn start(config: SimulatorConfig) -> anyhow::Result<Simulator> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    pub async fn start_on(addr: SocketAddr, config: SimulatorConfig) -> anyhow::Result<Simulator> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("simulator cannot listen on {addr}: {e}"))?;
        let addr = listener.local_addr()?;
        let seed = config.seed;
        let inner = Inner {
            credentials: auth::Credentials {
                access_key_id: config.access_key_id,
                access_key_secret: config.access_key_secret,
                security_token: config.security_token,
            },
            latency: config.latency,
            chunked: false,
            faults: config.faults,
            hostile: Hostile::None,
            malformed_kinds: Vec::new(),
            api_error: None,
            projects: BTreeMap::new(),
            list_snapshot: None,
            list_order: None,
            snapshot_order: Vec::new(),
            list_tokens: Vec::new(),
            calls: HashMap::new(),
            calls_by_action: HashMap::new(),
            total_calls: 0,
            faults_injected: 0,
            arrivals: Vec::new(),
            nonces: auth::NonceCache::new(NONCE_CAPACITY),
            content_rng: StdRng::seed_from_u64(seed),
            id_rng: StdRng::seed_from_u64(seed.wrapping_add(1)),
            fault_rng: StdRng::seed_from_u64(seed.wrapping_add(2)),
            request_id_rng: StdRng::seed_from_u64(seed.wrapping_add(3)),
            token_key: StdRng::seed_from_u64(seed.wrapping_add(4)).gen(),
            issued: sts::IssuedKeys::default(),
            issue_rng: StdRng::seed_from_u64(seed.wrapping_add(5)),
            sts: sts::StsState::default(),
            metadata: metadata::MetadataState::default(),
            issued_ice_calls: 0,
            events: events::EventState::new(StdRng::seed_from_u64(seed.wrapping_add(6))),
            jobs: jobs::JobState::default(),
        };
        let shared: Shared = Arc::new(Mutex::new(inner));
        let router = Router::new()
            .route("/", any(handle))
            .fallback(handle)
            .with_state(shared.clone());
        let cancel = CancellationToken::new();
        let stop = cancel.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::warn!(error = %e, "ICE simulator stopped");
            }
        });
        tracing::debug!(%addr, "ICE simulator listening");
        Ok(Simulator {
            shared,
            addr,
            cancel,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`, usable as `ice.endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn state(&self) -> MutexGuard<'_, Inner> {
        lock(&self.shared)
    }

    /// Adds or replaces a project exactly as given. A project without a ProjectId
    /// cannot be addressed and is ignored.
    pub fn insert(&self, project: Project) {
        if let Some(id) = project.project_id.clone() {
            let mut state = self.state();
            state.projects.insert(id, project);
            state.list_order = None;
        }
    }

    /// Adds (or replaces) a realistic regular project in `Draft`.
    pub fn add_regular(&self, id: &str) -> Project {
        let mut state = self.state();
        let project = lifecycle::regular(id, &mut state.content_rng, Utc::now());
        state.projects.insert(id.to_string(), project.clone());
        state.list_order = None;
        project
    }

    /// Adds (or replaces) a live-editing project that is `Reserving`.
    pub fn add_live(&self, id: &str) -> Project {
        let mut state = self.state();
        let project = lifecycle::live(id, &mut state.content_rng, Utc::now());
        state.projects.insert(id.to_string(), project.clone());
        state.list_order = None;
        project
    }

    /// Adds `regular` regular then `live` live projects with seeded 32-hex IDs, never
    /// reusing an ID already present; returns the IDs in that order.
    pub fn populate(&self, regular: usize, live: usize) -> Vec<String> {
        let mut state = self.state();
        let now = Utc::now();
        let mut ids = Vec::with_capacity(regular + live);
        for i in 0..regular + live {
            let id = loop {
                let candidate = lifecycle::new_id(&mut state.id_rng);
                if !state.projects.contains_key(&candidate) {
                    break candidate;
                }
            };
            let project = if i < regular {
                lifecycle::regular(&id, &mut state.content_rng, now)
            } else {
                lifecycle::live(&id, &mut state.content_rng, now)
            };
            state.projects.insert(id.clone(), project);
            ids.push(id);
        }
        state.list_order = None;
        ids
    }

    /// Sets Status and/or BusinessStatus verbatim (unknown values are fine) and bumps
    /// ModifiedTime. `None` leaves that field as it is. Unknown IDs are ignored.
    pub fn set_status(&self, id: &str, status: Option<&str>, business_status: Option<&str>) {
        if let Some(project) = self.state().projects.get_mut(id) {
            if let Some(s) = status {
                project.status = Some(s.to_string());
            }
            if let Some(b) = business_status {
                project.business_status = Some(b.to_string());
            }
            project.modified_time = Some(lifecycle::timestamp(Utc::now()));
        }
    }

    /// Gives the project a valid Timeline of about `bytes` bytes (an edit: ModifiedTime
    /// moves), so its answer is that large; false if the project is unknown.
    pub fn inflate(&self, id: &str, bytes: usize) -> bool {
        match self.state().projects.get_mut(id) {
            Some(project) => {
                project.timeline = Some(lifecycle::inflated_timeline(id, bytes));
                project.modified_time = Some(lifecycle::timestamp(Utc::now()));
                true
            }
            None => false,
        }
    }

    /// From now on answers are streamed in chunks without a Content-Length (`true`), as
    /// some gateways and proxies send them, or sent whole with one (`false`, the default).
    pub fn set_chunked(&self, chunked: bool) {
        self.state().chunked = chunked;
    }

    /// One lifecycle step (see `lifecycle.rs`); false if the project is unknown or terminal.
    pub fn advance(&self, id: &str) -> bool {
        let mut guard = self.state();
        let state = &mut *guard;
        match state.projects.get_mut(id) {
            Some(project) => {
                let before = project.status.clone();
                let now = Utc::now();
                let moved = lifecycle::advance(project, &mut state.content_rng, now);
                let project = project.clone();
                follow_with_job(state, before.as_deref(), &project, now);
                moved
            }
            None => false,
        }
    }

    /// Advances each non-terminal project with probability `fraction` (seeded, in ID
    /// order); returns how many moved.
    pub fn advance_random(&self, fraction: f64) -> usize {
        let fraction = fraction.clamp(0.0, 1.0);
        let mut guard = self.state();
        let state = &mut *guard;
        let now = Utc::now();
        let mut moved = 0;
        let mut produced = Vec::new();
        for project in state.projects.values_mut() {
            let before = project.status.clone();
            if lifecycle::can_advance(project)
                && state.content_rng.gen_bool(fraction)
                && lifecycle::advance(project, &mut state.content_rng, now)
            {
                moved += 1;
                if before.as_deref() == Some("Producing")
                    || project.status.as_deref() == Some("Producing")
                {
                    produced.push((before, project.clone()));
                }
            }
        }
        for (before, project) in produced {
            follow_with_job(state, before.as_deref(), &project, now);
        }
        moved
    }

    /// Deletes the project; `GetEditingProject` then answers 400 `InvalidParameter`.
    pub fn remove(&self, id: &str) -> Option<Project> {
        let mut state = self.state();
        state.list_order = None;
        state.projects.remove(id)
    }

    /// Puts a removed project back (same as [`Simulator::insert`]).
    pub fn restore(&self, project: Project) {
        self.insert(project);
    }

    pub fn project(&self, id: &str) -> Option<Project> {
        self.state().projects.get(id).cloned()
    }

    /// All IDs, sorted.
    pub fn project_ids(&self) -> Vec<String> {
        self.state().projects.keys().cloned().collect()
    }

    /// `GetEditingProject` requests received for this ID, whatever their outcome.
    pub fn calls(&self, id: &str) -> u64 {
        self.state().calls.get(id).copied().unwrap_or(0)
    }

    /// Every request received, including ones that failed authentication.
    pub fn total_calls(&self) -> u64 {
        self.state().total_calls
    }

    /// Requests received with this `x-acs-action`, whatever their outcome.
    pub fn calls_by_action(&self, action: &str) -> u64 {
        self.state()
            .calls_by_action
            .get(action)
            .copied()
            .unwrap_or(0)
    }

    pub fn faults_injected(&self) -> u64 {
        self.state().faults_injected
    }

    /// From now on `ListEditingProjects` answers with the projects as they are now, while
    /// `GetEditingProject` keeps answering the truth: a list index that lags behind.
    pub fn lag_list(&self) {
        let mut state = self.state();
        state.snapshot_order = api::creation_order(&state.projects);
        state.list_snapshot = Some(state.projects.clone());
    }

    /// The list answers the truth again.
    pub fn unlag_list(&self) {
        let mut state = self.state();
        state.list_snapshot = None;
        state.snapshot_order = Vec::new();
    }

    /// Every `NextToken` issued so far stops being accepted (`InvalidParameter`, as ICE
    /// answers a token it no longer honours); new ones work.
    pub fn expire_list_tokens(&self) {
        let mut state = self.state();
        state.token_key = state.token_key.wrapping_add(0x9E37_79B9_7F4A_7C15);
    }

    /// The `NextToken` each `ListEditingProjects` request carried, in arrival order
    /// (`None` for page one), whatever its outcome.
    pub fn list_tokens(&self) -> Vec<Option<String>> {
        self.state().list_tokens.clone()
    }

    /// Replaces every answer (ICE, STS, metadata) with a hostile one; `Hostile::None`
    /// restores the real answers.
    pub fn set_hostile(&self, hostile: Hostile) {
        self.state().hostile = hostile;
    }

    pub fn set_faults(&self, faults: FaultConfig) {
        self.state().faults = faults;
    }

    /// Restricts which malformed bodies the `malformed` fault serves; empty means all.
    /// Every signed API request from now on is answered with HTTP `status`, `code` and
    /// `message` (`None`: answered normally again). For errors whose text is odd: a
    /// message with U+0000, control characters, or 200 KB.
    pub fn set_api_error(&self, error: Option<(u16, &str, &str)>) {
        self.state().api_error = error.map(|(status, code, message)| {
            api::ApiError::new(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                code,
                message,
            )
        });
    }

    pub fn set_malformed_kinds(&self, kinds: &[MalformedKind]) {
        self.state().malformed_kinds = kinds.to_vec();
    }

    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    /// Replaces the one AccessKey (and STS token) the simulator accepts.
    pub fn set_credentials(&self, ak_id: &str, secret: &str, token: Option<&str>) {
        self.state().credentials = auth::Credentials {
            access_key_id: ak_id.to_string(),
            access_key_secret: secret.to_string(),
            security_token: token.map(str::to_string),
        };
    }

    /// STS: the role `AssumeRole` / `AssumeRoleWithOIDC` accept (default
    /// [`DEFAULT_ROLE_ARN`]).
    pub fn set_sts_role(&self, role_arn: &str) {
        self.state().sts.role_arn = role_arn.to_string();
    }

    /// STS: the OIDC provider and token `AssumeRoleWithOIDC` accepts (defaults
    /// [`DEFAULT_OIDC_PROVIDER_ARN`], [`DEFAULT_OIDC_TOKEN`]).
    pub fn set_oidc(&self, provider_arn: &str, token: &str) {
        let mut state = self.state();
        state.sts.oidc_provider_arn = provider_arn.to_string();
        state.sts.oidc_token = token.to_string();
    }

    /// How long the credentials STS and the metadata service issue are valid. `None`:
    /// STS honours `DurationSeconds`, the metadata service issues six-hour ones.
    pub fn set_issued_lifetime(&self, lifetime: Option<Duration>) {
        let mut state = self.state();
        state.sts.lifetime = lifetime;
        state.metadata.lifetime = lifetime.unwrap_or(Duration::from_secs(6 * 3600));
    }

    /// The next `n` STS requests fail with 503, the next `n` metadata credential
    /// requests with 500.
    pub fn fail_credential_services(&self, n: u32) {
        let mut state = self.state();
        state.sts.fail_next = n;
        state.metadata.fail_next = n;
    }

    /// Every temporary credential issued so far is rejected by ICE from now on
    /// (`InvalidSecurityToken.Expired`), as if revoked or expired early.
    pub fn revoke_issued(&self) {
        self.state().issued.revoke_all();
    }

    /// STS requests received with this `Action`, whatever their outcome.
    pub fn sts_calls(&self, action: &str) -> u64 {
        self.state().sts.calls.get(action).copied().unwrap_or(0)
    }

    /// Temporary credentials issued by STS and the metadata service together.
    pub fn issued_credentials(&self) -> usize {
        self.state().issued.len()
    }

    /// Every secret and token issued so far, so tests can check none leaked.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.state().issued.secrets()
    }

    /// ICE requests accepted with temporary (issued) credentials.
    pub fn ice_calls_with_issued_credentials(&self) -> u64 {
        self.state().issued_ice_calls
    }

    /// Metadata service: the attached role (`None`: no role), default
    /// [`DEFAULT_ECS_ROLE`].
    pub fn set_ecs_role(&self, role: Option<&str>) {
        self.state().metadata.role = role.map(str::to_string);
    }

    pub fn set_metadata_mode(&self, mode: MetadataMode) {
        self.state().metadata.mode = mode;
    }

    pub fn metadata_calls(&self) -> MetadataCalls {
        self.state().metadata.calls
    }

    /// The most requests that arrived within any span shorter than `window`.
    pub fn max_requests_in_any_window(&self, window: Duration) -> u64 {
        let state = self.state();
        let arrivals = &state.arrivals;
        let (mut best, mut start) = (0usize, 0usize);
        for (end, t) in arrivals.iter().enumerate() {
            while t.duration_since(arrivals[start]) >= window && start < end {
                start += 1;
            }
            if t.duration_since(arrivals[start]) < window {
                best = best.max(end - start + 1);
            }
        }
        best as u64
    }

    /// Sets the region's event callback as `SetEventCallback` would (`None`: none).
    pub fn set_event_callback(&self, callback: Option<EventCallback>) {
        self.state().events.callback = callback;
    }

    /// The setting `GetEventCallback` reports.
    pub fn event_callback(&self) -> Option<EventCallback> {
        self.state().events.callback.clone()
    }

    /// Callbacks go to `addr` instead of the registered URL's host and port (path and
    /// query kept), as DNS or a reverse proxy in front of the receiver would send them;
    /// the signature still covers the registered URL.
    pub fn route_callbacks_to(&self, addr: SocketAddr) {
        self.state().events.route_to = Some(addr);
    }

    /// Starts a producing job for a project (`SubmitMediaProducingJob`): the project
    /// goes `Producing` and its ModifiedTime moves. Returns the job's ID, `None` if the
    /// project is unknown.
    pub fn start_production(&self, project_id: &str) -> Option<String> {
        let mut guard = self.state();
        let state = &mut *guard;
        let project = state.projects.get_mut(project_id)?;
        project.status = Some("Producing".into());
        project.modified_source = Some("OpenAPI".into());
        project.modified_time = Some(lifecycle::timestamp(Utc::now()));
        let job_id = lifecycle::new_id(&mut state.events.rng);
        let snapshot = project.clone();
        state.jobs.start(&job_id, &snapshot, Utc::now());
        state.events.jobs.insert(
            job_id.clone(),
            events::Job {
                project_id: project_id.to_string(),
                envelope: None,
            },
        );
        Some(job_id)
    }

    /// Finishes a job started with [`Simulator::start_production`]: the project goes
    /// `Produced` (or `ProduceFailed`), ModifiedTime moves, and, if an HTTP callback of
    /// `ProduceMediaComplete` is set, the event is sent on a task of its own (see
    /// [`Simulator::deliveries_of`]). False if the job is unknown or already finished.
    pub fn finish_production(&self, job_id: &str, success: bool) -> bool {
        let (project_id, envelope) = {
            let mut guard = self.state();
            let state = &mut *guard;
            let Some(job) = state.events.jobs.get(job_id).cloned() else {
                return false;
            };
            if job.envelope.is_some() {
                return false;
            }
            let now = Utc::now();
            if let Some(project) = state.projects.get_mut(&job.project_id) {
                if success {
                    let whole = project.duration.unwrap_or(30.0).trunc();
                    project.duration = Some(whole + 0.48);
                }
                project.status = Some(if success { "Produced" } else { "ProduceFailed" }.into());
                project.modified_source = Some("OpenAPI".into());
                project.modified_time = Some(lifecycle::timestamp(now));
            }
            let media_id = lifecycle::new_id(&mut state.events.rng);
            let duration = state.projects.get(&job.project_id).and_then(|p| p.duration);
            state.jobs.finish(
                job_id,
                success,
                jobs::Finished {
                    at: now,
                    failure: 0,
                    media_id: media_id.clone(),
                    duration,
                },
            );
            let envelope = events::produce_media_complete(
                state.events.user_id,
                job_id,
                &job.project_id,
                &media_id,
                success,
                now,
            );
            if let Some(j) = state.events.jobs.get_mut(job_id) {
                j.envelope = Some(envelope.clone());
            }
            (job.project_id, envelope)
        };
        tracing::debug!(job_id, project_id, "simulated producing job finished");
        self.send_event(job_id, envelope);
        true
    }

    /// A producing job as `GetMediaProducingJob` answers it (the truth tests compare with).
    pub fn job(&self, job_id: &str) -> Option<ice_wire::jobs_model::MediaProducingJob> {
        self.state().jobs.jobs.get(job_id).cloned()
    }

    /// The IDs of a project's producing jobs, oldest first.
    pub fn jobs_of(&self, project_id: &str) -> Vec<String> {
        let state = self.state();
        let mut jobs: Vec<(String, String)> = state
            .jobs
            .jobs
            .iter()
            .filter(|(_, j)| j.project_id.as_deref() == Some(project_id))
            .map(|(id, j)| (j.create_time.clone().unwrap_or_default(), id.clone()))
            .collect();
        jobs.sort();
        jobs.into_iter().map(|(_, id)| id).collect()
    }

    /// Changes a job as ICE would (a new field, other times); false if it is unknown.
    pub fn edit_job(
        &self,
        job_id: &str,
        edit: impl FnOnce(&mut ice_wire::jobs_model::MediaProducingJob),
    ) -> bool {
        match self.state().jobs.jobs.get_mut(job_id) {
            Some(job) => {
                edit(job);
                true
            }
            None => false,
        }
    }

    /// Adds (or replaces) a job exactly as given, e.g. an old one for a backfill to find.
    pub fn insert_job(&self, job: ice_wire::jobs_model::MediaProducingJob) {
        if let Some(id) = job.job_id.clone() {
            self.state().jobs.jobs.insert(id, job);
        }
    }

    /// `GetMediaProducingJob` requests received for this JobId, whatever their outcome.
    pub fn job_calls(&self, job_id: &str) -> u64 {
        self.state()
            .jobs
            .get_calls
            .get(job_id)
            .copied()
            .unwrap_or(0)
    }

    /// `ListMediaProducingJobs` requests received filtered by this ProjectId.
    pub fn job_list_calls(&self, project_id: &str) -> u64 {
        self.state()
            .jobs
            .list_calls
            .get(project_id)
            .copied()
            .unwrap_or(0)
    }

    /// Sends a finished job's event once more, as IMS may (a duplicate delivery, newly
    /// signed). False if the job has not finished.
    pub fn redeliver(&self, job_id: &str) -> bool {
        let envelope = self
            .state()
            .events
            .jobs
            .get(job_id)
            .and_then(|j| j.envelope.clone());
        match envelope {
            Some(envelope) => {
                self.send_event(job_id, envelope);
                true
            }
            None => false,
        }
    }

    fn send_event(&self, job_id: &str, body: String) {
        let mut state = self.state();
        let Some(callback) = state.events.callback.clone() else {
            return;
        };
        let wanted = callback
            .event_types
            .iter()
            .any(|t| t == PRODUCE_MEDIA_COMPLETE);
        if callback.callback_type != "HTTP" || !wanted {
            return;
        }
        let send = events::Send {
            job_id: job_id.to_string(),
            event_type: PRODUCE_MEDIA_COMPLETE.to_string(),
            body,
            sent_to: events::target(&callback.callback_url, state.events.route_to),
            callback,
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("the simulator sends callbacks from a tokio runtime only");
            return;
        };
        let shared = self.shared.clone();
        let task = runtime.spawn(events::deliver(send, move |delivery| {
            lock(&shared).events.deliveries.push(delivery);
        }));
        state
            .events
            .senders
            .entry(job_id.to_string())
            .or_default()
            .push(task);
    }

    /// Every callback attempt so far, in the order made.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state().events.deliveries.clone()
    }

    /// The attempts of one job's event, once its senders are done (IMS gives up after
    /// three attempts, so this returns within about 11 s).
    pub async fn deliveries_of(&self, job_id: &str) -> Vec<Delivery> {
        let senders = self
            .state()
            .events
            .senders
            .remove(job_id)
            .unwrap_or_default();
        for task in senders {
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
        self.deliveries()
            .into_iter()
            .filter(|d| d.job_id == job_id)
            .collect()
    }

    /// Stops accepting connections and waits (briefly) for in-flight requests.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A lifecycle step into `Producing` starts a job; one out of it ends the running job
/// (`Produced`: success, anything else: failure), as the scripted productions do.
fn follow_with_job(
    state: &mut Inner,
    before: Option<&str>,
    project: &Project,
    now: chrono::DateTime<Utc>,
) {
    let after = project.status.as_deref();
    let Some(id) = project.project_id.as_deref() else {
        return;
    };
    if before != Some("Producing") && after == Some("Producing") {
        let job_id = lifecycle::new_id(&mut state.events.rng);
        state.jobs.start(&job_id, project, now);
    } else if before == Some("Producing") && after != Some("Producing") {
        if let Some(job_id) = state.jobs.running.get(id).cloned() {
            let media_id = lifecycle::new_id(&mut state.events.rng);
            let finished = jobs::Finished {
                at: now,
                failure: state.events.rng.gen_range(0..jobs::FAILURES.len()),
                media_id,
                duration: project.duration,
            };
            state
                .jobs
                .finish(&job_id, after == Some("Produced"), finished);
        }
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The request pipeline: count, delay, verify, draw a fault, answer.
async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let hostile = lock(&shared).hostile.clone();
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    if let Some(response) = hostile::answer(&hostile, path_and_query) {
        return response;
    }
    if metadata::is_metadata(uri.path()) {
        return metadata_response(&shared, &method, uri.path(), &headers);
    }
    let query = auth::decode_query(uri.query());
    let action = header_str(&headers, "x-acs-action").to_string();
    let host = header_str(&headers, "host").to_string();
    if sts::is_sts(&query, &action) {
        return sts_response(&shared, &method, &query, &body, &host);
    }
    let project_id = query
        .iter()
        .find(|(k, _)| k == "ProjectId")
        .map(|(_, v)| v.clone());

    let (request_id, latency, chunked) = {
        let mut state = lock(&shared);
        state.total_calls += 1;
        state.arrivals.push(Instant::now());
        *state.calls_by_action.entry(action.clone()).or_insert(0) += 1;
        if let (true, Some(id)) = (action == "GetEditingProject", &project_id) {
            *state.calls.entry(id.clone()).or_insert(0) += 1;
        }
        state.jobs.count(&action, &query);
        if action == "ListEditingProjects" {
            let token = query.iter().find(|(k, _)| k == "NextToken");
            state.list_tokens.push(token.map(|(_, v)| v.clone()));
        }
        (
            api::request_id(&mut state.request_id_rng),
            state.latency,
            state.chunked,
        )
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let verdict = {
        let mut guard = lock(&shared);
        let state = &mut *guard;
        let incoming = auth::Incoming {
            method: method.as_str(),
            path: uri.path(),
            query: &query,
            headers: &headers,
            body: &body,
        };
        let now = Utc::now();
        let claimed = auth::claimed_access_key_id(&headers);
        let issued = claimed
            .as_deref()
            .and_then(|id| state.issued.get(id).map(|k| (id.to_string(), k.clone())));
        let key = match &issued {
            Some((_, k)) if k.revoked || k.expires_at <= now => Err(api::ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidSecurityToken.Expired",
                "Specified SecurityToken is expired.",
            )),
            Some((id, k)) => Ok(auth::Credentials {
                access_key_id: id.clone(),
                access_key_secret: k.secret.clone(),
                security_token: Some(k.token.clone()),
            }),
            None => Ok(state.credentials.clone()),
        };
        key.and_then(|key| auth::verify(&incoming, &key, &mut state.nonces, now))
            .and_then(|()| state.api_error.clone().map_or(Ok(()), Err))
            .map(|()| {
                if issued.is_some() {
                    state.issued_ice_calls += 1;
                }
                let fault =
                    faults::draw(&state.faults, &state.malformed_kinds, &mut state.fault_rng);
                if fault.is_some() {
                    state.faults_injected += 1;
                }
                fault
            })
    };
    let fault = match verdict {
        Ok(fault) => fault,
        Err(error) => return api::error_response(&error, &request_id, &host),
    };

    match fault {
        Some(faults::Fault::Throttle { retry_after_ms }) => {
            return faults::throttled(&request_id, &host, retry_after_ms)
        }
        Some(faults::Fault::ServerError { unavailable }) => {
            return faults::server_error(&request_id, &host, unavailable)
        }
        Some(faults::Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        Some(faults::Fault::ForeignInvalidParameter) => {
            let error = api::ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidParameter",
                "The specified parameter RequestSource is not valid.",
            );
            return api::error_response(&error, &request_id, &host);
        }
        _ => {}
    }

    let answer = {
        let mut guard = lock(&shared);
        let state = &mut *guard;
        if action == "ListEditingProjects" && state.list_order.is_none() {
            state.list_order = Some(api::creation_order(&state.projects));
        }
        if uri.path() != "/" || !(method == Method::POST || method == Method::GET) {
            Err(api::ApiError::new(
                StatusCode::NOT_FOUND,
                "InvalidAction.NotFound",
                "Specified api is not found, please check your url and method.",
            ))
        } else if matches!(action.as_str(), "SetEventCallback" | "GetEventCallback") {
            if header_str(&headers, "x-acs-version") == api::API_VERSION {
                events::answer(&mut state.events, &action, &query, &request_id)
                    .map(api::Success::Json)
            } else {
                Err(api::ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidVersion",
                    "Specified parameter Version is not valid.",
                ))
            }
        } else if jobs::is_job_action(&action)
            && header_str(&headers, "x-acs-version") == api::API_VERSION
        {
            jobs::answer(
                &state.jobs,
                &action,
                &query,
                &request_id,
                state.token_key,
                Utc::now(),
            )
        } else {
            // A frozen list snapshot answers list calls as a lagging index would.
            let (projects, order) = match (&state.list_snapshot, action.as_str()) {
                (Some(snapshot), "ListEditingProjects") => (snapshot, &state.snapshot_order[..]),
                _ => (
                    &state.projects,
                    state.list_order.as_deref().unwrap_or_default(),
                ),
            };
            api::answer(
                &action,
                header_str(&headers, "x-acs-version"),
                &query,
                projects,
                order,
                &request_id,
                state.token_key,
            )
        }
    };

    match fault {
        Some(faults::Fault::DropConnection) => {
            let bytes = match &answer {
                Ok(success) => success.to_bytes(),
                Err(error) => api::error_body(error, &request_id, &host),
            };
            faults::dropped(&request_id, bytes.unwrap_or_default())
        }
        Some(faults::Fault::Malformed(kind)) => match (action.as_str(), &answer) {
            ("ListEditingProjects", Ok(api::Success::List(list))) => {
                let normal = serde_json::to_value(list).unwrap_or_default();
                faults::malformed_list(kind, &request_id, normal)
            }
            _ => {
                let normal = match &answer {
                    Ok(api::Success::Get(body)) => body
                        .project
                        .as_ref()
                        .and_then(|p| serde_json::to_value(p).ok()),
                    _ => None,
                };
                let asked = project_id.as_deref().unwrap_or_default();
                faults::malformed_get(kind, &request_id, asked, normal)
            }
        },
        _ => match answer {
            Ok(success) if chunked => {
                api::chunked_json_response(StatusCode::OK, success.to_bytes(), &request_id)
            }
            Ok(success) => api::json_response(StatusCode::OK, success.to_bytes(), &request_id),
            Err(error) => api::error_response(&error, &request_id, &host),
        },
    }
}

fn sts_response(
    shared: &Shared,
    method: &Method,
    query: &[(String, String)],
    body: &[u8],
    host: &str,
) -> Response {
    let mut guard = lock(shared);
    let state = &mut *guard;
    let request_id = api::request_id(&mut state.request_id_rng);
    let now = Utc::now();
    let (keys, rng) = (&mut state.issued, &mut state.issue_rng);
    // The signature check reads the issued keys while issuing needs them mutably:
    // verify against a snapshot of the one key the request names.
    let snapshot = {
        let mut s = sts::IssuedKeys::default();
        if let Some((_, id)) = query.iter().find(|(k, _)| k == "AccessKeyId") {
            if let Some(k) = keys.get(id) {
                s.insert(id, k.clone());
            }
        }
        s
    };
    let mut issue = |lifetime: Duration| keys.issue(rng, now, lifetime);
    let ctx = sts::Ctx {
        state: &mut state.sts,
        keys: sts::Keys {
            base: &state.credentials,
            issued: &snapshot,
        },
        issue: &mut issue,
    };
    match sts::answer(method.as_str(), query, body, ctx, &request_id, now) {
        Ok(json) => api::json_response(StatusCode::OK, serde_json::to_vec(&json), &request_id),
        Err(error) => api::error_response(&error, &request_id, host),
    }
}

fn metadata_response(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Response {
    let mut guard = lock(shared);
    let state = &mut *guard;
    let now = Utc::now();
    let mut token_rng = StdRng::seed_from_u64(state.issue_rng.gen());
    let (keys, rng) = (&mut state.issued, &mut state.issue_rng);
    let mut issue = |lifetime: Duration| keys.issue(rng, now, lifetime);
    let reply = metadata::answer(
        &mut state.metadata,
        method,
        path,
        headers,
        &mut token_rng,
        now,
        &mut issue,
    );
    let mut response = Response::new(axum::body::Body::from(reply.body));
    *response.status_mut() = reply.status;
    let content_type = if reply.json {
        "application/json"
    } else {
        "text/plain"
    };
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(content_type),
    );
    response
}
