//! Locked hosts: [`Fleet::lock`] takes every host's lock, and the [`Locked`] fleet it returns
//! gives back, on every way out (its `Drop`), exactly what it still holds; phases run on it in
//! rounds, and [`Locked::prepare_then_switch`] is the two-phase commit.

use std::time::{Duration, Instant};

use super::{lost_lock_or, on_all, refused, script, switch_outcome, warn_begun, Fleet, Preamble};
use crate::error::{Error, Result};
use crate::plan::script::Script;
use crate::plan::step::{Cleanup, Scope, Step};
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
    /// Takes every host's lock with `begin`, in one order every run of the target follows, so
    /// that two runs started together never split the fleet between them (each holding some
    /// hosts and refused, or waiting, on the others): the primary's first, in a round of its
    /// own in which its script waits up to `--lock-wait` for a lock another run holds; then
    /// every other host's, in parallel, in a second round that never waits. A run that holds
    /// the primary's lock holds the target, so only a lock taken otherwise (another target
    /// sharing a host, `shipit lock acquire` on a subset) can hold one of the others; then
    /// every lock taken is given back, and the run begins again while `--lock-wait` has time
    /// left (waiting at the primary: it never waits while it holds a lock), or is refused with
    /// every locked host named. Any other failure gives back what was taken and names every
    /// host that failed.
    pub(crate) fn lock(
        self,
        begin: &Phase,
        vars: Vec<Preamble>,
    ) -> Result<(Locked<'p>, Vec<ScriptRun>)> {
        let wait = vars.first().map_or(0, |v| v.lock_wait.parse().unwrap_or(0));
        let deadline = Instant::now() + Duration::from_secs(wait);
        let mut locked = Locked {
            hold: vec![Hold::Free; self.sessions.len()],
            fleet: self,
            vars,
            reason: "another host could not be locked".into(),
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match locked.begin(begin, left.as_secs()) {
                Begun::All(runs) => return Ok((locked, runs)),
                Begun::Locked(error) if left >= RETRY_PAUSE => {
                    locked.fleet.printer.info(format!(
                        "{error}\ngave back the locks this run took; trying again (--lock-wait)"
                    ));
                    locked.release();
                    std::thread::sleep(RETRY_PAUSE);
                }
                // `locked` drops here and gives back what it holds.
                Begun::Locked(error) | Begun::Failed(error) => return Err(error),
            }
        }
    }
}

