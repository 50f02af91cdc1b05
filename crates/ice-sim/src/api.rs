//! The two ICE actions the simulator serves, and the gateway's error bodies.
//!
//! Pure functions over the project map: `lib.rs` holds the lock and the sockets, this
//! module decides what the answer is. Success bodies are serialized straight from the
//! `ice_wire::model` types (never through `serde_json::Value`, which would reorder keys), so
//! they have the field order of the real responses.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use chrono::{DateTime, NaiveDateTime, Utc};
use rand::rngs::StdRng;
use rand::Rng;

use ice_wire::model::{
    ErrorBody, GetEditingProjectResponse, ListEditingProjectsResponse, ListedProject, Project,
};

pub(crate) const API_VERSION: &str = "2020-11-09";
const DEFAULT_MAX_RESULTS: u32 = 10;
const MAX_MAX_RESULTS: u32 = 100;

/// A gateway or API error: HTTP status, `Code` and `Message`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &str, message: &str) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.to_string(),
        }
    }

    fn invalid_parameter(name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            &format!("The specified parameter {name} is not valid."),
        )
    }
}

/// A request ID shaped like the samples: uppercase hex, 8-4-4-4-12.
pub(crate) fn request_id(rng: &mut StdRng) -> String {
    let n: u128 = rng.gen();
    let hex = format!("{n:032X}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The POP gateway's error body, as in `error.*.json`.
pub(crate) fn error_body(
    error: &ApiError,
    request_id: &str,
    host: &str,
) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&ErrorBody {
        request_id: Some(request_id.to_string()),
        host_id: Some(host.to_string()),
        code: Some(error.code.clone()),
        message: Some(error.message.clone()),
        recommend: Some(format!(
            "https://api.aliyun.com/troubleshoot?q={}&product=ICE&requestId={request_id}",
            error.code
        )),
    })
}

/// An error response: the body above, its HTTP status, and the request ID also in
/// `x-acs-request-id`.
pub(crate) fn error_response(error: &ApiError, request_id: &str, host: &str) -> Response {
    json_response(
        error.status,
        error_body(error, request_id, host),
        request_id,
    )
}

/// A JSON response with the gateway's headers. A serialization failure (which the model
/// types cannot produce) becomes a 500, never a panic.
pub(crate) fn json_response(
    status: StatusCode,
    body: Result<Vec<u8>, serde_json::Error>,
    request_id: &str,
) -> Response {
    let (status, bytes) = status_and_bytes(status, body, request_id);
    with_headers(Response::new(Body::from(bytes)), status, request_id)
}

/// [`json_response`] without a Content-Length: the body goes out in chunks, as from a
/// gateway that streams, so a client cannot know its size before reading it.
pub(crate) fn chunked_json_response(
    status: StatusCode,
    body: Result<Vec<u8>, serde_json::Error>,
    request_id: &str,
) -> Response {
    const CHUNK: usize = 64 * 1024;
    let (status, bytes) = status_and_bytes(status, body, request_id);
    let whole = axum::body::Bytes::from(bytes);
    let chunks: Vec<Result<axum::body::Bytes, std::io::Error>> = (0..whole.len())
        .step_by(CHUNK)
        .map(|at| Ok(whole.slice(at..(at + CHUNK).min(whole.len()))))
        .collect();
    let body = Body::from_stream(futures::stream::iter(chunks));
    with_headers(Response::new(body), status, request_id)
}

fn status_and_bytes(
    status: StatusCode,
    body: Result<Vec<u8>, serde_json::Error>,
    request_id: &str,
) -> (StatusCode, Vec<u8>) {
    match body {
        Ok(bytes) => (status, bytes),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "{{\"RequestId\":\"{request_id}\",\"Code\":\"InternalError\",\"Message\":\"{e}\"}}"
            )
            .into_bytes(),
        ),
    }
}

fn with_headers(mut response: Response, status: StatusCode, request_id: &str) -> Response {
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-acs-request-id", value);
    }
    response
}

