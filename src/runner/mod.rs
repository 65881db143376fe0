//! The fleet runner: the only place that sequences hosts.
//!
//! [`Fleet::lock`] takes every host's lock (the primary's first, then the others' together, so
//! that two runs of one target never split the fleet) and returns a [`Locked`](locked::Locked)
//! fleet whose every way out — success, a failed step, a refusal, `?`, a panic — gives back
//! exactly the locks it still holds and says so (its `Drop`). Phases run on all hosts in parallel; once-steps run on the primary
//! while the others wait ([`crate::plan::Phase::rounds`]); [`Locked::prepare_then_switch`](locked::Locked::prepare_then_switch) is
//! the two-phase commit every command uses: nobody switches unless everybody prepared, then
//! hosts switch in batches, each batch health-checked before the next.

use crate::error::{Error, Result};
use crate::output::Printer;
use crate::plan::releases::lock_holder;
use crate::plan::script::Script;
use crate::plan::step::{Cleanup, Step, LOCKED_STATUS};
use crate::plan::Phase;
use crate::remote::facts;
use crate::remote::preamble::Preamble;
use crate::resolve::random_hex;
use crate::session::{HostSession, ScriptRun};

mod locked;
mod one_host;
mod stages;
#[cfg(test)]
mod tests;

pub(crate) use stages::{Rest, Stage};

/// Connected hosts, none locked.
pub(crate) struct Fleet<'p> {
    pub(crate) sessions: Vec<HostSession>,
    pub(crate) printer: &'p Printer,
    /// Index of the host that runs once-steps.
    pub(crate) primary: usize,
}

/// Runs `work` on every session in parallel threads and returns the results in order.
pub(crate) fn on_all<T: Send>(
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

fn script(vars: &Preamble, steps: Vec<Step>, cleanup: Cleanup) -> Script {
    Script::new(random_hex(), vars.clone(), steps, cleanup)
}

impl<'p> Fleet<'p> {
    /// The hosts' names, in target order (for reports).
    pub(crate) fn names(&self) -> Vec<String> {
        self.sessions
            .iter()
            .map(|s| s.transport.name().to_string())
            .collect()
    }

    /// Runs `phase` everywhere without taking the lock (reading, or what each host does on its
    /// own, such as giving back a held lock); the error names every host that failed, a lock
    /// held by another run as an [`Error::Locked`].
    pub(crate) fn each(&mut self, phase: &Phase, vars: &[Preamble]) -> Result<Vec<ScriptRun>> {
        let printer = self.printer;
        let runs = on_all(&mut self.sessions, |i, s| {
            s.run(
                &script(&vars[i], phase.steps.clone(), phase.cleanup),
                printer,
            )
        });
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for (i, run) in runs.into_iter().enumerate() {
            let name = self.sessions[i].transport.name();
            match run {
                Ok(run) if run.status == LOCKED_STATUS => errors.push(refused(name, &run)),
                Ok(run) if !run.succeeded() => errors.push(run.error(name, "nothing was changed")),
                Ok(run) => out.push(run),
                Err(e) => errors.push(e),
            }
        }
        match Error::of_hosts(errors) {
            Some(error) => Err(error),
            None => Ok(out),
        }
    }

    /// Runs `phase` everywhere in parallel without the lock, giving each line a step prints to
    /// `on_output` with the host's index as it comes; every host's result, in order (`shipit
    /// run` decides what a failure means).
    pub(crate) fn each_streaming(
        &mut self,
        phase: &Phase,
        vars: &[Preamble],
        on_output: &(dyn Fn(usize, &str) + Sync),
    ) -> Vec<Result<ScriptRun>> {
        let quiet = self.printer.quiet();
        on_all(&mut self.sessions, |i, s| {
            s.stream(
                &script(&vars[i], phase.steps.clone(), phase.cleanup),
                &quiet,
                &mut |line: &str| on_output(i, line),
            )
        })
    }
}

/// Warns about what a host's begin found: a lock it broke, a dangling `current`.
fn warn_begun(printer: &Printer, name: &str, run: &ScriptRun) {
    if let Some(holder) = facts::broke_lock(&run.facts) {
        printer.warn(format!("{name}: broke the lock held {holder}"));
    }
    if let Some(target) = facts::dangling(&run.facts) {
        printer.warn(format!(
            "{name}: `current` points at {target}, which does not exist: the site \
             is down until a release is switched in (`rollback --to RELEASE` \
             switches to one you name)"
        ));
    }
}

/// Why a host's begin did not take the lock: another run holds it, or a step failed.
fn refused(name: &str, run: &ScriptRun) -> Error {
    if run.status == LOCKED_STATUS {
        let holder = lock_holder(&run.facts);
        return Error::Locked {
            host: name.to_string(),
            holder: holder.who,
            live: holder.live,
            held: holder.held,
        };
    }
    run.error(name, "nothing was changed on any host")
}

const LOST_LOCK: &str = "another run broke this run's lock: this run switched nothing, switched nothing back and touched nothing of the other run";

/// `outcome`, unless the host reported that another run broke this run's lock.
fn lost_lock_or(run: &ScriptRun, outcome: &str) -> String {
    if facts::lock_lost(&run.facts) {
        LOST_LOCK.into()
    } else {
        outcome.into()
    }
}

/// What a failed switch script left: steps from `finish` on run after the new release went
/// live, and their failure undoes nothing.
fn switch_outcome(run: &ScriptRun, switch: &Phase) -> String {
    let failed = run.failed.as_ref().map(|(step, _)| step.as_str());
    let committed = switch
        .steps
        .iter()
        .any(|s| s.after_commit() && Some(s.id().as_str()) == failed);
    if facts::lock_lost(&run.facts) {
        LOST_LOCK.into()
    } else if facts::gave_up(&run.facts) {
        "this host had stopped waiting for its switch (targets.<t>.prepared_timeout): it abandoned the new release and gave its lock back; nothing was switched".into()
    } else if committed {
        "the new release is live; this step failed after the switch and nothing was undone".into()
    } else {
        "this host switched back to its previous release".into()
    }
}
