//! The process managers' families (`pm_supervisor_*`, `pm_systemd_*`), each verb run on its own
//! with supervisorctl or systemctl and journalctl stubbed by scripts that answer as the real
//! tools do; the seam's dispatch (`shipit_pm`, `shipit_pms`, `auto`) and the app server's
//! (`server_gunicorn_*`).

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
    "pm_systemd_stop_new",
    "pm_systemd_stop_old",
    "pm_systemd_reap",
    "pm_systemd_check",
    "pm_systemd_logs",
    "pm_systemd_installed",
    "pm_systemd_draining",
];

/// This release's web program (`PROGRAM`), and its worker's.
pub(super) const WEB: &str = "hello.production.20261122010320";
pub(super) const WORKER: &str = "hello.production.20261122010320.worker";

/// A release before this one, its programs named as now and as shipit named them before.
pub(super) const OLD: &str = "hello.production.20261101000000";
const LEGACY: &str = "hello-production-20261101000001";

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

/// A job that ends in 0.3 s, done (it writes `done`, as a drain's job does): the process and
/// its record.
pub(super) fn ending_job(done: &std::path::Path) -> (std::process::Child, String) {
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("sleep 0.3; : > {}", quote(done.to_str().unwrap())))
        .spawn()
        .unwrap();
    let record = job(child.id());
    (child, record)
}

/// A supervisor program file defining `names`, each running in `directory`.
pub(super) fn programs(names: &[&str], directory: &str) -> String {
    names
        .iter()
        .map(|name| format!("[program:{name}]\ncommand=run {name}\ndirectory={directory}\n"))
        .collect()
}

/// The host runs supervisor, and `supervisorctl` answers from the file `status` (lines as
/// `supervisorctl status` prints them; after each status call `status.next`, when there is
/// one, replaces it): `status NAME` and `status GROUP:*` print NAME's or GROUP's lines and
/// exit 3 when one is not RUNNING, 4 when there is none; `pid NAME` prints its pid (0 when it
/// does not run), `pid` supervisord's; `update` adds or removes the groups; `tail` prints the
/// file `tail`.
pub(super) fn supervisor(host: &mut Host, status: &str) {
    host.set("MANAGER", "supervisor").set("APP", "1");
    let file = host.path("status");
    host.write(&file, status);
    let file = quote(file.to_str().unwrap());
    let tail = quote(host.path("tail").to_str().unwrap());
    host.stub(
        "supervisorctl",
        &format!(
            r#"status={file}
case "$1" in
  pid)
    [ -n "${{2:-}}" ] || {{ echo 16208; exit 0; }}
    awk -v p="$2" '$1 == p {{ found = 1; if ($2 == "RUNNING") {{ sub(",", "", $4); print $4 }} else print 0 }}
      END {{ if (!found) {{ print "No such process " p; exit 1 }} }}' "$status" ;;
  status)
    out=$(awk -v g="${{2%:\*}}" '$1 == g || index($1, g ":") == 1' "$status")
    if [ -f "$status.next" ]; then mv "$status.next" "$status"; fi
    [ -n "$out" ] || {{ echo "$2: ERROR (no such process)"; exit 4; }}
    printf '%s\n' "$out"
    if printf '%s\n' "$out" | grep -qv ' RUNNING '; then exit 3; fi ;;
  update)
    shift
    for name; do echo "$name: updated process group"; done ;;
  tail) cat {tail} ;;
esac"#
        ),
    );
}

/// supervisord is down: every `supervisorctl` command says so and fails.
fn supervisor_down(host: &mut Host) {
    host.set("MANAGER", "supervisor").set("APP", "1");
    host.stub(
        "supervisorctl",
        "echo 'unix:///var/run/supervisor.sock no such file'; exit 7",
    );
}

