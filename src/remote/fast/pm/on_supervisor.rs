//! The supervisor family, `pm_supervisor_*`, with supervisorctl stubbed.

use super::*;

/// This release's web program (`PROGRAM`), and its worker's.
pub(in crate::remote::fast) const WEB: &str = "hello.production.20261122010320";
pub(in crate::remote::fast) const WORKER: &str = "hello.production.20261122010320.worker";

/// A release before this one, its programs named as now and as shipit named them before.
pub(in crate::remote::fast) const OLD: &str = "hello.production.20261101000000";
const LEGACY: &str = "hello-production-20261101000001";

/// A supervisor program file defining `names`, each running in `directory`.
pub(in crate::remote::fast) fn programs(names: &[&str], directory: &str) -> String {
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
pub(in crate::remote::fast) fn supervisor(host: &mut Host, status: &str) {
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
pub(in crate::remote::fast) fn confd(host: &Host) -> Vec<String> {
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
pub(in crate::remote::fast) const CRASH: &str =
    "[2026-11-22 01:03:20 +0000] [123] [INFO] Starting gunicorn 23.0.0
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

/// What the web app server's wait asks every few polls: a process that died is named, with its
/// last lines; none dead says nothing.
#[test]
fn supervisor_died_names_a_process_that_keeps_dying_and_nothing_else() {
    each_shell(|host| {
        installed_web_and_worker(host);
        supervisor(
            host,
            &format!("{WORKER}   RUNNING   pid 125, uptime 0:00:01\n"),
        );
        let run = host.step("shipit_pm", &["died"]);
        run.status(1);
        assert!(!run.text.contains("did not start"), "{run:?}");
        supervisor(host, &format!("{WORKER}   BACKOFF   Exited too quickly\n"));
        host.write(host.path("tail"), "ImportError: No module named 'celery'\n");
        host.step("shipit_pm", &["died"])
            .status(0)
            .says("ImportError: No module named 'celery'\n")
            .says(&format!(
                "process {WORKER} did not start: {WORKER}   BACKOFF"
            ));
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

/// deploy_to named through a symlink after the programs were rendered (storage moved,
/// `/srv/hello -> /data/hello`): its programs are still its own, and stopped.
#[test]
fn supervisor_stop_old_knows_its_programs_through_a_renamed_deploy_to() {
    each_shell(|host| {
        supervisor(host, "");
        installed_releases(host);
        for id in ["20261101000000", "20261101000001"] {
            std::fs::create_dir_all(host.d(&format!("releases/{id}"))).unwrap();
        }
        std::fs::create_dir_all(host.r("")).unwrap();
        let alias = host.path("alias");
        std::os::unix::fs::symlink(host.d(""), &alias).unwrap();
        host.set("D", alias.to_str().unwrap());
        host.run("LIVE=20261122010320\nshipit_step stop-old shipit_pm stop_old")
            .status(0)
            .says(&format!(
                "stopping in the background, each within its stop timeout: {OLD} {LEGACY}"
            ));
        assert!(
            !confd(host).contains(&format!("{OLD}.conf")),
            "{:?}",
            confd(host)
        );
        assert!(confd(host).contains(&format!("{OTHER_CHECKOUT}.conf")));
    });
}

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
        let (mut job, record) = ending_job(host, &done);
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
