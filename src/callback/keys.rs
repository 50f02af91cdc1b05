//! The accepted AuthKeys, gathered once at start-up from every place an operator may
//! keep them: `callback.auth_key` (one or a list), `callback.auth_key_file` (one key per
//! line) and the systemd credential `callback-auth-key` in `$CREDENTIALS_DIRECTORY`
//! (`LoadCredential=callback-auth-key:/etc/ice-sync/callback-auth-key`, also one key per
//! line). All of them are accepted at once, which is what a rotation needs.
//!
//! Keys are never shown: errors name the file and the line, [`KeyRing`]'s `Debug` says
//! how many keys it holds and where they came from.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use secrecy::{ExposeSecret, SecretString};

use crate::config::callback::check_auth_key;
use crate::config::CallbackSettings;

/// The name of the systemd credential.
pub(crate) const CREDENTIAL_NAME: &str = "callback-auth-key";

pub(crate) struct KeyRing {
    keys: Vec<SecretString>,
    sources: Vec<String>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KeyRing({} key(s) from {})",
            self.keys.len(),
            self.describe()
        )
    }
}

impl KeyRing {
    /// Every configured key. `env` reads `CREDENTIALS_DIRECTORY` (the process
    /// environment in production). No key at all is an error saying where to put one.
    pub(crate) fn resolve(
        settings: &CallbackSettings,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<KeyRing> {
        let mut ring = KeyRing {
            keys: Vec::new(),
            sources: Vec::new(),
        };
        if !settings.auth_keys.is_empty() {
            for key in &settings.auth_keys {
                ring.add(key.clone());
            }
            ring.sources.push("callback.auth_key".to_string());
        }
        if let Some(path) = &settings.auth_key_file {
            let found = ring.add_file(path, "callback.auth_key_file")?;
            if found == 0 {
                bail!(
                    "callback.auth_key_file {} holds no key: write the AuthKey set with SetEventCallback on a line of its own",
                    path.display()
                );
            }
        }
        if let Some(dir) = env("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty()) {
            let path = PathBuf::from(dir).join(CREDENTIAL_NAME);
            if path.exists() {
                ring.add_file(&path, "the systemd credential")?;
            }
        }
        if ring.keys.is_empty() {
            bail!(
                "callback.listen is set but no AuthKey is configured: set callback.auth_key, callback.auth_key_file or the systemd credential {CREDENTIAL_NAME} to the AuthKey given to SetEventCallback (with AuthSwitch=on)"
            );
        }
        Ok(ring)
    }

    #[cfg(test)]
    /// A ring of exactly these keys (tests, and callers that resolved keys themselves).
    pub(crate) fn from_keys(keys: Vec<SecretString>) -> KeyRing {
        KeyRing {
            keys,
            sources: vec!["given keys".to_string()],
        }
    }

    pub(crate) fn keys(&self) -> &[SecretString] {
        &self.keys
    }

    /// Where the keys came from, for the start-up log line.
    pub(crate) fn describe(&self) -> String {
        self.sources.join(", ")
    }

    fn add(&mut self, key: SecretString) {
        if !self
            .keys
            .iter()
            .any(|k| k.expose_secret() == key.expose_secret())
        {
            self.keys.push(key);
        }
    }

    /// Adds the keys of a file (one per line; blank lines and `#` comments skipped);
    /// returns how many lines held a key.
    fn add_file(&mut self, path: &Path, what: &str) -> anyhow::Result<usize> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read {what} {}: check that the file exists and that ice-sync may read it",
                path.display()
            )
        })?;
        let mut found = 0;
        for (n, line) in text.lines().enumerate() {
            let key = line.trim();
            if key.is_empty() || key.starts_with('#') {
                continue;
            }
            check_auth_key(key).map_err(|why| {
                anyhow::anyhow!(
                    "{what} {} line {}: not a usable ICE AuthKey: {why}",
                    path.display(),
                    n + 1
                )
            })?;
            self.add(SecretString::from(key.to_string()));
            found += 1;
        }
        self.sources.push(format!("{} ({})", what, path.display()));
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_from;

    fn settings(env: &[(&str, &str)]) -> CallbackSettings {
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>();
        load_from(None, env).expect("settings").callback
    }

    fn exposed(ring: &KeyRing) -> Vec<&str> {
        ring.keys().iter().map(|k| k.expose_secret()).collect()
    }

    #[test]
    fn keys_come_from_config_file_and_credential_together() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("keys");
        std::fs::write(
            &file,
            "# rotation: old, then new\nOldKey001\n\n  NewKey002  \nEnvKey003\n",
        )
        .expect("write");
        let creds = dir.path().join("creds");
        std::fs::create_dir(&creds).expect("mkdir");
        std::fs::write(creds.join(CREDENTIAL_NAME), "CredKey004\n").expect("write");
        let s = settings(&[
            ("ICE_SYNC__CALLBACK__AUTH_KEY", "EnvKey003"),
            (
                "ICE_SYNC__CALLBACK__AUTH_KEY_FILE",
                file.to_str().expect("utf-8"),
            ),
        ]);
        let creds_dir = creds.to_str().expect("utf-8").to_string();
        let ring = KeyRing::resolve(&s, |k| {
            (k == "CREDENTIALS_DIRECTORY").then(|| creds_dir.clone())
        })
        .expect("ring");
        assert_eq!(
            exposed(&ring),
            ["EnvKey003", "OldKey001", "NewKey002", "CredKey004"]
        );
        let debug = format!("{ring:?}");
        assert!(debug.contains("4 key(s)") && debug.contains("systemd credential"));
        for key in exposed(&ring) {
            assert!(!debug.contains(key), "{debug}");
        }
    }

    #[test]
    fn no_key_or_a_bad_line_is_an_error_without_the_key() {
        let none = KeyRing::resolve(&settings(&[]), |_| None).expect_err("no key");
        assert!(
            format!("{none:#}").contains("callback.auth_key"),
            "{none:#}"
        );

        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("keys");
        std::fs::write(&file, "GoodKey001\nhunter two\n").expect("write");
        let s = settings(&[(
            "ICE_SYNC__CALLBACK__AUTH_KEY_FILE",
            file.to_str().expect("utf-8"),
        )]);
        let e = format!(
            "{:#}",
            KeyRing::resolve(&s, |_| None).expect_err("bad line")
        );
        assert!(e.contains("line 2") && !e.contains("hunter"), "{e}");

        std::fs::write(&file, "# nothing yet\n").expect("write");
        let e = format!("{:#}", KeyRing::resolve(&s, |_| None).expect_err("empty"));
        assert!(e.contains("holds no key"), "{e}");

        let missing = settings(&[("ICE_SYNC__CALLBACK__AUTH_KEY_FILE", "/nonexistent/k")]);
        let e = format!(
            "{:#}",
            KeyRing::resolve(&missing, |_| None).expect_err("missing")
        );
        assert!(e.contains("/nonexistent/k"), "{e}");
    }
}
