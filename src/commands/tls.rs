//! `shipit tls status|renew [--force]`: each web host's certificate (the `tls` check of
//! `shipit check`, with the last line of its renewal log), and its renewal run now by the
//! host's own `deploy_to/tls/renew`, the script its timer runs. Thin: the host does the work.

use serde_json::json;

use crate::cli::{TlsAction, TlsArgs};
use crate::config::{Config, TlsMode};
use crate::error::{Error, Result};
use crate::output::Printer;
use crate::plan::check::{host_check, Status};
use crate::plan::step::{Cleanup, Step};
use crate::plan::Phase;
use crate::resolve::{BreakLock, Op, Resolved, RunVars};

/// Shows, or renews then shows, the certificate of every host of `args.target`.
pub(crate) fn run(config: &Config, args: &TlsArgs, printer: &Printer) -> Result<()> {
    let target = config.target(&args.target.name)?;
    let Some(tls) = &target.tls else {
        return Err(Error::usage(format!(
            "target {0} serves no https: it has no [targets.{0}.tls]",
            target.name
        )));
    };
    let renew = args.action == TlsAction::Renew;
    if renew && matches!(tls.mode, TlsMode::Files { .. }) {
        return Err(Error::usage(format!(
            "target {} brings its certificate (tls.certificate): a deploy installs a new one; `renew` is ACME's",
            target.name
        )));
    }
    if args.force && !renew {
        return Err(Error::usage("--force goes with `renew`"));
    }
    let resolved = Resolved::new(config, target)?;
    let mut fleet = super::connect(
        target,
        &resolved,
        args.connection.accept_new_host_key,
        printer,
    )?;
    let vars = resolved.host_vars(Op::Run, BreakLock::No, &RunVars::default());
    let mut steps = Vec::new();
    if renew {
        steps.push(Step::TlsRenew { force: args.force });
    }
    steps.push(Step::TlsStatus);
    let runs = fleet.each(&Phase::new(steps, Cleanup::Lock), &vars)?;
    let mut text = String::new();
    let mut hosts = serde_json::Map::new();
    let mut failed = Vec::new();
    for (run, session) in runs.iter().zip(&fleet.sessions) {
        let name = session.transport.name().to_string();
        let outcome = host_check(&run.facts, &target.name, "tls");
        let last = crate::remote::facts::tls_last(&run.facts);
        let mark = match outcome.status {
            Status::Ok => "✓",
            Status::Fail => "✗",
            Status::Skip => "-",
        };
        text.push_str(&format!("{name}\n  {mark} {}\n", outcome.detail));
        if !last.is_empty() {
            text.push_str(&format!("    last renewal run: {last}\n"));
        }
        if let Some(hint) = &outcome.hint {
            text.push_str(&format!("      hint: {hint}\n"));
            failed.push(format!("{name}: certificate"));
        }
        hosts.insert(name, json!({ "certificate": outcome, "last": last }));
    }
    printer.result(text.trim_end());
    printer.json_result(&json!({ "target": target.name, "ok": failed.is_empty(), "hosts": hosts }));
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::ChecksFailed { failed })
    }
}
