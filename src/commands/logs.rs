//! `shipit logs`: the app logs of every host of a target, merged as they come, each line
//! prefixed with its host; with `-f`, followed until Ctrl-C. Read-only: no lock, nothing
//! written. Where the logs are is the process manager's business (a shell function per manager).

use serde_json::json;

use crate::cli::LogsArgs;
use crate::config::Config;
use crate::error::Result;
use crate::output::Printer;
use crate::plan::script::Script;
use crate::plan::step::{Cleanup, Step};
use crate::resolve::{random_hex, BreakLock, Op, Resolved, RunVars};
use crate::runner::on_all;

/// Prints (and with `-f` follows) the logs of `args.process` on every host of `args.target`.
pub(crate) fn run(config: &Config, args: &LogsArgs, printer: &Printer) -> Result<()> {
    let target = config.target(&args.target.name)?;
    let resolved = Resolved::new(config, target)?;
    if args.follow {
        // Nothing to give back on the way out: the remote side ends with its connection.
        crate::interrupt::quit_at_once();
    }
    let mut fleet = super::connect(
        target,
        &resolved,
        args.connection.accept_new_host_key,
        printer,
    )?;
    let vars = resolved.vars(Op::Deploy, BreakLock::No, &RunVars::default());
    let step = Step::Logs {
        process: args.process.clone(),
        lines: args.lines,
        follow: args.follow,
        grep: args.grep.clone().unwrap_or_default(),
    };
    let runs_it = hosts_running(&resolved, &args.process);
    let runs = on_all(&mut fleet.sessions, |index, session| {
        if !runs_it.get(index).copied().unwrap_or(true) {
            return Ok(None);
        }
        let host = session.transport.name().to_string();
        let script = Script::new(
            random_hex(),
            vars.clone(),
            vec![step.clone()],
            Cleanup::Lock,
        );
        session
            .stream(&script, printer, &mut |line| {
                if printer.json {
                    printer.json_result(&json!({ "host": host, "line": line }));
                } else {
                    printer.result(format!("{host} | {line}"));
                }
            })
            .map(Some)
    });
    for (run, session) in runs.into_iter().zip(&fleet.sessions) {
        let Some(run) = run? else { continue };
        if !run.succeeded() {
            return Err(run.error(session.transport.name(), ""));
        }
    }
    Ok(())
}

/// Which hosts (as in the target's hosts) run `process`, whose logs are there: `web` on web
/// hosts, a process where its role places it, `once` ones and the schedule on the primary. A
/// name no host runs is asked of every host, which then says which processes it has.
fn hosts_running(resolved: &Resolved, process: &str) -> Vec<bool> {
    let runs: Vec<bool> = resolved
        .placements
        .iter()
        .map(|placed| match process {
            crate::config::WEB_ROLE => placed.web,
            name => placed
                .processes
                .iter()
                .chain(&placed.once)
                .any(|(n, _)| n == name),
        })
        .collect();
    match runs.contains(&true) {
        true => runs,
        false => vec![true; runs.len()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Process;
    use crate::resolve::Placement;

    #[test]
    fn a_process_is_read_where_it_runs_and_an_unknown_one_everywhere() {
        let process = |once| Process {
            run: "x".into(),
            role: "worker".into(),
            replicas: 1,
            stop_timeout: 10,
            once,
        };
        let resolved = Resolved {
            placements: vec![
                Placement {
                    web: true,
                    processes: Vec::new(),
                    once: vec![("schedule".into(), process(true))],
                    schedule: Vec::new(),
                },
                Placement {
                    web: false,
                    processes: vec![("worker".into(), process(false))],
                    once: Vec::new(),
                    schedule: Vec::new(),
                },
            ],
            ..crate::resolve::sample()
        };
        assert_eq!(hosts_running(&resolved, "web"), [true, false]);
        assert_eq!(hosts_running(&resolved, "schedule"), [true, false]);
        assert_eq!(hosts_running(&resolved, "worker"), [false, true]);
        assert_eq!(hosts_running(&resolved, "mail"), [true, true]);
    }
}
