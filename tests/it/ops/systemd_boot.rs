//! ice-sync under a real systemd: boots systemd as PID 1 in `systemd-nspawn` on a cached
//! minimal Debian tree, installs the Debian package built from this checkout (the binary
//! under test and the repository's own `systemd/ice-sync.service`, unchanged), points it at
//! the simulator on the host's loopback (the container shares the host network) and checks
//! through `systemctl`/`journalctl` inside the container what an operator relies on:
//! nothing enabled or started by the package, READY and status text, the watchdog, a
//! clean stop within `TimeoutStopSec`, a restart after SIGKILL, no restart after a config
//! error, the SQLite file in the `DynamicUser` state directory, the AccessKey delivered by
//! `LoadCredential=`, the per-cycle journal line, and `systemctl reload` (which fails when
//! the daemon refuses the new configuration).
//!
//! The only change to the unit is the drop-in that `systemd/ice-sync.service` itself tells
//! operators to add for `LoadCredential=`.
//!
//! Needs root, `systemd-nspawn`, `nsenter`, `cargo-deb` and the Debian tree:
//! `scripts/systemd/prepare` installs and builds all of them (once; later runs reuse them).
//! Missing pieces fail the test with that instruction; nothing is skipped.
//! Environment: `ICE_SYNC_TEST_CACHE` (default `/var/cache/ice-sync-test`) and
//! `ICE_SYNC_TEST_SUITE` (default: the host's Debian suite), the same as the script.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ice_sim::{Simulator, SimulatorConfig};

const UNIT: &str = "ice-sync.service";
/// Where the container sees the test's input files (read-only bind mount).
const INPUT: &str = "/mnt/ice-sync-test";
const PROJECTS: usize = 3;
/// The daemon pings the watchdog at least this often (`ops::notify::DEFAULT_HEARTBEAT`).
const HEARTBEAT: Duration = Duration::from_secs(5);

fn prepare_hint() -> &'static str {
    "run `scripts/systemd/prepare` as root first: it installs debootstrap, systemd-container \
     and cargo-deb and builds the cached Debian tree"
}

fn cache_dir() -> PathBuf {
    std::env::var_os("ICE_SYNC_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/ice-sync-test"))
}

/// Same choice as `scripts/systemd/prepare`: the host's Debian suite, else bookworm.
fn suite() -> String {
    if let Ok(suite) = std::env::var("ICE_SYNC_TEST_SUITE") {
        if !suite.is_empty() {
            return suite;
        }
    }
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |name: &str| {
        os_release
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .map(|v| v.trim_matches('"').to_string())
    };
    match (field("ID").as_deref(), field("VERSION_CODENAME")) {
        (Some("debian"), Some(codename)) if !codename.is_empty() => codename,
        _ => "bookworm".to_string(),
    }
}

fn describe(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Fails loudly, with the way out, when something the test needs is missing.
fn require_prerequisites(tree: &Path) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("?");
    assert_eq!(
        uid, "0",
        "the systemd boot test needs root (systemd-nspawn, nsenter)"
    );
    for (tool, package) in [
        ("systemd-nspawn", "systemd-container"),
        ("nsenter", "util-linux"),
        ("timeout", "coreutils"),
    ] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "`{tool}` is missing: install the Debian package {package}, or {}",
            prepare_hint()
        );
    }
    let cargo_deb = Command::new(cargo())
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        cargo_deb,
        "cargo-deb is missing: `cargo install cargo-deb --locked`, or {}",
        prepare_hint()
    );
    assert!(
        tree.join(".ice-sync-tree-ready").exists(),
        "no Debian tree at {}: {}",
        tree.display(),
        prepare_hint()
    );
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// Packages the binary under test (the one `cargo test` built) with `cargo deb --no-build`,
/// into `out`. The profile follows the binary's directory: `target/debug` is `dev`.
fn build_deb(out: &Path) -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_ice-sync"));
    let profile_dir = exe.parent().expect("the binary has a directory");
    let target_dir = profile_dir.parent().expect("the profile has a target dir");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_string(),
        Some(other) => other.to_string(),
        None => panic!("cannot tell the cargo profile of {}", exe.display()),
    };
    // The man page and completions the package lists, beside the binary.
    let assets = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/package-assets"
    ))
    .arg(&exe)
    .output()
    .expect("scripts/package-assets runs");
    assert!(assets.status.success(), "{}", describe(&assets));
    let output = Command::new(cargo())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TARGET_DIR", target_dir)
        .args([
            "deb",
            "--no-build",
            "--fast",
            "--profile",
            &profile,
            "--output",
        ])
        .arg(out)
        .output()
        .expect("cargo deb runs");
    assert!(
        output.status.success(),
        "cargo deb failed: {}",
        describe(&output)
    );
    let debs: Vec<PathBuf> = std::fs::read_dir(out)
        .expect("the .deb directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    assert_eq!(
        debs.len(),
        1,
        "expected one .deb in {}: {debs:?}",
        out.display()
    );
    debs.into_iter().next().expect("one .deb")
}

