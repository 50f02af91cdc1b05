//! The webhook's signature: HMAC-SHA256 over the exact body bytes, keyed with the
//! secret's bytes, sent as `X-Ice-Sync-Signature: sha256=<lowercase hex>` (the scheme
//! GitHub's `X-Hub-Signature-256` made familiar, so receivers have examples to copy).

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// The header carrying the signature.
pub(crate) const HEADER: &str = "X-Ice-Sync-Signature";

/// `sha256=<hex>` of `body` under `key`.
pub(crate) fn sign(key: &SecretString, body: &[u8]) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key.expose_secret().as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_rfc_4231_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let key = SecretString::from("Jefe".to_string());
        assert_eq!(
            sign(&key, b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
