//! shipit's scheduler (`templates/remote/py/scheduler.py`, the `schedule` process under
//! supervisor) run for real by the host's python3 against a temp `deploy_to`, on a virtual
//! clock: the module's `Scheduler` takes its clock (`now`, `sleep`), and [`DRIVER`] gives it one
//! in which sleeping moves time on at once, so that minutes of schedule take milliseconds and
//! the count the real-host test cannot wait for (five minutes of an every-minute entry) is
//! exact here. The commands are real `sh -c` runs. At each minute boundary the driver lets the
//! runs started so far finish before time moves on, but those a test holds back (they wait for
//! a file the driver touches at a virtual time, and say so in `shared/held`) until that file is
//! there: a run takes no virtual time unless the test makes it.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::super::python::SCHEDULER;

/// Loads scheduler.py (argv 1) as a module and runs the schedulers of the plan (argv 3, JSON)
/// one after another against deploy_to (argv 2), on a virtual clock from 2026-01-05 12:00:00
/// UTC (a Monday): `{"schedulers": [{"tab", "from", "until"}], "touch": [[at, file]]}`, times
/// in seconds after 12:00. A scheduler is stopped (as by SIGTERM) once its clock reaches
/// `until`; the next starts at its `from`, or at once when that has passed.
const DRIVER: &str = r#"
import calendar
import importlib.util
import json
import os
import sys
import time

spec = importlib.util.spec_from_file_location("scheduler", sys.argv[1])
scheduler = importlib.util.module_from_spec(spec)
spec.loader.exec_module(scheduler)
base = sys.argv[2]
plan = json.loads(sys.argv[3])
origin = calendar.timegm((2026, 1, 5, 12, 0, 0))
shared = os.path.join(base, "shared")
touches = sorted(plan.get("touch", []))


def held(pid):
    """Whether run `pid` waits for a file not there yet (it wrote `PID FILE` to shared/held)."""
    try:
        with open(os.path.join(shared, "held")) as f:
            waits = [line.split() for line in f if line.endswith("\n")]
    except OSError:
        return False
    return any(p == str(pid) and not os.path.exists(os.path.join(shared, f)) for p, f in waits)


