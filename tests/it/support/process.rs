//! The built `ice-sync` binary as a subprocess: the command with exactly the given
//! environment, and spawning it (or anything else) under a [`ChildGuard`] so that no
//! process outlives a failed test.

use std::process::Command;

use ice_testkit::ChildGuard;

/// `ice-sync ARGS` with exactly `env` (plus `PATH`): nothing of the test runner's own
/// environment leaks into the daemon's configuration.
pub fn ice_sync_command(env: &[(String, String)], args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ice-sync"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().cloned());
    cmd
}

/// Starts `cmd` under a guard that kills it when dropped, or panics naming the program.
pub fn spawn_guarded(cmd: &mut Command) -> ChildGuard {
    ChildGuard::spawn(cmd).unwrap_or_else(|e| panic!("starting {:?}: {e}", cmd.get_program()))
}

/// `ice-sync ARGS` with stdout and stderr both going to the file `log`, under a guard.
pub fn spawn_logged(env: &[(String, String)], args: &[&str], log: &std::path::Path) -> ChildGuard {
    let log = std::fs::File::create(log).expect("log file");
    spawn_guarded(
        ice_sync_command(env, args)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("clone"))
            .stderr(log),
    )
}

/// Sends `sig` (`-TERM`, `-KILL`, ...) to `child` with kill(1).
pub fn signal(child: &std::process::Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill {sig} failed");
}
