//! The subcommands: thin orchestration, each resolve → build → plan → runner → report.

pub(crate) mod audit;
pub(crate) mod build;
pub(crate) mod check;
pub(crate) mod completions;
pub(crate) mod config;
pub(crate) mod db;
pub(crate) mod deploy;
mod dry_run;
pub(crate) mod image;
pub(crate) mod init;
pub(crate) mod lock;
pub(crate) mod logs;
pub(crate) mod maintenance;
pub(crate) mod man;
pub(crate) mod releases;
pub(crate) mod rollback;
pub(crate) mod run;
pub(crate) mod tls;

use crate::config::{Config, Target};
use crate::error::Result;
use crate::output::Printer;
use crate::resolve::Resolved;
use crate::runner::Fleet;
use crate::session::HostSession;
use crate::transport::Usage;

/// Connects to every host of `target` (in parallel).
fn connect<'p>(
    target: &Target,
    resolved: &Resolved,
    accept_new_host_key: bool,
    printer: &'p Printer,
) -> Result<Fleet<'p>> {
    Ok(Fleet {
        sessions: crate::session::connect(target, accept_new_host_key, printer)?,
        printer,
        primary: resolved.primary,
    })
}

/// Keeps this run's full output in the project's `.shipit/logs` (see `Printer::keep_log`), headed
/// by what ran, for whom, by whom and with which shipit.
fn keep_run_log(config: &Config, verb: &str, resolved: &Resolved, printer: &Printer) {
    printer.keep_log(
        &config.root.join(".shipit").join("logs"),
        &format!("{verb}-{}", resolved.target),
        &format!(
            "shipit {verb} --target {} by {} ({} {})",
            resolved.target,
            resolved.deployer,
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION")
        ),
    );
}

/// What the transports of `sessions` used, summed.
fn usage(sessions: &mut [HostSession]) -> Usage {
    sessions.iter().fold(Usage::default(), |total, s| {
        let u = s.transport.usage();
        Usage {
            connections: total.connections + u.connections,
            channels: total.channels + u.channels,
            bytes_uploaded: total.bytes_uploaded + u.bytes_uploaded,
        }
    })
}
