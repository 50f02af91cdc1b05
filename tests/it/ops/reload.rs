//! `systemctl reload` / SIGHUP on the real binary: a config file change is applied
//! without a restart (tracked IDs, schedule, log level), what needs a restart is named,
//! and an invalid file is refused with the running configuration kept. The same holds
//! for the file of IDs `sync.projects_file` names. Every restart-only key stays as the
//! process started through a later reload that changes something else.

use std::time::Duration;

use ice_sim::{Simulator, SimulatorConfig};

use crate::on_both_backends;
use crate::ops::daemon::{daemon_env, Daemon};
use crate::support::{Backend, TestDatabase};

on_both_backends!(sighup_applies_a_changed_config_and_refuses_a_broken_one);
on_both_backends!(a_projects_file_is_tracked_and_read_again_on_sighup);
on_both_backends!(restart_only_keys_stay_as_started_through_a_later_reload);

async fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !check() {
        assert!(
            start.elapsed() < timeout,
            "{what} did not happen within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// After a refused reload: `project` is still polled, and SIGTERM still exits cleanly.
async fn polls_on_then_stops(mut daemon: Daemon, sim: &Simulator, project: &str) {
    let before = sim.calls(project);
    wait_until(
        "polling after a refused reload",
        Duration::from_secs(5),
        || sim.calls(project) > before,
    )
    .await;
    daemon.signal("-TERM");
    let status = daemon.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}\n{}", daemon.log());
}

async fn sighup_applies_a_changed_config_and_refuses_a_broken_one(backend: Backend) {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let first = sim.add_regular("reload1").project_id.expect("id");
    let second = sim.add_regular("reload2").project_id.expect("id");
    let db = TestDatabase::new(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("config.toml");
    let write = |text: &str| std::fs::write(&file, text).expect("config file");
    write(&format!(
        "[sync]\nschedule = \"*/2 * * * * *\"\nprojects = [\"{first}\"]\n[log]\nlevel = \"info\"\n"
    ));
    let mut env = daemon_env(&db.url, &sim, &[]);
    // The file decides what this test changes; the environment would win over it.
    env.retain(|(k, _)| k != "ICE_SYNC__SYNC__SCHEDULE");
    env.push(("ICE_SYNC_CONFIG".into(), file.display().to_string()));
    let mut daemon = Daemon::start(&env);
    wait_until("the first project's poll", Duration::from_secs(20), || {
        sim.calls(&first) >= 1
    })
    .await;
    assert_eq!(sim.calls(&second), 0);

    // A new project, a faster schedule, debug logging and a restart-only key.
    write(&format!(
        "[sync]\nschedule = \"* * * * * *\"\nprojects = [\"{first}\", \"{second}\"]\n\
         lease_ttl = \"90s\"\nremoval_confirmations = 3\n[log]\nlevel = \"debug\"\n"
    ));
    daemon.signal("-HUP");
    let line = daemon
        .wait_for_line(
            |l| l.contains("configuration reloaded"),
            Duration::from_secs(10),
        )
        .await;
    assert!(
        line.contains("sync.projects") && line.contains("sync.schedule"),
        "{line}"
    );
    // Applied at once, and said so (it used to be called restart-only but applied).
    let applied = line
        .split("not applied until a restart")
        .next()
        .unwrap_or_default();
    assert!(
        applied.contains("sync.removal_confirmations: 2 -> 3"),
        "{line}"
    );
    daemon
        .wait_for_line(
            |l| l.contains("sync.lease_ttl") && l.contains("needs a restart"),
            Duration::from_secs(5),
        )
        .await;
    wait_until("the added project's poll", Duration::from_secs(10), || {
        sim.calls(&second) >= 1
    })
    .await;
    // Every second now, not every two.
    let before = sim.calls(&first);
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    let per_3s = sim.calls(&first) - before;
    assert!(
        per_3s >= 3,
        "{per_3s} polls in 3.2 s after the schedule changed to every second"
    );
    daemon
        .wait_for_line(
            |l| l.contains("\"level\":\"DEBUG\""),
            Duration::from_secs(5),
        )
        .await;

    // A broken file: refused, the running configuration stays and polling goes on.
    write("[sync]\nschedule = \"not cron\"\n");
    daemon.signal("-HUP");
    daemon
        .wait_for_line(
            |l| l.contains("the configuration was not reloaded") && l.contains("sync.schedule"),
            Duration::from_secs(10),
        )
        .await;
    polls_on_then_stops(daemon, &sim, &second).await;
}

async fn a_projects_file_is_tracked_and_read_again_on_sighup(backend: Backend) {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let first = sim.add_regular("listed1").project_id.expect("id");
    let second = sim.add_regular("listed2").project_id.expect("id");
    let db = TestDatabase::new(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let ids = dir.path().join("projects.txt");
    let write_ids = |text: &str| std::fs::write(&ids, text).expect("ID file");
    write_ids(&format!("# the launch campaign\n{first}\n"));
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        format!(
            "[sync]\nschedule = \"* * * * * *\"\nprojects_file = {:?}\n",
            ids.display().to_string()
        ),
    )
    .expect("config file");
    let mut env = daemon_env(&db.url, &sim, &[]);
    env.retain(|(k, _)| k != "ICE_SYNC__SYNC__SCHEDULE");
    env.push(("ICE_SYNC_CONFIG".into(), file.display().to_string()));
    let mut daemon = Daemon::start(&env);
    wait_until("the listed project's poll", Duration::from_secs(20), || {
        sim.calls(&first) >= 1
    })
    .await;
    assert_eq!(sim.calls(&second), 0);

    // The config file is unchanged; only the list is. A reload reads it again.
    write_ids(&format!("{first}\n{second} # added later\n"));
    daemon.signal("-HUP");
    let line = daemon
        .wait_for_line(
            |l| l.contains("configuration reloaded"),
            Duration::from_secs(10),
        )
        .await;
    assert!(line.contains("sync.projects"), "{line}");
    wait_until("the added project's poll", Duration::from_secs(10), || {
        sim.calls(&second) >= 1
    })
    .await;

    // A bad line: the reload is refused, names the file and line, and polling goes on.
    write_ids(&format!("{first}\nnot an id\n"));
    daemon.signal("-HUP");
    daemon
        .wait_for_line(
            |l| {
                l.contains("the configuration was not reloaded")
                    && l.contains("sync.projects_file")
                    && l.contains(":2:")
            },
            Duration::from_secs(10),
        )
        .await;
    polls_on_then_stops(daemon, &sim, &second).await;
}

/// The restart-only keys, each with a valid new value: (diff key, TOML table, line), from
/// the table the reload diff's unit tests use too (`ice_testkit::fixed_keys`). `database.url`
/// and `ice.endpoint` are set by the test itself (to a second database and a second
/// simulator), `metrics.listen` stays (the test reads the started listener); the
/// PostgreSQL-only keys are added on that backend.
fn restart_only(backend: Backend) -> Vec<(&'static str, &'static str, &'static str)> {
    const SET_HERE: &[&str] = &["database.url", "ice.endpoint", "metrics.listen"];
    ice_testkit::fixed_keys::FIXED_KEYS
        .iter()
        .filter(|k| !SET_HERE.contains(&k.key))
        .filter(|k| !k.postgres_only || backend == Backend::Postgres)
        .map(|k| (k.key, k.table, k.line))
        .collect()
}

/// A config file from (table, line) pairs, each table once; a later line for the same
/// key replaces an earlier one.
fn toml(lines: &[(&str, String)]) -> String {
    let key = |line: &str| {
        line.split('=')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let mut kept: Vec<(&str, String)> = Vec::new();
    for (table, line) in lines {
        kept.retain(|(t, l)| !(t == table && key(l) == key(line)));
        kept.push((table, line.clone()));
    }
    let lines = &kept;
    let mut tables: Vec<&str> = Vec::new();
    for (table, _) in lines {
        if !tables.contains(table) {
            tables.push(table);
        }
    }
    let mut out = String::new();
    for table in tables {
        out.push_str(&format!("[{table}]\n"));
        for (_, line) in lines.iter().filter(|(t, _)| *t == table) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The `not applied until a restart: ...` part of a summary line names `key`.
fn names_as_restart_only(line: &str, key: &str) -> bool {
    let Some((_, restart)) = line.split_once("not applied until a restart:") else {
        return false;
    };
    restart.contains(&format!("{key}: ")) || restart.contains(&format!("{key} changed"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn restart_only_keys_stay_as_started_through_a_later_reload(backend: Backend) {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let other_sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("second sim");
    let project = sim.add_regular("fixed1").project_id.expect("id");
    other_sim.add_regular("fixed1");
    let db = TestDatabase::new(backend).await;
    let other_db = TestDatabase::new(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let dir_text = dir.path().display().to_string();
    std::fs::write(
        dir.path().join("token"),
        "a-refresh-token-of-enough-length\n",
    )
    .expect("token");
    std::fs::write(dir.path().join("keys"), "FileKey003\n").expect("keys");
    let cfg = SimulatorConfig::default();
    let base = |db_url: &str, endpoint: &str, level: &str| {
        vec![
            ("database", format!("url = {db_url:?}")),
            ("ice", format!("endpoint = {endpoint:?}")),
            ("ice", format!("access_key_id = {:?}", cfg.access_key_id)),
            (
                "ice",
                format!("access_key_secret = {:?}", cfg.access_key_secret),
            ),
            ("sync", "schedule = \"* * * * * *\"".to_string()),
            ("sync", format!("projects = [{project:?}]")),
            ("sync", "max_qps = 0".to_string()),
            ("log", "format = \"json\"".to_string()),
            ("log", format!("level = {level:?}")),
            ("metrics", "listen = \"127.0.0.1:0\"".to_string()),
        ]
    };
    let file = dir.path().join("config.toml");
    std::fs::write(&file, toml(&base(&db.url, &sim.endpoint(), "info"))).expect("config");
    let mut env = daemon_env(&db.url, &sim, &[]);
    // Everything comes from the file: the environment would win over it.
    env.retain(|(k, _)| !k.starts_with("ICE_SYNC__"));
    env.push(("ICE_SYNC_CONFIG".into(), file.display().to_string()));
    let mut daemon = Daemon::start(&env);
    let metrics = daemon.metrics_addr().await;
    wait_until("the first poll", Duration::from_secs(20), || {
        sim.calls(&project) >= 1
    })
    .await;

    // Every restart-only key changed at once, the endpoint and the database included.
    let callback_port = free_port();
    let fill = |line: &str| {
        line.replace("{dir}", &dir_text)
            .replace("{callback_port}", &callback_port.to_string())
            .replace("{db_url}", &db.url)
    };
    let table = restart_only(backend);
    let changed = |level: &str| {
        let mut lines = base(&other_db.url, &other_sim.endpoint(), level);
        lines.extend(table.iter().map(|(_, t, l)| (*t, fill(l))));
        toml(&lines)
    };
    let mut keys: Vec<&str> = table.iter().map(|(k, _, _)| *k).collect();
    keys.extend(["database.url", "ice.endpoint"]);
    let summaries = [("info", 1), ("debug", 2)].map(|(level, nth)| (changed(level), nth));
    for (text, nth) in summaries {
        std::fs::write(&file, text).expect("config");
        daemon.signal("-HUP");
        let line = nth_line(&mut daemon, "configuration reloaded", nth).await;
        for key in &keys {
            assert!(
                names_as_restart_only(&line, key),
                "reload {nth}: {key} not named as restart-only in {line}"
            );
        }
        // Still the JSON lines the process started with (log.format stays).
        serde_json::from_str::<serde_json::Value>(&line).expect("a JSON line");
        if nth == 2 {
            let applied = line
                .split("not applied until a restart")
                .next()
                .unwrap_or_default();
            assert!(applied.contains("log.level: info -> debug"), "{line}");
        }
    }

    // The started values are in force: the first simulator and database, no list sweep,
    // the started replica id, the started listeners.
    let before = sim.calls(&project);
    wait_until("polls after both reloads", Duration::from_secs(10), || {
        sim.calls(&project) >= before + 2
    })
    .await;
    assert_eq!(
        other_sim.total_calls(),
        0,
        "the reloaded endpoint was called"
    );
    assert_eq!(
        sim.calls_by_action("ListEditingProjects"),
        0,
        "sync.mode = list applied"
    );
    let store = crate::support::open_store(&db.url).await;
    let runs = crate::support::count(&store, "SELECT count(*) FROM sync_runs").await;
    let renamed = crate::support::count(
        &store,
        "SELECT count(*) FROM sync_runs WHERE replica_id = 'other-replica'",
    )
    .await;
    assert!(runs >= 3, "{runs} runs in the started database");
    assert_eq!(renamed, 0, "sync.replica_id applied");
    store.close().await;
    let metrics_up = tokio::net::TcpStream::connect(&metrics).await;
    assert!(metrics_up.is_ok(), "the started metrics listener is gone");
    let callback_up = tokio::net::TcpStream::connect(("127.0.0.1", callback_port)).await;
    assert!(callback_up.is_err(), "callback.listen was applied");
    daemon.signal("-TERM");
    let status = daemon.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}\n{}", daemon.log());
    // The second database was never opened: no schema in it.
    let tables = other_db_tables(&other_db).await;
    assert_eq!(tables, 0, "the reloaded database.url was used");
}

/// The `nth` log line containing `needle`.
async fn nth_line(daemon: &mut Daemon, needle: &str, nth: usize) -> String {
    let start = std::time::Instant::now();
    loop {
        let log = daemon.log();
        if let Some(line) = log.lines().filter(|l| l.contains(needle)).nth(nth - 1) {
            return line.to_string();
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no {nth}th {needle:?} line:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many tables the database holds, without migrating it.
async fn other_db_tables(db: &TestDatabase) -> i64 {
    use sqlx::Connection;
    match db.backend {
        Backend::Sqlite => {
            let Some(path) = ice_sync::storage::sqlite_file(&db.url) else {
                return 0;
            };
            if !std::path::Path::new(&path).exists() {
                return 0;
            }
            let mut conn = sqlx::SqliteConnection::connect(&db.url)
                .await
                .expect("sqlite");
            sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table'")
                .fetch_one(&mut conn)
                .await
                .expect("count")
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url)
                .await
                .expect("postgres");
            sqlx::query_scalar(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .fetch_one(&mut conn)
            .await
            .expect("count")
        }
    }
}