/// A successful answer, kept typed until it is written out.
pub(crate) enum Success {
    Get(Box<GetEditingProjectResponse>),
    List(ListEditingProjectsResponse),
    /// The event-callback actions (`events`), whose answers have no model type.
    Json(serde_json::Value),
    /// The producing-job actions (`jobs`).
    JobGet(Box<ice_wire::jobs_model::GetMediaProducingJobResponse>),
    JobList(ice_wire::jobs_model::ListMediaProducingJobsResponse),
}

impl Success {
    pub(crate) fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        match self {
            Success::Get(body) => serde_json::to_vec(body),
            Success::List(body) => serde_json::to_vec(body),
            Success::Json(body) => serde_json::to_vec(body),
            Success::JobGet(body) => serde_json::to_vec(body),
            Success::JobList(body) => serde_json::to_vec(body),
        }
    }
}

pub(crate) fn param<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Dispatches on `x-acs-action` once the request is authenticated.
pub(crate) fn answer(
    action: &str,
    version: &str,
    query: &[(String, String)],
    projects: &BTreeMap<String, Project>,
    order: &[SortKey],
    request_id: &str,
    token_key: u64,
) -> Result<Success, ApiError> {
    if version != API_VERSION {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidVersion",
            "Specified parameter Version is not valid.",
        ));
    }
    match action {
        "GetEditingProject" => {
            get(query, projects, request_id).map(|body| Success::Get(Box::new(body)))
        }
        "ListEditingProjects" => {
            list(query, projects, order, request_id, token_key).map(Success::List)
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
        )),
    }
}

fn get(
    query: &[(String, String)],
    projects: &BTreeMap<String, Project>,
    request_id: &str,
) -> Result<GetEditingProjectResponse, ApiError> {
    let id = param(query, "ProjectId").ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "MissingProjectId",
            "ProjectId is mandatory for this action.",
        )
    })?;
    let project = projects
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::invalid_parameter("ProjectId"))?;
    Ok(GetEditingProjectResponse {
        request_id: Some(request_id.to_string()),
        project: Some(project),
    })
}

pub(crate) fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%SZ")
        .map(|n| n.and_utc())
        .ok()
        .or_else(|| {
            DateTime::parse_from_rfc3339(value)
                .ok()
                .map(|d| d.with_timezone(&Utc))
        })
}

pub(crate) fn listed(project: &Project) -> ListedProject {
    ListedProject {
        project_id: project.project_id.clone(),
        title: project.title.clone(),
        description: project.description.clone(),
        cover_url: project.cover_url.clone(),
        status: project.status.clone(),
        business_status: project.business_status.clone(),
        business_config: project.business_config.clone(),
        create_time: project.create_time.clone(),
        modified_time: project.modified_time.clone(),
        create_source: project.create_source.clone(),
        modified_source: project.modified_source.clone(),
        project_type: project.project_type.clone(),
        template_type: project.template_type.clone(),
        error_code: None,
        error_message: None,
    }
}

/// Paging position: the sort key of the last item served. A keyset cursor rather than
/// an offset, so projects created or removed between pages neither repeat nor vanish.
pub(crate) type SortKey = (String, String);

/// Every project's sort key, ascending: the index a page is read from, so a page costs
/// its own size rather than a sort of every project (a million, in the benchmarks).
pub(crate) fn creation_order(projects: &BTreeMap<String, Project>) -> Vec<SortKey> {
    let mut order: Vec<SortKey> = projects.iter().map(|(id, p)| sort_key(id, p)).collect();
    order.sort_unstable();
    order
}

fn sort_key(id: &str, project: &Project) -> SortKey {
    (
        project.create_time.clone().unwrap_or_default(),
        id.to_string(),
    )
}

