//! The built `ice-sync` binary as a subprocess: the command with exactly the given
//! environment, and spawning it (or anything else) under a [`ChildGuard`] so that no
//! process outlives a failed test.

use std::process::Command;

use ice_sync::testkit::ChildGuard;

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
