//! The fleet runner: the only place that sequences hosts.
//!
//! [`Fleet::lock`] takes every host's lock and returns a [`Locked`] fleet whose every way out —
//! success, a failed step, a refusal, `?`, a panic — gives back exactly the locks it still holds
//! and says so (its `Drop`). Phases run on all hosts in parallel; once-steps run on the primary
//! while the others wait ([`crate::plan::Phase::rounds`]); [`Locked::prepare_then_switch`] is
//! the two-phase commit every command uses: nobody switches unless everybody prepared, then
//! hosts switch in batches, each batch health-checked before the next.

use crate::error::{Error, Result};
use crate::output::Printer;
use crate::plan::releases::lock_holder;
use crate::plan::script::Script;
use crate::plan::step::{Cleanup, Step, LOCKED_STATUS};
use crate::plan::Phase;
use crate::remote::facts;
use crate::resolve::random_hex;
use crate::session::{HostSession, ScriptRun};

/// The preamble of one host's scripts.
pub(crate) type Vars = Vec<(&'static str, String)>;

/// Connected hosts, none locked.
pub(crate) struct Fleet<'p> {
    pub(crate) sessions: Vec<HostSession>,
    pub(crate) printer: &'p Printer,
    /// Index of the host that runs once-steps.
    pub(crate) primary: usize,
}

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

