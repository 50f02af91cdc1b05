//! Server-side ACS3-HMAC-SHA256 verification, the checks the POP gateway makes before a
//! request reaches ICE.
//!
//! The signature is recomputed with the same `ice_wire::signing::sign` the client uses, but
//! from what actually arrived: the received method and path, the query as the server
//! decodes it, exactly the headers the client listed in `SignedHeaders` (with their
//! received values) and the hash of the received body. A client that signs one thing
//! and sends another therefore fails here just as it would against the real service.

use std::collections::{HashSet, VecDeque};

use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, NaiveDateTime, Utc};
use percent_encoding::percent_decode_str;

use super::api::ApiError;
use ice_wire::signing::{hashed_payload, parse_authorization, sign, SignInput};

/// Headers the gateway requires to be present and signed on every V3 request.
pub(crate) const REQUIRED_SIGNED: [&str; 6] = [
    "host",
    "x-acs-action",
    "x-acs-version",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
];
const MAX_CLOCK_SKEW_SECS: i64 = 15 * 60;

/// The one AccessKey the simulator knows.
#[derive(Clone, Debug)]
pub(crate) struct Credentials {
    pub access_key_id: String,
    pub access_key_secret: String,
    pub security_token: Option<String>,
}

/// A request as received.
pub(crate) struct Incoming<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// Decoded query pairs, see [`decode_query`].
    pub query: &'a [(String, String)],
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Recently used nonces. Bounded, because the real gateway also only remembers nonces
/// for the 15-minute validity window of a request date.
pub(crate) struct NonceCache {
    seen: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl NonceCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// Records the nonce; false if it was already there.
    pub(crate) fn insert(&mut self, nonce: &str) -> bool {
        if self.seen.contains(nonce) {
            return false;
        }
        if self.order.len() >= self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(nonce.to_string());
        self.order.push_back(nonce.to_string());
        true
    }
}

/// The AccessKey ID a request claims in its `Authorization` header, to pick the key
/// to verify it with (the base AccessKey, or temporary credentials STS issued).
pub(crate) fn claimed_access_key_id(headers: &HeaderMap) -> Option<String> {
    let header = first_header(headers, "authorization")?;
    parse_authorization(header).map(|p| p.access_key_id.to_string())
}

/// Decodes a raw query string the way the gateway does: `+` is a space (Python's
/// `urlencode`, which the SDK uses, sends spaces that way) and `%XX` is a byte.
pub(crate) fn decode_query(raw: Option<&str>) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let spaced = s.replace('+', " ");
        percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
    };
    raw.unwrap_or("")
        .split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| match segment.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(segment), String::new()),
        })
        .collect()
}

fn header_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

fn first_header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn incomplete(detail: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "IncompleteSignature",
        &format!("The request signature does not conform to Aliyun standards. {detail}"),
    )
}

fn parse_date(value: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%SZ")
        .map(|n| n.and_utc())
        .ok()
        .or_else(|| {
            DateTime::parse_from_rfc3339(value)
                .ok()
                .map(|d| d.with_timezone(&Utc))
        })
}

