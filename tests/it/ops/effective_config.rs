//! `ice-sync config` as an operator runs it (issue 22, item 9): every key with its value
//! and the layer that set it (default, file, variable, `database.url_file`, a systemd
//! credential), secrets as `***`, one JSON document for scripts; a configuration `run`
//! refuses is refused with `run`'s line and exit 2.

use ice_sim::{Simulator, SimulatorConfig};

use crate::ops::daemon::{describe, run_to_end};
use crate::support::env_for;

const SECRETS: &[&str] = &[
    "DbPw9secret",
    "AkSecret9value",
    "WebTok9secret",
    "CredWebhook9secret",
];

fn row<'a>(doc: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    doc["settings"]
        .as_array()
        .expect("settings")
        .iter()
        .find(|r| r["key"] == key)
        .unwrap_or_else(|| panic!("no {key} in {doc}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_names_the_layer_of_every_key_and_masks_secrets() {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let url_file = dir.path().join("database-url");
    std::fs::write(&url_file, "postgres://ice:DbPw9secret@127.0.0.1:1/ice\n").expect("write");
    let credentials = dir.path().join("credentials");
    std::fs::create_dir(&credentials).expect("dir");
    std::fs::write(credentials.join("webhook-secret"), "CredWebhook9secret\n").expect("write");
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        format!(
            "[database]\nurl_file = {:?}\n[sync]\nmax_retries = 4\nconcurrency = 4\n\
             [webhook]\nurl = \"http://127.0.0.1:9/hook?token=WebTok9secret\"\n",
            url_file.display().to_string()
        ),
    )
    .expect("write");
    let path = file.display().to_string();
    let cred_dir = credentials.display().to_string();
    let mut env = env_for(
        "sqlite://unused.db?mode=rwc",
        &sim,
        &[
            ("ICE_SYNC_CONFIG", path.as_str()),
            ("ICE_SYNC__SYNC__CONCURRENCY", "3"),
            ("ICE_SYNC__ICE__ACCESS_KEY_SECRET", "AkSecret9value"),
            ("CREDENTIALS_DIRECTORY", cred_dir.as_str()),
        ],
    );
    // The file's url_file, not a variable, names the database here.
    env.retain(|(k, _)| k != "ICE_SYNC__DATABASE__URL");

    let out = run_to_end(&env, &["config", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} shown:\n{text}");
    }
    let doc: serde_json::Value = serde_json::from_str(&text).expect("one JSON document");
    assert_eq!(doc["config_file"], path.as_str());
    let r = row(&doc, "sync.max_retries");
    assert_eq!((&r["value"], &r["source"]), (&4.into(), &"file".into()));
    assert_eq!(r["origin"], path.as_str());
    let r = row(&doc, "sync.concurrency");
    assert_eq!((&r["value"], &r["source"]), (&"3".into(), &"env".into()));
    assert_eq!(r["origin"], "ICE_SYNC__SYNC__CONCURRENCY");
    let r = row(&doc, "sync.schedule");
    assert_eq!(r["source"], "default");
    assert_eq!(r["origin"], serde_json::Value::Null);
    let r = row(&doc, "database.url");
    assert_eq!(r["source"], "secret_file");
    assert_eq!(r["value"], "postgres://ice:***@127.0.0.1:1/ice");
    assert_eq!(r["origin"], url_file.display().to_string().as_str());
    let r = row(&doc, "ice.access_key_secret");
    assert_eq!((&r["value"], &r["secret"]), (&"***".into(), &true.into()));
    let r = row(&doc, "webhook.secret");
    assert_eq!(
        (&r["value"], &r["source"]),
        (&"***".into(), &"credential".into())
    );
    assert_eq!(row(&doc, "webhook.url")["value"], "***");
    assert_eq!(row(&doc, "ice.credentials")["source"], "credential_chain");

    // The table: one row per key, the layer spelled out.
    let out = run_to_end(&env, &["config"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    for secret in SECRETS {
        assert!(!table.contains(secret), "{secret} shown:\n{table}");
    }
    let line = |key: &str| {
        table
            .lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} row:\n{table}"))
            .to_string()
    };
    assert!(
        line("sync.max_retries").contains(&format!("file {path}")),
        "{table}"
    );
    assert!(
        line("sync.concurrency").contains("env ICE_SYNC__SYNC__CONCURRENCY"),
        "{table}"
    );
    assert!(
        line("database.url").contains("(database.url_file)"),
        "{table}"
    );
    assert!(line("sync.schedule").ends_with("default"), "{table}");
}

/// What `run` refuses at load, `config` refuses with the same line and exit 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_refuses_what_run_refuses_with_the_same_line() {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let env = env_for(
        "sqlite://unused.db?mode=rwc",
        &sim,
        &[("ICE_SYNC__SYNC__SCHEDULE", "0 */5 * * *")],
    );
    let config = run_to_end(&env, &["config"]).await;
    let run = run_to_end(&env, &["run"]).await;
    assert_eq!(config.status.code(), Some(2), "{}", describe(&config));
    assert_eq!(run.status.code(), Some(2), "{}", describe(&run));
    let line = String::from_utf8_lossy(&config.stderr).into_owned();
    assert!(line.contains("sync.schedule"), "{line}");
    assert_eq!(line, String::from_utf8_lossy(&run.stderr), "same line");
}
