//! The systemd backend against a real systemd: each test boots its own (support::systemd's
//! SystemdHost: systemd as PID 1 of private namespaces, with OpenSSH's sshd and nginx inside),
//! and shipit deploys to it over SSH as `deploy`, driving system units through the README's sudo
//! rule, or the deploy user's own units. Needs root.

use std::time::Duration;

use support::celery::*;
use support::load::Load;
use support::stack::list_dir;
use support::systemd::SystemdHost;
use support::systemd_stack::SystemdStack;
use support::*;

/// A process that says which release and environment it runs with, then waits.
const ECHO_WORKER: &str =
    r#"sh -c 'printf "worker %s [%s]\n" "$SHIPIT_RELEASE" "$HELLO_GREETING"; exec sleep 100000'"#;

/// A value the env file must carry exactly (quotes, a dollar, a backslash, spaces, also at
/// either end).
const GREETING: &str = r#" it's "quoted" $HOME \n ok "#;

fn unit(kind: &str, release: &str) -> String {
    format!("hello.test.{kind}@{release}.service")
}

/// The target's schedule timers `systemctl list-timers` shows on `host`, sorted.
fn timers(host: &SystemdHost) -> Vec<String> {
    let out = host.systemctl_ok(&[
        "list-timers",
        "--all",
        "--plain",
        "--no-legend",
        "hello.test.*",
    ]);
    let mut timers: Vec<String> = out
        .split_whitespace()
        .filter(|word| word.ends_with(".timer"))
        .map(str::to_string)
        .collect();
    timers.sort();
    timers
}

/// `shipit logs --process PROCESS -n LINES` of the stack's target.
fn logs(stack: &SystemdStack, process: &str, lines: &str) -> Run {
    stack.shipit(&[
        "logs",
        "--target",
        "test",
        "--process",
        process,
        "-n",
        lines,
    ])
}

/// Waits until the journal of `unit` has a line containing `needle`.
fn journal_says(host: &SystemdHost, unit: &str, needle: &str) {
    wait_for(Duration::from_secs(20), || {
        host.journalctl(&["-u", unit, "-o", "cat"])
            .contains(needle)
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "no `{needle}` in the journal of {unit}:\n{}",
            host.journalctl(&["-u", unit, "-o", "cat", "-n", "40"])
        )
    });
}

#[test]
fn releases_run_as_template_instances_through_deploy_rollback_and_a_reboot() {
    let mut stack = SystemdStack::start();
    stack.configure(|s| {
        s.extra = format!(
            "env = {{ HELLO_GREETING = {} }}\n\n[targets.test.processes]\nworker = {}\n\n[targets.test.schedule]\n\"@yearly\" = \"true\"\n",
            serde_json::to_string(GREETING).unwrap(),
            serde_json::to_string(ECHO_WORKER).unwrap()
        )
    });

    let first = stack.deploy_release();
    stack.serves_release(&first);
    assert_eq!(stack.units(), [unit("web", &first), unit("worker", &first)]);
    assert_eq!(stack.enabled(&unit("web", &first)), "enabled");
    assert_eq!(stack.enabled(&unit("worker", &first)), "enabled");
    // The unit's EnvironmentFile carries the env file's values exactly as the shell reads them.
    journal_says(
        &stack.host,
        &unit("worker", &first),
        &format!("worker {first} [{GREETING}]"),
    );
    // The app runs as the app user (deploy), not root.
    let user = stack
        .host
        .systemctl_ok(&["show", "-p", "User", "--value", &unit("web", &first)]);
    assert_eq!(user.trim(), "deploy");
    // Sandboxed by default (deploy_to is under /tmp here, so no private /tmp), and the app
    // serves from it: the system is read-only to it, deploy_to writable.
    let sandbox = stack.host.systemctl_ok(&[
        "show",
        "-p",
        "NoNewPrivileges,ProtectSystem,ProtectHome,ReadWritePaths,PrivateTmp",
        &unit("web", &first),
    ]);
    for setting in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "PrivateTmp=no",
    ] {
        assert!(
            sandbox.lines().any(|l| l == setting),
            "{setting}: {sandbox}"
        );
    }
    assert!(
        sandbox.contains(&stack.deploy_to().display().to_string()),
        "{sandbox}"
    );

    let check = stack.shipit(&["check", "--target", "test"]);
    check.expect_code(0).prints(&["systemd", "answers"]);

    stack.change_page("second");
    let second = stack.deploy_release();
    stack.serves_release(&second);
    assert_eq!(
        stack.units(),
        [unit("web", &second), unit("worker", &second)]
    );
    assert_eq!(stack.enabled(&unit("web", &second)), "enabled");
    assert_eq!(stack.enabled(&unit("web", &first)), "disabled");
    assert_eq!(stack.enabled(&unit("worker", &first)), "disabled");

    // `shipit logs` reads the journal of every release's instances of a process.
    let run = logs(&stack, "worker", "20");
    run.expect_code(0)
        .prints(&[&format!("worker {first} ["), &format!("worker {second} [")]);

    // Rollback starts the first release's instances again and stops the second's.
    stack.rollback(&[]).expect_code(0);
    stack.serves_release(&first);
    assert_eq!(stack.units(), [unit("web", &first), unit("worker", &first)]);
    assert_eq!(stack.enabled(&unit("web", &first)), "enabled");
    assert_eq!(stack.enabled(&unit("web", &second)), "disabled");

    // A reboot brings up current's instances, and only them.
    stack.reboot();
    stack.serves_release(&first);
    let units = wait_for(Duration::from_secs(30), || {
        let units = stack.units();
        (units.len() == 2).then_some(units)
    })
    .unwrap_or_else(|| panic!("after the reboot: {:?}", stack.units()));
    assert_eq!(units, [unit("web", &first), unit("worker", &first)]);
    // And the schedule's timer, enabled at the switch.
    assert_eq!(timers(&stack.host), ["hello.test.schedule-1.timer"]);
    assert!(stack.host.is_active("hello.test.schedule-1.timer"));
}

