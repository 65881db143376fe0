//! The systemd test host works (tests/support/src/systemd.rs), before any deploy uses it: a
//! real systemd boots as PID 1 of its own namespaces with nothing but journald, D-Bus, sshd and
//! nginx; deploy reaches it over real SSH and runs `sudo -n systemctl`; a `Type=notify` unit
//! logs to the journal; a reboot brings back exactly the enabled units; deploy's user manager
//! runs; two hosts run at once, each its own machine. And it leaves the machine alone: files in
//! /tmp and /var/tmp survive every step (tmpfiles would wipe them), and once dropped, even by a
//! test that panics, no process of the host is left.
//!
//! Needs root (skipped otherwise). Timings: `cargo test --test systemd_host -- --nocapture`.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use support::systemd::{ProcId, SystemdHost};
use support::*;

/// How long the journal may take to show what a unit printed.
const JOURNAL_TIMEOUT: Duration = Duration::from_secs(10);

/// A `Type=notify` service (run as deploy): prints, writes `DIR/smoke-NAME`, tells systemd it is
/// ready (from the main process, as `NotifyAccess=main` wants), then runs until stopped.
const SMOKE_PY: &str = r#"import os, socket, sys, time
name, directory = sys.argv[1], sys.argv[2]
print(f"smoke {name} started", flush=True)
with open(os.path.join(directory, f"smoke-{name}"), "w") as f:
    f.write(f"{name}\n")
address = os.environ["NOTIFY_SOCKET"]
if address.startswith("@"):
    address = "\0" + address[1:]
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
    s.sendto(b"READY=1", address)
while True:
    time.sleep(3600)
"#;

fn root() -> bool {
    prerequisite(is_root(), "the systemd test host needs root")
}

/// Old files in /tmp and /var/tmp (tmpfiles' boot run removes everything there, its clean run
/// what is older than 10 or 30 days): they must outlive every step of a host.
struct Canaries(Vec<tempfile::NamedTempFile>);

impl Canaries {
    fn plant() -> Canaries {
        let old = SystemTime::now() - Duration::from_secs(60 * 86400);
        Canaries(
            ["/tmp", "/var/tmp"]
                .iter()
                .map(|dir| {
                    let mut file = tempfile::Builder::new()
                        .prefix("shipit-systemd-canary-")
                        .tempfile_in(dir)
                        .expect("a canary");
                    file.write_all(b"canary\n").unwrap();
                    file.as_file().set_modified(old).unwrap();
                    file
                })
                .collect(),
        )
    }

    fn alive(&self, after: &str) {
        for canary in &self.0 {
            assert_eq!(
                std::fs::read_to_string(canary.path()).ok().as_deref(),
                Some("canary\n"),
                "{} is gone after {after}",
                canary.path().display()
            );
        }
    }
}

/// Waits until `journal()` (a journalctl's output) has `needle`; panics with it otherwise.
fn journal_says(needle: &str, journal: impl Fn() -> String) -> String {
    let mut last = String::new();
    wait_for(JOURNAL_TIMEOUT, || {
        last = journal();
        last.contains(needle).then_some(())
    })
    .unwrap_or_else(|| panic!("the journal never said {needle:?}:\n{last}"));
    last
}

/// The smoke@.service template, whose instances write into `out`.
fn smoke_unit(out: &Path) -> String {
    let script = out.join("smoke.py");
    std::fs::write(&script, SMOKE_PY).unwrap();
    format!(
        "[Unit]\n\
         Description=smoke test %i\n\
         \n[Service]\n\
         Type=notify\n\
         User=deploy\n\
         ExecStart=/usr/bin/python3 {script} %i {out}\n\
         \n[Install]\n\
         WantedBy=multi-user.target\n",
        script = script.display(),
        out = out.display()
    )
}

/// An nginx site on `port` answering `body`, installed and reloaded from an SSH session as a
/// deploy would.
fn serve_site(host: &SystemdHost, port: u16, body: &str) {
    write_as_deploy(
        &host.nginx.sites_dir.join("smoke.conf"),
        format!("server {{\n    listen 127.0.0.1:{port};\n    return 200 \"{body}\";\n}}\n"),
    );
    host.ssh_ok(&format!(
        "{} && {}",
        host.nginx.test_command(),
        host.nginx.reload_command()
    ));
    serves(port, body);
}

