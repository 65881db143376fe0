//! Running scripts on hosts and reporting as they go.
//!
//! A [`HostSession`] pairs a transport with what shipit learnt from it: the facts scripts
//! reported, the time each step took, and the last lines each step printed, so a failure can say
//! which host, which step, its exit status and what it said last (as uv's `PythonRunner` does).
//! Several hosts run in parallel threads; their progress lines are prefixed with the host.

use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::config::{Target, TransportKind};
use crate::delta::Base;
use crate::error::{Error, Result};
use crate::output::{seconds, Printer};
use crate::transport::local::Local;
use crate::transport::ssh::{Ssh, SshOptions};

use crate::plan::script::Script;
use crate::plan::step::Step;
use crate::remote::protocol::{gate_answer, parse_output, Event};
use crate::transport::{Reply, Transport};

/// Lines of output kept per step for error messages.
const TAIL_LINES: usize = 20;

/// The outcome of one script on one host.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScriptRun {
    /// Exit status of the script.
    pub(crate) status: i32,
    /// Facts the script reported.
    pub(crate) facts: BTreeMap<String, String>,
    /// Steps that finished, with their durations.
    pub(crate) timings: Vec<(String, Duration)>,
    /// The step that failed and its status.
    pub(crate) failed: Option<(String, i32)>,
    /// Last lines printed by the failed step (or by the script, when no step failed).
    pub(crate) tail: Vec<String>,
    /// Whether the script reached its end.
    pub(crate) done: bool,
}

impl ScriptRun {
    /// Whether the script ran every step.
    pub(crate) fn succeeded(&self) -> bool {
        self.status == 0 && self.done && self.failed.is_none()
    }

    /// Adds a later script's facts and timings to this one's.
    pub(crate) fn absorb(&mut self, later: ScriptRun) {
        self.facts.extend(later.facts);
        self.timings.extend(later.timings);
        self.status = later.status;
        self.done = later.done;
    }