class Clock:
    def __init__(self):
        self.t = origin
        self.until = None
        self.scheduler = None

    def now(self):
        return self.t

    def touch(self, to):
        while touches and origin + touches[0][0] <= to:
            open(os.path.join(shared, touches.pop(0)[1]), "w").close()

    def move(self, to):
        self.touch(to)
        self.t = max(self.t, to)

    def sleep(self, seconds):
        to = self.t + seconds
        self.touch(to)
        if int(to // 60) > int(self.t // 60):
            for process, _lock, _command in self.scheduler.running:
                while process.poll() is None and not held(process.pid):
                    time.sleep(0.001)
        self.move(to)
        if self.t >= self.until:
            self.scheduler.stop()


clock = Clock()
for run in plan["schedulers"]:
    clock.move(origin + run["from"])
    clock.until = origin + run["until"]
    clock.scheduler = scheduler.Scheduler(base, run["tab"], clock.now, clock.sleep)
    clock.scheduler.run()
"#;

/// A `deploy_to` with one release, `current` pointing at it, and `shared/`.
struct Target {
    dir: tempfile::TempDir,
}

impl Target {
    fn new() -> Target {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("releases/20260105115900/.shipit")).unwrap();
        std::fs::create_dir_all(dir.path().join("shared")).unwrap();
        std::os::unix::fs::symlink("releases/20260105115900", dir.path().join("current")).unwrap();
        Target { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A schedule table `name` of `entries` (CRON, COMMAND), as the release's `schedule.tab`.
    fn tab(&self, name: &str, entries: &[(&str, &str)]) -> String {
        let path = self.path(name);
        let text: String = entries.iter().map(|(c, s)| format!("{c}\t{s}\n")).collect();
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }

    /// Runs `plan` (see [`DRIVER`]) and returns what the schedulers logged about minutes
    /// (`12:03 run: CRON COMMAND`, `12:01 skipped, ...`) and the whole log.
    fn run(&self, plan: &serde_json::Value) -> (Vec<String>, String) {
        let module = self.path("scheduler.py");
        std::fs::write(&module, SCHEDULER).unwrap();
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(DRIVER)
            .arg(&module)
            .arg(self.dir.path())
            .arg(plan.to_string())
            .env("TZ", "UTC")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{log}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let current = format!(" in {}", self.path("releases/20260105115900").display());
        let minutes = log
            .lines()
            .filter(|l| l.as_bytes().first().is_some_and(u8::is_ascii_digit))
            .map(|l| l.replace(&current, ""))
            .collect();
        (minutes, log)
    }

    /// The lines of `shared/NAME` (what the commands wrote).
    fn lines(&self, name: &str) -> Vec<String> {
        read_lines(&self.path("shared").join(name))
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A command that appends `word` to shared/runs.
fn record(word: &str) -> String {
    format!("echo {word} >> ../../shared/runs")
}

/// A command whose first run waits for shared/go (held back, see the module documentation),
/// then appends `word` to shared/runs, as every later run does at once.
fn first_waits(word: &str) -> String {
    format!(
        "if [ ! -e ../../shared/first ]; then : > ../../shared/first; echo \"$$ go\" >> ../../shared/held; \
         while [ ! -e ../../shared/go ]; do sleep 0.01; done; fi; {}",
        record(word)
    )
}

#[test]
fn an_every_minute_entry_runs_once_in_each_of_five_minutes_and_others_when_due() {
    let target = Target::new();
    let (every, even, three) = (record("every"), record("even"), record("three"));
    let tab = target.tab(
        "schedule.tab",
        &[
            ("* * * * *", &every),
            ("*/2 * * * *", &even),
            ("3 12 * * 1", &three),
        ],
    );
    // 12:00:10 to 12:04:30: five minutes.
    let plan = json!({"schedulers": [{"tab": tab, "from": 10, "until": 270}]});
    let (minutes, log) = target.run(&plan);
    assert_eq!(
        minutes,
        [
            format!("12:00 run: * * * * * {every}"),
            format!("12:00 run: */2 * * * * {even}"),
            format!("12:01 run: * * * * * {every}"),
            format!("12:02 run: * * * * * {every}"),
            format!("12:02 run: */2 * * * * {even}"),
            format!("12:03 run: * * * * * {every}"),
            format!("12:03 run: 3 12 * * 1 {three}"),
            format!("12:04 run: * * * * * {every}"),
            format!("12:04 run: */2 * * * * {even}"),
        ],
        "{log}"
    );
    let runs = target.lines("runs");
    let count = |word: &str| runs.iter().filter(|w| *w == word).count();
    assert_eq!(
        (count("every"), count("even"), count("three")),
        (5, 3, 1),
        "{log}"
    );
}

#[test]
fn a_run_still_running_when_its_entry_is_due_again_is_skipped_and_logged() {
    let target = Target::new();
    let (slow, other) = (first_waits("slow"), record("other"));
    let tab = target.tab(
        "schedule.tab",
        &[("* * * * *", &slow), ("* * * * *", &other)],
    );
    // The 12:00 run of `slow` lasts until 12:02:30.
    let plan = json!({
        "schedulers": [{"tab": tab, "from": 10, "until": 270}],
        "touch": [[150, "go"]],
    });
    let (minutes, log) = target.run(&plan);
    let skipped = |at: &str| {
        format!("{at} skipped, its previous run is still running since 12:00: * * * * * {slow}")
    };
    let mut expected = Vec::new();
    for at in ["12:00", "12:01", "12:02", "12:03", "12:04"] {
        expected.push(match at {
            "12:01" | "12:02" => skipped(at),
            _ => format!("{at} run: * * * * * {slow}"),
        });
        expected.push(format!("{at} run: * * * * * {other}"));
    }
    assert_eq!(minutes, expected, "{log}");
    let runs = target.lines("runs");
    let count = |word: &str| runs.iter().filter(|w| *w == word).count();
    assert_eq!((count("slow"), count("other")), (3, 5), "{log}");
}

#[test]
fn at_a_switch_the_minute_is_the_old_schedulers_and_the_new_one_goes_on_from_the_next() {
    let target = Target::new();
    let (old, new, nightly) = (record("old"), record("new"), first_waits("nightly"));
    // The release changes the every-minute entry's command and keeps an entry due at 12:02,
    // whose run is still going when the old scheduler is told to stop.
    let old_tab = target.tab("old.tab", &[("* * * * *", &old), ("2 12 * * *", &nightly)]);
    let new_tab = target.tab("new.tab", &[("* * * * *", &new), ("2 12 * * *", &nightly)]);
    // The switch at 12:02:20: the old scheduler stops and waits for that run, then the new one
    // starts, in the same minute.
    let plan = json!({
        "schedulers": [
            {"tab": old_tab, "from": 10, "until": 140},
            {"tab": new_tab, "from": 141, "until": 270},
        ],
        "touch": [[140, "go"]],
    });
    let (minutes, log) = target.run(&plan);
    assert_eq!(
        minutes,
        [
            format!("12:00 run: * * * * * {old}"),
            format!("12:01 run: * * * * * {old}"),
            format!("12:02 run: * * * * * {old}"),
            format!("12:02 run: 2 12 * * * {nightly}"),
            format!("12:03 run: * * * * * {new}"),
            format!("12:04 run: * * * * * {new}"),
        ],
        "{log}"
    );
    assert!(
        log.contains(&format!("waiting for: {nightly}\nexit 0: {nightly}\n")),
        "{log}"
    );
    assert_eq!(
        target.lines("runs"),
        ["old", "old", "old", "nightly", "new", "new"],
        "{log}"
    );
}

#[test]
fn minutes_no_scheduler_took_run_late_once_and_older_ones_are_said_to_be_missed() {
    let target = Target::new();
    let (every, two) = (record("every"), record("two"));
    let tab = target.tab(
        "schedule.tab",
        &[("* * * * *", &every), ("2 12 * * *", &two)],
    );
    // No scheduler from 12:01:10 to 12:03:30 (the old one waited for a run at a switch), then
    // none from 12:04:30 to 12:40:30.
    let plan = json!({
        "schedulers": [
            {"tab": tab, "from": 10, "until": 70},
            {"tab": tab, "from": 210, "until": 270},
            {"tab": tab, "from": 2430, "until": 2470},
        ],
    });
    let (minutes, log) = target.run(&plan);
    assert_eq!(
        minutes,
        [
            format!("12:00 run: * * * * * {every}"),
            format!("12:01 run: * * * * * {every}"),
            format!("12:03 late for 12:02 12:03 run: * * * * * {every}"),
            format!("12:03 late for 12:02 run: 2 12 * * * {two}"),
            format!("12:04 run: * * * * * {every}"),
            format!(
                "12:40 late for {} run: * * * * * {every}",
                (25..=40)
                    .map(|m| format!("12:{m}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            format!("12:41 run: * * * * * {every}"),
        ],
        "{log}"
    );
    assert!(
        log.contains("not run: 12:05 to 12:24, which no scheduler took, more than 15 minutes ago"),
        "{log}"
    );
    assert_eq!(target.lines("runs").len(), 7, "{log}");
}
