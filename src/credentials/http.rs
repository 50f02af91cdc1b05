//! The one way credential sources talk HTTP (STS, the ECS metadata service, the
//! credentials URI): redirects are never followed, because the request itself carries a
//! secret (an `AssumeRoleWithOIDC` body with the OIDC token, a metadata token, a signed
//! query, a URI's own token) that must reach only the address the operator configured;
//! and every answer is read with a size cap, so a hostile or broken server cannot make
//! the daemon buffer an endless body.

use std::time::Duration;

use super::sts::transport_detail;

/// The largest credential answer read: real ones are well under 2 KiB (a JSON object of
/// four short strings, or a role name).
pub(crate) const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A client builder with the timeouts given and redirects off.
pub(crate) fn builder(connect: Duration, total: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(connect)
        .timeout(total)
        .redirect(reqwest::redirect::Policy::none())
}

/// Why an answer was not read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The server asked to go elsewhere; not followed.
    Redirect { status: u16 },
    /// Larger than [`MAX_ANSWER_BYTES`] (declared or as it arrived).
    TooLarge,
    /// The connection broke or timed out mid-answer.
    Broken(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Redirect { status } => write!(
                f,
                "it answered a redirect (HTTP {status}), which is never followed because the \
                 request carries credentials; configure the final address"
            ),
            ReadError::TooLarge => write!(
                f,
                "its answer is larger than {MAX_ANSWER_BYTES} bytes, far more than credentials \
                 take; check that the address is the credential service"
            ),
            ReadError::Broken(detail) => write!(f, "its answer broke off: {detail}"),
        }
    }
}

/// The status and the body of an answer, at most [`MAX_ANSWER_BYTES`]; a redirect is an
/// error (its body is not read).
pub(crate) async fn read_answer(
    mut response: reqwest::Response,
) -> Result<(u16, Vec<u8>), ReadError> {
    let status = response.status().as_u16();
    if response.status().is_redirection() {
        return Err(ReadError::Redirect { status });
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ReadError::Broken(transport_detail(e)))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}
