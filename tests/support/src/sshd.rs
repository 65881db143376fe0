//! A real OpenSSH `sshd` on 127.0.0.1 with its own config, host key and authorized key: the
//! server shipit deploys through (as `deploy`), and the `ssh` client command that reaches it the
//! same way for tests and benches that talk to the host themselves.

use super::process::{self, stop_tree};
use super::{deploy_user, free_port, read_lossy, wait_for};
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SSHD: &str = "/usr/sbin/sshd"; // sshd insists on being started by absolute path
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A real OpenSSH sshd on `127.0.0.1:port`, running as root, accepting only the deploy user
/// with [`Sshd::client_key`]. Stopped (with its session processes) on drop.
pub struct Sshd {
    pub port: u16,
    /// Config, host key, authorized_keys, known_hosts, client key (unless given), log.
    /// Mode 0755 so that sshd, reading `authorized_keys` as deploy, can reach it.
    pub dir: tempfile::TempDir,
    /// ed25519 private key (no passphrase, mode 0600, root-owned) authorised for `deploy`.
    pub client_key: PathBuf,
    /// File holding exactly one line: `[127.0.0.1]:PORT ssh-ed25519 AAAA...`.
    pub known_hosts: PathBuf,
    child: Option<Child>,
    host_key: PathBuf,
    config: PathBuf,
    log_path: PathBuf,
    /// Lines appended to the generated sshd_config.
    extra: String,
}

/// Runs `ssh-keygen ARGS` (stdin closed), panicking with its stderr when it fails; its stdout.
pub fn ssh_keygen(args: &[&str]) -> String {
    let out = Command::new("ssh-keygen")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh-keygen");
    assert!(
        out.status.success(),
        "ssh-keygen {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A new ed25519 key pair without passphrase at `path` and `path.pub` (replacing any).
pub fn new_ed25519_key(path: &Path, comment: &str) {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("pub"));
    let p = path.to_str().expect("utf-8 key path");
    ssh_keygen(&["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", p]);
}

/// `ssh-ed25519 AAAA...` (type and base64, no comment) of a private key.
fn public_key_of(private: &Path) -> String {
    let text = ssh_keygen(&["-y", "-f", private.to_str().expect("utf-8 key path")]);
    let f: Vec<&str> = text.split_whitespace().collect();
    assert!(f.len() >= 2, "unexpected ssh-keygen -y output: {text:?}");
    format!("{} {}", f[0], f[1])
}

/// Read an SSH identification banner from 127.0.0.1:port.
pub(crate) fn banner(port: u16) -> Option<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    line.starts_with("SSH-").then(|| line.trim().to_string())
}

impl Sshd {
    /// Start an sshd with a freshly generated client key.
    pub fn start() -> Sshd {
        Self::start_inner(None)
    }

    /// Start an sshd that authorises an existing private key (e.g. another `Sshd`'s
    /// `client_key`, so that two servers share one key). `client_key` is that path.
    pub fn start_with_client_key(key: &Path) -> Sshd {
        Self::start_inner(Some(key))
    }

    fn start_inner(key: Option<&Path>) -> Sshd {
        let mut sshd = Sshd::configure(key, "");
        // free_port() can race with another process grabbing the port: retry on a new one.
        let mut last_err = String::new();
        for _ in 0..5 {
            match sshd.spawn() {
                Ok(()) => return sshd,
                Err(e) => last_err = e,
            }
            sshd.set_port(free_port());
        }
        panic!("sshd did not start: {last_err}");
    }

