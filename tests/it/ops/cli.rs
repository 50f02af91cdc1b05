//! The operator's commands as a process shows them (issue 22): read commands never
//! create or migrate, a schema older or newer than the binary is one message naming both
//! versions, a closed pipe ends a command quietly with exit 0, `track` counts are honest,
//! `history` of an unknown ID fails, config projects are visible before the daemon ran,
//! `status` filters and prints JSON with the whole error text, `refresh -o json` is one
//! document, `check` exits 2 with `run`'s own line for every start-up mistake, a bad
//! variable is blamed on the variable, and a SELECT-only PostgreSQL role can read.

use std::io::BufRead;
use std::process::Stdio;

use ice_sim::{Simulator, SimulatorConfig};

use crate::on_both_backends;
use crate::ops::daemon::{describe, run_to_end};
use crate::support::{
    count, env_for, execute, ice_sync_command, open_store, project_ids, Backend, TestDatabase,
};

on_both_backends!(
    read_commands_never_create_or_migrate,
    a_schema_older_or_newer_than_the_binary_names_both_versions,
    track_counts_are_honest_and_unknown_ids_fail,
    status_filters_streams_and_prints_json,
    refresh_prints_one_json_document,
);

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(o)))
}

async fn sim() -> Simulator {
    Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim")
}

