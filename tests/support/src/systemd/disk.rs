//! The "disk" of a [`SystemdHost`](super::SystemdHost): what it keeps across reboots (its
//! /etc/systemd, /var/lib/systemd, journal, sudoers.d, deploy's unit directories), with the
//! masks that make its boot start nothing of the machine's, and the bind mounts that put it in
//! place at each boot (the module doc of `systemd` says why each is there).

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use super::{NGINX_UNIT, SSHD_UNIT, SUDOERS};
use crate::*;

/// Stages the namespaces and becomes systemd (see its header); written to the disk.
const BOOT_SH: &str = include_str!("boot.sh");

/// Where the machine's system units are (systemd 252 also reads /etc and /run, which are the
/// host's own, and /usr/local/lib, which is hidden).
const SYSTEM_UNIT_DIRS: &[&str] = &[
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/usr/local/lib/systemd/system",
];

/// The machine's system units that keep their definition; every other one it ships is masked.
const KEPT_SYSTEM_UNITS: &[&str] = &[
    // What a boot to multi-user.target is made of (passive; what they pull in is masked).
    "default.target", // the host's own, pointing at multi-user.target
    "multi-user.target",
    "basic.target",
    "sysinit.target",
    "sockets.target",
    "timers.target",
    "paths.target",
    "slices.target",
    "local-fs-pre.target",
    "local-fs.target",
    "swap.target",
    "network-pre.target",
    "network.target",
    "network-online.target",
    "nss-lookup.target",
    "nss-user-lookup.target",
    "remote-fs-pre.target",
    "remote-fs.target",
    "time-set.target",
    "time-sync.target",
    "shutdown.target",
    "umount.target",
    "user.slice",
    // The journal (`journalctl -u`, `shipit logs`), persistent when /var/log/journal exists.
    "systemd-journald.service",
    "systemd-journald.socket",
    "systemd-journald-dev-log.socket",
    "systemd-journal-flush.service",
    // The system bus: `systemctl` as a user other than root goes through it.
    "dbus.service",
    "dbus.socket",
    // deploy's user manager (systemctl --user), see SystemdHost::enable_linger.
    "user@.service",
    "user-runtime-dir@.service",
];

/// Masked whether this machine ships them or not: they would change the machine (tmpfiles
/// cleans /tmp and /var/tmp; remount-fs, sysctl, modules-load, binfmt, udev, random-seed act on
/// the kernel, the disk or devices), take a console or log-ins (getty, logind, firstboot,
/// utmp), mount over shared paths (tmp.mount), shut down, or are what a generator would make.
const ALWAYS_MASKED: &[&str] = &[
    "systemd-tmpfiles-setup.service",
    "systemd-tmpfiles-setup-dev.service",
    "systemd-tmpfiles-setup-dev-early.service",
    "systemd-tmpfiles-clean.service",
    "systemd-tmpfiles-clean.timer",
    "tmp.mount",
    "var-tmp.mount",
    "systemd-remount-fs.service",
    "systemd-sysctl.service",
    "systemd-modules-load.service",
    "kmod-static-nodes.service",
    "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount",
    "proc-sys-fs-binfmt_misc.mount",
    "systemd-udevd.service",
    "systemd-udevd-control.socket",
    "systemd-udevd-kernel.socket",
    "systemd-udev-trigger.service",
    "systemd-udev-settle.service",
    "systemd-hwdb-update.service",
    "systemd-random-seed.service",
    "systemd-fsck-root.service",
    "systemd-fsck@.service",
    "systemd-journald-audit.socket",
    "kernel-command-line.service",
    "debug-shell.service",
    "systemd-cryptsetup@.service",
    "systemd-veritysetup@.service",
    "systemd-integritysetup@.service",
    "systemd-hibernate-resume@.service",
    "rc-local.service",
    "getty.target",
    "getty@.service",
    "serial-getty@.service",
    "console-getty.service",
    "container-getty@.service",
    "systemd-logind.service",
    "systemd-user-sessions.service",
    "systemd-firstboot.service",
    "systemd-machine-id-commit.service",
    "systemd-sysusers.service",
    "systemd-update-utmp.service",
    "systemd-update-utmp-runlevel.service",
    "systemd-networkd.service",
    "systemd-resolved.service",
    "systemd-timesyncd.service",
    "emergency.target",
    "emergency.service",
    "rescue.target",
    "rescue.service",
    "poweroff.target",
    "reboot.target",
    "halt.target",
    "kexec.target",
    "ctrl-alt-del.target",
];

/// Where the machine's user units are (the user manager also reads ~/.config, /etc and /run,
/// which are the host's own).
const USER_UNIT_DIRS: &[&str] = &[
    "/lib/systemd/user",
    "/usr/lib/systemd/user",
    "/usr/local/lib/systemd/user",
    "/usr/share/systemd/user",
    "/usr/local/share/systemd/user",
];

