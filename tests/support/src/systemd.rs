//! A real systemd to deploy to: [`SystemdHost`] boots `/lib/systemd/systemd --system` as PID 1
//! of new pid, mount, cgroup, UTS and IPC namespaces, with OpenSSH's sshd (for `deploy`) and
//! nginx (as `deploy`) running inside it as units, so that an SSH session is in systemd's world:
//! `systemctl`, `sudo -n systemctl`, `journalctl` and `nginx -s reload` from a session reach this
//! systemd and this nginx, as on a real host. Needs root, like the rest of the harness.
//!
//! ```no_run
//! use shipit_test_support::systemd::SystemdHost; // `support::systemd` in the tests
//! let mut host = SystemdHost::start(); // booted; sshd and nginx serve
//! host.write_unit("app@.service", "[Service]\nExecStart=/bin/sleep infinity\n");
//! let out = host.ssh("sudo -n systemctl start app@1.service"); // as deploy, over real SSH
//! assert!(out.status.success() && host.is_active("app@1.service"));
//! let log = host.journalctl(&["-u", "app@1.service"]);
//! host.ssh("sudo -n systemctl enable app@1.service");
//! host.reboot(); // SIGKILL PID 1, boot again from the same "disk"
//! assert_eq!(host.running_units("app@*"), ["app@1.service"]);
//! // Dropped: PID 1 is SIGKILLed, and with it everything in its namespace.
//! ```
//!
//! The target's paths for shipit: [`SystemdHost::deploy_to`], `host.sshd` (`host_spec()`,
//! `client_key`, `known_hosts`) and `host.nginx` (`sites_dir`, `test_command()`,
//! `reload_command()`), as on a supervisor [`Host`](crate::stack::Host). For a two-host target,
//! [`SystemdHost::start_second`] gives the second host at the first one's paths. Root's view of
//! the inside: [`SystemdHost::systemctl`], [`SystemdHost::journalctl`],
//! [`SystemdHost::is_active`], [`SystemdHost::running_units`], [`SystemdHost::command`],
//! [`SystemdHost::processes`];
//! deploy's user manager: [`SystemdHost::enable_linger`], [`SystemdHost::user_systemctl`].
//!
//! # What it sees of the machine, and why
//! This is a shared machine, and a systemd that booted as the machine's init would take it over:
//! an earlier attempt's boot ran `systemd-tmpfiles-setup.service` and wiped the machine's /tmp.
//! So everything systemd could reach is either its own or read-only, and it starts nothing but
//! what it is given:
//! - **Units.** Every unit the machine ships (in `SYSTEM_UNIT_DIRS` of systemd/disk.rs, and
//!   what their `.wants`/`.requires` directories name) is masked except `KEPT_SYSTEM_UNITS`:
//!   the targets a boot is made of, journald and its sockets, the journal flush, D-Bus (so that
//!   `systemctl` as deploy works as on a real host) and the user manager. `ALWAYS_MASKED`
//!   names the units that must never run here (tmpfiles, remount-fs, sysctl, modules-load,
//!   udev, getty, logind, firstboot, random-seed, utmp, binfmt, tmp.mount, the shutdown
//!   targets, ...) whether this machine ships them or not. The masks live in the host's own
//!   /etc/systemd/system, a directory of its "disk" bind-mounted over the machine's (which is
//!   never touched), so the units this machine enabled (ssh, nginx, postgresql, redis,
//!   supervisor, timers) do not exist in there. `default.target` is `multi-user.target`. User
//!   units alike, in its own /etc/systemd/user.
//! - **Generators** (fstab, getty, sysv, postgresql, ...) never run: each is masked by name in
//!   /run/systemd/{system,user}-generators, and the directories that hold them are covered by an
//!   empty one; and the units they would make are masked by name too (`NAME.service` of each
//!   /etc/init.d script, the SysV generator's; the others' in `ALWAYS_MASKED`). Also covered by
//!   an empty directory: /etc/systemd/system.control, .attached and
//!   /usr/local/lib/systemd/system when they exist.
//! - **Its own**: /run and /dev (tmpfs, with a few device nodes: what systemd does there, the
//!   /dev/log link, its devpts, stays in there; PID 1's console is `console.log` of the disk),
//!   a cgroup2 tree (`/sys/fs/cgroup` inside is a fresh cgroup of the machine's unified
//!   hierarchy, the root of its cgroup namespace, removed after each boot), hostname (UTS) and
//!   IPC. The "disk", kept across [`SystemdHost::reboot`]s: /etc/systemd/system,
//!   /etc/systemd/user, /var/lib/systemd (linger), /var/log/journal (when the machine has it,
//!   so the journal is persistent, per-user files included), /etc/sudoers.d, and deploy's
//!   ~/.config/systemd and ~/.local/share/systemd (user units, private to each host).
//! - **Read-only**: /proc/sys, /proc/sysrq-trigger and /sys (the kernel's settings are the
//!   machine's; PID 1 would otherwise raise some sysctls).
//! - **Shared** with the machine and the test: every other path, /tmp and /var/tmp above all
//!   (deploy_to, sshd's and nginx's directories, test files live there), which is why tmpfiles
//!   must never run; the smoke test (tests/it/systemd_host.rs) keeps canaries there across boot,
//!   a started service, a reboot and the end.
//! - **Network**: shared. The masks guarantee that nothing starts on a shared port but the
//!   host's own sshd and nginx on free loopback ports, and a session's `uv` reaches the package
//!   index as on the supervisor hosts; a private network would need a forwarder for every port
//!   the test reaches (sshd, nginx, the app) and a route out for uv.
//! - **Stopping**: only ever by SIGKILL to PID 1 (the kernel then kills every process of the
//!   pid namespace, and the mounts go with the mount namespace), never a clean shutdown, which
//!   would unmount and stop things. On drop, also during a panic. And should the test process
//!   die without unwinding: the boot is started from a thread of its own, with
//!   `PR_SET_PDEATHSIG` = SIGKILL, through `unshare --kill-child`, so PID 1 dies with it (and
//!   the next boot, of any test process, removes the empty cgroup it left).
//!
//! # Inside
//! - `shipit-test-sshd.service`: the host's [`Sshd`] (Type=notify, enabled) on a free loopback
//!   port; its sessions get `XDG_RUNTIME_DIR=/run/user/UID` as pam_systemd would set it.
//! - `shipit-test-nginx.service`: the host's [`Nginx`], as deploy, enabled. It must be inside:
//!   `nginx -s reload` signals the pid in nginx's pid file, which is a pid of this namespace.
//! - sudo: [`SUDOERS`] in the host's /etc/sudoers.d ([`SystemdHost::set_sudoers`] changes it).
//! - logind is masked, so [`SystemdHost::enable_linger`] does what `loginctl enable-linger` and
//!   logind would: the linger file, and `user@UID.service` started now and at every boot.
//!   Without logind there are no session scopes: a session's processes (and what its `sudo`
//!   logs) belong to `shipit-test-sshd.service`, and `loginctl` answers nothing.
//! - The journal: deploy reads its user units' (`journalctl --user -u UNIT`, from its own
//!   journal file); the system journal is root's, as on a Debian host where deploy is not in
//!   `systemd-journal`: `sudo -n journalctl` needs a rule that allows it (`set_sudoers`).
//!
//! Boot files (`boot.sh`'s output in `boot.log`, `console.log`) are in the disk directory; a
//! failed boot panics with them.