/// What is installed in CONFD, sorted.
pub(super) fn confd(host: &Host) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(host.path("etc"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn supervisor_start_installs_the_releases_programs_and_adds_their_groups() {
    each_shell(|host| {
        supervisor(host, "");
        // A release kept from before programs were named PROJECT.TARGET.RELEASE.
        let kept = programs(
            &["hello-production-20261122010320", WORKER],
            "/srv/hello/releases/20261122010320",
        );
        host.write(host.r(".shipit/supervisor.conf"), &kept);
        host.step("shipit_pm", &["start"]).status(0);
        assert_eq!(confd(host), [format!("{WEB}.conf")], "{:?}", host.shell);
        let installed = std::fs::read_to_string(host.path(&format!("etc/{WEB}.conf"))).unwrap();
        assert_eq!(
            installed,
            kept.replace("hello-production-20261122010320]", &format!("{WEB}]"))
        );
        assert_eq!(
            host.calls("supervisorctl"),
            [format!("update {WEB} {WORKER}")]
        );
    });
}

#[test]
fn supervisor_start_refuses_a_release_without_programs() {
    each_shell(|host| {
        supervisor(host, "");
        host.step("shipit_pm", &["start"])
            .status(1)
            .says("release 20261122010320 keeps no supervisor program");
        assert!(confd(host).is_empty());
        assert!(host.calls("supervisorctl").is_empty());
    });
}

#[test]
fn supervisor_seen_is_the_web_programs_pid_while_it_runs() {
    let seen = "echo \"seen=$(shipit_pm seen)\"";
    each_shell(|host| {
        supervisor(
            host,
            &format!("{WEB}   RUNNING   pid 123, uptime 0:00:05\n"),
        );
        host.run(seen).status(0).says("seen=123\n");
        assert_eq!(host.calls("supervisorctl"), [format!("pid {WEB}")]);
        supervisor(host, &format!("{WEB}   STARTING\n"));
        host.run(seen).status(0).says("seen=\n");
        supervisor_down(host);
        host.run(seen).status(0).says("seen=\n");
    });
}

#[test]
fn supervisor_dead_says_why_the_web_program_is_not_running() {
    let dead = "if DEAD=$(shipit_pm dead); then echo \"dead: $DEAD\"; else echo alive; fi";
    each_shell(|host| {
        for line in [
            "FATAL     Exited too quickly (process log may have details)",
            "BACKOFF   Exited too quickly (process log may have details)",
            "EXITED    Nov 22 01:03 AM",
        ] {
            supervisor(host, &format!("{WEB}   {line}\n"));
            host.run(dead)
                .status(0)
                .says(&format!("dead: {WEB}   {line}\n"));
        }
        supervisor(
            host,
            &format!("{WEB}   RUNNING   pid 123, uptime 0:00:05\n"),
        );
        host.run(dead).status(0).says("alive");
        // The first process seen died, and supervisor started another.
        host.run(&format!("SEEN_PID=123\n{dead}"))
            .status(0)
            .says("alive");
        host.run(&format!("SEEN_PID=99\n{dead}"))
            .status(0)
            .says("pid 123, uptime 0:00:05 (restarted: pid 99 died)");
        // Nothing is known while supervisord does not answer: the health check's time runs out.
        supervisor_down(host);
        host.run(dead).status(0).says("alive");
    });
}

/// gunicorn's log of an app that failed to import, as `supervisorctl tail` prints it.
pub(super) const CRASH: &str = "[2026-11-22 01:03:20 +0000] [123] [INFO] Starting gunicorn 23.0.0
[2026-11-22 01:03:20 +0000] [123] [INFO] Listening at: unix:/srv/app.sock (123)
[2026-11-22 01:03:20 +0000] [124] [ERROR] Exception in worker process
Traceback (most recent call last):
  File \"/srv/hello/settings.py\", line 3, in <module>
ModuleNotFoundError: No module named 'hello.local'
[2026-11-22 01:03:21 +0000] [123] [INFO] Shutting down: Master
[2026-11-22 01:03:21 +0000] [123] [INFO] Reason: Worker failed to boot.
";

#[test]
fn supervisor_status_and_log_show_the_web_program() {
    each_shell(|host| {
        let fatal = format!("{WEB}   FATAL     Exited too quickly (process log may have details)");
        supervisor(host, &format!("{fatal}\n"));
        host.write(host.path("tail"), CRASH);
        // supervisorctl exits 3 for a program that does not run: the status is still shown.
        host.step("shipit_pm", &["status"]).status(0).says(&fatal);
        let run = host.step("shipit_pm", &["log"]);
        run.status(0)
            .says("[ERROR] Exception in worker process\nTraceback")
            .says("the app server died with: ModuleNotFoundError: No module named 'hello.local'");
        assert!(!run.text.contains("[INFO]"), "{run:?}");
        assert_eq!(
            host.calls("supervisorctl"),
            [format!("status {WEB}"), format!("tail -16000 {WEB}")]
        );
        // supervisord down: no log, and nothing made up.
        supervisor_down(host);
        let run = host.step("shipit_pm", &["log"]);
        run.status(0);
        assert!(!run.text.contains("died with"), "{run:?}");
    });
}

/// This release's programs, the web app server and a worker, installed.
fn installed_web_and_worker(host: &Host) {
    host.write(
        host.path(&format!("etc/{WEB}.conf")),
        &programs(&[WEB, WORKER], host.r("").to_str().unwrap()),
    );
}

#[test]
fn supervisor_wait_returns_once_every_process_runs() {
    each_shell(|host| {
        supervisor(host, &format!("{WORKER}   STARTING\n"));
        host.write(
            host.path("status.next"),
            &format!("{WORKER}   RUNNING   pid 125, uptime 0:00:01\n"),
        );
        installed_web_and_worker(host);
        host.run("DEADLINE=$(($(date +%s) + 30))\nshipit_step wait shipit_pm wait")
            .status(0)
            .says(&format!("running: {WORKER}"));
        // Only the processes are waited for: the health check waits for the web app server.
        assert_eq!(
            host.calls("supervisorctl"),
            [format!("status {WORKER}:*"), format!("status {WORKER}:*")]
        );
    });
}

#[test]
fn supervisor_wait_fails_on_a_process_that_keeps_dying_with_its_last_lines() {
    each_shell(|host| {
        for state in [
            "FATAL     Exited too quickly (process log may have details)",
            "BACKOFF   Exited too quickly (process log may have details)",
        ] {
            supervisor(host, &format!("{WORKER}   {state}\n"));
            host.write(
                host.path("tail"),
                "celery: error: no such option: --bogus\n",
            );
            installed_web_and_worker(host);
            host.run("DEADLINE=$(($(date +%s) + 30))\nshipit_step wait shipit_pm wait")
                .status(1)
                .says("celery: error: no such option: --bogus\n")
                .says(&format!(
                    "process {WORKER} did not start: {WORKER}   {state}"
                ));
            assert!(host
                .calls("supervisorctl")
                .contains(&format!("tail -4000 {WORKER}")));
        }
    });
}

#[test]
fn supervisor_wait_gives_up_at_the_deadline() {
    each_shell(|host| {
        supervisor(host, &format!("{WORKER}   STARTING\n"));
        installed_web_and_worker(host);
        host.run("DEADLINE=$(date +%s)\nshipit_step wait shipit_pm wait")
            .status(1)
            .says(&format!("not running within 30s: {WORKER}"));
    });
}

#[test]
fn supervisor_wait_has_nothing_to_wait_for_without_processes() {
    each_shell(|host| {
        supervisor(host, "");
        host.write(
            host.path(&format!("etc/{WEB}.conf")),
            &programs(&[WEB], host.r("").to_str().unwrap()),
        );
        host.run("DEADLINE=$(date +%s)\nshipit_step wait shipit_pm wait")
            .status(0);
        assert!(host.calls("supervisorctl").is_empty());
    });
}

#[test]
fn supervisor_stop_new_removes_the_new_releases_programs() {
    each_shell(|host| {
        supervisor(host, "");
        host.step("shipit_pm", &["stop_new"]).status(0);
        assert!(host.calls("supervisorctl").is_empty());
        installed_web_and_worker(host);
        host.step("shipit_pm", &["stop_new"])
            .status(0)
            .says(&format!(
                "stopped the new release's programs: {WEB} {WORKER}"
            ));
        assert!(confd(host).is_empty());
        assert_eq!(
            host.calls("supervisorctl"),
            [format!("update {WEB} {WORKER}")]
        );
        // supervisord down: the file is gone all the same, and the cleanup goes on.
        supervisor_down(host);
        installed_web_and_worker(host);
        host.step("shipit_pm", &["stop_new"]).status(0);
        assert!(confd(host).is_empty());
    });
}

/// Waits up to 10 s for `path` to exist (what a background job writes last).
pub(super) fn wait_for(path: &std::path::Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !path.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(path.exists(), "no {}", path.display());
}

/// Program files in CONFD: this release's, an older one's (named as now and as before), and
/// others that are not this project and target's or not this deploy_to's.
fn installed_releases(host: &Host) {
    let d = host.d("");
    let d = d.to_str().unwrap();
    let conf = |name: &str, directory: &str| {
        host.write(
            host.path(&format!("etc/{name}.conf")),
            &programs(&[name], directory),
        );
    };
    conf(WEB, &format!("{d}/releases/20261122010320"));
    conf(OLD, &format!("{d}/releases/20261101000000"));
    conf(LEGACY, &format!("{d}/releases/20261101000001"));
    conf(
        "hello-production-20261101000002",
        "/srv/other/releases/20261101000002",
    );
    conf(
        "hello.production-eu.20261101000000",
        "/srv/eu/releases/20261101000000",
    );
    // Another checkout of the same project and target on this host (a staging copy): the same
    // program names, its own deploy_to. Stopping it was a bug (issue 22, defect 3).
    conf(OTHER_CHECKOUT, "/srv/copy/releases/20261101000003");
}

/// A program of another deploy_to with this project and target's names.
const OTHER_CHECKOUT: &str = "hello.production.20261101000003";

#[test]
fn supervisor_stop_old_drains_other_releases_programs_in_the_background() {
    each_shell(|host| {
        supervisor(host, "");
        installed_releases(host);
        let installed = "echo \"installed: $(shipit_pm installed | tr '\\n' ' ')\"";
        host.run(installed)
            .status(0)
            .says("installed: 20261101000000 20261122010320 \n");
        host.run("LIVE=20261122010320\nshipit_step stop-old shipit_pm stop_old")
            .status(0)
            .says(&format!(
                "stopping in the background, each within its stop timeout: {OLD} {LEGACY}"
            ));
        assert_eq!(
            confd(host),
            [
                "hello-production-20261101000002.conf",
                "hello.production-eu.20261101000000.conf",
                &format!("{OTHER_CHECKOUT}.conf"),
                &format!("{WEB}.conf"),
            ]
        );
        let record = host.d(".shipit/draining/20261122010320");
        let text = std::fs::read_to_string(&record).unwrap();
        assert!(text.starts_with("pid="), "{text}");
        assert!(
            text.ends_with(&format!("\nprogram={OLD}\nprogram={LEGACY}\n")),
            "{text}"
        );
        wait_for(&record.with_extension("done"));
        assert_eq!(
            host.calls("supervisorctl"),
            [format!("update {OLD} {LEGACY}")]
        );
        host.run(installed)
            .status(0)
            .says("installed: 20261122010320 \n");
        // A later run's reap finds the drain done: the record goes, and nothing is stopped again.
        host.step("shipit_pm", &["reap"]).status(0);
        assert!(!host.d(".shipit/draining").join("20261122010320").exists());
        assert!(!record.with_extension("done").exists());
        assert!(!record.with_extension("log").exists());
        assert_eq!(host.calls("supervisorctl").len(), 1);
    });
}

#[test]
fn supervisor_stop_old_hands_the_singletons_over_without_two_at_once() {
    each_shell(|host| {
        supervisor(host, "");
        let d = host.d("");
        let old_once = format!("{OLD}.beat");
        host.write(
            host.path(&format!("etc/{OLD}.once.conf")),
            &programs(
                &[&old_once],
                &format!("{}/releases/20261101000000", d.display()),
            ),
        );
        let beat = format!("{WEB}.beat");
        let once = programs(&[&beat], host.r("").to_str().unwrap());
        host.write(host.r(".shipit/supervisor-once.conf"), &once);
        installed_web_and_worker(host);
        host.run("LIVE=20261122010320\nshipit_step stop-old shipit_pm stop_old")
            .status(0);
        // The old singleton is stopped (waited for) before the new one starts; no drain record.
        assert_eq!(
            host.calls("supervisorctl"),
            [format!("update {old_once}"), format!("update {beat}")]
        );
        assert!(!host.d(".shipit/draining").exists());
        assert_eq!(
            confd(host),
            [format!("{WEB}.conf"), format!("{WEB}.once.conf")]
        );
        assert_eq!(
            std::fs::read_to_string(host.path(&format!("etc/{WEB}.once.conf"))).unwrap(),
            once
        );
        // A run whose release is not the live one starts no singletons.
        std::fs::remove_file(host.path(&format!("etc/{WEB}.once.conf"))).unwrap();
        host.run("LIVE=20261101000000\nshipit_step stop-old shipit_pm stop_old")
            .status(0);
        assert_eq!(host.calls("supervisorctl").len(), 2);
        assert!(!host.path(&format!("etc/{WEB}.once.conf")).exists());
    });
}

#[test]
fn supervisor_stop_old_with_nothing_else_running() {
    each_shell(|host| {
        supervisor(host, "");
        installed_web_and_worker(host);
        let stop_old = "LIVE=20261122010320\nshipit_step stop-old shipit_pms stop_old";
        host.run(stop_old)
            .status(0)
            .says("no other app server to stop");
        assert!(host.calls("supervisorctl").is_empty());
        // Under another manager supervisor's family still looks, and says nothing.
        host.set("MANAGER", "systemd");
        let run = host.run("LIVE=20261122010320\nshipit_step stop-old pm_supervisor_stop_old");
        run.status(0);
        assert!(!run.text.contains("app server"), "{run:?}");
        // supervisord cannot start the singletons: a warning, since the release is live.
        supervisor_down(host);
        host.write(
            host.r(".shipit/supervisor-once.conf"),
            &programs(&[&format!("{WEB}.beat")], "/srv"),
        );
        host.run(stop_old)
            .status(0)
            .says("warning: supervisor could not start the singletons of 20261122010320");
    });
}

#[test]
fn supervisor_reap_stops_what_a_killed_drain_left_and_waits_for_one_under_way() {
    each_shell(|host| {
        supervisor(host, "");
        let draining = host.d(".shipit/draining");
        // A drain whose job was killed before it was done: the reap stops its programs.
        host.write(
            draining.join("20261101000000"),
            &format!("pid=999999999\nstart=1\nprogram={OLD}\nprogram={OLD}.worker\n"),
        );
        // One still under way (this test process stands for its job): left to finish.
        host.write(
            draining.join("20261122010320"),
            &format!("{}program={LEGACY}\n", running_job()),
        );
        host.step("shipit_pm", &["reap"])
            .status(0)
            .says(&format!("still stopping, in the background: {LEGACY}"));
        assert_eq!(
            host.calls("supervisorctl"),
            [format!("update {OLD} {OLD}.worker")]
        );
        assert!(!draining.join("20261101000000").exists());
        assert!(draining.join("20261122010320").exists());
        let draining_now = "echo \"draining: $(shipit_pm draining | tr '\\n' ' ')\"";
        host.run(draining_now)
            .status(0)
            .says("draining: 20261101000001 \n");
        // `reap wait` waits for a job that ends, and stops nothing it finished.
        let done = draining.join("20261122010320.done");
        let (mut job, record) = ending_job(&done);
        host.write(
            draining.join("20261122010320"),
            &format!("{record}program={LEGACY}\n"),
        );
        host.step("shipit_pm", &["reap", "wait"])
            .status(0)
            .says(&format!(
                "waiting for the app servers of an earlier run to stop: {LEGACY}"
            ));
        job.wait().unwrap();
        assert_eq!(host.calls("supervisorctl").len(), 1);
        assert!(std::fs::read_dir(&draining).unwrap().next().is_none());
        host.run(draining_now).status(0).says("draining: \n");
    });
}

#[test]
fn supervisor_reap_warns_when_supervisord_cannot_stop_what_is_left() {
    each_shell(|host| {
        supervisor_down(host);
        host.write(
            host.d(".shipit/draining/20261101000000"),
            &format!("pid=999999999\nstart=1\nprogram={OLD}\n"),
        );
        host.step("shipit_pm", &["reap"])
            .status(0)
            .says(&format!("warning: supervisor could not stop {OLD}"));
    });
}

#[test]
fn supervisor_draining_lists_the_releases_of_drains_under_way() {
    each_shell(|host| {
        supervisor(host, "");
        let draining = host.d(".shipit/draining");
        host.write(
            draining.join("20261122010320"),
            &format!(
                "{}program={OLD}\nprogram={OLD}.worker\nprogram={LEGACY}\n",
                running_job()
            ),
        );
        // Done, though its job runs on.
        host.write(
            draining.join("20261101000001"),
            &format!("{}program=hello.production.20261001000000\n", running_job()),
        );
        host.write(draining.join("20261101000001.done"), "");
        host.run("echo \"draining: $(shipit_pm draining | tr '\\n' ' ')\"")
            .status(0)
            .says("draining: 20261101000000 20261101000000 20261101000001 \n");
    });
}

#[test]
fn supervisor_check_reports_the_conf_dir_and_whether_supervisord_answers() {
    each_shell(|host| {
        let etc = host.path("etc");
        let etc = etc.to_str().unwrap();
        supervisor(host, "");
        let run = host.run("pm_supervisor_check");
        run.status(0).fact_is(
            "check:app",
            &format!("ok supervisord (pid 16208) answers `supervisorctl`; programs go to {etc}"),
        );
        supervisor_down(host);
        host.run("pm_supervisor_check").status(0).fact_is(
            "check:app",
            "fail `supervisorctl pid` failed: unix:///var/run/supervisor.sock no such file",
        );
        for confd in [format!("{etc}/missing"), etc.to_string()] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::Permissions::from_mode(0o555);
            std::fs::set_permissions(host.path("etc"), mode).unwrap();
            host.set("CONFD", confd.as_str());
            let run = host.run("pm_supervisor_check");
            let fact = run.fact("check:app").unwrap();
            assert!(
                fact.starts_with(&format!(
                    "fail supervisor conf_dir {confd} is missing or not writable by "
                )),
                "{run:?}"
            );
        }
    });
}

/// `current` is this release, whose program files name log files: the web app server's
/// stdout, the worker's stdout and stderr, the singleton's stdout.
fn logging_release(host: &Host) {
    let log = |name: &str| host.path(name).to_str().unwrap().to_string();
    host.write(
        host.r(".shipit/supervisor.conf"),
        &format!(
            "[program:{WEB}]\ncommand=gunicorn\nstdout_logfile={}\nstderr_logfile = NONE\n\
             [program:{WORKER}]\ncommand=celery\nstdout_logfile={}\nstderr_logfile={}\n",
            log("web.log"),
            log("worker.out"),
            log("worker.err")
        ),
    );
    host.write(
        host.r(".shipit/supervisor-once.conf"),
        &format!("[program:{WEB}.beat]\nstdout_logfile={}\n", log("beat.log")),
    );
    host.write(host.path("web.log"), "GET / 200\nGET /a 200\nGET /b 500\n");
    host.write(host.path("worker.out"), "task a ok\ntask b ok\n");
    host.write(host.path("worker.err"), "boom in task c\n");
    host.write(host.path("beat.log"), "sent tick\n");
    std::os::unix::fs::symlink("releases/20261122010320", host.d("current")).unwrap();
}

#[test]
fn supervisor_logs_tail_the_files_of_a_process_of_the_live_release() {
    each_shell(|host| {
        supervisor(host, "");
        logging_release(host);
        let run = host.step("shipit_pm", &["logs", "web", "2", "0", ""]);
        run.status(0).says("GET /a 200\nGET /b 500\n");
        assert!(!run.text.contains("GET / 200"), "{run:?}");
        host.step("shipit_pm", &["logs", "worker", "1", "0", ""])
            .status(0)
            .says("task b ok\nboom in task c\n");
        let run = host.step("shipit_pm", &["logs", "worker", "5", "0", "boo+m"]);
        run.status(0).says("boom in task c");
        assert!(!run.text.contains("task a"), "{run:?}");
        host.step("shipit_pm", &["logs", "beat", "5", "0", ""])
            .status(0)
            .says("sent tick");
        host.step("shipit_pm", &["logs", "mailer", "5", "0", ""])
            .status(1)
            .says("no process `mailer` in this target; its processes: web worker beat");
        std::fs::remove_file(host.r(".shipit/supervisor.conf")).unwrap();
        host.step("shipit_pm", &["logs", "web", "5", "0", ""])
            .status(1)
            .says("the live release keeps no supervisor program");
    });
}

/// A release shipit deployed before this one.
pub(super) const OLD_ID: &str = "20261101000000";
pub(super) const ID: &str = "20261122010320";

/// Instance `ID` of process `name`'s template unit.
pub(super) fn unit(name: &str, id: &str) -> String {
    format!("hello-production-{name}@{id}.service")
}

/// Release `id` keeps the template units of `processes` (started before the switch) in
/// `.shipit/units` and of `singletons` in `.shipit/units-once`, rendered in `.shipit/systemd/`.
pub(super) fn release_units(host: &Host, id: &str, processes: &[&str], singletons: &[&str]) {
    let dir = host.d(&format!("releases/{id}/.shipit"));
    for (list, names) in [("units", processes), ("units-once", singletons)] {
        if names.is_empty() {
            continue;
        }
        let mut text = String::new();
        for name in names {
            let template = format!("hello-production-{name}@.service");
            host.write(
                dir.join("systemd").join(&template),
                &format!("[Service]\nExecStart={id}/.shipit/systemd/{name}.sh\n"),
            );
            text.push_str(&template);
            text.push('\n');
        }
        host.write(dir.join(list), &text);
    }
}

/// The host runs systemd (system units), and `systemctl` answers from the file `units`
/// (`UNIT ACTIVE_STATE RESTARTS` lines; a unit not listed is inactive, never restarted; after
/// each `show`, `units.next`, when there is one, replaces it): `show -p Id -p ActiveState -p
/// NRestarts -- UNIT...` prints a block per unit with the service's property before the
/// unit's, as systemd orders them; `show -p Version --value` its version; `status` what a
/// failed unit shows, exiting 3; every other command succeeds. `journalctl` prints the file
/// `journal`, and `sudo -n` runs what follows it.
pub(super) fn systemd(host: &mut Host, units: &str) {
    host.set("MANAGER", "systemd")
        .set("APP", "1")
        .set("SCOPE", "system")
        .set("SYSTEMCTL", "systemctl")
        .set("JOURNALCTL", "journalctl");
    let file = host.path("units");
    host.write(&file, units);
    let file = quote(file.to_str().unwrap());
    host.stub(
        "systemctl",
        &format!(
            r#"units={file}
case "$1" in
  show)
    if [ "$3" = Version ]; then echo 252.39-1~deb12u2; exit 0; fi
    while [ "$1" != -- ]; do shift; done
    shift
    sep=
    for unit; do
      state=$(awk -v u="$unit" '$1 == u {{ print $2 }}' "$units")
      restarts=$(awk -v u="$unit" '$1 == u {{ print $3 }}' "$units")
      if [ -n "$sep" ]; then echo; fi
      sep=1
      printf 'NRestarts=%s\nId=%s\nActiveState=%s\n' "${{restarts:-0}}" "$unit" "${{state:-inactive}}"
    done
    if [ -f "$units.next" ]; then mv "$units.next" "$units"; fi ;;
  status)
    printf '%s\n' "x $5 - hello production web" \
      "     Loaded: loaded (/srv/hello/.shipit/systemd/hello-production-web@.service; linked)" \
      "     Active: failed (Result: exit-code) since Sun 2026-11-22 01:03:21 UTC; 2s ago" \
      "    Process: 123 ExecStart=/srv/hello/current/.shipit/systemd/web.sh (code=exited, status=1/FAILURE)" \
      "   Main PID: 123 (code=exited, status=1/FAILURE)" \
      "        CPU: 412ms"
    exit 3 ;;
esac"#
        ),
    );
    let journal = quote(host.path("journal").to_str().unwrap());
    host.stub("journalctl", &format!("cat {journal} 2>/dev/null || true"));
    host.stub("sudo", "[ \"$1\" != -n ] || shift\nexec \"$@\"");
}