    /// An sshd's files without the daemon: client key (a new one unless `key` is given),
    /// authorized_keys, host key, and an sshd_config (with `extra` lines appended) and
    /// known_hosts for a free port. [`Sshd::start`] runs it as a child of the test; a
    /// [`SystemdHost`](crate::systemd::SystemdHost) runs it as a unit inside its namespace.
    pub(crate) fn configure(key: Option<&Path>, extra: &str) -> Sshd {
        let dir = tempfile::Builder::new()
            .prefix("shipit-sshd-")
            .tempdir_in("/tmp")
            .expect("sshd tempdir");
        super::chmod(dir.path(), 0o755);
        let d = dir.path();

        let client_key = match key {
            Some(k) => k.to_path_buf(),
            None => {
                let k = d.join("client_key");
                new_ed25519_key(&k, "shipit-test-client");
                k
            }
        };
        let authorized_keys = d.join("authorized_keys");
        std::fs::write(
            &authorized_keys,
            format!("{}\n", public_key_of(&client_key)),
        )
        .expect("write authorized_keys");
        super::chmod(&authorized_keys, 0o644);

        let host_key = d.join("ssh_host_ed25519_key");
        new_ed25519_key(&host_key, "shipit-test-host");

        let mut sshd = Sshd {
            port: 0,
            known_hosts: d.join("known_hosts"),
            config: d.join("sshd_config"),
            log_path: d.join("sshd.log"),
            extra: extra.to_string(),
            client_key,
            host_key,
            child: None,
            dir,
        };
        sshd.set_port(free_port());
        sshd
    }

    /// Listen on `port` from the next start on: rewrites sshd_config and known_hosts.
    pub(crate) fn set_port(&mut self, port: u16) {
        self.port = port;
        self.write_config();
        std::fs::write(&self.known_hosts, format!("{}\n", self.known_hosts_line()))
            .expect("write known_hosts");
    }

    /// The command line of the daemon in the foreground, logging to stderr:
    /// `/usr/sbin/sshd -D -e -f CONFIG`.
    pub(crate) fn daemon_command(&self) -> String {
        format!("{SSHD} -D -e -f {}", self.config.display())
    }

    /// Where the daemon's stderr goes.
    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    fn write_config(&self) {
        let d = self.dir.path();
        let mut config = format!(
            "# Private sshd for shipit integration tests.\n\
             ListenAddress 127.0.0.1:{port}\n\
             HostKey {host_key}\n\
             PidFile {pid}\n\
             AuthorizedKeysFile {authorized_keys}\n\
             AllowUsers {user}\n\
             UsePAM no\n\
             StrictModes no\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\n\
             PermitRootLogin no\n\
             UseDNS no\n\
             PrintMotd no\n\
             PrintLastLog no\n\
             X11Forwarding no\n\
             MaxStartups 100:30:200\n\
             MaxSessions 100\n\
             LogLevel VERBOSE\n\
             Subsystem sftp /usr/lib/openssh/sftp-server\n",
            port = self.port,
            host_key = self.host_key.display(),
            user = deploy_user().name,
            pid = d.join("sshd.pid").display(),
            authorized_keys = d.join("authorized_keys").display(),
        );
        config.push_str(&self.extra);
        std::fs::write(&self.config, config).expect("write sshd_config");
    }

    /// Start the daemon on `self.port` and wait until it serves its banner.
    fn spawn(&mut self) -> Result<(), String> {
        // Privilege-separation chroot; must be root-owned and not group/world-writable.
        std::fs::create_dir_all("/run/sshd").expect("mkdir -p /run/sshd");
        super::chmod(Path::new("/run/sshd"), 0o755);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open sshd log");
        let mut child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn /usr/sbin/sshd");
        let port = self.port;
        let pid_file = self.dir.path().join("sshd.pid");
        let _ = std::fs::remove_file(&pid_file);
        let pid = child.id().to_string();
        // Ready = our sshd wrote its pid file (done after binding, so the port is ours and not
        // some other process's) and the port serves an SSH banner.
        let ready = wait_for(START_TIMEOUT, || match child.try_wait() {
            Ok(Some(status)) => Some(Err(format!("sshd exited with {status}"))),
            Err(e) => Some(Err(format!("waiting for sshd: {e}"))),
            Ok(None) if read_lossy(&pid_file).trim() == pid => banner(port).map(Ok),
            Ok(None) => None,
        });
        match ready {
            Some(Ok(_)) => {
                self.child = Some(child);
                Ok(())
            }
            other => {
                let _ = child.kill();
                let _ = child.wait();
                let why = match other {
                    Some(Err(e)) => e,
                    _ => format!("no SSH banner on port {port} within {START_TIMEOUT:?}"),
                };
                Err(format!("{why}; log:\n{}", self.log()))
            }
        }
    }