/// A booted container. Dropping it powers the container off (SIGTERM to nspawn makes
/// systemd halt), then kills what is left; after a failed test it first prints the unit's
/// journal and the console log.
struct Container {
    nspawn: Child,
    leader: u32,
    console_log: PathBuf,
}

impl Container {
    fn boot(tree: &Path, name: &str, input: &Path, console_log: PathBuf) -> Container {
        let log = std::fs::File::create(&console_log).expect("console log file");
        let nspawn = Command::new("systemd-nspawn")
            .arg("--quiet")
            .arg(format!("--directory={}", tree.display()))
            .arg(format!("--machine={name}"))
            .arg("--boot")
            // No systemd on the host to register with or to ask for a scope unit: the
            // container stays in this process's cgroup.
            .arg("--register=no")
            .arg("--keep-unit")
            // The cached tree stays read-only; every write goes to a tmpfs overlay.
            .arg("--volatile=overlay")
            .arg(format!("--bind-ro={}:{INPUT}", input.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start systemd-nspawn: {e}; {}", prepare_hint()));
        let mut container = Container {
            leader: 0,
            nspawn,
            console_log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        container.leader = loop {
            if let Ok(Some(status)) = container.nspawn.try_wait() {
                panic!(
                    "systemd-nspawn exited at once ({status}):\n{}",
                    container.console()
                );
            }
            if let Some(pid) = find_descendant(container.nspawn.id(), "systemd") {
                break pid;
            }
            assert!(
                Instant::now() < deadline,
                "systemd did not start in the container within 30 s:\n{}",
                container.console()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        container
    }

    /// Waits for `systemctl is-system-running` to say "running" (or "degraded": some unit
    /// of the minimal tree failed, which does not concern ice-sync; they are listed).
    /// Early on, systemctl cannot even reach PID 1 yet: that is retried too.
    fn wait_until_booted(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let out = self.exec(
                Duration::from_secs(30),
                &["systemctl", "is-system-running", "--wait"],
            );
            let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if state == "running" {
                return;
            }
            if state == "degraded" {
                let failed = self.exec(
                    Duration::from_secs(30),
                    &["systemctl", "--failed", "--no-pager"],
                );
                eprintln!(
                    "container booted degraded:\n{}",
                    String::from_utf8_lossy(&failed.stdout)
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the container's systemd did not finish booting within {limit:?}: {}",
                describe(&out)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn console(&self) -> String {
        std::fs::read_to_string(&self.console_log).unwrap_or_default()
    }

    /// Runs a command inside the container (all of PID 1's namespaces), killed after `limit`.
    fn exec(&self, limit: Duration, args: &[&str]) -> Output {
        Command::new("timeout")
            .args(["--kill-after=5", &format!("{}", limit.as_secs().max(1))])
            .args([
                "nsenter",
                "--target",
                &self.leader.to_string(),
                "--all",
                "--",
            ])
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C.UTF-8")
            .env("SYSTEMD_PAGER", "")
            .env("SYSTEMD_COLORS", "0")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .expect("nsenter runs")
    }

    /// `exec` that must succeed; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.exec(Duration::from_secs(120), args);
        assert!(
            out.status.success(),
            "{args:?} in the container: {}",
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn sh(&self, script: &str) -> String {
        self.ok(&["sh", "-euc", script])
    }

    /// One property of the unit (`systemctl show --value`).
    fn prop(&self, name: &str) -> String {
        self.ok(&["systemctl", "show", "--value", "-p", name, UNIT])
            .trim()
            .to_string()
    }

    fn duration_prop(&self, name: &str) -> Duration {
        let value = self.prop(name);
        humantime::parse_duration(&value)
            .unwrap_or_else(|e| panic!("{name}={value:?} is not a duration: {e}"))
    }

    fn journal(&self) -> String {
        self.ok(&[
            "journalctl",
            "--unit",
            UNIT,
            "--no-pager",
            "--output",
            "cat",
        ])
    }

    /// Polls until `check` holds; panics with `what` and the unit's state after `limit`.
    fn wait_for(&self, what: &str, limit: Duration, mut check: impl FnMut(&Container) -> bool) {
        let deadline = Instant::now() + limit;
        while !check(self) {
            assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what}; unit: {}",
                self.state()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn state(&self) -> String {
        self.ok(&[
            "systemctl",
            "show",
            "-p",
            "ActiveState,SubState,Result,MainPID,NRestarts,ExecMainStatus,StatusText",
            UNIT,
        ])
        .replace('\n', " ")
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() && self.leader != 0 {
            let journal = self.exec(
                Duration::from_secs(20),
                &["journalctl", "--unit", UNIT, "--no-pager", "--lines", "80"],
            );
            eprintln!(
                "--- journal of {UNIT} in the container ---\n{}",
                String::from_utf8_lossy(&journal.stdout)
            );
            eprintln!("--- container console ---\n{}", self.console());
        }
        let pid = self.nspawn.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Killing the container's PID 1 takes its whole PID namespace with it.
        if self.leader != 0 {
            let _ = Command::new("kill")
                .args(["-KILL", &self.leader.to_string()])
                .status();
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
    }
}

/// The first descendant of `root` whose command name is `comm` (breadth-first over /proc).
fn find_descendant(root: u32, comm: &str) -> Option<u32> {
    let mut parents = vec![root];
    let procs: Vec<(u32, u32, String)> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // "PID (COMM) STATE PPID ...": COMM may contain spaces, so split at the last ')'.
            let (head, tail) = stat.rsplit_once(')')?;
            let name = head.split_once('(')?.1.to_string();
            let ppid = tail.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid, name))
        })
        .collect();
    while !parents.is_empty() {
        let children: Vec<&(u32, u32, String)> = procs
            .iter()
            .filter(|(_, ppid, _)| parents.contains(ppid))
            .collect();
        if let Some((pid, _, _)) = children.iter().find(|(_, _, name)| name == comm) {
            return Some(*pid);
        }
        parents = children.iter().map(|(pid, _, _)| *pid).collect();
    }
    None
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

fn config_toml(endpoint: &str, projects: &[String]) -> String {
    let ids: Vec<String> = projects.iter().map(|id| format!("{id:?}")).collect();
    format!(
        "# Written by tests/systemd_boot.rs. No credentials here: they come from LoadCredential=.\n\
         [database]\n\
         url = \"sqlite:///var/lib/ice-sync/ice-sync.db?mode=rwc\"\n\
         [ice]\n\
         region = \"cn-shanghai\"\n\
         endpoint = \"{endpoint}\"\n\
         [sync]\n\
         schedule = \"*/2 * * * * *\"\n\
         projects = [{}]\n",
        ids.join(", ")
    )
}

#[test]
fn the_debian_package_runs_under_a_real_systemd() {
    let started = Instant::now();
    let tree = cache_dir().join("debian-tree").join(suite());
    require_prerequisites(&tree);

    let work = tempfile::tempdir().expect("temp dir");
    let input = work.path().join("input");
    std::fs::create_dir(&input).expect("input dir");
    let deb = build_deb(&input);
    let deb_name = deb.file_name().and_then(|n| n.to_str()).expect("deb name");
    let packaged = started.elapsed();

    // The AccessKey exists only in the simulator and in the credential files below.
    let key_id = format!("LTAI5tBoot{}", random_hex(6));
    let key_secret = random_hex(16);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let sim = runtime
        .block_on(Simulator::start(SimulatorConfig {
            access_key_id: key_id.clone(),
            access_key_secret: key_secret.clone(),
            ..SimulatorConfig::default()
        }))
        .expect("simulator on 127.0.0.1");
    let projects = sim.populate(PROJECTS, 0);

    let write = |name: &str, text: &str| std::fs::write(input.join(name), text).expect(name);
    write("config.toml", &config_toml(&sim.endpoint(), &projects));
    write("access_key_id", &key_id);
    write("access_key_secret", &key_secret);
    // Exactly the two lines the unit's comment says to add in a drop-in.
    write(
        "credentials.conf",
        "[Service]\n\
         LoadCredential=access_key_id:/etc/ice-sync/credentials/access_key_id\n\
         LoadCredential=access_key_secret:/etc/ice-sync/credentials/access_key_secret\n",
    );

    let name = format!("ice-sync-test-{}", std::process::id());
    let container = Container::boot(&tree, &name, &input, work.path().join("console.log"));
    container.wait_until_booted(Duration::from_secs(120));
    let booted = started.elapsed();

    // The package installs the unit and the config as a conffile, and enables nothing.
    container.ok(&[
        "apt-get",
        "install",
        "--yes",
        "--quiet",
        &format!("{INPUT}/{deb_name}"),
    ]);
    let conffiles = container.ok(&[
        "dpkg-query",
        "--showformat=${Conffiles}",
        "--show",
        "ice-sync",
    ]);
    assert!(
        conffiles.contains("/etc/ice-sync/config.toml"),
        "config.toml should be a conffile: {conffiles:?}"
    );
    let unit_file = container.ok(&["cat", "/usr/lib/systemd/system/ice-sync.service"]);
    assert_eq!(
        unit_file,
        include_str!("../../../systemd/ice-sync.service"),
        "the packaged unit must be systemd/ice-sync.service unchanged"
    );
    let enabled = container.exec(Duration::from_secs(30), &["systemctl", "is-enabled", UNIT]);
    assert_eq!(
        String::from_utf8_lossy(&enabled.stdout).trim(),
        "disabled",
        "installing the package must not enable the unit"
    );
    assert_eq!(
        container.prop("ActiveState"),
        "inactive",
        "installing the package must not start the unit"
    );
    container.sh(&format!(
        "install -m 0644 {INPUT}/config.toml /etc/ice-sync/config.toml
         install -d -m 0700 /etc/ice-sync/credentials
         install -m 0600 {INPUT}/access_key_id {INPUT}/access_key_secret /etc/ice-sync/credentials/
         install -D -m 0644 {INPUT}/credentials.conf /etc/systemd/system/ice-sync.service.d/credentials.conf
         systemctl daemon-reload"
    ));

    // Start: `systemctl start` of a Type=notify unit returns once READY=1 arrived.
    let t = Instant::now();
    let start = container.exec(Duration::from_secs(330), &["systemctl", "start", UNIT]);
    let start_took = t.elapsed();
    assert!(
        start.status.success(),
        "systemctl start: {}",
        describe(&start)
    );
    assert_eq!(
        container.prop("ActiveState"),
        "active",
        "{}",
        container.state()
    );
    assert_eq!(
        container.prop("SubState"),
        "running",
        "{}",
        container.state()
    );
    let ready_status = container.prop("StatusText");
    assert!(
        // The start-up cycle may already be under way (its progress is the status then).
        ready_status.starts_with("syncing on schedule")
            || ready_status.starts_with("last cycle")
            || ready_status.starts_with("cycle "),
        "StatusText right after start: {ready_status:?}"
    );
    container.wait_for(
        "the status text of the first cycle",
        Duration::from_secs(20),
        |c| {
            let status = c.prop("StatusText");
            status.starts_with("last cycle success")
                && status.contains(&format!("{PROJECTS} polled"))
                && status.ends_with("0 failed")
        },
    );

    // LoadCredential= delivered the AccessKey: it is in the credentials directory, not in
    // the environment, and the simulator served the signed calls (every project polled).
    container.sh("test -s /run/credentials/ice-sync.service/access_key_id");
    container.sh("test -s /run/credentials/ice-sync.service/access_key_secret");
    let environment = container.prop("Environment");
    assert!(
        !environment.contains("ALIBABA_CLOUD"),
        "credentials leaked into the unit's environment: {environment:?}"
    );
    for id in &projects {
        assert!(sim.calls(id) > 0, "the daemon never asked for {id}");
    }

    // The watchdog is armed at the unit's WatchdogSec and pinged.
    assert_eq!(
        container.duration_prop("WatchdogUSec"),
        Duration::from_secs(60)
    );
    let first_ping: u64 = container
        .prop("WatchdogTimestampMonotonic")
        .parse()
        .expect("WatchdogTimestampMonotonic is a number");
    assert!(first_ping > 0, "no WATCHDOG=1 received yet");
    container.wait_for("a second watchdog ping", HEARTBEAT * 3, |c| {
        c.prop("WatchdogTimestampMonotonic")
            .parse::<u64>()
            .is_ok_and(|t| t > first_ping)
    });

    // The per-cycle line reaches the journal.
    container.wait_for(
        "two cycle lines in the journal",
        Duration::from_secs(20),
        |c| {
            c.journal()
                .lines()
                .filter(|l| {
                    l.contains("sync cycle finished")
                        && l.contains("outcome=\"success\"")
                        && l.contains(&format!("polled={PROJECTS}"))
                        && l.contains("failures=0")
                })
                .count()
                >= 2
        },
    );

    // `systemctl reload` (ExecReload= is `ice-sync reload`, which sends SIGHUP and waits
    // for the verdict) applies a config change in place and exits 0: a project added to
    // sync.projects is polled by the same process.
    let extra = runtime.block_on(async { sim.populate(1, 0) });
    let mut reloaded = projects.clone();
    reloaded.extend(extra.iter().cloned());
    let new_config = config_toml(&sim.endpoint(), &reloaded);
    container.sh(&format!(
        "cat > /etc/ice-sync/config.toml <<'ICE_SYNC_EOF'\n{new_config}ICE_SYNC_EOF"
    ));
    let pid_before_reload = container.prop("MainPID");
    container.ok(&["systemctl", "reload", UNIT]);
    container.wait_for(
        "the reloaded project's poll",
        Duration::from_secs(20),
        |c| {
            extra.iter().all(|id| sim.calls(id) >= 1)
                && c.journal().contains("configuration reloaded")
        },
    );
    assert_eq!(
        container.prop("MainPID"),
        pid_before_reload,
        "reload must not restart"
    );
    assert_eq!(
        container.prop("ActiveState"),
        "active",
        "{}",
        container.state()
    );

    // A configuration the daemon refuses: `systemctl reload` fails, the same process goes
    // on with the configuration it had (the added project is still polled), and a good
    // file reloads with exit 0 again.
    let broken = new_config.replace("\"*/2 * * * * *\"", "\"not cron\"");
    assert_ne!(broken, new_config, "the schedule line to break");
    container.sh(&format!(
        "cat > /etc/ice-sync/config.toml <<'ICE_SYNC_EOF'\n{broken}ICE_SYNC_EOF"
    ));
    let refused = container.exec(Duration::from_secs(150), &["systemctl", "reload", UNIT]);
    assert!(
        !refused.status.success(),
        "systemctl reload of a refused configuration must fail: {}",
        describe(&refused)
    );
    assert_eq!(
        container.prop("MainPID"),
        pid_before_reload,
        "a refused reload must not restart"
    );
    assert_eq!(
        container.prop("ActiveState"),
        "active",
        "{}",
        container.state()
    );
    let journal = container.journal();
    assert!(
        journal.contains("the configuration was not reloaded")
            && journal.contains("the configuration was refused"),
        "the daemon's and ExecReload='s reasons belong in the journal:\n{journal}"
    );
    let polled = sim.calls(&extra[0]);
    container.wait_for(
        "polling on the old configuration after a refused reload",
        Duration::from_secs(20),
        |_| sim.calls(&extra[0]) > polled,
    );
    container.sh(&format!(
        "cat > /etc/ice-sync/config.toml <<'ICE_SYNC_EOF'\n{new_config}ICE_SYNC_EOF"
    ));
    container.ok(&["systemctl", "reload", UNIT]);

    // SIGKILL: systemd restarts the unit by itself after RestartSec.
    let restart_sec = container.duration_prop("RestartUSec");
    let pid_before = container.prop("MainPID");
    let restarts_before: u32 = container.prop("NRestarts").parse().expect("NRestarts");
    container.ok(&["systemctl", "kill", "--signal=KILL", UNIT]);
    let t = Instant::now();
    container.wait_for(
        "the restart after SIGKILL",
        restart_sec + Duration::from_secs(30),
        |c| {
            c.prop("ActiveState") == "active"
                && c.prop("SubState") == "running"
                && c.prop("NRestarts").parse::<u32>().ok() == Some(restarts_before + 1)
                && c.prop("MainPID") != pid_before
                && c.prop("MainPID") != "0"
        },
    );
    let restart_took = t.elapsed();

    // Stop: exits 0 well within TimeoutStopSec (no SIGKILL from systemd).
    let timeout_stop = container.duration_prop("TimeoutStopUSec");
    let t = Instant::now();
    let stop = container.exec(
        timeout_stop + Duration::from_secs(15),
        &["systemctl", "stop", UNIT],
    );
    let stop_took = t.elapsed();
    assert!(stop.status.success(), "systemctl stop: {}", describe(&stop));
    assert!(
        stop_took < timeout_stop,
        "stop took {stop_took:?}, TimeoutStopSec is {timeout_stop:?}"
    );
    assert_eq!(container.prop("Result"), "success", "{}", container.state());
    assert_eq!(
        container.prop("ExecMainStatus"),
        "0",
        "{}",
        container.state()
    );

    // The SQLite file is in the DynamicUser state directory, owned by the dynamic user,
    // and holds every project as fetched through the signed calls.
    let link = container.ok(&["readlink", "/var/lib/ice-sync"]);
    assert_eq!(
        link.trim(),
        "private/ice-sync",
        "StateDirectory= with DynamicUser="
    );
    let root = PathBuf::from(format!("/proc/{}/root", container.leader));
    let db = root.join("var/lib/private/ice-sync/ice-sync.db");
    let meta = std::fs::metadata(&db)
        .unwrap_or_else(|e| panic!("no database at /var/lib/private/ice-sync/ice-sync.db: {e}"));
    assert!(meta.len() > 0, "the database file is empty");
    use std::os::unix::fs::MetadataExt;
    assert_ne!(
        meta.uid(),
        0,
        "the database should belong to the dynamic user"
    );
    let copy = work.path().join("copy");
    std::fs::create_dir(&copy).expect("copy dir");
    for suffix in ["", "-wal", "-shm"] {
        let from = root.join(format!("var/lib/private/ice-sync/ice-sync.db{suffix}"));
        if from.exists() {
            std::fs::copy(&from, copy.join(format!("ice-sync.db{suffix}"))).expect("copy db");
        }
    }
    let status_config = work.path().join("status.toml");
    std::fs::write(
        &status_config,
        format!(
            "[database]\nurl = \"sqlite://{}/ice-sync.db\"\n",
            copy.display()
        ),
    )
    .expect("status config");
    let status = Command::new(env!("CARGO_BIN_EXE_ice-sync"))
        .arg("--config")
        .arg(&status_config)
        .arg("status")
        .env_remove("ICE_SYNC_CONFIG")
        .output()
        .expect("ice-sync status runs");
    let status_text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "ice-sync status: {}",
        describe(&status)
    );
    for id in &projects {
        let line = status_text
            .lines()
            .find(|l| l.contains(id.as_str()))
            .unwrap_or_else(|| panic!("{id} not in the database:\n{status_text}"));
        let observed = sim.project(id).and_then(|p| p.status.clone());
        if let Some(observed) = observed {
            assert!(line.contains(&observed), "{id}: {line:?} lacks {observed}");
        }
    }

    // A config error (exit code 2) is not retried: RestartPreventExitStatus=2.
    container.sh("printf '\\n[sync.no_such_table]\\nkey = 1\\n' >> /etc/ice-sync/config.toml");
    let bad = container.exec(Duration::from_secs(60), &["systemctl", "start", UNIT]);
    assert!(!bad.status.success(), "a bad config must fail the start");
    assert_eq!(
        container.prop("ExecMainStatus"),
        "2",
        "{}",
        container.state()
    );
    // Straight to "failed", not "auto-restart"; and still so after RestartSec.
    assert_eq!(
        container.prop("SubState"),
        "failed",
        "{}",
        container.state()
    );
    let restarts_after_failure = container.prop("NRestarts");
    std::thread::sleep(restart_sec + Duration::from_secs(3));
    assert_eq!(
        container.prop("ActiveState"),
        "failed",
        "{}",
        container.state()
    );
    assert_eq!(
        container.prop("NRestarts"),
        restarts_after_failure,
        "restarted after a config error: {}",
        container.state()
    );
    let journal = container.journal();
    assert!(
        journal.contains("no_such_table"),
        "the journal should name the offending key:\n{journal}"
    );

    drop(container);
    runtime.block_on(sim.shutdown());
    eprintln!(
        "systemd boot test: packaged in {:.1?}, booted at {:.1?}, start took {start_took:.1?}, \
         restart after SIGKILL {restart_took:.1?}, stop {stop_took:.1?}, total {:.1?}",
        packaged,
        booted,
        started.elapsed()
    );
}
