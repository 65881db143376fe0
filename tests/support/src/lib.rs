//! The test harness of shipit: real daemons on loopback, no mocks, and everything the
//! integration tests (`tests/*.rs`) and the benches (`benches/*.rs`) of the shipit package share.
//!
//! It is a crate of its own (`shipit-test-support`, a path dev-dependency of the root package,
//! named `support` there) so that there is one copy of it: each test file and bench is a crate
//! of its own, and a module shared by `#[path]` or `mod common;` is compiled again into every one
//! of them, which is how copies of it used to drift apart. Tests write `use support::*;` (the
//! daemons and the deploy-user helpers below) and `use support::stack::*;` and so on.
//!
//! - [`project`]: a throw-away copy of the example project (`tests/example`) under real git,
//!   `shipit` run against it, and a reader for the archives it writes.
//! - [`stack`]: one real deploy target (sshd, nginx, supervisord, a `deploy_to`) with the example
//!   project configured for it, and [`stack::Run`], what one run of shipit produced.
//! - [`fleet`]: two hosts for one target on this one machine.
//! - [`proxy`]: a TCP proxy in front of sshd that the test controls.
//! - [`load`]: an HTTP load generator.
//! - this module: the daemons ([`Sshd`], [`Nginx`], [`Supervisord`], [`Postgres`]), the `deploy`
//!   account and helpers to act as it, and small network helpers.
//!
//! Everything that starts a daemon needs root (the tests create a `deploy` account, run sshd,
//! and start nginx / supervisord *as* `deploy`).
//!
//! What runs as whom:
//! - `sshd` runs as root (it must, to switch to `deploy` for sessions); sessions run as `deploy`.
//! - `nginx` (master and workers) and `supervisord` (and therefore every supervised program) run
//!   as `deploy`, so a deploy session can `nginx -t`, `nginx -s reload` and `supervisorctl ...`
//!   them without sudo.
//! - `postgres` ([`Postgres`], a private cluster some tests share between hosts) runs as Debian's
//!   `postgres` account: initdb and the server refuse root.
//! - The test process itself is root; files it writes are root-owned unless it chowns them
//!   (see [`chown_to_deploy`]), and [`run_as_deploy`] runs a shell snippet as `deploy`.
//!
//! Every daemon is a direct child of the test process and is killed (with whatever it spawned)
//! when its struct is dropped, including during a panic. Ports come from [`free_port`], paths
//! from fresh temporary directories, so tests can run in parallel threads and processes.

pub mod fleet;
pub mod load;
pub mod project;
pub mod proxy;
pub mod stack;

mod nginx;
mod postgres;
mod process;
mod sshd;
mod supervisord;

pub use nginx::Nginx;
pub use postgres::Postgres;
pub use sshd::Sshd;
pub use supervisord::Supervisord;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Name of the unprivileged account used by every daemon and session.
pub const DEPLOY_USER: &str = "deploy";

/// The `PATH` given to processes run as the deploy user. It is the compiled-in default of
/// OpenSSH sessions on Debian, so `/usr/sbin` is NOT on it: commands run over SSH must use
/// absolute paths for `nginx` (`/usr/sbin/nginx`), which is why the command helpers do.
pub const DEPLOY_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/games";

/// Lock file serialising the creation of the deploy user across test processes.
const USER_LOCK: &str = "/tmp/shipit-test-deploy-user.lock";

/// A free TCP port on 127.0.0.1 (bind :0, read, drop).
pub fn free_port() -> u16 {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0 for a free port");
    listener.local_addr().expect("local_addr").port()
}

/// Poll `f` until it returns `Some` or `timeout` elapses (small sleeps between tries).
/// `f` is always called at least once.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Minimal HTTP/1.0 `GET` to `127.0.0.1:port` with 5 s timeouts: `(status, body)`.
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: shipit-tests\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let bad = |msg: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string());
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no end of HTTP headers in response"))?;
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("malformed HTTP status line"))?;
    Ok((status, body.to_string()))
}