mod boot;
mod disk;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use boot::Boot;
use disk::Disk;

pub use crate::process::ProcId;
use crate::sshd::banner;
use crate::*;

/// From spawning to a finished startup (`systemctl is-system-running --wait`).
const BOOT_TIMEOUT: Duration = Duration::from_secs(30);
/// For sshd and nginx to serve once startup finished, and for a killed namespace to be gone.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// PATH of the commands run inside as root.
const ROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const SSHD_UNIT: &str = "shipit-test-sshd.service";
const NGINX_UNIT: &str = "shipit-test-nginx.service";

/// The sudo rule of every host: deploy may run systemctl as root, without a password (the rule
/// a real host needs for system units).
pub const SUDOERS: &str = "deploy ALL=(root) NOPASSWD: /usr/bin/systemctl, /bin/systemctl\n";

/// A machine run by a real systemd, in namespaces of its own (see the module doc).
pub struct SystemdHost {
    /// Runs inside as `shipit-test-sshd.service`; after a reboot on the same port. (Its
    /// `regenerate_host_key` and `restart_with_config` are for an sshd that is the test's own
    /// child; this one changes with `systemctl restart shipit-test-sshd.service`.)
    pub sshd: Sshd,
    /// Runs inside as `shipit-test-nginx.service`, as deploy.
    pub nginx: Nginx,
    /// Deploy-owned base directory; `deploy_to` is `base/app`.
    pub base: tempfile::TempDir,
    /// How long the last boot took: from spawning to sshd and nginx serving.
    pub boot_time: Duration,
    /// What outlives a reboot (see [`Disk`]).
    disk: Disk,
    /// FROM → ONTO bind mounts made at each boot.
    binds: Vec<(PathBuf, PathBuf)>,
    boot: Option<Boot>,
}

