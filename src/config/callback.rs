//! `[callback]`: the ICE event-callback endpoint — where it listens, which path it serves,
//! the URL as registered with ICE (part of the signature), the accepted AuthKeys, how old
//! a signed timestamp may be, whether an unknown project becomes tracked, and the body cap.
//!
//! Only what the configuration itself says is checked here. Keys kept in a file or in a
//! systemd credential are read at start-up by `callback::keys`, which applies the same
//! [`check_auth_key`] rule; a listener with no key from any source is refused there.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use serde::{Deserialize, Serialize};

use super::bounds::{Count, HOUR};
use super::reload::{debug, dur, Diff};
use super::settings::{parse_duration, parse_listen};
use super::ConfigError;

/// What the file and the `ICE_SYNC__CALLBACK__*` variables may say, with the defaults.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawCallback {
    pub(crate) listen: Option<String>,
    pub(crate) path: Option<String>,
    pub(crate) url: Option<String>,
    #[serde(serialize_with = "super::secrets::masked")]
    pub(crate) auth_key: Option<RawAuthKeys>,
    pub(crate) auth_key_file: Option<PathBuf>,
    pub(crate) max_skew: String,
    pub(crate) track_unknown: Option<bool>,
    pub(crate) max_body_bytes: usize,
}

impl Default for RawCallback {
    fn default() -> Self {
        Self {
            listen: None,
            path: None,
            url: None,
            auth_key: None,
            auth_key_file: None,
            max_skew: "5m".into(),
            track_unknown: None,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// `callback.auth_key`: one key, or a list while a key is being rotated.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawAuthKeys {
    One(SecretString),
    Many(Vec<SecretString>),
}

/// The path served when `callback.path` is not set.
pub(crate) const DEFAULT_PATH: &str = "/ice/events";
/// ICE's limit on `CallbackURL`.
const MAX_URL_BYTES: usize = 256;
/// ICE's limit on `AuthKey`.
const MAX_KEY_CHARS: usize = 32;

/// The largest value of each `[callback]` duration key (`config::bounds`).
pub(super) const DURATION_MAX: &[(&str, u64)] = &[("callback.max_skew", HOUR)];

/// The range of each `[callback]` size key (`config::bounds`).
pub(super) fn counts(raw: &RawCallback) -> Vec<Count> {
    vec![Count::new(
        "callback.max_body_bytes",
        u64::try_from(raw.max_body_bytes).unwrap_or(u64::MAX),
        1024,
        16 << 20,
    )]
}

#[derive(Debug, Clone)]
pub(crate) struct CallbackSettings {
    /// `None`: no endpoint is served (the default).
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) path: String,
    /// Exactly as registered with `SetEventCallback`, never rebuilt from a request: a
    /// proxy in front changes scheme, host or port, and the signature covers this text.
    /// Always set when `listen` is.
    pub(crate) url: Option<String>,
    /// Keys from `callback.auth_key` (one or a list). Several are accepted at once so a
    /// key can be rotated without a window of refused callbacks.
    pub(crate) auth_keys: Vec<SecretString>,
    /// More keys, one per line (read at start-up).
    pub(crate) auth_key_file: Option<PathBuf>,
    /// The largest accepted `|now - X-ICE-TIMESTAMP|`.
    pub(crate) max_skew: Duration,
    /// A callback naming a project that is not tracked makes it tracked (source
    /// `callback`) instead of being refused. Default: `sync.discover`.
    pub(crate) track_unknown: bool,
    pub(crate) max_body_bytes: usize,
}

impl CallbackSettings {
    /// `discover` is `sync.discover`, the default of `callback.track_unknown`.
    pub(crate) fn from_raw(raw: RawCallback, discover: bool) -> Result<Self, ConfigError> {
        let listen = parse_listen("callback.listen", raw.listen.as_deref(), "0.0.0.0:9188")?;
        let path = raw.path.unwrap_or_else(|| DEFAULT_PATH.to_string());
        if !path.starts_with('/') || path.contains(char::is_whitespace) || path.contains('?') {
            return Err(ConfigError::new(format!(
                "callback.path = {path:?} must be a path such as {DEFAULT_PATH:?} (a leading '/', no spaces, no query)"
            )));
        }
        let url = raw.url.map(|u| check_url(&u).map(|()| u)).transpose()?;
        if listen.is_some() && url.is_none() {
            return Err(ConfigError::new(
                "callback.listen is set but callback.url is not: set it to the CallbackURL exactly as registered with ICE (SetEventCallback); the signature covers it",
            ));
        }
        let auth_keys = match raw.auth_key {
            None => Vec::new(),
            Some(RawAuthKeys::One(key)) => vec![key],
            Some(RawAuthKeys::Many(keys)) => keys,
        };
        for (i, key) in auth_keys.iter().enumerate() {
            let name = if auth_keys.len() == 1 {
                "callback.auth_key".to_string()
            } else {
                format!("callback.auth_key[{i}]")
            };
            check_auth_key(key.expose_secret()).map_err(|why| {
                ConfigError::new(format!("{name} is not a usable ICE AuthKey: {why}"))
            })?;
        }
        let max_skew = parse_duration("callback.max_skew", &raw.max_skew)?;
        if raw.max_body_bytes < 1024 {
            return Err(ConfigError::new(format!(
                "callback.max_body_bytes = {}: must be at least 1024 (an ICE event is a few hundred bytes)",
                raw.max_body_bytes
            )));
        }
        Ok(Self {
            listen,
            path,
            url,
            auth_keys,
            auth_key_file: raw.auth_key_file,
            max_skew,
            track_unknown: raw.track_unknown.unwrap_or(discover),
            max_body_bytes: raw.max_body_bytes,
        })
    }
}

fn check_url(url: &str) -> Result<(), ConfigError> {
    let parsed = reqwest::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
    if parsed.is_none() || url.trim() != url {
        return Err(ConfigError::new(format!(
            "callback.url = {url:?} is not an http(s) URL such as \"https://ice-sync.example.com/ice/events\" (written exactly as registered with ICE, no surrounding spaces)"
        )));
    }
    if url.len() > MAX_URL_BYTES {
        return Err(ConfigError::new(format!(
            "callback.url is {} bytes long: ICE accepts a CallbackURL of at most {MAX_URL_BYTES}",
            url.len()
        )));
    }
    Ok(())
}

/// Whether `key` can be an ICE `AuthKey`: 1 to 32 visible ASCII characters that mix
/// upper case, lower case and digits (ICE refuses others, so anything else is a
/// mistake, such as a stray character in a file). The error never contains the key.
pub(crate) fn check_auth_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("it is empty".to_string());
    }
    if key.chars().count() > MAX_KEY_CHARS {
        return Err(format!(
            "it is longer than {MAX_KEY_CHARS} characters, ICE's limit"
        ));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("it contains spaces or characters outside visible ASCII".to_string());
    }
    let has = |f: fn(&u8) -> bool| key.as_bytes().iter().any(f);
    if !(has(u8::is_ascii_uppercase) && has(u8::is_ascii_lowercase) && has(u8::is_ascii_digit)) {
        return Err(
            "ICE requires a mix of upper case letters, lower case letters and digits".to_string(),
        );
    }
    Ok(())
}