/// `[targets.T.schedule]` with one yearly entry, as a target's extra lines.
fn yearly(target: &str) -> String {
    format!("[targets.{target}.schedule]\n\"@yearly\" = \"true\"\n")
}

/// Issue 22, defect 5: with `-` between project, target and process, project `hello-a` target
/// `b` and project `hello` target `a-b` both named their web app server `hello-a-b-web@`, and
/// two such sites on one host took each other's units. With dots, each keeps its own.
#[test]
fn project_hello_a_target_b_and_project_hello_target_a_b_serve_side_by_side_on_one_host() {
    let mut one = SystemdStack::start_as("hello-a", "b", "app-one");
    one.configure(|s| s.extra = yearly("b"));
    let mut two = SystemdStack::beside(&one, "hello", "a-b", "app-two");
    two.configure(|s| s.extra = yearly("a-b"));
    let web = |stack: &SystemdStack, release: &str| {
        format!("{}web@{release}.service", stack.unit_prefix())
    };
    let timer = |stack: &SystemdStack| format!("{}schedule-1.timer", stack.unit_prefix());

    let first_one = one.deploy_release();
    one.serves_release(&first_one);
    let first_two = two.deploy_release();
    two.serves_release(&first_two);
    one.serves_release(&first_one);
    assert_eq!(one.units(), [web(&one, &first_one)]);
    assert_eq!(two.units(), [web(&two, &first_two)]);
    assert!(one.host.is_active(&timer(&one)) && two.host.is_active(&timer(&two)));

    // A redeploy of one stops its own earlier release, never the other site's.
    one.change_page("second");
    let second_one = one.deploy_release();
    one.serves_release(&second_one);
    two.serves_release(&first_two);
    assert_eq!(one.units(), [web(&one, &second_one)]);
    assert_eq!(two.units(), [web(&two, &first_two)]);
    assert_eq!(two.enabled(&web(&two, &first_two)), "enabled");
    assert!(one.host.is_active(&timer(&one)) && two.host.is_active(&timer(&two)));
    // And the other way round.
    two.change_page("second");
    let second_two = two.deploy_release();
    two.serves_release(&second_two);
    one.serves_release(&second_one);
    assert_eq!(one.units(), [web(&one, &second_one)]);
    assert_eq!(two.units(), [web(&two, &second_two)]);
}