/// Runs every gateway check in the gateway's order; on success the nonce is recorded.
pub(crate) fn verify(
    request: &Incoming<'_>,
    credentials: &Credentials,
    nonces: &mut NonceCache,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let headers = request.headers;
    let authorization = first_header(headers, "authorization")
        .ok_or_else(|| incomplete("The Authorization header is missing."))?;
    let parsed = parse_authorization(authorization)
        .ok_or_else(|| incomplete("The Authorization header is malformed."))?;
    let signed: Vec<String> = parsed
        .signed_headers
        .iter()
        .filter(|h| !h.is_empty())
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let is_signed = |name: &str| signed.iter().any(|s| s == name);
    for name in REQUIRED_SIGNED {
        if headers.get(name).is_none() {
            return Err(incomplete(&format!("Header {name} is missing.")));
        }
        if !is_signed(name) {
            return Err(incomplete(&format!("Header {name} is not signed.")));
        }
    }

    if parsed.access_key_id != credentials.access_key_id {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        ));
    }

    let date = first_header(headers, "x-acs-date").unwrap_or_default();
    let date = parse_date(date).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidTimeStamp.Format",
            "Specified time stamp or date value is not well formatted.",
        )
    })?;
    if (now - date).num_seconds().abs() > MAX_CLOCK_SKEW_SECS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidTimeStamp.Expired",
            &format!(
                "Specified time stamp or date value is expired. The server time is {}.",
                now.format("%Y-%m-%dT%H:%M:%SZ")
            ),
        ));
    }

    check_security_token(headers, credentials, parsed.access_key_id, &is_signed)?;

    // Only the headers the client named, with the values that arrived. A named header
    // that did not arrive simply drops out, and the signature cannot match.
    let mut signed_pairs = Vec::new();
    for name in &signed {
        for value in header_values(headers, name) {
            signed_pairs.push((name.clone(), value));
        }
    }
    // The hash of what arrived, not the header's claim: a wrong x-acs-content-sha256
    // changes the canonical request and so fails as a signature mismatch.
    let payload = hashed_payload(request.body);
    let expected = sign(&SignInput {
        method: request.method,
        path: request.path,
        query: request.query,
        headers: &signed_pairs,
        hashed_payload: &payload,
        access_key_id: &credentials.access_key_id,
        access_key_secret: &credentials.access_key_secret,
    });
    let claimed_payload = first_header(headers, "x-acs-content-sha256").unwrap_or_default();
    if !expected.signature.eq_ignore_ascii_case(parsed.signature) || claimed_payload != payload {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "SignatureDoesNotMatch",
            &format!(
                "Specified signature is not matched with our calculation. server string to sign is:{}",
                expected.string_to_sign
            ),
        ));
    }

    let nonce = first_header(headers, "x-acs-signature-nonce").unwrap_or_default();
    if !nonces.insert(nonce) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        ));
    }
    Ok(())
}

