//! One host, one exec: every stage of a locked run goes on in the script that took the lock.

use super::{lost_lock_or, refused, switch_outcome, warn_begun, Fleet, Preamble, Stage};
use crate::error::{Error, Result};
use crate::plan::script::Script;
use crate::plan::Phase;
use crate::remote::facts;
use crate::resolve::random_hex;
use crate::session::ScriptRun;

impl Fleet<'_> {
    /// One host, one exec: `begin` (which takes the lock), then the stages `then` makes of
    /// what the script reported so far (updating the preamble `vars` with it), each run as the
    /// script asks for it ([`Script::continued`]), so no exec is opened between them; the last
    /// prepares and switches, with a gate between them ([`Script::then`]): Ctrl-C still stops
    /// before the switch. A host that refuses, or an error of `then`, gives the lock back there
    /// and then. (Several hosts go through [`Fleet::lock`] and [`Locked::prepare_then_switch`].)
    pub(super) fn run_through(
        &mut self,
        begin: &Phase,
        mut vars: Preamble,
        then: &mut dyn FnMut(&ScriptRun, &mut Preamble) -> Result<Stage>,
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
                    let (prepare, last) = (one(rest.prepare), one(rest.switch));
                    outcome = Some(rest.outcome);
                    switch = Some(last.clone());
                    script(prepare).then(script(last))
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

/// The one phase of a one-host list.
fn one(phases: Vec<Phase>) -> Phase {
    phases.into_iter().next().expect("one host, one phase")
}