/// Makes the host's state of `release`, the live release of `stack`'s target `test`, what a
/// shipit from before the dots would have left: its files and lists name its units
/// `hello-test-…`, and those (installed, linked, enabled) run instead of `hello.test.…`.
fn name_the_live_release_the_legacy_way(stack: &SystemdStack, release: &str) {
    let host = &stack.host;
    let new = |name: &str| format!("hello.test.{name}");
    host.systemctl_ok(&[
        "disable",
        "--now",
        &new(&format!("web@{release}.service")),
        &new(&format!("worker@{release}.service")),
        &new("schedule-1.timer"),
    ]);
    let d = stack.deploy_to();
    let installed = d.join(".shipit/systemd");
    let script = format!(
        r#"set -e
cd {r}/.shipit
for file in systemd/hello.test.*; do
  sed 's/hello\.test\./hello-test-/g' "$file" > "systemd/hello-test-${{file#systemd/hello.test.}}"
  rm "$file"
done
for list in units units-once timers; do
  if [ -f "$list" ]; then sed -i 's/^hello\.test\./hello-test-/' "$list"; fi
done
rm -f {installed}/hello.test.*
for name in $(cat units timers); do cp "systemd/$name" {installed}/; done"#,
        r = shell_quote(&d.join("releases").join(release).display().to_string()),
        installed = shell_quote(&installed.display().to_string()),
    );
    run_as_deploy_ok(&script);
    // The links to the files just removed, and to the legacy ones.
    host.systemctl(&[
        "disable",
        &new("web@.service"),
        &new("worker@.service"),
        &new("schedule-1.service"),
    ]);
    let legacy = [
        "hello-test-web@.service",
        "hello-test-worker@.service",
        "hello-test-schedule-1.service",
        "hello-test-schedule-1.timer",
    ];
    let paths: Vec<String> = legacy
        .iter()
        .map(|name| installed.join(name).display().to_string())
        .collect();
    let mut link = vec!["link"];
    link.extend(paths.iter().map(String::as_str));
    host.systemctl_ok(&link);
    host.systemctl_ok(&[
        "enable",
        "--now",
        &format!("hello-test-web@{release}.service"),
        &format!("hello-test-worker@{release}.service"),
        "hello-test-schedule-1.timer",
    ]);
}

/// Hosts upgraded from a shipit that named units `hello-test-…`: the first deploy under the
/// dots stops and disables the live release's instances and removes its schedule's timer;
/// `shipit logs` reads both; a rollback to the legacy release starts it under its own names.
#[test]
fn a_release_named_before_the_dots_is_stopped_by_the_next_deploy_and_can_be_rolled_back_to() {
    let mut stack = SystemdStack::start();
    stack.configure(|s| {
        s.extra = format!(
            "[targets.test.processes]\nworker = {}\n\n{}",
            serde_json::to_string(ECHO_WORKER).unwrap(),
            yearly("test")
        )
    });
    let legacy = |name: &str, release: &str| format!("hello-test-{name}@{release}.service");
    let legacy_units = |stack: &SystemdStack| stack.host.running_units("hello-test-*");
    let first = stack.deploy_release();
    name_the_live_release_the_legacy_way(&stack, &first);
    stack.serves_release(&first);
    assert_eq!(
        legacy_units(&stack),
        [legacy("web", &first), legacy("worker", &first)]
    );
    assert!(stack.units().is_empty(), "{:?}", stack.units());
    assert!(stack.host.is_active("hello-test-schedule-1.timer"));
    journal_says(
        &stack.host,
        &legacy("worker", &first),
        &format!("worker {first} ["),
    );
    // `shipit logs` finds the live release's processes under their legacy names.
    logs(&stack, "worker", "20")
        .expect_code(0)
        .prints(&[&format!("worker {first} [")]);

    stack.change_page("second");
    let second = stack.deploy_release();
    stack.serves_release(&second);
    assert_eq!(
        stack.units(),
        [unit("web", &second), unit("worker", &second)]
    );
    let stopped = wait_for(Duration::from_secs(30), || {
        legacy_units(&stack).is_empty().then_some(())
    });
    assert!(
        stopped.is_some(),
        "still running: {:?}",
        legacy_units(&stack)
    );
    assert_eq!(stack.enabled(&legacy("web", &first)), "disabled");
    assert_eq!(stack.enabled(&legacy("worker", &first)), "disabled");
    assert_eq!(timers(&stack.host), ["hello.test.schedule-1.timer"]);
    assert!(!stack.host.is_active("hello-test-schedule-1.timer"));
    assert!(!stack
        .deploy_to()
        .join(".shipit/systemd/hello-test-schedule-1.timer")
        .exists());
    logs(&stack, "worker", "20")
        .expect_code(0)
        .prints(&[&format!("worker {first} ["), &format!("worker {second} [")]);

    // A rollback to the legacy release starts it under the names its lists keep.
    stack.rollback(&[]).expect_code(0);
    stack.serves_release(&first);
    assert_eq!(
        legacy_units(&stack),
        [legacy("web", &first), legacy("worker", &first)]
    );
    assert_eq!(stack.enabled(&legacy("web", &first)), "enabled");
    let stopped = wait_for(Duration::from_secs(30), || {
        stack.units().is_empty().then_some(())
    });
    assert!(stopped.is_some(), "still running: {:?}", stack.units());
    assert!(stack.host.is_active("hello-test-schedule-1.timer"));
    assert_eq!(timers(&stack.host), Vec::<String>::new());
}

