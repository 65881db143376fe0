//! Locked hosts: [`Fleet::lock`] takes every host's lock, and the [`Locked`] fleet it returns
//! gives back, on every way out (its `Drop`), exactly what it still holds; phases run on it in
//! rounds, and [`Locked::prepare_then_switch`] is the two-phase commit.

use super::{lost_lock_or, on_all, refused, script, switch_outcome, warn_begun, Fleet, Preamble};
use crate::error::{Error, Result};
use crate::plan::script::Script;
use crate::plan::step::{Cleanup, Step};
use crate::plan::Phase;
use crate::remote::facts;
use crate::session::ScriptRun;

/// What this run holds on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Nothing: never locked, or given back (a script's own cleanup gives it back on failure).
    Free,
    /// The lock.
    Locked,
    /// The lock and a prepared release (giving it back abandons the release).
    Prepared,
}

impl<'p> Fleet<'p> {
    /// Runs `begin` (which takes the lock) everywhere. When any host refuses or fails, the locks
    /// taken on the others are given back before the error returns.
    pub(crate) fn lock(
        mut self,
        begin: &Phase,
        vars: Vec<Preamble>,
    ) -> Result<(Locked<'p>, Vec<ScriptRun>)> {
        let printer = self.printer;
        let results = on_all(&mut self.sessions, |i, s| {
            s.run(
                &script(&vars[i], begin.steps.clone(), begin.cleanup),
                printer,
            )
        });
        let mut locked = Locked {
            hold: vec![Hold::Free; self.sessions.len()],
            fleet: self,
            vars,
            reason: "another host could not be locked".into(),
        };
        let mut runs = Vec::new();
        let mut failure: Option<Error> = None;
        for (i, result) in results.into_iter().enumerate() {
            let name = locked.fleet.sessions[i].transport.name().to_string();
            match result {
                Ok(run) if run.succeeded() => {
                    locked.hold[i] = Hold::Locked;
                    warn_begun(printer, &name, &run);
                    runs.push(run);
                }
                Ok(run) => {
                    let error = refused(&name, &run);
                    // A lock error wins over other failures: it is what the person must act on.
                    if matches!(error, Error::Locked { .. }) {
                        if !matches!(failure, Some(Error::Locked { .. })) {
                            failure = Some(error);
                        }
                    } else {
                        failure.get_or_insert(error);
                    }
                }
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        match failure {
            Some(error) => Err(error), // `locked` drops here and gives back what it holds
            None => Ok((locked, runs)),
        }
    }
}

/// A fleet whose hosts this run has locked. Dropping it gives back whatever it still holds.
pub(crate) struct Locked<'p> {
    fleet: Fleet<'p>,
    hold: Vec<Hold>,
    /// Each host's preamble, for every script from here on (commands update it as the plan
    /// learns more: the release id, a rollback's unapplied migrations).
    vars: Vec<Preamble>,
    /// Why the run gives up, recorded in the remote log when the locks are given back.
    reason: String,
}

impl<'p> Locked<'p> {
    /// How host `i` is named in messages.
    pub(crate) fn name(&self, i: usize) -> String {
        self.fleet.sessions[i].transport.name().to_string()
    }

    /// Every host's preamble, for the stages to update ([`super::stages`]).
    pub(super) fn preambles(&mut self) -> &mut [Preamble] {
        &mut self.vars
    }

    /// Records why the run gives up (shown in the remote log and the unlock lines).
    pub(crate) fn giving_up(&mut self, reason: impl Into<String>) {
        self.reason = reason.into();
    }

    /// Stops here when Ctrl-C asked for it: what was prepared is abandoned and every lock
    /// given back (by `Drop`); `outcome` says what the hosts keep.
    fn stop_if_interrupted(&mut self, outcome: &str) -> Result<()> {
        if crate::interrupt::requested() {
            self.reason = "interrupted".into();
            return Err(Error::Interrupted {
                outcome: outcome.to_string(),
            });
        }
        Ok(())
    }

