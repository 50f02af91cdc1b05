//! [`ChildGuard`]: a child process that cannot outlive the test (or benchmark) that started it.

use std::io;
use std::ops::{Deref, DerefMut};
use std::process::{Child, Command, Output};

/// Owns a [`Child`] and kills and reaps it when dropped, whether the owner returns,
/// fails or panics. Derefs to the `Child`, so signalling, `try_wait` and the pipes work as
/// usual; a child that already exited is only reaped.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    /// Starts `command` under a guard.
    pub fn spawn(command: &mut Command) -> io::Result<ChildGuard> {
        command.spawn().map(ChildGuard::new)
    }

    pub fn new(child: Child) -> ChildGuard {
        ChildGuard { child: Some(child) }
    }

    /// Closes stdin, waits for the exit and collects stdout and stderr, like
    /// [`Child::wait_with_output`]; the guard is spent.
    pub fn wait_with_output(mut self) -> io::Result<Output> {
        match self.child.take() {
            Some(child) => child.wait_with_output(),
            None => Err(io::Error::other("the child process was already collected")),
        }
    }
}

impl Deref for ChildGuard {
    type Target = Child;

    fn deref(&self) -> &Child {
        // Only `wait_with_output` takes the child, and it consumes the guard.
        self.child
            .as_ref()
            .expect("ChildGuard holds its child until dropped")
    }
}

impl DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("ChildGuard holds its child until dropped")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        // Only ever the process this guard started; errors mean it is already gone.
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Stdio;

    fn sleeper() -> ChildGuard {
        ChildGuard::spawn(
            Command::new("sleep")
                .arg("600")
                .stdin(Stdio::null())
                .stdout(Stdio::null()),
        )
        .expect("sleep starts")
    }

    #[test]
    fn dropping_the_guard_kills_and_reaps_the_child() {
        let guard = sleeper();
        let proc_dir = Path::new("/proc").join(guard.id().to_string());
        assert!(proc_dir.exists());
        drop(guard);
        // Reaped as well as killed: no zombie left under /proc.
        assert!(!proc_dir.exists(), "{} still exists", proc_dir.display());
    }

    #[test]
    fn a_panicking_owner_still_kills_the_child() {
        let (tx, rx) = std::sync::mpsc::channel();
        let result = std::thread::spawn(move || {
            let guard = sleeper();
            tx.send(guard.id()).expect("send pid");
            panic!("the test failed");
        })
        .join();
        assert!(result.is_err());
        let pid = rx.recv().expect("pid");
        assert!(!Path::new("/proc").join(pid.to_string()).exists());
    }

    #[test]
    fn an_exited_child_is_only_reaped() {
        let mut guard = ChildGuard::spawn(&mut Command::new("true")).expect("true starts");
        assert!(guard.wait().expect("wait").success());
        drop(guard);
    }
}
