//! The layout and the lock: taking it, two runs wanting it, a stale one, a hold, giving it back.

use super::{each_shell, Host};
use crate::plan::quote;

pub(super) const COVERS: &[&str] = &[
    "step_layout",
    "step_lock",
    "step_lock_status",
    "step_lock_release",
    "step_audit",
    "step_check_lock",
    "step_unlock",
    "step_release_lock",
];

/// The start time of this test process, as `shipit_starttime` reads it: a live lock holder.
pub(super) fn live_holder() -> String {
    let pid = std::process::id();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let start = stat
        .rsplit_once(") ")
        .unwrap()
        .1
        .split(' ')
        .nth(19)
        .unwrap();
    format!("holder_pid={pid}\nholder_start={start}\n")
}

fn lock_info(host: &Host, info: &str) {
    host.write(
        host.d(".shipit/lock/info"),
        &format!(
            "token=other\nby=bob@desk\nsince=2026-11-22T00:00:00Z\nop=deploy\nrelease=1\n{info}"
        ),
    );
}

#[test]
fn layout_makes_the_directories_and_keeps_shipit_state_private() {
    each_shell(|host| {
        host.step("step_layout", &[]).status(0);
        for dir in ["releases", "shared", "venvs", ".shipit/archives"] {
            assert!(host.d(dir).is_dir(), "{:?} {dir}", host.shell);
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(host.d(".shipit"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{:?}", host.shell);
    });
}

#[test]
fn layout_refuses_a_deploy_to_it_cannot_write() {
    each_shell(|host| {
        let blocked = host.path("blocked");
        host.write(&blocked, "a file, not a directory");
        host.set("D", format!("{}/deploy", blocked.display()));
        host.step("step_layout", &[])
            .status(1)
            .says("cannot create the layout");
    });
}

#[test]
fn layout_names_the_tools_a_host_lacks() {
    each_shell(|host| {
        // No tool but the shell's builtins on PATH: no sha256sum, say.
        let run = host.run("PATH=/nonexistent\nshipit_step layout step_layout");
        run.status(1).says("this host lacks").says("sha256sum");
        assert!(!host.d(".shipit").exists(), "{:?}", host.shell);
    });
}

/// A deploy finds every command the settings name before anything changes: a program missing
/// from the deploy user's PATH (nginx in /usr/sbin, say) is named with the setting and a hint.
#[test]
fn layout_of_a_deploy_names_a_command_not_on_path() {
    each_shell(|host| {
        host.stub("nginx", "");
        host.set("NGINX", "1")
            .set("NGINX_TEST", "nginx -t")
            .set("NGINX_RELOAD", "/nonexistent/nginx -s reload");
        host.step("step_layout", &[])
            .status(127)
            .says("/nonexistent/nginx, which [targets.production.nginx] reload runs, is not on");
        host.set("NGINX_RELOAD", "nginx -s reload");
        host.step("step_layout", &[]).status(0);
        host.set("PY", "python3.99");
        host.step("step_layout", &[])
            .status(127)
            .says("python3.99, which [project] python runs, is not on")
            .says("hint: name it by its full path in [project] python");
        // Only a deploy or a rollback needs them: `shipit lock acquire` does not.
        host.set("OP", "lock");
        host.step("step_layout", &[]).status(0);
    });
}

#[test]
fn lock_takes_the_lock_and_records_who() {
    each_shell(|host| {
        host.step("step_lock", &[]).status(0);
        let info = std::fs::read_to_string(host.d(".shipit/lock/info")).unwrap();
        assert!(info.contains("token=token\nby=alice@laptop\n"), "{info}");
        assert!(
            info.contains("op=deploy\nrelease=20261122010320\n"),
            "{info}"
        );
    });
}

#[test]
fn a_second_run_is_refused_while_the_first_holds_the_lock() {
    each_shell(|host| {
        lock_info(host, &live_holder());
        let run = host.step("step_lock", &[]);
        run.status(75).fact_is("lock_live", "1");
        assert!(
            run.fact("locked").unwrap().starts_with("by bob@desk since"),
            "{run:?}"
        );
        // Its cleanup gives back no lock that is not its own.
        assert!(host.d(".shipit/lock/info").exists());
        // Waiting for it: the time runs out, and the run is still refused. The deadline is in
        // whole seconds of `date +%s`, so a wait of 1 s may end before it starts (and say
        // nothing) when the second turns meanwhile: 2 s always waits.
        host.set("LOCK_WAIT", "2");
        host.step("step_lock", &[])
            .status(75)
            .says("waiting up to 2s");
    });
}

#[test]
fn a_stale_lock_is_refused_unless_broken_as_dead() {
    each_shell(|host| {
        lock_info(host, "holder_pid=1\nholder_start=0\n");
        host.step("step_lock", &[])
            .status(75)
            .fact_is("lock_live", "0");
        host.set("BREAK", "dead");
        let run = host.step("step_lock", &[]);
        run.status(0);
        assert!(
            run.fact("broke_lock")
                .unwrap()
                .ends_with("no longer connected"),
            "{run:?}"
        );
        let info = std::fs::read_to_string(host.d(".shipit/lock/info")).unwrap();
        assert!(info.starts_with("token=token\n"), "{info}");
    });
}

#[test]
fn a_live_lock_is_broken_only_by_force() {
    each_shell(|host| {
        lock_info(host, &live_holder());
        host.set("BREAK", "dead");
        host.step("step_lock", &[]).status(75);
        host.set("BREAK", "force");
        let run = host.step("step_lock", &[]);
        run.status(0);
        assert!(
            run.fact("broke_lock").unwrap().ends_with("still running"),
            "{run:?}"
        );
    });
}

/// A lock whose holder is not recorded (an older shipit made the directory first and wrote the
/// holder after): live while young, so neither a racing run nor `--break-lock` takes it; dead
/// once it is old.
#[test]
fn a_lock_without_its_holder_is_live_while_young() {
    each_shell(|host| {
        std::fs::create_dir_all(host.d(".shipit/lock")).unwrap();
        host.set("BREAK", "dead");
        let run = host.step("step_lock", &[]);
        run.status(75)
            .fact_is("lock_live", "1")
            .fact_is("locked", "by a run that has not recorded itself yet");
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
        std::fs::File::open(host.d(".shipit/lock"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        host.step("step_lock", &[]).status(0).fact_is(
            "broke_lock",
            "by a run that has not recorded itself yet, no longer connected",
        );
    });
}

/// Two runs racing for one lock, one holding it with `shipit lock acquire` and one breaking
/// dead locks (`--break-lock`), 25 times in each shell: exactly one gets it, every time, and
/// the lock is the winner's. Taking the lock with mkdir and writing its holder after let the
/// breaker take a lock being taken (issue 22, defect 6).
#[test]
fn of_two_racing_runs_exactly_one_takes_the_lock() {
    each_shell(|host| {
        let mut wrong = Vec::new();
        for round in 0..25 {
            let _ = std::fs::remove_dir_all(host.d(".shipit"));
            std::fs::create_dir_all(host.d(".shipit")).unwrap();
            host.set("OP", "lock")
                .set("BREAK", "none")
                .set("TOKEN", "acquire");
            let acquire = host.spawn("shipit_step lock step_lock");
            host.set("OP", "deploy")
                .set("BREAK", "dead")
                .set("TOKEN", "breaker");
            let breaker = host.spawn("shipit_step lock step_lock");
            let runs = [acquire, breaker].map(|child| host.ran(&child.wait_with_output().unwrap()));
            let won: Vec<&str> = ["acquire", "breaker"]
                .into_iter()
                .zip(&runs)
                .filter(|(_, run)| run.status == 0)
                .map(|(name, _)| name)
                .collect();
            let refused = runs.iter().filter(|run| run.status == 75).count();
            let info = std::fs::read_to_string(host.d(".shipit/lock/info")).unwrap_or_default();
            if won.len() != 1 || refused != 1 || !info.starts_with(&format!("token={}\n", won[0])) {
                wrong.push(format!(
                    "round {round}: won {won:?}, lock {info:?}, {runs:?}"
                ));
            }
        }
        assert!(wrong.is_empty(), "{:?}: {wrong:#?}", host.shell);
    });
}

#[test]
fn a_held_lock_is_reported_released_and_logged() {
    each_shell(|host| {
        host.set("OP", "lock").set("LOCK_MESSAGE", "db maintenance");
        host.step("step_lock", &[]).status(0);
        // Held: live after its session ended, and said so.
        host.set("TOKEN", "another run");
        let run = host.step("step_lock_status", &[]);
        run.status(0)
            .fact_is("lock_held", "1")
            .fact_is("lock_live", "1");
        assert!(
            run.fact("locked")
                .unwrap()
                .ends_with("held: db maintenance"),
            "{run:?}"
        );
        let run = host.step("step_lock_release", &[]);
        run.status(0);
        assert!(run.fact("released").is_some(), "{run:?}");
        assert!(!host.d(".shipit/lock").exists());
        host.step("step_lock_status", &[])
            .status(0)
            .fact_is("unlocked", "1");
        host.step("step_lock_release", &[])
            .status(0)
            .fact_is("was_unlocked", "1");
        let run = host.step("step_audit", &[]);
        run.status(0);
        assert!(
            run.fact("log:000000001")
                .unwrap()
                .contains("acquired: db maintenance"),
            "{run:?}"
        );
        assert!(
            run.fact("log:000000002")
                .unwrap()
                .contains("released: the lock held by alice"),
            "{run:?}"
        );
    });
}

#[test]
fn each_log_line_names_the_shipit_that_wrote_it() {
    each_shell(|host| {
        host.set("OP", "lock").set("LOCK_MESSAGE", "db maintenance");
        host.step("step_lock", &[]).status(0);
        let run = host.step("step_audit", &[]);
        let line = run.fact("log:000000001").expect("a log line").to_string();
        let facts = crate::remote::facts::Facts::from([("log:000000001".to_string(), line)]);
        let entries = crate::plan::operate::parse_log("h", &facts);
        assert_eq!(entries[0].outcome, "acquired: db maintenance");
        assert_eq!(entries[0].shipit, *crate::provenance::LONG);
    });
}

#[test]
fn a_live_runs_lock_is_not_released() {
    each_shell(|host| {
        lock_info(host, &live_holder());
        host.step("step_lock_release", &[])
            .status(75)
            .fact_is("lock_live", "1");
        assert!(host.d(".shipit/lock/info").exists());
    });
}

#[test]
fn audit_of_a_host_never_deployed_says_nothing() {
    each_shell(|host| {
        let run = host.step("step_audit", &[]);
        run.status(0);
        assert!(run.fact("log:000000001").is_none(), "{run:?}");
    });
}

#[test]
fn only_the_runs_own_lock_is_checked_or_given_back() {
    each_shell(|host| {
        host.step("step_lock", &[]).status(0);
        host.step("step_check_lock", &[]).status(0);
        host.set("TOKEN", "a broken run");
        host.step("step_check_lock", &[])
            .status(1)
            .fact_is("lock_lost", "1");
        host.step("step_unlock", &[]).status(0);
        host.step("step_release_lock", &[]).status(0);
        assert!(host.d(".shipit/lock/info").exists());
        host.set("TOKEN", "token");
        host.step("step_release_lock", &[])
            .status(0)
            .fact_is("unlocked", "1");
        assert!(!host.d(".shipit/lock").exists());
        host.step("step_lock", &[]).status(0);
        host.step("step_unlock", &[])
            .status(0)
            .fact_is("unlocked", "1");
    });
}

/// A lock given back is taken off its name at once (renamed aside, then deleted). Deleted where
/// it stood, it showed between its record and its directory a lock without its holder (which
/// counts as one being taken), and a run renaming its own lock onto that empty directory got
/// it, after which rm failed on it and with it the step that gave the lock back (the real
/// tier's lock race saw the directory without its record: `lock_race`).
#[test]
fn a_lock_being_given_back_is_never_seen_half_deleted_and_a_run_taking_it_meanwhile_gets_it_whole()
{
    each_shell(|host| {
        host.set("TOKEN", "giver");
        host.step("step_lock", &[]).status(0);
        // rm of a lock's directory deletes its record, then waits for the test, then deletes the
        // directory: what rm -rf does, with the moment in between held open.
        let paused = host.path("calls/paused");
        let go = host.path("calls/go");
        host.stub(
            "rm",
            &format!(
                r#"for last; do :; done
case $last in
  */.shipit/lock | */.shipit/lock.gone.*)
    if [ -f "$last/info" ]; then
      /bin/rm -f "$last/info"
      : > {paused}
      while [ ! -e {go} ]; do /bin/sleep 0.01; done
      exec /bin/rmdir "$last"
    fi
    ;;
esac
exec /bin/rm "$@""#,
                paused = quote(paused.to_str().unwrap()),
                go = quote(go.to_str().unwrap()),
            ),
        );
        let giver = host.spawn("shipit_step unlock step_unlock");
        super::pm::wait_for(&paused);
        let lock = host.d(".shipit/lock");
        let half = lock.exists() && !lock.join("info").exists();
        // Another run takes the lock meanwhile: it gets it, whole, and keeps it.
        host.set("TOKEN", "taker")
            .set("OP", "lock")
            .set("BREAK", "none");
        let taker = host.step("step_lock", &[]);
        std::fs::write(&go, "").unwrap();
        let gave = host.ran(&giver.wait_with_output().unwrap());
        assert!(
            !half,
            "{:?}: while given back, the lock's name was a directory without its holder",
            host.shell
        );
        taker.status(0);
        gave.status(0).fact_is("unlocked", "1");
        let info = std::fs::read_to_string(lock.join("info")).unwrap_or_default();
        assert!(
            info.starts_with("token=taker\n"),
            "{:?}: {info:?}",
            host.shell
        );
    });
}

/// A run whose rename is refused by a lock that is given back before the run can read it
/// takes the lock: it was told "cannot create the lock: is deploy_to writable?" (exit 1), or,
/// a moment later, was refused by a lock that was no longer there, judged gone.
#[test]
fn a_run_refused_by_a_lock_given_back_meanwhile_takes_it() {
    each_shell(|host| {
        lock_info(host, &live_holder());
        // The holder gives its lock back just after this run's rename failed on it.
        let once = host.path("calls/once");
        host.write(&once, "");
        host.stub(
            "mv",
            &format!(
                r#"/bin/mv "$@" && exit 0
status=$?
for last; do :; done
case $last in
  */.shipit/lock)
    if [ -e {once} ]; then /bin/rm -f {once}; /bin/rm -rf "$last"; fi
    ;;
esac
exit "$status""#,
                once = quote(once.to_str().unwrap()),
            ),
        );
        host.set("OP", "lock").set("BREAK", "none");
        let run = host.step("step_lock", &[]);
        run.status(0).never_says("writable");
        assert!(
            !once.exists(),
            "{:?}: the holder never gave it back",
            host.shell
        );
        let info = std::fs::read_to_string(host.d(".shipit/lock/info")).unwrap();
        assert!(
            info.starts_with("token=token\n"),
            "{:?}: {info}",
            host.shell
        );
    });
}

/// A lock whose run gives it back and ends while this run judges it is not reported as left
/// behind: its holder is gone, but so is the lock, and a run gives its lock back before it
/// ends. This run takes it — it was refused "locked by a run that is no longer connected" and
/// told to --break-lock a lock that no longer existed, and a breaker said it broke it (the
/// real tier's lock race saw the refusal: `lock_race`).
#[test]
fn a_lock_given_back_by_a_run_ending_while_it_is_judged_is_taken_not_reported_left_behind() {
    each_shell(|host| {
        for breaking in ["none", "dead"] {
            let _ = std::fs::remove_dir_all(host.d(".shipit"));
            // Its holder is gone by the time it is judged...
            lock_info(host, "holder_pid=1\nholder_start=0\n");
            // ...and the lock just after its record was read.
            let once = host.path("calls/once");
            host.write(&once, "");
            host.stub(
                "cat",
                &format!(
                    r#"/bin/cat "$@" || exit
case $1 in
  */.shipit/lock/info)
    if [ -e {once} ]; then /bin/rm -f {once}; /bin/rm -rf "${{1%/info}}"; fi
    ;;
esac"#,
                    once = quote(once.to_str().unwrap()),
                ),
            );
            host.set("OP", "lock").set("BREAK", breaking);
            let run = host.step("step_lock", &[]);
            run.status(0);
            assert!(run.fact("broke_lock").is_none(), "{breaking}: {run:?}");
            assert!(!once.exists(), "{:?}: the lock was never read", host.shell);
            let info = std::fs::read_to_string(host.d(".shipit/lock/info")).unwrap();
            assert!(
                info.starts_with("token=token\n"),
                "{:?}: {info}",
                host.shell
            );
        }
    });
}
