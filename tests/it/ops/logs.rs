//! Log formats as operators see them: plain lines under systemd (`JOURNAL_STREAM` set:
//! no ANSI colours, no timestamp of our own since journald stamps each line), one JSON
//! object per line with `log.format = "json"`, colours on a terminal. Every cycle logs
//! one summary line; a per-project failure carries the project ID and ICE's request ID.

use std::process::{Command, Stdio};

use ice_sim::{FaultConfig, Simulator, SimulatorConfig};

use crate::ops::daemon::{describe, run_to_end};
use crate::support::{env_for, Backend, TestDatabase};

const SUMMARY_FIELDS: &[&str] = &["polled", "changed", "transitions", "failures", "duration_s"];

async fn setup(faulty: bool) -> (Simulator, TestDatabase, Vec<(String, String)>) {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("sim");
    let ids = sim.populate(8, 2).join(",");
    if faulty {
        // About half the requests fail with a 5xx; with no retries, those projects fail.
        sim.set_faults(FaultConfig {
            server_error: 0.5,
            ..Default::default()
        });
    }
    let db = TestDatabase::new(Backend::Sqlite).await;
    let env = env_for(
        &db.url,
        &sim,
        &[
            ("ICE_SYNC__SYNC__PROJECTS", &ids),
            ("ICE_SYNC__SYNC__MAX_RETRIES", "0"),
        ],
    );
    (sim, db, env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_systemd_lines_are_plain() {
    let (_sim, _db, mut env) = setup(false).await;
    env.push(("JOURNAL_STREAM".into(), "8:123456".into()));
    let out = run_to_end(&env, &["run", "--once"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.stderr.contains(&0x1b),
        "ANSI escape in journald output:\n{stderr}"
    );
    for line in stderr.lines() {
        let first = line.split_whitespace().next().unwrap_or_default();
        assert!(
            !first.starts_with("20") && !first.contains('T'),
            "a timestamp of our own (journald adds one): {line}"
        );
    }
    let summary = stderr
        .lines()
        .find(|l| l.contains("sync cycle finished"))
        .unwrap_or_else(|| panic!("no summary line:\n{stderr}"));
    for field in SUMMARY_FIELDS {
        assert!(
            summary.contains(&format!("{field}=")),
            "{field} missing: {summary}"
        );
    }
    assert!(summary.contains("polled=10"), "{summary}");
    // journald priorities (sd-daemon(3)): `journalctl -p warning` finds what it should.
    assert!(summary.starts_with("<6>"), "{summary}");
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let prefixed = ["<3>", "<4>", "<6>", "<7>"]
            .iter()
            .any(|p| line.starts_with(p));
        assert!(prefixed, "no priority prefix: {line}");
        if line.contains(" WARN ") {
            assert!(line.starts_with("<4>"), "{line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_format_gives_one_object_per_line() {
    let (_sim, _db, mut env) = setup(true).await;
    env.push(("ICE_SYNC__LOG__FORMAT".into(), "json".into()));
    let out = run_to_end(&env, &["run", "--once"]).await;
    // Some projects failed: the cycle is partial (exit 3) or, if all did, failed (1).
    assert!(
        matches!(out.status.code(), Some(1 | 3)),
        "{}",
        describe(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();

    let summaries: Vec<_> = events
        .iter()
        .filter(|e| e["message"] == "sync cycle finished")
        .collect();
    assert_eq!(summaries.len(), 1, "{stderr}");
    for field in SUMMARY_FIELDS {
        assert!(
            summaries[0][field].is_number(),
            "{field} missing: {}",
            summaries[0]
        );
    }
    assert!(
        summaries[0]["failures"].as_u64().unwrap_or(0) > 0,
        "{}",
        summaries[0]
    );

    let failure = events
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("polling failed"))
        })
        .unwrap_or_else(|| panic!("no per-project failure line:\n{stderr}"));
    let request_id = failure["request_id"].as_str().unwrap_or_default();
    assert!(!request_id.is_empty(), "no request_id: {failure}");
    // On the event itself, or on an enclosing span: both reach the log line.
    let project_id = failure["project_id"]
        .as_str()
        .or_else(|| {
            failure["spans"]
                .as_array()
                .and_then(|spans| spans.iter().find_map(|s| s["project_id"].as_str()))
        })
        .unwrap_or_default();
    assert!(!project_id.is_empty(), "no project_id: {failure}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_output_is_pretty() {
    let (_sim, _db, env) = setup(false).await;
    // `script` runs the command on a pseudo-terminal; its own output is what a user sees.
    let command = format!("{} run --once", env!("CARGO_BIN_EXE_ice-sync"));
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &command, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TERM", "xterm")
        .envs(env)
        .stdin(Stdio::null());
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("script runs (util-linux)"))
        .await
        .expect("join");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.stdout.contains(&0x1b),
        "no colours on a terminal:\n{text}"
    );
    assert!(text.contains("sync cycle finished"), "{text}");
    assert!(
        !text.trim_start().starts_with('{'),
        "JSON on a terminal:\n{text}"
    );
}
