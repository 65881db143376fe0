//! A transport for the fast test tier: it reads the step calls of a script and replays marker
//! lines as a host would, without a shell or a network, modelling the one piece of remote state
//! orchestration depends on — whether this run holds the host's lock.
//!
//! Tests use it to drive the real runner through multi-host aborts, lock refusals, once-steps,
//! batches and prune in milliseconds; the real-component tier (sshd, nginx, supervisord,
//! gunicorn, PostgreSQL) proves the scripts themselves.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::error::Result;

use super::{Transport, Usage};

/// What a fake host has seen and holds; shared with the test.
#[derive(Debug, Default)]
pub(crate) struct FakeHost {
    /// Every step id run, in order, one inner list per script.
    pub(crate) scripts: Vec<Vec<String>>,
    /// For each script, whether its preamble (the last one it was sent) set `UNAPPLIED=1`: the
    /// host's cleanups then migrate the live schema forward again (a rollback's primary).
    pub(crate) unapplied: Vec<bool>,
    /// Whether this run holds the lock.
    pub(crate) locked: bool,
    /// How many times a continued script had to wait for shipit's answer when it asked for
    /// the rest (a round trip each): not when the answer came behind the archive.
    pub(crate) waited_for_rest: u32,
}

/// How a fake host behaves.
#[derive(Debug, Clone, Default)]
pub(crate) struct Behaviour {
    /// Step id that fails, with its exit status.
    pub(crate) fail_at: Option<(String, i32)>,
    /// Facts reported when a step ends (by step id).
    pub(crate) facts: BTreeMap<String, Vec<(String, String)>>,
    /// The connection drops instead of running a script with this step.
    pub(crate) drop_at: Option<String>,
}

/// A fake host reached by name.
pub(crate) struct Fake {
    name: String,
    behaviour: Behaviour,
    pub(crate) host: Arc<Mutex<FakeHost>>,
}

impl Fake {
    pub(crate) fn new(name: &str, behaviour: Behaviour) -> Fake {
        Fake {
            name: name.into(),
            behaviour,
            host: Arc::default(),
        }
    }
}

fn unquote(word: &str) -> String {
    word.trim_matches('\'').to_string()
}

impl Transport for Fake {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(&mut self, script: &str, on_line: &mut super::OnLine<'_>) -> Result<i32> {
        let body = crate::plan::script::unpacked(script).unwrap_or_default();
        let calls = body.rsplit("shipit_main() {").next().unwrap_or("");
        let nonce = calls
            .lines()
            .find_map(|l| l.strip_prefix("SHIPIT_NONCE="))
            .map(unquote)
            .unwrap_or_default();
        let mark = |on_line: &mut super::OnLine<'_>, text: String| {
            on_line(&format!("@@shipit:{nonce} {text}"))
        };
        let mut host = self.host.lock().expect("fake host");
        let mut ran = Vec::new();
        let mut unapplied = false;
        // A continued script asks for the rest at its end and runs what comes, or what came
        // behind the archive.
        let mut lines: std::collections::VecDeque<String> =
            calls.lines().map(str::to_string).collect();
        let mut behind_archive = None;
        while let Some(line) = lines.pop_front() {
            if line == "shipit_continue" {
                let asked = mark(on_line, "next".into());
                let answer = match (behind_archive.take(), asked) {
                    (Some(answer), _) => Some(answer),
                    (None, Some(super::Reply::Line(answer))) => {
                        host.waited_for_rest += 1;
                        Some(answer)
                    }
                    _ => None,
                };
                match answer {
                    Some(answer) if !answer.starts_with("0\n") => {
                        lines.extend(answer.lines().skip(1).map(str::to_string));
                        continue;
                    }
                    _ => {
                        mark(on_line, "fact stopped 1".into());
                        if host.locked {
                            host.locked = false;
                            mark(on_line, "fact unlocked 1".into());
                        }
                        host.scripts.push(ran);
                        host.unapplied.push(unapplied);
                        return Ok(1);
                    }
                }
            }
            if let Some(value) = line.strip_prefix("UNAPPLIED=") {
                unapplied = unquote(value) == "1";
            }
            let Some(rest) = line.strip_prefix("shipit_step ") else {
                continue;
            };
            let id = unquote(rest.split(' ').next().unwrap_or(""));
            if self.behaviour.drop_at.as_deref() == Some(id.as_str()) {
                host.scripts.push(ran);
                host.unapplied.push(unapplied);
                return Err(crate::error::Error::Connection {
                    host: self.name.clone(),
                    message: "connection lost".into(),
                    hint: None,
                });
            }
            ran.push(id.clone());
            mark(on_line, format!("begin {id}"));
            let go_on = |reply| matches!(reply, Some(super::Reply::Line(a)) if a == "switch\n");
            if id == "gate" && !go_on(mark(on_line, "gate".into())) {
                mark(on_line, format!("fail {id} 1"));
                if host.locked {
                    host.locked = false;
                    mark(on_line, "fact unlocked 1".into());
                }
                host.scripts.push(ran);
                host.unapplied.push(unapplied);
                return Ok(1);
            }
            for (key, value) in self.behaviour.facts.get(&id).into_iter().flatten() {
                mark(on_line, format!("fact {key} {value}"));
            }
            if id == "upload" {
                if let Some(super::Reply::Payload(mut archive, after)) =
                    mark(on_line, "send exact".into())
                {
                    std::io::copy(&mut archive, &mut std::io::sink()).expect("archive read");
                    behind_archive = Some(after).filter(|after| !after.is_empty());
                }
            }
            if let Some((_, status)) = self.behaviour.fail_at.as_ref().filter(|(f, _)| *f == id) {
                mark(on_line, format!("fail {id} {status}"));
                // Every cleanup of the library gives back a lock this run holds.
                if host.locked {
                    host.locked = false;
                    mark(on_line, "fact unlocked 1".into());
                }
                host.scripts.push(ran);
                host.unapplied.push(unapplied);
                return Ok(*status);
            }
            match id.as_str() {
                "lock" => host.locked = true,
                "prune" | "remove" | "unlock" | "release-lock" | "abort" if host.locked => {
                    host.locked = false;
                    mark(on_line, "fact unlocked 1".into());
                }
                _ => {}
            }
            mark(on_line, format!("end {id}"));
        }
        mark(on_line, "done ok".into());
        host.scripts.push(ran);
        host.unapplied.push(unapplied);
        Ok(0)
    }

    fn usage(&self) -> Usage {
        Usage::default()
    }
}
