//! What can go wrong talking to ICE, classified by what the caller should do about it.
//!
//! The engine never inspects codes itself: it asks [`IceError::class`] whether to retry,
//! mark the project removed, record a per-project failure, or stop the whole cycle
//! because every further request would fail the same way (credentials, clock, RAM).

use std::time::Duration;

/// What the caller should do with a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient (throttling, 5xx, timeouts, resets): try again after a backoff.
    Retryable,
    /// The project does not exist (any more).
    NotFound,
    /// Credentials, signature, clock or permissions: every request will fail alike,
    /// so the cycle stops with one message.
    Auth,
    /// This request failed and retrying will not help (bad parameter, malformed body).
    Permanent,
}

#[derive(Debug, thiserror::Error)]
pub enum IceError {
    #[error("{}", describe_api(code, message, *http_status, request_id.as_deref()))]
    Api {
        http_status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
        /// From `x-acs-retry-after` (milliseconds) or `Retry-After` (seconds).
        retry_after: Option<Duration>,
    },
    #[error("HTTP {http_status} from ICE with a body that is not an ICE response ({detail}){}: {hint}", rid(request_id.as_deref()), hint = malformed_hint(*http_status))]
    Malformed {
        http_status: u16,
        detail: String,
        request_id: Option<String>,
    },
    #[error("ICE says project does not exist ({message}, HTTP {http_status}{})", rid(request_id.as_deref()))]
    NotFound {
        http_status: u16,
        message: String,
        request_id: Option<String>,
    },
    #[error("the connection to ICE broke while reading an HTTP {http_status} response ({detail}){}; it will be retried", rid(request_id.as_deref()))]
    BrokenResponse {
        http_status: u16,
        detail: String,
        request_id: Option<String>,
    },
    #[error("ICE answered without a Project{}; the project was left as stored", rid(request_id.as_deref()))]
    MissingProject { request_id: Option<String> },
    #[error("ICE answered for project {got} when asked for {asked}{}; the answer was discarded", rid(request_id.as_deref()))]
    WrongProject {
        asked: String,
        got: String,
        request_id: Option<String>,
    },
    /// The answer is larger than `ice.max_response_bytes`: not read further, not retried
    /// (the same project would answer the same), recorded on the project like any failure.
    #[error("ICE's HTTP {http_status} answer is {}, over ice.max_response_bytes = {limit}{}; the project was left as stored: raise ice.max_response_bytes if projects this large are expected", describe_size(*size, *declared), rid(request_id.as_deref()))]
    ResponseTooLarge {
        http_status: u16,
        /// Content-Length when `declared`, else how much had arrived when reading stopped.
        size: u64,
        declared: bool,
        limit: usize,
        request_id: Option<String>,
    },
    #[error("request to ICE timed out after {0:?}; raise ice.timeout if the network is slow")]
    Timeout(Duration),
    #[error("could not reach ICE at {endpoint}: {detail}; check ice.endpoint / ice.region and the network")]
    Transport { endpoint: String, detail: String },
    /// No credentials to sign with (STS or the metadata service failed, a token file is
    /// gone). Transient failures are retried; the rest stop the cycle like an auth error.
    #[error("{0}")]
    Credentials(crate::credentials::CredentialError),
}

fn rid(request_id: Option<&str>) -> String {
    request_id
        .map(|r| format!(" (request id {r})"))
        .unwrap_or_default()
}

fn describe_size(size: u64, declared: bool) -> String {
    if declared {
        format!("{size} bytes (its Content-Length)")
    } else {
        format!("at least {size} bytes (reading stopped there)")
    }
}

fn malformed_hint(status: u16) -> &'static str {
    if status >= 500 {
        "a proxy or the gateway failed; it will be retried"
    } else {
        "a proxy between ice-sync and ICE may be rewriting responses"
    }
}

fn describe_api(code: &str, message: &str, status: u16, request_id: Option<&str>) -> String {
    let what_to_do = match code {
        "SignatureDoesNotMatch" | "IncompleteSignature" => {
            "ICE rejected the signature: check ALIBABA_CLOUD_ACCESS_KEY_SECRET (or ice.access_key_secret)"
        }
        c if c.starts_with("InvalidAccessKeyId") => {
            "ICE does not know this AccessKey ID: check ALIBABA_CLOUD_ACCESS_KEY_ID (or ice.access_key_id)"
        }
        c if c.starts_with("InvalidTimeStamp") => {
            "ICE rejected the request date: the system clock is off by more than 15 minutes; fix NTP"
        }
        c if c.starts_with("InvalidSecurityToken") => {
            "the STS security token is expired or invalid: refresh ALIBABA_CLOUD_SECURITY_TOKEN"
        }
        "Forbidden.RAM" | "NoPermission" | "Forbidden" | "Forbidden.AccessDenied" => {
            "the RAM user lacks permission: grant it ice:GetEditingProject (and ice:ListEditingProjects)"
        }
        c if c.starts_with("Throttling") => "ICE throttled the request; it will be retried",
        _ if status >= 500 => "ICE had a server error; it will be retried",
        _ => "ICE refused the request",
    };
    format!(
        "{what_to_do} ({code}: {message}, HTTP {status}{})",
        rid(request_id)
    )
}

