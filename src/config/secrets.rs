//! What is secret: the configuration keys whose values are never shown, and the URL
//! query parameters that carry one. Every path that shows configuration or a URL in an
//! error (load errors, `check`, a failed reload, driver messages, the database URL's
//! `Display`) asks here, so a new secret is declared once.

/// Keys whose whole value is secret. `database.url` is not listed: it is shown with
/// its secrets masked (see `config::url`), because the host and database help.
const SECRET_KEYS: &[&str] = &[
    "ice.access_key_secret",
    "ice.security_token",
    "callback.auth_key",
    "webhook.secret",
    // A webhook URL often carries a token in its path or query.
    "webhook.url",
];

/// Keys shown only through [`crate::config::url::redact_url`].
const URL_KEYS: &[&str] = &[
    "database.url",
    "database.direct_url",
    "ice.endpoint",
    "ice.sts_endpoint",
    "ice.ecs_metadata_endpoint",
    "callback.url",
];

/// Whether the value of configuration key `key` (as the `config` crate names it:
/// `callback.auth_key`, `callback.auth_key[1]`, ...) must never be shown.
pub(crate) fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let base = key.split('[').next().unwrap_or(&key);
    SECRET_KEYS.contains(&base) || URL_KEYS.contains(&base)
}

/// Whether nothing of key `key`'s value may be shown, not even masked: a change to it
/// is reported as "changed" (`config::reload`).
pub(crate) fn hides_whole_value(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let base = key.split('[').next().unwrap_or(&key);
    SECRET_KEYS.contains(&base)
}

/// Whether a URL query parameter's name says its value is a secret (`password`,
/// `sslpassword`, `api_token`, `client_secret`, `pwd`, ...). Matched loosely on purpose:
/// masking a harmless value costs nothing.
pub(crate) fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["pass", "pwd", "secret", "token", "key", "auth", "cred"]
        .iter()
        .any(|word| name.contains(word))
}

/// A secret key's value as it serializes (`#[serde(serialize_with)]` on the raw structs,
/// which `ice-sync config` shows): `***` when set, nothing when unset. A secret has no
/// default, and is never written out.
pub(crate) fn masked<T, S: serde::Serializer>(value: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_str("***"),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_and_parameters_are_recognised() {
        for key in [
            "ice.access_key_secret",
            "callback.auth_key[1]",
            "webhook.secret",
            "database.url",
            "ICE.SECURITY_TOKEN",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in ["sync.replica_id", "ice.access_key_id", "log.level"] {
            assert!(!is_secret_key(key), "{key}");
        }
        for name in ["password", "sslpassword", "api_token", "PWD", "sslkey"] {
            assert!(is_secret_param(name), "{name}");
        }
        for name in ["sslmode", "application_name", "host", "options"] {
            assert!(!is_secret_param(name), "{name}");
        }
    }
}
