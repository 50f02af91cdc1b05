//! Talking to systemd: `READY=1` once the daemon can do its job, `WATCHDOG=1` from the
//! scheduler loop, `STOPPING=1` when shutdown begins, and a one-line `STATUS=` for
//! `systemctl status`.
//!
//! Everything here is a no-op outside systemd (`NOTIFY_SOCKET` unset), so the daemon runs
//! the same under a terminal, in a container or in tests. This module decides *when*,
//! reads the watchdog settings the way `sd_watchdog_enabled(3)` does, and sends the
//! datagrams (formatted by the `sd-notify` crate) over one socket opened at the first
//! notification and kept: a ping never needs a new file descriptor, so a process short of
//! descriptors still tells systemd it is alive.

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sd_notify::NotifyState;

/// How often the scheduler loop may go without calling its heartbeat when no watchdog
/// asks for more: also the pace of metrics upkeep.
pub(crate) const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);

/// The watchdog interval systemd asked for, if it applies to this process.
///
/// Same rules as `sd_watchdog_enabled(3)`: `WATCHDOG_USEC` must be a positive number of
/// microseconds, and when `WATCHDOG_PID` is set it must be our PID (a child that
/// inherited the variables must not ping on its parent's behalf). `env` is injected so
/// tests need not touch the process environment.
pub(crate) fn watchdog_interval(
    env: impl Fn(&str) -> Option<String>,
    pid: u32,
) -> Option<Duration> {
    let usec: u64 = env("WATCHDOG_USEC")?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Some(owner) = env("WATCHDOG_PID") {
        if owner.trim().parse::<u32>().ok() != Some(pid) {
            return None;
        }
    }
    Some(Duration::from_micros(usec))
}

/// How often the scheduler should call its heartbeat: half the watchdog interval (so one
/// late ping does not get the service killed), never slower than `default`.
pub(crate) fn heartbeat_interval(default: Duration) -> Duration {
    match watchdog_interval(|k| std::env::var(k).ok(), std::process::id()) {
        Some(watchdog) => (watchdog / 2).clamp(Duration::from_millis(50), default),
        None => default,
    }
}

/// Sends notifications when systemd listens; silent otherwise.
#[derive(Debug, Clone)]
pub(crate) struct Notifier {
    enabled: bool,
    watchdog: Option<Duration>,
    socket: Arc<Mutex<Option<UnixDatagram>>>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` once, at start-up.
    pub(crate) fn from_env() -> Self {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty());
        let watchdog = watchdog_interval(|k| std::env::var(k).ok(), std::process::id());
        if enabled {
            tracing::debug!(?watchdog, "systemd notification socket found");
        }
        Self {
            enabled,
            watchdog,
            socket: Arc::default(),
        }
    }

    pub(crate) fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// The store is migrated and the first connection worked: start-up is over.
    pub(crate) fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// The loop is alive.
    pub(crate) fn ping(&self) {
        if self.watchdog.is_some() {
            self.send(&[NotifyState::Watchdog]);
        }
    }

    /// Shutdown has begun; systemd waits for the exit instead of declaring a hang.
    pub(crate) fn stopping(&self) {
        self.send(&[
            NotifyState::Stopping,
            NotifyState::Status("stopping: letting in-flight projects commit"),
        ]);
    }

    /// A reload begins (sd_notify(3): `RELOADING=1` with the monotonic time); systemd
    /// shows the unit as reloading until [`Notifier::reloaded`].
    pub(crate) fn reloading(&self) {
        self.send(&[
            NotifyState::Reloading,
            NotifyState::MonotonicUsec(monotonic_usec()),
            NotifyState::Status("reloading the configuration"),
        ]);
    }

    /// A reload ended, applied or refused: `READY=1` again, with the outcome as status.
    pub(crate) fn reloaded(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub(crate) fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    fn send(&self, states: &[NotifyState]) {
        if !self.enabled {
            return;
        }
        let mut message = String::new();
        for state in states {
            message.push_str(&state.to_string());
            message.push('\n');
        }
        let mut socket = self.socket.lock().unwrap_or_else(|p| p.into_inner());
        let result = match &*socket {
            Some(open) => open.send(message.as_bytes()).map(drop),
            None => connect().and_then(|open| {
                let sent = open.send(message.as_bytes()).map(drop);
                *socket = Some(open);
                sent
            }),
        };
        if let Err(e) = result {
            // Reconnect next time (systemd may have re-created its socket). systemd will
            // notice a missing READY or WATCHDOG by itself; say why here.
            *socket = None;
            tracing::warn!("could not notify systemd through NOTIFY_SOCKET: {e}");
        }
    }
}

/// A datagram socket connected to `NOTIFY_SOCKET`: a path, or `@name` for Linux's
/// abstract namespace.
fn connect() -> std::io::Result<UnixDatagram> {
    let target = std::env::var_os("NOTIFY_SOCKET")
        .ok_or_else(|| std::io::Error::other("NOTIFY_SOCKET is not set"))?;
    let socket = UnixDatagram::unbound()?;
    let bytes = target.as_encoded_bytes();
    match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.connect_addr(&addr)?;
        }
        None => socket.connect(&target)?,
    }
    Ok(socket)
}

/// `CLOCK_MONOTONIC` in microseconds, the clock systemd compares `MONOTONIC_USEC` with.
fn monotonic_usec() -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    i128::from(ts.tv_sec) * 1_000_000 + i128::from(ts.tv_nsec) / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn watchdog_follows_sd_watchdog_enabled() {
        let us = 4242;
        assert_eq!(watchdog_interval(env(&[]), us), None);
        assert_eq!(
            watchdog_interval(env(&[("WATCHDOG_USEC", "2000000")]), us),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            watchdog_interval(
                env(&[("WATCHDOG_USEC", "2000000"), ("WATCHDOG_PID", "4242")]),
                us
            ),
            Some(Duration::from_secs(2))
        );
        // Inherited from a parent: not ours to ping.
        assert_eq!(
            watchdog_interval(
                env(&[("WATCHDOG_USEC", "2000000"), ("WATCHDOG_PID", "1")]),
                us
            ),
            None
        );
        assert_eq!(watchdog_interval(env(&[("WATCHDOG_USEC", "0")]), us), None);
        assert_eq!(
            watchdog_interval(env(&[("WATCHDOG_USEC", "soon")]), us),
            None
        );
    }
}
