//! The process managers' families (`pm_supervisor_*`, `pm_systemd_*`), each verb run on its own
//! with supervisorctl or systemctl and journalctl stubbed by scripts that answer as the real
//! tools do; the seam's dispatch (`shipit_pm`, `shipit_pms`, `auto`) and the app server's
//! (`server_gunicorn_*`, and `server_uvicorn_*`, which are gunicorn's: uvicorn runs as its
//! worker class).

use super::{each_shell, Host};
use crate::plan::quote;

pub(super) const COVERS: &[&str] = &[
    "pm_supervisor_here",
    "pm_supervisor_init",
    "pm_supervisor_require",
    "pm_systemd_require",
    "pm_supervisor_start",
    "pm_supervisor_seen",
    "pm_supervisor_dead",
    "pm_supervisor_status",
    "pm_supervisor_log",
    "pm_supervisor_wait",
    "pm_supervisor_died",
    "pm_supervisor_stop_new",
    "pm_supervisor_stop_old",
    "pm_supervisor_reap",
    "pm_supervisor_draining",
    "pm_supervisor_installed",
    "pm_supervisor_check",
    "pm_supervisor_logs",
    "pm_systemd_here",
    "pm_systemd_init",
    "pm_systemd_dead",
    "pm_systemd_seen",
    "pm_systemd_status",
    "pm_systemd_log",
    "pm_systemd_start",
    "pm_systemd_wait",
    "pm_systemd_died",
    "pm_systemd_stop_new",
    "pm_systemd_stop_old",
    "pm_systemd_reap",
    "pm_systemd_check",
    "pm_systemd_logs",
    "pm_systemd_installed",
    "pm_systemd_draining",
];

mod on_supervisor;
mod on_systemd;

pub(super) use on_supervisor::*;
pub(super) use on_systemd::*;

/// The pid and start time of process `pid`, as `shipit_starttime` reads them: the record of a
/// drain whose job is that process.
fn job(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let start = stat
        .rsplit_once(") ")
        .unwrap()
        .1
        .split(' ')
        .nth(19)
        .unwrap();
    format!("pid={pid}\nstart={start}\n")
}

/// A job that still runs: this test process.
pub(super) fn running_job() -> String {
    job(std::process::id())
}

/// A job that ends, done (it writes `done`, as a drain's job does), once the step waits for it:
/// the step's first `sleep` (stubbed on the host's PATH) says so, however slow the machine is.
/// The process and its record.
pub(super) fn ending_job(host: &Host, done: &std::path::Path) -> (std::process::Child, String) {
    let waiting = host.path("waiting");
    let waiting = quote(waiting.to_str().unwrap());
    host.stub("sleep", &format!(": > {waiting}\nexec /bin/sleep \"$@\""));
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "until [ -e {waiting} ]; do sleep 0.02; done; : > {}",
            quote(done.to_str().unwrap())
        ))
        .spawn()
        .unwrap();
    let record = job(child.id());
    (child, record)
}

/// Waits up to 10 s for `path` to exist (what a background job writes last).
pub(super) fn wait_for(path: &std::path::Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !path.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(path.exists(), "no {}", path.display());
}

#[test]
fn dispatch_runs_the_hosts_manager_or_every_one_and_auto_takes_the_first_that_is_here() {
    let probes = "pm_systemd_probe() { echo \"systemd $*\"; }\n\
                  pm_supervisor_probe() { echo \"supervisor $*\"; }\n";
    each_shell(|host| {
        let etc = host.path("etc");
        host.set("MANAGER", "supervisor");
        host.run(&format!(
            "{probes}shipit_pm probe 'a  b'\nshipit_pms probe c"
        ))
        .status(0)
        .says("supervisor a  b\nsystemd c\nsupervisor c\n");
        // `auto` as this host resolves it: systemd when it runs here, else supervisor, which
        // every host can run.
        host.set("MANAGER", "auto");
        let systemd_here = std::path::Path::new("/run/systemd/system").is_dir();
        host.run(
            "if pm_systemd_here; then echo systemd here; else echo no systemd; fi\n\
             pm_supervisor_here && echo supervisor here\necho \"manager=$MANAGER\"",
        )
        .status(0)
        .says(match systemd_here {
            true => "systemd here\nsupervisor here\nmanager=systemd\n",
            false => "no systemd\nsupervisor here\nmanager=supervisor\n",
        });
        // Both here: the first in MANAGERS; every manager's names are set either way.
        let init = "MANAGER=auto\nshipit_pm_init\n\
                    echo \"manager=$MANAGER web=$(shipit_systemd_web) conf=$PROGRAM_CONF\"";
        let names = format!(
            "web={} conf={}/{WEB}.conf\n",
            unit("web", ID),
            etc.display()
        );
        host.run(&format!("pm_systemd_here() {{ true; }}\n{init}"))
            .status(0)
            .says(&format!("manager=systemd {names}"));
        host.run(&format!("pm_systemd_here() {{ false; }}\n{init}"))
            .status(0)
            .says(&format!("manager=supervisor {names}"));
    });
}

