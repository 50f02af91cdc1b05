//! The shipped unit: `systemd-analyze verify` is clean and `systemd-analyze security`
//! rates its exposure 2.0 or lower.
//!
//! `verify` insists that `ExecStart=` names an existing executable. The unit names the
//! install location, `/usr/bin/ice-sync`, which does not exist on a build machine,
//! so the test verifies a copy whose `ExecStart=` points at the binary under test;
//! nothing else is changed.

use std::path::{Path, PathBuf};
use std::process::Command;

const INSTALLED_PATH: &str = "/usr/bin/ice-sync";

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/ice-sync.service")
}

fn systemd_analyze(args: &[&str]) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        // No pager, no colours, no attempt to talk to a running systemd.
        .env("SYSTEMD_PAGER", "")
        .env("SYSTEMD_COLORS", "0")
        .output()
        .unwrap_or_else(|e| {
            panic!("systemd-analyze is needed for this test ({e}); install the Debian package `systemd` (.ci/run does)")
        })
}

#[test]
fn unit_verifies_cleanly() {
    let unit = std::fs::read_to_string(unit_path()).expect("systemd/ice-sync.service");
    let exec_start = format!("ExecStart={INSTALLED_PATH} run --config /etc/ice-sync/config.toml");
    assert!(
        unit.contains(&exec_start),
        "the unit should start {exec_start}"
    );
    let dir = tempfile::tempdir().expect("dir");
    let copy = dir.path().join("ice-sync.service");
    std::fs::write(
        &copy,
        unit.replace(INSTALLED_PATH, env!("CARGO_BIN_EXE_ice-sync")),
    )
    .expect("write copy");

    let out = systemd_analyze(&["verify", &copy.display().to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.trim().is_empty() && stderr.trim().is_empty(),
        "systemd-analyze verify is not clean (exit {:?}):\n{stdout}{stderr}",
        out.status.code()
    );
}

#[test]
fn exposure_is_two_or_lower() {
    let unit = unit_path().display().to_string();
    let out = systemd_analyze(&["security", "--offline=true", &unit]);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{text}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the score in {line:?}"));
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{text}");
}

#[test]
fn the_unit_and_the_examples_agree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(unit_path()).expect("unit");
    for needle in [
        "Type=notify",
        "WatchdogSec=",
        "DynamicUser=yes",
        "StateDirectory=ice-sync",
        "EnvironmentFile=-/etc/ice-sync/credentials.env",
        "LoadCredential=access_key_id:",
        "LoadCredential=access_key_secret:",
        "Restart=on-failure",
    ] {
        assert!(unit.contains(needle), "the unit lacks {needle}");
    }
    let env_example = std::fs::read_to_string(root.join("systemd/credentials.env.example"))
        .expect("credentials.env.example");
    for key in [
        "ALIBABA_CLOUD_ACCESS_KEY_ID=",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET=",
    ] {
        assert!(
            env_example.lines().any(|l| l.starts_with(key)),
            "credentials.env.example lacks {key}"
        );
    }
}