async fn migrations_table_exists(db: &TestDatabase) -> bool {
    match db.backend {
        Backend::Sqlite => db.dir().is_some_and(|d| d.join("ice-sync.db").exists()),
        Backend::Postgres => {
            // A bare connection: `open_store` would migrate.
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
                .await
                .expect("connect");
            sqlx::query_scalar::<_, bool>("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                .fetch_one(&mut conn)
                .await
                .expect("catalog")
        }
    }
}

async fn read_commands_never_create_or_migrate(backend: Backend) {
    let sim = sim().await;
    let db = TestDatabase::new(backend).await;
    let env = env_for(&db.url, &sim, &[("ICE_SYNC__SYNC__PROJECTS", "cfg1")]);
    for args in [
        &["status"][..],
        &["track", "list"],
        &["history", "cfg1"],
        &["track", "remove", "--dry-run", "cfg1"],
        &["jobs"],
        &["jobs", "-o", "json"],
        &["config"],
        &["check", "--offline"],
        &["check"],
    ] {
        let _ = run_to_end(&env, args).await;
        assert!(
            !migrations_table_exists(&db).await,
            "{backend:?}: `{}` created or migrated the database",
            args.join(" ")
        );
    }
}

async fn a_schema_older_or_newer_than_the_binary_names_both_versions(backend: Backend) {
    let sim = sim().await;
    let db = TestDatabase::new(backend).await;
    let env = env_for(&db.url, &sim, &[]);
    let store = open_store(&db.url).await;
    let latest = count(&store, "SELECT max(version) FROM _sqlx_migrations").await;
    // Older: the last migration "not applied yet".
    execute(
        &db,
        &format!("DELETE FROM _sqlx_migrations WHERE version = {latest}"),
    )
    .await;
    for args in [&["status"][..], &["track", "list"], &["history", "x1"]] {
        let out = run_to_end(&env, args).await;
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            err.contains(&format!("version {}", latest - 1))
                && err.contains(&latest.to_string())
                && err.contains("ice-sync migrate"),
            "{backend:?} {args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    // Newer: a migration this binary does not know.
    execute(
        &db,
        &format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             SELECT {latest}, description, success, checksum, execution_time FROM _sqlx_migrations \
             WHERE version = {}",
            latest - 1
        ),
    )
    .await;
    execute(
        &db,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         SELECT 9999, 'from the future', success, checksum, execution_time FROM _sqlx_migrations \
         WHERE version = 1",
    )
    .await;
    store.close().await;
    let out = run_to_end(&env, &["status"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("version 9999")
            && err.contains(&latest.to_string())
            && err.contains("upgrade"),
        "{backend:?}: {err}"
    );
}

async fn track_counts_are_honest_and_unknown_ids_fail(backend: Backend) {
    let sim = sim().await;
    let db = TestDatabase::new(backend).await;
    let env = env_for(&db.url, &sim, &[("ICE_SYNC__SYNC__PROJECTS", "cfg1,cfg2")]);
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("ids.txt");
    std::fs::write(&file, "imp1\nimp2\n").expect("write");
    let out = run_to_end(&env, &["track", "import", &file.display().to_string()]).await;
    assert!(
        stdout(&out).contains("2 new, 0 already tracked"),
        "{}",
        describe(&out)
    );

    // Config projects are visible before any daemon synced them, marked as such.
    let out = run_to_end(&env, &["track", "list", "--output", "json"]).await;
    let doc = json(&out);
    let cfg = doc["tracked"]
        .as_array()
        .expect("list")
        .iter()
        .find(|r| r["project_id"] == "cfg1")
        .cloned()
        .unwrap_or_else(|| panic!("cfg1 missing: {doc}"));
    assert_eq!(cfg["in_database"], false, "{doc}");
    assert_eq!(cfg["source"], "config", "{doc}");
    let out = run_to_end(&env, &["status", "cfg2"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        stdout(&out).contains("not synced yet"),
        "{}",
        describe(&out)
    );

    // Imported IDs added again stay `import`: "already tracked", not new.
    let out = run_to_end(&env, &["track", "add", "imp1", "imp2", "new1"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        stdout(&out).contains("1 new, 2 already tracked"),
        "{}",
        describe(&out)
    );
    let store = open_store(&db.url).await;
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM tracked_projects WHERE source = 'import'"
        )
        .await,
        2
    );
    // A config project taken over by hand is "moved".
    store
        .tracking()
        .sync_config_projects(
            &project_ids(&["cfg1"]),
            ice_sync::app::now(&store).await.expect("now"),
        )
        .await
        .expect("config");
    store.close().await;
    let out = run_to_end(&env, &["track", "add", "cfg1"]).await;
    assert!(
        stdout(&out).contains("1 moved from source config to cli"),
        "{}",
        describe(&out)
    );

    // remove: --dry-run changes nothing; unknown IDs are named, exit 1.
    let out = run_to_end(&env, &["track", "remove", "--dry-run", "imp1", "ghost"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stdout(&out).contains("would stop tracking 1"),
        "{}",
        describe(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ghost"),
        "{}",
        describe(&out)
    );
    let store = open_store(&db.url).await;
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM tracked_projects WHERE project_id = 'imp1'"
        )
        .await,
        1,
        "--dry-run removed it"
    );
    store.close().await;
    let out = run_to_end(&env, &["track", "remove", "imp1"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        stdout(&out).contains("stopped tracking 1"),
        "{}",
        describe(&out)
    );

    // history: an unknown ID fails; a tracked one never polled does not.
    let out = run_to_end(&env, &["history", "ghost"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let out = run_to_end(&env, &["history", "new1", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(json(&out)["tracked"], true);
}

async fn status_filters_streams_and_prints_json(backend: Backend) {
    let sim = sim().await;
    let ids = sim.populate(4, 0);
    sim.set_status(&ids[0], Some("Producing"), None);
    let db = TestDatabase::new(backend).await;
    let env = env_for(&db.url, &sim, &[]);
    let mut args = vec!["track", "add"];
    args.extend(ids.iter().map(String::as_str));
    assert_eq!(run_to_end(&env, &args).await.status.code(), Some(0));
    let out = run_to_end(&env, &["run", "--once"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    // A long error: JSON carries all of it, the table cuts it.
    let long = "e".repeat(300);
    let store = open_store(&db.url).await;
    execute(
        &db,
        &format!(
            "UPDATE tracked_projects SET last_error = '{long}', consecutive_failures = 2 \
             WHERE project_id = '{}'",
            ids[1]
        ),
    )
    .await;
    store.close().await;

    let out = run_to_end(&env, &["status", "--failing", "-o", "json"]).await;
    let doc = json(&out);
    assert_eq!(doc["count"], 1, "{doc}");
    assert_eq!(doc["projects"][0]["project_id"], ids[1].as_str());
    assert_eq!(doc["projects"][0]["last_error"], long.as_str(), "full text");
    let table = run_to_end(&env, &["status", "--failing"]).await;
    assert!(
        !stdout(&table).contains(&long),
        "the table cuts long errors"
    );

    let out = run_to_end(&env, &["status", "--status", "Producing", "-o", "json"]).await;
    let doc = json(&out);
    assert_eq!(doc["count"], 1, "{doc}");
    assert_eq!(doc["projects"][0]["project_id"], ids[0].as_str());

    let out = run_to_end(&env, &["status", "--limit", "2", "-o", "json"]).await;
    assert_eq!(json(&out)["count"], 2);

    let out = run_to_end(&env, &["status", &ids[2], &ids[3], "-o", "json"]).await;
    let doc = json(&out);
    let shown: Vec<&str> = doc["projects"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["project_id"].as_str())
        .collect();
    let mut wanted = vec![ids[2].as_str(), ids[3].as_str()];
    wanted.sort();
    assert_eq!(shown, wanted, "in ID order: {doc}");

    let out = run_to_end(&env, &["status", &ids[2], "nosuchid"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuchid"));
}

/// `ice-sync COMMAND | head -1`: the reader leaves after one line; the command ends
/// quietly with exit 0 (it used to panic with exit 101).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipe_ends_quietly_with_exit_0() {
    let sim = sim().await;
    let db = TestDatabase::new(Backend::Sqlite).await;
    let env = env_for(&db.url, &sim, &[]);
    // Enough rows to fill a pipe's buffer many times over.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("ids.txt");
    let ids: Vec<String> = (0..5000).map(|n| format!("pipe{n:05}")).collect();
    std::fs::write(&file, ids.join("\n")).expect("write");
    let out = run_to_end(&env, &["track", "import", &file.display().to_string()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    for args in [
        &["status"][..],
        &["status", "-o", "json"],
        &["track", "list"],
        &["track", "list", "-o", "json"],
    ] {
        let env = env.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (code, stderr) = tokio::task::spawn_blocking(move || {
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut child = ice_sync_command(&env, &argv)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            let mut reader = std::io::BufReader::new(child.stdout.take().expect("stdout"));
            let mut first = String::new();
            reader.read_line(&mut first).expect("one line");
            drop(reader);
            let out = child.wait_with_output().expect("wait");
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
        .await
        .expect("join");
        assert_eq!(code, Some(0), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

on_both_backends!(check_predicts_run_and_run_refuses_with_exit_2);

/// A start-up mistake: its name, the variables that make it, the text both report.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);

/// Each start-up mistake `run` refuses (issue 22, item 2): `run` exits 2 (the unit's
/// RestartPreventExitStatus) before touching the database, and `check` (offline or
/// not) exits 2 too with exactly `run`'s reason; a newer schema is refused by both with
/// both versions.
async fn check_predicts_run_and_run_refuses_with_exit_2(backend: Backend) {
    let sim = sim().await;
    let db = TestDatabase::new(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("missing").display().to_string();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy_addr = busy.local_addr().expect("addr").to_string();
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .to_string();
    let cases: Vec<Case> = vec![
        (
            "metrics.refresh_token_file",
            vec![
                ("ICE_SYNC__METRICS__LISTEN", free.as_str()),
                ("ICE_SYNC__METRICS__REFRESH_TOKEN_FILE", missing.as_str()),
            ],
            "POST /refresh needs a bearer token",
        ),
        (
            "callback.auth_key_file",
            vec![
                ("ICE_SYNC__CALLBACK__LISTEN", free.as_str()),
                ("ICE_SYNC__CALLBACK__URL", "http://example.invalid/cb"),
                ("ICE_SYNC__CALLBACK__AUTH_KEY_FILE", missing.as_str()),
            ],
            "callback.auth_key_file",
        ),
        (
            "webhook.secret_file",
            vec![
                ("ICE_SYNC__WEBHOOK__URL", "http://127.0.0.1:9/hook"),
                ("ICE_SYNC__WEBHOOK__SECRET_FILE", missing.as_str()),
            ],
            "webhook.secret_file",
        ),
        (
            "metrics.listen in use",
            vec![("ICE_SYNC__METRICS__LISTEN", busy_addr.as_str())],
            "cannot listen on metrics.listen",
        ),
    ];
    for (name, extra, text) in cases {
        let env = env_for(&db.url, &sim, &extra);
        let run = run_to_end(&env, &["run"]).await;
        assert_eq!(run.status.code(), Some(2), "{name}: {}", describe(&run));
        let why = refusal(&run);
        assert!(why.contains(text), "{name}: {}", describe(&run));
        assert!(
            !migrations_table_exists(&db).await,
            "{name}: run touched the database before refusing"
        );
        for args in [&["check", "--offline"][..], &["check"]] {
            let mut argv = args.to_vec();
            argv.extend(["-o", "json"]);
            let check = run_to_end(&env, &argv).await;
            assert_eq!(check.status.code(), Some(2), "{name}: {}", describe(&check));
            assert!(
                failed_details(&check).contains(&why),
                "{name}: `{}` does not say {why:?}: {}",
                args.join(" "),
                describe(&check)
            );
        }
        // The table says it too, on one line.
        let check = run_to_end(&env, &["check", "--offline"]).await;
        assert!(
            stdout(&check).contains(&why),
            "{name}: {}",
            describe(&check)
        );
    }
    drop(busy);

    // A newer schema: `run --once` names both versions instead of sqlx's message.
    let store = open_store(&db.url).await;
    execute(
        &db,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         SELECT 9999, 'from the future', success, checksum, execution_time FROM _sqlx_migrations \
         WHERE version = 1",
    )
    .await;
    store.close().await;
    let env = env_for(&db.url, &sim, &[]);
    let out = run_to_end(&env, &["run", "--once"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let why = refusal(&out);
    assert!(
        why.contains("version 9999") && why.contains("upgrade"),
        "{why}"
    );
    let check = run_to_end(&env, &["check", "-o", "json"]).await;
    assert_eq!(check.status.code(), Some(2), "{}", describe(&check));
    assert!(
        failed_details(&check).contains(&why),
        "check does not say {why:?}: {}",
        describe(&check)
    );
}

/// The reason `run` gave for refusing to start: its `error:` line without the advice
/// that follows every refusal.
fn refusal(o: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let line = err
        .lines()
        .find_map(|l| l.strip_prefix("error: "))
        .unwrap_or_else(|| panic!("no error line: {}", describe(o)));
    line.split(" (a restart cannot fix this")
        .next()
        .unwrap_or(line)
        .to_string()
}

/// The details of the checks that failed, from `check -o json`.
fn failed_details(o: &std::process::Output) -> Vec<String> {
    json(o)["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["level"] == "fail")
        .filter_map(|c| c["detail"].as_str().map(str::to_string))
        .collect()
}

/// SQLite mistakes `run` used to find only after `check` had passed: both exit 2 with the
/// same reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_run_agree_on_the_sqlite_location() {
    let sim = sim().await;
    let dir = tempfile::tempdir().expect("dir");
    let no_dir = format!("sqlite://{}/nodir/x.db?mode=rwc", dir.path().display());
    let no_rwc = format!("sqlite://{}/x.db", dir.path().display());
    for (url, text) in [
        (no_dir, "does not exist: create it"),
        (no_rwc, "lacks ?mode=rwc"),
    ] {
        let env = env_for(&url, &sim, &[]);
        let run = run_to_end(&env, &["run", "--once"]).await;
        assert_eq!(run.status.code(), Some(2), "{}", describe(&run));
        let why = refusal(&run);
        assert!(why.contains(text), "{}", describe(&run));
        let check = run_to_end(&env, &["check", "-o", "json"]).await;
        assert_eq!(check.status.code(), Some(2), "{}", describe(&check));
        assert!(
            failed_details(&check).contains(&why),
            "{}",
            describe(&check)
        );
    }
}

/// 10,002 projects at the default 20 requests per second cannot be polled every 30 s:
/// `check` (offline too) says so with the numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_warns_when_the_schedule_cannot_fit_the_projects() {
    let sim = sim().await;
    let db = TestDatabase::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("projects.txt");
    let ids: Vec<String> = (0..10_002).map(|n| format!("size{n:05}")).collect();
    std::fs::write(&file, ids.join("\n")).expect("write");
    let path = file.display().to_string();
    let env = env_for(
        &db.url,
        &sim,
        &[
            ("ICE_SYNC__SYNC__PROJECTS_FILE", path.as_str()),
            ("ICE_SYNC__SYNC__SCHEDULE", "*/30 * * * * *"),
            ("ICE_SYNC__SYNC__MAX_QPS", "20"),
        ],
    );
    let out = run_to_end(&env, &["check", "--offline", "-o", "json"]).await;
    let doc = json(&out);
    let sizing = doc["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["check"] == "sizing")
        .cloned()
        .unwrap_or_else(|| panic!("no sizing warning: {doc}"));
    assert_eq!(sizing["level"], "warn");
    let detail = sizing["detail"].as_str().unwrap_or_default();
    for number in [
        "10002 project(s)",
        "sync.max_qps = 20",
        "501s",
        "every 30s",
        "600 polls",
    ] {
        assert!(detail.contains(number), "{number}: {detail}");
    }
}

/// PostgreSQL down: the commands name the cause, not a pool timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_is_connection_refused() {
    let sim = sim().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let url = format!("postgres://postgres@{closed}/nothing");
    let env = env_for(&url, &sim, &[]);
    for args in [&["status"][..], &["run", "--once"], &["track", "add", "x1"]] {
        let started = std::time::Instant::now();
        let out = run_to_end(&env, args).await;
        assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(err.contains("connection refused"), "{args:?}: {err}");
        assert!(!err.contains("timed out"), "{args:?}: {err}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(8),
            "{args:?}"
        );
    }
}

/// The packaging step: scripts/package-assets writes a man page and bash, zsh and fish
/// completions (non-empty) beside the binary, where the `.deb`'s asset list finds them;
/// `--version` names the commit.
#[test]
fn package_assets_and_version() {
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_ice-sync"));
    let dir = tempfile::tempdir().expect("dir");
    let copy = dir.path().join("ice-sync");
    std::fs::copy(&exe, &copy).expect("copy the binary");
    let out = std::process::Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/package-assets"
    ))
    .arg(&copy)
    .output()
    .expect("script runs");
    assert!(out.status.success(), "{}", describe(&out));
    for (file, text) in [
        ("ice-sync.1", ".TH ice-sync"),
        ("ice-sync.bash", "complete -F _ice__sync"),
        ("_ice-sync", "#compdef ice-sync"),
        ("ice-sync.fish", "complete -c ice-sync"),
    ] {
        let body = std::fs::read_to_string(dir.path().join("assets").join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(body.contains(text), "{file} lacks {text:?}");
    }
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .expect("Cargo.toml");
    for file in ["ice-sync.1", "ice-sync.bash", "_ice-sync", "ice-sync.fish"] {
        assert!(
            manifest.contains(&format!("target/release/assets/{file}")),
            "the .deb does not install {file}"
        );
    }
    let version = std::process::Command::new(&exe)
        .arg("--version")
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&version.stdout).into_owned();
    let commit = text
        .split_once('(')
        .map(|(_, rest)| rest.trim_end().trim_end_matches(')'))
        .unwrap_or_default();
    assert!(
        commit == "unknown commit"
            || commit.chars().all(|c| c.is_ascii_hexdigit()) && !commit.is_empty(),
        "{text}"
    );
}

/// A command whose configuration names another database than the running daemon's says
/// so (the daemon records its database, password masked, in its runtime directory); on
/// the same database it stays quiet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_on_another_database_than_the_daemon_says_so() {
    let sim = sim().await;
    let daemon_db = TestDatabase::new(Backend::Postgres).await;
    let other_db = TestDatabase::new(Backend::Sqlite).await;
    let runtime = tempfile::tempdir().expect("dir");
    let runtime_dir = runtime.path().display().to_string();
    let extra = [("RUNTIME_DIRECTORY", runtime_dir.as_str())];
    let mut daemon = crate::ops::daemon::Daemon::start(&env_for(&daemon_db.url, &sim, &extra));
    daemon
        .wait_for_line(
            |l| l.contains("ice-sync started"),
            std::time::Duration::from_secs(30),
        )
        .await;
    assert!(
        runtime.path().join("database").exists(),
        "the daemon records its database"
    );

    let out = run_to_end(&env_for(&other_db.url, &sim, &extra), &["track", "list"]).await;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("running ice-sync daemon") && err.contains("another database"),
        "{}",
        describe(&out)
    );
    let out = run_to_end(&env_for(&daemon_db.url, &sim, &extra), &["track", "list"]).await;
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("running ice-sync daemon"),
        "{}",
        describe(&out)
    );
    drop(daemon);
}

/// Every reload is counted by outcome: `ice_sync_reloads_total{outcome="applied"}` after a
/// good SIGHUP, `{outcome="refused"}` after a broken file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_are_counted_by_outcome() {
    let sim = sim().await;
    let db = TestDatabase::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("config.toml");
    std::fs::write(&file, "[sync]\nschedule = \"0 0 * * * *\"\n").expect("write");
    let path = file.display().to_string();
    let env = env_for(
        &db.url,
        &sim,
        &[
            ("ICE_SYNC_CONFIG", path.as_str()),
            ("ICE_SYNC__METRICS__LISTEN", "127.0.0.1:0"),
        ],
    );
    let mut daemon = crate::ops::daemon::Daemon::start(&env);
    let addr = daemon.metrics_addr().await;
    let scrape = || async {
        reqwest::get(format!("http://{addr}/metrics"))
            .await
            .expect("scrape")
            .text()
            .await
            .expect("body")
    };
    std::fs::write(&file, "[sync]\nschedule = \"0 30 * * * *\"\n").expect("write");
    daemon.signal("-HUP");
    daemon
        .wait_for_line(
            |l| l.contains("configuration reloaded"),
            std::time::Duration::from_secs(10),
        )
        .await;
    std::fs::write(&file, "[sync]\nschedule = \"not cron\"\n").expect("write");
    daemon.signal("-HUP");
    daemon
        .wait_for_line(
            |l| l.contains("the configuration was not reloaded"),
            std::time::Duration::from_secs(10),
        )
        .await;
    let body = scrape().await;
    assert!(
        body.contains("ice_sync_reloads_total{outcome=\"applied\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("ice_sync_reloads_total{outcome=\"refused\"} 1"),
        "{body}"
    );
    drop(daemon);
}

/// `refresh -o json`: one document, a row per project with its outcome and the whole
/// error text, the counts, who polled; the exit code is the table's.
async fn refresh_prints_one_json_document(backend: Backend) {
    let sim = sim().await;
    let ids = sim.populate(2, 0);
    sim.set_status(&ids[0], Some("Producing"), None);
    let db = TestDatabase::new(backend).await;
    let env = env_for(&db.url, &sim, &[]);
    let out = run_to_end(&env, &["track", "add", &ids[0], &ids[1]]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let out = run_to_end(&env, &["refresh", &ids[0], &ids[1], "-o", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let doc = json(&out);
    assert_eq!(
        (
            &doc["requested"],
            &doc["polled"],
            &doc["failed"],
            &doc["waiting"]
        ),
        (&2.into(), &2.into(), &0.into(), &0.into()),
        "{doc}"
    );
    assert_eq!(doc["polled_by"], "command", "{doc}");
    let first = doc["projects"]
        .as_array()
        .expect("projects")
        .iter()
        .find(|p| p["project_id"] == ids[0].as_str())
        .cloned()
        .unwrap_or_else(|| panic!("no {} in {doc}", ids[0]));
    assert_eq!(first["outcome"], "polled", "{doc}");
    assert_eq!(first["status"], "Producing", "{doc}");
    assert!(
        first["last_polled_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{doc}"
    );

    // A failed poll: `failed` with the error, exit 1, still one document on stdout.
    sim.remove(&ids[1]);
    let out = run_to_end(&env, &["refresh", "--all", "-o", "json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let doc = json(&out);
    assert_eq!(doc["failed"], 1, "{doc}");
    let gone = doc["projects"]
        .as_array()
        .expect("projects")
        .iter()
        .find(|p| p["project_id"] == ids[1].as_str())
        .cloned()
        .unwrap_or_else(|| panic!("no {} in {doc}", ids[1]));
    assert_eq!(gone["outcome"], "failed", "{doc}");
    assert!(
        gone["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{doc}"
    );
}

/// Item 5: a bad variable beside a good file is blamed on the variable, not the file,
/// by every command (the file's line is fine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_variable_is_blamed_on_the_variable_not_the_file() {
    let sim = sim().await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("good.toml");
    std::fs::write(&file, "[sync]\nschedule = \"0 */5 * * * *\"\n").expect("write");
    let path = file.display().to_string();
    let env = env_for(
        &format!("sqlite://{}/x.db?mode=rwc", dir.path().display()),
        &sim,
        &[
            ("ICE_SYNC_CONFIG", path.as_str()),
            ("ICE_SYNC__SYNC__SCHEDULE", "0 */5 * * *"),
        ],
    );
    for args in [&["check"][..], &["run"], &["config"], &["status"]] {
        let out = run_to_end(&env, args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
        let said = stdout(&out) + &String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains("ICE_SYNC__SYNC__SCHEDULE") && !said.contains("good.toml"),
            "{args:?}: {said}"
        );
    }
}

/// Item 3: on PostgreSQL a role that may only SELECT runs every reading command (they
/// neither create nor migrate anything, so they need no other privilege).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_commands_need_only_select_on_postgres() {
    let sim = sim().await;
    let ids = sim.populate(1, 0);
    let db = TestDatabase::new(Backend::Postgres).await;
    let env = env_for(&db.url, &sim, &[]);
    let out = run_to_end(&env, &["track", "add", &ids[0]]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let out = run_to_end(&env, &["run", "--once"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    let mut url = reqwest::Url::parse(&db.url).expect("a URL");
    let database = url.path().trim_start_matches('/').to_string();
    let role = format!("ro_{database}");
    let _dropped = RoleGuard {
        url: db.url.clone(),
        role: role.clone(),
    };
    let store = open_store(&db.url).await;
    for sql in [
        format!("CREATE ROLE \"{role}\" LOGIN"),
        format!("GRANT CONNECT ON DATABASE \"{database}\" TO \"{role}\""),
        format!("GRANT USAGE ON SCHEMA public TO \"{role}\""),
        format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{role}\""),
    ] {
        execute(&db, &sql).await;
    }
    url.set_username(&role).expect("user");
    url.set_password(None).expect("no password");
    let reader = env_for(url.as_str(), &sim, &[]);
    for args in [
        &["status"][..],
        &["status", "-o", "json"],
        &["track", "list"],
        &["history", &ids[0]],
        &["jobs"],
        &["check"],
    ] {
        let out = run_to_end(&reader, args).await;
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", describe(&out));
    }
    store.close().await;
}

/// Drops a cluster-wide role the test created, also when the test fails (a role outlives
/// its test database).
struct RoleGuard {
    url: String,
    role: String,
}

impl Drop for RoleGuard {
    fn drop(&mut self) {
        let (url, role) = (self.url.clone(), self.role.clone());
        // Its own thread and runtime: Drop cannot await, and may run inside a runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&url).await?;
                sqlx::query(&format!("DROP OWNED BY \"{role}\""))
                    .execute(&mut c)
                    .await?;
                sqlx::query(&format!("DROP ROLE \"{role}\""))
                    .execute(&mut c)
                    .await?;
                Ok::<_, sqlx::Error>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) && !std::thread::panicking() {
            panic!("could not drop role {}: {dropped:?}", self.role);
        }
    }
}
