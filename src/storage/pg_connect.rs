//! How ice-sync reaches PostgreSQL: the driver's options built from `database.url` (or
//! `database.direct_url`) and the TLS and pooler keys, an error message per way a
//! connection fails, and what `check` reports about the connection's encryption.
//!
//! Failures are told apart because each needs a different fix: a TLS failure is never
//! "is PostgreSQL running?", and a pooler refusing a startup parameter is a setting of
//! ice-sync or of the pooler, not of the network.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::config::{DatabaseSettings, DatabaseUrl, Pooler, SslMode};

/// Which of the two URLs a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// `database.url`: through the pooler, if there is one.
    Pooled,
    /// `database.direct_url`: the server itself (migrations, `LISTEN`).
    Direct,
}

impl Route {
    fn key(self) -> &'static str {
        match self {
            Route::Pooled => "database.url",
            Route::Direct => "database.direct_url",
        }
    }
}

/// The URL a route uses, or `None` for `Direct` when there is no direct URL.
pub(crate) fn url_of(settings: &DatabaseSettings, route: Route) -> Option<&DatabaseUrl> {
    match route {
        Route::Pooled => Some(&settings.url),
        Route::Direct => settings.postgres.direct_url.as_ref(),
    }
}

/// Whether statements must avoid server-side state between transactions (see
/// `database.pooler`): true only for the pooled route through a transaction pooler.
pub(crate) fn transaction_pooled(settings: &DatabaseSettings, route: Route) -> bool {
    route == Route::Pooled && settings.postgres.pooler == Pooler::Transaction
}

/// The driver's options for `route`, TLS keys applied; `Err` is a message naming the key.
pub(crate) fn options(
    settings: &DatabaseSettings,
    route: Route,
) -> Result<PgConnectOptions, String> {
    let Some(url) = url_of(settings, route) else {
        return Err(format!("{} is not set", route.key()));
    };
    let mut options = PgConnectOptions::from_str(url.expose_secret()).map_err(|e| {
        format!(
            "{} = {url} is not a PostgreSQL URL ({}); use postgres://USER@HOST:PORT/DB",
            route.key(),
            url.scrub(&e.to_string())
        )
    })?;
    let tls = &settings.postgres;
    if let Some(mode) = tls.sslmode {
        options = options.ssl_mode(match mode {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require => PgSslMode::Require,
            SslMode::VerifyCa => PgSslMode::VerifyCa,
            SslMode::VerifyFull => PgSslMode::VerifyFull,
        });
    }
    if let Some(path) = &tls.sslrootcert {
        options = options.ssl_root_cert(path);
    }
    if let (Some(cert), Some(key)) = (&tls.sslcert, &tls.sslkey) {
        options = options.ssl_client_cert(cert).ssl_client_key(key);
    }
    // The driver's `extra_float_digits = 2` startup parameter is what PgBouncer refuses
    // unless told to ignore it; floats come back in binary (prepared statements), where
    // the setting changes nothing, so it is never sent.
    options = options.extra_float_digits(None);
    if transaction_pooled(settings, route) {
        // Statements are sent unnamed (see `SqlStore::query`); nothing to cache.
        options = options.statement_cache_capacity(0);
    }
    Ok(options)
}

/// The effective sslmode of `options`, as libpq names it.
pub(crate) fn sslmode_of(options: &PgConnectOptions) -> &'static str {
    match options.get_ssl_mode() {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

/// The message for a failed connection: what failed and what to do about it. `error` is
/// the driver's message, scrubbed here of the URL's secrets.
pub(crate) fn connect_error(
    settings: &DatabaseSettings,
    route: Route,
    options: &PgConnectOptions,
    error: &str,
) -> String {
    let Some(url) = url_of(settings, route) else {
        return error.to_string();
    };
    let key = route.key();
    let driver = url.scrub(error);
    let failed = Failed {
        key,
        settings,
        url,
        host: options.get_host(),
        mode: sslmode_of(options),
    };
    match certificate_hint(&driver, &failed).or_else(|| connection_hint(&driver, &failed)) {
        Some(hint) => format!("cannot connect to {key} = {url}: {driver}; {hint}"),
        None => format!(
            "cannot connect to {key} = {url}: {driver}; is PostgreSQL running, and are host, port, \
             user, password and database name right?"
        ),
    }
}

/// What a failed connection's hint may name.
struct Failed<'a> {
    key: &'static str,
    settings: &'a DatabaseSettings,
    url: &'a DatabaseUrl,
    host: &'a str,
    mode: &'static str,
}