impl IceError {
    pub fn class(&self) -> ErrorClass {
        match self {
            IceError::Api {
                code, http_status, ..
            } => classify_code(code, *http_status),
            IceError::NotFound { .. } => ErrorClass::NotFound,
            IceError::BrokenResponse { .. } => ErrorClass::Retryable,
            // A proxy's own 429/5xx page is as transient as the gateway's JSON one.
            IceError::Malformed { http_status, .. }
                if *http_status >= 500 || *http_status == 429 =>
            {
                ErrorClass::Retryable
            }
            IceError::Malformed { .. }
            | IceError::ResponseTooLarge { .. }
            | IceError::MissingProject { .. }
            | IceError::WrongProject { .. } => ErrorClass::Permanent,
            IceError::Timeout(_) | IceError::Transport { .. } => ErrorClass::Retryable,
            IceError::Credentials(e) if e.transient => ErrorClass::Retryable,
            IceError::Credentials(_) => ErrorClass::Auth,
        }
    }

    /// The API's code, or a stable label for failures that have none (for metrics).
    pub fn code(&self) -> &str {
        match self {
            IceError::Api { code, .. } => code,
            IceError::Malformed { .. } => "MalformedResponse",
            IceError::ResponseTooLarge { .. } => "ResponseTooLarge",
            IceError::NotFound { .. } => "InvalidParameter",
            IceError::BrokenResponse { .. } => "BrokenResponse",
            IceError::MissingProject { .. } => "MissingProject",
            IceError::WrongProject { .. } => "WrongProject",
            IceError::Timeout(_) => "Timeout",
            IceError::Transport { .. } => "Transport",
            IceError::Credentials(_) => "Credentials",
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            IceError::Api { request_id, .. }
            | IceError::Malformed { request_id, .. }
            | IceError::ResponseTooLarge { request_id, .. }
            | IceError::NotFound { request_id, .. }
            | IceError::BrokenResponse { request_id, .. }
            | IceError::MissingProject { request_id }
            | IceError::WrongProject { request_id, .. } => request_id.as_deref(),
            IceError::Timeout(_) | IceError::Transport { .. } | IceError::Credentials(_) => None,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            IceError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Maps an API error code to what to do, following the table in the API reference.
pub(crate) fn classify_code(code: &str, http_status: u16) -> ErrorClass {
    match code {
        c if c.starts_with("Throttling") => ErrorClass::Retryable,
        "ServiceUnavailable" | "InternalError" | "SignatureNonceUsed" => ErrorClass::Retryable,
        "SignatureDoesNotMatch" | "IncompleteSignature" | "NoPermission" | "Forbidden" => {
            ErrorClass::Auth
        }
        c if c.starts_with("InvalidAccessKeyId")
            || c.starts_with("InvalidTimeStamp")
            || c.starts_with("InvalidSecurityToken")
            || c.starts_with("Forbidden") =>
        {
            ErrorClass::Auth
        }
        _ if http_status >= 500 => ErrorClass::Retryable,
        _ if http_status == 429 => ErrorClass::Retryable,
        _ => ErrorClass::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_actions() {
        assert_eq!(classify_code("Throttling.User", 400), ErrorClass::Retryable);
        assert_eq!(classify_code("Throttling", 429), ErrorClass::Retryable);
        assert_eq!(classify_code("InternalError", 500), ErrorClass::Retryable);
        assert_eq!(classify_code("Whatever", 503), ErrorClass::Retryable);
        // Only GetEditingProject turns it into NotFound (see the client).
        assert_eq!(
            classify_code("InvalidParameter", 400),
            ErrorClass::Permanent
        );
        assert_eq!(
            classify_code("SignatureDoesNotMatch", 400),
            ErrorClass::Auth
        );
        assert_eq!(
            classify_code("InvalidAccessKeyId.NotFound", 404),
            ErrorClass::Auth
        );
        assert_eq!(
            classify_code("InvalidTimeStamp.Expired", 400),
            ErrorClass::Auth
        );
        assert_eq!(classify_code("Forbidden.RAM", 403), ErrorClass::Auth);
        assert_eq!(
            classify_code("MissingProjectId", 400),
            ErrorClass::Permanent
        );
    }

    #[test]
    fn messages_say_what_to_do() {
        let e = IceError::Api {
            http_status: 400,
            code: "SignatureDoesNotMatch".into(),
            message: "Specified signature is not matched".into(),
            request_id: Some("R1".into()),
            retry_after: None,
        };
        let text = e.to_string();
        assert!(text.contains("ALIBABA_CLOUD_ACCESS_KEY_SECRET"), "{text}");
        assert!(text.contains("R1"), "{text}");
    }
}
