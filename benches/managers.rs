//! Process-manager benchmark: the same deploys and rollbacks of the example project under
//! supervisor and under systemd, side by side, so that the note on issue 10 can give each
//! manager's figures from one run on one machine.
//!
//! Run as root: `cargo bench --bench managers` (the harness creates the `deploy` account, runs
//! sshd, nginx and supervisord on loopback, and boots a real systemd in namespaces of its own,
//! see tests/support/src/systemd.rs). Over loopback, no delay: what differs between the managers
//! is on the host.
//!
//! For each manager: a first deploy (the virtualenv is built, or taken from uv's cache), then
//! `SHIPIT_BENCH_RUNS` (default 5) rounds of a code-only redeploy (one template line changed
//! and committed) followed by a rollback to the release before it. Each is checked through
//! nginx. Printed: min and median wall time of each operation, and the median of the steps in
//! which the managers differ (start-app, stop-old-app) from `shipit -v`.

use std::time::Duration;

use support::bench::{env_num, median, secs, step_times};
use support::run::Run;
use support::stack::Stack;
use support::systemd_stack::SystemdStack;

/// What one manager's runs measured.
#[derive(Default)]
struct Figures {
    first: Duration,
    redeploy: Vec<Duration>,
    rollback: Vec<Duration>,
    /// Per step, every run's seconds (redeploys and rollbacks).
    steps: Vec<(String, f64)>,
}

/// The operations a manager's stack offers the bench.
trait Target {
    fn deploy(&self) -> Run;
    fn rollback(&self) -> Run;
    fn change_page(&self, marker: &str);
    fn serves(&self, release: &str);
}

impl Target for Stack {
    fn deploy(&self) -> Run {
        Stack::deploy(self, &["-v"])
    }
    fn rollback(&self) -> Run {
        Stack::rollback(self, &["-v"])
    }
    fn change_page(&self, marker: &str) {
        Stack::change_page(self, marker);
    }
    fn serves(&self, release: &str) {
        self.serves_release(release);
    }
}

impl Target for SystemdStack {
    fn deploy(&self) -> Run {
        SystemdStack::deploy(self, &["-v"])
    }
    fn rollback(&self) -> Run {
        SystemdStack::rollback(self, &["-v"])
    }
    fn change_page(&self, marker: &str) {
        SystemdStack::change_page(self, marker);
    }
    fn serves(&self, release: &str) {
        self.serves_release(release);
    }
}

/// A run that must have succeeded; its release.
fn ok(run: &Run, what: &str) -> String {
    assert_eq!(run.code, 0, "{what} failed:\n{}", run.stderr);
    run.json()["release"]
        .as_str()
        .or_else(|| run.json()["to"].as_str())
        .expect("a release in the json")
        .to_string()
}

fn measure(target: &dyn Target, name: &str, runs: usize) -> Figures {
    let mut figures = Figures::default();
    let run = target.deploy();
    let first = ok(&run, "the first deploy");
    target.serves(&first);
    figures.first = run.elapsed;
    // Every rollback goes back to the first release (the ones rolled back from are skipped).
    let previous = first;
    for n in 1..=runs {
        target.change_page(&format!("{name} {n}"));
        let run = target.deploy();
        let release = ok(&run, "a redeploy");
        target.serves(&release);
        figures.redeploy.push(run.elapsed);
        figures.steps.extend(step_times(&run.stderr));
        let run = target.rollback();
        let back = ok(&run, "a rollback");
        assert_eq!(back, previous, "the rollback went to {back}, not {previous}");
        target.serves(&previous);
        figures.rollback.push(run.elapsed);
        figures.steps.extend(step_times(&run.stderr));
    }
    figures
}

fn step_median(figures: &Figures, step: &str) -> String {
    let mut times: Vec<Duration> = figures
        .steps
        .iter()
        .filter(|(n, _)| n == step)
        .map(|(_, s)| Duration::from_secs_f64(*s))
        .collect();
    if times.is_empty() {
        return "-".into();
    }
    secs(median(&mut times))
}

fn main() {
    if !support::bench::should_run("managers") {
        return;
    }
    let runs = env_num("SHIPIT_BENCH_RUNS", 5).max(1) as usize;
    let load_average = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    let supervisor = {
        let stack = Stack::start();
        measure(&stack, "supervisor", runs)
    };
    let systemd = {
        let stack = SystemdStack::start();
        measure(&stack, "systemd", runs)
    };

    println!("\nprocess managers: {runs} redeploys and rollbacks each, over loopback");
    println!("load average at the start: {}", load_average.trim());
    println!(
        "{:<12} {:>8} {:>20} {:>20} {:>10} {:>12}",
        "manager", "first", "redeploy min/median", "rollback min/median", "start-app", "stop-old-app"
    );
    for (name, mut f) in [("supervisor", supervisor), ("systemd", systemd)] {
        let (redeploy_min, rollback_min) = (
            *f.redeploy.iter().min().unwrap(),
            *f.rollback.iter().min().unwrap(),
        );
        let redeploy = median(&mut f.redeploy);
        let rollback = median(&mut f.rollback);
        println!(
            "{:<12} {:>8} {:>20} {:>20} {:>10} {:>12}",
            name,
            secs(f.first),
            format!("{} / {}", secs(redeploy_min), secs(redeploy)),
            format!("{} / {}", secs(rollback_min), secs(rollback)),
            step_median(&f, "start-app"),
            step_median(&f, "stop-old-app"),
        );
    }
}
