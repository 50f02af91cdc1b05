//! ICE's callback authentication: `X-ICE-SIGNATURE = md5(CallbackURL + "|" +
//! X-ICE-TIMESTAMP + "|" + AuthKey)` in hex, over the URL exactly as registered.
//!
//! Pure: no clock, no I/O. Whether the timestamp is fresh is the receiver's business;
//! this file only says whether a signature was made with one of the accepted keys.
//! The comparison takes the same time whichever byte differs and whichever key matches,
//! and accepts either hex case (the documented examples are lower case).

use md5::{Digest, Md5};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// The signature ICE sends for this URL, timestamp and key, in lower-case hex.
pub fn digest(url: &str, timestamp: &str, key: &str) -> String {
    let mut md5 = Md5::new();
    md5.update(url.as_bytes());
    md5.update(b"|");
    md5.update(timestamp.as_bytes());
    md5.update(b"|");
    md5.update(key.as_bytes());
    hex::encode(md5.finalize())
}

/// Which of `keys` (its index) signed `signature`; `None` when none did or the
/// signature is not 32 hex digits.
pub(crate) fn verify(
    url: &str,
    timestamp: &str,
    signature: &str,
    keys: &[SecretString],
) -> Option<usize> {
    let received = signature.trim().to_ascii_lowercase();
    if received.len() != 32 || !received.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // Every key is tried, so the time taken does not say which one matched.
    let mut found = None;
    for (i, key) in keys.iter().enumerate() {
        let expected = digest(url, timestamp, key.expose_secret());
        let same: bool = expected.as_bytes().ct_eq(received.as_bytes()).into();
        if same && found.is_none() {
            found = Some(i);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> Vec<SecretString> {
        list.iter()
            .map(|k| SecretString::from(k.to_string()))
            .collect()
    }

    const DOC_URL: &str = "https://www.example.com/your/callback";

    #[test]
    fn the_documented_example_was_signed_with_a_lower_case_key() {
        // The doc prints the key as `Test123` and a digest starting c72b6089...; that
        // digest is the one of `test123` (see shared/reference/ice-callbacks.md).
        assert_eq!(
            digest(DOC_URL, "1519375990", "test123"),
            "c72b60894140fa98920f1279219b7ed4"
        );
        assert_eq!(
            digest(DOC_URL, "1519375990", "Test123"),
            "c587b80d2d0ede300e8967937da7219b"
        );
    }

    #[test]
    fn our_own_vector() {
        assert_eq!(
            digest(
                "https://ice-sync.example.com/ice/events",
                "1718000000",
                "TestKey001"
            ),
            "bb3ca5540db3dced48b9b9e2bf83b766"
        );
    }

    #[test]
    fn verify_accepts_either_case_and_names_the_key() {
        let url = "https://ice-sync.example.com/ice/events";
        let ring = keys(&["OldKey001", "TestKey001"]);
        let sig = "bb3ca5540db3dced48b9b9e2bf83b766";
        assert_eq!(verify(url, "1718000000", sig, &ring), Some(1));
        assert_eq!(
            verify(url, "1718000000", &sig.to_ascii_uppercase(), &ring),
            Some(1)
        );
        assert_eq!(
            verify(url, "1718000000", sig, &keys(&["TestKey001"])),
            Some(0)
        );
    }

    #[test]
    fn verify_refuses_anything_else() {
        let url = "https://ice-sync.example.com/ice/events";
        let ring = keys(&["TestKey001"]);
        let sig = "bb3ca5540db3dced48b9b9e2bf83b766";
        // Another timestamp, another URL spelling (a trailing slash, the port a proxy
        // forwards to), another key, a truncated or non-hex signature, no keys at all.
        assert_eq!(verify(url, "1718000001", sig, &ring), None);
        assert_eq!(verify(&format!("{url}/"), "1718000000", sig, &ring), None);
        assert_eq!(
            verify("http://127.0.0.1:9188/ice/events", "1718000000", sig, &ring),
            None
        );
        assert_eq!(verify(url, "1718000000", sig, &keys(&["TestKey002"])), None);
        assert_eq!(verify(url, "1718000000", &sig[..31], &ring), None);
        assert_eq!(
            verify(url, "1718000000", "zz3ca5540db3dced48b9b9e2bf83b766", &ring),
            None
        );
        assert_eq!(verify(url, "1718000000", "", &ring), None);
        assert_eq!(verify(url, "1718000000", sig, &[]), None);
    }
}
