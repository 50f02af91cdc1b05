//! Configuration errors that cannot quote what they were given.
//!
//! The TOML parser's own message prints the whole source line with a caret under the
//! fault, and a line is often `password = "..."`: a stray backslash in a secret would
//! put the secret on the terminal, in `check`'s output and in the daemon's log on a
//! failed reload. So a syntax error is reported here as the file, the line and column,
//! the key when it can be told, and the parser's one-line reason; never the line's text.
//! Type errors of the `config` crate quote the value: for a secret key (see
//! `config::secrets`) the value is left out.

use std::path::Path;

use super::secrets::is_secret_key;
use super::settings::one_line;

/// `Err(message)` when `text` (the contents of `path`) is not valid TOML.
pub(crate) fn check_toml_syntax(path: &Path, text: &str) -> Result<(), String> {
    let Err(e) = toml::de::DeTable::parse(text) else {
        return Ok(());
    };
    let at = e.span().map_or(0, |s| s.start).min(text.len());
    let (line, column) = line_and_column(text, at);
    let reason = e.message().lines().next().unwrap_or("invalid TOML").trim();
    let key = key_at(text, at)
        .map(|k| format!(" in key {k}"))
        .unwrap_or_default();
    Err(format!(
        "{}:{line}:{column}: not valid TOML{key}: {reason} (the line is not shown: it may hold a secret)",
        path.display()
    ))
}

/// 1-based line and column (in characters) of byte offset `at`.
fn line_and_column(text: &str, at: usize) -> (usize, usize) {
    let at = (0..=at)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The dotted key whose line holds offset `at`, with its table header, when the line
/// reads `key = ...` and is not inside a multi-line string (whose text may be secret).
fn key_at(text: &str, at: usize) -> Option<String> {
    let at = (0..=at).rev().find(|i| text.is_char_boundary(*i))?;
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let before = &text[..line_start];
    if before.matches("\"\"\"").count() % 2 == 1 || before.matches("'''").count() % 2 == 1 {
        return None;
    }
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line.split_once('=')?.0.trim();
    let bare = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    };
    if !bare(key) {
        return None;
    }
    let table = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim())
        .filter(|t| bare(t));
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}

/// The text of an error of the `config` crate, without the value when its key is
/// secret, on one line.
pub(crate) fn config_error_text(e: &::config::ConfigError) -> String {
    use ::config::ConfigError as E;
    match e {
        E::Type {
            expected,
            key: Some(key),
            ..
        } if is_secret_key(key) => {
            format!("invalid type for key `{key}` (value not shown), expected {expected}")
        }
        E::At { key: Some(key), .. } if is_secret_key(key) => {
            format!("invalid value for key `{key}` (value not shown)")
        }
        // The file was checked by `check_toml_syntax` first; this is a safety net.
        E::FileParse { uri, .. } => format!(
            "{} is not valid TOML",
            uri.as_deref().unwrap_or("the configuration file")
        ),
        other => one_line(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        check_toml_syntax(Path::new("/etc/ice-sync/config.toml"), text).expect_err(text)
    }

    #[test]
    fn a_syntax_error_names_line_column_and_key_but_not_the_line() {
        let text = "[ice]\nregion = \"cn-shanghai\"\naccess_key_secret = \"abc\\qsecret\"\n";
        let e = error(text);
        assert!(e.contains("config.toml:3:"), "{e}");
        assert!(e.contains("ice.access_key_secret"), "{e}");
        assert!(!e.contains("qsecret") && !e.contains("abc"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn a_fault_inside_a_multi_line_string_names_no_key() {
        let text = "[database]\nurl = \"\"\"\npostgres://u:pa=ss\\q@h/db\"\"\"\n";
        let e = error(text);
        assert!(!e.contains("pa=ss") && !e.contains("postgres://u"), "{e}");
        assert!(e.contains("config.toml:3:"), "{e}");
    }

    #[test]
    fn valid_toml_passes() {
        assert!(check_toml_syntax(Path::new("c.toml"), "[sync]\nconcurrency = 4\n").is_ok());
    }
}
