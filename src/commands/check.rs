//! `shipit check`: a read-only doctor for a target. Per host, one script (no lock, nothing
//! written) reports each check; here they are printed ✓/✗ with a hint, beside the checks made on
//! this machine (secrets resolvable, SSH reachable and trusted). Exit 0 only when all pass.

use serde_json::json;

use crate::cli::CheckArgs;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::output::Printer;
use crate::plan::check::{check, outcomes, Outcome, Status};
use crate::resolve::{AppEnv, BreakLock, Op, Resolved, RunVars};
use crate::runner::Fleet;

/// Checks every host of `args.target`.
pub(crate) fn run(config: &Config, args: &CheckArgs, printer: &Printer) -> Result<()> {
    let target = config.target(&args.target.name)?;
    let resolved = Resolved::new(config, target)?;

    let secrets = match AppEnv::resolve(config, target) {
        Ok(env) => {
            printer.redact(env.secrets.iter().cloned());
            Outcome::new(
                "secrets",
                "secrets resolvable",
                Status::Ok,
                format!("{} secret(s) resolved on this machine", env.secrets.len()),
                "",
            )
        }
        Err(e) => Outcome::new(
            "secrets",
            "secrets resolvable",
            Status::Fail,
            e.to_string(),
            "set the variable, create the file or fix the command the secret names",
        ),
    };
    let local = vec![secrets];

    // Each host on its own: one that cannot be reached is a failed check, not the end.
    let mut hosts: Vec<(String, Vec<Outcome>)> = Vec::new();
    let mut sessions = Vec::new();
    let mut reached = Vec::new();
    for (name, session) in
        crate::session::connect_each(target, args.connection.accept_new_host_key, printer)
    {
        let ssh = match session {
            Ok(session) => {
                reached.push(hosts.len());
                sessions.push(session);
                Outcome::new(
                    "ssh",
                    "ssh",
                    Status::Ok,
                    "reached, authenticated, host key verified".into(),
                    "",
                )
            }
            Err(e) => Outcome::new(
                "ssh",
                "ssh",
                Status::Fail,
                e.to_string(),
                &e.hint()
                    .unwrap_or_else(|| "check the host, its port and `ssh HOST` from here".into()),
            ),
        };
        hosts.push((name, vec![ssh]));
    }
    if !sessions.is_empty() {
        let mut fleet = Fleet {
            sessions,
            printer,
            primary: 0,
        };
        let all = resolved.host_vars(Op::Deploy, BreakLock::No, &RunVars::default());
        let vars: Vec<_> = reached.iter().map(|at| all[*at].clone()).collect();
        let runs = fleet.each(&check(&resolved.shared_files), &vars)?;
        for ((at, run), session) in reached.iter().zip(runs).zip(&fleet.sessions) {
            hosts[*at].0 = session.transport.name().to_string();
            hosts[*at].1.extend(outcomes(&run.facts, &target.name));
        }
    }

    let mut failed = Vec::new();
    let mut text = String::new();
    let mut section = |name: &str, list: &[Outcome]| {
        text.push_str(&format!("{name}\n"));
        for o in list {
            let mark = match o.status {
                Status::Ok => "✓",
                Status::Fail => "✗",
                Status::Skip => "-",
            };
            text.push_str(&format!("  {mark} {:<26} {}\n", o.label, o.detail));
            if let Some(hint) = &o.hint {
                text.push_str(&format!("      hint: {hint}\n"));
                failed.push(format!("{name}: {}", o.label));
            }
        }
    };
    section("this machine", &local);
    for (name, list) in &hosts {
        section(name, list);
    }
    printer.result(text.trim_end());
    printer.json_result(&json!({
        "target": target.name,
        "ok": failed.is_empty(),
        "local": local,
        "hosts": hosts.iter().map(|(n, l)| (n.clone(), json!(l))).collect::<serde_json::Map<_, _>>(),
    }));
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::ChecksFailed { failed })
    }
}