    /// Runs `phase` on every host, in rounds: once-steps on the primary, the others waiting at
    /// that point. A host that fails ran its own cleanup; the error says what the others keep.
    pub(crate) fn run(&mut self, phase: &Phase, outcome: &str) -> Result<Vec<ScriptRun>> {
        self.run_each(&|_| phase.clone(), outcome)
    }

    /// [`Locked::run`] with a phase of the same shape per host (e.g. what each host prunes).
    pub(crate) fn run_each(
        &mut self,
        phase_for: &(dyn Fn(usize) -> Phase + Sync),
        outcome: &str,
    ) -> Result<Vec<ScriptRun>> {
        let hosts = self.fleet.sessions.len();
        let rounds: Vec<Vec<Phase>> = (0..hosts).map(|i| phase_for(i).rounds(hosts)).collect();
        let count = rounds.iter().map(Vec::len).max().unwrap_or(0);
        let mut merged: Vec<ScriptRun> = vec![ScriptRun::default(); hosts];
        for r in 0..count {
            self.stop_if_interrupted(outcome)?;
            let results = self.round(|i, primary, vars| {
                let round = rounds[i].get(r)?;
                let steps = round.steps_for(primary);
                (!steps.is_empty()).then(|| script(vars, steps, round.cleanup))
            });
            self.settle(rounds[0][r].cleanup, results, &mut merged, outcome)?;
        }
        Ok(merged)
    }

    fn round(
        &mut self,
        script_for: impl Fn(usize, bool, &Preamble) -> Option<Script> + Sync,
    ) -> Vec<Option<Result<ScriptRun>>> {
        let printer = self.fleet.printer;
        let primary = self.fleet.primary;
        let vars = &self.vars;
        on_all(&mut self.fleet.sessions, |i, s| {
            script_for(i, i == primary, &vars[i]).map(|script| s.run(&script, printer))
        })
    }

    /// Folds one round's results into `merged`, updating what this run holds; the first
    /// failure becomes the error.
    fn settle(
        &mut self,
        cleanup: Cleanup,
        runs: Vec<Option<Result<ScriptRun>>>,
        merged: &mut [ScriptRun],
        outcome: &str,
    ) -> Result<()> {
        let mut failure = None;
        for (i, run) in runs.into_iter().enumerate() {
            let Some(run) = run else { continue };
            let name = self.name(i);
            match run {
                Ok(run) if run.succeeded() => {
                    if facts::unlocked(&run.facts) {
                        self.hold[i] = Hold::Free;
                    } else if cleanup == Cleanup::Prepare {
                        self.hold[i] = Hold::Prepared;
                    }
                    merged[i].absorb(run);
                }
                Ok(run) => {
                    // Its own cleanup ran and gave the lock back (unless the connection died,
                    // in which case the remote trap did, or nobody can).
                    self.hold[i] = Hold::Free;
                    failure.get_or_insert_with(|| {
                        (name.clone(), run.error(&name, lost_lock_or(&run, outcome)))
                    });
                }
                Err(e) => {
                    self.hold[i] = Hold::Free;
                    failure.get_or_insert((name, e));
                }
            }
        }
        match failure {
            Some((name, error)) => {
                self.reason = format!("{name} failed");
                Err(error)
            }
            None => Ok(()),
        }
    }

