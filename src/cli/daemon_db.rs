//! Which database the running daemon uses, so a command pointed elsewhere says so
//! instead of silently reading (or tracking into) another database.
//!
//! `ice-sync run` writes `database` in its runtime directory (`$RUNTIME_DIRECTORY`,
//! which the unit's `RuntimeDirectory=ice-sync` makes `/run/ice-sync`): the URL with any
//! password masked, a SQLite path made absolute, and its process ID. A command reads
//! that file and compares it with the URL it resolved itself. No secret is written.

use std::path::{Path, PathBuf};

use crate::config::{DatabaseKind, DatabaseSettings};

/// Where the unit's runtime directory is when this process is not the daemon.
const SYSTEM_RUNTIME_DIR: &str = "/run/ice-sync";
const FILE_NAME: &str = "database";

/// The database as compared: redacted URL, SQLite paths absolute.
pub(crate) fn identity(db: &DatabaseSettings) -> String {
    if db.kind == DatabaseKind::Sqlite {
        if let Some(path) = crate::storage::sqlite_file(db.url.expose_secret()) {
            let path = PathBuf::from(path);
            let absolute = std::path::absolute(&path).unwrap_or(path);
            return format!("sqlite://{}", absolute.display());
        }
    }
    db.url.to_string()
}

fn runtime_dir(env: impl Fn(&str) -> Option<String>) -> PathBuf {
    env("RUNTIME_DIRECTORY")
        // systemd may list several, separated by ':'; ours is the first.
        .and_then(|d| d.split(':').next().map(PathBuf::from))
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from(SYSTEM_RUNTIME_DIR))
}

/// Called by `ice-sync run` once it is ready: best effort (no runtime directory outside
/// systemd is normal), removed again by [`Recorded`]'s drop.
pub(crate) fn record(db: &DatabaseSettings) -> Option<Recorded> {
    let dir = std::env::var("RUNTIME_DIRECTORY").ok()?;
    let path = runtime_dir(|_| Some(dir.clone())).join(FILE_NAME);
    let text = format!("{}\n{}\n", identity(db), std::process::id());
    std::fs::write(&path, text).ok()?;
    Some(Recorded { path })
}

/// The daemon's record; removed when the daemon stops.
pub(crate) struct Recorded {
    path: PathBuf,
}

impl Drop for Recorded {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A warning when a live daemon recorded a database other than `db`.
pub(crate) fn mismatch(
    db: &DatabaseSettings,
    env: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let path = runtime_dir(env).join(FILE_NAME);
    mismatch_in(&path, db)
}

/// The process ID of a live daemon that recorded itself, if any (`check` then expects
/// its listen ports to be taken).
pub(crate) fn live_daemon(env: impl Fn(&str) -> Option<String>) -> Option<u32> {
    live_record(&runtime_dir(env).join(FILE_NAME)).map(|(_, pid)| pid)
}

/// The record's database and process ID, when that process still lives.
fn live_record(path: &Path) -> Option<(String, u32)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let theirs = lines.next()?.trim().to_string();
    let pid: u32 = lines.next()?.trim().parse().ok()?;
    // A record left by a daemon that died without cleaning up says nothing.
    Path::new(&format!("/proc/{pid}"))
        .exists()
        .then_some((theirs, pid))
}

fn mismatch_in(path: &Path, db: &DatabaseSettings) -> Option<String> {
    let (theirs, pid) = live_record(path)?;
    let ours = identity(db);
    (theirs != ours).then(|| {
        format!(
            "the running ice-sync daemon (pid {pid}) uses {theirs}, but this command uses {ours}: \
             it reads another database. Give both the same configuration (docs/operations.md, \
             \"One database for every command\")"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(url: &str) -> DatabaseSettings {
        DatabaseSettings {
            url: url.to_string().into(),
            kind: DatabaseKind::Sqlite,
            max_connections: 1,
            postgres: Default::default(),
        }
    }

    #[test]
    fn a_live_daemon_on_another_database_is_named() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(FILE_NAME);
        let pid = std::process::id();
        std::fs::write(&path, format!("postgres://u:***@db/ice\n{pid}\n")).expect("write");
        let text = mismatch_in(&path, &sqlite("sqlite:///var/lib/x.db?mode=rwc"))
            .expect("a different database is reported");
        assert!(text.contains("postgres://u:***@db/ice") && text.contains("/var/lib/x.db"));
        std::fs::write(&path, format!("sqlite:///var/lib/x.db\n{pid}\n")).expect("write");
        assert_eq!(
            mismatch_in(&path, &sqlite("sqlite:///var/lib/x.db?mode=rwc")),
            None
        );
        // Dead daemon: silent.
        std::fs::write(&path, "postgres://db/ice\n4294967295\n").expect("write");
        assert_eq!(mismatch_in(&path, &sqlite("sqlite:///var/lib/x.db")), None);
    }
}