/// The hint for a failure about the server's certificate, if it is one.
fn certificate_hint(driver: &str, f: &Failed<'_>) -> Option<String> {
    let (host, mode) = (f.host, f.mode);
    let hint = if driver.contains("UnknownIssuer") || driver.contains("BadSignature") {
        let in_url = crate::config::postgres::url_tls_params(f.url)
            .into_iter()
            .find(|(k, _)| *k == "sslrootcert")
            .map(|(_, v)| v);
        let roots = match (&f.settings.postgres.sslrootcert, in_url) {
            (Some(p), _) => format!("database.sslrootcert ({})", p.display()),
            (None, Some(p)) => format!("the URL's sslrootcert ({p})"),
            (None, None) => "the public roots (no sslrootcert set)".to_string(),
        };
        format!(
            "the server's certificate is not signed by a CA in {roots}: set database.sslrootcert \
             (or sslrootcert= in the URL) to the CA that signed it, e.g. the provider's CA bundle"
        )
    } else if driver.contains("NotValidForName") || driver.contains("not valid for name") {
        // The driver's verify-ca means to skip this check but misses the error rustls
        // reports since 0.23.24 (sqlx issue 3793, fixed after 0.8.6), so it checks too.
        format!(
            "the server's certificate is not valid for the host name {host:?}: connect by a name \
             the certificate lists (its subjectAltName){}",
            if mode == "verify-ca" {
                "; this build checks the host name under sslmode=verify-ca as well"
            } else {
                ""
            }
        )
    } else if [
        "Expired",
        "NotValidYet",
        "certificate expired",
        "not valid yet",
    ]
    .iter()
    .any(|w| driver.contains(w))
    {
        "the server's certificate is expired or not yet valid: renew it on the server, or check \
         this machine's clock"
            .to_string()
    } else {
        return None;
    };
    Some(hint)
}

/// The hint for any other failure the server or a pooler explains, if there is one.
fn connection_hint(driver: &str, f: &Failed<'_>) -> Option<String> {
    let (host, mode) = (f.host, f.mode);
    let hint = if driver.contains("server does not support TLS") {
        let key = f.key;
        format!(
            "the server at {host} does not offer TLS and sslmode={mode} requires it: turn TLS on \
             at the server (ssl = on and a certificate), or check that {key} names the right server"
        )
    } else if driver.contains("CertificateRequired") || driver.contains("valid client certificate")
    {
        "the server requires a client certificate: set database.sslcert and database.sslkey"
            .to_string()
    } else if driver.contains("certificate authentication failed") {
        "the client certificate was refused for this user: its common name (CN) must be the \
         user name in the URL (or mapped to it in pg_ident.conf)"
            .to_string()
    } else if driver.contains("no encryption") || driver.contains("SSL off") {
        format!(
            "the server accepts only encrypted connections from here (pg_hba.conf hostssl) and \
             sslmode={mode}: set database.sslmode = \"verify-full\" (or at least \"require\")"
        )
    } else if driver.contains("unsupported startup parameter") {
        "a connection pooler (PgBouncer) refused a startup parameter: take it out of the URL \
         (options=..., application_name=...) or add it to the pooler's ignore_startup_parameters; \
         behind a pooler in pool_mode = transaction also set database.pooler = \"transaction\""
            .to_string()
    } else if is_tls_failure(driver) {
        format!(
            "the TLS handshake with {host} failed (sslmode={mode}): check database.sslmode, \
             sslrootcert, sslcert and sslkey against the server's TLS settings"
        )
    } else {
        return None;
    };
    Some(hint)
}

