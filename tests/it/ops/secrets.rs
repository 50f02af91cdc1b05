//! Secrets planted where an operator could put them never come back out (issue 20,
//! finding 3), and absurd configuration values are refused at load (finding 4): the
//! real binary's stdout and stderr are scanned, at start, in `check`, and in the
//! daemon's log after a failed reload.

use std::time::Duration;

use ice_sim::{Simulator, SimulatorConfig};

use crate::on_both_backends;
use crate::ops::daemon::{daemon_env, describe, run_to_end, Daemon};
use crate::support::{Backend, TestDatabase};

fn output_of(o: &std::process::Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn assert_secret_free(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "{what} shows {secret:?}:\n{text}");
    }
}

/// A stray backslash in a TOML string (`\q` is no escape) made the parser print the
/// whole line, password and all.
const BROKEN_TOML: &str =
    "[ice]\nregion = \"cn-shanghai\"\naccess_key_secret = \"Hunter2\\qSecretPart\"\n";
const BROKEN_SECRETS: [&str; 2] = ["Hunter2", "SecretPart"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_toml_syntax_error_names_line_and_key_but_never_the_line() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("config.toml");
    std::fs::write(&file, BROKEN_TOML).expect("config");
    let env = vec![("ICE_SYNC_CONFIG".to_string(), file.display().to_string())];
    for args in [&["check"][..], &["run", "--once"], &["migrate"]] {
        let out = run_to_end(&env, args).await;
        let text = output_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
        assert_secret_free(&format!("{args:?}"), &text, &BROKEN_SECRETS);
        assert!(
            text.contains("config.toml:3:") && text.contains("ice.access_key_secret"),
            "{args:?} does not say where: {text}"
        );
    }
}

on_both_backends!(a_failed_reload_logs_no_line_of_the_broken_file);

async fn a_failed_reload_logs_no_line_of_the_broken_file(backend: Backend) {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let db = TestDatabase::new(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("config.toml");
    std::fs::write(&file, "[log]\nlevel = \"info\"\n").expect("config");
    let mut env = daemon_env(&db.url, &sim, &[]);
    env.push(("ICE_SYNC_CONFIG".into(), file.display().to_string()));
    let mut daemon = Daemon::start(&env);
    daemon.metrics_addr().await;
    std::fs::write(&file, BROKEN_TOML).expect("config");
    daemon.signal("-HUP");
    let line = daemon
        .wait_for_line(
            |l| l.contains("the configuration was not reloaded"),
            Duration::from_secs(15),
        )
        .await;
    assert!(line.contains("ice.access_key_secret"), "{line}");
    assert_secret_free("the daemon's log", &daemon.log(), &BROKEN_SECRETS);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ice_endpoint_with_a_password_is_refused_at_start() {
    for endpoint in [
        "http://proxyuser:Pr0xySecretPw@127.0.0.1:1",
        "http://proxyuser:Pr0xySecretPw@127.0.0.1:1/path",
        "https://u:%50r0xySecretPw@ice.example.com",
    ] {
        let env = vec![("ICE_SYNC__ICE__ENDPOINT".to_string(), endpoint.to_string())];
        for args in [&["check"][..], &["run", "--once"]] {
            let out = run_to_end(&env, args).await;
            let text = output_of(&out);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
            assert!(text.contains("ice.endpoint"), "{text}");
            assert_secret_free(endpoint, &text, &["r0xySecretPw"]);
        }
    }
}

/// sqlx-postgres logs every connect parameter it does not know, value included, at WARN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_driver_never_logs_a_parameter_value() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let sep = if db.url.contains('?') { '&' } else { '?' };
    let url = format!(
        "{}{sep}sslpassword=SslPwSecret1&api_token=ApiTokSecret2",
        db.url
    );
    let env = vec![
        ("ICE_SYNC__DATABASE__URL".to_string(), url),
        ("ICE_SYNC__LOG__FORMAT".to_string(), "plain".to_string()),
        ("ICE_SYNC__LOG__LEVEL".to_string(), "trace".to_string()),
    ];
    let out = run_to_end(&env, &["migrate"]).await;
    let text = output_of(&out);
    assert!(out.status.success(), "{}", describe(&out));
    assert_secret_free("migrate", &text, &["SslPwSecret1", "ApiTokSecret2"]);
    // The operator still learns which parameters were ignored.
    assert!(
        text.contains("sslpassword") && text.contains("api_token"),
        "{text}"
    );
}

/// Each of these once panicked (exit 101) or broke every cycle later; now the load
/// refuses it with exit 2, naming the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_durations_and_counts_exit_2_naming_the_key() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    for (var, value, key) in [
        (
            "ICE_SYNC__SYNC__CYCLE_TIMEOUT",
            "300000000000y",
            "sync.cycle_timeout",
        ),
        (
            "ICE_SYNC__SYNC__CONCURRENCY",
            "2305843009213693952",
            "sync.concurrency",
        ),
        (
            "ICE_SYNC__SYNC__SETTLED_INTERVAL",
            "1000000000y",
            "sync.settled_interval",
        ),
        ("ICE_SYNC__CALLBACK__MAX_SKEW", "31y", "callback.max_skew"),
        ("ICE_SYNC__SYNC__LEASE_TTL", "100000y", "sync.lease_ttl"),
    ] {
        let env = vec![
            ("ICE_SYNC__DATABASE__URL".to_string(), db.url.clone()),
            ("ICE_SYNC__SYNC__MODE".to_string(), "list".to_string()),
            (var.to_string(), value.to_string()),
        ];
        let out = run_to_end(&env, &["run", "--once"]).await;
        assert_eq!(
            out.status.code(),
            Some(2),
            "{var}={value}: {}",
            describe(&out)
        );
        assert!(output_of(&out).contains(key), "{}", describe(&out));
    }
}