/// The machine's user units that keep their definition: a user manager's own targets.
const KEPT_USER_UNITS: &[&str] = &[
    "default.target",
    "basic.target",
    "sockets.target",
    "timers.target",
    "paths.target",
    "shutdown.target",
    "exit.target",
    "systemd-exit.service",
    "app.slice",
    "background.slice",
    "session.slice",
];

/// The user manager's tmpfiles would clean deploy's files in /tmp.
const ALWAYS_MASKED_USER: &[&str] = &[
    "systemd-tmpfiles-setup.service",
    "systemd-tmpfiles-clean.service",
    "systemd-tmpfiles-clean.timer",
];

/// Covered by an empty directory when they exist: where generators are, and unit directories
/// that the host's masks could not override.
const HIDDEN_DIRS: &[&str] = &[
    "/lib/systemd/system-generators",
    "/usr/lib/systemd/system-generators",
    "/usr/local/lib/systemd/system-generators",
    "/etc/systemd/system-generators",
    "/lib/systemd/user-generators",
    "/usr/lib/systemd/user-generators",
    "/usr/local/lib/systemd/user-generators",
    "/etc/systemd/user-generators",
    "/etc/systemd/system.control",
    "/etc/systemd/system.attached",
    "/usr/local/lib/systemd/system",
    "/etc/xdg/systemd/user",
];

/// A directory in /tmp holding the host's "disk" (each bind-mounted at its place inside):
/// `system/` (/etc/systemd/system), `user/` (/etc/systemd/user), `var-lib-systemd/`,
/// `journal/` (/var/log/journal), `sudoers.d/`, `config-systemd/` and `share-systemd/`
/// (deploy's ~/.config/systemd and ~/.local/share/systemd), `empty/` (over hidden
/// directories), and `boot.sh`, `boot.log`, `console.log`.
pub(super) struct Disk {
    dir: tempfile::TempDir,
}

impl Disk {
    /// A new disk: the masks, `default.target`, sshd's and nginx's units (enabled), the user
    /// manager's environment and the sudo rules.
    pub(super) fn create(sshd: &Sshd, nginx: &Nginx) -> Disk {
        let dir = tempfile::Builder::new()
            .prefix("shipit-systemd-")
            .tempdir_in("/tmp")
            .expect("systemd host tempdir");
        chmod(dir.path(), 0o755);
        let disk = Disk { dir };
        for name in [
            "system",
            "user",
            "var-lib-systemd",
            "journal",
            "sudoers.d",
            "empty",
        ] {
            std::fs::create_dir(disk.dir(name)).expect("mkdir in the disk");
            chmod(&disk.dir(name), 0o755);
        }
        for name in ["config-systemd", "share-systemd"] {
            mkdir_as_deploy(&disk.dir(name));
        }
        std::fs::write(disk.dir("boot.sh"), BOOT_SH).expect("write boot.sh");
        std::fs::write(disk.dir("console.log"), "").expect("write console.log");

        let system = disk.system();
        // What the generators would make, were they to run: the SysV generator's NAME.service
        // for each /etc/init.d/NAME, and the others' (in ALWAYS_MASKED).
        let sysv = std::fs::read_dir("/etc/init.d")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| format!("{}.service", e.file_name().to_string_lossy()));
        let always = ALWAYS_MASKED.iter().map(|n| n.to_string()).chain(sysv);
        mask(&system, SYSTEM_UNIT_DIRS, KEPT_SYSTEM_UNITS, always);
        symlink(
            "/lib/systemd/system/multi-user.target",
            system.join("default.target"),
        )
        .expect("link default.target");
        let always = ALWAYS_MASKED_USER.iter().map(|n| n.to_string());
        mask(&disk.dir("user"), USER_UNIT_DIRS, KEPT_USER_UNITS, always);
        // pam_systemd would set it; without logind, the user manager needs it to start.
        let drop_in = system.join("user@.service.d");
        std::fs::create_dir(&drop_in).expect("mkdir user@.service.d");
        std::fs::write(
            drop_in.join("shipit-test.conf"),
            "# The test host has no logind (see tests/support/src/systemd.rs).\n\
             [Service]\nEnvironment=XDG_RUNTIME_DIR=/run/user/%i\n",
        )
        .expect("write the user@.service drop-in");

