//! ACS3-HMAC-SHA256 ("signature V3"), byte for byte as the official SDK signs.
//!
//! Pure functions only: this module never sees a socket or a clock. [`rpc_headers`] is
//! the header set ice-sync's client (`ice::client`) sends, signed with [`sign`]; the
//! simulator calls the same function to check what it received, and its bare caller
//! (`ice_sim::SignedCaller`) sends the same headers. The test vectors in
//! `tests/data/signing-vectors.json` were produced by the official SDK and pin
//! every intermediate string.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const ALGORITHM: &str = "ACS3-HMAC-SHA256";

pub use crate::percent::percent_encode;

/// Lowercase hex SHA-256 of the body, the value of `x-acs-content-sha256`.
pub fn hashed_payload(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// What a signature is computed over.
pub struct SignInput<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// Query parameters; order does not matter, they are sorted here.
    pub query: &'a [(String, String)],
    /// Every header that will be sent except `Authorization`; all of them are signed,
    /// as the SDK does. Names may be in any case.
    pub headers: &'a [(String, String)],
    pub hashed_payload: &'a str,
    pub access_key_id: &'a str,
    pub access_key_secret: &'a str,
}

/// Every intermediate of the signature, so tests can compare each one with the SDK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub canonical_query_string: String,
    pub canonical_headers: String,
    pub signed_headers: String,
    pub canonical_request: String,
    pub string_to_sign: String,
    pub signature: String,
    pub authorization: String,
}

/// Keys sorted by code point and left unencoded (as the SDK does); values RFC 3986.
pub fn canonical_query_string(query: &[(String, String)]) -> String {
    let mut pairs: Vec<&(String, String)> = query.iter().collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Returns (canonical headers, signed headers). Names are lowercased, values trimmed;
/// a repeated name gets its sorted values joined with `,`.
pub fn canonical_headers(headers: &[(String, String)]) -> (String, String) {
    let mut grouped: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        if name == "authorization" {
            continue;
        }
        grouped.entry(name).or_default().push(value.trim());
    }
    let mut canonical = String::new();
    for (name, values) in &mut grouped {
        values.sort_unstable();
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(&values.join(","));
        canonical.push('\n');
    }
    let signed = grouped.keys().cloned().collect::<Vec<_>>().join(";");
    (canonical, signed)
}

pub fn sign(input: &SignInput<'_>) -> Signature {
    let canonical_query_string = canonical_query_string(input.query);
    let (canonical_headers, signed_headers) = canonical_headers(input.headers);
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        input.method,
        input.path,
        canonical_query_string,
        canonical_headers,
        signed_headers,
        input.hashed_payload
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(input.access_key_secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    let authorization = format!(
        "{ALGORITHM} Credential={},SignedHeaders={signed_headers},Signature={signature}",
        input.access_key_id
    );
    Signature {
        canonical_query_string,
        canonical_headers,
        signed_headers,
        canonical_request,
        string_to_sign,
        signature,
        authorization,
    }
}

/// One RPC call as ice-sync sends it: `POST /`, an empty body, the query in the URL.
pub struct RpcRequest<'a> {
    /// `host[:port]` of the endpoint.
    pub host: &'a str,
    pub action: &'a str,
    /// The API version (`x-acs-version`).
    pub version: &'a str,
    pub user_agent: &'a str,
    pub query: &'a [(String, String)],
    /// `x-acs-date`, `%Y-%m-%dT%H:%M:%SZ` in UTC.
    pub date: &'a str,
    /// `x-acs-signature-nonce`, unique per request.
    pub nonce: &'a str,
    pub access_key_id: &'a str,
    pub access_key_secret: &'a str,
    /// Temporary credentials' token: sent (and signed) with `x-acs-accesskey-id`.
    pub security_token: Option<&'a str>,
}

/// Every header of `request`, all of them signed, `authorization` last.
pub fn rpc_headers(request: &RpcRequest<'_>) -> Vec<(String, String)> {
    let payload = hashed_payload(b"");
    let mut pairs: Vec<(String, String)> = vec![
        ("host".into(), request.host.into()),
        ("x-acs-version".into(), request.version.into()),
        ("x-acs-action".into(), request.action.into()),
        ("user-agent".into(), request.user_agent.into()),
        ("x-acs-date".into(), request.date.into()),
        ("x-acs-signature-nonce".into(), request.nonce.into()),
        ("accept".into(), "application/json".into()),
        ("x-acs-content-sha256".into(), payload.clone()),
    ];
    if let Some(token) = request.security_token {
        pairs.push(("x-acs-accesskey-id".into(), request.access_key_id.into()));
        pairs.push(("x-acs-security-token".into(), token.into()));
    }
    let signature = sign(&SignInput {
        method: "POST",
        path: "/",
        query: request.query,
        headers: &pairs,
        hashed_payload: &payload,
        access_key_id: request.access_key_id,
        access_key_secret: request.access_key_secret,
    });
    pairs.push(("authorization".into(), signature.authorization));
    pairs
}

