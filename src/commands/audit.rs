//! `shipit audit`: what was done to a target, from every host's `.shipit/log` merged by time —
//! who deployed, rolled back, pruned or held the lock, which release and revision, how it ended,
//! and with which shipit (its version in the table, version, revision and build day in `--json`).
//! Read-only: no lock is taken.

use serde_json::json;

use crate::cli::AuditArgs;
use crate::config::Config;
use crate::error::Result;
use crate::output::Printer;
use crate::plan::operate::{audit, merge, parse_log, LogEntry};
use crate::resolve::{BreakLock, Op, Resolved, RunVars};

/// Prints the merged deploy log of `args.target`.
pub(crate) fn run(config: &Config, args: &AuditArgs, printer: &Printer) -> Result<()> {
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
    let vars = resolved.vars(Op::Run, BreakLock::No, &RunVars::default());
    let runs = fleet.each(&audit(), &vec![vars; hosts])?;
    let mut entries = merge(
        runs.iter()
            .zip(&names)
            .map(|(run, name)| parse_log(name, &run.facts))
            .collect(),
    );
    if let Some(n) = args.last {
        let skip = entries.len().saturating_sub(n as usize);
        entries.drain(..skip);
    }
    let mut text = String::new();
    if entries.is_empty() {
        text.push_str(&format!("nothing recorded on {}", names.join(", ")));
    } else {
        let host_width = entries
            .iter()
            .map(|e| e.host.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let who_width = entries
            .iter()
            .map(|e| e.who.len())
            .max()
            .unwrap_or(3)
            .max(3);
        let dash = |text: &str| if text.is_empty() { "-" } else { text }.to_string();
        // The version alone: the revision and build day are in the JSON.
        let shipit = |e: &LogEntry| dash(e.shipit.split(' ').next().unwrap_or(""));
        let shipit_width = entries
            .iter()
            .map(|e| shipit(e).len())
            .max()
            .unwrap_or(6)
            .max(6);
        text.push_str(&format!(
            "{:<20}  {:<host_width$}  {:<who_width$}  {:<8}  {:<14}  {:<12}  {:<shipit_width$}  {}\n",
            "TIME", "HOST", "WHO", "ACTION", "RELEASE", "REVISION", "SHIPIT", "OUTCOME"
        ));
        for e in &entries {
            text.push_str(&format!(
                "{:<20}  {:<host_width$}  {:<who_width$}  {:<8}  {:<14}  {:<12}  {:<shipit_width$}  {}\n",
                e.time,
                e.host,
                e.who,
                e.action,
                dash(&e.release),
                dash(e.revision.get(..12).unwrap_or(&e.revision)),
                shipit(e),
                e.outcome
            ));
        }
    }
    printer.result(text.trim_end());
    printer.json_result(&json!({
        "target": target.name,
        "hosts": names,
        "entries": entries,
    }));
    Ok(())
}
