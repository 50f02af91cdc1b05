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

use super::secrets::is_secret_param;

const MASK: &str = "***";

/// A database URL that redacts itself when formatted.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub(crate) fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL as written, password included: only for handing to the driver.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The URL with every secret replaced by `***`; unchanged when it holds none.
    pub(crate) fn redacted(&self) -> String {
        redact(&self.0)
    }

    /// `text` with every secret of this URL (as written and percent-decoded) replaced
    /// by `***`: for driver errors, which may quote the URL or parts of it.
    pub(crate) fn scrub(&self, text: &str) -> String {
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

/// Where the userinfo password sits: from the first `:` after `://` to the last `@`,
/// when that `:` comes before the last `@`. Found by text rather than by a URL parser:
/// a parser ends the userinfo at the first `/`, `?` or `#`, so a password holding one
/// of them (`#pw`, `123#x`, `a/b`, `p?w`) parses as a host and port and would be shown.
/// The last `@` is taken because a password may hold `@` too. This errs towards
/// masking too much (an `@` in the query of a URL with a password masks up to it),
/// never too little.
fn password_span(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let rest = &url[start..];
    let at = rest.rfind('@')?;
    let colon = rest[..at].find(':')?;
    Some((start + colon + 1, start + at))
}

/// The query string's `(start, end)` in `url`: after the first `?` that follows the
/// userinfo, up to the end (a `#` is taken as part of a value: database URLs have no
/// fragment, and a `#` in a password must not end its masking).
fn query_span(url: &str) -> Option<(usize, usize)> {
    let from = password_span(url).map_or(0, |(_, end)| end);
    let q = url[from..].find('?')? + from + 1;
    Some((q, url.len()))
}

/// `text`, a URL of any kind, with its userinfo password and secret-looking query
/// values masked: for showing an endpoint that is not the database URL.
pub(crate) fn redact_url(text: &str) -> String {
    redact(text)
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
                if is_secret_param(&decode(key)) {
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
                Some((key, _)) if is_secret_param(&decode(key)) => format!("{key}={MASK}"),
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
        // An '@' in the query masks up to it: too much, never too little.
        assert_eq!(shown("postgres://u:pw@h/db?x=a@b"), "postgres://u:***@b");
        // A password a URL parser would take for a host and port.
        assert_eq!(shown("postgres://u:#pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(shown("postgres://u:123#x@h/db"), "postgres://u:***@h/db");
        assert_eq!(shown("postgres://u:123?x@h/db"), "postgres://u:***@h/db");
        assert_eq!(shown("postgres://u:1/x@h/db"), "postgres://u:***@h/db");
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

    use proptest::prelude::*;

    /// The URL templates a password is planted in, as `(before, after)`.
    const TEMPLATES: [(&str, &str); 4] = [
        ("postgres://user:", "@db.example:5432/app?sslmode=disable"),
        ("postgresql://u:", "@10.0.0.1/db"),
        (
            "postgres://user:",
            "@h/db?application_name=x&sslmode=require",
        ),
        ("postgres://u:", "@h"),
    ];

    fn enc(s: &str) -> String {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    }

    /// Passwords of odd spellings: leading `#`, digits then `#` or `?`, `@`, `/`, `:`,
    /// `%` escapes, spaces, non-ASCII.
    fn odd_password() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ -~]{3,24}",
            "[#?/@:%&=]{0,3}[0-9]{1,6}[#?/@][ -~]{1,12}",
            "(%[0-9A-Fa-f]{2}|[a-z#@/?]){2,10}",
            "[a-zA-Z0-9\\u{e9}\\u{4e2d}#@?/ ]{3,16}",
        ]
    }

    /// Whether `secret` is distinctive enough to be looked for in the output: not
    /// already part of the template, whose text is shown on purpose.
    fn findable(secret: &str, before: &str, after: &str) -> bool {
        secret.chars().count() >= 3 && !before.contains(secret) && !after.contains(secret)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn no_userinfo_password_spelling_survives_redaction(
            password in odd_password(),
            template in 0..TEMPLATES.len(),
            encoded in any::<bool>(),
        ) {
            let (before, after) = TEMPLATES[template];
            let written = if encoded { enc(&password) } else { password.clone() };
            let url = DatabaseUrl::new(format!("{before}{written}{after}"));
            let shown = format!("{url} {url:?}");
            for secret in [&password, &written, &decode(&written)] {
                if findable(secret, before, after) {
                    prop_assert!(!shown.contains(secret.as_str()), "{secret:?} in {shown}");
                    let message = format!("failed: {} ({secret})", url.expose_secret());
                    let scrubbed = url.scrub(&message);
                    prop_assert!(!scrubbed.contains(secret.as_str()), "{secret:?} in {scrubbed}");
                }
            }
        }

        #[test]
        fn no_query_password_spelling_survives_redaction(
            password in odd_password(),
            name in prop_oneof![Just("password"), Just("sslpassword"), Just("api_token")],
        ) {
            // In a query value `&` separates parameters, so it must be encoded; the
            // rest may be written as is.
            let written = password.replace('&', "%26");
            let before = "postgres://u@h/db?sslmode=require&";
            let url = DatabaseUrl::new(format!("{before}{name}={written}"));
            let shown = url.to_string();
            for secret in [&password, &written] {
                if findable(secret, before, name) {
                    prop_assert!(!shown.contains(secret.as_str()), "{secret:?} in {shown}");
                }
            }
        }

        #[test]
        fn redaction_never_panics(text in "\\PC{0,80}") {
            let url = DatabaseUrl::new(text.clone());
            let _ = url.to_string();
            let _ = url.scrub(&text);
        }
    }
}
