//! A locked run as stages: a command says what runs after its lock is taken, stage by stage,
//! from what the hosts reported so far; the runner alone decides how that reaches the hosts.
//! One host goes on in the exec that took its lock ([`Fleet::run_through`]): one connection,
//! one exec. A fleet runs each stage in rounds under its held locks and ends in the two-phase
//! commit ([`Locked::prepare_then_switch`]). Either way the command's decisions are the same
//! code, so `deploy` and `rollback` do not branch on the number of hosts.

use super::locked::Locked;
use super::Fleet;
use crate::error::Result;
use crate::plan::Phase;
use crate::remote::preamble::Preamble;
use crate::session::ScriptRun;

/// What a locked run goes on with, decided from what the hosts reported.
pub(crate) enum Stage {
    /// A phase, after which the command decides again; `outcome` says what a failure in it
    /// leaves.
    More { phase: Phase, outcome: String },
    /// The end: prepare, the gate, switch.
    Last(Rest),
}

/// How a locked run ends: host `i` prepares `prepare[i]`, then — once every host is prepared,
/// in batches — switches `switch[i]`.
pub(crate) struct Rest {
    pub(crate) prepare: Vec<Phase>,
    pub(crate) switch: Vec<Phase>,
    /// What a failure before the switch leaves.
    pub(crate) outcome: String,
}

/// The hosts' preambles, as a command's stages update them with what they learn (the release
/// id, a rollback's unapplied migrations), and why the run gives up when a stage refuses.
pub(crate) struct Preambles<'v> {
    vars: &'v mut [Preamble],
    reason: Option<String>,
}

impl Preambles<'_> {
    /// Changes every host's preamble.
    pub(crate) fn set(&mut self, change: impl Fn(&mut Preamble)) {
        self.vars.iter_mut().for_each(change);
    }

    /// Changes host `host`'s preamble.
    pub(crate) fn set_on(&mut self, host: usize, change: impl FnOnce(&mut Preamble)) {
        change(&mut self.vars[host]);
    }

    /// Records why the run gives up, for the error the stage returns next (a fleet's remote log
    /// and unlock lines say it; one host's script gives its lock back in its own cleanup).
    pub(crate) fn giving_up(&mut self, reason: impl Into<String>) {
        self.reason = Some(reason.into());
    }
}

/// A command's stages: called with every host's run of the stage before (begin's first), in
/// target order, it says what runs next.
pub(crate) type Next<'a> = dyn FnMut(&[ScriptRun], &mut Preambles) -> Result<Stage> + 'a;

impl<'p> Fleet<'p> {
    /// Takes every host's lock with `begin`, then runs the stages `next` makes, the last in
    /// batches of `batch` hosts; the fleet (every lock given back) and each host's runs of the
    /// prepare and switch phases (one host: of its one exec). Every way out gives back what
    /// this run still holds.
    pub(crate) fn run_stages(
        mut self,
        begin: &Phase,
        mut vars: Vec<Preamble>,
        batch: Option<u32>,
        next: &mut Next,
    ) -> Result<(Fleet<'p>, Vec<ScriptRun>)> {
        if self.sessions.len() == 1 {
            let vars = vars.pop().expect("one host, one preamble");
            let run = self.run_through(begin, vars, &mut |so_far, vars| {
                let mut preambles = Preambles {
                    vars: std::slice::from_mut(vars),
                    reason: None,
                };
                next(std::slice::from_ref(so_far), &mut preambles)
            })?;
            return Ok((self, vec![run]));
        }
        let (mut locked, mut runs) = self.lock(begin, vars)?;
        loop {
            match decide(&mut locked, &runs, next)? {
                Stage::More { phase, outcome } => runs = locked.run(&phase, &outcome)?,
                Stage::Last(rest) => {
                    let runs = locked.prepare_then_switch(
                        &|i| rest.prepare[i].clone(),
                        &|i| rest.switch[i].clone(),
                        batch,
                        &rest.outcome,
                    )?;
                    return Ok((locked.into_fleet(), runs));
                }
            }
        }
    }
}

/// `next` of the fleet's last runs; a refusal records why the run gives up.
fn decide(locked: &mut Locked<'_>, runs: &[ScriptRun], next: &mut Next) -> Result<Stage> {
    let mut preambles = Preambles {
        vars: locked.preambles(),
        reason: None,
    };
    let stage = next(runs, &mut preambles);
    if let (Err(_), Some(reason)) = (&stage, preambles.reason) {
        locked.giving_up(reason);
    }
    stage
}
