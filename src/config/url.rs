//! [`DatabaseUrl`]: the `database.url` value, which may carry a password, in a type
//! that hides it wherever it is shown.
//!
//! `Debug` and `Display` print the URL with the userinfo password and every
//! secret-looking query parameter (`password`, `sslpassword`, any key containing
//! `pass`, `pwd`, `secret` or `token`) replaced by `***`. The raw text is reachable only
//! through [`DatabaseUrl::expose_secret`], for the few places that connect. Errors from
//! a failed connection go through [`DatabaseUrl::scrub`] before they are shown, because
//! driver messages may quote what they were given.

use std::fmt;

const MASK: &str = "***";

/// A database URL that redacts itself when formatted.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL as written, password included: only for handing to the driver.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The URL with every secret replaced by `***`; unchanged when it holds none.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }

    /// `text` with every secret of this URL (as written and percent-decoded) replaced
    /// by `***`: for driver errors, which may quote the URL or parts of it.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.replace(&self.0, &self.redacted());
        let mut secrets = secrets(&self.0);
        // Longest first, so a secret containing another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for secret in secrets {
            out = out.replace(&secret, MASK);
        }
        out
    }
}

impl From<String> for DatabaseUrl {
    fn from(url: String) -> Self {
        Self(url)
    }
}

impl From<&str> for DatabaseUrl {
    fn from(url: &str) -> Self {
        Self(url.to_string())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.redacted(), f)
    }
}

/// Whether a query parameter's name says its value is a secret.
fn secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["pass", "pwd", "secret", "token"]
        .iter()
        .any(|word| key.contains(word))
}

/// Where the userinfo password sits: between the first `:` after `://` and the last `@`
/// before the query. Found by text rather than by a URL parser, so that a password with
/// an unencoded `@`, `/` or `?` (which a parser splits elsewhere, or rejects) is still
/// masked whole; erring towards masking too much.
fn password_span(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let rest = &url[start..];
    let query = rest.find(['?', '#']).unwrap_or(rest.len());
    let at = match rest[..query].rfind('@') {
        Some(at) => at,
        // A '?' inside the password hides the '@' behind it; such a URL does not parse.
        None if reqwest::Url::parse(url).is_err() => rest.rfind('@')?,
        None => return None,
    };
    let colon = rest[..at].find(':')?;
    Some((start + colon + 1, start + at))
}

/// The query string's `(start, end)` in `url`: after the first `?` that follows the
/// userinfo, up to a `#` or the end.
fn query_span(url: &str) -> Option<(usize, usize)> {
    let from = password_span(url).map_or(0, |(_, end)| end);
    let q = url[from..].find('?')? + from + 1;
    let end = url[q..].find('#').map_or(url.len(), |i| q + i);
    Some((q, end))
}

/// Every secret value in `url`: as written, and percent-decoded when that differs.
fn secrets(url: &str) -> Vec<String> {
    let mut raw = Vec::new();
    if let Some((a, b)) = password_span(url) {
        raw.push(url[a..b].to_string());
    }
    if let Some((a, b)) = query_span(url) {
        for pair in url[a..b].split('&') {
            if let Some((key, value)) = pair.split_once('=') {
                if secret_key(&decode(key)) {
                    raw.push(value.to_string());
                }
            }
        }
    }
    let mut all = Vec::new();
    for s in raw.into_iter().filter(|s| !s.is_empty()) {
        let decoded = decode(&s);
        if decoded != s && !decoded.is_empty() {
            all.push(decoded);
        }
        all.push(s);
    }
    all
}

fn redact(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut pos = 0;
    if let Some((a, b)) = password_span(url) {
        out.push_str(&url[..a]);
        out.push_str(MASK);
        pos = b;
    }
    if let Some((a, b)) = query_span(url) {
        out.push_str(&url[pos..a]);
        let pairs: Vec<String> = url[a..b]
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if secret_key(&decode(key)) => format!("{key}={MASK}"),
                _ => pair.to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
        pos = b;
    }
    out.push_str(&url[pos..]);
    out
}

/// Percent-decoding as in query strings (`+` is a space).
fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(url: &str) -> String {
        DatabaseUrl::new(url).to_string()
    }

    #[test]
    fn userinfo_password_is_masked() {
        assert_eq!(shown("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(
            shown("postgresql://u:p%40ss@h:5432/db?sslmode=require"),
            "postgresql://u:***@h:5432/db?sslmode=require"
        );
        // Unencoded '@', '/' or '?' in the password: still masked whole.
        assert_eq!(shown("postgres://u:a@b/c@h/db"), "postgres://u:***@h/db");
        assert_eq!(shown("postgres://u:pa?ss@h/db"), "postgres://u:***@h/db");
        assert_eq!(
            shown("postgres://u:pw@h/db?x=a@b"),
            "postgres://u:***@h/db?x=a@b"
        );
    }

    #[test]
    fn query_string_secrets_are_masked() {
        assert_eq!(
            shown("postgres://u@h/db?password=pw2&sslmode=disable"),
            "postgres://u@h/db?password=***&sslmode=disable"
        );
        assert_eq!(
            shown("postgres://u:pw1@h/db?sslpassword=x&application_name=a&api_token=t&PassWord=y"),
            "postgres://u:***@h/db?sslpassword=***&application_name=a&api_token=***&PassWord=***"
        );
        assert_eq!(
            shown("postgres://h/db?pass%77ord=z"),
            "postgres://h/db?pass%77ord=***"
        );
    }

    #[test]
    fn urls_without_secrets_are_shown_as_written() {
        for url in [
            "sqlite://ice-sync.db?mode=rwc",
            "sqlite:///var/lib/ice-sync/ice-sync.db?mode=rwc",
            "sqlite::memory:",
            "postgres://postgres@127.0.0.1:5432/postgres",
            "postgres://u@h/db?options=-c%20search_path%3Dx&user=a@b",
            "mysql://x",
        ] {
            assert_eq!(shown(url), url);
        }
    }

    #[test]
    fn debug_is_redacted_and_quoted() {
        let url = DatabaseUrl::new("postgres://u:pw1secret@h/db?password=pw2secret");
        let debug = format!("{url:?}");
        assert_eq!(debug, "\"postgres://u:***@h/db?password=***\"");
        assert_eq!(
            url.expose_secret(),
            "postgres://u:pw1secret@h/db?password=pw2secret"
        );
    }

    #[test]
    fn scrub_removes_secrets_from_driver_messages() {
        let url = DatabaseUrl::new("postgres://u:p%2Fw1@h/db?password=pw2%20x");
        let message = format!(
            "bad {} (password p/w1, then pw2 x, then p%2Fw1)",
            url.expose_secret()
        );
        let scrubbed = url.scrub(&message);
        assert!(
            !scrubbed.contains("p/w1") && !scrubbed.contains("p%2Fw1"),
            "{scrubbed}"
        );
        assert!(!scrubbed.contains("pw2"), "{scrubbed}");
        assert!(
            scrubbed.contains("postgres://u:***@h/db?password=***"),
            "{scrubbed}"
        );
    }
}