    /// Two-phase commit: `prepare` everywhere, then — only if every host is ready — `switch`
    /// (host `i`'s phases are `prepare(i)` and `switch(i)`), in batches of `batch` hosts (one
    /// host goes through [`Fleet::run_through`] instead). `current_outcome` says what a failure
    /// before the switch leaves.
    pub(crate) fn prepare_then_switch(
        &mut self,
        prepare: &(dyn Fn(usize) -> Phase + Sync),
        switch: &(dyn Fn(usize) -> Phase + Sync),
        batch: Option<u32>,
        current_outcome: &str,
    ) -> Result<Vec<ScriptRun>> {
        self.stop_if_interrupted(current_outcome)?;
        let mut runs = self.run_each(prepare, current_outcome)?;
        self.stop_if_interrupted(current_outcome)?;
        let hosts = self.fleet.sessions.len();
        let size = batch.map_or(hosts, |b| b as usize).max(1);
        let mut switched: Vec<String> = Vec::new();
        for start in (0..hosts).step_by(size) {
            if start > 0 {
                self.stop_if_interrupted(&format!(
                    "switched: {}; the other hosts abandon their new release",
                    switched.join(", ")
                ))?;
            }
            let members = start..(start + size).min(hosts);
            let phases: Vec<Phase> = (0..hosts).map(switch).collect();
            let results = self.round(|i, _, vars| {
                members
                    .contains(&i)
                    .then(|| script(vars, phases[i].steps.clone(), phases[i].cleanup))
            });
            let mut errors = Vec::new();
            for (i, result) in results.into_iter().enumerate() {
                let Some(result) = result else { continue };
                self.hold[i] = Hold::Free;
                let name = self.name(i);
                match result {
                    Ok(run) if run.succeeded() => {
                        switched.push(name);
                        runs[i].absorb(run);
                    }
                    Ok(run) => errors.push(run.error(&name, switch_outcome(&run, &phases[i]))),
                    Err(e) => errors.push(e),
                }
            }
            if let Some(first) = errors.into_iter().next() {
                let waiting: Vec<String> = (0..hosts)
                    .filter(|i| self.hold[*i] == Hold::Prepared)
                    .map(|i| self.name(i))
                    .collect();
                self.reason = "a batch failed to switch".into();
                if switched.is_empty() && waiting.is_empty() {
                    return Err(first);
                }
                self.fleet.printer.warn(format!(
                    "switched: {}; not switched (their new release is abandoned): {}",
                    if switched.is_empty() {
                        "none".into()
                    } else {
                        switched.join(", ")
                    },
                    if waiting.is_empty() {
                        "none".into()
                    } else {
                        waiting.join(", ")
                    }
                ));
                return Err(first);
            }
        }
        Ok(runs)
    }

    /// Keeps every lock held after this run ends (`shipit lock acquire`) and returns the fleet.
    pub(crate) fn keep_locks(mut self) -> Fleet<'p> {
        self.hold.iter_mut().for_each(|h| *h = Hold::Free);
        self.into_fleet()
    }

    /// Gives back everything still held (also what `Drop` does) and returns the fleet.
    pub(crate) fn into_fleet(mut self) -> Fleet<'p> {
        self.release();
        Fleet {
            sessions: std::mem::take(&mut self.fleet.sessions),
            printer: self.fleet.printer,
            primary: self.fleet.primary,
        }
    }

    fn release(&mut self) {
        let held: Vec<(usize, Hold)> = self
            .hold
            .iter()
            .enumerate()
            .filter(|(_, h)| **h != Hold::Free)
            .map(|(i, h)| (i, *h))
            .collect();
        if held.is_empty() {
            return;
        }
        let printer = self.fleet.printer;
        let reason = self.reason.clone();
        let hold = self.hold.clone();
        let vars = &self.vars;
        let results = on_all(&mut self.fleet.sessions, |i, s| {
            let step = match hold[i] {
                Hold::Free => return None,
                Hold::Locked => Step::ReleaseLock,
                Hold::Prepared => Step::Abort(reason.clone()),
            };
            Some(s.run(&script(&vars[i], vec![step], Cleanup::Lock), printer))
        });
        for (i, result) in results.into_iter().enumerate() {
            let Some(result) = result else { continue };
            let name = self.name(i);
            let abandoned = if hold[i] == Hold::Prepared {
                " and abandoned its prepared release"
            } else {
                ""
            };
            match result {
                Ok(run) if facts::unlocked(&run.facts) => {
                    printer.info(format!("{name}: released the lock{abandoned}"))
                }
                Ok(_) => printer.warn(format!(
                    "{name}: the lock was no longer this run's; left it as it is"
                )),
                Err(e) => printer.warn(format!(
                    "{name}: could not release the lock ({e}); a later run can take it with --break-lock"
                )),
            }
            self.hold[i] = Hold::Free;
        }
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.release();
    }
}
