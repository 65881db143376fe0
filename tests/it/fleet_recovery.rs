//! A fleet whose shipit is killed between prepare and switch recovers by itself (issue 23, item
//! 6), on three real hosts (sshd, nginx, supervisord each) switched one at a time: once every
//! host is prepared, the test SIGKILLs shipit. Each prepared host's watch then abandons the new
//! release, stops its app server and gives the lock back within `prepared_timeout`, `current`
//! still serves the old release everywhere, and the next deploy needs no `--break-lock`.
//! Needs root.

use std::process::Command as StdCommand;
use std::time::{Duration, Instant};

use support::fleet::Fleet;
use support::stack::*;
use support::*;

/// The target's `prepared_timeout`: far below the default, above how long a loaded machine takes
/// between the first host's end of prepare and the last's.
const PREPARED_TIMEOUT: u64 = 60;

#[test]
fn a_fleet_prepared_by_a_killed_shipit_gives_its_locks_and_releases_back_by_itself() {
    let mut fleet = Fleet::start(3);
    fleet.stack.set_options(|o| {
        o.extra
            // A SQLite database per host.
            .push_str(&format!(
                "migrate = \"each-host\"\nbatch = 1\nprepared_timeout = {PREPARED_TIMEOUT}\n"
            ))
    });
    let old = fleet.stack.deploy_release();
    fleet.stack.change_page("killed between prepare and switch");

    let hosts = fleet.to.len();
    let mut prepared = 0;
    let mut killed_at: Option<Instant> = None;
    let run = fleet
        .stack
        .watched(&["deploy", "--target", TARGET], &mut |line, pid| {
            if line.contains("✓ await-switch") {
                prepared += 1;
                if prepared == hosts && killed_at.is_none() {
                    let killed = StdCommand::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status()
                        .is_ok_and(|s| s.success());
                    killed_at = killed.then(Instant::now);
                }
            }
        });
    let killed_at = killed_at.unwrap_or_else(|| panic!("never killed:\n{}", run.stderr));
    assert_eq!(run.code, -1, "shipit was not killed:\n{}", run.stderr);
    let new = fleet
        .stack
        .releases()
        .into_iter()
        .find(|r| *r != old)
        .expect("the killed deploy's release on host 0");

    // Every host gives its lock back and stops the new app server by itself, within the bound.
    let bound = Duration::from_secs(PREPARED_TIMEOUT + 10);
    let running_new = |i: usize| {
        supervisor_status(&fleet.host(i).sup)
            .lines()
            .any(|l| l.contains(&program(&new)) && l.contains("RUNNING"))
    };
    let recovered = wait_for(bound, || {
        (0..hosts)
            .all(|i| !fleet.locked(i) && !running_new(i))
            .then(|| killed_at.elapsed())
    });
    let took = recovered.unwrap_or_else(|| {
        panic!(
            "not recovered {bound:?} after the kill: locked {:?}, new app running {:?}",
            (0..hosts).map(|i| fleet.locked(i)).collect::<Vec<_>>(),
            (0..hosts).map(running_new).collect::<Vec<_>>()
        )
    });
    eprintln!(
        "[timing] {hosts} hosts: locks and app servers given back {:.1}s after the kill (prepared_timeout {PREPARED_TIMEOUT}s)",
        took.as_secs_f64()
    );
    fleet.all_serve(&old);
    for i in 0..hosts {
        assert_eq!(state_of(&fleet.to[i], &new), "failed", "host {i}");
    }
    // Hosts 1 and 2 (batch = 1: their switch had not begun) were given up by their watch, which
    // says why in the deploy log.
    for i in 1..hosts {
        let log = std::fs::read_to_string(fleet.to[i].join(".shipit/log")).unwrap();
        assert!(
            log.contains("aborted: the run that prepared it is gone"),
            "host {i}:\n{log}"
        );
    }

    // The next deploy takes every lock without --break-lock.
    let next = fleet.stack.deploy(&[]).expect_code(0).release();
    fleet.all_serve(&next);
}
