//! Running scripts on hosts and reporting as they go.
//!
//! A [`HostSession`] pairs a transport with what shipit learnt from it: the facts scripts
//! reported, the time each step took, and the last lines each step printed, so a failure can say
//! which host, which step, its exit status and what it said last (as uv's `PythonRunner` does).
//! Several hosts run in parallel threads; their progress lines are prefixed with the host.

use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::time::{Duration, Instant};

use crate::config::{Target, TransportKind};
use crate::error::{Error, Result};
use crate::output::{seconds, Printer};
use crate::plan::deploy::LOCKED_STATUS;
use crate::transport::local::Local;
use crate::transport::ssh::{Ssh, SshOptions};

use crate::plan::script::{parse_line, Event, Script};
use crate::transport::Transport;

/// Lines of output kept per step for error messages.
const TAIL_LINES: usize = 20;

/// The outcome of one script on one host.
#[derive(Debug, Clone, Default)]
pub struct ScriptRun {
    /// Exit status of the script.
    pub status: i32,
    /// Facts the script reported.
    pub facts: BTreeMap<String, String>,
    /// Steps that finished, with their durations.
    pub timings: Vec<(String, Duration)>,
    /// The step that failed and its status.
    pub failed: Option<(String, i32)>,
    /// Last lines printed by the failed step (or by the script, when no step failed).
    pub tail: Vec<String>,
    /// Whether the script reached its end.
    pub done: bool,
}

impl ScriptRun {
    /// Whether the script ran every step.
    pub fn succeeded(&self) -> bool {
        self.status == 0 && self.done && self.failed.is_none()
    }

    /// The failure as an [`Error::Step`], with `outcome` saying what state the host is in.
    pub fn error(&self, host: &str, outcome: impl Into<String>) -> Error {
        let (step, status) = self
            .failed
            .clone()
            .unwrap_or_else(|| ("(connection)".to_string(), self.status));
        Error::Step {
            host: host.to_string(),
            step,
            status,
            tail: self.tail.clone(),
            outcome: outcome.into(),
        }
    }
}

/// A connected host and its display label.
pub struct HostSession {
    /// The transport to the host.
    pub transport: Box<dyn Transport>,
    /// Prefix for progress lines (empty with a single host).
    pub label: String,
}

impl HostSession {
    /// Runs `script`, printing step progress through `printer`.
    pub fn run(&mut self, script: &Script, printer: &Printer) -> Result<ScriptRun> {
        let mut run = ScriptRun::default();
        let mut current: Option<(String, Instant)> = None;
        let mut tail: VecDeque<String> = VecDeque::new();
        let label = self.label.clone();
        let nonce = script.nonce.clone();
        let status =
            self.transport.run(
                &script.render(),
                &mut |line| match parse_line(&nonce, line) {
                    Event::Begin(step) => {
                        tail.clear();
                        printer.detail(format!("{label}  → {step}"));
                        current = Some((step, Instant::now()));
                    }
                    Event::End(step) => {
                        let elapsed = current.take().map_or(Duration::ZERO, |(_, t)| t.elapsed());
                        printer.step_done(&label, &step, elapsed);
                        run.timings.push((step, elapsed));
                    }
                    Event::Fail(step, status) => {
                        let elapsed = current.take().map_or(Duration::ZERO, |(_, t)| t.elapsed());
                        printer.step_failed(&label, &step, elapsed);
                        run.failed = Some((step, status));
                        run.tail = tail.iter().cloned().collect();
                        tail.clear();
                    }
                    Event::Fact(key, value) => {
                        run.facts.insert(key, value);
                    }
                    Event::Done => run.done = true,
                    Event::Output(text) => {
                        printer.detail(format!("{label}    {text}"));
                        if tail.len() == TAIL_LINES {
                            tail.pop_front();
                        }
                        tail.push_back(text);
                    }
                },
            )?;
        run.status = status;
        if run.failed.is_none() && !run.done {
            // The script died without reporting (killed, or the connection dropped).
            if let Some((step, _)) = current {
                run.failed = Some((step, status));
            }
            run.tail = tail.into_iter().collect();
        } else if run.failed.is_some() && !tail.is_empty() {
            // Output of the failure cleanup follows the step's own tail.
            run.tail.extend(tail);
        }
        Ok(run)
    }
}

/// Connects to every host of `target` in parallel (or makes the local transport).
pub fn connect(
    target: &Target,
    accept_new_host_key: bool,
    printer: &Printer,
) -> Result<Vec<HostSession>> {
    match target.transport {
        TransportKind::Local => Ok(vec![HostSession {
            transport: Box::new(Local::new()),
            label: String::new(),
        }]),
        TransportKind::Ssh => {
            let options = SshOptions {
                identity_file: target.identity_file.clone(),
                known_hosts: target.known_hosts.clone(),
                accept_new_host_key,
            };
            let started = Instant::now();
            let results: Vec<Result<Ssh>> = std::thread::scope(|scope| {
                let handles: Vec<_> = target
                    .hosts
                    .iter()
                    .map(|host| {
                        let options = &options;
                        scope.spawn(move || Ssh::connect(host, options))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("connect does not panic"))
                    .collect()
            });
            let many = results.len() > 1;
            let mut sessions = Vec::new();
            for result in results {
                let ssh = result?;
                let label = if many {
                    ssh.name().to_string()
                } else {
                    String::new()
                };
                sessions.push(HostSession {
                    transport: Box::new(ssh),
                    label,
                });
            }
            printer.detail(format!("connected in {}", seconds(started.elapsed())));
            Ok(sessions)
        }
    }
}

/// The lock error of the first host whose begin script found another deploy's lock.
pub fn lock_failure(sessions: &[HostSession], begun: &[ScriptRun]) -> Option<Error> {
    begun.iter().enumerate().find_map(|(i, run)| {
        (run.status == LOCKED_STATUS).then(|| Error::Locked {
            host: sessions[i].transport.name().to_string(),
            holder: run
                .facts
                .get("locked")
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "no details recorded".into()),
        })
    })
}

/// Runs `work` on every session in parallel threads and returns the results in order.
pub fn on_all<T: Send>(
    sessions: &mut [HostSession],
    work: impl Fn(usize, &mut HostSession) -> T + Sync,
) -> Vec<T> {
    if sessions.len() == 1 {
        return vec![work(0, &mut sessions[0])];
    }
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = sessions
            .iter_mut()
            .enumerate()
            .map(|(i, session)| scope.spawn(move || work(i, session)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("host thread does not panic"))
            .collect()
    })
}

/// 16 random bytes as hex, for lock tokens and marker nonces.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if filled.is_err() {
        // Not secret, only unguessable by accident: time and pid will do.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            ^ u128::from(std::process::id());
        bytes = seed.to_le_bytes();
    }
    crate::build::archive::hex(&bytes)
}

/// `user@machine` of whoever runs shipit, for the lock and the deploy log.
pub fn deployer() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .or_else(|| {
            let out = std::process::Command::new("id").arg("-un").output().ok()?;
            Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{host}")
}
