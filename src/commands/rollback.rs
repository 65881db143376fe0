//! `shipit rollback`: lock, choose the target on every host, check migrations, prepare
//! everywhere, then switch everywhere — the same runner as a deploy. `--dry-run` reads the same
//! facts without the lock and says what would happen.

use std::time::Instant;

use serde_json::json;

use crate::cli::RollbackArgs;
use crate::config::{Config, NotifyEvent};
use crate::error::Result;
use crate::migrations::{decide, Choice, Unapply};
use crate::notify::{self, Notice, Notifier, Told};
use crate::output::{seconds, Printer};
use crate::plan::releases::{parse_inventory, releases};
use crate::plan::rollback::{
    begin, check, choose, describe_from, look, prepare, switch, Destination,
};
use crate::plan::step::{Cleanup, Scope, Step};
use crate::plan::Phase;
use crate::release::ReleaseId;
use crate::remote::facts;
use crate::remote::preamble::Preamble;
use crate::resolve::{BreakLock, Op, Resolved, RunVars};
use crate::runner::{Fleet, Rest, Stage};
use crate::session::ScriptRun;

/// Where a rollback goes, from what begin found on the hosts.
struct Going {
    /// The live release (`None` when `current` points at a release that is gone).
    live: Option<ReleaseId>,
    to: ReleaseId,
    /// The git revision of `to`, for the log.
    revision: String,
    /// How `live` is named in messages.
    from: String,
    /// Per host: it runs `to` already and stays as it is (hosts that disagree).
    stays: Vec<bool>,
}

/// Rolls `args.target` back (with `--dry-run`, says what it would do), and tells the webhooks
/// how it ended (a dry run tells nobody).
pub(crate) fn run(config: &Config, args: &RollbackArgs, printer: &Printer) -> Result<()> {
    let started = Instant::now();
    let mut told = None;
    let rolled = roll_back(config, args, printer, &mut told);
    let (release, revision) = match &rolled {
        Ok(Some((to, revision))) => (Some(to.to_string()), Some(revision.clone())),
        _ => (None, None),
    };
    notify::finish(
        told,
        |start| Notice {
            release,
            revision: revision.filter(|r| !r.is_empty()),
            ..start
        },
        started.elapsed(),
        rolled.as_ref().err(),
    );
    rolled.map(|_| ())
}