        for (unit, text) in [
            (SSHD_UNIT, sshd_unit(sshd)),
            (NGINX_UNIT, nginx_unit(nginx)),
        ] {
            std::fs::write(system.join(unit), text).expect("write a unit");
            disk.enable(unit, &Path::new("/etc/systemd/system").join(unit));
        }
        disk.write_sudoers(SUDOERS);
        disk
    }

    pub(super) fn dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The host's /etc/systemd/system.
    pub(super) fn system(&self) -> PathBuf {
        self.dir("system")
    }

    /// What `systemctl enable` does for a unit `WantedBy=multi-user.target` whose file is
    /// `target` (inside).
    pub(super) fn enable(&self, unit: &str, target: &Path) {
        let wants = self.system().join("multi-user.target.wants");
        std::fs::create_dir_all(&wants).expect("mkdir multi-user.target.wants");
        let link = wants.join(unit);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(target, &link).unwrap_or_else(|e| panic!("enable {unit}: {e}"));
        }
    }

    pub(super) fn write_sudoers(&self, text: &str) {
        let path = self.dir("sudoers.d").join("shipit-test");
        std::fs::write(&path, text).expect("write sudoers");
        chmod(&path, 0o440);
    }

    /// FROM → ONTO: the disk's directories at their places, and the empty one over
    /// [`HIDDEN_DIRS`] that exist.
    pub(super) fn binds(&self) -> Vec<(PathBuf, PathBuf)> {
        let home = deploy_user().home;
        for dir in [
            ".config",
            ".config/systemd",
            ".local",
            ".local/share",
            ".local/share/systemd",
        ] {
            mkdir_as_deploy(&home.join(dir));
        }
        let mut binds: Vec<(PathBuf, PathBuf)> = [
            ("system", "/etc/systemd/system"),
            ("user", "/etc/systemd/user"),
            ("var-lib-systemd", "/var/lib/systemd"),
            ("sudoers.d", "/etc/sudoers.d"),
        ]
        .iter()
        .map(|(from, onto)| (self.dir(from), PathBuf::from(onto)))
        .collect();
        binds.push((self.dir("config-systemd"), home.join(".config/systemd")));
        binds.push((self.dir("share-systemd"), home.join(".local/share/systemd")));
        if Path::new("/var/log/journal").is_dir() {
            binds.push((self.dir("journal"), "/var/log/journal".into()));
        }
        for (_, onto) in &binds {
            assert!(
                onto.is_dir(),
                "{} does not exist: are systemd and sudo installed (.ci/setup)?",
                onto.display()
            );
        }
        let mut covered: Vec<PathBuf> = binds.iter().map(|(_, onto)| onto.clone()).collect();
        for dir in HIDDEN_DIRS {
            let Ok(real) = std::fs::canonicalize(dir) else {
                continue;
            };
            if real.is_dir() && !covered.contains(&real) {
                binds.push((self.dir("empty"), real.clone()));
                covered.push(real);
            }
        }
        binds
    }

    /// boot.sh's output and PID 1's console, for a failure message.
    pub(super) fn logs(&self) -> String {
        format!(
            "boot.log:\n{}\nconsole.log:\n{}",
            read_lossy(&self.dir("boot.log")),
            read_lossy(&self.dir("console.log"))
        )
    }
}

/// The host's sshd as a unit: started once it listens (`Type=notify`, as Debian's
/// ssh.service), its sessions left alone when it stops (`KillMode=process`), its log where
/// [`Sshd::log`] reads it.
fn sshd_unit(sshd: &Sshd) -> String {
    format!(
        "[Unit]\n\
         Description=OpenSSH server of the shipit test host\n\
         \n[Service]\n\
         Type=notify\n\
         ExecStart={command}\n\
         RuntimeDirectory=sshd\n\
         RuntimeDirectoryMode=0755\n\
         RuntimeDirectoryPreserve=yes\n\
         KillMode=process\n\
         StandardOutput=append:{log}\n\
         StandardError=append:{log}\n\
         \n[Install]\n\
         WantedBy=multi-user.target\n",
        command = sshd.daemon_command(),
        log = sshd.log_path().display(),
    )
}

/// The host's nginx as a unit, as deploy (so that deploy's sessions test and reload it).
fn nginx_unit(nginx: &Nginx) -> String {
    let user = deploy_user().name;
    format!(
        "[Unit]\n\
         Description=nginx of the shipit test host, as {user}\n\
         \n[Service]\n\
         User={user}\n\
         Group={user}\n\
         WorkingDirectory={dir}\n\
         ExecStart={command}\n\
         KillMode=mixed\n\
         StandardOutput=append:{out}\n\
         StandardError=append:{out}\n\
         \n[Install]\n\
         WantedBy=multi-user.target\n",
        dir = nginx.dir.path().display(),
        command = nginx.daemon_command(),
        out = nginx.dir.path().join("nginx.out").display(),
    )
}

/// Masks (links to /dev/null in `dir`) every unit in `shipped` directories, and every unit
/// their `.wants`/`.requires`/`.upholds` directories name, that is not `kept`; and `always`.
fn mask(dir: &Path, shipped: &[&str], kept: &[&str], always: impl Iterator<Item = String>) {
    let mut names = std::collections::BTreeSet::new();
    for unit_dir in shipped {
        for entry in std::fs::read_dir(unit_dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if [".wants", ".requires", ".upholds"]
                .iter()
                .any(|s| name.ends_with(s))
            {
                for linked in std::fs::read_dir(entry.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    names.insert(linked.file_name().to_string_lossy().into_owned());
                }
            } else if !name.ends_with(".d") {
                names.insert(name);
            }
        }
    }
    names.extend(always);
    for name in names.iter().filter(|n| !kept.contains(&n.as_str())) {
        symlink("/dev/null", dir.join(name)).unwrap_or_else(|e| panic!("mask {name}: {e}"));
    }
}
