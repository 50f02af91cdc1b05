//! `ice-sync check` against the simulator: passes on a healthy set-up (both backends,
//! credentials from config or from systemd's `$CREDENTIALS_DIRECTORY`), and for each
//! broken piece fails with exit code 1 and a line that says what to fix, never printing
//! a secret.

use ice_sim::{Simulator, SimulatorConfig};

use crate::on_both_backends;
use crate::ops::daemon::{describe, run_to_end};
use crate::support::{env_for, Backend, TestDatabase};

on_both_backends!(passes_against_the_simulator);

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// The report line of one check.
fn line<'a>(report: &'a str, what: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(what.split(' ').next().unwrap_or(what)))
        .unwrap_or_else(|| panic!("no {what} line in:\n{report}"))
}

fn without(env: Vec<(String, String)>, keys: &[&str]) -> Vec<(String, String)> {
    env.into_iter()
        .filter(|(k, _)| !keys.contains(&k.as_str()))
        .collect()
}

async fn passes_against_the_simulator(backend: Backend) {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let ids = sim.populate(3, 0);
    let db = TestDatabase::new(backend).await;
    let secret = SimulatorConfig::default().access_key_secret;

    // A fresh database: nothing applied yet, which the daemon fixes at start; still a pass.
    let env = env_for(&db.url, &sim, &[]);
    let out = run_to_end(&env, &["check"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let report = stdout(&out);
    let database = line(&report, "database");
    match backend {
        Backend::Sqlite => assert!(database.contains("does not exist yet"), "{report}"),
        Backend::Postgres => assert!(
            database.contains("0 of ") && database.contains("ice-sync migrate"),
            "{report}"
        ),
    }
    assert!(
        line(&report, "ice api").contains("placeholder ID"),
        "{report}"
    );

    // Migrated, with tracked projects: the call is made for a real one.
    let out = run_to_end(&env, &["migrate"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let out = run_to_end(&env, &["track", "add", &ids[0]]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let out = run_to_end(&env, &["check"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let report = stdout(&out);
    assert!(report.contains("all checks passed"), "{report}");
    assert!(
        line(&report, "database").contains("schema up to date"),
        "{report}"
    );
    assert!(
        line(&report, "database").contains("1 tracked project(s)"),
        "{report}"
    );
    assert!(
        line(&report, "credentials").contains("from config (ice.access_key_secret)"),
        "{report}"
    );
    assert!(
        line(&report, "ice api").contains(&format!("project {} is", ids[0])),
        "{report}"
    );
    assert!(
        !report.contains(&secret),
        "the secret was printed:\n{report}"
    );

    // The same key from systemd's credentials directory (LoadCredential=).
    let creds = tempfile::tempdir().expect("dir");
    std::fs::write(
        creds.path().join("access_key_id"),
        SimulatorConfig::default().access_key_id,
    )
    .expect("write");
    std::fs::write(
        creds.path().join("access_key_secret"),
        format!("{secret}\n"),
    )
    .expect("write");
    let dir = creds.path().display().to_string();
    let mut env = without(
        env,
        &[
            "ICE_SYNC__ICE__ACCESS_KEY_ID",
            "ICE_SYNC__ICE__ACCESS_KEY_SECRET",
        ],
    );
    env.push(("CREDENTIALS_DIRECTORY".into(), dir.clone()));
    let out = run_to_end(&env, &["check"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let report = stdout(&out);
    assert!(
        line(&report, "credentials").contains(&format!("from systemd credentials ({dir})")),
        "{report}"
    );
    assert!(
        !report.contains(&secret),
        "the secret was printed:\n{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_fails_naming_the_variable_to_fix() {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let db = TestDatabase::new(Backend::Sqlite).await;
    let env = env_for(
        &db.url,
        &sim,
        &[("ICE_SYNC__ICE__ACCESS_KEY_SECRET", "NotTheSecret-4f9a")],
    );
    let out = run_to_end(&env, &["check"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let report = stdout(&out);
    let api = line(&report, "ice api");
    assert!(api.starts_with("  FAIL"), "{report}");
    assert!(
        api.contains("SignatureDoesNotMatch") && api.contains("ACCESS_KEY_SECRET"),
        "{report}"
    );
    assert!(line(&report, "credentials").starts_with("  ok"), "{report}");
    assert!(
        !report.contains("NotTheSecret"),
        "the secret was printed:\n{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_fails_with_the_url_password_hidden() {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let env = env_for(
        "postgres://ice_sync:hunter2@127.0.0.1:1/ice_sync",
        &sim,
        &[],
    );
    let out = run_to_end(&env, &["check"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let report = stdout(&out);
    let database = line(&report, "database");
    assert!(database.starts_with("  FAIL"), "{report}");
    assert!(
        database.contains("127.0.0.1:1") && database.contains("is PostgreSQL running"),
        "{report}"
    );
    assert!(
        !report.contains("hunter2"),
        "the password was printed:\n{report}"
    );
    // The other checks still ran.
    assert!(line(&report, "ice api").starts_with("  ok"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_region_fails_naming_the_region() {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let db = TestDatabase::new(Backend::Sqlite).await;
    // No endpoint override: the endpoint comes from the region, which does not exist.
    let env = without(
        env_for(&db.url, &sim, &[("ICE_SYNC__ICE__REGION", "xx-nowhere-9")]),
        &["ICE_SYNC__ICE__ENDPOINT"],
    );
    let out = run_to_end(&env, &["check"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let report = stdout(&out);
    let api = line(&report, "ice api");
    assert!(api.starts_with("  FAIL"), "{report}");
    assert!(
        api.contains("https://ice.xx-nowhere-9.aliyuncs.com"),
        "{report}"
    );
    assert!(
        api.contains("ice.region = \"xx-nowhere-9\" is not a region ICE is offered in"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_fails_with_exit_code_2_naming_the_key() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "[sync]\nschedule = \"every five minutes\"\n").expect("write");
    let out = run_to_end(&[], &["--config", &path.display().to_string(), "check"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let report = stdout(&out);
    assert!(
        line(&report, "config").starts_with("  FAIL") && report.contains("sync.schedule"),
        "{report}"
    );
}