/// The app servers, as `SERVER` names them: each runs under gunicorn's arbiter.
const SERVERS: [&str; 2] = ["gunicorn", "uvicorn"];

#[test]
fn gunicorn_prepare_turns_the_control_socket_off_from_version_25() {
    each_shell(|host| {
        for server in SERVERS {
            std::fs::create_dir_all(host.r(".shipit")).unwrap();
            let args = host.r(".shipit/gunicorn.args");
            let prepare = format!("SERVER={server}\nshipit_step prepare shipit_server prepare");
            let site = host.r(".venv/lib/python3.12/site-packages");
            let _ = std::fs::remove_dir_all(&site);
            host.run(&prepare).status(0);
            assert_eq!(std::fs::read_to_string(&args).unwrap(), "", "{server}");
            std::fs::create_dir_all(site.join("gunicorn-23.0.0.dist-info")).unwrap();
            host.run(&prepare).status(0);
            assert_eq!(std::fs::read_to_string(&args).unwrap(), "", "{server}");
            std::fs::remove_dir(site.join("gunicorn-23.0.0.dist-info")).unwrap();
            std::fs::create_dir_all(site.join("gunicorn-25.0.1.dist-info")).unwrap();
            host.run(&prepare).status(0);
            assert_eq!(
                std::fs::read_to_string(&args).unwrap(),
                "--no-control-socket\n",
                "{server}"
            );
        }
    });
}

#[test]
fn gunicorn_log_keeps_the_cause_a_long_log_pushed_out_of_view() {
    each_shell(|host| {
        for server in SERVERS {
            let exits =
                "[2026-11-22 01:03:21 +0000] [123] [ERROR] Worker (pid:124) exited with code 3\n"
                    .repeat(14);
            host.write(host.path("log"), &format!("{CRASH}{exits}"));
            let log = host.path("log");
            let read = format!(
                "SERVER={server}\nshipit_server log < {}",
                quote(log.to_str().unwrap())
            );
            let run = host.run(&read);
            run.status(0).says(
                "the app server died with: ModuleNotFoundError: No module named 'hello.local'",
            );
            assert_eq!(
                run.text.matches("exited with code 3").count(),
                12,
                "{server}: {run:?}"
            );
            assert!(!run.text.contains("Traceback"), "{server}: {run:?}");
            host.write(&log, &exits);
            let run = host.run(&read);
            run.status(0);
            assert!(!run.text.contains("died with"), "{server}: {run:?}");
        }
    });
}

#[test]
fn uvicorn_log_says_what_to_install_when_its_worker_is_missing() {
    each_shell(|host| {
        let log = host.path("log");
        host.write(
            &log,
            "[2026-11-22 01:03:20 +0000] [1] [INFO] Starting gunicorn 27.0.1\n\
             Traceback (most recent call last):\n\
             ModuleNotFoundError: No module named 'uvicorn_worker'\n",
        );
        let read = |server: &str| {
            host.run(&format!(
                "SERVER={server}\nshipit_server log < {}",
                quote(log.to_str().unwrap())
            ))
        };
        read("uvicorn")
            .status(0)
            .says("the app server died with: ModuleNotFoundError: No module named 'uvicorn_worker'")
            .says("pin uvicorn-worker (and websockets) in the target's requirements");
        let gunicorn = read("gunicorn");
        assert!(
            !gunicorn.text.contains("pin uvicorn-worker"),
            "{gunicorn:?}"
        );
    });
}

/// Each manager's control command is looked for before a deploy changes anything: missing, it
/// is named with its setting; behind sudo, sudo is what must be there.
#[test]
fn each_managers_control_command_is_required_on_path() {
    each_shell(|host| {
        // Only the stubs on PATH: this machine's own sudo is not.
        let require = format!(
            "PATH={}\nshipit_step require shipit_pm require",
            host.path("bin").display()
        );
        let require = require.as_str();
        supervisor(host, "");
        host.run(require).status(0);
        host.set("CTL", "/nonexistent/supervisorctl -c x.conf");
        host.run(require).status(127).says(
            "/nonexistent/supervisorctl, which [targets.production.supervisor] ctl runs, is not on",
        );
        systemd(host, "");
        host.run(require).status(0);
        host.set("SYSTEMCTL", "/nonexistent/systemctl");
        host.run(require)
            .status(127)
            .says("/nonexistent/systemctl, which [targets.production.systemd] ctl runs, is not on");
        // Behind sudo (stubbed here), only sudo is looked for: sudo has a PATH of its own.
        host.set("SYSTEMCTL", "sudo -n /nonexistent/systemctl");
        host.run(require).status(0);
        std::fs::remove_file(host.path("bin/sudo")).unwrap();
        host.run(require)
            .status(127)
            .says("sudo, which [targets.production.systemd] ctl runs, is not on");
    });
}
