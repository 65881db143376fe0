//! `shipit db`: take, list and restore database snapshots on a target's primary host, where
//! `[targets.T.database] backup = "before-migrate"` keeps them (see `plan::database`).

use serde_json::json;

use crate::cli::{DbAction, DbArgs};
use crate::config::Config;
use crate::error::Result;
use crate::output::Printer;
use crate::plan::database::{backup, list, restore, snapshots};
use crate::remote::facts::key;
use crate::resolve::{AppEnv, BreakLock, Op, Resolved, RunVars};

/// Runs `shipit db ACTION` on the primary of the target.
pub(crate) fn run(config: &Config, args: &DbArgs, printer: &Printer) -> Result<()> {
    let target = config.target(&args.target.name)?;
    let primary = target.only(None, true)?;
    let resolved = Resolved::new(config, &primary)?;
    // pg_dump's errors may quote the connection: the app's secrets are never shown.
    printer.redact(AppEnv::resolve(config, target)?.secrets);
    if let DbAction::Restore { name } = &args.action {
        printer.confirm(&format!(
            "restore snapshot {name} into {}'s database: what was written since it was taken is lost",
            target.name
        ))?;
    }
    let mut fleet = super::connect(
        &primary,
        &resolved,
        args.connection.accept_new_host_key,
        printer,
    )?;
    let host = fleet.names().remove(0);
    let vars = [resolved.vars(Op::Db, BreakLock::No, &RunVars::default())];
    let phase = match &args.action {
        DbAction::Backup => backup(),
        DbAction::List => list(),
        DbAction::Restore { name } => restore(name),
    };
    let run = fleet.each(&phase, &vars)?.remove(0);
    let fact = |k: &str| run.facts.get(k).cloned().unwrap_or_default();
    match &args.action {
        DbAction::Backup => {
            let name = fact(key::SNAPSHOT_TAKEN);
            printer.result(format!("{host}: took snapshot {name}"));
            printer.json_result(&json!({"target": target.name, "host": host, "snapshot": name}));
        }
        DbAction::List => {
            let all = snapshots(&run.facts);
            let text: Vec<String> = all
                .iter()
                .map(|s| {
                    format!(
                        "{}  {}  {}  {} bytes  {} migrations applied",
                        s.name, s.taken, s.engine, s.bytes, s.applied
                    )
                })
                .collect();
            printer.result(if text.is_empty() {
                format!("{host}: no snapshot")
            } else {
                text.join("\n")
            });
            printer.json_result(&json!({"target": target.name, "host": host, "snapshots": all}));
        }
        DbAction::Restore { .. } => {
            let name = fact(key::RESTORED);
            printer.result(format!("{host}: restored snapshot {name}"));
            printer.json_result(&json!({"target": target.name, "host": host, "restored": name}));
        }
    }
    Ok(())
}
