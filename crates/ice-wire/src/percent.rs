//! Percent-encoding as every Alibaba Cloud signature (ACS3 for ICE, the RPC signature for
//! STS) computes it: RFC 3986, space as `%20`, never `+`. A leaf, so `ice` and
//! `credentials` share it without depending on each other.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// RFC 3986: everything but `A-Z a-z 0-9 - _ . ~` is percent-encoded.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a query value the way the SDKs do.
pub fn percent_encode(value: &str) -> String {
    utf8_percent_encode(value, RFC3986).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_like_the_sdks() {
        assert_eq!(super::percent_encode("a b*~/é"), "a%20b%2A~%2F%C3%A9");
    }
}
