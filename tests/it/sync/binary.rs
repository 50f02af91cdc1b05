//! The real `ice-sync` binary as a subprocess: exit codes, output, and the commands
//! users type.

use std::io::Write;
use std::process::{Output, Stdio};

use ice_sim::{Simulator, SimulatorConfig};

use crate::on_both_backends;
use crate::support::{env_for, ice_sync_command, spawn_guarded, Backend, TestDatabase};

on_both_backends!(run_once_syncs_and_exits_zero, track_commands);

fn ice_sync(env: &[(String, String)], args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = ice_sync_command(&[], args);
    cmd.env("ICE_SYNC__LOG__FORMAT", "plain")
        .envs(env.iter().cloned())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn_guarded(&mut cmd);
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("ice-sync runs")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn run_once_syncs_and_exits_zero(backend: Backend) {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let ids = sim.populate(30, 10);
    let db = TestDatabase::new(backend).await;
    let projects = ids.join(",");
    let env = env_for(
        &db.url,
        &sim,
        &[
            ("ICE_SYNC__SYNC__PROJECTS", &projects),
            ("ICE_SYNC__SYNC__SCHEDULE", "* * * * * *"),
        ],
    );

    let out = tokio::task::spawn_blocking({
        let env = env.clone();
        move || ice_sync(&env, &["run", "--once"], None)
    })
    .await
    .expect("join");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sync cycle finished"),
        "{}",
        text(&out)
    );
    assert!(ids.iter().all(|id| sim.calls(id) == 1));

    let status = tokio::task::spawn_blocking({
        let env = env.clone();
        move || ice_sync(&env, &["status"], None)
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(
        stdout.contains("40 tracked project(s)"),
        "{}",
        text(&status)
    );
    assert!(
        stdout.contains("Draft") && stdout.contains("Reserving"),
        "{}",
        text(&status)
    );

    let id = ids[0].clone();
    let history = tokio::task::spawn_blocking({
        let env = env.clone();
        move || ice_sync(&env, &["history", &id], None)
    })
    .await
    .expect("join");
    assert!(
        String::from_utf8_lossy(&history.stdout).contains("first_seen"),
        "{}",
        text(&history)
    );

    // A wrong secret: the cycle fails with one message saying what to fix. (Projects are
    // due again at the next tick of the per-second schedule.)
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mut bad = env.clone();
    bad.push(("ICE_SYNC__ICE__ACCESS_KEY_SECRET".into(), "wrong".into()));
    let out = tokio::task::spawn_blocking(move || ice_sync(&bad, &["run", "--once"], None))
        .await
        .expect("join");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SignatureDoesNotMatch") && stderr.contains("ACCESS_KEY_SECRET"),
        "{}",
        text(&out)
    );
    assert!(
        !stderr.contains("wrong"),
        "the secret must not be printed: {stderr}"
    );
}

async fn track_commands(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let env = vec![("ICE_SYNC__DATABASE__URL".to_string(), db.url.clone())];
    let run = |args: Vec<&'static str>, stdin: Option<&'static str>| {
        let env = env.clone();
        tokio::task::spawn_blocking(move || ice_sync(&env, &args, stdin))
    };
    let out = run(vec!["track", "add", "aaa1", "bbb2"], None)
        .await
        .expect("join");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("tracking 2 project(s): 2 new"),
        "{}",
        text(&out)
    );
    let out = run(vec!["track", "add", "-"], Some("ccc3\n\nbbb2\n"))
        .await
        .expect("join");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 new, 1 already tracked"),
        "{}",
        text(&out)
    );

    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("ids.txt");
    std::fs::write(
        &file,
        "# exported from the console\nddd4\neee5  # trailing comment\n",
    )
    .expect("write");
    let path: &'static str = Box::leak(file.display().to_string().into_boxed_str());
    let out = run(vec!["track", "import", path], None)
        .await
        .expect("join");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("imported 2 ID(s): 2 new"),
        "{}",
        text(&out)
    );

    let out = run(vec!["track", "remove", "aaa1"], None)
        .await
        .expect("join");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(vec!["track", "list"], None).await.expect("join");
    let list = String::from_utf8_lossy(&out.stdout).to_string();
    let ids: Vec<&str> = list
        .lines()
        .skip(1)
        // The last line counts them.
        .filter(|l| !l.ends_with("tracked project(s)"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(ids, vec!["bbb2", "ccc3", "ddd4", "eee5"], "{list}");
    assert!(list.contains("import") && list.contains("cli"), "{list}");

    // Invalid input: exit 2, one line naming the value, nothing written.
    let out = run(vec!["track", "add", "fff6", "not valid!"], None)
        .await
        .expect("join");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not valid!") && stderr.lines().count() == 1,
        "{stderr}"
    );
    let out = run(vec!["track", "list"], None).await.expect("join");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("fff6"));
}

#[test]
fn bad_config_exits_2_with_one_line_naming_the_key() {
    let dir = tempfile::tempdir().expect("dir");
    let cases = [
        ("[sync]\nschedule = \"often\"\n", "sync.schedule"),
        ("[sync]\nconcurrency = 4\nbogus = 1\n", "bogus"),
        ("[ice]\ntimeout = \"soon\"\n", "ice.timeout"),
    ];
    for (toml, key) in cases {
        let path = dir.path().join("c.toml");
        std::fs::write(&path, toml).expect("write");
        let out = ice_sync(
            &[],
            &["--config", &path.display().to_string(), "status"],
            None,
        );
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(key), "{stderr}");
    }
    let out = ice_sync(
        &[],
        &["--config", "/nonexistent/ice-sync.toml", "status"],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // An unreachable database: exit 1 naming the URL, password hidden.
    let env = vec![(
        "ICE_SYNC__DATABASE__URL".to_string(),
        "postgres://u:hunter2@127.0.0.1:1/db".to_string(),
    )];
    let out = ice_sync(&env, &["status"], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("127.0.0.1:1") && !stderr.contains("hunter2"),
        "{stderr}"
    );
}
