//! The `deploy` account every daemon and session runs as, and acting as it from the test
//! process (which is root): creating the account, handing files and directories to it, and
//! running commands as it. Its own module because every daemon module and the stack use it.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// Name of the unprivileged account used by every daemon and session.
pub const DEPLOY_USER: &str = "deploy";

/// The `PATH` given to processes run as the deploy user. It is the compiled-in default of
/// OpenSSH sessions on Debian, so `/usr/sbin` is NOT on it: commands run over SSH must use
/// absolute paths for `nginx` (`/usr/sbin/nginx`), which is why the command helpers do.
pub const DEPLOY_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/games";

/// Lock file serialising the creation of the deploy user across test processes.
const USER_LOCK: &str = "/tmp/shipit-test-deploy-user.lock";

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

/// Whether a test whose prerequisite is `met` goes on. The one place that decides "skip or
/// fail": a developer without root may skip (the reason is printed), but under CI (`CI` set) or
/// as root a missing prerequisite is a failure, so a suite cannot pass by running nothing.
pub fn prerequisite(met: bool, reason: &str) -> bool {
    if met {
        return true;
    }
    if std::env::var_os("CI").is_some() || is_root() {
        panic!("missing prerequisite: {reason} (as root or under CI a test fails, not skips)");
    }
    eprintln!("skipped: {reason}");
    false
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

/// Once per process: the deploy user exists and its uv trusts the system's CA store.
///
/// Deploy sessions get a bare environment (no SSL_CERT_FILE), and uv's built-in roots do not
/// include a CA that a TLS-inspecting proxy in front of PyPI may use; a real server would be
/// configured the same way (`~/.config/uv/uv.toml`). Harmless where PyPI is reached directly.
pub fn prepare_host_user() {
    static DONE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let user = deploy_user();
        let dir = user.home.join(".config/uv");
        let config = dir.join("uv.toml");
        let text = std::fs::read_to_string(&config).unwrap_or_default();
        if !text.contains("native-tls") {
            run_as_deploy_ok(&format!(
                "mkdir -p {dir} && printf 'native-tls = true\\n' >> {config}",
                dir = shell_quote(&dir.display().to_string()),
                config = shell_quote(&config.display().to_string()),
            ));
        }
    });
}