/// `[callback]` in a reload summary: all fixed (the listener and its keys are set up
/// once).
pub(super) fn changes(d: &mut Diff, a: &CallbackSettings, b: &CallbackSettings) {
    let CallbackSettings {
        listen,
        path,
        url,
        auth_keys,
        auth_key_file,
        max_skew,
        track_unknown,
        max_body_bytes,
    } = a;
    let keys = |k: &[SecretString]| {
        k.iter()
            .map(|k| k.expose_secret().to_string())
            .collect::<Vec<_>>()
    };
    d.value("callback.listen", listen, &b.listen, debug);
    d.value("callback.path", path, &b.path, String::clone);
    d.value("callback.url", url, &b.url, debug);
    d.changed("callback.auth_key", keys(auth_keys) != keys(&b.auth_keys));
    d.changed("callback.auth_key_file", *auth_key_file != b.auth_key_file);
    d.value("callback.max_skew", max_skew, &b.max_skew, |t| dur(*t));
    d.value(
        "callback.track_unknown",
        track_unknown,
        &b.track_unknown,
        bool::to_string,
    );
    d.value(
        "callback.max_body_bytes",
        max_body_bytes,
        &b.max_body_bytes,
        usize::to_string,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_from;

    fn load_toml(toml: &str) -> anyhow::Result<crate::config::Settings> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("config.toml");
        std::fs::write(&path, toml)?;
        load_from(Some(&path), Vec::new())
    }

    const ON: &str = "[callback]\nlisten = \"127.0.0.1:9188\"\nurl = \"https://ice-sync.example.com/ice/events\"\n";

    #[test]
    fn off_by_default_with_the_documented_defaults() {
        let c = load_from(None, Vec::new()).expect("defaults").callback;
        assert!(c.listen.is_none() && c.url.is_none() && c.auth_keys.is_empty());
        assert_eq!(c.path, "/ice/events");
        assert_eq!(c.max_skew, Duration::from_secs(300));
        assert_eq!(c.max_body_bytes, 65536);
        assert!(!c.track_unknown);
        let listed = load_toml("[sync]\nmode = \"list\"\ndiscover = true\n").expect("loads");
        assert!(listed.callback.track_unknown, "defaults to sync.discover");
        let refused = load_toml(
            "[sync]\nmode = \"list\"\ndiscover = true\n[callback]\ntrack_unknown = false\n",
        )
        .expect("loads");
        assert!(!refused.callback.track_unknown);
    }

    #[test]
    fn one_key_or_a_list_from_the_file_and_one_from_the_environment() {
        let one = load_toml(&format!("{ON}auth_key = \"TestKey001\"\n")).expect("one");
        let keys: Vec<&str> = one
            .callback
            .auth_keys
            .iter()
            .map(|k| k.expose_secret())
            .collect();
        assert_eq!(keys, ["TestKey001"]);
        let two =
            load_toml(&format!("{ON}auth_key = [\"OldKey001\", \"NewKey002\"]\n")).expect("list");
        let keys: Vec<&str> = two
            .callback
            .auth_keys
            .iter()
            .map(|k| k.expose_secret())
            .collect();
        assert_eq!(keys, ["OldKey001", "NewKey002"]);
        let env = load_from(
            None,
            vec![(
                "ICE_SYNC__CALLBACK__AUTH_KEY".to_string(),
                "EnvKey003".to_string(),
            )],
        )
        .expect("env");
        assert_eq!(env.callback.auth_keys[0].expose_secret(), "EnvKey003");
        let debug = format!("{two:?} {env:?}");
        for key in ["OldKey001", "NewKey002", "EnvKey003"] {
            assert!(!debug.contains(key), "{key} in {debug}");
        }
    }

    #[test]
    fn each_bad_value_names_its_key_and_never_the_auth_key() {
        let cases = [
            ("[callback]\nlisten = \"localhost\"\n", "callback.listen"),
            ("[callback]\nlisten = \"127.0.0.1:9188\"\n", "callback.url"),
            ("[callback]\nurl = \"ftp://x/y\"\n", "callback.url"),
            ("[callback]\nurl = \" https://x/y\"\n", "callback.url"),
            ("[callback]\npath = \"ice/events\"\n", "callback.path"),
            ("[callback]\nmax_skew = \"soon\"\n", "callback.max_skew"),
            (
                "[callback]\nmax_body_bytes = 10\n",
                "callback.max_body_bytes",
            ),
            (
                "[callback]\nauth_key = \"lowercase1\"\n",
                "callback.auth_key",
            ),
            (
                "[callback]\nauth_key = [\"GoodKey001\", \"bad key\"]\n",
                "callback.auth_key[1]",
            ),
            ("[callback]\nauth_keys = \"GoodKey001\"\n", "auth_keys"),
        ];
        for (toml, needle) in cases {
            let e = format!("{:#}", load_toml(toml).expect_err(toml));
            assert!(e.contains(needle), "{toml:?} gave {e:?}");
            assert!(!e.contains("lowercase1") && !e.contains("bad key"), "{e}");
        }
        let long = format!(
            "[callback]\nurl = \"https://x.example.com/{}\"\n",
            "a".repeat(250)
        );
        assert!(format!("{:#}", load_toml(&long).expect_err("long")).contains("256"));
    }

    #[test]
    fn auth_keys_follow_ices_rule() {
        assert!(check_auth_key("TestKey001").is_ok());
        assert!(check_auth_key(&format!("Ab1{}", "x".repeat(29))).is_ok());
        for bad in [
            "",
            "testkey001",
            "TESTKEY001",
            "TestKey",
            "Test Key 1",
            "TestKey001\u{e9}",
            &format!("Ab1{}", "x".repeat(30)),
        ] {
            let why = check_auth_key(bad).expect_err(bad);
            assert!(bad.is_empty() || !why.contains(bad), "{why}");
        }
    }
}
