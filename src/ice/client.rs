//! The ICE HTTP client: builds, signs and sends RPC calls, retries what is worth
//! retrying, and turns responses into typed values or [`IceError`]s.
//!
//! Every request of the process goes through one [`IceClient`], so its rate limiter
//! (`sync.max_qps`) covers retries too. Signing lives in `ice_wire::signing`, wire shapes in
//! `ice_wire::model`; this module owns the transport and the retry loop.
//!
//! Credentials come from a [`CredentialProvider`], asked before signing each attempt,
//! so temporary ones refreshed mid-cycle are picked up by the next request. When ICE
//! rejects a temporary token anyway (`InvalidSecurityToken.*`: revoked early, clock
//! skew), the provider is told and the request is retried once with fresh credentials.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::ExposeSecret;

use super::answers::{malformed, not_found_if_invalid_id, not_found_if_unknown_job};
use super::budget::{Reserved, ResponseBudget};
use super::error::{ErrorClass, IceError};
use super::jobs_model::{
    GetMediaProducingJobResponse, ListMediaProducingJobsResponse, MediaProducingJob,
};
use super::model::{ErrorBody, GetEditingProjectResponse, ListEditingProjectsResponse, Project};
use crate::credentials::provider::Issued;
use crate::credentials::{CredentialProvider, Credentials};
use ice_wire::signing;

pub(crate) const API_VERSION: &str = "2020-11-09";
const USER_AGENT: &str = concat!("ice-sync/", env!("CARGO_PKG_VERSION"));
/// The SDK caps server-sent retry delays at two minutes; so do we.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// How the client talks to ICE. Built from `config::Settings`.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// `https://ice.cn-shanghai.aliyuncs.com` or an override such as `http://127.0.0.1:8080`.
    pub endpoint: reqwest::Url,
    pub request_source: Option<String>,
    pub timeout: Duration,
    /// Requests per second for the whole process; `None` means unlimited.
    pub max_qps: Option<NonZeroU32>,
    pub max_retries: u32,
    /// First backoff step; each retry doubles it (with full jitter) up to `backoff_cap`.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// `ice.max_response_bytes`: a larger answer is refused (a per-project error) instead of
    /// held in memory.
    pub max_response_bytes: usize,
}

/// `ice.max_response_bytes` unless set: far above any real project (timelines run to a few
/// megabytes), low enough that a runaway answer cannot take the daemon's memory.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// A successful answer and what the engine needs to know about how it was obtained.
#[derive(Debug)]
pub struct Fetched<T> {
    pub value: T,
    pub request_id: Option<String>,
    /// When the attempt that produced this answer was sent. A stored state from a
    /// later-started request wins over this one.
    pub(crate) started_at: DateTime<Utc>,
    /// The same moment on the monotonic clock, which never steps: the engine stamps
    /// observations from it (see `sync::time_base`).
    pub(crate) sent: tokio::time::Instant,
    pub attempts: u32,
    /// The answer's share of the in-flight budget ([`super::budget`]): a project keeps
    /// it until its write commits; other answers' is empty (given back once parsed).
    pub(crate) reserved: Reserved,
}

/// An answer's body, holding its share of the response budget.
pub(crate) struct Answer {
    bytes: Vec<u8>,
    reserved: Reserved,
}

#[derive(Clone)]
pub struct IceClient {
    http: reqwest::Client,
    budget: ResponseBudget,
    options: Arc<ClientOptions>,
    host_header: String,
    credentials: CredentialProvider,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
}

/// Which page of which `List*` action to ask for.
struct ListPage<'a> {
    action: &'static str,
    params: &'a [(String, String)],
    next_token: Option<&'a str>,
    max_results: u32,
}