#[test]
fn a_process_that_fails_under_systemd_fails_the_deploy_and_leaves_the_live_release_alone() {
    let mut stack = SystemdStack::start();
    let first = stack.deploy_release();
    stack.configure(|s| {
        s.extra =
            "[targets.test.processes]\nbroken = \"sh -c 'echo cannot reach the broker; exit 3'\"\n"
                .into()
    });
    stack.deploy(&[]).expect_code(1).says_error(&[
        "start-app",
        "did not start",
        "cannot reach the broker",
    ]);
    stack.serves_release(&first);
    assert_eq!(stack.current_id(), first);
    assert_eq!(stack.units(), [unit("web", &first)]);
    assert_eq!(stack.enabled(&unit("web", &first)), "enabled");
    // Nothing of the failed release is left running or failed.
    let failed = stack
        .host
        .systemctl_ok(&["list-units", "--failed", "--plain", "--no-legend"]);
    assert!(!failed.contains("hello.test."), "{failed}");
}

#[test]
fn user_units_need_lingering_and_then_run_as_the_deploy_user_across_a_reboot() {
    let mut stack = SystemdStack::start();
    stack.configure(|s| {
        s.systemd = "scope = \"user\"\n".into();
        s.extra = "[targets.test.schedule]\n\"@yearly\" = \"true\"\n".into();
    });

    // No lingering: check says what to run.
    stack
        .shipit(&["check", "--target", "test"])
        .expect_code(1)
        .prints(&["loginctl enable-linger deploy"]);

    stack.host.enable_linger();
    stack.shipit(&["check", "--target", "test"]).expect_code(0);
    let first = stack.deploy_release();
    stack.serves_release(&first);
    let active = |host: &SystemdHost, release: &str| {
        host.user_systemctl(&["is-active", "--quiet", &unit("web", release)])
            .status
            .success()
    };
    assert!(active(&stack.host, &first));
    // Not a system unit.
    assert!(stack.units().is_empty(), "{:?}", stack.units());
    // The schedule's timer is the deploy user's too.
    let timer_active = |host: &SystemdHost| {
        host.user_systemctl(&["is-active", "--quiet", "hello.test.schedule-1.timer"])
            .status
            .success()
    };
    assert!(timer_active(&stack.host));
    assert_eq!(timers(&stack.host), Vec::<String>::new());

    stack.change_page("second");
    let second = stack.deploy_release();
    stack.serves_release(&second);
    assert!(active(&stack.host, &second) && !active(&stack.host, &first));

    stack.reboot();
    stack.serves_release(&second);
    assert!(active(&stack.host, &second) && !active(&stack.host, &first));
    assert!(timer_active(&stack.host));
}

#[test]
fn deploy_rollback_and_deploy_under_load_lose_no_request_under_systemd() {
    let stack = SystemdStack::start();
    let v1 = stack.deploy_release();
    stack.serves_release(&v1);
    let load = Load::start(stack.port, "/health", 2, Duration::from_secs(90));
    assert!(
        load.wait_for_more_ok(50, Duration::from_secs(20)),
        "the load does not get through before any deploy: {:?}",
        load.counts()
    );
    stack.change_page("marker: v2");
    let v2 = stack.deploy_release();
    stack.serves_release(&v2);
    assert!(load.wait_for_more_ok(50, Duration::from_secs(20)));
    stack.rollback(&[]).expect_code(0);
    stack.serves_release(&v1);
    assert!(load.wait_for_more_ok(50, Duration::from_secs(20)));
    stack.change_page("marker: v3");
    let v3 = stack.deploy_release();
    stack.serves_release(&v3);
    assert!(load.wait_for_more_ok(50, Duration::from_secs(20)));
    let report = load.stop();
    eprintln!("[load] {report}");
    assert_eq!(
        report.failed,
        0,
        "requests failed: {report}\njournal:\n{}\nnginx error.log:\n{}",
        stack.journal(),
        stack.host.nginx.error_log()
    );
    assert!(
        report.ok >= 300,
        "too few requests to mean anything: {report}"
    );
    assert_eq!(stack.units(), [unit("web", &v3)]);
}

