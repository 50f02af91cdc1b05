//! What `ice-sync run` validates before it touches the database, as a list of checks
//! that `ice-sync check` runs too: so `check` predicts `run`, with the same message.
//!
//! Each entry of [`CHECKS`] looks at the settings and the environment only (files,
//! directories, ports): no database, no network, so `check --offline` runs them all.
//! `run` turns any failure into exit 2 (see [`refuse_start`]): a restart cannot fix a
//! missing file or a port in use, and the unit's `RestartPreventExitStatus=2` stops the
//! restart loop. Append new checks to [`CHECKS`].

use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use crate::check::Level;
use crate::config::{DatabaseKind, Settings};

/// One result: which check, how bad, and what to do.
#[derive(Debug, Clone)]
pub(crate) struct Finding {
    pub(crate) what: &'static str,
    pub(crate) level: Level,
    pub(crate) detail: String,
}

impl Finding {
    fn fail(what: &'static str, detail: impl Into<String>) -> Self {
        Self {
            what,
            level: Level::Fail,
            detail: detail.into(),
        }
    }
}

/// What a check reads besides the settings: the process environment (tests pass their
/// own) and who asks.
pub(crate) struct Context<'a> {
    pub(crate) env: &'a dyn Fn(&str) -> Option<String>,
    pub(crate) caller: Caller,
}

/// Who runs the checks, which decides what a listen port in use means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    /// `run`: the daemon binds its ports; one in use is fatal.
    Daemon,
    /// `run --once` serves nothing: its ports do not matter.
    Once,
    /// `check`: predicts the daemon, except that a port held by a running ice-sync
    /// daemon (it recorded itself, see `cli::daemon_db`) is that daemon's own.
    Check,
}

