//! A private PostgreSQL cluster on 127.0.0.1, for tests in which several hosts share one real
//! database (what `DATABASE_URL` of a deployed project points at).
//!
//! Debian's server binaries live in `/usr/lib/postgresql/<major>/bin` (the newest major is
//! used); `/usr/bin/psql` and friends are `pg_wrapper` scripts that look for the package's own
//! cluster, so they are never used. `initdb` and `postgres` refuse to run as root: the cluster
//! runs as Debian's `postgres` account (the deploy user where there is none), in a fresh
//! temporary directory, with its unix socket there too. The server is our direct child (no
//! `pg_ctl start`, which would detach it) and is stopped with its backends on drop.

use super::process::{self, stop_tree};
use super::{chmod, deploy_user, free_port, read_lossy, wait_for};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Tries with a new port when another process took the one we picked before the server bound it.
const PORT_TRIES: usize = 3;
/// The superuser `initdb` creates; [`Postgres::query`] connects as it.
const SUPERUSER: &str = "postgres";

/// A PostgreSQL server on `127.0.0.1:port` with one database owned by one password-authenticated
/// role: [`Postgres::url`] is what a project's `DATABASE_URL` would be.
pub struct Postgres {
    pub port: u16,
    /// Database name.
    pub db: String,
    /// Login role owning [`Postgres::db`] (not a superuser).
    pub user: String,
    pub password: String,
    /// Owned by the server's account, mode 0700: `data/` (the cluster), the socket, `server.log`.
    pub dir: tempfile::TempDir,
    bin: PathBuf,
    child: Option<Child>,
}

/// The account the cluster runs as: `(uid, gid, home)`.
fn server_account() -> (u32, u32, PathBuf) {
    let out = Command::new("getent")
        .args(["passwd", "postgres"])
        .output()
        .expect("run getent");
    let line = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = line.trim().split(':').collect();
    if out.status.success() && f.len() >= 7 {
        if let (Ok(uid), Ok(gid)) = (f[2].parse(), f[3].parse()) {
            return (uid, gid, PathBuf::from(f[5]));
        }
    }
    let u = deploy_user();
    (u.uid, u.gid, u.home)
}

/// `/usr/lib/postgresql/<newest major>/bin`.
fn server_bin() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let newest = std::fs::read_dir(root)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((major, bin))
        })
        .max();
    newest.map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server under {}/<major>/bin: install Debian's `postgresql` \
                 (bash .ci/setup)",
            root.display()
        )
    })
}