/// How long a run that gave its locks back waits before it begins again.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// How one try at taking every host's lock ended.
enum Begun {
    /// Every host is locked: begin's run on each, in target order.
    All(Vec<ScriptRun>),
    /// The primary is locked, and some other host is held by another run (no other failure).
    Locked(Error),
    /// The primary could not be locked, or a host failed.
    Failed(Error),
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
            // A host with nothing to run (a rollback's host on its target already) has no round.
            let cleanup = rounds.iter().find_map(|h| h.get(r)).map(|p| p.cleanup);
            let cleanup = cleanup.expect("a round some host runs");
            self.settle(cleanup, results, &mut merged, outcome)?;
        }
        Ok(merged)
    }

    /// One try at taking every lock ([`Fleet::lock`]): the primary's, waiting up to `wait`
    /// seconds, then the others' without waiting.
    fn begin(&mut self, begin: &Phase, wait: u64) -> Begun {
        let primary = self.fleet.primary;
        let mut runs = vec![ScriptRun::default(); self.hold.len()];
        if let Some(error) = self.begin_round(begin, |i| i == primary, wait, &mut runs) {
            return Begun::Failed(error);
        }
        match self.begin_round(begin, |i| i != primary, 0, &mut runs) {
            None => Begun::All(runs),
            Some(error) => {
                let locked = |e: &Error| matches!(e, Error::Locked { .. });
                let only_locks = match &error {
                    Error::Hosts { errors } => errors.iter().all(locked),
                    error => locked(error),
                };
                if only_locks {
                    Begun::Locked(error)
                } else {
                    Begun::Failed(error)
                }
            }
        }
    }

    /// Runs `begin` on the hosts `on` selects, in parallel, their scripts waiting up to `wait`
    /// seconds for a lock another run holds; records what each took and its run in `runs`.
    /// The error names every host that refused or failed.
    fn begin_round(
        &mut self,
        begin: &Phase,
        on: impl Fn(usize) -> bool + Sync,
        wait: u64,
        runs: &mut [ScriptRun],
    ) -> Option<Error> {
        let printer = self.fleet.printer;
        let vars = &self.vars;
        let results = on_all(&mut self.fleet.sessions, |i, s| {
            on(i).then(|| {
                let vars = Preamble {
                    lock_wait: wait.to_string(),
                    ..vars[i].clone()
                };
                s.run(&script(&vars, begin.steps.clone(), begin.cleanup), printer)
            })
        });
        let mut errors = Vec::new();
        for (i, result) in results.into_iter().enumerate() {
            let Some(result) = result else { continue };
            let name = self.name(i);
            match result {
                Ok(run) if run.succeeded() => {
                    self.hold[i] = Hold::Locked;
                    warn_begun(printer, &name, &run);
                    runs[i] = run;
                }
                Ok(run) => errors.push(refused(&name, &run)),
                Err(e) => errors.push(e),
            }
        }
        Error::of_hosts(errors)
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

    /// Folds one round's results into `merged`, updating what this run holds; the error names
    /// every host that failed.
    fn settle(
        &mut self,
        cleanup: Cleanup,
        runs: Vec<Option<Result<ScriptRun>>>,
        merged: &mut [ScriptRun],
        outcome: &str,
    ) -> Result<()> {
        let mut failed = Vec::new();
        let mut errors = Vec::new();
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
                    continue;
                }
                // Its own cleanup ran and gave the lock back (unless the connection died, in
                // which case the remote trap did, or nobody can).
                Ok(run) => errors.push(run.error(&name, lost_lock_or(&run, outcome))),
                Err(e) => errors.push(e),
            }
            self.hold[i] = Hold::Free;
            failed.push(name);
        }
        match Error::of_hosts(errors) {
            Some(error) => {
                self.reason = format!("{} failed", failed.join(", "));
                Err(error)
            }
            None => Ok(()),
        }
    }

    /// Two-phase commit: `prepare` everywhere, then — only if every host is ready — `switch`
    /// (host `i`'s phases are `prepare(i)` and `switch(i)`), in batches of `batch` hosts (one
    /// host goes through [`Fleet::run_through`] instead). Each prepare ends by leaving a watch
    /// on its host ([`Step::AwaitSwitch`]): a host whose switch does not come within
    /// `prepared_timeout`, or whose run is gone, abandons its release and gives its lock back
    /// by itself. `current_outcome` says what a failure before the switch leaves.
    pub(crate) fn prepare_then_switch(
        &mut self,
        prepare: &(dyn Fn(usize) -> Phase + Sync),
        switch: &(dyn Fn(usize) -> Phase + Sync),
        batch: Option<u32>,
        current_outcome: &str,
    ) -> Result<Vec<ScriptRun>> {
        self.stop_if_interrupted(current_outcome)?;
        // Between this script and its switch no script runs on a host: its watch gives the
        // release and the lock up if the switch never comes (shipit killed, or hung).
        let watched = |i: usize| {
            let mut phase = prepare(i);
            if !phase.steps.is_empty() {
                phase.steps.push(Step::AwaitSwitch);
            }
            phase
        };
        let mut runs = self.run_each(&watched, current_outcome)?;
        self.stop_if_interrupted(current_outcome)?;
        let hosts = self.fleet.sessions.len();
        let size = batch.map_or(hosts, |b| b as usize).max(1);
        let mut switched: Vec<String> = Vec::new();
        let full: Vec<Phase> = (0..hosts).map(switch).collect();
        // A switch's once-steps wait for the last batch (see `after_every_switch`).
        let phases: Vec<Phase> = full
            .iter()
            .map(|phase| {
                let mut phase = phase.clone();
                phase.steps.retain(|s| s.scope() == Scope::EachHost);
                phase
            })
            .collect();
        for start in (0..hosts).step_by(size) {
            if start > 0 {
                self.stop_if_interrupted(&format!(
                    "switched: {}; the other hosts abandon their new release",
                    switched.join(", ")
                ))?;
            }
            let members = start..(start + size).min(hosts);
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
            if let Some(error) = Error::of_hosts(errors) {
                let waiting: Vec<String> = (0..hosts)
                    .filter(|i| self.hold[*i] == Hold::Prepared)
                    .map(|i| self.name(i))
                    .collect();
                self.reason = "a batch failed to switch".into();
                if switched.is_empty() && waiting.is_empty() {
                    return Err(error);
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
                if !switched.is_empty() {
                    self.fleet.printer.warn(self.split(&switched));
                }
                return Err(error);
            }
        }
        self.after_every_switch(&full[self.fleet.primary], &mut runs)?;
        Ok(runs)
    }

    /// Runs the once-steps of the primary's switch phase that its runs so far ask for (the
    /// migrations the gate held, [`Step::wanted`]) on the primary, once every host has
    /// switched: one more exec, only when there is something to do. The switch stands.
    fn after_every_switch(&mut self, switch: &Phase, runs: &mut [ScriptRun]) -> Result<()> {
        let primary = self.fleet.primary;
        let steps: Vec<Step> = switch
            .steps
            .iter()
            .filter(|s| s.scope() == Scope::Once && s.wanted(&runs[primary].facts))
            .cloned()
            .collect();
        if steps.is_empty() {
            return Ok(());
        }
        let after = Phase::new(steps, Cleanup::Lock);
        let results = self.round(|i, _, vars| {
            (i == primary).then(|| script(vars, after.steps.clone(), after.cleanup))
        });
        let name = self.name(primary);
        match results.into_iter().nth(primary).flatten() {
            Some(Ok(run)) if run.succeeded() => {
                runs[primary].absorb(run);
                Ok(())
            }
            Some(Ok(run)) => Err(run.error(&name, switch_outcome(&run, &after))),
            Some(Err(e)) => Err(e),
            None => Ok(()),
        }
    }

    /// What a batch that failed after `switched` had switched leaves: which hosts run which
    /// release, and the command that makes them agree again.
    fn split(&self, switched: &[String]) -> String {
        let vars = &self.vars[0];
        let others: Vec<String> = (0..self.hold.len())
            .map(|i| self.name(i))
            .filter(|name| !switched.contains(name))
            .collect();
        let agree = if vars.op == "deploy" {
            format!(
                "`shipit rollback -t {}` takes every host to the last release all of them had live",
                vars.target
            )
        } else {
            "`shipit releases` lists each host's releases".to_string()
        };
        format!(
            "the hosts disagree: {} run{} release {}; {} run{} the release {} before: {agree}",
            switched.join(", "),
            if switched.len() == 1 { "s" } else { "" },
            vars.id,
            others.join(", "),
            if others.len() == 1 { "s" } else { "" },
            if others.len() == 1 {
                "it ran"
            } else {
                "they ran"
            },
        )
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

    /// Gives back everything still held, saying so per host.
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