/// What `systemctl show` was asked of the units: the call's prefix.
pub(super) const SHOW: &str = "show -p Id -p ActiveState -p NRestarts --";

#[test]
fn systemd_init_names_the_web_unit_and_finds_the_user_runtime_dir() {
    each_shell(|host| {
        systemd(host, "");
        host.set("SCOPE", "user")
            .set("SYSTEMCTL", "sudo -n systemctl");
        let show = "echo \"web=$WEB_UNIT ctl=$SYSTEMCTL\"\n\
                    sh -c 'echo \"runtime=${XDG_RUNTIME_DIR:-none} uid=$(id -u)\"'";
        let run = host.run(show);
        run.status(0)
            .says(&format!("web={} ctl=sudo -n systemctl\n", unit("web", ID)));
        let uid = run
            .text
            .split("uid=")
            .nth(1)
            .unwrap()
            .lines()
            .next()
            .unwrap();
        run.says(&format!("runtime=/run/user/{uid} uid="));
        // Not the host's manager: systemd's names only.
        host.set("MANAGER", "supervisor");
        host.run(show)
            .status(0)
            .says(&format!("web={} ", unit("web", ID)))
            .says("runtime=none");
    });
}

#[test]
fn systemd_dead_says_why_the_web_unit_is_not_running_and_seen_nothing() {
    let dead = "if DEAD=$(shipit_pm dead); then echo \"dead: $DEAD\"; else echo alive; fi\n\
                echo \"seen=$(shipit_pm seen)\"";
    let web = unit("web", ID);
    each_shell(|host| {
        systemd(host, &format!("{web} active 0\n"));
        host.run(dead).status(0).says("alive").says("seen=\n");
        assert_eq!(host.calls("systemctl"), [format!("{SHOW} {web}")]);
        systemd(host, &format!("{web} failed 0\n"));
        host.run(dead)
            .status(0)
            .says(&format!("dead: {web} failed\n"));
        // systemd restarted it: the first process died, and likely each one after it.
        systemd(host, &format!("{web} activating 3\n"));
        host.run(dead).status(0).says(&format!(
            "dead: {web} activating (restarted 3 times: it keeps dying)\n"
        ));
        // systemctl does not answer: nothing is known, the health check's time runs out.
        host.stub(
            "systemctl",
            "echo 'Failed to connect to bus: No such file or directory'; exit 1",
        );
        host.run(dead).status(0).says("alive");
    });
}

