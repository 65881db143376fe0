//! The app's steps: the release's rendered service configs kept, its app server and processes
//! started and waited for, every other release's stopped after the switch, and what earlier
//! runs left stopping reaped. They reach the process managers only through the seam
//! (`shipit_pm`, `shipit_pms`), whose verbs `pm.rs` tests one by one; here each step runs
//! whole, under supervisor and under systemd, to show what it decides and which manager it asks.

use super::pm::{
    confd, ending_job, programs, release_units, running_job, stopping_old_web, supervisor, systemd,
    unit, wait_for, CRASH, ID, OLD, OLD_ID, SHOW, WEB, WORKER,
};
use super::{each_shell, App, Host};
use crate::manager::ServiceConfigs;
use crate::plan::quote;
use std::path::Path;

pub(super) const COVERS: &[&str] = &[
    "step_configs",
    "step_start_app",
    "step_stop_old_app",
    "step_reap",
];

/// Every file under `dir`, as a path relative to it, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, found);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                found.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, dir, &mut found);
    found.sort();
    found
}

/// `configs` as `step_configs` takes them (what `Step::Configs` renders).
fn bundle(configs: &ServiceConfigs) -> String {
    crate::plan::base64(configs.bundle().unwrap().as_bytes())
}

#[test]
fn configs_keeps_each_file_of_the_bundle_at_its_path_byte_for_byte() {
    let mut configs = ServiceConfigs::default();
    configs.add(
        "nginx.conf",
        "nginx site",
        "server {\n\tlisten 80;\n\troot \"/srv/my app\";  # 100% of it, a \\n that stays\n}\n\n"
            .to_string(),
    );
    configs.add(
        "supervisor.conf",
        "supervisor programs",
        programs(&[WEB, WORKER], "/srv/my app/releases/20261122010320"),
    );
    configs.add(
        "systemd/hello.production.web@.service",
        "systemd template",
        "[Service]\r\nExecStart=/srv/my app/current/.shipit/systemd/web.sh $MAINPID\r\n"
            .to_string(),
    );
    configs.add(
        "systemd/web.sh",
        "run script",
        "#!/bin/sh\n  #@shipit-file not a mark\nexec gunicorn 'hello.wsgi' \"$@\" `id` $(id)\n"
            .to_string(),
    );
    configs.add(
        "schedule.tab",
        "schedule",
        "*/5 * * * *\tcafé — ünïcode\n".to_string(),
    );
    let bundle = bundle(&configs);
    each_shell(|host| {
        // What a retried release kept before is written over, not added to.
        host.write(host.r(".shipit/nginx.conf"), &"# stale\n".repeat(40));
        let kept = host.r(".shipit");
        host.step("step_configs", &[&bundle])
            .status(0)
            .says(&format!(
                "rendered service configs kept in {}\n",
                kept.display()
            ));
        for file in configs.files() {
            assert_eq!(
                std::fs::read_to_string(kept.join(&file.path)).unwrap(),
                file.text,
                "{:?} {}",
                host.shell,
                file.path
            );
        }
        let mut paths: Vec<&str> = configs.files().iter().map(|f| f.path.as_str()).collect();
        paths.sort();
        assert_eq!(files_under(&kept), paths, "{:?}", host.shell);
    });
}

#[test]
fn configs_of_a_release_with_none_writes_nothing() {
    each_shell(|host| {
        host.step("step_configs", &["-"])
            .status(0)
            .says("no service config to keep");
        assert!(files_under(&host.r(".shipit")).is_empty());
        // A full disk while the bundle is decoded fails the step.
        let mut configs = ServiceConfigs::default();
        configs.add("nginx.conf", "nginx site", "server {}\n".to_string());
        host.stub(
            "base64",
            "echo 'base64: write error: No space left on device' >&2; exit 1",
        );
        host.step("step_configs", &[&bundle(&configs)])
            .status(1)
            .says("No space left on device")
            .never_says("kept in");
        assert!(!host.r(".shipit/nginx.conf").exists());
    });
}

#[test]
fn configs_refuses_a_path_out_of_the_releases_shipit_dir_and_writes_nothing() {
    each_shell(|host| {
        let outside = host.path("escape.conf");
        for path in [
            "../escape.conf",
            "systemd/../../../escape.conf",
            "..",
            outside.to_str().unwrap(),
        ] {
            let mut configs = ServiceConfigs::default();
            configs.add("nginx.conf", "nginx site", "server {}\n".to_string());
            configs.add(path, "a config", "evil\n".to_string());
            host.step("step_configs", &[&bundle(&configs)])
                .status(1)
                .says(&format!(
                    "refused to write a config outside {}: {path}\n",
                    host.r(".shipit").display()
                ));
            let everything = files_under(&host.path(""));
            assert!(
                !everything.iter().any(|f| f.ends_with("escape.conf")),
                "{:?}: {everything:?}",
                host.shell
            );
            // Not even the files before it: the release keeps the configs whole or none.
            assert!(!host.r(".shipit/nginx.conf").exists(), "{:?}", host.shell);
        }
    });
}

