//! Text from outside (ICE answers, callback bodies, request bodies, error messages that
//! quote them) on its way into a table, a terminal or a log line.
//!
//! * [`storable`]: what is written to the database. Strings are stored exactly, except
//!   U+0000, which PostgreSQL `text` cannot hold: it becomes U+FFFD on both backends, so
//!   they store the same value and a write never fails on it. Every write of such text
//!   goes through here (project fields through `sync::diff::stored_form`).
//! * [`printable`]: what is shown on a terminal (`status`, `history`, tables): control
//!   characters are escaped (`\n`, `\u{1b}`), so a stored value cannot move the cursor,
//!   recolour the screen or invent a line.
//! * [`one_line_bytes`]: the same for a formatted log line, keeping its final newline.

use std::borrow::Cow;

/// `s` with U+0000 replaced by U+FFFD; borrowed when there is none.
pub(crate) fn storable(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// [`storable`] for an optional owned value (the shape the writes bind).
pub(crate) fn storable_opt(s: Option<&str>) -> Option<String> {
    s.map(|s| storable(s).into_owned())
}

/// Whether `c` must not reach a terminal as is: C0 and C1 controls and DEL, and the
/// Unicode line and paragraph separators.
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// `s` with every control character escaped as Rust writes it (`\n`, `\t`, `\u{1b}`).
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A formatted log line with its control characters escaped, so text quoted in a log
/// message cannot start a line of its own; the final newline stays. `keep_esc` keeps
/// ESC, for the coloured terminal format whose colours are the formatter's own (it
/// escapes ESC inside values itself).
pub(crate) fn one_line_bytes(buf: &[u8], keep_esc: bool) -> Cow<'_, [u8]> {
    let (body, end) = match buf.strip_suffix(b"\n") {
        Some(body) => (body, &b"\n"[..]),
        None => (buf, &b""[..]),
    };
    let text = String::from_utf8_lossy(body);
    let unsafe_here = |c: char| is_unsafe(c) && !(keep_esc && c == '\u{1b}');
    if !text.chars().any(unsafe_here) {
        return Cow::Borrowed(buf);
    }
    let mut out = String::with_capacity(buf.len() + 8);
    for c in text.chars() {
        if unsafe_here(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(end);
    Cow::Owned(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_nul_is_replaced_for_storage() {
        assert_eq!(storable("a\0b\n\u{1b}c"), "a\u{FFFD}b\n\u{1b}c");
        assert!(matches!(storable("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn control_characters_are_escaped_for_terminals() {
        assert_eq!(
            printable("Produ\u{1b}[31mcing\nX"),
            "Produ\\u{1b}[31mcing\\nX"
        );
        assert_eq!(printable("a\u{2028}b\u{85}"), "a\\u{2028}b\\u{85}");
        assert!(matches!(printable("Producing é 中"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_log_line_keeps_its_own_newline_only() {
        let line = b"WARN poll failed: msg\nINFO forged\r\n";
        assert_eq!(
            &*one_line_bytes(line, false),
            b"WARN poll failed: msg\\nINFO forged\\r\n"
        );
        assert_eq!(
            &*one_line_bytes(b"\x1b[2mok\x1b[0m\n", true),
            b"\x1b[2mok\x1b[0m\n"
        );
        assert_eq!(&*one_line_bytes(b"a\x1bb\n", false), b"a\\u{1b}b\n");
    }
}
