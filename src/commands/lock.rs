//! `shipit lock`: hold a target's deploy lock across sessions (maintenance, a freeze), see who
//! holds it, and give it back. The lock is the one every deploy, rollback and prune takes
//! (`deploy_to/.shipit/lock`); a held one records `held=1` and a message, counts as live until
//! released, and so refuses every run — with the holder and the message — until `release`.

use serde_json::json;

use crate::cli::{LockAction, LockArgs};
use crate::config::Config;
use crate::error::Result;
use crate::output::Printer;
use crate::plan::operate::{lock_acquire, lock_release, lock_status};
use crate::plan::releases::lock_holder;
use crate::remote::facts;
use crate::resolve::{BreakLock, Op, Resolved, RunVars};

/// Runs `shipit lock ACTION` on every host of the target.
pub(crate) fn run(config: &Config, args: &LockArgs, printer: &Printer) -> Result<()> {
    let target = config.target(&args.target.name)?;
    let resolved = Resolved::new(config, target)?;
    let mut fleet = super::connect(
        target,
        &resolved,
        args.connection.accept_new_host_key,
        printer,
    )?;
    let hosts = fleet.sessions.len();
    let names = fleet.names();
    let message = match &args.action {
        LockAction::Acquire { message } => Some(message.clone()),
        _ => None,
    };
    let vars = resolved.vars(
        Op::Lock,
        BreakLock::No,
        &RunVars {
            lock_message: message.clone(),
            ..RunVars::default()
        },
    );
    let vars = vec![vars; hosts];
    match &args.action {
        LockAction::Status => {
            let runs = fleet.each(&lock_status(), &vars)?;
            let mut text = String::new();
            let mut rows = Vec::new();
            for (name, run) in names.iter().zip(&runs) {
                if facts::unlocked(&run.facts) {
                    text.push_str(&format!("{name}: unlocked\n"));
                    rows.push(json!({"host": name, "locked": false}));
                    continue;
                }
                let holder = lock_holder(&run.facts);
                let state = if holder.held {
                    "held with `shipit lock acquire`"
                } else if holder.live {
                    "held by a running deploy, rollback or prune"
                } else {
                    "left by a run that is gone (--break-lock removes it)"
                };
                text.push_str(&format!("{name}: locked {}: {state}\n", holder.who));
                rows.push(json!({
                    "host": name,
                    "locked": true,
                    "holder": holder.who,
                    "live": holder.live,
                    "held": holder.held,
                }));
            }
            printer.result(text.trim_end());
            printer.json_result(&json!({"target": target.name, "hosts": rows}));
        }
        LockAction::Acquire { message } => {
            // All or none: when a host refuses, the locks taken on the others are given back.
            let (locked, _) = fleet.lock(&lock_acquire(), vars)?;
            locked.keep_locks();
            printer.result(format!(
                "locked {} on {hosts} host{}: {message}\nevery deploy, rollback and prune is refused until `shipit lock -t {} release`",
                target.name,
                if hosts == 1 { "" } else { "s" },
                target.name
            ));
            printer.json_result(&json!({
                "target": target.name,
                "hosts": names,
                "locked": true,
                "message": message,
            }));
        }
        LockAction::Release => {
            let runs = fleet.each(&lock_release(), &vars)?;
            let mut text = String::new();
            let mut rows = Vec::new();
            for (name, run) in names.iter().zip(&runs) {
                match facts::released(&run.facts) {
                    Some(holder) => {
                        text.push_str(&format!("{name}: released the lock held {holder}\n"));
                        rows.push(json!({"host": name, "released": holder}));
                    }
                    None => {
                        text.push_str(&format!("{name}: was not locked\n"));
                        rows.push(json!({"host": name, "released": null}));
                    }
                }
            }
            printer.result(text.trim_end());
            printer.json_result(&json!({"target": target.name, "hosts": rows}));
        }
    }
    Ok(())
}