/// The URL query of an RPC call: keys as given, values RFC 3986 (the signature sorts them
/// on its own).
pub fn rpc_query(query: &[(String, String)]) -> String {
    query
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The parts of an `Authorization` header, as the server side needs them.
#[derive(Debug, PartialEq, Eq)]
pub struct ParsedAuthorization<'a> {
    pub access_key_id: &'a str,
    pub signed_headers: Vec<&'a str>,
    pub signature: &'a str,
}

/// Parses `ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..`; `None` if malformed.
pub fn parse_authorization(header: &str) -> Option<ParsedAuthorization<'_>> {
    let rest = header.strip_prefix(ALGORITHM)?.strip_prefix(' ')?;
    let (mut id, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (key, value) = part.trim().split_once('=')?;
        match key {
            "Credential" => id = Some(value),
            "SignedHeaders" => signed = Some(value.split(';').collect()),
            "Signature" => sig = Some(value),
            _ => return None,
        }
    }
    Some(ParsedAuthorization {
        access_key_id: id?,
        signed_headers: signed?,
        signature: sig?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn pairs(v: &Value) -> Vec<(String, String)> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every V3 vector from the official SDK, reproduced byte for byte.
    #[test]
    fn reproduces_every_sdk_vector() {
        let raw = include_str!("../../../tests/data/signing-vectors.json");
        let doc: Value = serde_json::from_str(raw).expect("vectors parse");
        let mut checked = 0;
        for v in doc["vectors"].as_array().expect("vectors array") {
            let name = v["name"].as_str().unwrap_or("?");
            if !v["kind"]
                .as_str()
                .unwrap_or("")
                .starts_with("acs3-hmac-sha256")
            {
                continue; // ice-sync signs with ACS3 only: HMAC-SHA1 vectors are out of scope
            }
            let (method, path, query, mut headers, body) = if let Some(sent) = v.get("request_sent")
            {
                (
                    sent["method"].as_str().unwrap_or_default(),
                    sent["path"].as_str().unwrap_or_default(),
                    pairs(&sent["query"]),
                    pairs(&sent["headers"]),
                    sent["body"].as_str().unwrap_or_default(),
                )
            } else {
                let i = &v["inputs"];
                (
                    i["method"].as_str().unwrap_or_default(),
                    i["path"].as_str().unwrap_or_default(),
                    pairs(&i["query"]),
                    pairs(&i["headers"]),
                    i["body"].as_str().unwrap_or_default(),
                )
            };
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
            let inputs = &v["inputs"];
            let payload = hashed_payload(body.as_bytes());
            let expected = &v["intermediates"];
            assert_eq!(
                payload,
                expected["hashed_payload"].as_str().unwrap_or_default(),
                "{name}"
            );
            let sig = sign(&SignInput {
                method,
                path,
                query: &query,
                headers: &headers,
                hashed_payload: &payload,
                access_key_id: inputs["access_key_id"].as_str().unwrap_or_default(),
                access_key_secret: inputs["access_key_secret"].as_str().unwrap_or_default(),
            });
            for (field, got) in [
                ("canonical_query_string", &sig.canonical_query_string),
                ("canonical_headers", &sig.canonical_headers),
                ("signed_headers", &sig.signed_headers),
                ("canonical_request", &sig.canonical_request),
                ("string_to_sign", &sig.string_to_sign),
            ] {
                assert_eq!(
                    got,
                    expected[field].as_str().unwrap_or_default(),
                    "{name}: {field}"
                );
            }
            assert_eq!(
                sig.signature,
                v["signature"].as_str().unwrap_or_default(),
                "{name}"
            );
            assert_eq!(
                sig.authorization,
                v["authorization"].as_str().unwrap_or_default(),
                "{name}"
            );
            checked += 1;
        }
        assert_eq!(checked, 8, "every ACS3 vector must be checked");
    }

    #[test]
    fn authorization_round_trips() {
        let header = "ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=host;x-acs-date,Signature=abc";
        let parsed = parse_authorization(header).expect("parses");
        assert_eq!(parsed.access_key_id, "AK");
        assert_eq!(parsed.signed_headers, vec!["host", "x-acs-date"]);
        assert_eq!(parsed.signature, "abc");
        assert!(parse_authorization("Bearer x").is_none());
        assert!(parse_authorization("ACS3-HMAC-SHA256 Credential=AK").is_none());
    }
}
