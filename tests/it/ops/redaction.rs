//! A database password never reaches the terminal: the real binary, pointed at a closed
//! port with a password both in the URL's userinfo and in its query string (which sqlx
//! also accepts), fails with a non-zero exit code and prints neither secret, from
//! `check`, `migrate` and `run --once`.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const URL: &str = "postgres://u:pw1secret@127.0.0.1:1/db?password=pw2secret";
const SECRETS: [&str; 2] = ["pw1secret", "pw2secret"];
const LIMIT: Duration = Duration::from_secs(60);

/// Kills the child when the test ends, also when it panics.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Finished {
    code: Option<i32>,
    output: String,
}

fn run(args: &[&str]) -> Finished {
    let child = Command::new(env!("CARGO_BIN_EXE_ice-sync"))
        .args(args)
        .env("ICE_SYNC__DATABASE__URL", URL)
        .env("ICE_SYNC_CONFIG", "")
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAItest")
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "test-secret-not-checked")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ice-sync");
    let mut guard = ChildGuard(child);
    let readers: Vec<_> = [
        guard
            .0
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        guard
            .0
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    })
    .collect();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = guard.0.try_wait().expect("wait for ice-sync") {
            break status;
        }
        assert!(
            started.elapsed() < LIMIT,
            "ice-sync {args:?} still running after {LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = readers
        .into_iter()
        .map(|r| r.join().expect("pipe reader"))
        .collect::<Vec<_>>()
        .join("\n");
    Finished {
        code: status.code(),
        output,
    }
}

#[test]
fn failed_connections_never_print_the_database_password() {
    const COMMANDS: [&[&str]; 3] = [&["check"], &["migrate"], &["run", "--once"]];
    // In parallel: `migrate` and `run` wait out the pool's connect timeout.
    let runs: Vec<_> = COMMANDS
        .into_iter()
        .map(|args| std::thread::spawn(move || (args, run(args))))
        .collect();
    for handle in runs {
        let (args, done) = handle.join().expect("command thread");
        for secret in SECRETS {
            assert!(
                !done.output.contains(secret),
                "ice-sync {args:?} printed {secret}:\n{}",
                done.output
            );
        }
        assert!(
            done.code.is_some_and(|c| c != 0),
            "ice-sync {args:?} exited {:?}:\n{}",
            done.code,
            done.output
        );
        // The failure still says which database it could not reach.
        assert!(
            done.output.contains("127.0.0.1:1"),
            "ice-sync {args:?} does not name the database:\n{}",
            done.output
        );
    }
}
