//! `shipit maintenance`: turns maintenance mode on or off on every host of a target. The page
//! (the project's `maintenance.html.j2` or the built-in one) is rendered here; every host first
//! checks its nginx site and puts the page beside where it goes, and only when all of them have
//! does any show it, so the hosts go into maintenance together.

use serde_json::json;

use crate::cli::{MaintenanceArgs, MaintenanceState};
use crate::config::{Config, NotifyEvent};
use crate::error::Result;
use crate::notify::{self, Notice, Notifier, Told};
use crate::output::Printer;
use crate::plan::step::{Cleanup, Step};
use crate::plan::Phase;
use crate::resolve::{BreakLock, Op, Resolved, RunVars};
use crate::templates::{BuildInfo, RenderContext, Templates};

/// The message of the built-in page when `--message` is not given.
const DEFAULT_MESSAGE: &str =
    "We are making some improvements and will be back in a few minutes. Thank you for your patience.";

/// Turns maintenance mode `args.state` on every host of `args.target`, and tells the webhooks
/// how it ended.
pub(crate) fn run(config: &Config, args: &MaintenanceArgs, printer: &Printer) -> Result<()> {
    let started = std::time::Instant::now();
    let mut told = None;
    let changed = change(config, args, printer, &mut told);
    notify::finish(
        told,
        |start| Notice {
            maintenance: Some(args.state == MaintenanceState::On),
            ..start
        },
        started.elapsed(),
        changed.as_ref().err(),
    );
    changed
}

/// Turns maintenance mode `args.state` on every host; `told` gets the webhooks before any host
/// is touched.
fn change(
    config: &Config,
    args: &MaintenanceArgs,
    printer: &Printer,
    told: &mut Told,
) -> Result<()> {
    let target = config.target(&args.target.name)?;
    let resolved = Resolved::new(config, target)?;
    let page = match args.state {
        MaintenanceState::On => {
            let neutral = BuildInfo {
                build_time: String::new(),
                revision: String::new(),
                dirty: false,
            };
            let mut context = RenderContext::new(config, target, &neutral)?;
            context.set(
                "message",
                args.message.as_deref().unwrap_or(DEFAULT_MESSAGE),
            );
            Some(Templates::for_project(config).render("maintenance.html.j2", &context)?)
        }
        MaintenanceState::Off => None,
    };
    let notifier = Notifier::start(config, &resolved, printer);
    *told = Some((notifier, Notice::new(NotifyEvent::Maintenance, &resolved)));
    let mut fleet = super::connect(
        target,
        &resolved,
        args.connection.accept_new_host_key,
        printer,
    )?;
    let hosts = fleet.sessions.len();
    let vars = vec![resolved.vars(Op::Maintenance, BreakLock::No, &RunVars::default()); hosts];
    let phase = |step: Step| Phase::new(vec![step], Cleanup::Lock);
    match page {
        Some(page) => {
            fleet.each(&phase(Step::MaintenancePrepare(page)), &vars)?;
            fleet.each(&phase(Step::MaintenanceOn), &vars)?;
        }
        None => {
            fleet.each(&phase(Step::MaintenanceOff), &vars)?;
        }
    }
    let on = args.state == MaintenanceState::On;
    printer.result(if on {
        format!(
            "maintenance mode on for {} ({hosts} host(s)): nginx answers 503 with the page, except on {}",
            target.name, target.health.path
        )
    } else {
        format!(
            "maintenance mode off for {} ({hosts} host(s))",
            target.name
        )
    });
    printer.json_result(&json!({ "target": target.name, "maintenance": on, "hosts": hosts }));
    Ok(())
}