fn script(vars: &Vars, steps: Vec<Step>, cleanup: Cleanup) -> Script {
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
    /// own, such as giving back a held lock); the first failure is the error, a lock held by
    /// another run an [`Error::Locked`].
    pub(crate) fn each(&mut self, phase: &Phase, vars: &[Vars]) -> Result<Vec<ScriptRun>> {
        let printer = self.printer;
        let runs = on_all(&mut self.sessions, |i, s| {
            s.run(
                &script(&vars[i], phase.steps.clone(), phase.cleanup),
                printer,
            )
        });
        let mut out = Vec::new();
        for (i, run) in runs.into_iter().enumerate() {
            let run = run?;
            let name = self.sessions[i].transport.name();
            if run.status == LOCKED_STATUS {
                let holder = lock_holder(&run.facts);
                return Err(Error::Locked {
                    host: name.to_string(),
                    holder: holder.who,
                    live: holder.live,
                    held: holder.held,
                });
            }
            if !run.succeeded() {
                return Err(run.error(name, "nothing was changed"));
            }
            out.push(run);
        }
        Ok(out)
    }

    /// Runs `phase` everywhere in parallel without the lock, giving each line a step prints to
    /// `on_output` with the host's index as it comes; every host's result, in order (`shipit
    /// run` decides what a failure means).
    pub(crate) fn each_streaming(
        &mut self,
        phase: &Phase,
        vars: &[Vars],
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

    /// Runs `begin` (which takes the lock) everywhere. When any host refuses or fails, the locks
    /// taken on the others are given back before the error returns.
    pub(crate) fn lock(
        mut self,
        begin: &Phase,
        vars: Vec<Vars>,
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

impl Fleet<'_> {
    /// One host, one exec: `begin` (which takes the lock), then the stages `then` makes of
    /// what the script reported so far (updating the preamble `vars` with it), each run as the
    /// script asks for it ([`Script::continued`]), so no exec is opened between them; the last
    /// prepares and switches, with a gate between them ([`Script::then`]): Ctrl-C still stops
    /// before the switch. A host that refuses, or an error of `then`, gives the lock back there
    /// and then. (Several hosts go through [`Fleet::lock`] and [`Locked::prepare_then_switch`].)
    pub(crate) fn run_through(
        &mut self,
        begin: &Phase,
        mut vars: Vars,
        then: &mut dyn FnMut(&ScriptRun, &mut Vars) -> Result<Stage>,
    ) -> Result<ScriptRun> {
        let printer = self.printer;
        let nonce = random_hex();
        let first =
            Script::new(&nonce, vars.clone(), begin.steps.clone(), begin.cleanup).continued();
        let name = self.sessions[0].transport.name().to_string();
        // What a failure means from the latest stage on (the switch phase, once it is sent).
        let mut outcome: Option<String> = None;
        let mut switch: Option<Phase> = None;
        let mut error: Option<Error> = None;
        let run = self.sessions[0].run_continued(&first, printer, &mut |so_far| {
            if outcome.is_none() {
                warn_begun(printer, &name, so_far);
            }
            let stage = match then(so_far, &mut vars) {
                Ok(stage) => stage,
                Err(e) => {
                    error = Some(e);
                    return None;
                }
            };
            if crate::interrupt::requested() {
                return None;
            }
            let script =
                |phase: Phase| Script::new(&nonce, vars.clone(), phase.steps, phase.cleanup);
            Some(match stage {
                Stage::More { phase, outcome: o } => {
                    outcome = Some(o);
                    script(phase).continued()
                }
                Stage::Last(rest) => {
                    outcome = Some(rest.outcome);
                    switch = Some(rest.switch.clone());
                    script(rest.prepare).then(script(rest.switch))
                }
            })
        })?;
        if run.succeeded() {
            return Ok(run);
        }
        if let Some(error) = error {
            return Err(error);
        }
        let stopped = facts::stopped(&run.facts);
        if stopped && facts::unlocked(&run.facts) {
            printer.info(format!(
                "{name}: released the lock{}",
                if switch.is_some() {
                    " and abandoned its prepared release"
                } else {
                    ""
                }
            ));
        }
        let Some(outcome) = outcome else {
            return Err(if stopped {
                Error::Interrupted {
                    outcome: "nothing was changed".into(),
                }
            } else {
                refused(&name, &run)
            });
        };
        if stopped {
            return Err(Error::Interrupted { outcome });
        }
        let failed = |phase: &Phase| {
            run.failed
                .as_ref()
                .is_some_and(|(step, _)| phase.steps.iter().any(|s| s.id() == *step))
        };
        let outcome = match &switch {
            Some(switch) if failed(switch) => switch_outcome(&run, switch),
            _ => lost_lock_or(&run, &outcome),
        };
        Err(run.error(&name, outcome))
    }
}

/// What a single host's script goes on with (see [`Fleet::run_through`]).
pub(crate) enum Stage {
    /// A phase, after which the script asks again; `outcome` says what a failure in it leaves.
    More { phase: Phase, outcome: String },
    /// The end: prepare, the gate, switch.
    Last(Rest),
}

/// How a single host's script ends (see [`Fleet::run_through`]).
pub(crate) struct Rest {
    pub(crate) prepare: Phase,
    pub(crate) switch: Phase,
    /// What a failure before the switch leaves.
    pub(crate) outcome: String,
}

/// Sets one variable of a preamble.
pub(crate) fn set_var(vars: &mut Vars, name: &'static str, value: &str) {
    match vars.iter_mut().find(|(n, _)| *n == name) {
        Some(slot) => slot.1 = value.to_string(),
        None => vars.push((name, value.to_string())),
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

/// A fleet whose hosts this run has locked. Dropping it gives back whatever it still holds.
pub(crate) struct Locked<'p> {
    fleet: Fleet<'p>,
    hold: Vec<Hold>,
    /// Each host's preamble, for every script from here on (commands update it as the plan
    /// learns more: the release id, a rollback's unapplied migrations).
    vars: Vec<Vars>,
    /// Why the run gives up, recorded in the remote log when the locks are given back.
    reason: String,
}

impl<'p> Locked<'p> {
    /// How host `i` is named in messages.
    pub(crate) fn name(&self, i: usize) -> String {
        self.fleet.sessions[i].transport.name().to_string()
    }

    /// Sets one variable of every host's preamble.
    pub(crate) fn set_var(&mut self, name: &'static str, value: &str) {
        for host in 0..self.vars.len() {
            self.set_var_on(host, name, value);
        }
    }

    /// Sets one variable of host `host`'s preamble.
    pub(crate) fn set_var_on(&mut self, host: usize, name: &'static str, value: &str) {
        set_var(&mut self.vars[host], name, value);
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
        script_for: impl Fn(usize, bool, &Vars) -> Option<Script> + Sync,
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
    } else if committed {
        "the new release is live; this step failed after the switch and nothing was undone".into()
    } else {
        "this host switched back to its previous release".into()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::cli::ColorChoice;
    use crate::output::Verbosity;
    use crate::plan::deploy;
    use crate::transport::fake::{Behaviour, Fake, FakeHost};

    fn printer() -> Printer {
        Printer::new(Verbosity::Quiet, false, ColorChoice::Never)
    }

    fn fails_at(step: &str, status: i32) -> Behaviour {
        Behaviour {
            fail_at: Some((step.into(), status)),
            ..Behaviour::default()
        }
    }

    /// A fleet of fake hosts behaving as given, and what each of them sees.
    fn fleet(printer: &Printer, hosts: Vec<Behaviour>) -> (Fleet<'_>, Vec<Arc<Mutex<FakeHost>>>) {
        let mut seen = Vec::new();
        let sessions = hosts
            .into_iter()
            .enumerate()
            .map(|(i, behaviour)| {
                let fake = Fake::new(&format!("host{i}"), behaviour);
                seen.push(fake.host.clone());
                HostSession {
                    transport: Box::new(fake),
                    label: format!("host{i}"),
                }
            })
            .collect();
        let fleet = Fleet {
            sessions,
            printer,
            primary: 0,
        };
        (fleet, seen)
    }

    fn resolved() -> crate::resolve::Resolved {
        deploy::tests::resolved()
    }

    fn everything() -> crate::resolve::Placement {
        deploy::tests::everything()
    }

    fn vars(hosts: usize) -> Vec<Vars> {
        vec![vec![("D", "/srv/app".to_string())]; hosts]
    }

    fn ran(host: &Arc<Mutex<FakeHost>>) -> Vec<String> {
        host.lock().unwrap().scripts.concat()
    }

    fn nobody_locked(hosts: &[Arc<Mutex<FakeHost>>]) -> bool {
        hosts.iter().all(|h| !h.lock().unwrap().locked)
    }

    fn deploy(fleet: Fleet<'_>, hosts: usize) -> Result<Vec<ScriptRun>> {
        deploy_as(fleet, hosts, &resolved())
    }

    /// [`deploy`] of a target resolved as the test needs (e.g. in batches).
    fn deploy_as(
        fleet: Fleet<'_>,
        hosts: usize,
        resolved: &crate::resolve::Resolved,
    ) -> Result<Vec<ScriptRun>> {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tar.gz");
        std::fs::write(&archive, "a").unwrap();
        let (mut locked, _) = fleet.lock(&deploy::begin(&archive, 1), vars(hosts))?;
        locked.prepare_then_switch(
            &|_| deploy::tests::prepared(resolved, false),
            &|_| deploy::switch(resolved, &everything(), vec![]),
            resolved.batch,
            "nothing was switched",
        )
    }

    /// One host through [`Fleet::run_through`], as `shipit deploy` runs it, with `then` the
    /// plan it makes of begin's run.
    fn run_through(
        fleet: &mut Fleet<'_>,
        then: &mut dyn FnMut(&ScriptRun, &mut Vars) -> Result<()>,
    ) -> Result<ScriptRun> {
        let resolved = resolved();
        let mut checked = false;
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tar.gz");
        std::fs::write(&archive, "archive").unwrap();
        fleet.run_through(
            &deploy::begin(&archive, 7),
            vars(1).remove(0),
            &mut |begun, vars| {
                then(begun, vars)?;
                // A stage between, as a rollback's check of migrations.
                if !checked {
                    checked = true;
                    return Ok(Stage::More {
                        phase: crate::plan::rollback::check(),
                        outcome: "nothing was changed".into(),
                    });
                }
                Ok(Stage::Last(Rest {
                    prepare: deploy::tests::prepared(&resolved, false),
                    switch: deploy::switch(&resolved, &everything(), vec![]),
                    outcome: "nothing was switched".into(),
                }))
            },
        )
    }

    #[test]
    fn one_host_begins_prepares_and_switches_in_one_exec() {
        let printer = printer();
        let facts = Behaviour {
            facts: [(
                "facts".to_string(),
                vec![(facts::key::CURRENT.into(), "20260101000000".into())],
            )]
            .into(),
            ..Behaviour::default()
        };
        let (mut fleet, hosts) = fleet(&printer, vec![facts]);
        let mut seen = None;
        let run = run_through(&mut fleet, &mut |begun, vars| {
            seen = facts::current(&begun.facts).cloned();
            set_var(vars, "ID", "20260101000001");
            Ok(())
        })
        .unwrap();
        assert!(run.succeeded());
        assert_eq!(seen.as_deref(), Some("20260101000000"));
        let scripts = hosts[0].lock().unwrap().scripts.clone();
        assert_eq!(scripts.len(), 1, "one exec: {scripts:?}");
        let steps = &scripts[0];
        assert_eq!(steps[..5], ["layout", "lock", "reap", "facts", "upload"]);
        assert!(steps.contains(&"migrate".to_string()));
        assert!(steps.contains(&"gate".to_string()));
        assert_eq!(steps.last().unwrap(), "stop-old-app");
        assert!(nobody_locked(&hosts));
        // The first stage went behind the archive; only the second was waited for.
        assert_eq!(hosts[0].lock().unwrap().waited_for_rest, 1);
    }

    #[test]
    fn a_plan_that_fails_after_begin_gives_the_lock_back_in_the_same_exec() {
        let printer = printer();
        let (mut fleet, hosts) = fleet(&printer, vec![Behaviour::default()]);
        let error = run_through(&mut fleet, &mut |_, _| {
            Err(Error::usage("app_user cannot be told"))
        })
        .unwrap_err();
        assert!(
            error.to_string().contains("app_user cannot be told"),
            "{error}"
        );
        let scripts = hosts[0].lock().unwrap().scripts.clone();
        assert_eq!(scripts, [["layout", "lock", "reap", "facts", "upload"]]);
        assert!(nobody_locked(&hosts));
        // A failing step of begin is the error, and the plan is never made.
        let (mut fleet, hosts) = fleet_of(&printer, fails_at("facts", 3));
        let mut planned = false;
        let error = run_through(&mut fleet, &mut |_, _| {
            planned = true;
            Ok(())
        })
        .unwrap_err();
        assert!(!planned);
        assert!(error.to_string().contains("facts"), "{error}");
        assert!(nobody_locked(&hosts));
    }

    #[test]
    fn an_archive_that_cannot_be_read_fails_before_the_host_is_touched() {
        let printer = printer();
        let (mut fleet, hosts) = fleet(&printer, vec![Behaviour::default()]);
        let missing = std::path::Path::new("/nonexistent/shipit/a.tar.gz");
        let error = fleet
            .run_through(
                &deploy::begin(missing, 7),
                vars(1).remove(0),
                &mut |_, _| unreachable!("no plan without a begin"),
            )
            .unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/shipit/a.tar.gz"),
            "{error}"
        );
        assert!(hosts[0].lock().unwrap().scripts.is_empty(), "no exec");
    }

    fn fleet_of(printer: &Printer, host: Behaviour) -> (Fleet<'_>, Vec<Arc<Mutex<FakeHost>>>) {
        fleet(printer, vec![host])
    }

    #[test]
    fn only_the_primary_migrates_and_every_host_switches() {
        let printer = printer();
        let (fleet, hosts) = fleet(&printer, vec![Behaviour::default(); 3]);
        deploy(fleet, 3).unwrap();
        for (i, host) in hosts.iter().enumerate() {
            let steps = ran(host);
            assert_eq!(
                steps.contains(&"migrate".to_string()),
                i == 0,
                "host{i}: {steps:?}"
            );
            assert!(steps.contains(&"switch".to_string()));
            // begin, prepare up to migrate, the rest of prepare, the hook only the primary
            // runs, the rest, switch.
            let scripts = host.lock().unwrap().scripts.len();
            assert!(scripts >= 4, "host{i} ran {scripts} scripts");
        }
        assert!(nobody_locked(&hosts));
    }

    #[test]
    fn a_host_failing_to_prepare_aborts_the_others_and_nobody_switches() {
        let printer = printer();
        let (fleet, hosts) = fleet(
            &printer,
            vec![
                Behaviour::default(),
                fails_at("start-app", 1),
                Behaviour::default(),
            ],
        );
        let error = deploy(fleet, 3).unwrap_err();
        assert!(
            matches!(&error, Error::Step { host, step, .. } if host == "host1" && step == "start-app"),
            "{error}"
        );
        for host in &hosts {
            let steps = ran(host);
            assert!(!steps.contains(&"switch".to_string()), "{steps:?}");
        }
        assert_eq!(ran(&hosts[0]).last().unwrap(), "abort");
        assert_eq!(ran(&hosts[2]).last().unwrap(), "abort");
        assert!(nobody_locked(&hosts));
    }

    #[test]
    fn a_failed_migration_fails_every_host_before_any_switch() {
        let printer = printer();
        let (fleet, hosts) = fleet(&printer, vec![fails_at("migrate", 1), Behaviour::default()]);
        let error = deploy(fleet, 2).unwrap_err();
        assert!(error.to_string().contains("migrate"), "{error}");
        // The other host stopped where it waited for the primary.
        let other = ran(&hosts[1]);
        assert!(!other.contains(&"collectstatic".to_string()), "{other:?}");
        assert_eq!(other.last().unwrap(), "abort");
        assert!(nobody_locked(&hosts));
    }

    #[test]
    fn a_lock_held_elsewhere_gives_back_the_locks_taken() {
        let printer = printer();
        let held = Behaviour {
            fail_at: Some(("lock".into(), LOCKED_STATUS)),
            facts: [(
                "lock".to_string(),
                vec![
                    (
                        "locked".to_string(),
                        "by bob@elsewhere since 2026".to_string(),
                    ),
                    (facts::key::LOCK_LIVE.to_string(), "1".to_string()),
                ],
            )]
            .into(),
            ..Behaviour::default()
        };
        let (fleet, hosts) = fleet(&printer, vec![Behaviour::default(), held]);
        let error = deploy(fleet, 2).unwrap_err();
        match &error {
            Error::Locked {
                host, holder, live, ..
            } => {
                assert_eq!(host, "host1");
                assert!(holder.contains("bob@elsewhere"));
                assert!(live);
            }
            other => panic!("{other}"),
        }
        assert!(error.hint().unwrap().contains("--break-lock --force"));
        assert_eq!(
            ran(&hosts[0]),
            ["layout", "lock", "reap", "facts", "upload", "release-lock"]
        );
        assert!(nobody_locked(&hosts));
    }

    #[test]
    fn a_lost_connection_still_releases_the_other_hosts() {
        let printer = printer();
        let (fleet, hosts) = fleet(
            &printer,
            vec![
                Behaviour::default(),
                Behaviour {
                    drop_at: Some("virtualenv".into()),
                    ..Behaviour::default()
                },
            ],
        );
        assert!(matches!(deploy(fleet, 2), Err(Error::Connection { .. })));
        assert_eq!(ran(&hosts[0]).last().unwrap(), "abort");
        assert!(!hosts[0].lock().unwrap().locked);
    }

    #[test]
    fn batches_switch_in_turn_and_a_failed_batch_stops_the_rest() {
        let printer = printer();
        let mut resolved = resolved();
        resolved.batch = Some(2);
        let (fleet, hosts) = fleet(
            &printer,
            vec![
                Behaviour::default(),
                Behaviour::default(),
                fails_at("health-check", 1),
                Behaviour::default(),
                Behaviour::default(),
            ],
        );
        let error = deploy_as(fleet, 5, &resolved).unwrap_err();
        assert!(error.to_string().contains("switched back"), "{error}");
        let switched = |i: usize| ran(&hosts[i]).contains(&"finish".to_string());
        assert!(switched(0) && switched(1), "the first batch stays switched");
        assert!(
            switched(3),
            "the failed batch's other host switched with it"
        );
        assert!(!switched(4), "the batch after a failure never switches");
        assert_eq!(ran(&hosts[4]).last().unwrap(), "abort");
        assert!(nobody_locked(&hosts));
    }

    #[test]
    fn prune_on_several_hosts_unlocks_every_host_even_when_one_fails() {
        let printer = printer();
        let (fleet, hosts) = fleet(
            &printer,
            vec![
                Behaviour::default(),
                fails_at("remove", 1),
                Behaviour::default(),
            ],
        );
        let (mut locked, _) = fleet
            .lock(&crate::plan::rollback::begin(), vars(3))
            .unwrap();
        let result = locked.run_each(
            &|_| crate::plan::releases::remove(vec![]),
            "left as they were",
        );
        drop(locked);
        assert!(result.is_err());
        assert!(ran(&hosts[2]).contains(&"remove".to_string()));
        assert!(nobody_locked(&hosts));
    }

    #[test]
    fn a_refusal_after_locking_gives_every_lock_back() {
        let printer = printer();
        let (fleet, hosts) = fleet(&printer, vec![Behaviour::default(); 2]);
        let run = || -> Result<()> {
            let (mut locked, _) = fleet.lock(&crate::plan::rollback::begin(), vars(2))?;
            locked.giving_up("refused");
            Err(Error::Refused {
                message: "hosts disagree".into(),
                hint: "name the release with --to".into(),
            })
        };
        assert!(matches!(run(), Err(Error::Refused { .. })));
        for host in &hosts {
            assert_eq!(ran(host).last().unwrap(), "release-lock");
        }
        assert!(nobody_locked(&hosts));
    }
}