fn is_tls_failure(driver: &str) -> bool {
    [
        "TLS",
        "tls",
        "certificate",
        "peer",
        "alert",
        "handshake",
        "pem",
    ]
    .iter()
    .any(|w| driver.contains(w))
}

/// What `check` says about a working connection's TLS: `(encrypted, line)`. `ssl_in_use`
/// is the server's `pg_stat_ssl.ssl` for this backend, which through a pooler describes
/// the pooler's own connection to the server, so it is used only on a direct route.
pub(crate) fn describe_tls(
    settings: &DatabaseSettings,
    options: &PgConnectOptions,
    ssl_in_use: Option<bool>,
) -> (bool, String) {
    let mode = sslmode_of(options);
    let pooled = settings.postgres.pooler == Pooler::Transaction;
    let encrypted = match mode {
        "require" | "verify-ca" | "verify-full" => true,
        "disable" | "allow" => false,
        // `prefer`: whatever the server agreed to.
        _ if pooled => false,
        _ => ssl_in_use.unwrap_or(false),
    };
    let line = match (mode, encrypted) {
        ("verify-full", _) => "encrypted (TLS), server certificate and host name verified \
                               (sslmode=verify-full)"
            .to_string(),
        ("verify-ca", _) => "encrypted (TLS), server certificate verified against the CA \
                             (sslmode=verify-ca; this build checks the host name as well)"
            .to_string(),
        (_, true) => format!(
            "encrypted (TLS) but the server is not verified (sslmode={mode}): anyone on the path \
             could pose as it; use sslmode=verify-full with database.sslrootcert"
        ),
        ("prefer", false) if pooled => "encryption not known (sslmode=prefer through a pooler): \
             set sslmode=verify-full (or require) to be sure"
            .to_string(),
        _ => format!(
            "NOT encrypted (sslmode={mode}): passwords and data cross the network in clear; use \
             sslmode=verify-full with database.sslrootcert unless the server is on this machine"
        ),
    };
    (encrypted, line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DatabaseKind, PostgresOptions};

    fn settings(url: &str, postgres: PostgresOptions) -> DatabaseSettings {
        DatabaseSettings {
            url: url.into(),
            kind: DatabaseKind::Postgres,
            max_connections: 1,
            postgres,
        }
    }

    #[test]
    fn keys_set_the_driver_options() {
        let s = settings(
            "postgres://u@db.example/x",
            PostgresOptions {
                sslmode: Some(SslMode::VerifyFull),
                ..Default::default()
            },
        );
        let o = options(&s, Route::Pooled).expect("options");
        assert_eq!(sslmode_of(&o), "verify-full");
        let s = settings(
            "postgres://u@db.example/x?sslmode=require",
            Default::default(),
        );
        assert_eq!(
            sslmode_of(&options(&s, Route::Pooled).expect("o")),
            "require"
        );
        assert!(options(&s, Route::Direct).is_err());
    }

    #[test]
    fn tls_failures_never_get_the_is_it_running_hint() {
        let s = settings(
            "postgres://u:pw@db.example/x?sslmode=verify-full",
            Default::default(),
        );
        let o = options(&s, Route::Pooled).expect("options");
        for driver in [
            "error communicating with database: invalid peer certificate: UnknownIssuer",
            "error communicating with database: invalid peer certificate: NotValidForName",
            "error occurred while attempting to establish a TLS connection: server does not support TLS",
            "received fatal alert: CertificateRequired",
        ] {
            let m = connect_error(&s, Route::Pooled, &o, driver);
            assert!(!m.contains("is PostgreSQL running"), "{m}");
            assert!(!m.contains("pw@"), "{m}");
        }
        let m = connect_error(&s, Route::Pooled, &o, "Connection refused (os error 111)");
        assert!(m.contains("is PostgreSQL running"), "{m}");
        let m = connect_error(
            &s,
            Route::Pooled,
            &o,
            "error returned from database: unsupported startup parameter: options",
        );
        assert!(m.contains("database.pooler"), "{m}");
    }
}