/// Rolls `args.target` back: the release switched to and its revision, or `None` for a dry
/// run. `told` gets the webhooks of a rollback that runs.
fn roll_back(
    config: &Config,
    args: &RollbackArgs,
    printer: &Printer,
    told: &mut Told,
) -> Result<Option<(ReleaseId, String)>> {
    let target = config.target(&args.target.name)?;
    let resolved = Resolved::new(config, target)?;
    if !args.dry_run {
        let notifier = Notifier::start(config, &resolved, printer);
        *told = Some((notifier, Notice::new(NotifyEvent::Rollback, &resolved)));
    }
    super::keep_run_log(config, "rollback", &resolved, printer);
    let started = Instant::now();
    let fleet = super::connect(
        target,
        &resolved,
        args.connection.accept_new_host_key,
        printer,
    )?;
    let hosts = fleet.sessions.len();
    let vars = resolved.fleet_vars(
        Op::Rollback,
        BreakLock::from_flags(args.break_lock, args.force),
        &RunVars::default(),
    );
    if args.dry_run {
        return dry_run(fleet, &resolved, args, vars, printer).map(|()| None);
    }
    // Where to go, from what begin found; the migrations the database has applied that the
    // target does not know, from what check found.
    let go = |names: &[String], begun: &[ScriptRun]| -> Result<Going> {
        let (chosen, revision) = destination(names, begun, args, &target.name)?;
        let Destination {
            from: live,
            to,
            stays,
        } = chosen;
        let from = describe_from(live);
        printer.info(format!(
            "rolling {} back from {from} to {to}{}",
            target.name,
            staying(names, &stays, to)
        ));
        Ok(Going {
            live,
            to,
            revision,
            from,
            stays,
        })
    };
    let decide = |checked: &[ScriptRun], going: &Going| -> Result<(Vec<String>, Vec<Unapply>)> {
        let (unknown, unapply) = migrations(checked, args, going.live, going.to)?;
        if !unapply.is_empty() {
            let what = describe(&unapply);
            printer.confirm(&format!(
                "unapply {what} with the code of {} (data in dropped columns or tables is lost)",
                going.from
            ))?;
            printer.info(format!("unapplying {what} with the code of {}", going.from));
        } else if !unknown.is_empty() {
            printer.warn(format!(
                "switching although release {} does not know these applied migrations: {}",
                going.to,
                unknown.join(", ")
            ));
        }
        Ok((unknown, unapply))
    };
    let names = fleet.names();
    let outcome_from = |going: &Going| {
        format!(
            "nothing was switched: `current` still points at {}",
            going.from
        )
    };
    let mut going: Option<Going> = None;
    let mut decided: Option<(Vec<String>, Vec<Unapply>)> = None;
    let (mut fleet, _) =
        fleet.run_stages(&begin(), vars, resolved.batch, &mut |so_far, preambles| {
            let Some(g) = &going else {
                let g = go(&names, so_far)?;
                preambles.set(|v| {
                    v.id = g.to.to_string();
                    v.revision.clone_from(&g.revision);
                    v.program = resolved.program(Some(g.to));
                });
                going = Some(g);
                return Ok(Stage::More {
                    phase: check(),
                    outcome: "nothing was changed".into(),
                });
            };
            let (unknown, unapply) = decide(so_far, g).inspect_err(|_| {
                preambles.giving_up("refused: unknown migrations, or not confirmed")
            })?;
            // Unapply once, on the primary: every cleanup there from here on migrates the live
            // schema forward again (a no-op if nothing was unapplied yet), whichever host fails
            // and whenever.
            if !unapply.is_empty() {
                preambles.set_on(resolved.primary, |v| v.unapplied = "1".into());
            }
            // A host on `to` already prepares nothing and only gives its lock back.
            let rest = Rest {
                prepare: (0..so_far.len())
                    .map(|i| match g.stays[i] {
                        true => Phase::new(Vec::new(), Cleanup::Prepare),
                        false => prepare(&resolved, &resolved.placements[i], &unapply),
                    })
                    .collect(),
                switch: (0..so_far.len())
                    .map(|i| match g.stays[i] {
                        true => Phase::new(vec![Step::Unlock], Cleanup::Lock),
                        false => switch(&resolved, &resolved.placements[i]),
                    })
                    .collect(),
                outcome: outcome_from(g),
            };
            decided = Some((unknown, unapply));
            Ok(Stage::Last(rest))
        })?;
    let going = going.expect("a rollback that ran chose where to go");
    let (unknown, unapply) = decided.expect("a rollback that ran decided on its migrations");
    let Going {
        live,
        to,
        from,
        revision,
        stays,
        ..
    } = going;
    let moved = hosts - stays.iter().filter(|s| **s).count();
    printer.result(format!(
        "rolled {} back from {from} to {to} on {moved} host{}{} in {}",
        target.name,
        if moved == 1 { "" } else { "s" },
        staying(&fleet.names(), &stays, to),
        seconds(started.elapsed())
    ));
    printer.json_result(&json!({
        "target": target.name,
        "from": live,
        "to": to,
        "unapplied": unapply.iter().map(|u| json!({"app": u.app, "to": u.to})).collect::<Vec<_>>(),
        "forced_past": if args.force { unknown.clone() } else { Vec::new() },
        "hosts": fleet.names(),
        "stayed": fleet.names().into_iter().zip(&stays).filter(|(_, s)| **s).map(|(n, _)| n).collect::<Vec<_>>(),
        "seconds": started.elapsed().as_secs_f64(),
        "usage": super::usage(&mut fleet.sessions),
    }));
    Ok(Some((to, revision)))
}

/// `; NAMES ran TO already`, for the hosts that stay, or nothing.
fn staying(names: &[String], stays: &[bool], to: ReleaseId) -> String {
    let staying: Vec<&str> = names
        .iter()
        .zip(stays)
        .filter(|(_, s)| **s)
        .map(|(n, _)| n.as_str())
        .collect();
    if staying.is_empty() {
        String::new()
    } else {
        format!("; {} ran {to} already", staying.join(", "))
    }
}

/// Where every host goes, from the inventories `begun` reported, and the revision of `to`.
fn destination(
    names: &[String],
    begun: &[ScriptRun],
    args: &RollbackArgs,
    target: &str,
) -> Result<(Destination, String)> {
    let inventories: Vec<(String, Vec<_>)> = begun
        .iter()
        .zip(names)
        .map(|(run, name)| (name.clone(), releases(&run.facts)))
        .collect();
    let chosen = choose(&inventories, args.to.as_deref(), target)?;
    let to = chosen.to;
    // The log records the revision of the release switched to, as its manifest says.
    let revision = begun
        .iter()
        .flat_map(|run| parse_inventory(&run.facts))
        .find(|listed| listed.release.id == to)
        .and_then(|listed| listed.revision)
        .unwrap_or_default();
    Ok((chosen, revision))
}