    /// The failure as an [`Error::Step`], with `outcome` saying what state the host is in.
    pub(crate) fn error(&self, host: &str, outcome: impl Into<String>) -> Error {
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
pub(crate) struct HostSession {
    /// The transport to the host.
    pub(crate) transport: Box<dyn Transport>,
    /// Prefix for progress lines (empty with a single host).
    pub(crate) label: String,
}

impl HostSession {
    /// Runs `script`, printing step progress through `printer` (and the steps' own output with
    /// `-v`).
    pub(crate) fn run(&mut self, script: &Script, printer: &Printer) -> Result<ScriptRun> {
        self.run_continued(script, printer, &mut |_| None)
    }

    /// [`HostSession::run`] for a script that asks for more ([`Script::continued`]): `next`
    /// makes the rest from what the script reported so far, to run in the same exec, or says
    /// stop (`None`).
    pub(crate) fn run_continued(
        &mut self,
        script: &Script,
        printer: &Printer,
        next: &mut dyn FnMut(&ScriptRun) -> Option<Script>,
    ) -> Result<ScriptRun> {
        let label = self.label.clone();
        self.drive(
            script,
            printer,
            &mut |text| printer.detail(format!("{label}    {text}")),
            next,
        )
    }

    /// Runs `script`, printing step progress through `printer` and handing each line the steps
    /// print to `on_output` as it comes.
    pub(crate) fn stream(
        &mut self,
        script: &Script,
        printer: &Printer,
        on_output: &mut dyn FnMut(&str),
    ) -> Result<ScriptRun> {
        self.drive(script, printer, on_output, &mut |_| None)
    }

    fn drive(
        &mut self,
        script: &Script,
        printer: &Printer,
        on_output: &mut dyn FnMut(&str),
        next: &mut dyn FnMut(&ScriptRun) -> Option<Script>,
    ) -> Result<ScriptRun> {
        // The rest of a continued script, once shipit has sent it: where later steps are. A step
        // is shown by what a person recognises it by (a hook's command, see `Step::label`), or
        // by its id when no script has it.
        let mut later: Option<Script> = None;
        // Whether the script's next ask for the rest is answered already.
        let mut answered = false;
        let label_of = |later: &Option<Script>, id: &str| {
            later
                .as_ref()
                .and_then(|rest| rest.step(id))
                .or_else(|| script.step(id))
                .map_or_else(|| id.to_string(), Step::label)
        };
        // Opened before the script runs: a host that asked for an archive shipit then could not
        // read would wait for it for ever.
        let mut archive = match script.upload() {
            Some((path, size, bases)) => Some((
                std::fs::File::open(path).map_err(|e| Error::io("read", path, e))?,
                size,
                (path, bases),
            )),
            None => None,
        };
        let mut run = ScriptRun::default();
        let mut current: Option<(String, Instant)> = None;
        let mut tail: VecDeque<String> = VecDeque::new();
        // What the steps print, masked before anything else sees it: a secret may span lines.
        let mut shown = printer.stream();
        let mut show = |lines: Vec<String>, tail: &mut VecDeque<String>| {
            for text in lines {
                on_output(&text);
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(text);
            }
        };
        let label = self.label.clone();
        let nonce = script.nonce.clone();
        let status = self.transport.run(&script.render(), &mut |line| {
            for event in parse_output(&nonce, line) {
                // A marker ends what a step printed so far.
                if !matches!(event, Event::Output(_)) {
                    show(shown.finish(), &mut tail);
                }
                match event {
                    Event::Begin(step) => {
                        tail.clear();
                        printer.detail(format!("{label}  → {}", label_of(&later, &step)));
                        current = Some((step, Instant::now()));
                    }
                    Event::End(step) => {
                        let elapsed = current.take().map_or(Duration::ZERO, |(_, t)| t.elapsed());
                        printer.step_done(&label, &label_of(&later, &step), elapsed);
                        run.timings.push((step, elapsed));
                    }
                    Event::Fail(step, status) => {
                        let elapsed = current.take().map_or(Duration::ZERO, |(_, t)| t.elapsed());
                        let failed = label_of(&later, &step);
                        printer.step_failed(&label, &failed, elapsed);
                        run.failed = Some((failed, status));
                        run.tail = tail.iter().cloned().collect();
                        tail.clear();
                    }
                    Event::Fact(key, value) => {
                        run.facts.insert(key, value);
                    }
                    // Prepared and about to switch in the same exec: go on unless Ctrl-C said stop.
                    Event::Gate => {
                        let stop = crate::interrupt::requested();
                        return Some(Reply::Line(gate_answer(stop)));
                    }
                    Event::Send { exact, delta } => match archive.take() {
                        Some((file, size, (path, bases))) => {
                            // The upload ends a continued script's first part: when the host
                            // reads no further than the archive, the rest goes right behind it,
                            // and the script finds it without asking (a round trip).
                            let after = if exact && script.continues && later.is_none() {
                                answered = true;
                                later = next(&run);
                                continuation(&later)
                            } else {
                                String::new()
                            };
                            let (head, bytes, size) = match delta {
                                None => {
                                    (String::new(), Box::new(file) as Box<dyn Read + Send>, size)
                                }
                                Some(live) => match delta_against(path, bases, &live) {
                                    Some(bytes) => {
                                        let sha =
                                            crate::build::archive::hex(&Sha256::digest(&bytes));
                                        let head = format!("{} {sha}\n", bytes.len());
                                        let size = bytes.len() as u64;
                                        (head, Box::new(std::io::Cursor::new(bytes)) as _, size)
                                    }
                                    None => ("full\n".to_string(), Box::new(file) as _, size),
                                },
                            };
                            let bar = printer.progress_bar(size, &upload_label(&label));
                            let payload = Box::new(Progress {
                                bytes: Box::new(std::io::Cursor::new(head).chain(bytes)),
                                bar,
                            });
                            return Some(Reply::Payload(payload, after));
                        }
                        None => show(
                            vec!["the host asked for an archive this script has none of".into()],
                            &mut tail,
                        ),
                    },
                    // Answered already, behind the archive.
                    Event::Next if answered => answered = false,
                    Event::Next => {
                        later = next(&run);
                        return Some(Reply::Line(continuation(&later)));
                    }
                    Event::Done => run.done = true,
                    Event::Output(text) => show(shown.push(&format!("{text}\n")), &mut tail),
                }
            }
            None
        })?;
        show(shown.finish(), &mut tail);
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

/// What a continued script is told when it asks for the rest: `rest`, or stop.
fn continuation(rest: &Option<Script>) -> String {
    rest.as_ref()
        .map_or_else(|| "0\n".to_string(), Script::continuation)
}

/// The progress bar's label for a host labelled `label`.
fn upload_label(label: &str) -> String {
    if label.is_empty() {
        "upload".to_string()
    } else {
        format!("{label} upload")
    }
}

/// The delta of `archive` against the base among `bases` whose manifest has the sha256 `live`:
/// none when shipit has no such base or cannot make it (the host is sent the archive).
fn delta_against(archive: &std::path::Path, bases: &[Base], live: &str) -> Option<Vec<u8>> {
    let base = bases.iter().find(|b| b.manifest == live)?;
    crate::delta::delta(archive, &base.archive).ok()
}

/// The archive (or delta) as a script reads it, moving a progress bar (on a terminal) as it
/// goes.
struct Progress {
    bytes: Box<dyn Read + Send>,
    bar: indicatif::ProgressBar,
}

impl Read for Progress {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.bytes.read(buf)?;
        if n == 0 {
            self.bar.finish_and_clear();
        } else {
            self.bar.inc(n as u64);
        }
        Ok(n)
    }
}

/// Connects to every host of `target` in parallel (or makes the local transport); the error
/// names every host that cannot be reached.
pub(crate) fn connect(
    target: &Target,
    accept_new_host_key: bool,
    printer: &Printer,
) -> Result<Vec<HostSession>> {
    let mut sessions = Vec::new();
    let mut errors = Vec::new();
    for (_, session) in connect_each(target, accept_new_host_key, printer) {
        match session {
            Ok(session) => sessions.push(session),
            Err(e) => errors.push(e),
        }
    }
    match Error::of_hosts(errors) {
        Some(error) => Err(error),
        None => Ok(sessions),
    }
}

/// Connects to every host of `target` in parallel (or makes the local transport): each host's
/// name (as configured) and its session or why there is none.
pub(crate) fn connect_each(
    target: &Target,
    accept_new_host_key: bool,
    printer: &Printer,
) -> Vec<(String, Result<HostSession>)> {
    match target.transport {
        TransportKind::Local => vec![(
            "localhost".to_string(),
            Ok(HostSession {
                transport: Box::new(Local::new()),
                label: String::new(),
            }),
        )],
        TransportKind::Ssh => {
            let options = SshOptions {
                identity_file: target.identity_file.clone(),
                known_hosts: target.known_hosts.clone(),
                accept_new_host_key,
                jump: target.jump.clone(),
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
            printer.detail(format!("connected in {}", seconds(started.elapsed())));
            target
                .hosts
                .iter()
                .zip(results)
                .map(|(host, result)| {
                    let session = result.map(|ssh| {
                        let label = if many {
                            ssh.name().to_string()
                        } else {
                            String::new()
                        };
                        HostSession {
                            transport: Box::new(ssh),
                            label,
                        }
                    });
                    (host.to_string(), session)
                })
                .collect()
        }
    }
}