pub(crate) type Check = fn(&Settings, &Context<'_>) -> Vec<Finding>;

/// Every offline check, in the order they are reported.
pub(crate) const CHECKS: &[Check] = &[
    secret_files,
    listen_addresses,
    sqlite_location,
    config_sizing,
];

/// Runs every check in [`CHECKS`].
pub(crate) fn run_all(settings: &Settings, cx: &Context<'_>) -> Vec<Finding> {
    CHECKS
        .iter()
        .flat_map(|check| check(settings, cx))
        .collect()
}

/// For `run`: the failures as one error with exit code 2, or `Ok` (warnings are logged).
pub(crate) fn refuse_start(settings: &Settings, once: bool) -> anyhow::Result<()> {
    let env = |k: &str| std::env::var(k).ok();
    let cx = Context {
        env: &env,
        caller: if once { Caller::Once } else { Caller::Daemon },
    };
    let findings = run_all(settings, &cx);
    let failed: Vec<String> = findings
        .iter()
        .filter(|f| f.level == Level::Fail)
        .map(|f| f.detail.clone())
        .collect();
    for f in findings.iter().filter(|f| f.level == Level::Warn) {
        tracing::warn!(check = f.what, "{}", f.detail);
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(crate::cli::Exit {
        code: 2,
        message: format!(
            "{} (a restart cannot fix this; `ice-sync check` shows every problem at once)",
            failed.join("; ")
        ),
    }
    .into())
}

/// The secret files start-up reads: each must exist and be readable by this user.
fn secret_files(s: &Settings, cx: &Context<'_>) -> Vec<Finding> {
    let mut found = Vec::new();
    if s.callback.listen.is_some() {
        if let Err(e) = crate::callback::KeyRing::resolve(&s.callback, cx.env) {
            found.push(Finding::fail("callback", format!("{e:#}")));
        }
    }
    if let Err(e) = crate::feed::Webhook::resolve(&s.webhook, cx.env) {
        found.push(Finding::fail("webhook", format!("{e:#}")));
    }
    if s.metrics.listen.is_some() {
        if let Some(path) = crate::refresh::token::token_path(&s.metrics, cx.env) {
            if let Err(e) = crate::credentials::read_secret(&path) {
                found.push(Finding::fail(
                    "metrics",
                    format!(
                        "{e:#}: POST /refresh needs a bearer token there (metrics.refresh_token_file); \
                         fix the file or remove the setting"
                    ),
                ));
            }
        }
    }
    if let Some(path) = &s.ice.credentials.access_key_secret_file {
        if let Err(e) = crate::credentials::read_secret(path) {
            found.push(Finding::fail(
                "credentials",
                format!("ice.access_key_secret_file: {e:#}"),
            ));
        }
    }
    found
}

/// `metrics.listen` and `callback.listen` can be bound (probed and released).
fn listen_addresses(s: &Settings, cx: &Context<'_>) -> Vec<Finding> {
    let mut found = Vec::new();
    for (key, addr) in [
        ("metrics.listen", s.metrics.listen),
        ("callback.listen", s.callback.listen),
    ] {
        let Some(addr) = addr else { continue };
        let daemon = match cx.caller {
            Caller::Once => continue,
            Caller::Daemon => None,
            Caller::Check => crate::cli::daemon_db::live_daemon(cx.env),
        };
        if let Some(f) = probe_listen(key, addr, daemon) {
            found.push(f);
        }
    }
    found
}

/// `daemon`: the process ID of a running ice-sync daemon (for `check` only), whose port
/// a port in use most likely is.
fn probe_listen(key: &'static str, addr: SocketAddr, daemon: Option<u32>) -> Option<Finding> {
    let e = TcpListener::bind(addr).err()?;
    let in_use = e.kind() == std::io::ErrorKind::AddrInUse;
    let detail =
        format!("cannot listen on {key} = {addr}: {e}; pick a free address or stop what holds it");
    if let (true, Some(pid)) = (in_use, daemon) {
        return Some(Finding {
            what: "listen",
            level: Level::Warn,
            detail: format!(
                "{detail} (fine if that is the running ice-sync daemon, pid {pid}, this \
                 configuration's)"
            ),
        });
    }
    Some(Finding::fail("listen", detail))
}

/// A SQLite file: its directory exists and this user may create the file (and its
/// `-wal`, `-shm` and `.lock` companions) there; a file that does not exist yet needs
/// `?mode=rwc` in the URL.
fn sqlite_location(s: &Settings, _: &Context<'_>) -> Vec<Finding> {
    if s.database.kind != DatabaseKind::Sqlite {
        return Vec::new();
    }
    let url = s.database.url.expose_secret();
    let Some(file) = crate::storage::sqlite_file(url) else {
        return Vec::new();
    };
    let file = Path::new(&file);
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fail = |why: String| vec![Finding::fail("sqlite", why)];
    if !dir.is_dir() {
        return fail(format!(
            "database.url names {}, but the directory {} does not exist: create it, owned by \
             the service's user (under systemd, StateDirectory=ice-sync creates /var/lib/ice-sync)",
            file.display(),
            dir.display()
        ));
    }
    if !writable(dir) {
        return fail(format!(
            "database.url names {}, but this user cannot create files in {} (SQLite writes \
             -wal, -shm and .lock files beside the database): give the service's user write access",
            file.display(),
            dir.display()
        ));
    }
    if !file.exists() && !url.contains("mode=rwc") {
        return fail(format!(
            "database.url names {}, which does not exist, and the URL lacks ?mode=rwc: add \
             ?mode=rwc so the daemon creates it",
            file.display()
        ));
    }
    Vec::new()
}

/// `access(2)` for write: permission as the kernel will judge it for this process.
fn writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

/// Sizing from the config alone (`sync.projects`); `check` repeats it with the
/// database's count of tracked projects.
fn config_sizing(s: &Settings, _: &Context<'_>) -> Vec<Finding> {
    sizing(s, s.sync.projects.len() as u64)
        .into_iter()
        .collect()
}

/// Whether `projects` polls fit in one period of `sync.schedule` at `sync.max_qps`:
/// the numbers, and what to change when they do not.
pub(crate) fn sizing(s: &Settings, projects: u64) -> Option<Finding> {
    let qps = u64::from(s.sync.max_qps.map_or(0, |q| q.get()));
    let period = s.sync.schedule.period().as_secs().max(1);
    if qps == 0 || projects == 0 {
        return None;
    }
    let capacity = qps * period;
    (projects > capacity).then(|| Finding {
        what: "sizing",
        level: Level::Warn,
        detail: format!(
            "{projects} project(s) at sync.max_qps = {qps} need at least {}s per cycle, but \
             sync.schedule ticks every {period}s (at most {capacity} polls per tick): cycles \
             will overrun; raise sync.max_qps if your ICE quota allows, or use a longer schedule",
            projects.div_ceil(qps)
        ),
    })
}
