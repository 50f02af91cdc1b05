//! Small domain types that are parsed once at the edge and trusted afterwards.

use std::fmt;

/// An ICE editing project ID. Real IDs are 32 lowercase hex characters; we accept
/// 1–64 characters of `[A-Za-z0-9_-]` so a future ID format is not rejected, while
/// typos such as spaces, quotes or URLs are.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectId(String);

#[derive(Debug, thiserror::Error)]
#[error("invalid project ID {0:?}: expected 1-64 characters of A-Z, a-z, 0-9, '_' or '-' (ICE IDs look like 4f4bf84d0d8b4b7e9c2b8a6f0e1d2c3b)")]
pub struct InvalidProjectId(pub String);

impl ProjectId {
    pub fn parse(raw: &str) -> Result<Self, InvalidProjectId> {
        let trimmed = raw.trim();
        let ok = !trimmed.is_empty()
            && trimmed.len() <= 64
            && trimmed
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(trimmed.to_string()))
        } else {
            Err(InvalidProjectId(raw.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_ids_and_rejects_typos() {
        assert!(ProjectId::parse("4f4bf84d0d8b4b7e9c2b8a6f0e1d2c3b").is_ok());
        assert_eq!(
            ProjectId::parse(" abc-1_2 \n").map(|p| p.to_string()).ok(),
            Some("abc-1_2".to_string())
        );
        for bad in [
            "",
            "  ",
            "has space",
            "quote\"",
            "https://x",
            &"a".repeat(65),
            "ümlaut",
        ] {
            assert!(ProjectId::parse(bad).is_err(), "{bad:?}");
        }
    }
}

/// A UTC instant with millisecond precision, the unit every table stores.
///
/// Truncating at the edge means SQLite (text) and PostgreSQL (timestamptz) hold the
/// same value, so views compute the same durations on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(chrono::DateTime<chrono::Utc>);

impl Timestamp {
    /// The Unix epoch: the due time of a project never polled, so it sorts first.
    pub(crate) const NEVER: Timestamp = Timestamp(chrono::DateTime::UNIX_EPOCH);
    /// Later than any due time (`run --once --all` claims everything due before it).
    /// (9999-12-31: its text form still sorts as a time on SQLite, unlike chrono's maximum.)
    pub(crate) const END_OF_TIME: Timestamp =
        match chrono::DateTime::from_timestamp(253_402_300_799, 0) {
            Some(t) => Timestamp(t),
            None => Timestamp(chrono::DateTime::UNIX_EPOCH),
        };

    pub fn now() -> Self {
        Self::from(chrono::Utc::now())
    }

    pub fn as_datetime(&self) -> chrono::DateTime<chrono::Utc> {
        self.0
    }

    /// This instant moved by `delta` (saturating at the ends of time).
    pub fn shifted(&self, delta: chrono::Duration) -> Self {
        Self::from(self.0.checked_add_signed(delta).unwrap_or(self.0))
    }

    /// The text form stored by SQLite: fixed width, so text order is time order.
    pub fn to_text(&self) -> String {
        self.0.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }

    /// Parses RFC 3339 (`2024-05-20T08:29:41Z`, with or without fraction or offset).
    pub fn parse(text: &str) -> Option<Self> {
        chrono::DateTime::parse_from_rfc3339(text.trim())
            .ok()
            .map(|d| Self::from(d.with_timezone(&chrono::Utc)))
    }
}

impl From<chrono::DateTime<chrono::Utc>> for Timestamp {
    fn from(d: chrono::DateTime<chrono::Utc>) -> Self {
        use chrono::{DurationRound, TimeDelta};
        Self(d.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(d))
    }
}

/// JSON output (`--output json`): the stored text form.
impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_text())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.format("%Y-%m-%d %H:%M:%S").to_string())
    }
}

#[cfg(test)]
mod timestamp_tests {
    use super::*;

    #[test]
    fn text_form_is_fixed_width_and_sorts() {
        let a = Timestamp::parse("2024-05-20T08:29:41Z").expect("parses");
        let b = Timestamp::parse("2024-05-20T08:29:41.5+00:00").expect("parses");
        assert_eq!(a.to_text(), "2024-05-20T08:29:41.000Z");
        assert_eq!(b.to_text(), "2024-05-20T08:29:41.500Z");
        assert!(a.to_text() < b.to_text() && a < b);
        assert_eq!(Timestamp::parse(&b.to_text()), Some(b));
        assert_eq!(Timestamp::parse("yesterday"), None);
        // The extremes sort as times in their text form too (SQLite compares text).
        let now = Timestamp::now().to_text();
        assert!(Timestamp::NEVER.to_text() < now && now < Timestamp::END_OF_TIME.to_text());
    }
}
