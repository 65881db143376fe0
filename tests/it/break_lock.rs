//! `--break-lock` while a deploy is still running, against real components: the lock knows its
//! holder is alive, a plain `--break-lock` refuses, and after `--break-lock --force` the deploy
//! that lost its lock switches nothing, switches nothing back and stops nothing of the other
//! run's — the site keeps serving the release `current` points at, and both exit statuses tell
//! the truth. Needs root.

use std::path::PathBuf;
use std::time::Duration;

use support::stack::*;
use support::*;

/// A deploy-owned directory the hooks use to tell the test where they are.
struct Gate {
    dir: tempfile::TempDir,
}

impl Gate {
    fn new() -> Gate {
        let dir = deploy_owned_tempdir();
        chmod(dir.path(), 0o777);
        Gate { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A hook that, the first time only, says it started and waits for `go`.
    fn hook(&self) -> String {
        let q = |name: &str| shell_quote(&self.path(name).display().to_string());
        format!(
            "if rm {hold} 2>/dev/null; then touch {started}; while [ ! -e {go} ]; do sleep 0.1; done; fi",
            hold = q("hold"),
            started = q("started"),
            go = q("go")
        )
    }

    fn wait_started(&self) {
        wait_for(Duration::from_secs(120), || {
            self.path("started").exists().then_some(())
        })
        .expect("the first deploy never reached its hook");
    }

    fn open(&self) {
        std::fs::write(self.path("go"), "").unwrap();
    }
}

fn held_in(hook: &str) -> (Stack, Gate) {
    let mut stack = Stack::start();
    let gate = Gate::new();
    stack.set_options(|o| {
        o.extra = format!("hooks = {{ {hook} = [{:?}] }}\n", gate.hook());
    });
    (stack, gate)
}

fn running(stack: &Stack, id: &str) -> bool {
    stack
        .programs()
        .lines()
        .any(|l| l.contains(&program(id)) && l.contains("RUNNING"))
}

/// Whether release `id`'s app server gets to RUNNING: supervisor says STARTING for its first
/// second (startsecs), and a deploy no longer waits that long after its health check (it stops
/// the old app server in the background).
fn comes_up(stack: &Stack, id: &str) -> bool {
    wait_for(Duration::from_secs(15), || running(stack, id).then_some(())).is_some()
}

fn break_while_held(hook: &str) {
    let (stack, gate) = held_in(hook);
    let first = stack.deploy_release();
    std::fs::write(gate.path("hold"), "").unwrap();

    std::thread::scope(|scope| {
        let late = scope.spawn(|| stack.deploy(&[]));
        gate.wait_started();

        // The lock's holder is alive: a plain --break-lock refuses and changes nothing.
        let refused = stack.deploy(&["--break-lock"]);
        refused
            .expect_code(4)
            .says(&["still running", "--break-lock --force"]);
        assert!(stack.locked());

        let forced = stack.deploy(&["--break-lock", "--force"]);
        forced
            .expect_code(0)
            .says(&["broke the lock", "still running"]);
        let winner = forced.release();
        gate.open();

        let late = late.join().unwrap();
        late.expect_code(1).says(&["broke this run's lock"]);
        assert_eq!(stack.current(), Some(format!("releases/{winner}")));
        stack.serves_release(&winner);
        assert!(comes_up(&stack, &winner), "{}", stack.programs());
        assert!(!stack.locked(), "the late deploy must not leave a lock");
        assert!(
            !running(&stack, &first),
            "the first release's app server was stopped by the winner"
        );
    });
}

#[test]
fn a_deploy_held_after_its_switch_loses_its_lock_and_touches_nothing_of_the_winner() {
    break_while_held("after_switch");
}

#[test]
fn a_deploy_held_before_migrate_loses_its_lock_and_never_switches() {
    break_while_held("before_migrate");
}

#[test]
fn a_lock_left_by_a_killed_run_is_broken_without_force() {
    let stack = Stack::start();
    stack.deploy_release();
    // A lock whose holder (a process that no longer exists) is gone.
    let lock = stack.deploy_to().join(".shipit/lock");
    mkdir_as_deploy(&lock);
    write_as_deploy(
        &lock.join("info"),
        "token=t\nby=carol@laptop\nsince=2026-01-01T00:00:00Z\nop=deploy\nrelease=20260101000000\nholder_pid=999999\nholder_start=1\n",
    );
    stack
        .deploy(&[])
        .expect_code(4)
        .says(&["no longer connected", "carol@laptop", "--break-lock"]);
    let id = stack.deploy(&["--break-lock"]).expect_code(0).release();
    stack.serves_release(&id);
}
