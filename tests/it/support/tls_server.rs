//! [`TlsServer`]: a throwaway PostgreSQL cluster of its own, with a CA and certificates
//! this test generates (openssl), for the TLS tests: TLS only (`hostssl`, with client
//! certificate authentication for the role `certuser`), or without TLS at all.
//!
//! PostgreSQL refuses to run as root, so as root (as `scripts/test` runs) `initdb` and
//! `postgres` run as the `postgres` user of the Debian package; otherwise as this user.
//! It listens on 127.0.0.1 and 127.0.0.2: the second stands for a server on another host
//! (ice-sync treats only `localhost`, 127.0.0.1 and ::1 as this machine). The server is
//! stopped (and its directory removed) when the value is dropped.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{spawn_guarded, ChildGuard};

/// The role that logs in with a client certificate (its CN) and nothing else.
pub const CERT_USER: &str = "certuser";

const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost
[client]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
";

pub struct TlsServer {
    pub port: u16,
    /// The CA that signed the server's and the client's certificates.
    pub ca: PathBuf,
    /// A CA that signed nothing here.
    pub other_ca: PathBuf,
    /// `certuser`'s certificate and key, signed by `ca`.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    postgres: Option<ChildGuard>,
    dir: tempfile::TempDir,
}

impl TlsServer {
    /// Starts a cluster on a free loopback port: TLS only when `tls`, else no TLS.
    pub async fn start(tls: bool) -> TlsServer {
        tokio::task::spawn_blocking(move || TlsServer::start_blocking(tls))
            .await
            .expect("join")
    }

    /// `postgres://USER@HOST:PORT/postgres?QUERY`.
    pub fn url(&self, user: &str, host: &str, query: &str) -> String {
        let q = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        format!("postgres://{user}@{host}:{}/postgres{q}", self.port)
    }

    fn start_blocking(tls: bool) -> TlsServer {
        let dir = tempfile::Builder::new()
            .prefix("ice-sync-tls-")
            .tempdir()
            .expect("temporary directory");
        let d = dir.path();
        // The server's user must reach its files under this root-owned directory.
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(d.join("openssl.cnf"), OPENSSL_CNF).expect("openssl.cnf");
        for ca in ["ca", "other-ca"] {
            openssl(
                d,
                &[
                    "req",
                    "-x509",
                    "-config",
                    "openssl.cnf",
                    "-extensions",
                    "ca",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.crt"),
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN=ice-sync test {ca}"),
                ],
            );
        }
        for (name, cn, ext) in [
            ("server", "localhost", "server"),
            ("client", CERT_USER, "client"),
        ] {
            openssl(
                d,
                &[
                    "req",
                    "-new",
                    "-config",
                    "openssl.cnf",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                    "-subj",
                    &format!("/CN={cn}"),
                ],
            );
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-set_serial",
                    &format!("{}", rand::random::<u32>()),
                    "-out",
                    &format!("{name}.crt"),
                    "-days",
                    "2",
                    "-extfile",
                    "openssl.cnf",
                    "-extensions",
                    ext,
                ],
            );
        }
        let port = free_port();
        let data = d.join("data");
        let bin = postgres_bin();
        let owner = server_user();
        std::fs::create_dir(&data).expect("data directory");
        chown(&data, owner);
        run(as_server_user(
            Command::new(bin.join("initdb"))
                .current_dir(d)
                .args(["-D"])
                .arg(&data)
                .args([
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--no-locale",
                ]),
            owner,
        ));
        for f in ["server.crt", "server.key", "ca.crt"] {
            let to = data.join(f);
            std::fs::copy(d.join(f), &to).expect("copy certificate");
            chown(&to, owner);
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        let conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1,127.0.0.2'\nunix_socket_directories = ''\n\
             fsync = off\nssl = {}\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
             ssl_ca_file = 'ca.crt'\n",
            if tls { "on" } else { "off" }
        );
        append(&data.join("postgresql.conf"), &conf);
        let hba = if tls {
            format!(
                "hostssl all {CERT_USER} 127.0.0.0/8 cert\nhostssl all all 127.0.0.0/8 trust\n\
                 hostnossl all all 127.0.0.0/8 reject\n"
            )
        } else {
            "host all all 127.0.0.0/8 trust\n".to_string()
        };
        std::fs::write(data.join("pg_hba.conf"), hba).expect("pg_hba.conf");
        let postgres = spawn_guarded(
            as_server_user(
                Command::new(bin.join("postgres"))
                    .current_dir(d)
                    .arg("-D")
                    .arg(&data),
                owner,
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("server.log")).expect("log")),
        );
        let server = TlsServer {
            port,
            ca: d.join("ca.crt"),
            other_ca: d.join("other-ca.crt"),
            client_cert: d.join("client.crt"),
            client_key: d.join("client.key"),
            postgres: Some(postgres),
            dir,
        };
        server.wait_listening();
        server
    }

    fn wait_listening(&self) {
        let start = Instant::now();
        // Listening comes before recovery ends; this line after.
        while !self.log().contains("ready to accept connections") {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the throwaway PostgreSQL did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        if let Some(mut postgres) = self.postgres.take() {
            // Fast shutdown, so no backend outlives the postmaster; the guard kills it if
            // it does not stop in time.
            let _ = Command::new("kill")
                .args(["-INT", &postgres.id().to_string()])
                .status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if matches!(postgres.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    run(Command::new("openssl").current_dir(dir).args(args));
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{:?}: {e} (scripts/test installs it)", cmd.get_program()));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open for append");
    f.write_all(text.as_bytes()).expect("append");
}

/// The newest server's binaries (Debian: /usr/lib/postgresql/VERSION/bin).
fn postgres_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("/usr/lib/postgresql: install the Debian package postgresql")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    versions
        .pop()
        .expect("no PostgreSQL server binaries installed")
}

/// `(uid, gid)` of `postgres` when running as root; `None`: run as this user.
fn server_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id");
        String::from_utf8_lossy(&out.stdout).trim().parse().expect(
            "the postgres user (Debian package postgresql) must exist to run a server as root",
        )
    };
    Some((id("-u"), id("-g")))
}

fn as_server_user(cmd: &mut Command, owner: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

fn chown(path: &Path, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