#[test]
fn a_celery_project_runs_under_systemd_on_two_hosts_with_roles() {
    let redis = Redis::start();
    let mut stack = SystemdStack::start();
    let b = SystemdHost::start_second(&stack.host);
    let (a_spec, b_spec) = (stack.host.sshd.host_spec(), b.sshd.host_spec());
    let known = stack.host.base.path().join("known_hosts");
    std::fs::write(
        &known,
        format!(
            "{}\n{}\n",
            stack.host.sshd.known_hosts_line(),
            b.sshd.known_hosts_line()
        ),
    )
    .unwrap();
    let (a_to, b_to) = (stack.deploy_to(), b.deploy_to());
    let beat = "celery -A hello.celery beat -l info -s var/beat-schedule";
    // The schedule as systemd timers: each release's own, on the primary.
    let minutely = |marker: &str| {
        format!(
            r#"echo "$(date +%Y%m%d%H%M) $SHIPIT_RELEASE $HELLO_SCHEDULED {marker}" >> var/schedule.log"#
        )
    };
    let target_toml = |schedule: &str| {
        format!(
            "migrate = \"each-host\"\n{}\n[targets.test.schedule]\n{schedule}\n[targets.test.roles]\nweb = [{a_spec:?}]\nworker = [{b_spec:?}]\n",
            celery_toml(
                &redis,
                ", HELLO_BEAT_SECONDS = \"1\", HELLO_SCHEDULED = \"from-env\"",
                &format!(
                    "worker = {{ run = {WORKER:?}, stop_timeout = 120 }}\nbeat = {{ run = {beat:?}, once = true }}\n"
                ),
            ),
        )
    };
    stack.configure(|s| {
        s.requirements = "requirements/celery.txt".into();
        s.hosts = vec![a_spec.clone(), b_spec.clone()];
        s.known_hosts = Some(known.clone());
        // Each host has its own SQLite database here.
        s.extra = target_toml(&format!("{:?} = {:?}\n", "* * * * *", minutely("v1")));
    });
    let units_of = |host: &SystemdHost| host.running_units("hello.test.*");

    let first = stack.deploy_release();
    stack.serves_release(&first);
    // A (web, primary): gunicorn, beat and the schedule's timer (no scheduler process); B
    // (worker): the worker, no site, no timer.
    assert_eq!(
        units_of(&stack.host),
        [unit("beat", &first), unit("web", &first)]
    );
    assert_eq!(units_of(&b), [unit("worker", &first)]);
    assert_eq!(timers(&stack.host), ["hello.test.schedule-1.timer"]);
    assert_eq!(timers(&b), Vec::<String>::new());
    assert!(!b.nginx.sites_dir.join("hello.conf").exists());
    // Beat on A sends, the worker on B runs: one beat on the whole machine.
    wait_line(&b_to, &format!("done beat {first} "));
    assert_eq!(processes_running("hello.celery beat", &a_to), 1);
    send(&a_to, "before", "");
    wait_line(&b_to, &format!("done before {first} "));

    // A task in flight when the next deploy switches: the old worker gets SIGTERM alone (its
    // pool keeps working), finishes the task, then exits.
    send(&a_to, "slow", "go");
    wait_line(&b_to, &format!("started slow {first} "));
    stack.change_page("second");
    // The second release's schedule: the per-minute entry's command changed, and a yearly entry
    // of two commands run in order.
    let yearly = ["echo one >> var/yearly.log", "echo two >> var/yearly.log"];
    stack.configure(|s| {
        s.extra = target_toml(&format!(
            "{:?} = {:?}\n\"@yearly\" = {yearly:?}\n",
            "* * * * *",
            minutely("v2")
        ))
    });
    let second = std::thread::scope(|scope| {
        // The stack is not Sync (its host holds a channel): the deploy gets the parts it needs.
        let (project, home) = (&stack.project, stack.home.path());
        let deploy =
            scope.spawn(move || support::stack::run_on_target(project, home, "deploy", &[]));
        let old_worker = unit("worker", &first);
        wait_for(Duration::from_secs(120), || {
            let state = b.systemctl(&["show", "-p", "ActiveState", "--value", &old_worker]);
            (String::from_utf8_lossy(&state.stdout).trim() == "deactivating").then_some(())
        })
        .unwrap_or_else(|| panic!("the old worker was never stopping: {:?}", units_of(&b)));
        run_as_deploy_ok(&format!(
            "touch {}",
            shell_quote(&b_to.join("shared/var/go").display().to_string())
        ));
        let run = deploy.join().unwrap();
        run.expect_code(0);
        run.release()
    });
    wait_line(&b_to, &format!("done slow {first} "));
    stack.serves_release(&second);
    assert_eq!(
        units_of(&stack.host),
        [unit("beat", &second), unit("web", &second)]
    );
    assert_eq!(units_of(&b), [unit("worker", &second)]);
    wait_line(&b_to, &format!("done beat {second} "));
    assert_eq!(processes_running("hello.celery beat", &a_to), 1);
    assert_eq!(
        timers(&stack.host),
        ["hello.test.schedule-1.timer", "hello.test.schedule-2.timer"]
    );
    assert_eq!(timers(&b), Vec::<String>::new());
    let calendar = stack.host.systemctl_ok(&[
        "show",
        "-p",
        "TimersCalendar",
        "--value",
        "hello.test.schedule-2.timer",
    ]);
    assert!(
        calendar.contains("OnCalendar=*-01-01 00:00:00"),
        "{calendar}"
    );

    // The timer fires on its schedule on the primary, in current's release with its env and
    // the second release's command; never on B.
    let log = a_to.join("shared/var/schedule.log");
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    // Waits for the line of a run in `release` logged after the log's first `since` bytes.
    let fired = |release: &str, marker: &str, since: usize| {
        let line = format!(" {release} from-env {marker}\n");
        wait_for(MINUTE_TIMEOUT, || {
            Some(logged()).filter(|text| text.get(since..).is_some_and(|new| new.contains(&line)))
        })
        .unwrap_or_else(|| {
            panic!(
                "the schedule never ran in {release} ({marker}):\n{}",
                stack
                    .host
                    .journalctl(&["-u", "hello.test.schedule-*", "-o", "cat", "-n", "30"])
            )
        })
    };
    fired(&second, "v2", 0);
    assert!(!b_to.join("shared/var/schedule.log").exists());
    // An entry's commands run in order; the service runs as the app user.
    stack
        .host
        .systemctl_ok(&["start", "hello.test.schedule-2.service"]);
    assert_eq!(
        std::fs::read_to_string(a_to.join("shared/var/yearly.log")).unwrap(),
        "one\ntwo\n"
    );
    let user = stack.host.systemctl_ok(&[
        "show",
        "-p",
        "User",
        "--value",
        "hello.test.schedule-2.service",
    ]);
    assert_eq!(user.trim(), "deploy");
    // `shipit logs --process schedule` reads the timers' services' journal.
    logs(&stack, "schedule", "50").expect_code(0).prints(&[
        &format!("running in {second}: echo one"),
        &format!("running in {second}: echo \"$(date"),
    ]);

    // Rollback restores the first release's processes on both hosts, and its schedule: one
    // entry, its own command; the second release's yearly entry leaves nothing behind.
    stack.rollback(&[]).expect_code(0);
    stack.serves_release(&first);
    assert_eq!(
        units_of(&stack.host),
        [unit("beat", &first), unit("web", &first)]
    );
    assert_eq!(units_of(&b), [unit("worker", &first)]);
    assert_eq!(timers(&stack.host), ["hello.test.schedule-1.timer"]);
    assert_eq!(timers(&b), Vec::<String>::new());
    let files = stack.host.systemctl_ok(&[
        "list-unit-files",
        "--plain",
        "--no-legend",
        "hello.test.schedule-*",
    ]);
    assert!(!files.contains("schedule-2"), "{files}");
    assert!(!a_to
        .join(".shipit/systemd/hello.test.schedule-2.timer")
        .exists());
    // Fired by hand (firing on its schedule is proven above): current's release, its command.
    let since = logged().len();
    stack
        .host
        .systemctl_ok(&["start", "hello.test.schedule-1.service"]);
    fired(&first, "v1", since);
    send(&a_to, "rolled-back", "");
    wait_line(&b_to, &format!("done rolled-back {first} "));

    // A deploy without a schedule leaves no timer anywhere.
    stack.change_page("third");
    stack.configure(|s| s.extra = target_toml(""));
    let third = stack.deploy_release();
    stack.serves_release(&third);
    assert_eq!(timers(&stack.host), Vec::<String>::new());
    // (list-unit-files exits 1 when no file matches.)
    let files = stack.host.systemctl(&[
        "list-unit-files",
        "--plain",
        "--no-legend",
        "hello.test.schedule*",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&files.stdout).trim(),
        "",
        "{files:?}"
    );
}