#[test]
fn systemd_status_and_log_show_the_web_unit() {
    let web = unit("web", ID);
    each_shell(|host| {
        systemd(host, "");
        host.write(host.path("journal"), CRASH);
        let run = host.step("shipit_pm", &["status"]);
        run.status(0)
            .says(&format!("x {web} - hello production web\n"))
            .says("(code=exited, status=1/FAILURE)\n");
        assert!(!run.text.contains("Main PID"), "{run:?}");
        host.step("shipit_pm", &["log"])
            .status(0)
            .says("the app server died with: ModuleNotFoundError: No module named 'hello.local'");
        assert_eq!(
            host.calls("systemctl"),
            [format!("status --no-pager --lines=0 -- {web}")]
        );
        assert_eq!(
            host.calls("journalctl"),
            [format!("-u {web} -n 400 --no-pager -o cat")]
        );
    });
}

#[test]
fn systemd_start_links_changed_templates_and_starts_the_instances() {
    each_shell(|host| {
        systemd(host, "");
        host.set("SYSTEMCTL", "systemctl --user");
        release_units(host, ID, &["web", "worker"], &[]);
        let installed = host.d(".shipit/systemd");
        host.step("shipit_pm", &["start"])
            .status(0)
            .says("installed systemd templates: hello-production-web@.service hello-production-worker@.service");
        let start = format!(
            "--user start --no-block -- {} {}",
            unit("web", ID),
            unit("worker", ID)
        );
        assert_eq!(
            host.calls("systemctl"),
            [
                format!(
                    "--user link {0}/hello-production-web@.service {0}/hello-production-worker@.service",
                    installed.display()
                ),
                start.clone(),
            ]
        );
        assert_eq!(
            std::fs::read_to_string(installed.join("hello-production-worker@.service")).unwrap(),
            format!("[Service]\nExecStart={ID}/.shipit/systemd/worker.sh\n")
        );
        // The same templates again: nothing to link, only instances to start.
        let run = host.step("shipit_pm", &["start"]);
        run.status(0);
        assert!(!run.text.contains("installed"), "{run:?}");
        assert_eq!(host.calls("systemctl")[2..], [start]);
    });
}