fn list(
    query: &[(String, String)],
    projects: &BTreeMap<String, Project>,
    order: &[SortKey],
    request_id: &str,
    token_key: u64,
) -> Result<ListEditingProjectsResponse, ApiError> {
    let max_results = match param(query, "MaxResults") {
        None => DEFAULT_MAX_RESULTS,
        Some(raw) => raw
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_MAX_RESULTS).contains(n))
            .ok_or_else(|| ApiError::invalid_parameter("MaxResults"))?,
    };
    let descending = match param(query, "SortBy") {
        None | Some("CreationTime:Desc") => true,
        Some("CreationTime:Asc") => false,
        Some(_) => return Err(ApiError::invalid_parameter("SortBy")),
    };
    let bound = |name: &str| match param(query, name) {
        None => Ok(None),
        Some(raw) => parse_time(raw)
            .map(Some)
            .ok_or_else(|| ApiError::invalid_parameter(name)),
    };
    let (start, end) = (bound("StartTime")?, bound("EndTime")?);
    let cursor = match param(query, "NextToken") {
        None => None,
        Some(token) => Some(
            decode_token(token, token_key)
                .ok_or_else(|| ApiError::invalid_parameter("NextToken"))?,
        ),
    };
    let statuses: Option<Vec<&str>> =
        param(query, "Status").map(|s| s.split(',').map(str::trim).collect());
    let project_type = param(query, "ProjectType");
    let create_source = param(query, "CreateSource");
    let template_type = param(query, "TemplateType");
    let matches = |p: &Project| {
        // The API documents EditingProject as the type of a project without one.
        let kind = p.project_type.as_deref().unwrap_or("EditingProject");
        let wanted = project_type.is_none_or(|t| t == kind)
            && create_source.is_none_or(|s| p.create_source.as_deref() == Some(s))
            && template_type.is_none_or(|t| p.template_type.as_deref() == Some(t))
            && statuses
                .as_ref()
                .is_none_or(|list| p.status.as_deref().is_some_and(|s| list.contains(&s)));
        if !wanted {
            return false;
        }
        if start.is_none() && end.is_none() {
            return true;
        }
        // A project whose creation time cannot be read is outside every range.
        let Some(created) = p.create_time.as_deref().and_then(parse_time) else {
            return false;
        };
        start.is_none_or(|s| created >= s) && end.is_none_or(|e| created <= e)
    };

    // Past the cursor in the asked direction, one more than a page (to know whether
    // there is a next one).
    let page = max_results as usize;
    let after: Box<dyn Iterator<Item = &SortKey>> = match (&cursor, descending) {
        (None, true) => Box::new(order.iter().rev()),
        (None, false) => Box::new(order.iter()),
        (Some(c), true) => Box::new(order[..order.partition_point(|k| k < c)].iter().rev()),
        (Some(c), false) => Box::new(order[order.partition_point(|k| k <= c)..].iter()),
    };
    let matching: Vec<(&SortKey, &Project)> = after
        .filter_map(|key| projects.get(&key.1).map(|p| (key, p)))
        .filter(|(_, p)| matches(p))
        .take(page + 1)
        .collect();

    let next_token = (matching.len() > page)
        .then(|| {
            matching
                .get(page - 1)
                .map(|(key, _)| encode_token(key, token_key))
        })
        .flatten();
    Ok(ListEditingProjectsResponse {
        request_id: Some(request_id.to_string()),
        max_results: Some(i64::from(max_results)),
        next_token,
        project_list: matching.iter().take(page).map(|(_, p)| listed(p)).collect(),
    })
}

const TOKEN_PREFIX: &str = "c1|";

/// Tokens are opaque like the real ones: the cursor XORed with a seeded keystream, then
/// standard base64, so they carry `+`, `/` and `=` that a client must percent-encode.
pub(crate) fn encode_token(key: &SortKey, token_key: u64) -> String {
    let plain = format!("{TOKEN_PREFIX}{}|{}", key.0, key.1);
    base64_encode(&xor(plain.as_bytes(), token_key))
}

pub(crate) fn decode_token(token: &str, token_key: u64) -> Option<SortKey> {
    let plain = String::from_utf8(xor(&base64_decode(token)?, token_key)).ok()?;
    let rest = plain.strip_prefix(TOKEN_PREFIX)?;
    let (created, id) = rest.rsplit_once('|')?;
    Some((created.to_string(), id.to_string()))
}