impl IceClient {
    /// `credentials`: a [`CredentialProvider`] (the chain), or fixed [`Credentials`].
    pub fn new(
        options: ClientOptions,
        credentials: impl Into<CredentialProvider>,
    ) -> anyhow::Result<Self> {
        let host = options
            .endpoint
            .host_str()
            .ok_or_else(|| anyhow::anyhow!("ice.endpoint {} has no host", options.endpoint))?;
        let host_header = match options.endpoint.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(5)))
            .pool_max_idle_per_host(256)
            // Every request carries a signed Authorization (and maybe a security token):
            // a redirect would hand them to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        // Burst of one: requests are spaced 1/max_qps apart, so any one-second window sees
        // at most max_qps (max_qps + 1 if network jitter bunches two together). A larger
        // burst would let a full bucket plus a second of refills through: twice the quota.
        let limiter = options.max_qps.map(|qps| {
            Arc::new(RateLimiter::direct(
                Quota::per_second(qps).allow_burst(NonZeroU32::MIN),
            ))
        });
        Ok(Self {
            http,
            budget: ResponseBudget::default(),
            options: Arc::new(options),
            host_header,
            credentials: credentials.into(),
            limiter,
        })
    }

    /// `GetEditingProject`, retried per the options. The returned project is checked to be
    /// the one asked for. The span is at debug level, like the only events inside it (the
    /// retries): at the default level it is never built, which was ~2% of a poll's CPU.
    #[tracing::instrument(level = "debug", skip_all, fields(project_id = project_id))]
    pub async fn get_editing_project(
        &self,
        project_id: &str,
    ) -> Result<Fetched<Project>, IceError> {
        let mut query = vec![("ProjectId".to_string(), project_id.to_string())];
        if let Some(source) = &self.options.request_source {
            query.push(("RequestSource".to_string(), source.clone()));
        }
        let fetched = self
            .call_with_retries("GetEditingProject", &query)
            .await
            .map_err(not_found_if_invalid_id)?;
        let request_id = fetched.request_id.clone();
        let parsed: GetEditingProjectResponse = serde_json::from_slice(&fetched.value.bytes)
            .map_err(|e| malformed(200, &fetched.value.bytes, e, request_id.clone()))?;
        let request_id = parsed.request_id.or(request_id);
        let project = parsed.project.ok_or_else(|| IceError::MissingProject {
            request_id: request_id.clone(),
        })?;
        match project.project_id.as_deref() {
            Some(got) if got == project_id => {}
            got => {
                return Err(IceError::WrongProject {
                    asked: project_id.to_string(),
                    got: got.unwrap_or("(none)").to_string(),
                    request_id,
                })
            }
        }
        Ok(Fetched {
            value: project,
            request_id,
            started_at: fetched.started_at,
            sent: fetched.sent,
            attempts: fetched.attempts,
            reserved: fetched.value.reserved,
        })
    }

    /// One page of `ListEditingProjects`. `params` holds filters such as `ProjectType`.
    pub async fn list_editing_projects(
        &self,
        params: &[(String, String)],
        next_token: Option<&str>,
        max_results: u32,
    ) -> Result<Fetched<ListEditingProjectsResponse>, IceError> {
        let page = ListPage {
            action: "ListEditingProjects",
            params,
            next_token,
            max_results,
        };
        self.list_page(page, |p: &ListEditingProjectsResponse| p.request_id.clone())
            .await
    }

    /// `GetMediaProducingJob`, through the same limiter, retries and credentials as
    /// project polls. "No such job" in any of the three spellings ICE may use comes back
    /// as [`IceError::NotFound`]; a job answered for another ID is an error.
    #[tracing::instrument(level = "debug", skip_all, fields(job_id = job_id))]
    pub async fn get_media_producing_job(
        &self,
        job_id: &str,
    ) -> Result<Fetched<MediaProducingJob>, IceError> {
        let query = vec![("JobId".to_string(), job_id.to_string())];
        let fetched = self
            .call_with_retries("GetMediaProducingJob", &query)
            .await
            .map_err(not_found_if_unknown_job)?;
        let request_id = fetched.request_id.clone();
        let parsed: GetMediaProducingJobResponse = serde_json::from_slice(&fetched.value.bytes)
            .map_err(|e| malformed(200, &fetched.value.bytes, e, request_id.clone()))?;
        let request_id = parsed.request_id.or(request_id);
        let job = parsed.job.ok_or_else(|| IceError::Malformed {
            http_status: 200,
            detail: "no MediaProducingJob in the answer".to_string(),
            request_id: request_id.clone(),
        })?;
        if job.job_id.as_deref() != Some(job_id) {
            return Err(IceError::Malformed {
                http_status: 200,
                detail: format!(
                    "the answer is about job {}, not {job_id}",
                    job.job_id.as_deref().unwrap_or("(none)")
                ),
                request_id,
            });
        }
        Ok(Fetched {
            value: job,
            request_id,
            started_at: fetched.started_at,
            sent: fetched.sent,
            attempts: fetched.attempts,
            reserved: Reserved::default(),
        })
    }

    /// One page of `ListMediaProducingJobs`. `params` holds the filters (`ProjectId`,
    /// `StartTime`, `EndTime`); a token is sent back with the same filters.
    pub async fn list_media_producing_jobs(
        &self,
        params: &[(String, String)],
        next_token: Option<&str>,
        max_results: u32,
    ) -> Result<Fetched<ListMediaProducingJobsResponse>, IceError> {
        let page = ListPage {
            action: "ListMediaProducingJobs",
            params,
            next_token,
            max_results,
        };
        self.list_page(page, |p: &ListMediaProducingJobsResponse| {
            p.request_id.clone()
        })
        .await
    }

    /// One page of a `List*` action: the filters, `MaxResults` and the token (an empty
    /// token is the first page), the answer parsed; the page's own `RequestId` wins over
    /// the header's.
    async fn list_page<T: serde::de::DeserializeOwned>(
        &self,
        page: ListPage<'_>,
        request_id_of: impl Fn(&T) -> Option<String>,
    ) -> Result<Fetched<T>, IceError> {
        let mut query = page.params.to_vec();
        query.push(("MaxResults".to_string(), page.max_results.to_string()));
        if let Some(token) = page.next_token.filter(|t| !t.is_empty()) {
            query.push(("NextToken".to_string(), token.to_string()));
        }
        let fetched = self.call_with_retries(page.action, &query).await?;
        let request_id = fetched.request_id.clone();
        let parsed: T = serde_json::from_slice(&fetched.value.bytes)
            .map_err(|e| malformed(200, &fetched.value.bytes, e, request_id.clone()))?;
        Ok(Fetched {
            request_id: request_id_of(&parsed).or(request_id),
            value: parsed,
            started_at: fetched.started_at,
            sent: fetched.sent,
            attempts: fetched.attempts,
            reserved: Reserved::default(),
        })
    }

    async fn call_with_retries(
        &self,
        action: &str,
        query: &[(String, String)],
    ) -> Result<Fetched<Answer>, IceError> {
        let mut attempt = 0u32;
        let mut token_retried = false;
        loop {
            attempt += 1;
            if let Some(limiter) = &self.limiter {
                if limiter.check().is_err() {
                    metrics::counter!(crate::metric_names::RATE_LIMITER_WAITS).increment(1);
                    limiter.until_ready().await;
                }
            }
            let started_at = Utc::now();
            let sent = tokio::time::Instant::now();
            let clock = Instant::now();
            let result = self.call_once(action, query, started_at).await;
            let outcome = match &result {
                Ok(_) => "ok",
                Err((e, _)) => match e.class() {
                    ErrorClass::Retryable => "retryable",
                    ErrorClass::NotFound => "not_found",
                    ErrorClass::Auth => "auth",
                    ErrorClass::Permanent => "error",
                },
            };
            // ICE's (or a proxy's) text: bounded before it becomes a label value.
            let code = result
                .as_ref()
                .err()
                .map(|(e, _)| crate::metric_labels::error_code(e.code()));
            metrics::histogram!(crate::metric_names::API_DURATION, "action" => action.to_string())
                .record(clock.elapsed().as_secs_f64());
            metrics::counter!(
                crate::metric_names::API_REQUESTS,
                "action" => action.to_string(),
                "outcome" => outcome,
                "code" => code.unwrap_or_default()
            )
            .increment(1);
            match result {
                Err((e, Some(generation)))
                    if !token_retried
                        && e.code().starts_with("InvalidSecurityToken")
                        && self.credentials.refreshable() =>
                {
                    // Once: a second rejection of fresh credentials is a real auth error.
                    token_retried = true;
                    self.credentials.invalidate(generation);
                    tracing::debug!(error = %e, "retrying {action} with refreshed credentials");
                }
                Ok((body, request_id)) => {
                    return Ok(Fetched {
                        value: body,
                        request_id,
                        started_at,
                        sent,
                        attempts: attempt,
                        reserved: Reserved::default(),
                    })
                }
                Err((e, _))
                    if e.class() == ErrorClass::Retryable
                        && attempt <= self.options.max_retries =>
                {
                    let delay = self.backoff(attempt, e.retry_after());
                    metrics::counter!(crate::metric_names::API_RETRIES).increment(1);
                    tracing::debug!(attempt, ?delay, error = %e, "retrying {action}");
                    tokio::time::sleep(delay).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Full jitter: uniform in [0, min(cap, base * 2^(attempt-1))]; a server hint wins.
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(hint) = retry_after {
            return hint.min(MAX_RETRY_AFTER);
        }
        let exp = self
            .options
            .backoff_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let ceiling = exp.min(self.options.backoff_cap);
        let millis = ceiling.as_millis() as u64;
        Duration::from_millis(rand::thread_rng().gen_range(0..=millis))
    }

    /// One attempt. A failure carries the credentials' generation when the request was
    /// signed, so a token rejection can invalidate exactly those credentials.
    async fn call_once(
        &self,
        action: &str,
        query: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<(Answer, Option<String>), (IceError, Option<u64>)> {
        let issued = self
            .credentials
            .issue()
            .await
            .map_err(|e| (IceError::Credentials(e), None))?;
        let generation = issued.generation;
        self.send_signed(action, query, now, &issued)
            .await
            .map_err(|e| (e, Some(generation)))
    }

    async fn send_signed(
        &self,
        action: &str,
        query: &[(String, String)],
        now: DateTime<Utc>,
        issued: &Issued,
    ) -> Result<(Answer, Option<String>), IceError> {
        let response = self
            .request_with(&issued.credentials, action, query, now)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        let header_request_id = response
            .headers()
            .get("x-acs-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let retry_after = retry_after(response.headers());
        if (300..400).contains(&status) {
            return Err(IceError::Malformed {
                http_status: status,
                detail: "a redirect, never followed because the request carries the signed \
                         credentials; set ice.endpoint to the final address"
                    .to_string(),
                request_id: header_request_id,
            });
        }
        let body = self
            .read_capped(response, status, &header_request_id)
            .await?;

        if (200..300).contains(&status) {
            return Ok((body, header_request_id));
        }
        let body = body.bytes;
        match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(ErrorBody {
                code: Some(code),
                message,
                request_id,
                ..
            }) => Err(IceError::Api {
                http_status: status,
                code,
                message: message.unwrap_or_default(),
                request_id: request_id.or(header_request_id),
                retry_after,
            }),
            Ok(_) => Err(IceError::Malformed {
                http_status: status,
                detail: "error body without a Code".to_string(),
                request_id: header_request_id,
            }),
            Err(e) => Err(malformed(status, &body, e, header_request_id)),
        }
    }

    /// Reads a body of at most `max_response_bytes`: refused at once when its
    /// Content-Length says more, and as soon as more arrives otherwise (chunked), so an
    /// oversized answer never sits whole in memory.
    async fn read_capped(
        &self,
        mut response: reqwest::Response,
        status: u16,
        request_id: &Option<String>,
    ) -> Result<Answer, IceError> {
        let limit = self.options.max_response_bytes;
        let too_large = |size: u64, declared: bool| IceError::ResponseTooLarge {
            http_status: status,
            size,
            declared,
            limit,
            request_id: request_id.clone(),
        };
        let declared = response.content_length();
        if let Some(size) = declared.filter(|&n| n > limit as u64) {
            return Err(too_large(size, true));
        }
        // Its size (or, chunked, all it may grow to) from the shared budget first.
        let reserved = self
            .budget
            .reserve(declared.map_or(limit, |n| n as usize))
            .await;
        // What Content-Length announces (never above the cap), else a modest start.
        let mut body = Vec::with_capacity(declared.map_or(16 * 1024, |n| n as usize));
        loop {
            let chunk = response.chunk().await.map_err(|e| {
                if e.is_timeout() {
                    IceError::Timeout(self.options.timeout)
                } else {
                    IceError::BrokenResponse {
                        http_status: status,
                        detail: error_chain(&e),
                        request_id: request_id.clone(),
                    }
                }
            })?;
            let Some(chunk) = chunk else {
                return Ok(Answer {
                    bytes: body,
                    reserved,
                });
            };
            let size = body.len() + chunk.len();
            if size > limit {
                return Err(too_large(size as u64, false));
            }
            body.extend_from_slice(&chunk);
        }
    }

    fn request_with(
        &self,
        credentials: &Credentials,
        action: &str,
        query: &[(String, String)],
        now: DateTime<Utc>,
    ) -> reqwest::RequestBuilder {
        let mut url = self.options.endpoint.clone();
        url.set_path("/");
        url.set_query(Some(&signing::rpc_query(query)));
        self.http
            .post(url)
            .headers(self.signed_headers(credentials, action, query, now))
    }

    /// The headers [`signing::rpc_headers`] lists (the simulator's bare caller sends the
    /// same), with a fresh nonce.
    fn signed_headers(
        &self,
        creds: &Credentials,
        action: &str,
        query: &[(String, String)],
        now: DateTime<Utc>,
    ) -> HeaderMap {
        let nonce = format!("{:032x}", rand::thread_rng().gen::<u128>());
        let pairs = signing::rpc_headers(&signing::RpcRequest {
            host: &self.host_header,
            action,
            version: API_VERSION,
            user_agent: USER_AGENT,
            query,
            date: &now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            nonce: &nonce,
            access_key_id: &creds.access_key_id,
            access_key_secret: creds.access_key_secret.expose_secret(),
            security_token: creds.security_token.as_ref().map(|t| t.expose_secret()),
        });
        let mut map = HeaderMap::with_capacity(pairs.len());
        for (name, value) in pairs {
            // Names are static ASCII; values are ours or the operator's credentials,
            // which the credentials module has already checked to be header-safe.
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                map.insert(name, value);
            }
        }
        map
    }

    fn transport_error(&self, e: reqwest::Error) -> IceError {
        if e.is_timeout() {
            IceError::Timeout(self.options.timeout)
        } else {
            IceError::Transport {
                endpoint: self.options.endpoint.to_string(),
                detail: error_chain(&e),
            }
        }
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|v| *v > 0)
    };
    get("x-acs-retry-after")
        .map(Duration::from_millis)
        .or_else(|| get("retry-after").map(Duration::from_secs))
}

/// reqwest's Display names the URL, which holds only the endpoint and the project ID:
/// no credential is ever in a URL.
fn error_chain(e: &reqwest::Error) -> String {
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    detail
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn client() -> IceClient {
        IceClient::new(
            ClientOptions {
                endpoint: reqwest::Url::parse("http://127.0.0.1:1").expect("url"),
                request_source: None,
                timeout: Duration::from_secs(1),
                max_qps: None,
                max_retries: 3,
                backoff_base: Duration::from_millis(100),
                backoff_cap: Duration::from_secs(2),
                max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            },
            Credentials {
                access_key_id: "AK".into(),
                access_key_secret: SecretString::from("s".to_string()),
                security_token: None,
                source: "test".into(),
            },
        )
        .expect("client")
    }

    #[test]
    fn server_hints_win_and_are_capped() {
        let mut headers = HeaderMap::new();
        headers.insert("x-acs-retry-after", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);

        let c = client();
        assert_eq!(
            c.backoff(1, Some(Duration::from_millis(1500))),
            Duration::from_millis(1500)
        );
        assert_eq!(
            c.backoff(1, Some(Duration::from_secs(900))),
            MAX_RETRY_AFTER
        );
    }

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_cap() {
        let c = client();
        for attempt in 1..=8 {
            let ceiling =
                Duration::from_millis(100 * (1 << (attempt - 1))).min(Duration::from_secs(2));
            for _ in 0..50 {
                assert!(c.backoff(attempt, None) <= ceiling);
            }
        }
        // Jitter: not every draw is the same.
        let draws: std::collections::HashSet<Duration> =
            (0..50).map(|_| c.backoff(4, None)).collect();
        assert!(draws.len() > 5);
    }
}
