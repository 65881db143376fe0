//! Running the `shipit` binary under test and asserting on what it did: the one place that knows
//! where the binary is ([`shipit_bin`]) and the one type every test and bench reads an outcome
//! from ([`Run`]: exit status, stdout, stderr, wall time; [`Run::expect_code`], [`Run::says`]).
//! How a test *starts* shipit (directory, environment, HOME) is [`crate::project::Project`]'s.
//!
//! # Finding the binary
//!
//! Cargo builds `shipit` before it runs any integration test or bench of the shipit package and
//! tells those crates where it is in `CARGO_BIN_EXE_shipit`. This crate is compiled on its own,
//! before shipit's tests and without that variable, so it cannot use
//! `env!("CARGO_BIN_EXE_shipit")`; [`shipit_bin`] asks at run time instead, which works from every
//! test and bench executable of the package:
//!
//! 1. `CARGO_BIN_EXE_shipit` in the environment, which Cargo also sets when it runs a test or
//!    bench executable (recent Cargo; older versions set it at compile time only);
//! 2. otherwise `shipit` beside the running executable's directory: a test or bench runs from
//!    `target/<profile>/deps/`, and its package's binary is `target/<profile>/shipit` (so a test
//!    executable started by hand finds it too).
//!
//! It panics, naming both places, when neither holds the binary (e.g. the tests were built
//! without Cargo building the binary).

use std::path::PathBuf;
use std::process::Output;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long one run of shipit (a deploy, at most) may take before the test fails instead of
/// hanging.
pub const DEPLOY_TIMEOUT: Duration = Duration::from_secs(240);

/// The `shipit` executable under test (see the module documentation for how it is found).
pub fn shipit_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        const VAR: &str = "CARGO_BIN_EXE_shipit";
        if let Some(path) = std::env::var_os(VAR) {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "{VAR}={} is not a file: build the shipit binary first (`cargo test` does)",
                path.display()
            );
            return path;
        }
        let exe = std::env::current_exe().expect("the path of the running test executable");
        let mut dir = exe
            .parent()
            .expect("the test executable's directory")
            .to_path_buf();
        if dir.ends_with("deps") {
            dir.pop();
        }
        let path = dir.join(format!("shipit{}", std::env::consts::EXE_SUFFIX));
        assert!(
            path.is_file(),
            "no shipit binary: {VAR} is not set and {} does not exist; run the tests and \
             benches through cargo (`cargo test`, `cargo bench`), which builds it first",
            path.display()
        );
        path
    })
    .clone()
}

/// What one run of shipit produced.
#[derive(Debug)]
pub struct Run {
    /// The exit status; -1 when shipit was killed by a signal (e.g. by a timeout).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// Runs `command` (see [`crate::project::Project::shipit`]) to its end, or until its
    /// timeout if it has one, and collects what it printed.
    pub fn of(command: &mut assert_cmd::Command) -> Run {
        let started = Instant::now();
        let out = command.output().expect("run shipit");
        Run::from_output(&out, started.elapsed())
    }

    /// The run that printed `out` in `elapsed`.
    pub fn from_output(out: &Output, elapsed: Duration) -> Run {
        Run {
            // A missing code means a signal, e.g. the timeout killing a hung deploy.
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed,
        }
    }

    /// The `--json` object on stdout.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON object ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// `release` of the `--json` object on stdout.
    pub fn release(&self) -> String {
        self.json()["release"]
            .as_str()
            .expect("json has a release")
            .to_string()
    }

    /// Asserts the exit status, showing everything shipit said otherwise.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "shipit exited with {} (expected {code}) after {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        );
        self
    }

    /// Asserts that stderr mentions every needle.
    pub fn says(&self, needles: &[&str]) -> &Self {
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "stderr does not mention {needle:?}:\n{}",
                self.stderr
            );
        }
        self
    }

    /// Asserts that stdout (the result) mentions every needle.
    pub fn prints(&self, needles: &[&str]) -> &Self {
        for needle in needles {
            assert!(
                self.stdout.contains(needle),
                "stdout does not mention {needle:?}:\n{}\nstderr:\n{}",
                self.stdout,
                self.stderr
            );
        }
        self
    }

    /// [`Run::says`], and asserts that stderr has an `error: ` line: the run failed the way
    /// shipit reports errors, not with a panic or a usage text alone.
    pub fn says_error(&self, needles: &[&str]) -> &Self {
        self.says(needles);
        assert!(
            self.stderr.starts_with("error: ") || self.stderr.contains("\nerror: "),
            "stderr has no `error: ` line:\n{}",
            self.stderr
        );
        self
    }
}