#[test]
fn auto_runs_the_app_under_systemd_where_systemd_runs_and_under_supervisor_elsewhere() {
    let mut stack = SystemdStack::start();
    stack.configure(|s| s.manager = "auto".into());
    let release = stack.deploy_release();
    stack.serves_release(&release);
    assert_eq!(stack.units(), [unit("web", &release)]);

    // This machine's own init is not systemd: the supervisor host gets supervisor programs.
    let mut supervised = support::stack::Stack::start();
    supervised.set_options(|o| o.extra = "\n[targets.test.app]\nmanager = \"auto\"\n".into());
    let release = supervised.deploy_release();
    supervised.serves_release(&release);
    assert!(
        supervised
            .programs()
            .contains(&support::stack::program(&release)),
        "{}",
        supervised.programs()
    );
}

/// What the schedule's "a run never overlaps the previous one" rests on: a timer does not start
/// its oneshot service again while it runs. Here the timer elapses every 2 seconds and a run
/// takes 5: the runs follow each other, never two at once.
#[test]
fn a_timer_never_starts_its_oneshot_service_again_while_it_runs() {
    let host = SystemdHost::start();
    let log = host.base.path().join("runs.log");
    host.write_unit(
        "overlap.service",
        &format!(
            "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo start >> {log}; sleep 5; echo end >> {log}'\n",
            log = log.display()
        ),
    );
    host.write_unit(
        "overlap.timer",
        "[Timer]\nOnCalendar=*:*:0/2\nAccuracySec=1ms\n",
    );
    host.systemctl_ok(&["start", "overlap.timer"]);
    std::thread::sleep(Duration::from_secs(15));
    host.systemctl_ok(&["stop", "overlap.timer"]);
    let runs = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = runs.lines().collect();
    assert!(lines.len() >= 4, "the timer did not fire again: {runs}");
    for (index, line) in lines.iter().enumerate() {
        let expected = if index % 2 == 0 { "start" } else { "end" };
        assert_eq!(*line, expected, "runs overlapped:\n{runs}");
    }
}

