//! Two runs of one target started together on a fleet of four real hosts (issue 23, item 1):
//! they never split the hosts' locks between them. Each takes the primary's lock first, then
//! the others' (src/runner/locked.rs, `Fleet::lock`), so exactly one of them holds the fleet and
//! the other is refused (exit 4) or, with `--lock-wait`, waits for it at the primary and then
//! runs. Needs root.
//!
//! # The pairs
//!
//! 20 pairs, each two runs released together by a barrier, with 0 splits and 0 refusals that
//! call the live rival "no longer connected":
//!
//! - 16 pairs of `shipit lock acquire`: the lightest run that takes every host's lock as a deploy
//!   does (the same `Fleet::lock`), so they race exactly where deploys race, at a fraction of a
//!   deploy's time (a deploy builds and uploads an archive and starts an app server on four
//!   hosts). Exactly one exits 0 and holds all four hosts' locks, with its own message; the other
//!   exits 4 naming that message. Before the ordered locks most of these pairs split: both
//!   refused, each holding some hosts.
//! - 2 pairs of real deploys without `--lock-wait`: one deploys (every host serves its release),
//!   the other exits 4 naming the running deploy, and no lock is left.
//! - 2 pairs of real deploys with `--lock-wait 60`: both deploy, one after the other (every host
//!   ends on the later one's release, the log of every host records both).
//!
//! Then a lock another run holds on one of the other hosts (another target sharing it, a hold
//! taken by hand): the run gives every lock back and is refused naming that host, or with
//! `--lock-wait` gives them back, begins again once it is free, and deploys.

use std::sync::Barrier;

use support::fleet::{serves_release_on, Fleet};
use support::stack::*;
use support::*;

/// Runs `a` and `b` in two threads released together; their runs, in that order.
fn together(a: impl FnOnce() -> Run + Send, b: impl FnOnce() -> Run + Send) -> (Run, Run) {
    let barrier = Barrier::new(2);
    std::thread::scope(|scope| {
        let a = scope.spawn(|| {
            barrier.wait();
            a()
        });
        let b = scope.spawn(|| {
            barrier.wait();
            b()
        });
        (a.join().unwrap(), b.join().unwrap())
    })
}

/// What went wrong in one pair, if anything.
fn judge(pair: &str, a: &Run, b: &Run, want: [i32; 2]) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut codes = [a.code, b.code];
    codes.sort();
    if codes != want {
        wrong.push(format!(
            "{pair}: exit {} and {}, not {want:?}\n--- first:\n{}\n--- second:\n{}",
            a.code, b.code, a.stderr, b.stderr
        ));
    }
    for run in [a, b] {
        if run.stderr.contains("no longer connected") || run.stderr.contains("not recorded") {
            wrong.push(format!(
                "{pair}: a live rival reported as gone:\n{}",
                run.stderr
            ));
        }
    }
    wrong
}

/// Host `i`'s lock record (`deploy_to/.shipit/lock/info`), empty when it has none.
fn lock_info(fleet: &Fleet, i: usize) -> String {
    std::fs::read_to_string(fleet.to[i].join(".shipit/lock/info")).unwrap_or_default()
}

