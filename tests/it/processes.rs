//! Processes besides the web app server, against real components: a Celery worker and beat of
//! the example project (requirements/celery.txt, hello/celery.py, pages/tasks.py) on a real
//! Redis, run by supervisord, placed by roles on a fleet. Needs root.

use support::celery::*;
use support::fleet::*;
use support::stack::*;
use support::*;

/// `names` of what `status` says once that is `expected`, or after DEPLOY_TIMEOUT: a deploy stops
/// the previous release's programs in the background, after it reported success (unless
/// singletons change hands on that host).
fn settled(status: impl Fn() -> String, expected: &[String]) -> Vec<String> {
    wait_for(DEPLOY_TIMEOUT, || {
        let now = names(&status());
        (now == expected).then_some(now)
    })
    .unwrap_or_else(|| names(&status()))
}

/// The program names in `supervisorctl status` output (the first word of each line).
fn names(status: &str) -> Vec<String> {
    let mut names: Vec<String> = status
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

#[test]
fn a_celery_worker_is_replaced_on_deploy_finishes_its_task_and_comes_back_on_rollback() {
    let redis = Redis::start();
    let mut stack = Stack::start();
    stack.set_requirements("requirements/celery.txt");
    stack.set_options(|o| {
        o.extra = celery_toml(
            &redis,
            "",
            &format!("worker = {{ run = {WORKER:?}, stop_timeout = 120 }}\n"),
        )
    });
    let to = stack.deploy_to();

    let first = stack.deploy_release();
    stack.serves_release(&first);
    assert_eq!(
        names(&stack.programs()),
        [program(&first), format!("{}.worker", program(&first))]
    );
    send(&to, "before", "");
    wait_line(&to, &format!("done before {first} "));
    // `shipit logs --process worker` reads the worker program's log file.
    stack
        .shipit(&[
            "logs",
            "--target",
            TARGET,
            "--process",
            "worker",
            "-n",
            "200",
        ])
        .expect_code(0)
        .prints(&["pages.tasks.record"]);

    // A task in flight when the next deploy switches: the old worker is stopped gracefully
    // (supervisor shows it STOPPING while the task holds it), finishes the task, then exits.
    send(&to, "slow", "go");
    wait_line(&to, &format!("started slow {first} "));
    stack.change_page("second");
    let second = std::thread::scope(|scope| {
        let deploy = scope.spawn(|| stack.deploy_ok());
        let old_worker = format!("{}.worker", program(&first));
        wait_for(DEPLOY_TIMEOUT, || {
            stack
                .programs()
                .lines()
                .any(|l| l.starts_with(&old_worker) && l.contains("STOPPING"))
                .then_some(())
        })
        .unwrap_or_else(|| panic!("the old worker was never stopping:\n{}", stack.programs()));
        run_as_deploy_ok(&format!(
            "touch {}",
            shell_quote(&to.join("shared/var/go").display().to_string())
        ));
        deploy.join().unwrap()["release"]
            .as_str()
            .unwrap()
            .to_string()
    });
    wait_line(&to, &format!("done slow {first} "));
    let expected = [program(&second), format!("{}.worker", program(&second))];
    assert_eq!(settled(|| stack.programs(), &expected), expected);
    send(&to, "after", "");
    wait_line(&to, &format!("done after {second} "));

    // Rollback restores the first release's worker and stops the second's.
    stack.rollback(&[]).expect_code(0);
    stack.serves_release(&first);
    let expected = [program(&first), format!("{}.worker", program(&first))];
    assert_eq!(settled(|| stack.programs(), &expected), expected);
    send(&to, "rolled-back", "");
    wait_line(&to, &format!("done rolled-back {first} "));

    // "Reboot": supervisord starts afresh from its configs; only current's programs come up.
    run_as_deploy_ok(&format!("{} reload", stack.host.sup.ctl_command()));
    let expected = [program(&first), format!("{}.worker", program(&first))];
    wait_for(DEPLOY_TIMEOUT, || {
        let status = stack.programs();
        (names(&status) == expected && status.lines().all(|l| l.contains(" RUNNING ")))
            .then_some(())
    })
    .unwrap_or_else(|| panic!("after a reload:\n{}", stack.programs()));
    send(&to, "rebooted", "");
    wait_line(&to, &format!("done rebooted {first} "));
}

#[test]
fn a_process_that_does_not_start_fails_the_deploy_and_the_old_release_keeps_everything() {
    let mut stack = Stack::start();
    let first = stack.deploy_release();
    stack.set_options(|o| {
        o.extra =
            "[targets.test.processes]\nbroken = \"sh -c 'echo cannot reach the broker; exit 3'\"\n"
                .into()
    });
    let run = stack.deploy(&[]);
    run.expect_code(1).says_error(&[
        "start-app",
        "broken did not start",
        "cannot reach the broker",
    ]);
    stack.serves_release(&first);
    assert_eq!(names(&stack.programs()), [program(&first)]);
    assert_eq!(stack.current_id(), first);
}

#[test]
fn roles_place_processes_and_beat_runs_once_on_the_primary() {
    let redis = Redis::start();
    let mut fleet = TwoHosts::start();
    fleet.set_requirements("requirements/celery.txt");
    let beat = "celery -A hello.celery beat -l info -s var/beat-schedule";
    // Each host has its own SQLite database here.
    let toml = format!(
        "migrate = \"each-host\"\n{}\n[targets.test.roles]\nweb = [{:?}]\nworker = [{:?}]\n",
        celery_toml(
            &redis,
            ", HELLO_BEAT_SECONDS = \"1\"",
            &format!("worker = {WORKER:?}\nbeat = {{ run = {beat:?}, once = true }}\n"),
        ),
        fleet.a_spec,
        fleet.b_spec
    );
    fleet.add_target_toml(&toml);

    for deploy in ["first", "second"] {
        fleet.stack.change_page(deploy);
        let release = fleet.stack.deploy_release();
        let p = program(&release);
        // A (web, primary): the app server and beat; B (worker): the worker, no site.
        assert_eq!(
            names(&supervisor_status(&fleet.stack.host.sup)),
            [p.clone(), format!("{p}.beat")]
        );
        let expected = [format!("{p}.worker")];
        assert_eq!(
            settled(|| supervisor_status(&fleet.b.sup), &expected),
            expected
        );
        serves_release_on(&fleet.stack.host, &fleet.a_http, &release);
        assert!(!fleet.b.nginx.sites_dir.join("hello.conf").exists());
        // Beat on A sends, the worker on B runs: one beat on the whole machine.
        wait_line(&fleet.b_to, &format!("done beat {release} "));
        assert_eq!(processes_running("hello.celery beat", &fleet.a_to), 1);
    }
}

#[test]
fn a_canary_to_some_hosts_is_refused_unless_mixed_releases_are_allowed() {
    let mut fleet = TwoHosts::start();
    // Each host has its own SQLite database here.
    fleet.add_target_toml("migrate = \"each-host\"\n");
    let first = fleet.stack.deploy_release();
    fleet.stack.change_page("canary");

    let b = fleet.b_spec.clone();
    fleet
        .stack
        .deploy(&["--hosts", &b])
        .expect_code(5)
        .says_error(&["mixed releases", &fleet.a_spec, "--allow-mixed"]);
    fleet
        .stack
        .deploy(&["--roles", "mail"])
        .expect_code(2)
        .says_error(&["no role `mail`"]);
    assert_eq!(list_dir(&fleet.b_to.join("releases")), [first.as_str()]);

    let canary = fleet.stack.deploy(&["--hosts", &b, "--allow-mixed"]);
    canary.expect_code(0);
    let canary = canary.release();
    serves_release_on(&fleet.stack.host, &fleet.a_http, &first);
    serves_release_on(&fleet.b, &fleet.b_http, &canary);
    assert_eq!(list_dir(&fleet.a_to.join("releases")), [first.as_str()]);

    // The whole target again: one release everywhere.
    let all = fleet.stack.deploy_release();
    serves_release_on(&fleet.stack.host, &fleet.a_http, &all);
    serves_release_on(&fleet.b, &fleet.b_http, &all);
}

/// Issue 23 item 5 on real hosts: an every-minute entry fires in every minute exactly once, on
/// the primary only (B, a host of the fleet, never runs it), in `current` with its env, across a
/// switch (the old release's scheduler stopping, the new one's starting).
///
/// The issue asks for five minutes of an every-minute entry giving exactly five runs. Waiting
/// five wall-clock minutes here would take a quarter of CI's whole budget, and scaling the
/// scheduler's minute for tests would need a knob in the production scheduler that the real
/// clock never exercises. So this test watches the minutes it must anyway (two consecutive
/// minutes of the first release's scheduler, then the first minute of the second's: every
/// minute, none missed or doubled at the switch, at most about three minutes), and the
/// five-minute count, the skip of a run still running, the switch's minute and the minutes no
/// scheduler took are counted exactly in the fast tier (src/remote/fast/scheduler.rs), where
/// scheduler.py runs for real on a virtual clock.
#[test]
fn the_schedule_fires_every_minute_once_on_the_primary_only_in_current_with_its_env_across_a_switch(
) {
    let mut fleet = TwoHosts::start();
    // Each host has its own SQLite database here.
    fleet.add_target_toml(concat!(
        "migrate = \"each-host\"\n",
        "env = { HELLO_GREETING = \"from-env\" }\n",
        "\n[targets.test.schedule]\n",
        "'* * * * *' = 'echo \"$(($(date +%s) / 60)) $SHIPIT_RELEASE $HELLO_GREETING\" >> var/schedule.log'\n",
    ));
    let log = fleet.a_to.join("shared/var/schedule.log");
    // The minutes (since the epoch) of the log's lines, once it has `count` lines of `release`.
    let fired = |release: &str, count: usize| -> Vec<(u64, String)> {
        let needle = format!(" {release} from-env");
        let lines = || -> Vec<(u64, String)> {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.lines()
                .map(|l| {
                    let (minute, rest) = l.split_once(' ').unwrap();
                    (minute.parse().unwrap(), format!(" {rest}"))
                })
                .collect()
        };
        wait_for(MINUTE_TIMEOUT + MINUTE_TIMEOUT, || {
            let now = lines();
            (now.iter().filter(|(_, l)| *l == needle).count() >= count).then_some(now)
        })
        .unwrap_or_else(|| {
            panic!(
                "the schedule did not run {count} times in {release}; schedule.log:\n{}\nscheduler log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default(),
                std::fs::read_to_string(fleet.a_to.join("shared/log/hello-schedule.log"))
                    .unwrap_or_default()
            )
        })
    };

    let first = fleet.stack.deploy_release();
    assert!(names(&supervisor_status(&fleet.stack.host.sup))
        .contains(&format!("{}.schedule", program(&first))));
    assert_eq!(names(&supervisor_status(&fleet.b.sup)), [program(&first)]);
    fired(&first, 2);

    fleet.stack.change_page("second");
    let second = fleet.stack.deploy_release();
    let p = program(&second);
    assert_eq!(
        names(&supervisor_status(&fleet.stack.host.sup)),
        [p.clone(), format!("{p}.schedule")]
    );
    let lines = fired(&second, 1);

    // Every minute from the first run to the last, exactly once, whichever scheduler ran it;
    // none on B.
    let minutes: Vec<u64> = lines.iter().map(|(m, _)| *m).collect();
    let every: Vec<u64> = (minutes[0]..minutes[0] + minutes.len() as u64).collect();
    assert_eq!(
        minutes,
        every,
        "{}\nscheduler log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default(),
        std::fs::read_to_string(fleet.a_to.join("shared/log/hello-schedule.log"))
            .unwrap_or_default()
    );
    assert!(!fleet.b_to.join("shared/var/schedule.log").exists());
}

/// Issue 23 item 4: a canary that leaves out the primary (`--hosts B`) installs no `once`
/// process and no scheduler on B, leaves the primary's running as they are, and says so.
#[test]
fn a_canary_that_leaves_out_the_primary_changes_no_once_process_or_schedule() {
    let mut fleet = TwoHosts::start();
    // Each host has its own SQLite database here.
    fleet.add_target_toml(concat!(
        "migrate = \"each-host\"\n",
        "\n[targets.test.processes]\n",
        "beat = { run = \"sleep 86400\", once = true }\n",
        "\n[targets.test.schedule]\n",
        "'0 3 * * *' = 'true'\n",
    ));
    let first = fleet.stack.deploy_release();
    let p = program(&first);
    let on_a = || supervisor_status(&fleet.stack.host.sup);
    let programs = [p.clone(), format!("{p}.beat"), format!("{p}.schedule")];
    let before = wait_for(DEPLOY_TIMEOUT, || {
        let status = on_a();
        (names(&status) == programs && status.lines().all(|l| l.contains(" RUNNING ")))
            .then_some(status)
    })
    .unwrap_or_else(|| panic!("A:\n{}", on_a()));
    assert_eq!(names(&supervisor_status(&fleet.b.sup)), [p]);

    fleet.stack.change_page("canary");
    let b = fleet.b_spec.clone();
    let run = fleet.stack.deploy(&["--hosts", &b, "--allow-mixed"]);
    run.expect_code(0).says(&[&format!(
        "no `once` process or schedule changes: beat, schedule keep running on the primary {}",
        fleet.a_spec
    )]);
    let canary = run.release();
    serves_release_on(&fleet.b, &fleet.b_http, &canary);

    // B runs the canary's app server and nothing else: no beat, no scheduler, and its release
    // holds none of their files.
    let expected = [program(&canary)];
    assert_eq!(
        settled(|| supervisor_status(&fleet.b.sup), &expected),
        expected
    );
    let shipit_dir = fleet.b_to.join("releases").join(&canary).join(".shipit");
    for file in ["supervisor-once.conf", "schedule.tab", "scheduler.py"] {
        assert!(!shipit_dir.join(file).exists(), "{file} in B's canary");
    }
    // A: the same programs, the same processes (pids), of the first release.
    assert_eq!(pids(&on_a()), pids(&before));
    assert_eq!(fleet.stack.current_id(), first);
}

/// The `pid N` of each line of `supervisorctl status` output, by program.
fn pids(status: &str) -> Vec<(String, String)> {
    let mut pids: Vec<(String, String)> = status
        .lines()
        .filter_map(|l| {
            let name = l.split_whitespace().next()?;
            let pid = l.split_once(" pid ")?.1.split(',').next()?;
            Some((name.to_string(), pid.to_string()))
        })
        .collect();
    pids.sort();
    pids
}

/// The processes whose working directory is `dir` (a release's), as `pid cmdline` lines.
fn processes_in(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let proc = entry.path();
        if std::fs::read_link(proc.join("cwd")).is_ok_and(|cwd| cwd == dir) {
            let cmdline = std::fs::read(proc.join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.push(format!("{} {cmdline}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

/// Issue 23, item 7: a process whose `run` needs a shell (a loop, `a && b`) was exec'd, and
/// failed only at start-app. It runs under a shell of its own now, and since a shell passes no
/// signal on, the next deploy stops it with its whole process group: nothing it started is
/// left running in the old release.
#[test]
fn processes_that_need_a_shell_run_and_the_next_deploy_stops_all_they_started() {
    let mut stack = Stack::start();
    stack.set_options(|o| {
        o.extra = "[targets.test.processes]\n\
                   ticker = \"while true; do echo tick >> var/ticks-$SHIPIT_RELEASE; sleep 0.2; done\"\n\
                   waiter = \"test -f manage.py && sleep 3600\"\n"
            .into()
    });
    let to = stack.deploy_to();
    let first = stack.deploy_release();
    let expected = [
        program(&first),
        format!("{}.ticker", program(&first)),
        format!("{}.waiter", program(&first)),
    ];
    assert_eq!(settled(|| stack.programs(), &expected), expected);
    // The loop loops, and the list ran past its `&&`.
    let ticks = to.join(format!("shared/var/ticks-{first}"));
    wait_for(DEPLOY_TIMEOUT, || {
        let text = std::fs::read_to_string(&ticks).unwrap_or_default();
        (text.lines().count() >= 3).then_some(())
    })
    .unwrap_or_else(|| panic!("the ticker never ticked thrice:\n{}", stack.programs()));
    let release = to.join("releases").join(&first);
    let running = processes_in(&release);
    assert!(
        running.iter().any(|p| p.ends_with(" sleep 3600 ")),
        "{running:?}"
    );

    stack.change_page("second");
    let second = stack.deploy_release();
    let expected = [
        program(&second),
        format!("{}.ticker", program(&second)),
        format!("{}.waiter", program(&second)),
    ];
    assert_eq!(settled(|| stack.programs(), &expected), expected);
    // Stopped: gone within moments (a shell stopped alone leaves `sleep 3600` for an hour).
    let left = wait_for(SERVE_TIMEOUT, || {
        processes_in(&release).is_empty().then_some(())
    });
    assert!(
        left.is_some(),
        "left running in the old release: {:?}",
        processes_in(&release)
    );
    assert!(!processes_in(&to.join("releases").join(&second)).is_empty());
}