impl SystemdHost {
    /// Boots a host with its own sshd (and a new client key) and nginx.
    pub fn start() -> SystemdHost {
        SystemdHost::start_inner(None, None)
    }

    /// A second host for a target whose configuration names `a`'s paths (the systemd
    /// counterpart of [`fleet::start_host_b`]): its own systemd,
    /// sshd (authorising `a`'s client key), nginx and base directory, with its base and nginx
    /// directories bind-mounted over `a`'s inside its namespace, so that what its sessions and
    /// units do at `a`'s paths lands in its own. The test sees them at their real paths.
    pub fn start_second(a: &SystemdHost) -> SystemdHost {
        SystemdHost::start_inner(Some(&a.sshd.client_key), Some(a))
    }

    fn start_inner(key: Option<&Path>, first: Option<&SystemdHost>) -> SystemdHost {
        let user = deploy_user();
        let sshd = Sshd::configure(
            key,
            &format!("SetEnv XDG_RUNTIME_DIR=/run/user/{}\n", user.uid),
        );
        let nginx = Nginx::configure();
        let base = deploy_owned_tempdir();
        let disk = Disk::create(&sshd, &nginx);
        let mut binds = disk.binds();
        if let Some(a) = first {
            binds.push((base.path().into(), a.base.path().into()));
            binds.push((nginx.dir.path().into(), a.nginx.dir.path().into()));
        }
        let mut host = SystemdHost {
            sshd,
            nginx,
            base,
            boot_time: Duration::ZERO,
            disk,
            binds,
            boot: None,
        };
        host.boot();
        host
    }

    /// `deploy_to` with the default directory name.
    pub fn deploy_to(&self) -> PathBuf {
        self.base.path().join("app")
    }

    /// The host's /etc/systemd/system, at its real path (root-owned; kept across reboots).
    pub fn unit_dir(&self) -> PathBuf {
        self.disk.system()
    }

    /// Writes `text` as the unit `name` in the host's /etc/systemd/system and reloads systemd.
    pub fn write_unit(&self, name: &str, text: &str) {
        let path = self.unit_dir().join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        chmod(&path, 0o644);
        self.systemctl_ok(&["daemon-reload"]);
    }

    /// Replaces the host's sudo rules ([`SUDOERS`] at first); sudo reads them at each run.
    pub fn set_sudoers(&self, text: &str) {
        self.disk.write_sudoers(text);
    }

    /// `ssh deploy@127.0.0.1 -p PORT COMMAND` with the OpenSSH client, the host's key and
    /// known_hosts ([`Sshd::ssh_command`]).
    pub fn ssh(&self, command: &str) -> Output {
        self.sshd
            .ssh_command(command)
            .output()
            .unwrap_or_else(|e| panic!("run ssh: {e}"))
    }

    /// [`SystemdHost::ssh`] that must exit 0; its stdout.
    pub fn ssh_ok(&self, command: &str) -> String {
        expect_success(&format!("ssh: {command}"), self.ssh(command))
    }