on_both_backends!(planted_secrets_reach_no_log_table_or_endpoint);

/// Every secret a daemon can be given, planted at once, with faults so that error paths
/// run too; then the log, every row of every table, `/healthz` and `/metrics` are
/// searched for each of them.
async fn planted_secrets_reach_no_log_table_or_endpoint(backend: Backend) {
    use ice_sim::FaultConfig;
    const AUTH_KEY: &str = "PlantedKey9x";
    const REFRESH_TOKEN: &str = "planted-refresh-token-0123456789";
    const WEBHOOK_SECRET: &str = "PlantedWebhookSecret7";
    const WEBHOOK_TOKEN: &str = "PlantedHookToken5";
    let config = SimulatorConfig {
        access_key_secret: "PlantedAccessSecret3".to_string(),
        faults: FaultConfig {
            server_error: 0.2,
            malformed: 0.2,
            foreign_invalid_parameter: 0.1,
            ..FaultConfig::default()
        },
        ..SimulatorConfig::default()
    };
    let access_secret = config.access_key_secret.clone();
    let sim = Simulator::start(config).await.expect("sim");
    let ids = sim.populate(6, 2);
    let db = TestDatabase::new(backend).await;
    let mut secrets = vec![
        access_secret.as_str(),
        AUTH_KEY,
        REFRESH_TOKEN,
        WEBHOOK_SECRET,
        WEBHOOK_TOKEN,
    ];
    // PostgreSQL here trusts every local connection: a password and secret-looking
    // parameters are accepted and ignored.
    let db_url = match backend {
        Backend::Postgres => {
            secrets.extend(["PlantedDbPw1", "PlantedSslPw2"]);
            let sep = if db.url.contains('?') { '&' } else { '?' };
            format!(
                "{}{sep}password=PlantedDbPw1&sslpassword=PlantedSslPw2",
                db.url
            )
        }
        Backend::Sqlite => db.url.clone(),
    };
    let dir = tempfile::tempdir().expect("dir");
    let token_file = dir.path().join("refresh-token");
    std::fs::write(&token_file, REFRESH_TOKEN).expect("token");
    let token_path = token_file.display().to_string();
    let projects = ids.join(",");
    let webhook_url = format!("http://127.0.0.1:1/hook?token={WEBHOOK_TOKEN}");
    let mut env = daemon_env(
        &db_url,
        &sim,
        &[
            ("ICE_SYNC__SYNC__PROJECTS", &projects),
            ("ICE_SYNC__METRICS__REFRESH_TOKEN_FILE", &token_path),
            ("ICE_SYNC__CALLBACK__LISTEN", "127.0.0.1:0"),
            (
                "ICE_SYNC__CALLBACK__URL",
                "https://ice-sync.example.com/ice/events",
            ),
            ("ICE_SYNC__CALLBACK__AUTH_KEY", AUTH_KEY),
            ("ICE_SYNC__WEBHOOK__URL", &webhook_url),
            ("ICE_SYNC__WEBHOOK__SECRET", WEBHOOK_SECRET),
            ("ICE_SYNC__LOG__LEVEL", "debug"),
        ],
    );
    env.retain(|(k, _)| k != "ICE_SYNC__ICE__ACCESS_KEY_SECRET");
    env.push((
        "ICE_SYNC__ICE__ACCESS_KEY_SECRET".into(),
        access_secret.clone(),
    ));
    let mut daemon = Daemon::start(&env);
    let addr = daemon.metrics_addr().await;
    // A few cycles with faults, a refused refresh and a good one.
    for body in [r#"{"all":true}"#, r#"{"status":"x\u0000"}"#] {
        let _ = reqwest::Client::new()
            .post(format!("http://{addr}/refresh"))
            .header("authorization", format!("Bearer {REFRESH_TOKEN}"))
            .body(body)
            .timeout(Duration::from_secs(5))
            .send()
            .await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_, healthz) = crate::ops::daemon::get(&addr, "/healthz").await;
    let (_, metrics) = crate::ops::daemon::get(&addr, "/metrics").await;
    daemon.signal("-TERM");
    let status = daemon.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}\n{}", daemon.log());
    // The reader thread catches the last lines.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = daemon.log();
    assert!(!log.is_empty());

    let store = crate::support::open_store(&db.url).await;
    let tables_sql = match backend {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        }
        Backend::Postgres => {
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        }
    };
    let tables = crate::support::rows(&store, tables_sql).await;
    assert!(tables.len() > 5, "{tables:?}");
    let mut dump = String::new();
    for table in tables.iter().filter_map(|r| r[0].clone()) {
        let sql = match backend {
            Backend::Sqlite => format!("SELECT * FROM \"{table}\""),
            Backend::Postgres => format!("SELECT row_to_json(t)::text FROM \"{table}\" t"),
        };
        for row in crate::support::rows(&store, &sql).await {
            dump.push_str(&format!("{table}: {row:?}\n"));
        }
    }
    assert!(dump.contains("sync_runs"), "the runs were written");
    for (what, text) in [
        ("the log", log),
        ("the tables", dump),
        ("/healthz", healthz),
        ("/metrics", metrics),
    ] {
        assert_secret_free(what, &text, &secrets);
    }
}