/// What the migrations check found on every host, decided with `--migrate`/`--force`.
fn migrations(
    checked: &[ScriptRun],
    args: &RollbackArgs,
    live: Option<ReleaseId>,
    to: ReleaseId,
) -> Result<(Vec<String>, Vec<Unapply>)> {
    let hosts: Vec<(Vec<String>, Vec<String>)> = checked
        .iter()
        .map(|run| (facts::applied(&run.facts), facts::known(&run.facts)))
        .collect();
    let choice = if args.force {
        Choice::Force
    } else if args.migrate {
        Choice::Migrate
    } else {
        Choice::Refuse
    };
    decide(&hosts, choice, live.is_some(), &to.to_string())
}

fn describe(unapply: &[Unapply]) -> String {
    unapply
        .iter()
        .map(|u| format!("{} to {}", u.app, u.to))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `rollback --dry-run`: the same inventory and migrations check, read without the lock, then
/// where each host would go and the steps it would run. A rollback that would be refused is
/// refused (same message and status), after saying where it would have gone.
fn dry_run(
    mut fleet: Fleet<'_>,
    resolved: &Resolved,
    args: &RollbackArgs,
    vars: Vec<Preamble>,
    printer: &Printer,
) -> Result<()> {
    let names = fleet.names();
    let looked = fleet.each(&look(), &vars)?;
    let (chosen, _) = destination(&names, &looked, args, &resolved.target)?;
    let Destination {
        from: live,
        to,
        stays,
    } = chosen;
    let from = describe_from(live);
    let mut vars = vars;
    for host in &mut vars {
        host.id = to.to_string();
        host.program = resolved.program(Some(to));
    }
    let checked = fleet.each(&check(), &vars)?;
    let planned = migrations(&checked, args, live, to);
    let unapply = planned.as_ref().map(|(_, u)| u.clone()).unwrap_or_default();
    let moving: Vec<&str> = names
        .iter()
        .zip(&stays)
        .filter(|(_, s)| !**s)
        .map(|(n, _)| n.as_str())
        .collect();
    let mut text = format!(
        "dry run: would roll {} back from {from} to {to} on {}{}\n",
        resolved.target,
        moving.join(", "),
        staying(&names, &stays, to)
    );
    match &planned {
        Ok((unknown, _)) if unknown.is_empty() => text.push_str(&format!(
            "migrations: release {to} knows every applied migration\n"
        )),
        Ok((_, unapply)) if !unapply.is_empty() => text.push_str(&format!(
            "migrations: would unapply {} with the code of {from} (asks first; --yes confirms), \
             then start {to} and health-check it, then switch; until the switch {from} serves \
             on the older schema\n",
            describe(unapply)
        )),
        Ok((unknown, _)) => text.push_str(&format!(
            "migrations: would switch past {} (--force)\n",
            unknown.join(", ")
        )),
        Err(_) => text.push_str("migrations: the rollback would be refused (see below)\n"),
    }
    // The steps of the primary (which also runs the once-steps), in the order they run.
    let placed = &resolved.placements[resolved.primary];
    let primary = names.get(resolved.primary).cloned().unwrap_or_default();
    let phases = [
        ("prepare", prepare(resolved, placed, &unapply)),
        (
            "switch (once every host is prepared)",
            switch(resolved, placed),
        ),
    ];
    for (name, phase) in &phases {
        text.push_str(&format!("{name}:\n"));
        for step in &phase.steps {
            let only = if step.scope() == Scope::Once && names.len() > 1 {
                format!("  [on {primary} only; the other hosts wait for it]")
            } else {
                String::new()
            };
            text.push_str(&format!("  - {}{only}\n", step.label()));
        }
    }
    printer.result(text.trim_end());
    printer.json_result(&json!({
        "dry_run": true,
        "target": resolved.target,
        "from": live,
        "to": to,
        "hosts": names,
        "unapply": unapply.iter().map(|u| json!({"app": u.app, "to": u.to})).collect::<Vec<_>>(),
        "refused": planned.is_err(),
        "phases": phases.iter().map(|(name, phase)| json!({
            "phase": name,
            "steps": phase.steps.iter().map(|s| s.id()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    }));
    planned.map(|_| ())
}