/// Target `test`'s lines for a checkout whose worker prints `worker RELEASE [GREETING]` and whose
/// schedule has one yearly entry.
fn greeting_worker(greeting: &str) -> String {
    format!(
        "env = {{ HELLO_GREETING = {greeting:?} }}\n\n[targets.test.processes]\nworker = {}\n\n{}",
        serde_json::to_string(ECHO_WORKER).unwrap(),
        yearly("test")
    )
}

/// What a deploy, rollback or prune of the other checkout must leave of `stack`: its site
/// serves `live`, whose web and worker units run (of its names, only they) and are enabled, and
/// its schedule's timer waits.
fn keeps_running(stack: &SystemdStack, live: &str, after: &str) {
    let named = |kind: &str| format!("{}{kind}@{live}.service", stack.unit_prefix());
    let want = [named("web"), named("worker")];
    let timer = format!("{}schedule-1.timer", stack.unit_prefix());
    stack.serves_release(live);
    assert_eq!(
        stack.units(),
        want,
        "after {after}: {}'s units\n{}",
        stack.deploy_to().display(),
        stack.journal()
    );
    for unit in &want {
        assert_eq!(stack.enabled(unit), "enabled", "after {after}: {unit}");
    }
    assert!(stack.host.is_active(&timer), "after {after}: {timer}");
}

