//! What ICE's failed or odd answers mean, beyond their HTTP status: which error answers
//! say "no such project" or "no such job" (and which must not be taken for one), and what
//! a body that does not parse looked like, for a message an operator can act on.

use ice_wire::model::RequestIdOnly;

use super::error::IceError;

/// "No such project" is specifically `InvalidParameter` naming the ProjectId parameter
/// ("The specified parameter ProjectId is not valid."). Any other `InvalidParameter` (an
/// API change, a proxy that mangles requests) stays an error: it is no evidence that
/// the project is gone, and must never mark projects removed.
pub(super) fn not_found_if_invalid_id(e: IceError) -> IceError {
    match e {
        IceError::Api {
            code,
            message,
            request_id,
            http_status,
            ..
        } if code == "InvalidParameter" && names_project_id(&message) => IceError::NotFound {
            http_status,
            message,
            request_id,
        },
        other => other,
    }
}

fn names_project_id(message: &str) -> bool {
    names_parameter(message, "ProjectId")
}

fn names_parameter(message: &str, name: &str) -> bool {
    message
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| word == name)
}

/// An unknown JobId: ICE's answer is not documented, so the three candidates
/// (`reference/producing-jobs.md` §4) all mean "not found": 404 `ResourceNotFound`, 404
/// `JobNotFound`, and `InvalidParameter` naming JobId.
pub(super) fn not_found_if_unknown_job(e: IceError) -> IceError {
    match e {
        IceError::Api {
            code,
            message,
            request_id,
            http_status,
            ..
        } if code == "ResourceNotFound"
            || code == "JobNotFound"
            || (code == "InvalidParameter" && names_parameter(&message, "JobId")) =>
        {
            IceError::NotFound {
                http_status,
                message,
                request_id,
            }
        }
        other => other,
    }
}

pub(super) fn malformed(
    status: u16,
    body: &[u8],
    error: serde_json::Error,
    request_id: Option<String>,
) -> IceError {
    let request_id = request_id.or_else(|| {
        serde_json::from_slice::<RequestIdOnly>(body)
            .ok()
            .and_then(|r| r.request_id)
    });
    let detail = if body.iter().all(u8::is_ascii_whitespace) {
        "empty body".to_string()
    } else if body.trim_ascii_start().starts_with(b"<") {
        "HTML/XML instead of JSON".to_string()
    } else if error.classify() == serde_json::error::Category::Data {
        format!("valid JSON of the wrong shape: {error}")
    } else {
        format!("invalid JSON: {error}")
    };
    IceError::Malformed {
        http_status: status,
        detail,
        request_id,
    }
}