    /// A command that runs `program` inside the host (its mount, pid, UTS, IPC and cgroup
    /// namespaces) as root, from `/`, with a clean environment.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        self.enter(&[], program)
    }

    /// `nsenter` into the host with `identity` (`-S UID -G GID`, or none for root).
    fn enter(&self, identity: &[String], program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg("-t")
            .arg(self.pid1().to_string())
            .args(["-m", "-p", "-u", "-i", "-C", "--root", "--wd"])
            .args(identity)
            .arg("--")
            .arg(program)
            .env_clear()
            .env("PATH", ROOT_PATH)
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null());
        command
    }

    /// `systemctl ARGS` inside, as root.
    pub fn systemctl(&self, args: &[&str]) -> Output {
        run(self.command("systemctl").args(args))
    }

    /// [`SystemdHost::systemctl`] that must exit 0; its stdout.
    pub fn systemctl_ok(&self, args: &[&str]) -> String {
        expect_success(&format!("systemctl {args:?}"), self.systemctl(args))
    }

    /// `journalctl --no-pager ARGS` inside, as root (all of the journal); its stdout.
    pub fn journalctl(&self, args: &[&str]) -> String {
        let out = run(self.command("journalctl").arg("--no-pager").args(args));
        expect_success(&format!("journalctl {args:?}"), out)
    }

    /// Whether `unit` is active (`systemctl is-active`).
    pub fn is_active(&self, unit: &str) -> bool {
        self.systemctl(&["is-active", "--quiet", unit])
            .status
            .success()
    }

    /// The running units whose names match `pattern` (a `systemctl list-units` glob such as
    /// `hello.test.web@*`), sorted.
    pub fn running_units(&self, pattern: &str) -> Vec<String> {
        let out = self.systemctl_ok(&[
            "list-units",
            "--state=running",
            "--plain",
            "--no-legend",
            "--all",
            pattern,
        ]);
        let mut units: Vec<String> = out
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect();
        units.sort();
        units
    }

    /// `systemctl --user ARGS` inside, as deploy (its user manager runs after
    /// [`SystemdHost::enable_linger`]).
    pub fn user_systemctl(&self, args: &[&str]) -> Output {
        let user = deploy_user();
        // nsenter switches to deploy (without root's groups) once inside.
        let identity = [
            "-S".into(),
            user.uid.to_string(),
            "-G".into(),
            user.gid.to_string(),
        ];
        run(self
            .enter(&identity, "systemctl")
            .arg("--user")
            .args(args)
            .env("HOME", &user.home)
            .env("USER", &user.name)
            .env("XDG_RUNTIME_DIR", format!("/run/user/{}", user.uid)))
    }

    /// What `loginctl enable-linger deploy` and logind would do (logind is masked here): the
    /// linger file `/var/lib/systemd/linger/deploy`, deploy's user manager
    /// (`user@UID.service`, with `XDG_RUNTIME_DIR=/run/user/UID`) started now, and at every
    /// boot (a `multi-user.target.wants` link in the host's /etc/systemd/system).
    pub fn enable_linger(&self) {
        let user = deploy_user();
        let linger = self.disk.dir("var-lib-systemd").join("linger");
        std::fs::create_dir_all(&linger).expect("mkdir linger");
        std::fs::write(linger.join(&user.name), "").expect("write the linger file");
        let unit = format!("user@{}.service", user.uid);
        self.disk
            .enable(&unit, Path::new("/lib/systemd/system/user@.service"));
        self.systemctl_ok(&["start", &unit]);
    }

    /// Kills the host (SIGKILL to PID 1) and boots it again from the same disk: the units that
    /// were enabled come up, sshd and nginx on the same paths and port.
    pub fn reboot(&mut self) {
        self.kill();
        self.boot();
    }

    /// The host's PID 1 (systemd), as the test sees it.
    pub fn pid1(&self) -> u32 {
        self.boot.as_ref().expect("the host is running").pid1.pid()
    }

    /// Every process of the host's current boot (those in its pid namespace), as the test
    /// sees them; each is told from a later process with the same pid by its start time.
    pub fn processes(&self) -> Vec<ProcId> {
        let boot = self.boot.as_ref().expect("the host is running");
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read_link(format!("/proc/{pid}/ns/pid"))
                    .is_ok_and(|ns| ns.as_os_str() == boot.pid_namespace.as_str())
            })
            .filter_map(ProcId::of)
            .collect()
    }

    fn boot(&mut self) {
        let started = Instant::now();
        let boot = Boot::start(&self.disk, &self.binds);
        self.boot = Some(boot.unwrap_or_else(|e| panic!("{e}\n{}", self.disk.logs())));
        // systemd answers on its private socket once it is up; `--wait` returns once startup
        // finished (every job of the boot done).
        let socket = PathBuf::from(format!("/proc/{}/root/run/systemd/private", self.pid1()));
        let up = wait_for(BOOT_TIMEOUT, || {
            self.assert_alive();
            socket.exists().then_some(())
        });
        assert!(up.is_some(), "systemd did not start\n{}", self.disk.logs());
        let state = self.systemctl(&["is-system-running", "--wait"]);
        let state = String::from_utf8_lossy(&state.stdout).trim().to_string();
        assert!(
            state == "running" || state == "degraded",
            "systemd's startup ended {state:?}\n{}",
            self.diagnostics()
        );
        self.wait_for_sshd();
        self.wait_for_nginx();
        self.boot_time = started.elapsed();
        eprintln!(
            "[timing] systemd host boot: {:.2}s",
            self.boot_time.as_secs_f64()
        );
    }

    /// The failed units and the journal of this boot, for a failure message.
    fn diagnostics(&self) -> String {
        let text = |out: Output| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        };
        format!(
            "failed units:\n{}\njournal:\n{}",
            text(self.systemctl(&["list-units", "--failed", "--no-pager"])),
            text(run(self.command("journalctl").args(["--no-pager", "-b"])))
        )
    }

    fn assert_alive(&self) {
        if let Some(boot) = &self.boot {
            assert!(
                !boot.exited(),
                "the host's namespace ended\n{}",
                self.disk.logs()
            );
        }
    }

    /// Until sshd serves its banner; on a port someone took since it was picked (sshd fails to
    /// start), on a new one.
    fn wait_for_sshd(&mut self) {
        for _ in 0..5 {
            let port = self.sshd.port;
            let ready = wait_for(SETTLE_TIMEOUT, || {
                self.assert_alive();
                if self
                    .systemctl(&["is-failed", "--quiet", SSHD_UNIT])
                    .status
                    .success()
                {
                    return Some(false);
                }
                (self.is_active(SSHD_UNIT) && banner(port).is_some()).then_some(true)
            });
            if ready == Some(true) {
                return;
            }
            self.sshd.set_port(free_port());
            self.systemctl(&["restart", SSHD_UNIT]);
        }
        panic!(
            "{SSHD_UNIT} did not serve\nsshd log:\n{}\n{}",
            self.sshd.log(),
            self.diagnostics()
        );
    }

    /// Until nginx's pid file names the unit's main process (written once nginx parsed its
    /// config and bound its sockets).
    fn wait_for_nginx(&self) {
        let pid_file = self.nginx.pid_file();
        let ready = wait_for(SETTLE_TIMEOUT, || {
            self.assert_alive();
            let main = self.systemctl_ok(&["show", "--property=MainPID", "--value", NGINX_UNIT]);
            let main = main.trim();
            (main != "0" && read_lossy(&pid_file).trim() == main).then_some(())
        });
        assert!(
            ready.is_some(),
            "{NGINX_UNIT} did not start\nerror.log:\n{}\n{}",
            self.nginx.error_log(),
            self.diagnostics()
        );
    }

    /// SIGKILL to PID 1, and the namespace's cgroup removed once empty. Idempotent; never
    /// panics (it runs from `Drop`), but says what it could not do.
    fn kill(&mut self) {
        if let Some(boot) = self.boot.take() {
            if let Err(e) = boot.kill() {
                eprintln!("systemd host: {e}");
            }
        }
    }
}

impl Drop for SystemdHost {
    fn drop(&mut self) {
        self.kill();
    }
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"))
}

fn expect_success(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({})\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
