//! The systemd family, `pm_systemd_*`, with systemctl and journalctl stubbed.

use super::*;

/// A release shipit deployed before this one.
pub(in crate::remote::fast) const OLD_ID: &str = "20261101000000";
pub(in crate::remote::fast) const ID: &str = "20261122010320";

/// The sample target's units' prefix (`UNIT_PREFIX`), and the one releases made before the dots
/// named them with (`LEGACY_UNIT_PREFIX`).
const PREFIX: &str = "hello.production.";
const LEGACY_PREFIX: &str = "hello-production-";

/// Instance `ID` of process `name`'s template unit.
pub(in crate::remote::fast) fn unit(name: &str, id: &str) -> String {
    format!("{PREFIX}{name}@{id}.service")
}

/// Instance `ID` of process `name`'s template unit, named as before the dots.
fn legacy_unit(name: &str, id: &str) -> String {
    format!("{LEGACY_PREFIX}{name}@{id}.service")
}

/// Release `id` keeps the template units of `processes` (started before the switch) in
/// `.shipit/units` and of `singletons` in `.shipit/units-once`, rendered in `.shipit/systemd/`.
pub(in crate::remote::fast) fn release_units(
    host: &Host,
    id: &str,
    processes: &[&str],
    singletons: &[&str],
) {
    named_release_units(host, PREFIX, id, processes, singletons);
}

/// [`release_units`] of a release made before the dots: `hello-production-web@.service`.
fn legacy_release_units(host: &Host, id: &str, processes: &[&str], singletons: &[&str]) {
    named_release_units(host, LEGACY_PREFIX, id, processes, singletons);
}