#[test]
fn systemd_start_refuses_a_release_without_units_or_an_app_user_it_cannot_be() {
    each_shell(|host| {
        systemd(host, "");
        host.step("shipit_pm", &["start"])
            .status(1)
            .says("release 20261122010320 keeps no systemd units");
        release_units(host, ID, &["web"], &[]);
        host.set("SCOPE", "user").set("APP_USER", "www-data");
        host.step("shipit_pm", &["start"])
            .status(1)
            .says(", not app_user www-data: use [targets.production.systemd] scope = \"system\", or drop app_user");
        assert!(host.calls("systemctl").is_empty());
    });
}

/// Runs the wait of this release's processes, with a deadline `seconds` away.
fn systemd_wait(host: &Host, seconds: u32) -> super::Run {
    host.run(&format!(
        "DEADLINE=$(($(date +%s) + {seconds}))\nshipit_step wait shipit_pm wait"
    ))
}

#[test]
fn systemd_wait_returns_once_every_process_stayed_up_for_a_second() {
    let worker = unit("worker", ID);
    each_shell(|host| {
        systemd(host, &format!("{worker} activating 0\n"));
        host.write(host.path("units.next"), &format!("{worker} active 0\n"));
        release_units(host, ID, &["web", "worker"], &[]);
        systemd_wait(host, 30)
            .status(0)
            .says(&format!("running: {worker}\n"));
        // Only the processes are waited for (the health check waits for the web app server),
        // first while it starts, then until it has run a second.
        let calls = host.calls("systemctl");
        assert!(calls.len() >= 3, "{calls:?}");
        assert!(
            calls.iter().all(|call| *call == format!("{SHOW} {worker}")),
            "{calls:?}"
        );
    });
}

