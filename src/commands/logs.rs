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
    let target = config.target(&args.target)?;
    let resolved = Resolved::new(config, target)?;
    if args.follow {
        // Nothing to give back on the way out: the remote side ends with its connection.
        crate::interrupt::quit_at_once();
    }
    let mut fleet = super::connect(target, &resolved, args.accept_new_host_key, printer)?;
    let vars = resolved.vars(Op::Deploy, BreakLock::No, &RunVars::default());
    let step = Step::Logs {
        process: args.process.clone(),
        lines: args.lines,
        follow: args.follow,
        grep: args.grep.clone().unwrap_or_default(),
    };
    let runs = on_all(&mut fleet.sessions, |_, session| {
        let host = session.transport.name().to_string();
        let script = Script::new(
            random_hex(),
            vars.clone(),
            vec![step.clone()],
            Cleanup::Lock,
        );
        session.stream(&script, printer, &mut |line| {
            if printer.json {
                printer.json_result(&json!({ "host": host, "line": line }));
            } else {
                printer.result(format!("{host} | {line}"));
            }
        })
    });
    for (run, session) in runs.into_iter().zip(&fleet.sessions) {
        let run = run?;
        if !run.succeeded() {
            return Err(run.error(session.transport.name(), ""));
        }
    }
    Ok(())
}