#[test]
fn of_two_runs_started_together_on_four_hosts_exactly_one_holds_the_fleet() {
    let started = std::time::Instant::now();
    let mut fleet = Fleet::start(4);
    let lap = |what: &str| eprintln!("[timing] {what}: {:.1}s", started.elapsed().as_secs_f64());
    lap("four hosts started");
    // Each host has its own SQLite database here.
    fleet
        .stack
        .set_options(|o| o.extra.push_str("migrate = \"each-host\"\n"));
    let hosts = fleet.to.len();
    let mut wrong: Vec<String> = Vec::new();

    for pair in 0..16 {
        let acquire = |who: &str| {
            let message = format!("pair {pair} by {who}");
            let stack = &fleet.stack;
            move || stack.shipit(&["lock", "-t", TARGET, "acquire", "-m", &message])
        };
        let (a, b) = together(acquire("a"), acquire("b"));
        let name = format!("lock pair {pair}");
        wrong.extend(judge(&name, &a, &b, [0, 4]));
        if let Some((winner, loser)) = match (a.code, b.code) {
            (0, 4) => Some(("a", &b)),
            (4, 0) => Some(("b", &a)),
            _ => None,
        } {
            let message = format!("pair {pair} by {winner}");
            for i in 0..hosts {
                let info = lock_info(&fleet, i);
                if !info.contains(&format!("message={message}\n")) {
                    wrong.push(format!(
                        "{name}: host {i} is not held by {winner}: {info:?}"
                    ));
                }
            }
            if !loser.stderr.contains(&message) {
                wrong.push(format!(
                    "{name}: the refusal does not name the hold:\n{}",
                    loser.stderr
                ));
            }
        }
        fleet
            .stack
            .shipit(&["lock", "-t", TARGET, "release"])
            .expect_code(0);
        assert!(
            (0..hosts).all(|i| !fleet.locked(i)),
            "{name}: a lock is left after `lock release`"
        );
    }

    lap("16 pairs of lock acquire");
    for pair in 0..2 {
        let name = format!("deploy pair {pair}");
        fleet.stack.change_page(&format!("deploy pair {pair}"));
        let stack = &fleet.stack;
        let (a, b) = together(|| stack.deploy(&[]), || stack.deploy(&[]));
        wrong.extend(judge(&name, &a, &b, [0, 4]));
        if let Some((winner, loser)) = match (a.code, b.code) {
            (0, 4) => Some((&a, &b)),
            (4, 0) => Some((&b, &a)),
            _ => None,
        } {
            let id = winner.release();
            for i in 0..hosts {
                serves_release_on(fleet.host(i), &fleet.http(i), &id);
            }
            if !loser.stderr.contains("still running") {
                wrong.push(format!(
                    "{name}: the loser does not say its rival runs:\n{}",
                    loser.stderr
                ));
            }
        }
        if (0..hosts).any(|i| fleet.locked(i)) {
            wrong.push(format!("{name}: a lock is left"));
        }
    }

    lap("2 pairs of deploys");
    for pair in 0..2 {
        let name = format!("waiting deploy pair {pair}");
        fleet.stack.change_page(&format!("waiting pair {pair}"));
        let stack = &fleet.stack;
        let wait = ["--lock-wait", "60"];
        let (a, b) = together(|| stack.deploy(&wait), || stack.deploy(&wait));
        wrong.extend(judge(&name, &a, &b, [0, 0]));
        if a.code == 0 && b.code == 0 {
            let (first, second) = {
                let (x, y) = (a.release(), b.release());
                if x < y {
                    (x, y)
                } else {
                    (y, x)
                }
            };
            for i in 0..hosts {
                serves_release_on(fleet.host(i), &fleet.http(i), &second);
                let log = std::fs::read_to_string(fleet.to[i].join(".shipit/log")).unwrap();
                for id in [&first, &second] {
                    if !log
                        .lines()
                        .any(|l| l.contains(id.as_str()) && l.split('\t').nth(5) == Some("ok"))
                    {
                        wrong.push(format!("{name}: host {i} never deployed {id}:\n{log}"));
                    }
                }
            }
        }
        if (0..hosts).any(|i| fleet.locked(i)) {
            wrong.push(format!("{name}: a lock is left"));
        }
    }
    lap("2 pairs of waiting deploys");
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));

    // Host 2 is held by another run (here a hold written by hand, as another target sharing the
    // host would leave): refused naming it, and the primary's lock, taken first, given back.
    let held = fleet.to[2].join(".shipit/lock");
    mkdir_as_deploy(&held);
    write_as_deploy(
        &held.join("info"),
        "token=t\nby=carol@elsewhere\nsince=2026-01-01T00:00:00Z\nheld=1\nmessage=disk check\n",
    );
    let current = fleet.to[0].join("current");
    let live = std::fs::read_link(&current).unwrap();
    fleet.stack.change_page("after the hold");
    fleet.stack.deploy(&[]).expect_code(4).says(&[
        &fleet.specs[2],
        "carol@elsewhere",
        "disk check",
    ]);
    for i in [0, 1, 3] {
        assert!(!fleet.locked(i), "host {i} is still locked");
    }
    assert_eq!(std::fs::read_link(&current).unwrap(), live);

    // With --lock-wait: it gives the primary back while host 2 is held (it never waits holding
    // a lock), begins again once the hold is gone, and deploys.
    std::thread::scope(|scope| {
        let stack = &fleet.stack;
        let deploy = scope.spawn(|| stack.deploy(&["--lock-wait", "60"]));
        let primary = fleet.to[0].join(".shipit/lock");
        let taken = wait_for(DEPLOY_TIMEOUT, || primary.exists().then_some(()));
        assert!(taken.is_some(), "the deploy never took the primary's lock");
        let given_back = wait_for(DEPLOY_TIMEOUT, || (!primary.exists()).then_some(()));
        assert!(given_back.is_some(), "the deploy kept the primary's lock");
        std::fs::remove_dir_all(&held).unwrap();
        let run = deploy.join().unwrap();
        run.expect_code(0).says(&["trying again"]);
        let id = run.release();
        for i in 0..hosts {
            serves_release_on(fleet.host(i), &fleet.http(i), &id);
            assert!(!fleet.locked(i), "host {i} is still locked");
        }
    });
    lap("a hold on one host");
}