/// True when nothing accepts TCP connections on `127.0.0.1:port` (connection refused).
pub fn port_refuses(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    matches!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// The unprivileged account that sshd logs in as and that owns deploy dirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// Create (once) and return the `deploy` account: `useradd -m -s /bin/bash deploy` then
/// `usermod -p '*' deploy` (useradd leaves it locked, and a locked account cannot log in over
/// SSH even with a key). Idempotent; serialised across threads by a `OnceLock` and across
/// processes by `flock` on a file in /tmp.
pub fn deploy_user() -> DeployUser {
    static USER: OnceLock<DeployUser> = OnceLock::new();
    USER.get_or_init(|| {
        assert!(
            is_root(),
            "the integration-test harness must run as root (it creates the `{DEPLOY_USER}` \
             account, runs sshd and switches users)"
        );
        let script = format!(
            r#"set -e
u={DEPLOY_USER}
if ! id -u "$u" >/dev/null 2>&1; then
    useradd -m -s /bin/bash "$u"
fi
case "$(getent shadow "$u" | cut -d: -f2)" in
    '!'*|'') usermod -p '*' "$u" ;;
esac
home="$(getent passwd "$u" | cut -d: -f6)"
if [ ! -d "$home" ]; then
    mkdir -p "$home"
    chown "$u:$(id -gn "$u")" "$home"
    chmod 0755 "$home"
fi"#
        );
        let out = Command::new("flock")
            .args(["-w", "60", USER_LOCK, "sh", "-c", &script])
            .output()
            .expect("run flock (util-linux) to create the deploy user");
        assert!(
            out.status.success(),
            "creating the deploy user failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new("getent")
            .args(["passwd", DEPLOY_USER])
            .output()
            .expect("run getent");
        let line = String::from_utf8_lossy(&out.stdout);
        let f: Vec<&str> = line.trim().split(':').collect();
        assert!(
            f.len() >= 7,
            "unexpected passwd entry for {DEPLOY_USER}: {line:?}"
        );
        DeployUser {
            name: f[0].to_string(),
            uid: f[2].parse().expect("uid"),
            gid: f[3].parse().expect("gid"),
            home: PathBuf::from(f[5]),
        }
    })
    .clone()
}

/// True when this process's real uid is 0.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// `chown deploy:deploy path` (not recursive).
pub fn chown_to_deploy(path: &Path) {
    let u = deploy_user();
    std::os::unix::fs::chown(path, Some(u.uid), Some(u.gid))
        .unwrap_or_else(|e| panic!("chown {} to {}: {e}", path.display(), u.name));
}

/// `chmod mode path`.
pub fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// Write `contents` to `path` (mode 0644) owned by the deploy user.
pub fn write_as_deploy(path: &Path, contents: impl AsRef<[u8]>) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    chmod(path, 0o644);
    chown_to_deploy(path);
}

/// Create a directory (and parents; only the leaf is chowned) owned by deploy, mode 0755.
pub fn mkdir_as_deploy(path: &Path) {
    std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
    chmod(path, 0o755);
    chown_to_deploy(path);
}

/// A temporary directory under /tmp named `{prefix}XXXXXX`, owned by deploy, mode 0755.
pub(crate) fn deploy_owned_tempdir_with_prefix(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("create temporary directory in /tmp");
    chmod(dir.path(), 0o755);
    chown_to_deploy(dir.path());
    dir
}

/// A private directory owned by the deploy user (mode 0755), removed (by root, whatever is in
/// it) on drop.
pub fn deploy_owned_tempdir() -> tempfile::TempDir {
    deploy_owned_tempdir_with_prefix("shipit-test-")
}

/// A `Command` that runs `program` as the deploy user: uid/gid switched (supplementary groups
/// dropped), environment cleared and set like a login (`HOME`, `USER`, `LOGNAME`, `SHELL`,
/// `PATH` = [`DEPLOY_PATH`], `LANG=C.UTF-8`), working directory = the deploy home.
pub fn deploy_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let u = deploy_user();
    let mut cmd = Command::new(program);
    cmd.uid(u.uid)
        .gid(u.gid)
        .env_clear()
        .env("HOME", &u.home)
        .env("USER", &u.name)
        .env("LOGNAME", &u.name)
        .env("SHELL", "/bin/bash")
        .env("PATH", DEPLOY_PATH)
        .env("LANG", "C.UTF-8")
        .current_dir(&u.home)
        .stdin(Stdio::null());
    cmd
}

/// Run `sh -c script` as the deploy user (see [`deploy_command`]) and collect its output.
pub fn run_as_deploy(script: &str) -> Output {
    deploy_command("/bin/sh")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap_or_else(|e| panic!("run as deploy: {script}: {e}"))
}

/// Run `sh -c script` as deploy and panic (with its output) unless it exits 0; returns stdout.
pub fn run_as_deploy_ok(script: &str) -> String {
    let out = run_as_deploy(script);
    assert!(
        out.status.success(),
        "as deploy: `{script}` failed ({})\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Quote `s` for a POSIX shell (single quotes).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:=@,+%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Read a file as text, or an empty string when it cannot be read.
pub(crate) fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}