fn serves(port: u16, body: &str) {
    let mut last = None;
    wait_for(Duration::from_secs(10), || {
        last = Some(http_get(port, "/"));
        matches!(&last, Some(Ok((200, b))) if b == body).then_some(())
    })
    .unwrap_or_else(|| panic!("nginx never served {body:?} on {port}; last: {last:?}"));
}

/// Every one of `processes` (of a host, with systemd, sshd, nginx and the units) is gone.
fn assert_gone(processes: &[ProcId], after: &str) {
    assert!(processes.len() >= 4, "{processes:?}");
    let left: Vec<&ProcId> = processes.iter().filter(|p| p.alive()).collect();
    assert!(left.is_empty(), "still running after {after}: {left:?}");
}

fn running_services(host: &SystemdHost) -> Vec<String> {
    host.running_units("*.service")
}

#[test]
fn a_systemd_host_runs_units_for_deploy_and_brings_the_enabled_ones_back_after_a_reboot() {
    if !root() {
        return;
    }
    let canaries = Canaries::plant();
    let mut host = SystemdHost::start();
    canaries.alive("the boot");

    // The boot started nothing of the machine's: only journald, D-Bus and the host's servers.
    assert_eq!(
        running_services(&host),
        [
            "dbus.service",
            "shipit-test-nginx.service",
            "shipit-test-sshd.service",
            "systemd-journald.service"
        ]
    );
    assert!(host.is_active("multi-user.target"));
    for unit in [
        "systemd-tmpfiles-setup.service",
        "ssh.service",
        "nginx.service",
    ] {
        let state = host.systemctl(&["is-enabled", unit]);
        assert_eq!(
            String::from_utf8_lossy(&state.stdout).trim(),
            "masked",
            "{unit}"
        );
    }

    // A session sees a system run by systemd (sd_booted(3)'s test).
    host.ssh_ok("test -d /run/systemd/system");

    // deploy starts an instance of a template unit over SSH, with sudo.
    let out = deploy_owned_tempdir();
    host.write_unit("smoke@.service", &smoke_unit(out.path()));
    host.ssh_ok("sudo -n systemctl start smoke@1.service");
    assert_eq!(
        std::fs::read_to_string(out.path().join("smoke-1")).unwrap(),
        "1\n"
    );
    canaries.alive("a service with default dependencies started");
    // What it printed is in the journal; its state is readable as deploy (through D-Bus).
    journal_says("smoke 1 started", || {
        host.journalctl(&["-u", "smoke@1.service"])
    });
    assert_eq!(
        host.ssh_ok("systemctl is-active smoke@1.service"),
        "active\n"
    );
    // sudo allows systemctl, nothing else.
    let refused = host.ssh("sudo -n /bin/cat /etc/shadow");
    assert!(!refused.status.success());

    // nginx runs inside: a reload from a session reaches it.
    let port = free_port();
    serve_site(&host, port, "smoke");

    // One instance enabled, one only started: after a reboot, only the enabled one runs.
    host.ssh_ok(
        "sudo -n systemctl enable smoke@1.service && sudo -n systemctl start smoke@2.service",
    );
    assert_eq!(
        host.running_units("smoke@*"),
        ["smoke@1.service", "smoke@2.service"]
    );
    std::fs::remove_file(out.path().join("smoke-1")).unwrap();
    let before = host.processes();
    host.reboot();
    assert_gone(&before, "the reboot");
    canaries.alive("a reboot");
    assert_eq!(host.running_units("smoke@*"), ["smoke@1.service"]);
    assert!(out.path().join("smoke-1").is_file());
    journal_says("smoke 1 started", || {
        host.journalctl(&["-b", "-u", "smoke@1.service"])
    });
    // sshd and nginx came back with it, on the same ports.
    assert_eq!(
        host.ssh_ok("systemctl is-active smoke@2.service || true"),
        "inactive\n"
    );
    serves(port, "smoke");

    let processes = host.processes();
    drop(host);
    assert_gone(&processes, "the host was dropped");
    canaries.alive("the end");
}

