//! The outcome of a reload, for `ice-sync reload` (the unit's `ExecReload=`): the daemon
//! records each reload in `reload` in its runtime directory (`$RUNTIME_DIRECTORY`,
//! `/run/ice-sync` under the unit); the command signals the daemon, waits for the record
//! of the reload its signal started, prints it and exits 1 when the configuration was
//! refused, so `systemctl reload` fails then. systemd 252 (Debian 12) has no
//! `Type=notify-reload`, and a `kill -HUP` always succeeds.
//!
//! The record is one line, `PID GENERATION STATE`, then the message: STATE is
//! `reloading` while a reload runs, then `applied` or `refused`. It is replaced whole
//! (write, then rename), so a reader never sees half of it. It appears only once the
//! SIGHUP handler is installed: signalling earlier would kill the daemon.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const FILE_NAME: &str = "reload";
/// Where the unit's runtime directory is when `$RUNTIME_DIRECTORY` is not set.
const SYSTEM_RUNTIME_DIR: &str = "/run/ice-sync";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Applied,
    Refused,
}

impl Outcome {
    /// The `outcome` label of `ice_sync_reloads_total` and the record's STATE.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Refused => "refused",
        }
    }
}

fn runtime_dir(env: impl Fn(&str) -> Option<String>) -> PathBuf {
    env("RUNTIME_DIRECTORY")
        // systemd may list several, separated by ':'; ours is the first.
        .and_then(|d| d.split(':').next().map(PathBuf::from))
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from(SYSTEM_RUNTIME_DIR))
}

/// The daemon's side: its record, removed when the daemon stops.
pub(crate) struct OutcomeFile {
    path: PathBuf,
    generation: u64,
}

impl OutcomeFile {
    /// Only under a runtime directory (the unit's); elsewhere nothing is recorded.
    pub(crate) fn from_env() -> Option<OutcomeFile> {
        let dir = std::env::var("RUNTIME_DIRECTORY").ok()?;
        let path = runtime_dir(|_| Some(dir.clone())).join(FILE_NAME);
        let file = OutcomeFile {
            path,
            generation: 0,
        };
        file.write("ready", "no reload yet").then_some(file)
    }

    pub(crate) fn started(&mut self) {
        self.generation += 1;
        self.write("reloading", "");
    }

    pub(crate) fn finished(&mut self, outcome: Outcome, message: &str) {
        self.write(outcome.as_str(), message);
    }

    fn write(&self, state: &str, message: &str) -> bool {
        let text = format!(
            "{} {} {state}\n{}\n",
            std::process::id(),
            self.generation,
            crate::config::settings::one_line(message)
        );
        let tmp = self.path.with_extension("tmp");
        let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = &written {
            tracing::warn!(
                "cannot record the reload outcome in {}: {e}; `ice-sync reload` will time out",
                self.path.display()
            );
        }
        written.is_ok()
    }
}

impl Drop for OutcomeFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One reading of the record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    pid: u32,
    generation: u64,
    state: String,
    message: String,
}

fn read(path: &Path) -> Option<Record> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let mut head = lines.next()?.split(' ');
    let pid = head.next()?.parse().ok()?;
    let generation = head.next()?.parse().ok()?;
    let state = head.next()?.to_string();
    let message = lines.next().unwrap_or_default().to_string();
    Some(Record {
        pid,
        generation,
        state,
        message,
    })
}

/// `ice-sync reload --pid PID`: SIGHUP to the daemon, then its verdict. `Ok(message)`
/// when the new configuration was applied, `Err` (with the daemon's reason) when it was
/// refused or no verdict came within `timeout`.
pub(crate) async fn signal_and_wait(pid: u32, timeout: Duration) -> anyhow::Result<String> {
    let path = runtime_dir(|k| std::env::var(k).ok()).join(FILE_NAME);
    let deadline = Instant::now() + timeout;
    // The daemon's own record, with no reload running: the one our signal starts comes next.
    let before = wait_for(&path, deadline, |r| r.pid == pid && r.state != "reloading")
        .await
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no reload record of process {pid} in {} within {timeout:?}: is it an ice-sync \
                 daemon under systemd (RuntimeDirectory=), still starting?",
                path.display()
            )
        })?;
    send_sighup(pid)?;
    let after = wait_for(&path, deadline, |r| {
        r.pid == pid && r.generation > before.generation && r.state != "reloading"
    })
    .await
    .ok_or_else(|| {
        anyhow::anyhow!(
            "process {pid} did not finish reloading within {timeout:?}; see its log \
             (`journalctl -u ice-sync`)"
        )
    })?;
    match after.state.as_str() {
        "applied" => Ok(after.message),
        _ => Err(anyhow::anyhow!(
            "the configuration was refused and the running one stays: {}",
            after.message
        )),
    }
}

async fn wait_for(
    path: &Path,
    deadline: Instant,
    done: impl Fn(&Record) -> bool,
) -> Option<Record> {
    loop {
        if let Some(record) = read(path).filter(|r| done(r)) {
            return Some(record);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(unix)]
fn send_sighup(pid: u32) -> anyhow::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| anyhow::anyhow!("--pid {pid} is not a process ID"))?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid, libc::SIGHUP) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        anyhow::bail!("cannot send SIGHUP to process {pid}: {e}");
    }
    Ok(())
}

#[cfg(not(unix))]
fn send_sighup(_pid: u32) -> anyhow::Result<()> {
    anyhow::bail!("reloading needs SIGHUP, which this platform does not have")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_read_back_whole() {
        let dir = tempfile::tempdir().expect("dir");
        let mut file = OutcomeFile {
            path: dir.path().join(FILE_NAME),
            generation: 0,
        };
        assert!(file.write("ready", "no reload yet"));
        file.started();
        let r = read(&file.path).expect("record");
        assert_eq!((r.generation, r.state.as_str()), (1, "reloading"));
        file.finished(Outcome::Refused, "sync.schedule = \"x\"\nis not cron");
        let r = read(&file.path).expect("record");
        assert_eq!(r.pid, std::process::id());
        assert_eq!((r.generation, r.state.as_str()), (1, "refused"));
        assert_eq!(r.message, "sync.schedule = \"x\" is not cron");
        let path = file.path.clone();
        drop(file);
        assert!(!path.exists(), "the record outlived the daemon");
    }
}