#[test]
fn systemd_wait_fails_on_a_process_that_failed_or_keeps_restarting() {
    let worker = unit("worker", ID);
    each_shell(|host| {
        for state in ["failed 0", "active 2"] {
            systemd(host, &format!("{worker} {state}\n"));
            host.write(
                host.path("journal"),
                "celery: error: no such option: --bogus\n",
            );
            release_units(host, ID, &["web", "worker"], &[]);
            systemd_wait(host, 30)
                .status(1)
                .says("celery: error: no such option: --bogus\n")
                .says(&format!(
                    "process {worker} did not start: {worker} {state}\n"
                ));
            assert_eq!(
                host.calls("journalctl").last().unwrap(),
                &format!("-u {worker} -n 400 --no-pager -o cat")
            );
        }
    });
}

#[test]
fn systemd_wait_gives_up_at_the_deadline_and_needs_no_processes() {
    let worker = unit("worker", ID);
    each_shell(|host| {
        systemd(host, &format!("{worker} activating 0\n"));
        release_units(host, ID, &["web", "worker"], &[]);
        systemd_wait(host, 0)
            .status(1)
            .says(&format!("not running within 30s: {worker} activating 0"));
        release_units(host, ID, &["web"], &[]);
        let calls = host.calls("systemctl").len();
        systemd_wait(host, 0).status(0);
        assert_eq!(host.calls("systemctl").len(), calls);
    });
}

#[test]
fn systemd_stop_new_stops_and_resets_the_new_releases_instances() {
    each_shell(|host| {
        systemd(host, "");
        host.step("shipit_pm", &["stop_new"]).status(0);
        assert!(host.calls("systemctl").is_empty());
        release_units(host, ID, &["web", "worker"], &["beat"]);
        let units = format!(
            "{} {} {}",
            unit("web", ID),
            unit("worker", ID),
            unit("beat", ID)
        );
        host.step("shipit_pm", &["stop_new"])
            .status(0)
            .says("stopped the new release's units: ");
        assert_eq!(
            host.calls("systemctl"),
            [
                format!("stop -- {units}"),
                format!("reset-failed -- {units}")
            ]
        );
        // systemctl failing: the cleanup goes on.
        host.stub("systemctl", "exit 1");
        host.step("shipit_pm", &["stop_new"]).status(0);
    });
}