fn xor(data: &[u8], key: u64) -> Vec<u8> {
    // splitmix64: enough to make tokens look random; they are not a security boundary.
    let mut state = key;
    let mut stream = std::iter::from_fn(move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Some((z ^ (z >> 31)).to_le_bytes())
    })
    .flatten();
    data.iter()
        .map(|b| b ^ stream.next().unwrap_or(0))
        .collect()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::LIVE;
    use rand::SeedableRng;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn store(n: usize) -> BTreeMap<String, Project> {
        (0..n)
            .map(|i| {
                let id = format!("{i:032x}");
                let project = Project {
                    project_id: Some(id.clone()),
                    // Pairs share a creation second, so the ID tie-break matters.
                    create_time: Some(format!("2024-05-{:02}T08:00:00Z", 1 + i / 2)),
                    project_type: Some(if i % 3 == 0 { LIVE } else { "EditingProject" }.into()),
                    status: Some(if i % 2 == 0 { "Draft" } else { "Produced" }.into()),
                    ..Default::default()
                };
                (id, project)
            })
            .collect()
    }

    fn page_all(projects: &BTreeMap<String, Project>, extra: &[(&str, &str)]) -> Vec<String> {
        let mut token: Option<String> = None;
        let mut seen = Vec::new();
        for _ in 0..100 {
            let mut query = q(extra);
            if let Some(t) = &token {
                query.push(("NextToken".into(), t.clone()));
            }
            let page = list(&query, projects, &creation_order(projects), "R", 99).expect("page");
            seen.extend(
                page.project_list
                    .iter()
                    .filter_map(|p| p.project_id.clone()),
            );
            match page.next_token {
                Some(t) => token = Some(t),
                None => return seen,
            }
        }
        panic!("paging did not end");
    }

    #[test]
    fn paging_returns_everything_once_in_order() {
        let projects = store(45);
        let desc = page_all(&projects, &[("MaxResults", "7")]);
        assert_eq!(desc.len(), 45);
        let mut expected: Vec<String> = projects.keys().cloned().collect();
        expected.reverse();
        assert_eq!(desc, expected);
        let asc = page_all(
            &projects,
            &[("MaxResults", "10"), ("SortBy", "CreationTime:Asc")],
        );
        expected.reverse();
        assert_eq!(asc, expected);
        let live = page_all(&projects, &[("ProjectType", LIVE), ("Status", "Draft")]);
        assert_eq!(live.len(), 8); // i % 6 == 0 for i < 45
    }

    #[test]
    fn parameters_are_validated() {
        let projects = store(3);
        for bad in [
            &[("MaxResults", "101")][..],
            &[("MaxResults", "ten")],
            &[("NextToken", "!!")],
            &[("NextToken", "QUJD")],
            &[("SortBy", "Title:Asc")],
            &[("StartTime", "yesterday")],
        ] {
            let e = list(&q(bad), &projects, &creation_order(&projects), "R", 1)
                .err()
                .map(|e| e.code);
            assert_eq!(e.as_deref(), Some("InvalidParameter"), "{bad:?}");
        }
        let window = list(
            &q(&[
                ("StartTime", "2024-05-02T00:00:00Z"),
                ("EndTime", "2024-05-02T23:59:59Z"),
            ]),
            &projects,
            &creation_order(&projects),
            "R",
            1,
        )
        .expect("ok");
        assert_eq!(window.project_list.len(), 1);
        assert_eq!(window.max_results, Some(10));
        assert_eq!(window.next_token, None);
    }

    #[test]
    fn tokens_and_request_ids_have_the_real_shapes() {
        for data in [
            &b""[..],
            b"a",
            b"ab",
            b"abc",
            b"abcd",
            &[0xff, 0xfe, 0x00, 0x80],
        ] {
            assert_eq!(base64_decode(&base64_encode(data)).as_deref(), Some(data));
        }
        assert_eq!(base64_encode(b"Man"), "TWFu");
        assert_eq!(base64_encode(b"Ma"), "TWE=");
        let key = ("2024-05-01T00:00:00Z".to_string(), "abc".to_string());
        assert_eq!(decode_token(&encode_token(&key, 5), 5), Some(key.clone()));
        assert_eq!(decode_token(&encode_token(&key, 5), 6), None);
        let id = request_id(&mut StdRng::seed_from_u64(1));
        let parts: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12]);
        assert!(id
            .chars()
            .all(|c| c == '-' || c.is_ascii_digit() || c.is_ascii_uppercase()));
    }
}