#[test]
fn user_units_run_under_deploys_lingering_user_manager() {
    if !root() {
        return;
    }
    let mut host = SystemdHost::start();
    host.enable_linger();
    // As the brief of the user-unit backend has it, and with the session's own variable.
    host.ssh_ok("XDG_RUNTIME_DIR=/run/user/$(id -u) systemctl --user status >/dev/null");
    assert_eq!(
        host.ssh_ok("systemctl --user is-system-running"),
        "running\n"
    );

    // deploy installs, enables and starts a user unit, over SSH.
    host.ssh_ok(
        "mkdir -p ~/.config/systemd/user && \
         printf '[Service]\\nExecStart=/bin/sh -c \"echo greet up; exec sleep infinity\"\\n\
         [Install]\\nWantedBy=default.target\\n' >~/.config/systemd/user/greet.service && \
         systemctl --user daemon-reload && systemctl --user enable --now greet.service",
    );
    assert!(host
        .user_systemctl(&["is-active", "greet.service"])
        .status
        .success());
    // deploy reads its units' journal (its own journal file, the journal being persistent).
    journal_says("greet up", || {
        host.ssh_ok("journalctl --user -u greet.service")
    });
    // The unit file is in the host's own ~/.config/systemd, not in deploy's real home.
    let real = deploy_user()
        .home
        .join(".config/systemd/user/greet.service");
    assert!(!real.exists(), "{} is on the machine", real.display());

    host.reboot();
    assert_eq!(
        host.ssh_ok("systemctl --user is-active greet.service"),
        "active\n"
    );
}

#[test]
fn two_systemd_hosts_at_once_are_two_machines() {
    if !root() {
        return;
    }
    let a = SystemdHost::start();
    let b = SystemdHost::start_second(&a);
    assert_ne!(a.pid1(), b.pid1());
    let of_b = b.processes();
    assert!(a.processes().iter().all(|p| !of_b.contains(p)));
    assert_ne!(a.sshd.port, b.sshd.port);

    // A unit of A's does not exist on B.
    a.write_unit(
        "only-a.service",
        "[Service]\nExecStart=/bin/sleep infinity\n",
    );
    a.ssh_ok("sudo -n systemctl start only-a.service");
    assert_eq!(a.running_units("only-a*"), ["only-a.service"]);
    assert!(b.running_units("only-a*").is_empty());
    assert!(!b.ssh("systemctl cat only-a.service").status.success());

    // On B, A's paths are B's directories: what B's session writes at A's deploy_to lands in B's.
    let marker = a.deploy_to().join("marker");
    b.ssh_ok(&format!(
        "mkdir -p {} && echo b >{}",
        a.deploy_to().display(),
        marker.display()
    ));
    assert!(!marker.exists());
    assert_eq!(
        std::fs::read_to_string(b.deploy_to().join("marker")).unwrap(),
        "b\n"
    );
    // And its nginx is B's own, reloaded through A's paths.
    let port = free_port();
    b.ssh_ok(&format!(
        "echo 'server {{ listen 127.0.0.1:{port}; return 200 \"b\"; }}' >{site} && \
         {test} && {reload}",
        site = a.nginx.sites_dir.join("b.conf").display(),
        test = a.nginx.test_command(),
        reload = a.nginx.reload_command()
    ));
    serves(port, "b");
    assert!(b.nginx.sites_dir.join("b.conf").is_file());
    assert!(!a.nginx.sites_dir.join("b.conf").exists());

    let processes = [a.processes(), b.processes()].concat();
    drop(b);
    drop(a);
    assert_gone(&processes, "both hosts were dropped");
}

#[test]
fn a_test_that_panics_leaves_nothing_of_its_host_running() {
    if !root() {
        return;
    }
    let (processes, of_the_host) = std::sync::mpsc::channel();
    let test = std::thread::spawn(move || {
        let host = SystemdHost::start();
        host.enable_linger();
        processes.send(host.processes()).unwrap();
        panic!("a test failing with its host running (on purpose)");
    });
    assert!(test.join().is_err());
    assert_gone(&of_the_host.recv().unwrap(), "the test panicked");
}