#[test]
fn systemd_stop_old_drains_the_old_release_and_starts_the_live_ones_singletons_and_timers() {
    each_shell(|host| {
        let old = |name: &str| unit(name, OLD_ID);
        let new = |name: &str| unit(name, ID);
        systemd(
            host,
            &format!(
                "{} active 0\n{} inactive 0\n{} active 0\n",
                old("web"),
                old("worker"),
                old("beat")
            ),
        );
        release_units(host, OLD_ID, &["web", "worker"], &["beat"]);
        release_units(host, ID, &["web", "worker"], &["beat"]);
        // The live release's schedule, and a timer of an entry it no longer has.
        let systemd_dir = host.r(".shipit/systemd");
        for file in [
            "hello-production-schedule-1.timer",
            "hello-production-schedule-1.service",
        ] {
            host.write(systemd_dir.join(file), "[Unit]\n");
        }
        host.write(
            host.r(".shipit/timers"),
            "hello-production-schedule-1.timer\nhello-production-schedule-1.service\n",
        );
        let installed = host.d(".shipit/systemd");
        for file in [
            "hello-production-schedule-9.timer",
            "hello-production-schedule-9.service",
        ] {
            host.write(installed.join(file), "[Unit]\n");
        }
        host.run(&format!(
            "LIVE={ID}\nshipit_step stop-old shipit_pm stop_old"
        ))
        .status(0)
        .says(&format!("stopped: {}", old("beat")))
        .says(&format!(
            "stopping in the background, each within its stop timeout: {}",
            old("web")
        ))
        .says("removed the timers of no live schedule: hello-production-schedule-9.timer\n")
        .says("the schedule's timers run: hello-production-schedule-1.timer")
        .says(&format!("started the singletons: {}", new("beat")));
        let dir = installed.display();
        assert_eq!(
            host.calls("systemctl"),
            [
                format!("disable --no-reload -- {} {} {}", old("web"), old("worker"), old("beat")),
                format!("{SHOW} {} {}", old("web"), old("worker")),
                format!("{SHOW} {}", old("beat")),
                // The old singleton has stopped before the new one starts.
                format!("stop -- {}", old("beat")),
                format!("stop --no-block -- {}", old("web")),
                "stop -- hello-production-schedule-9.timer".to_string(),
                "disable -- hello-production-schedule-9.timer hello-production-schedule-9.service".to_string(),
                format!("link {dir}/hello-production-schedule-1.timer {dir}/hello-production-schedule-1.service"),
                "enable --no-reload -- hello-production-schedule-1.timer".to_string(),
                "restart -- hello-production-schedule-1.timer".to_string(),
                format!("enable --no-reload -- {} {}", new("web"), new("worker")),
                format!("link {dir}/hello-production-beat@.service"),
                format!("start -- {}", new("beat")),
                format!("enable --no-reload -- {}", new("beat")),
            ]
        );
        let mut files: Vec<String> = std::fs::read_dir(&installed)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        assert_eq!(
            files,
            [
                "hello-production-beat@.service",
                "hello-production-schedule-1.service",
                "hello-production-schedule-1.timer",
            ]
        );
    });
}

#[test]
fn systemd_stop_old_never_fails_and_is_silent_where_systemd_never_ran() {
    each_shell(|host| {
        systemd(host, "");
        release_units(host, ID, &["web"], &[]);
        host.run(&format!(
            "LIVE={ID}\nshipit_step stop-old shipit_pm stop_old"
        ))
        .status(0)
        .says("no other app server to stop");
        // systemctl failing at everything: warnings, and the release stays live.
        release_units(host, OLD_ID, &["web"], &[]);
        release_units(host, ID, &["web"], &["beat"]);
        host.stub("systemctl", "echo 'Failed to connect to bus'; exit 1");
        host.run(&format!(
            "LIVE={ID}\nshipit_step stop-old shipit_pm stop_old"
        ))
        .status(0)
        .says(&format!(
            "warning: systemd could not disable {}",
            unit("web", OLD_ID)
        ))
        .says(&format!(
            "warning: systemd could not enable {}",
            unit("web", ID)
        ))
        .says("warning: systemd could not start the singletons of 20261122010320");
        // Under supervisor, with no systemd templates ever installed: nothing asked of systemctl.
        let calls = host.calls("systemctl").len();
        supervisor(host, "");
        std::fs::remove_dir_all(host.d(".shipit/systemd")).unwrap();
        let run = host.run(&format!(
            "LIVE={ID}\nshipit_step stop-old pm_systemd_stop_old"
        ));
        run.status(0);
        assert_eq!(run.text.lines().count(), 3, "{run:?}");
        assert_eq!(host.calls("systemctl").len(), calls);
    });
}

#[test]
fn systemd_reap_waits_for_an_earlier_runs_units_still_stopping() {
    each_shell(|host| {
        let stopping = unit("web", OLD_ID);
        systemd(host, &format!("{stopping} deactivating 0\n"));
        host.write(host.path("units.next"), &format!("{stopping} inactive 0\n"));
        release_units(host, OLD_ID, &["web"], &[]);
        release_units(host, ID, &["web"], &[]);
        std::os::unix::fs::symlink(format!("releases/{ID}"), host.d("current")).unwrap();
        let draining = "echo \"draining: $(shipit_pm draining | tr '\\n' ' ')\"";
        host.run(draining)
            .status(0)
            .says(&format!("draining: {OLD_ID} \n"));
        // Without `wait` systemd carries its stops out alone.
        let calls = host.calls("systemctl").len();
        host.step("shipit_pm", &["reap"]).status(0);
        assert_eq!(host.calls("systemctl").len(), calls);
        host.write(host.path("units"), &format!("{stopping} deactivating 0\n"));
        host.write(host.path("units.next"), &format!("{stopping} inactive 0\n"));
        host.step("shipit_pm", &["reap", "wait"])
            .status(0)
            .says(&format!(
                "waiting for the units of an earlier run to stop: {stopping}"
            ));
        // Only the units of releases other than `current`'s are waited for.
        assert_eq!(
            host.calls("systemctl").last().unwrap(),
            &format!("{SHOW} {stopping}")
        );
        host.run(draining).status(0).says("draining: \n");
    });
}