/// STS: the token and the AccessKey ID travel as signed headers next to the signature.
fn check_security_token(
    headers: &HeaderMap,
    credentials: &Credentials,
    access_key_id: &str,
    is_signed: &dyn Fn(&str) -> bool,
) -> Result<(), ApiError> {
    let sent = first_header(headers, "x-acs-security-token");
    let mismatch = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidSecurityToken.MismatchWithAccessKey",
            "Specified SecurityToken mismatch with the AccessKey.",
        )
    };
    let Some(expected) = credentials.security_token.as_deref() else {
        // A token sent with a long-term AccessKey belongs to some other key.
        return match sent {
            Some(_) => Err(mismatch()),
            None => Ok(()),
        };
    };
    let token = sent
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidSecurityToken.Malformed",
                "Specified SecurityToken is malformed.",
            )
        })?;
    if token != expected {
        return Err(mismatch());
    }
    if first_header(headers, "x-acs-accesskey-id").map(str::trim) != Some(access_key_id) {
        return Err(mismatch());
    }
    for name in ["x-acs-security-token", "x-acs-accesskey-id"] {
        if !is_signed(name) {
            return Err(incomplete(&format!("Header {name} is not signed.")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderName, HeaderValue};

    const AK: &str = "AKID";
    const SECRET: &str = "secret";

    fn creds(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: AK.into(),
            access_key_secret: SECRET.into(),
            security_token: token.map(str::to_string),
        }
    }

    /// Signs like the client: every header present is signed.
    fn signed_request(
        now: DateTime<Utc>,
        nonce: &str,
        extra: &[(&str, &str)],
        secret: &str,
        query: &[(String, String)],
    ) -> HeaderMap {
        let mut pairs: Vec<(String, String)> = vec![
            ("host".into(), "127.0.0.1:1".into()),
            ("x-acs-action".into(), "GetEditingProject".into()),
            ("x-acs-version".into(), "2020-11-09".into()),
            (
                "x-acs-date".into(),
                now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            ),
            ("x-acs-signature-nonce".into(), nonce.into()),
            ("x-acs-content-sha256".into(), hashed_payload(b"")),
        ];
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let sig = sign(&SignInput {
            method: "POST",
            path: "/",
            query,
            headers: &pairs,
            hashed_payload: &hashed_payload(b""),
            access_key_id: AK,
            access_key_secret: secret,
        });
        pairs.push(("authorization".into(), sig.authorization));
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(&v),
            ) {
                map.append(k, v);
            }
        }
        map
    }

    fn check(headers: &HeaderMap, query: &[(String, String)], c: &Credentials) -> String {
        let mut nonces = NonceCache::new(10);
        verify(
            &Incoming {
                method: "POST",
                path: "/",
                query,
                headers,
                body: b"",
            },
            c,
            &mut nonces,
            Utc::now(),
        )
        .map_or_else(|e| e.code, |()| "ok".to_string())
    }

    #[test]
    fn accepts_a_correct_signature_and_rejects_tampering() {
        let query = decode_query(Some("ProjectId=a%20b+c&Next=x%2By%3D"));
        assert_eq!(query[0], ("ProjectId".into(), "a b c".into()));
        assert_eq!(query[1], ("Next".into(), "x+y=".into()));
        let headers = signed_request(Utc::now(), "n1", &[], SECRET, &query);
        assert_eq!(check(&headers, &query, &creds(None)), "ok");
        let other_query = decode_query(Some("ProjectId=other"));
        assert_eq!(
            check(&headers, &other_query, &creds(None)),
            "SignatureDoesNotMatch"
        );
        let wrong = signed_request(Utc::now(), "n2", &[], "nope", &query);
        assert_eq!(check(&wrong, &query, &creds(None)), "SignatureDoesNotMatch");
    }

    #[test]
    fn gateway_checks_in_order() {
        let q: Vec<(String, String)> = Vec::new();
        let old = Utc::now() - chrono::Duration::minutes(20);
        let stale = signed_request(old, "n", &[], SECRET, &q);
        assert_eq!(check(&stale, &q, &creds(None)), "InvalidTimeStamp.Expired");
        assert_eq!(
            check(&HeaderMap::new(), &q, &creds(None)),
            "IncompleteSignature"
        );
        let mut other_key = creds(None);
        other_key.access_key_id = "OTHER".into();
        let fine = signed_request(Utc::now(), "n", &[], SECRET, &q);
        assert_eq!(check(&fine, &q, &other_key), "InvalidAccessKeyId.NotFound");
        let mut unsigned = fine.clone();
        unsigned.remove("x-acs-signature-nonce");
        assert_eq!(check(&unsigned, &q, &creds(None)), "IncompleteSignature");
    }

    #[test]
    fn nonces_are_single_use_and_tokens_are_checked() {
        let q: Vec<(String, String)> = Vec::new();
        let mut nonces = NonceCache::new(10);
        let headers = signed_request(Utc::now(), "same", &[], SECRET, &q);
        let incoming = Incoming {
            method: "POST",
            path: "/",
            query: &q,
            headers: &headers,
            body: b"",
        };
        let c = creds(None);
        assert!(verify(&incoming, &c, &mut nonces, Utc::now()).is_ok());
        let again = verify(&incoming, &c, &mut nonces, Utc::now()).map_err(|e| e.code);
        assert_eq!(again, Err("SignatureNonceUsed".to_string()));

        let sts = creds(Some("tok"));
        let good = signed_request(
            Utc::now(),
            "t1",
            &[("x-acs-accesskey-id", AK), ("x-acs-security-token", "tok")],
            SECRET,
            &q,
        );
        assert_eq!(check(&good, &q, &sts), "ok");
        let bad = signed_request(
            Utc::now(),
            "t2",
            &[
                ("x-acs-accesskey-id", AK),
                ("x-acs-security-token", "other"),
            ],
            SECRET,
            &q,
        );
        assert_eq!(
            check(&bad, &q, &sts),
            "InvalidSecurityToken.MismatchWithAccessKey"
        );
        let none = signed_request(Utc::now(), "t3", &[], SECRET, &q);
        assert_eq!(check(&none, &q, &sts), "InvalidSecurityToken.Malformed");
    }
}
