//! `shipit rollback`: lock, choose the target on every host, check migrations, prepare
//! everywhere, then switch everywhere.

use std::time::Instant;

use serde_json::json;

use crate::cli::RollbackArgs;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::migrations::{unapply_plan, unknown_to_target};
use crate::output::{seconds, Printer};
use crate::plan::releases::{locked_inventory, parse_inventory, unlock};
use crate::plan::rollback::RollbackPlan;
use crate::release::{rollback_target, Release, ReleaseId};
use crate::session::{connect, lock_failure, on_all, random_hex, HostSession, ScriptRun};
use crate::templates::BuildInfo;

use super::deploy::{plan_for, provisional_build, services};

/// Rolls `args.target` back.
pub fn run(config: &Config, args: &RollbackArgs, printer: &Printer) -> Result<()> {
    let target = config.target(&args.target)?;
    let started = Instant::now();
    let mut sessions = connect(target, args.accept_new_host_key, printer)?;
    let token = random_hex();
    let placeholder = provisional_build();
    let (nginx, app) = services(config, target, placeholder.release);
    let mut base = plan_for(config, target, &placeholder, "", &token, nginx, app);
    base.break_lock = args.break_lock;

    // 1. lock and inventory everywhere.
    let begun = on_all(&mut sessions, |_, s| {
        s.run(&locked_inventory(&base, &random_hex()), printer)
    });
    let begun = begun.into_iter().collect::<Result<Vec<ScriptRun>>>()?;
    let unlock_all = |sessions: &mut [HostSession]| {
        for (session, run) in sessions.iter_mut().zip(&begun) {
            if run.succeeded() {
                let _ = session.run(&unlock(&base, &random_hex()), printer);
            }
        }
    };
    if let Some(error) = lock_failure(&sessions, &begun) {
        unlock_all(&mut sessions);
        return Err(error);
    }
    if let Some((i, run)) = begun.iter().enumerate().find(|(_, r)| !r.succeeded()) {
        unlock_all(&mut sessions);
        return Err(run.error(sessions[i].transport.name(), "nothing was changed"));
    }

    // 2. every host must agree on where to go.
    let mut chosen: Option<(ReleaseId, ReleaseId)> = None;
    for (i, run) in begun.iter().enumerate() {
        let releases: Vec<Release> = parse_inventory(&run.facts)
            .into_iter()
            .map(|l| l.release)
            .collect();
        let name = sessions[i].transport.name().to_string();
        let to = match rollback_target(&releases, args.to.as_deref()) {
            Ok(to) => to,
            Err(refusal) => {
                unlock_all(&mut sessions);
                return Err(Error::Other {
                    message: format!("{name}: cannot roll back {}: {refusal}", target.name),
                    hint: Some("`shipit releases --target NAME` lists the releases and their states; nothing was changed".into()),
                });
            }
        };
        let from = releases
            .iter()
            .find(|r| r.current)
            .map(|r| r.id)
            .expect("a target implies a current release");
        match chosen {
            Some((f, t)) if (f, t) != (from, to) => {
                unlock_all(&mut sessions);
                return Err(Error::Other {
                    message: format!(
                        "hosts disagree: one would go from {f} to {t}, {name} from {from} to {to}"
                    ),
                    hint: Some("name the release with --to; nothing was changed".into()),
                });
            }
            _ => chosen = Some((from, to)),
        }
    }
    let (from, to) = chosen.expect("at least one host");
    let info = BuildInfo {
        release: to,
        ..placeholder.clone()
    };
    let (nginx, app) = services(config, target, to);
    let mut plan = RollbackPlan {
        base: plan_for(config, target, &info, "", &token, nginx, app),
        unapply: Vec::new(),
    };
    printer.info(format!("rolling {} back from {from} to {to}", target.name));

    // 3. migrations the target does not know.
    let checked = on_all(&mut sessions, |_, s| {
        s.run(&plan.check(&random_hex()), printer)
    });
    let mut unknown = Vec::new();
    let mut known = Vec::new();
    for (i, run) in checked.into_iter().enumerate() {
        let name = sessions[i].transport.name().to_string();
        let run = match run {
            Ok(run) if run.succeeded() => run,
            Ok(run) => {
                unlock_all(&mut sessions);
                return Err(run.error(&name, "nothing was changed"));
            }
            Err(e) => {
                unlock_all(&mut sessions);
                return Err(e);
            }
        };
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
    if !unknown.is_empty() {
        if args.migrate {
            plan.unapply = unapply_plan(&unknown, &known);
            printer.info(format!(
                "unapplying {} with the code of {from}",
                plan.unapply
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
            unlock_all(&mut sessions);
            return Err(Error::Other {
                message: format!(
                    "refusing to roll back to {to}: the database has migrations it does not know: {}",
                    unknown.join(", ")
                ),
                hint: Some(
                    "--migrate unapplies them first with the current release's code (data in dropped columns or tables is lost); --force switches anyway; nothing was changed".into(),
                ),
            });
        }
    }

    // 4. prepare everywhere, then 5. switch everywhere.
    let prepared = on_all(&mut sessions, |_, s| {
        s.run(&plan.prepare(&random_hex()), printer)
    });
    let mut failure = None;
    let mut ready = Vec::new();
    for (i, result) in prepared.into_iter().enumerate() {
        let name = sessions[i].transport.name().to_string();
        match result {
            Ok(run) if run.succeeded() => ready.push(i),
            Ok(run) => {
                failure.get_or_insert_with(|| {
                    run.error(
                        &name,
                        format!("nothing was switched: `current` still points at {from}"),
                    )
                });
            }
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    if let Some(error) = failure {
        for i in ready {
            let _ = sessions[i].run(
                &plan.release_lock(&random_hex(), "another host failed to prepare"),
                printer,
            );
        }
        return Err(error);
    }
    let switched = on_all(&mut sessions, |_, s| {
        s.run(&plan.switch(&random_hex()), printer)
    });
    for (i, result) in switched.into_iter().enumerate() {
        let name = sessions[i].transport.name().to_string();
        match result {
            Ok(run) if run.succeeded() => {}
            Ok(run) => return Err(run.error(&name, format!("this host switched back to {from}"))),
            Err(e) => return Err(e),
        }
    }
    printer.result(format!(
        "rolled {} back from {from} to {to} on {} host{} in {}",
        target.name,
        sessions.len(),
        if sessions.len() == 1 { "" } else { "s" },
        seconds(started.elapsed())
    ));
    printer.json_result(&json!({
        "target": target.name,
        "from": from,
        "to": to,
        "unapplied": plan.unapply.iter().map(|u| json!({"app": u.app, "to": u.to})).collect::<Vec<_>>(),
        "forced_past": if args.force { unknown.clone() } else { Vec::new() },
        "hosts": sessions.iter().map(|s| s.transport.name().to_string()).collect::<Vec<_>>(),
        "seconds": started.elapsed().as_secs_f64(),
    }));
    Ok(())
}