#[test]
fn systemd_installed_lists_releases_some_instance_of_which_runs() {
    each_shell(|host| {
        systemd(
            host,
            &format!(
                "{} failed 0\n{} activating 0\n{} deactivating 0\n{} active 0\n",
                unit("web", "20261001000000"),
                unit("worker", "20261001000000"),
                unit("beat", OLD_ID),
                unit("web", ID),
            ),
        );
        release_units(host, "20261001000000", &["web", "worker"], &[]);
        release_units(host, OLD_ID, &["web"], &["beat"]);
        release_units(host, ID, &["web"], &[]);
        // A release whose units all stopped.
        release_units(host, "20260901000000", &["web"], &[]);
        host.run(
            "echo \"installed: $(shipit_pm installed | tr '\\n' ' ')\"\n\
                  echo \"draining: $(shipit_pm draining | tr '\\n' ' ')\"",
        )
        .status(0)
        .says(&format!("installed: 20261001000000 {OLD_ID} {ID} \n"))
        .says(&format!("draining: {OLD_ID} \n"));
        // Under another manager nothing of systemd's counts as stopping.
        host.set("MANAGER", "supervisor");
        host.run("echo \"draining: $(pm_systemd_draining | tr '\\n' ' ')\"")
            .status(0)
            .says("draining: \n");
    });
}

#[test]
fn systemd_check_reports_whether_systemctl_and_the_journal_answer() {
    each_shell(|host| {
        let d = host.d("");
        let d = d.display().to_string();
        systemd(host, "");
        host.set("SYSTEMCTL", "sudo -n systemctl")
            .set("JOURNALCTL", "sudo -n journalctl");
        host.run("pm_systemd_check").status(0).fact_is(
            "check:app",
            &format!("ok systemd 252.39-1~deb12u2 answers `sudo -n systemctl` (system units); templates go to {d}/.shipit/systemd"),
        );
        host.stub("journalctl", "echo 'sudo: a password is required'; exit 1");
        let run = host.run("pm_systemd_check");
        let fact = run.fact("check:app").unwrap();
        assert!(
            fact.starts_with("fail systemd 252.39-1~deb12u2 answers, but ")
                && fact.contains("cannot read the system journal with `sudo -n journalctl`"),
            "{run:?}"
        );
        host.stub("systemctl", "echo 'sudo: a password is required'; exit 1");
        let run = host.run("pm_systemd_check");
        let fact = run.fact("check:app").unwrap();
        assert!(
            fact.starts_with("fail `sudo -n systemctl` does not work as ")
                && fact.ends_with(": sudo: a password is required"),
            "{run:?}"
        );
        // User units: the deploy user runs them, lingering or not.
        host.set("SCOPE", "user").set("APP_USER", "www-data");
        let run = host.run("pm_systemd_check");
        assert!(
            run.fact("check:app").unwrap().ends_with("or drop app_user"),
            "{run:?}"
        );
        host.set("APP_USER", "");
        if !std::path::Path::new("/var/lib/systemd/linger").exists() {
            let run = host.run("pm_systemd_check");
            let fact = run.fact("check:app").unwrap();
            assert!(fact.starts_with("fail lingering is off for "), "{run:?}");
        }
    });
}

#[test]
fn systemd_logs_read_the_journal_of_every_instance_of_a_process() {
    each_shell(|host| {
        systemd(host, "");
        release_units(host, ID, &["web", "worker", "worker.2"], &["beat"]);
        host.write(
            host.r(".shipit/timers"),
            "hello-production-schedule-1.timer\n",
        );
        std::os::unix::fs::symlink(format!("releases/{ID}"), host.d("current")).unwrap();
        host.write(
            host.path("journal"),
            "2026-11-22T01:03:20+0000 web1 celery[7]: task a ok\n\
             2026-11-22T01:03:21+0000 web1 celery[8]: boom in task c\n",
        );
        host.step("shipit_pm", &["logs", "worker", "50", "0", "boo+m"])
            .status(0)
            .says("celery[8]: boom in task c\n");
        host.step("shipit_pm", &["logs", "schedule", "5", "0", ""])
            .status(0)
            .says("task a ok\n");
        assert_eq!(
            host.calls("journalctl"),
            [
                "-u hello-production-worker@*.service -u hello-production-worker.*@*.service -n 50 --no-pager -q -o short-iso",
                "-u hello-production-schedule@*.service -u hello-production-schedule-[0-9]*.service -n 5 --no-pager -q -o short-iso",
            ]
        );
        let run = host.step("shipit_pm", &["logs", "mailer", "5", "0", ""]);
        run.status(1)
            .says("no process `mailer` in this target; its processes: beat web worker ")
            .says(" schedule\n");
    });
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
                    echo \"manager=$MANAGER web=$WEB_UNIT conf=$PROGRAM_CONF\"";
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

#[test]
fn gunicorn_prepare_turns_the_control_socket_off_from_version_25() {
    each_shell(|host| {
        std::fs::create_dir_all(host.r(".shipit")).unwrap();
        let args = host.r(".shipit/gunicorn.args");
        let prepare = "shipit_step prepare shipit_server prepare";
        host.run(prepare).status(0);
        assert_eq!(std::fs::read_to_string(&args).unwrap(), "");
        let site = host.r(".venv/lib/python3.12/site-packages");
        std::fs::create_dir_all(site.join("gunicorn-23.0.0.dist-info")).unwrap();
        host.run(prepare).status(0);
        assert_eq!(std::fs::read_to_string(&args).unwrap(), "");
        std::fs::remove_dir(site.join("gunicorn-23.0.0.dist-info")).unwrap();
        std::fs::create_dir_all(site.join("gunicorn-25.0.1.dist-info")).unwrap();
        host.run(prepare).status(0);
        assert_eq!(
            std::fs::read_to_string(&args).unwrap(),
            "--no-control-socket\n"
        );
    });
}

#[test]
fn gunicorn_log_keeps_the_cause_a_long_log_pushed_out_of_view() {
    each_shell(|host| {
        let exits =
            "[2026-11-22 01:03:21 +0000] [123] [ERROR] Worker (pid:124) exited with code 3\n"
                .repeat(14);
        host.write(host.path("log"), &format!("{CRASH}{exits}"));
        let log = host.path("log");
        let run = host.run(&format!(
            "shipit_server log < {}",
            quote(log.to_str().unwrap())
        ));
        run.status(0)
            .says("the app server died with: ModuleNotFoundError: No module named 'hello.local'");
        assert_eq!(
            run.text.matches("exited with code 3").count(),
            12,
            "{run:?}"
        );
        assert!(!run.text.contains("Traceback"), "{run:?}");
        host.write(&log, &exits);
        let run = host.run(&format!(
            "shipit_server log < {}",
            quote(log.to_str().unwrap())
        ));
        run.status(0);
        assert!(!run.text.contains("died with"), "{run:?}");
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