fn named_release_units(
    host: &Host,
    prefix: &str,
    id: &str,
    processes: &[&str],
    singletons: &[&str],
) {
    let dir = host.d(&format!("releases/{id}/.shipit"));
    for (list, names) in [("units", processes), ("units-once", singletons)] {
        if names.is_empty() {
            continue;
        }
        let mut text = String::new();
        for name in names {
            let template = format!("{prefix}{name}@.service");
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
pub(in crate::remote::fast) fn systemd(host: &mut Host, units: &str) {
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
      "     Loaded: loaded (/srv/hello/.shipit/systemd/hello.production.web@.service; linked)" \
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
pub(in crate::remote::fast) const SHOW: &str = "show -p Id -p ActiveState -p NRestarts --";

#[test]
fn systemd_init_names_the_web_unit_and_finds_the_user_runtime_dir() {
    each_shell(|host| {
        systemd(host, "");
        host.set("SCOPE", "user")
            .set("SYSTEMCTL", "sudo -n systemctl");
        let show = "echo \"web=$(shipit_systemd_web) ctl=$SYSTEMCTL\"\n\
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
            .says("installed systemd templates: hello.production.web@.service hello.production.worker@.service");
        let start = format!(
            "--user start --no-block -- {} {}",
            unit("web", ID),
            unit("worker", ID)
        );
        assert_eq!(
            host.calls("systemctl"),
            [
                format!(
                    "--user link {0}/hello.production.web@.service {0}/hello.production.worker@.service",
                    installed.display()
                ),
                start.clone(),
            ]
        );
        assert_eq!(
            std::fs::read_to_string(installed.join("hello.production.worker@.service")).unwrap(),
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
fn systemd_wait(host: &Host, seconds: u32) -> crate::remote::fast::Run {
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

/// What the web app server's wait asks every few polls: a process that failed or restarted is
/// named, with its journal; none says nothing.
#[test]
fn systemd_died_names_a_process_that_failed_or_restarted_and_nothing_else() {
    let worker = unit("worker", ID);
    each_shell(|host| {
        release_units(host, ID, &["web", "worker"], &[]);
        systemd(host, &format!("{worker} active 0\n"));
        let run = host.step("shipit_pm", &["died"]);
        run.status(1);
        assert!(!run.text.contains("did not start"), "{run:?}");
        systemd(host, &format!("{worker} activating 3\n"));
        host.write(
            host.path("journal"),
            "ImportError: No module named 'celery'\n",
        );
        host.step("shipit_pm", &["died"])
            .status(0)
            .says("ImportError: No module named 'celery'\n")
            .says(&format!(
                "process {worker} did not start: {worker} activating 3\n"
            ));
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

/// This release's schedule: entry 1's timer and service, rendered and listed in `.shipit/timers`.
fn live_schedule(host: &Host) {
    let names = [
        "hello.production.schedule-1.timer",
        "hello.production.schedule-1.service",
    ];
    for file in names {
        host.write(host.r(".shipit/systemd").join(file), "[Unit]\n");
    }
    host.write(host.r(".shipit/timers"), &format!("{}\n", names.join("\n")));
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
        live_schedule(host);
        let installed = host.d(".shipit/systemd");
        for file in [
            "hello.production.schedule-9.timer",
            "hello.production.schedule-9.service",
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
        .says("removed the timers of no live schedule: hello.production.schedule-9.timer\n")
        .says("the schedule's timers run: hello.production.schedule-1.timer")
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
                "stop -- hello.production.schedule-9.timer".to_string(),
                "disable -- hello.production.schedule-9.timer hello.production.schedule-9.service".to_string(),
                format!("link {dir}/hello.production.schedule-1.timer {dir}/hello.production.schedule-1.service"),
                "enable --no-reload -- hello.production.schedule-1.timer".to_string(),
                "restart -- hello.production.schedule-1.timer".to_string(),
                format!("enable --no-reload -- {} {}", new("web"), new("worker")),
                format!("link {dir}/hello.production.beat@.service"),
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
                "hello.production.beat@.service",
                "hello.production.schedule-1.service",
                "hello.production.schedule-1.timer",
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

/// The earlier release's web unit still stopping (inactive at the next `systemctl show`), both
/// releases keeping their web unit: its name.
pub(in crate::remote::fast) fn stopping_old_web(host: &mut Host) -> String {
    let stopping = unit("web", OLD_ID);
    systemd(host, &format!("{stopping} deactivating 0\n"));
    host.write(host.path("units.next"), &format!("{stopping} inactive 0\n"));
    release_units(host, OLD_ID, &["web"], &[]);
    release_units(host, ID, &["web"], &[]);
    stopping
}

#[test]
fn systemd_reap_waits_for_an_earlier_runs_units_still_stopping() {
    each_shell(|host| {
        let stopping = stopping_old_web(host);
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
            "hello.production.schedule-1.timer\n",
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
                "-u hello.production.worker@*.service -u hello.production.worker.*@*.service -n 50 --no-pager -q -o short-iso",
                "-u hello.production.schedule-[0-9]*.service -n 5 --no-pager -q -o short-iso",
            ]
        );
        let run = host.step("shipit_pm", &["logs", "mailer", "5", "0", ""]);
        run.status(1)
            .says("no process `mailer` in this target; its processes: beat web worker ")
            .says(" schedule\n");
    });
}

/// A rollback to a release made before the dots: its own lists name its units, and the web app
/// server the health check asks about is the one they name.
#[test]
fn systemd_a_release_made_before_the_dots_starts_and_is_watched_under_its_own_names() {
    let (web, worker) = (legacy_unit("web", ID), legacy_unit("worker", ID));
    each_shell(|host| {
        systemd(host, &format!("{web} failed 0\n{worker} active 0\n"));
        legacy_release_units(host, ID, &["web", "worker"], &[]);
        host.run("echo \"web=$(shipit_systemd_web)\"")
            .status(0)
            .says(&format!("web={web}\n"));
        host.step("shipit_pm", &["start"]).status(0).says(
            "installed systemd templates: hello-production-web@.service hello-production-worker@.service",
        );
        assert_eq!(
            host.calls("systemctl").last().unwrap(),
            &format!("start --no-block -- {web} {worker}")
        );
        host.run("shipit_pm dead")
            .status(0)
            .says(&format!("{web} failed\n"));
        systemd_wait(host, 30)
            .status(0)
            .says(&format!("running: {worker}\n"));
    });
}

/// The first switch after the dots: the earlier release's instances and the schedule's timers,
/// named the legacy way, stop and go; the live release's start under the new names.
#[test]
fn systemd_the_first_switch_with_dots_stops_the_legacy_release_and_removes_its_timers() {
    each_shell(|host| {
        let old = |name: &str| legacy_unit(name, OLD_ID);
        let new = |name: &str| unit(name, ID);
        systemd(
            host,
            &format!(
                "{} active 0\n{} active 0\n{} active 0\n",
                old("web"),
                old("worker"),
                old("beat")
            ),
        );
        legacy_release_units(host, OLD_ID, &["web", "worker"], &["beat"]);
        release_units(host, ID, &["web", "worker"], &["beat"]);
        live_schedule(host);
        // What the earlier release installed: its templates and its schedule's timer.
        let installed = host.d(".shipit/systemd");
        for file in [
            "hello-production-web@.service",
            "hello-production-schedule-1.timer",
            "hello-production-schedule-1.service",
        ] {
            host.write(installed.join(file), "[Unit]\n");
        }
        host.run(&format!(
            "LIVE={ID}\nshipit_step stop-old shipit_pm stop_old"
        ))
        .status(0)
        .says(&format!("stopped: {}", old("beat")))
        .says(&format!(
            "stopping in the background, each within its stop timeout: {} {}",
            old("web"),
            old("worker")
        ))
        .says("removed the timers of no live schedule: hello-production-schedule-1.timer\n")
        .says("the schedule's timers run: hello.production.schedule-1.timer")
        .says(&format!("started the singletons: {}", new("beat")));
        let calls = host.calls("systemctl");
        for call in [
            format!(
                "disable --no-reload -- {} {} {}",
                old("web"),
                old("worker"),
                old("beat")
            ),
            "stop -- hello-production-schedule-1.timer".to_string(),
            "disable -- hello-production-schedule-1.timer hello-production-schedule-1.service"
                .to_string(),
            "enable --no-reload -- hello.production.schedule-1.timer".to_string(),
            format!("enable --no-reload -- {} {}", new("web"), new("worker")),
        ] {
            assert!(calls.contains(&call), "no `{call}` in {calls:#?}");
        }
        assert!(!installed.join("hello-production-schedule-1.timer").exists());
        assert!(!installed
            .join("hello-production-schedule-1.service")
            .exists());
    });
}

/// `shipit logs` while the live release was made before the dots: its processes are found, and
/// the journal of both namings is read until no release of this deploy_to names units the
/// legacy way.
#[test]
fn systemd_logs_find_the_processes_of_a_release_made_before_the_dots() {
    each_shell(|host| {
        systemd(host, "");
        legacy_release_units(host, ID, &["web", "worker", "worker.2"], &["beat"]);
        host.write(
            host.r(".shipit/timers"),
            "hello-production-schedule-1.timer\n",
        );
        std::os::unix::fs::symlink(format!("releases/{ID}"), host.d("current")).unwrap();
        host.step("shipit_pm", &["logs", "worker", "50", "0", ""])
            .status(0);
        host.step("shipit_pm", &["logs", "schedule", "5", "0", ""])
            .status(0);
        assert_eq!(
            host.calls("journalctl"),
            [
                "-u hello.production.worker@*.service -u hello.production.worker.*@*.service \
                 -u hello-production-worker@*.service -u hello-production-worker.*@*.service \
                 -n 50 --no-pager -q -o short-iso",
                "-u hello.production.schedule-[0-9]*.service \
                 -u hello-production-schedule@*.service -u hello-production-schedule-[0-9]*.service \
                 -n 5 --no-pager -q -o short-iso",
            ]
        );
        host.step("shipit_pm", &["logs", "mailer", "5", "0", ""])
            .status(1)
            .says("no process `mailer` in this target; its processes: beat web worker  schedule\n");
    });
}

/// systemd has the units `links` names: each `(UNIT, FILE)` is a unit file linked to FILE (as
/// `systemctl link` makes them, in `etc/systemd/` of the host's dir), which `systemctl
/// list-unit-files` lists and `show -P FragmentPath` of (of an instance, for a template) names.
fn linked(host: &mut Host, links: &[(&str, &str)]) {
    systemd(host, "");
    let dir = host.path("etc/systemd");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut list = String::new();
    for (unit, file) in links {
        std::os::unix::fs::symlink(file, dir.join(unit)).unwrap();
        list.push_str(&format!("{unit} linked enabled\n"));
    }
    host.write(host.path("unit-files"), &list);
    host.stub(
        "systemctl",
        &format!(
            r#"case "$1 $2" in
  "list-unit-files --no-legend") cat {list} ;;
  "show -P")
    unit=$5
    case $unit in *@*.service) unit="${{unit%%@*}}@.service" ;; esac
    if [ -L {dir}/"$unit" ]; then echo {dir}/"$unit"; else echo; fi ;;
  "show -p") echo 252.39-1~deb12u2 ;;
esac"#,
            list = quote(host.path("unit-files").to_str().unwrap()),
            dir = quote(dir.to_str().unwrap()),
        ),
    );
}

/// Two checkouts of one project and target, deployed to two deploy_tos of one host, would share
/// every unit name (a template is one file, linked from one deploy_to): a deploy or rollback to
/// the second is refused before anything changes, naming the deploy_to the names are linked
/// from and what to change; this deploy_to's own units, also named through a symlink, and unit
/// files that are not shipit's are no reason (issue 22, defect 3 under systemd).
#[test]
fn systemd_require_refuses_the_names_another_deploy_to_holds() {
    each_shell(|host| {
        let d = host.d("").display().to_string();
        let other = host.path("other-checkout/app");
        let theirs = |name: &str| format!("{}/.shipit/systemd/{name}", other.display());
        let web = "hello.production.web@.service";
        let timer = "hello.production.schedule-1.timer";

        // Nothing of the project and target's yet, or only this deploy_to's.
        linked(host, &[]);
        host.run("shipit_pm require").status(0);
        let ours = format!("{d}/.shipit/systemd/{web}");
        std::fs::create_dir_all(host.d(".shipit/systemd")).unwrap();
        let alias = host.path("alias");
        std::os::unix::fs::symlink(host.d(""), &alias).unwrap();
        let through = format!("{}/.shipit/systemd/{timer}", alias.display());
        linked(host, &[(web, &ours), (timer, &through)]);
        host.run("shipit_pm require").status(0);
        // A unit file of an administrator's, named like the project's: not shipit's.
        linked(
            host,
            &[("hello.production.backup.service", "/etc/backup.service")],
        );
        host.run("shipit_pm require").status(0);

        // Another checkout's, deployed to another deploy_to.
        std::fs::create_dir_all(other.join(".shipit/systemd")).unwrap();
        linked(host, &[(web, &theirs(web)), (timer, &theirs(timer))]);
        let run = host.run("shipit_pm require");
        run.status(1)
            .says(&format!(
                "the systemd units hello.production.* on this host are another deploy_to's: {web} is linked from {}\n",
                theirs(web)
            ))
            .says(&format!("this host runs {}'s under these names, so {d} cannot use them too", other.display()))
            .says(&format!("hint: deploy this checkout to {}, or give it names of its own: another [project] name", other.display()))
            .says("or another target name than `production`")
            .never_says("no longer exists");
        // Before the layout is made.
        let fresh = host.path("fresh/app");
        host.set("D", fresh.to_str().unwrap()).set("OP", "deploy");
        host.step("step_layout", &[])
            .status(1)
            .says("another deploy_to's");
        assert!(!fresh.exists(), "{:?}", host.shell);
        // A rollback, which makes no layout, before it takes the lock.
        host.set("D", d.as_str()).set("OP", "rollback");
        std::fs::create_dir_all(host.d("releases")).unwrap();
        host.step("step_require_releases", &[])
            .status(1)
            .says("another deploy_to's");
        let run = host.run("pm_systemd_check");
        let fact = run.fact("check:app").unwrap();
        assert!(
            fact.starts_with(&format!(
                "fail the systemd units hello.production.* here are another deploy_to's ({web} is linked from {})",
                theirs(web)
            )) && fact.contains("another [project] name or target name"),
            "{run:?}"
        );

        // Another checkout that is gone: how to free the names.
        std::fs::remove_dir_all(host.path("other-checkout")).unwrap();
        host.set("D", d.as_str());
        host.run("shipit_pm require").status(1).says(&format!(
            "hint: {} no longer exists; `systemctl disable {web} {timer} ` frees the names",
            other.display()
        ));
    });
}