/// Issue 22, defect 3 under systemd: two checkouts of one project and target (`hello`, `test`)
/// deployed to two deploy_tos of one host, each with its own nginx site and port. A unit is one
/// template file per name, linked from one deploy_to and running its releases, so the two cannot
/// share the names: the second checkout's deploy (and `check`) is refused before anything
/// changes on the host, naming the first's deploy_to and the settings to change, and nothing of
/// the first is touched. Given a name of its own as the refusal says (`[project] name`), the
/// second runs beside the first: every deploy, redeploy, rollback and prune of one leaves the
/// other's units running and enabled, its timer waiting and its site serving, and `shipit logs`
/// of each reads its own units only.
#[test]
fn two_checkouts_of_one_project_and_target_under_systemd_never_touch_each_others_units() {
    let mut one = SystemdStack::start_as("hello", "test", "app-one");
    one.configure(|s| s.extra = greeting_worker("one"));
    let mut two = SystemdStack::beside(&one, "hello", "test", "app-two");
    two.configure(|s| {
        s.site = "hello-two.conf".into();
        s.extra = greeting_worker("two");
    });
    let first_one = one.deploy_release();
    keeps_running(&one, &first_one, "its first deploy");

    // The second checkout under the same names: refused before its deploy_to is even made.
    let theirs = one.deploy_to().display().to_string();
    two.deploy(&[]).expect_code(1).says_error(&[
        "the systemd units hello.test.* on this host are another deploy_to's: hello.test.",
        &format!("is linked from {theirs}/.shipit/systemd/hello.test."),
        &format!("hint: deploy this checkout to {theirs}, or give it names of its own"),
        "another [project] name",
        "another target name than `test`",
    ]);
    assert!(
        !two.deploy_to().exists(),
        "the refused deploy made its layout"
    );
    keeps_running(&one, &first_one, "the second checkout's refused deploy");
    let check = two.shipit(&["check", "--target", "test"]);
    check.expect_code(1);
    let said = format!("{}{}", check.stdout, check.stderr);
    assert!(
        said.contains("are another deploy_to's") && said.contains(&theirs),
        "{said}"
    );

    // Named apart, the two run side by side.
    two.configure(|s| s.name = "hello-two".into());
    let first_two = two.deploy_release();
    keeps_running(&two, &first_two, "its first deploy");
    keeps_running(&one, &first_one, "the second checkout's first deploy");
    one.change_page("one, second");
    let second_one = one.deploy_release();
    keeps_running(&one, &second_one, "its second deploy");
    keeps_running(&two, &first_two, "the first checkout's second deploy");
    two.change_page("two, second");
    let second_two = two.deploy_release();
    keeps_running(&two, &second_two, "its second deploy");
    keeps_running(&one, &second_one, "the second checkout's second deploy");
    one.rollback(&[]).expect_code(0);
    keeps_running(&one, &first_one, "its rollback");
    keeps_running(&two, &second_two, "the first checkout's rollback");
    two.rollback(&[]).expect_code(0);
    keeps_running(&two, &first_two, "its rollback");
    keeps_running(&one, &first_one, "the second checkout's rollback");

    // `shipit logs` of each reads its own worker's lines, never the other's.
    for (stack, own, other) in [(&one, "one", "two"), (&two, "two", "one")] {
        let run = logs(stack, "worker", "200");
        run.expect_code(0).prints(&[&format!("[{own}]")]);
        assert!(
            !run.stdout.contains(&format!("[{other}]")),
            "{own}'s logs show {other}'s worker:\n{}",
            run.stdout
        );
    }

    // A deploy of one that fails (in a hook) and stops its new units leaves the other alone,
    // and a prune of it removes the failed release and nothing of the other's.
    let releases = |stack: &SystemdStack| list_dir(&stack.deploy_to().join("releases"));
    let prune = |stack: &SystemdStack| {
        stack
            .shipit(&[
                "releases", "--target", "test", "--prune", "--keep", "1", "--yes",
            ])
            .expect_code(0);
    };
    two.configure(|s| {
        s.extra = format!(
            "hooks = {{ after_switch = [\"exit 3\"] }}\n{}",
            greeting_worker("two")
        )
    });
    two.deploy(&[]).expect_code(1).says(&["after_switch"]);
    keeps_running(&one, &first_one, "the second checkout's failed deploy");
    keeps_running(&two, &first_two, "its failed deploy");
    let kept = vec![first_two.clone(), second_two.clone()];
    assert_eq!(releases(&two).len(), 3, "{:?}", releases(&two));
    let before = releases(&one);
    prune(&two);
    assert_eq!(releases(&two), kept, "the failed release is pruned");
    assert_eq!(releases(&one), before);
    keeps_running(&one, &first_one, "the second checkout's prune");
    prune(&one);
    assert_eq!(releases(&two), kept);
    keeps_running(&two, &first_two, "the first checkout's prune");
}