    /// `deploy@127.0.0.1:PORT`.
    pub fn host_spec(&self) -> String {
        format!("{}@127.0.0.1:{}", deploy_user().name, self.port)
    }

    /// `[127.0.0.1]:PORT ssh-ed25519 AAAA...` for the CURRENT host key (after
    /// [`Sshd::regenerate_host_key`] this differs from the `known_hosts` file).
    pub fn known_hosts_line(&self) -> String {
        self.known_hosts_line_for(self.port)
    }

    /// [`Sshd::known_hosts_line`] for this server reached on another `port` (e.g. through a
    /// proxy): `[127.0.0.1]:PORT ssh-ed25519 AAAA...`.
    pub fn known_hosts_line_for(&self, port: u16) -> String {
        format!("[127.0.0.1]:{port} {}", public_key_of(&self.host_key))
    }

    /// Replace the host key with a new one and restart on the same port. The `known_hosts`
    /// file is left as it was, so clients that use it now see a changed host key.
    pub fn regenerate_host_key(&mut self) {
        self.stop();
        new_ed25519_key(&self.host_key, "shipit-test-host");
        if let Err(e) = self.spawn() {
            panic!("sshd did not restart on port {}: {e}", self.port);
        }
    }

    /// Restart on the same port with `lines` added to sshd_config (e.g. `SetEnv PATH=...` to
    /// give sessions another set of tools).
    pub fn restart_with_config(&mut self, lines: &str) {
        self.stop();
        let mut config = std::fs::read_to_string(&self.config).expect("read sshd_config");
        config.push_str(lines);
        std::fs::write(&self.config, config).expect("write sshd_config");
        if let Err(e) = self.spawn() {
            panic!("sshd did not restart on port {}: {e}", self.port);
        }
    }

    /// Present a host certificate from the next start on: the host key signed by the CA
    /// `ca` (a private key file) with `ssh-keygen -s CA -h` and `options` (e.g.
    /// `["-n", "127.0.0.1", "-V", "+1h"]`), then restart. Signing again replaces the
    /// certificate.
    pub fn certify_host_key(&mut self, ca: &Path, options: &[&str]) {
        let public = self.host_key.with_extension("pub");
        let mut args = vec!["-q", "-s", path_str(ca), "-h", "-I", "shipit-test-host"];
        args.extend_from_slice(options);
        args.push(path_str(&public));
        ssh_keygen(&args);
        let certificate = format!("{}-cert.pub", self.host_key.display());
        let line = format!("HostCertificate {certificate}\n");
        if !self.extra.contains(&line) {
            self.extra.push_str(&line);
            self.write_config();
        }
        self.stop();
        if let Err(e) = self.spawn() {
            panic!("sshd did not restart on port {}: {e}", self.port);
        }
    }

    /// Kill the daemon (and its per-connection processes) and wait for it. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_tree(&mut child, Duration::from_secs(3), |pid| {
                process::signal(pid, "TERM");
            });
        }
    }

    /// The daemon's log (stderr of `sshd -D -e`, `LogLevel VERBOSE`), across restarts.
    pub fn log(&self) -> String {
        read_lossy(&self.log_path)
    }

    /// An `ssh` command line (as a `Command`) that logs in as deploy with this server's key and
    /// known_hosts, strict host-key checking, batch mode and no user config; the remote
    /// `command` is passed as one argument. Runs the OpenSSH client as the test user (root).
    pub fn ssh_command(&self, command: &str) -> Command {
        self.ssh_command_via(self.port, &self.known_hosts, command)
    }

    /// [`Sshd::ssh_command`] to `127.0.0.1:port` (e.g. a proxy in front of this server) with
    /// `known_hosts` as the only known-hosts file.
    pub fn ssh_command_via(&self, port: u16, known_hosts: &Path, command: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-F")
            .arg("/dev/null")
            .arg("-i")
            .arg(&self.client_key)
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .args([
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "ConnectTimeout=10",
                "-p",
            ])
            .arg(port.to_string())
            .arg(format!("{}@127.0.0.1", deploy_user().name))
            .arg(command)
            .stdin(Stdio::null());
        cmd
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}