/// 16 random bytes as hex (a password that needs no quoting in a URL or in SQL).
fn random_hex() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn describe(out: &Output) -> String {
    format!(
        "({})\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Postgres {
    /// `initdb` a new cluster, start it, create role and database `hello` (the example project's
    /// name) with a random password; returns once the role can log in over TCP.
    pub fn start() -> Postgres {
        let bin = server_bin();
        let (uid, gid, home) = server_account();
        let dir = tempfile::Builder::new()
            .prefix("shipit-postgres-")
            .tempdir_in("/tmp")
            .expect("create temporary directory in /tmp");
        chmod(dir.path(), 0o700);
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {} to uid {uid}: {e}", dir.path().display()));
        let root = dir.path().to_path_buf();
        let as_server = |program: &str| {
            let mut cmd = Command::new(bin.join(program));
            cmd.uid(uid)
                .gid(gid)
                .env_clear()
                .env("HOME", &home)
                .env("PATH", "/usr/bin:/bin")
                .env("LANG", "C.UTF-8")
                .current_dir(&root)
                .stdin(Stdio::null());
            cmd
        };

        // Trust on the private socket (for `query`), passwords over TCP (for the app). No fsync:
        // a test database need not survive a power cut, and initdb is several times faster.
        let data = root.join("data");
        let out = as_server("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", SUPERUSER, "-E", "UTF8", "--locale=C.UTF-8"])
            .args([
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
            ])
            .output()
            .expect("run initdb");
        assert!(out.status.success(), "initdb failed {}", describe(&out));

        let mut pg = Postgres {
            port: 0,
            db: "hello".into(),
            user: "hello".into(),
            password: random_hex(),
            dir,
            bin: bin.clone(),
            child: None,
        };
        let log = pg.dir.path().join("server.log");
        let mut failures = Vec::new();
        for _ in 0..PORT_TRIES {
            let port = free_port();
            let out = std::fs::File::create(&log).expect("create server.log");
            let child = as_server("postgres")
                .arg("-D")
                .arg(&data)
                .arg("-p")
                .arg(port.to_string())
                .arg("-c")
                .arg(format!(
                    "unix_socket_directories={}",
                    pg.dir.path().display()
                ))
                .args(["-c", "listen_addresses=127.0.0.1"])
                .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
                .args(["-c", "full_page_writes=off", "-c", "shared_buffers=16MB"])
                .args(["-c", "max_connections=50"])
                .stdout(out.try_clone().expect("dup"))
                .stderr(out)
                .spawn()
                .expect("spawn postgres");
            pg.port = port;
            pg.child = Some(child);
            let ready = wait_for(START_TIMEOUT, || {
                let exited = pg.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
                if let Some(status) = exited {
                    return Some(Err(format!("postgres exited with {status}")));
                }
                let out = pg.psql("postgres", "SELECT 1").ok()?;
                out.status.success().then_some(Ok(()))
            });
            match ready {
                Some(Ok(())) => break,
                other => {
                    pg.stop();
                    let text = read_lossy(&log);
                    failures.push(format!("port {port}: {other:?}\n{text}"));
                    if !text.contains("could not bind") && !text.contains("already in use") {
                        break;
                    }
                }
            }
        }
        assert!(
            pg.child.is_some(),
            "postgres did not start:\n{}",
            failures.join("\n")
        );

        pg.query_in(
            "postgres",
            &format!(
                "CREATE ROLE {user} LOGIN PASSWORD '{password}'",
                user = pg.user,
                password = pg.password
            ),
        );
        pg.query_in(
            "postgres",
            &format!(
                "CREATE DATABASE {db} OWNER {user}",
                db = pg.db,
                user = pg.user
            ),
        );
        // The role itself, over TCP with its password: what the deployed app will do.
        let out = Command::new(pg.bin.join("psql"))
            .arg("-X")
            .args(["-At", "-v", "ON_ERROR_STOP=1", "-c", "SELECT current_user"])
            .arg(pg.url())
            .env_clear()
            .stdin(Stdio::null())
            .output()
            .expect("run psql");
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == pg.user,
            "the role cannot log in with its password {}",
            describe(&out)
        );
        pg
    }

    /// `postgres://USER:PASSWORD@127.0.0.1:PORT/DB`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{}",
            self.user, self.password, self.port, self.db
        )
    }

    /// `psql -At` as the superuser on the private socket, in `database`.
    fn psql(&self, database: &str, sql: &str) -> std::io::Result<Output> {
        // Run as root: root passes the 0700 directory, and `trust` needs no password.
        Command::new(self.bin.join("psql"))
            .arg("-X")
            .args(["-At", "-v", "ON_ERROR_STOP=1", "-U", SUPERUSER])
            .arg("-h")
            .arg(self.dir.path())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-d")
            .arg(database)
            .arg("-c")
            .arg(sql)
            .env_clear()
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .output()
    }

    /// Runs `sql` as the superuser in the test database; its `psql -At` output (rows one a
    /// line, columns separated by `|`). Panics with psql's messages when it fails.
    pub fn query(&self, sql: &str) -> String {
        self.query_in(&self.db, sql)
    }

    fn query_in(&self, database: &str, sql: &str) -> String {
        let out = self.psql(database, sql).expect("run psql");
        assert!(
            out.status.success(),
            "psql `{sql}` failed {}\nserver.log:\n{}",
            describe(&out),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The server's log.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join("server.log"))
    }

    /// Immediate shutdown (SIGQUIT: no checkpoint, nothing here needs to survive), up to 10 s,
    /// then SIGKILL the server and its backends. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_tree(&mut child, Duration::from_secs(10), |pid| {
                process::signal(pid, "QUIT");
            });
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
