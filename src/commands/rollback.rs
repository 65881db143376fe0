//! `shipit rollback`: lock, choose the target on every host, check migrations, prepare
//! everywhere, then switch everywhere — the same runner as a deploy.

use std::time::Instant;

use serde_json::json;

use crate::cli::RollbackArgs;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::migrations::{unapply_plan, unknown_to_target};
use crate::output::{seconds, Printer};
use crate::plan::releases::{parse_inventory, releases};
use crate::plan::rollback::{begin, check, choose, describe_from, prepare, switch};
use crate::plan::step::Cleanup;
use crate::plan::Phase;
use crate::resolve::{BreakLock, Op, Resolved, RunVars};

/// Rolls `args.target` back.
pub(crate) fn run(config: &Config, args: &RollbackArgs, printer: &Printer) -> Result<()> {
    let target = config.target(&args.target)?;
    let resolved = Resolved::new(config, target)?;
    let started = Instant::now();
    printer.keep_log(
        &config.root.join(".shipit").join("logs"),
        &format!("rollback-{}", target.name),
        &format!(
            "shipit rollback --target {} by {} ({} {})",
            target.name,
            resolved.deployer,
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION")
        ),
    );
    let fleet = super::connect(target, &resolved, args.accept_new_host_key, printer)?;
    let hosts = fleet.sessions.len();
    let vars = resolved.fleet_vars(
        Op::Rollback,
        BreakLock::from_flags(args.break_lock, args.force),
        &RunVars::default(),
    );
    let (mut locked, begun) = fleet.lock(&begin(), vars)?;

    // Every host must agree on where to go.
    let inventories: Vec<(String, Vec<_>)> = begun
        .iter()
        .enumerate()
        .map(|(i, run)| (locked.name(i), releases(&run.facts)))
        .collect();
    let (live, to) = choose(&inventories, args.to.as_deref(), &target.name)?;
    let from = describe_from(live);
    locked.set_var("ID", &to.to_string());
    // The log records the revision of the release switched to, as its manifest says.
    let revision = begun
        .iter()
        .flat_map(|run| parse_inventory(&run.facts))
        .find(|listed| listed.release.id == to)
        .and_then(|listed| listed.revision)
        .unwrap_or_default();
    locked.set_var("REVISION", &revision);
    locked.set_var("PROGRAM", &resolved.program(Some(to)));
    printer.info(format!("rolling {} back from {from} to {to}", target.name));

    // Migrations the database has applied that the target does not know.
    let checked = locked.run(&check(), "nothing was changed")?;
    let mut unknown: Vec<String> = Vec::new();
    let mut known: Vec<String> = Vec::new();
    for run in &checked {
        let applied: Vec<String> = run
            .facts
            .keys()
            .filter_map(|k| k.strip_prefix("applied:").map(str::to_string))
            .collect();
        let host_known: Vec<String> = run
            .facts
            .iter()
            .filter(|(k, _)| k.starts_with("known:"))
            .map(|(_, v)| v.clone())
            .collect();
        for m in unknown_to_target(&applied, &host_known) {
            if !unknown.contains(&m) {
                unknown.push(m);
            }
        }
        if known.is_empty() {
            known = host_known;
        }
    }
    let mut unapply = Vec::new();
    if !unknown.is_empty() {
        if args.migrate && live.is_none() {
            locked.giving_up("refused: cannot unapply without the live release");
            return Err(Error::Refused {
                message: format!(
                    "cannot unapply {} before switching to {to}: only the code of the release `current` pointed at knows how, and it is gone",
                    unknown.join(", ")
                ),
                hint: "--force switches anyway, leaving those migrations applied".into(),
            });
        }
        if args.migrate {
            unapply = unapply_plan(&unknown, &known);
            printer.info(format!(
                "unapplying {} with the code of {from}",
                unapply
                    .iter()
                    .map(|u| format!("{} to {}", u.app, u.to))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        } else if args.force {
            printer.warn(format!(
                "switching although release {to} does not know these applied migrations: {}",
                unknown.join(", ")
            ));
        } else {
            locked.giving_up("refused: unknown migrations");
            return Err(Error::Refused {
                message: format!(
                    "refusing to roll back to {to}: the database has migrations it does not know: {}",
                    unknown.join(", ")
                ),
                hint: "--migrate unapplies them first with the current release's code (data in dropped columns or tables is lost); --force switches anyway".into(),
            });
        }
    }

    // Prepare everywhere (unapply once, on the primary), then switch everywhere. Every cleanup
    // on the primary from here on migrates the live schema forward again (a no-op if nothing was
    // unapplied yet), whichever host fails and whenever.
    if !unapply.is_empty() {
        locked.set_var_on(resolved.primary, "UNAPPLIED", "1");
    }
    let outcome = format!("nothing was switched: `current` still points at {from}");
    locked.run_each(
        &|i| prepare(&resolved, &resolved.placements[i], &unapply),
        &outcome,
    )?;
    locked.prepare_then_switch(
        &|_| Phase::new(Vec::new(), Cleanup::Prepare),
        &|i| switch(&resolved, &resolved.placements[i]),
        resolved.batch,
        &outcome,
    )?;
    let fleet = locked.into_fleet();
    printer.result(format!(
        "rolled {} back from {from} to {to} on {hosts} host{} in {}",
        target.name,
        if hosts == 1 { "" } else { "s" },
        seconds(started.elapsed())
    ));
    printer.json_result(&json!({
        "target": target.name,
        "from": live,
        "to": to,
        "unapplied": unapply.iter().map(|u| json!({"app": u.app, "to": u.to})).collect::<Vec<_>>(),
        "forced_past": if args.force { unknown.clone() } else { Vec::new() },
        "hosts": fleet.sessions.iter().map(|s| s.transport.name().to_string()).collect::<Vec<_>>(),
        "seconds": started.elapsed().as_secs_f64(),
    }));
    Ok(())
}
