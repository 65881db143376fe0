//! The project's own build step: `project.build` commands run on this machine, in the project,
//! before the archive is built (`npm ci`, `npm run build`, `./manage.py compilemessages`).
//!
//! They run before any host is touched, so a failing one stops the run with nothing changed
//! anywhere; its exit status and the last lines it printed are the error. Each command's output
//! (stdout and stderr, merged in the order it was written) is shown with `-v` and kept in the
//! deploy log; what it leaves in `project.artifacts` is archived (see [`super::source`]).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::config::{Config, Target};
use crate::error::{Error, Result};
use crate::output::{seconds, Printer};

/// Lines of a failed command's output kept for its error.
const TAIL_LINES: usize = 20;

/// Runs `config.project.build` in order in the project directory; stops at the first failure.
/// The commands see `SHIPIT_TARGET` and `SHIPIT_ENVIRONMENT` of `target`.
pub(crate) fn run(config: &Config, target: &Target, printer: &Printer) -> Result<()> {
    for command in &config.project.build {
        let started = Instant::now();
        printer.detail(format!("build: $ {command}"));
        // sh merges the command's stderr into its stdout, so the lines keep their order; the
        // command itself is an argument, never spliced into the script.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("exec 2>&1; eval \"$1\"")
            .arg("sh")
            .arg(command)
            .current_dir(&config.root)
            .env("SHIPIT_TARGET", &target.name)
            .env("SHIPIT_ENVIRONMENT", &target.environment)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::io("run sh for a build command in", &config.root, e))?;
        let mut tail = VecDeque::with_capacity(TAIL_LINES);
        if let Some(out) = child.stdout.take() {
            for line in BufReader::new(out).split(b'\n') {
                let Ok(line) = line else { break };
                let line = String::from_utf8_lossy(&line).trim_end().to_string();
                printer.detail(format!("build:   {line}"));
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        }
        let status = child
            .wait()
            .map_err(|e| Error::io("wait for a build command in", &config.root, e))?;
        if !status.success() {
            printer.info(format!(
                "  ✗ build: {command:<30} {:>7}",
                seconds(started.elapsed())
            ));
            return Err(Error::BuildCommand {
                command: command.clone(),
                status: status.code().unwrap_or(-1),
                tail: tail.into_iter().collect(),
            });
        }
        printer.info(format!(
            "  ✓ build: {command:<30} {:>7}",
            seconds(started.elapsed())
        ));
    }
    Ok(())
}