/// This run holds the lock, and its release has a venv with gunicorn `version` whose python is
/// the host's python3 (the health probe is real).
fn startable(host: &Host, version: &str) {
    host.lock();
    let venv = host.r(".venv");
    let site = venv.join(format!(
        "lib/python3.12/site-packages/gunicorn-{version}.dist-info"
    ));
    std::fs::create_dir_all(site).unwrap();
    std::fs::create_dir_all(venv.join("bin")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/python3", venv.join("bin/python")).unwrap();
}

/// This run holds the lock, and its release's python answers no probe: nothing listens on the
/// socket yet (the probe is a stub that says so and fails at once, and logs the socket it was
/// asked about as a call of `probe`); `sleep` is a stub when `quick`, so polls cost nothing.
fn never_answering(host: &Host, quick: bool) {
    host.lock();
    let log = host.path("calls/probe");
    host.script(
        host.r(".venv/bin/python"),
        &format!(
            "echo \"$6\" >> {}\necho 'GET / -> [Errno 111] Connection refused'; exit 1",
            quote(log.to_str().unwrap())
        ),
    );
    if quick {
        host.stub("sleep", "");
    }
}

fn gunicorn_args(host: &Host) -> String {
    std::fs::read_to_string(host.r(".shipit/gunicorn.args")).unwrap()
}

/// The release keeps supervisor programs for `names`.
fn supervisor_programs(host: &Host, names: &[&str]) {
    host.write(
        host.r(".shipit/supervisor.conf"),
        &programs(names, host.r("").to_str().unwrap()),
    );
}

#[test]
fn start_app_needs_the_lock() {
    each_shell(|host| {
        supervisor(host, "");
        supervisor_programs(host, &[WEB]);
        host.step("step_start_app", &[])
            .status(1)
            .says("is no longer ours");
        assert!(host.calls("supervisorctl").is_empty());
        assert!(confd(host).is_empty());
        assert!(!host.r(".shipit/gunicorn.args").exists());
    });
}

#[test]
fn start_app_under_supervisor_starts_the_programs_then_waits_for_the_web_and_the_processes() {
    each_shell(|host| {
        supervisor(host, &format!("{WORKER}   STARTING\n"));
        host.write(
            host.path("status.next"),
            &format!("{WORKER}   RUNNING   pid 125, uptime 0:00:01\n"),
        );
        startable(host, "25.0.1");
        supervisor_programs(host, &[WEB, WORKER]);
        let app = App::serve(host, &["HTTP/1.0 502 Bad Gateway", "HTTP/1.0 200 OK"]);
        let run = host.step("step_start_app", &[]);
        run.status(0)
            .says("health check before the switch: GET / -> HTTP/1.0 200 OK\n")
            .says(&format!("running: {WORKER}"));
        // The web app server answered the second probe; the processes were waited for after.
        assert_eq!(app.requests().len(), 2, "{run:?}");
        assert!(
            run.text.find("health check") < run.text.find("running:"),
            "{run:?}"
        );
        assert_eq!(gunicorn_args(host), "--no-control-socket\n");
        assert_eq!(confd(host), [format!("{WEB}.conf")]);
        assert_eq!(
            host.calls("supervisorctl"),
            [
                format!("update {WEB} {WORKER}"),
                format!("status {WORKER}:*"),
                format!("status {WORKER}:*"),
            ]
        );
    });
}

#[test]
fn start_app_under_systemd_starts_the_instances_then_waits_for_the_web_and_the_processes() {
    let worker = unit("worker", ID);
    each_shell(|host| {
        systemd(host, &format!("{worker} activating 0\n"));
        host.write(host.path("units.next"), &format!("{worker} active 0\n"));
        startable(host, "23.0.0");
        release_units(host, ID, &["web", "worker"], &[]);
        let app = App::serve(host, &["HTTP/1.0 200 OK"]);
        let run = host.step("step_start_app", &[]);
        run.status(0)
            .says("health check before the switch: GET / -> HTTP/1.0 200 OK\n")
            .says(&format!("running: {worker}\n"));
        assert_eq!(app.requests().len(), 1, "{run:?}");
        assert_eq!(gunicorn_args(host), "");
        let calls = host.calls("systemctl");
        assert_eq!(
            calls[1],
            format!("start --no-block -- {} {worker}", unit("web", ID))
        );
        assert!(calls[0].starts_with("link "), "{calls:?}");
        assert!(
            calls[2..]
                .iter()
                .all(|call| *call == format!("{SHOW} {worker}")),
            "{calls:?}"
        );
    });
}

#[test]
fn start_app_on_a_host_without_the_web_role_waits_only_for_the_processes() {
    each_shell(|host| {
        supervisor(
            host,
            &format!("{WORKER}   RUNNING   pid 125, uptime 0:00:01\n"),
        );
        host.set("WEB", "0").set("HEALTH_TIMEOUT", "1");
        host.lock();
        supervisor_programs(host, &[WEB, WORKER]);
        // Nothing listens on the socket: a health check would fail.
        host.step("step_start_app", &[])
            .status(0)
            .says(&format!("running: {WORKER}"))
            .never_says("health check");
    });
}

#[test]
fn start_app_fails_as_soon_as_the_manager_reports_the_web_app_server_dead() {
    each_shell(|host| {
        let fatal = format!("{WEB}   FATAL     Exited too quickly (process log may have details)");
        supervisor(host, &format!("{fatal}\n"));
        host.write(host.path("tail"), CRASH);
        never_answering(host, true);
        supervisor_programs(host, &[WEB, WORKER]);
        host.step("step_start_app", &[])
            .status(1)
            .says("the app server died with: ModuleNotFoundError: No module named 'hello.local'")
            .says(&format!(
                "the new app server died before answering: {fatal}\n"
            ))
            .never_says("within 30s")
            .never_says("running:");
        // The manager is asked every fifth probe.
        let socket = host.r(".shipit/app.sock").display().to_string();
        assert_eq!(host.calls("probe"), vec![socket.clone(); 5]);
        let calls = host.calls("supervisorctl");
        assert!(calls.contains(&format!("tail -16000 {WEB}")), "{calls:?}");
        assert!(!calls
            .iter()
            .any(|c| c.contains(WORKER) && c.starts_with("status")));

        let web = unit("web", ID);
        systemd(host, &format!("{web} failed 0\n"));
        host.write(host.path("journal"), CRASH);
        never_answering(host, true);
        release_units(host, ID, &["web", "worker"], &[]);
        host.step("step_start_app", &[])
            .status(1)
            .says("the app server died with: ModuleNotFoundError: No module named 'hello.local'")
            .says(&format!(
                "the new app server died before answering: {web} failed\n"
            ))
            .never_says("within 30s");
        assert_eq!(host.calls("probe"), vec![socket; 10]);
        assert_eq!(
            host.calls("journalctl"),
            [format!("-u {web} -n 400 --no-pager -o cat")]
        );
    });
}

/// A process that keeps dying while the web app server has not answered yet is named at the
/// manager's next look (the fifth probe), with its last lines, not at the deadline.
#[test]
fn start_app_names_a_process_that_dies_while_the_web_app_server_starts() {
    each_shell(|host| {
        supervisor(
            host,
            &format!("{WEB}   RUNNING   pid 124, uptime 0:00:01\n{WORKER}   BACKOFF   Exited too quickly\n"),
        );
        host.write(host.path("tail"), "ImportError: No module named 'celery'\n");
        never_answering(host, true);
        supervisor_programs(host, &[WEB, WORKER]);
        host.step("step_start_app", &[])
            .status(1)
            .says("ImportError: No module named 'celery'\n")
            .says(&format!(
                "process {WORKER} did not start: {WORKER}   BACKOFF"
            ))
            .never_says("within 30s");
        let socket = host.r(".shipit/app.sock").display().to_string();
        assert_eq!(host.calls("probe"), vec![socket; 5]);
    });
}

/// A 4xx is an answer that waiting will not change: the deploy fails at once, saying what the
/// app answered and that the Host header must be in ALLOWED_HOSTS.
#[test]
fn start_app_fails_at_once_on_a_4xx_with_the_allowed_hosts_hint() {
    each_shell(|host| {
        supervisor(host, &format!("{WEB}   RUNNING\n"));
        supervisor_programs(host, &[WEB]);
        host.lock();
        host.script(
            host.r(".venv/bin/python"),
            "echo \"$6\" >> \"$(dirname \"$0\")/../../probes\"; echo \"GET / -> HTTP/1.1 400 Bad Request (Host $4)\"; exit 2",
        );
        host.write(host.r(".shipit/django"), "ALLOWED_HOST=www.example.com\n");
        let run = host.step("step_start_app", &[]);
        run.status(1)
            .says(&format!(
                "the new app server answered its health check on {} with GET / -> HTTP/1.1 400 Bad Request (Host www.example.com)\n",
                host.r(".shipit/app.sock").display()
            ))
            .says("hint: a 4xx is not healthy; a 400 usually means the Host header (www.example.com) is not in ALLOWED_HOSTS")
            .never_says("within");
        let probes = std::fs::read_to_string(host.r("probes")).unwrap();
        assert_eq!(probes.lines().count(), 1, "{probes}");
    });
}

/// What the web app server printed while it never answered.
const SLOW: &str = "[2026-11-22 01:03:20 +0000] [123] [INFO] Booting worker with pid: 124
[2026-11-22 01:03:21 +0000] [124] [WARNING] importing hello.settings takes long
";

#[test]
fn start_app_gives_up_at_the_deadline_with_the_managers_status_and_log() {
    each_shell(|host| {
        let socket = host.r(".shipit/app.sock");
        let timed_out = format!(
            "the new app server failed its health check on {} within 1s: ",
            socket.display()
        );
        supervisor(host, &format!("{WEB}   STARTING\n"));
        host.set("HEALTH_TIMEOUT", "1");
        host.write(host.path("tail"), SLOW);
        never_answering(host, false);
        supervisor_programs(host, &[WEB]);
        let run = host.step("step_start_app", &[]);
        run.status(1)
            .says(&format!("{WEB}   STARTING\n"))
            .says("[WARNING] importing hello.settings takes long\n")
            .says(&format!(
                "{timed_out}GET / -> [Errno 111] Connection refused\n"
            ))
            .never_says("running:");
        assert!(
            run.text.find("STARTING") < run.text.find(&timed_out),
            "{run:?}"
        );

        let web = unit("web", ID);
        systemd(host, &format!("{web} activating 0\n"));
        host.write(host.path("journal"), SLOW);
        never_answering(host, false);
        release_units(host, ID, &["web"], &[]);
        host.step("step_start_app", &[])
            .status(1)
            .says(&format!("x {web} - hello production web\n"))
            .says("[WARNING] importing hello.settings takes long\n")
            .says(&timed_out)
            .never_says("running:");
        assert!(host
            .calls("systemctl")
            .contains(&format!("status --no-pager --lines=0 -- {web}")));
    });
}

/// A supervisor program file of release `id` installed in CONFD, as named now.
fn installed_program(host: &Host, id: &str) -> String {
    let name = format!("hello.production.{id}");
    let directory = host.d(&format!("releases/{id}"));
    host.write(
        host.path(&format!("etc/{name}.conf")),
        &programs(&[&name], directory.to_str().unwrap()),
    );
    name
}

#[test]
fn stop_old_app_under_supervisor_drains_every_release_but_the_one_current_points_at() {
    const EARLIER: &str = "20261001000000";
    each_shell(|host| {
        supervisor(host, "");
        host.stub("systemctl", "exit 1");
        installed_program(host, ID);
        let earlier = installed_program(host, EARLIER);
        installed_program(host, OLD_ID);
        host.current(&format!("releases/{ID}"));
        host.step("step_stop_old_app", &[]).status(0).says(&format!(
            "stopping in the background, each within its stop timeout: {earlier} {OLD}\n"
        ));
        assert_eq!(confd(host), [format!("{WEB}.conf")]);
        let done = host.d(&format!(".shipit/draining/{ID}.done"));
        wait_for(&done);
        assert_eq!(
            host.calls("supervisorctl"),
            [format!("update {earlier} {OLD}")]
        );
        // `current` names the live release, whatever release the run deployed.
        std::fs::remove_file(&done).unwrap();
        installed_program(host, EARLIER);
        installed_program(host, OLD_ID);
        host.current(&format!("releases/{OLD_ID}"));
        host.step("step_stop_old_app", &[]).status(0).says(&format!(
            "stopping in the background, each within its stop timeout: {earlier}\n"
        ));
        assert_eq!(confd(host), [format!("{OLD}.conf"), format!("{WEB}.conf")]);
        wait_for(&done);
        assert_eq!(
            host.calls("supervisorctl")[1..],
            [format!("update {earlier}")]
        );
        assert!(host.calls("systemctl").is_empty());
    });
}

#[test]
fn stop_old_app_under_systemd_stops_the_old_instances_and_enables_the_live_ones() {
    each_shell(|host| {
        let (old, new) = (|n: &str| unit(n, OLD_ID), |n: &str| unit(n, ID));
        supervisor(host, "");
        systemd(
            host,
            &format!("{} active 0\n{} active 0\n", old("web"), old("worker")),
        );
        release_units(host, OLD_ID, &["web", "worker"], &[]);
        release_units(host, ID, &["web", "worker"], &[]);
        host.current(&format!("releases/{ID}"));
        host.step("step_stop_old_app", &[]).status(0).says(&format!(
            "stopping in the background, each within its stop timeout: {} {}",
            old("web"),
            old("worker")
        ));
        assert_eq!(
            host.calls("systemctl"),
            [
                format!("disable --no-reload -- {} {}", old("web"), old("worker")),
                format!("{SHOW} {} {}", old("web"), old("worker")),
                format!("stop --no-block -- {} {}", old("web"), old("worker")),
                format!("enable --no-reload -- {} {}", new("web"), new("worker")),
            ]
        );
        assert!(host.calls("supervisorctl").is_empty());
    });
}

#[test]
fn stop_old_app_asks_every_manager_so_a_host_moved_to_systemd_stops_its_supervisor_programs() {
    each_shell(|host| {
        supervisor(host, "");
        systemd(host, "");
        // The live release before the move ran under supervisor.
        installed_program(host, OLD_ID);
        release_units(host, ID, &["web"], &[]);
        host.current(&format!("releases/{ID}"));
        host.step("step_stop_old_app", &[])
            .status(0)
            .says(&format!(
                "stopping in the background, each within its stop timeout: {OLD}\n"
            ))
            .says("no other app server to stop");
        assert!(confd(host).is_empty());
        wait_for(&host.d(&format!(".shipit/draining/{ID}.done")));
        assert_eq!(host.calls("supervisorctl"), [format!("update {OLD}")]);
        assert_eq!(
            host.calls("systemctl"),
            [format!("enable --no-reload -- {}", unit("web", ID))]
        );
    });
}

#[test]
fn reap_under_supervisor_removes_finished_drains_and_reports_or_waits_for_one_under_way() {
    each_shell(|host| {
        supervisor(host, "");
        let draining = host.d(".shipit/draining");
        let finished = draining.join(OLD_ID);
        host.write(&finished, &format!("{}program={OLD}\n", running_job()));
        host.write(finished.with_extension("done"), "");
        let under_way = draining.join(ID);
        host.write(
            &under_way,
            &format!("{}program={OLD}.worker\n", running_job()),
        );
        host.step("step_reap", &[]).status(0).says(&format!(
            "still stopping, in the background: {OLD}.worker \n"
        ));
        assert_eq!(files_under(&draining), [ID]);
        // `wait`: until the job ends.
        let (mut child, record) = ending_job(host, &under_way.with_extension("done"));
        host.write(&under_way, &format!("{record}program={OLD}.worker\n"));
        host.step("step_reap", &["wait"]).status(0).says(&format!(
            "waiting for the app servers of an earlier run to stop: {OLD}.worker"
        ));
        child.wait().unwrap();
        assert!(files_under(&draining).is_empty());
        // What the drains did is not stopped again: the wait saw the job done.
        assert!(host.calls("supervisorctl").is_empty());
        // A host moved to systemd still reaps supervisor's drains.
        systemd(host, "");
        host.write(&finished, &format!("{}program={OLD}\n", running_job()));
        host.write(finished.with_extension("done"), "");
        host.step("step_reap", &[]).status(0);
        assert!(files_under(&draining).is_empty());
    });
}

#[test]
fn reap_under_systemd_waits_only_when_asked_and_only_where_systemd_runs_the_app() {
    each_shell(|host| {
        let stopping = stopping_old_web(host);
        host.current(&format!("releases/{ID}"));
        // Without `wait` systemd carries out its stops alone.
        host.step("step_reap", &[]).status(0);
        assert!(host.calls("systemctl").is_empty());
        host.step("step_reap", &["wait"]).status(0).says(&format!(
            "waiting for the units of an earlier run to stop: {stopping}"
        ));
        assert_eq!(
            host.calls("systemctl"),
            vec![format!("{SHOW} {stopping}"); 2]
        );
        // No app here (APP=0, no manager): nothing is asked of either manager, even waiting.
        host.write(host.path("units"), &format!("{stopping} deactivating 0\n"));
        host.write(host.path("units.next"), &format!("{stopping} inactive 0\n"));
        host.set("APP", "0").set("MANAGER", "");
        host.stub("supervisorctl", "exit 1");
        host.step("step_reap", &["wait"])
            .status(0)
            .never_says("waiting");
        assert_eq!(host.calls("systemctl").len(), 2);
        assert!(host.calls("supervisorctl").is_empty());
    });
}
