//! TLS to PostgreSQL, against real servers: a TLS-only cluster (`hostssl`, client
//! certificates for `certuser`) and one without TLS. Each sslmode connects or fails as
//! libpq's would, every failure says what to do (never "is PostgreSQL running?"), and
//! `check` says whether the connection is encrypted and verified.

use ice_sync::config;
use ice_sync::storage::Store;

use crate::ops::daemon::{describe, run_to_end};
use crate::support::tls_server::{TlsServer, CERT_USER};
use crate::support::{count, rows, SqlSession};

/// A store from `ICE_SYNC__DATABASE__*` pairs, or the message the operator would see.
async fn connect(pairs: &[(&str, &str)]) -> Result<Store, String> {
    let env: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (format!("ICE_SYNC__DATABASE__{k}"), v.to_string()))
        .collect();
    let settings = config::load_from(None, env).map_err(|e| format!("{e:#}"))?;
    Store::connect(&settings.database)
        .await
        .map_err(|e| e.to_string())
}

async fn encrypted(store: &Store) -> bool {
    count(
        store,
        "SELECT count(*) FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl",
    )
    .await
        == 1
}

fn refused(result: Result<Store, String>, case: &str) -> String {
    let message = match result {
        Ok(_) => panic!("{case}: connected"),
        Err(m) => m,
    };
    assert!(
        !message.contains("is PostgreSQL running"),
        "{case}: a TLS failure must not point at the network: {message}"
    );
    println!("{case}: {message}");
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sslmode_against_a_tls_only_server() {
    let server = TlsServer::start(true).await;
    let ca = server.ca.display().to_string();
    let other_ca = server.other_ca.display().to_string();
    let by_name = server.url("postgres", "localhost", "");
    let by_ip = server.url("postgres", "127.0.0.1", "");

    // verify-full, the right CA, the name in the certificate: encrypted and verified.
    let store = connect(&[
        ("URL", &by_name),
        ("SSLMODE", "verify-full"),
        ("SSLROOTCERT", &ca),
    ])
    .await
    .unwrap_or_else(|e| panic!("verify-full: {e}\n{}", server.log()));
    assert!(encrypted(&store).await);
    let (ok, line) = store.tls_status().await.expect("a PostgreSQL store");
    assert!(ok && line.contains("host name verified"), "{line}");
    store.close().await;

    // The same in the URL.
    let in_url = server.url(
        "postgres",
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    // The role `certuser` logs in as, made through a session of the test's own.
    let mut admin = SqlSession::connect(&in_url)
        .await
        .unwrap_or_else(|e| panic!("a session of the test: {e:#}\n{}", server.log()));
    admin
        .execute_script(&format!("CREATE ROLE {CERT_USER} LOGIN"))
        .await
        .expect("create the certificate's role");
    admin.close().await;
    let store = connect(&[("URL", &in_url)])
        .await
        .expect("verify-full in the URL");
    assert!(encrypted(&store).await);
    store.close().await;

    // A CA that did not sign the server's certificate.
    let m = refused(
        connect(&[
            ("URL", &by_name),
            ("SSLMODE", "verify-full"),
            ("SSLROOTCERT", &other_ca),
        ])
        .await,
        "wrong CA",
    );
    assert!(
        m.contains("not signed by a CA in database.sslrootcert"),
        "{m}"
    );

    // A host name the certificate does not list. verify-ca should not check it, but the
    // driver does (sqlx 0.8.6 with rustls >= 0.23.24): it fails the same way, and says so.
    for mode in ["verify-full", "verify-ca"] {
        let m = refused(
            connect(&[("URL", &by_ip), ("SSLMODE", mode), ("SSLROOTCERT", &ca)]).await,
            "wrong host name",
        );
        assert!(
            m.contains("not valid for the host name \"127.0.0.1\""),
            "{mode}: {m}"
        );
        assert_eq!(
            m.contains("under sslmode=verify-ca"),
            mode == "verify-ca",
            "{m}"
        );
    }
    let store = connect(&[
        ("URL", &by_name),
        ("SSLMODE", "verify-ca"),
        ("SSLROOTCERT", &ca),
    ])
    .await
    .expect("verify-ca");
    let (ok, line) = store.tls_status().await.expect("status");
    assert!(ok && line.contains("verify-ca"), "{line}");
    store.close().await;
    let m = refused(
        connect(&[
            ("URL", &by_name),
            ("SSLMODE", "verify-ca"),
            ("SSLROOTCERT", &other_ca),
        ])
        .await,
        "verify-ca, wrong CA",
    );
    assert!(m.contains("not signed by a CA"), "{m}");

    // require and prefer: encrypted, nothing verified.
    for mode in ["require", "prefer"] {
        let store = connect(&[("URL", &by_ip), ("SSLMODE", mode)])
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert!(encrypted(&store).await, "{mode} encrypts");
        let (ok, line) = store.tls_status().await.expect("status");
        assert!(ok && line.contains("not verified"), "{mode}: {line}");
        store.close().await;
    }

    // disable, against a server that takes TLS only.
    let m = refused(
        connect(&[("URL", &by_ip), ("SSLMODE", "disable")]).await,
        "disable",
    );
    assert!(m.contains("accepts only encrypted connections"), "{m}");

    // Client certificate authentication (pg_hba `cert`): with the certificate, and without.
    let cert = server.client_cert.display().to_string();
    let key = server.client_key.display().to_string();
    let as_cert_user = server.url(CERT_USER, "localhost", "");
    let store = connect(&[
        ("URL", &as_cert_user),
        ("SSLMODE", "verify-full"),
        ("SSLROOTCERT", &ca),
        ("SSLCERT", &cert),
        ("SSLKEY", &key),
    ])
    .await
    .unwrap_or_else(|e| panic!("client certificate: {e}\n{}", server.log()));
    let who = rows(&store, "SELECT current_user::text").await;
    assert_eq!(who[0][0].as_deref(), Some(CERT_USER));
    store.close().await;
    let m = refused(
        connect(&[
            ("URL", &as_cert_user),
            ("SSLMODE", "verify-full"),
            ("SSLROOTCERT", &ca),
        ])
        .await,
        "no client certificate",
    );
    assert!(m.contains("client certificate"), "{m}");

    // `ice-sync check` reports the connection's TLS.
    let env = vec![
        ("ICE_SYNC__DATABASE__URL".to_string(), by_name.clone()),
        (
            "ICE_SYNC__DATABASE__SSLMODE".to_string(),
            "verify-full".to_string(),
        ),
        ("ICE_SYNC__DATABASE__SSLROOTCERT".to_string(), ca.clone()),
    ];
    let out = run_to_end(&env, &["check"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("database tls"))
        .unwrap_or_else(|| panic!("no TLS line: {}", describe(&out)));
    assert!(
        line.trim_start().starts_with("ok") && line.contains("verify-full"),
        "{line}"
    );
    println!("check: {line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_tls_is_refused_unless_tls_is_optional() {
    let server = TlsServer::start(false).await;
    let url = server.url("postgres", "localhost", "");
    for mode in ["verify-full", "require"] {
        let m = refused(
            connect(&[
                ("URL", &url),
                ("SSLMODE", mode),
                ("SSLROOTCERT", &server.ca.display().to_string()),
            ])
            .await,
            mode,
        );
        assert!(m.contains("does not offer TLS"), "{mode}: {m}");
    }
    // prefer: plaintext, and `check` says so.
    let store = connect(&[("URL", &url), ("SSLMODE", "prefer")])
        .await
        .expect("prefer falls back to plaintext");
    assert!(!encrypted(&store).await);
    let (ok, line) = store.tls_status().await.expect("status");
    assert!(!ok && line.contains("NOT encrypted"), "{line}");
    store.close().await;

    // The same from another host, as a command: it says so at start, not only in `check`.
    let env = vec![(
        "ICE_SYNC__DATABASE__URL".to_string(),
        server.url("postgres", "127.0.0.2", ""),
    )];
    let out = run_to_end(&env, &["migrate"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("NOT encrypted (sslmode=prefer)"),
        "{}",
        describe(&out)
    );
}
