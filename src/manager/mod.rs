//! The backends that run a release on a host, behind one set of names: the process manager
//! (supervisor, systemd), the front proxy (nginx) and the app server (gunicorn).
//!
//! Like dokku's scheduler plugins or Kamal's roles, the rest of shipit asks a backend for what
//! it needs (a release's rendered configs, the names its units and programs go by) and never
//! branches on which backend it is. Adding a process manager is one impl module here, its
//! templates and its shell family (`docs/adding-a-manager.md`); no plan step changes.
//!
//! It sits beside `resolve` in the data flow: it reads the config and a host's
//! [`Placement`], and what it renders travels down to the plan as one [`ServiceConfigs`].

pub(crate) mod proxy;
pub(crate) mod server;
pub(crate) mod supervisor;
pub(crate) mod systemd;

use crate::config::{Config, Target};
use crate::error::Result;
use crate::release::ReleaseId;
use crate::resolve::Placement;
use crate::templates::{BuildInfo, RenderContext, Templates};

/// The rendered service configs of one release on one host: what `step_configs` keeps in the
/// release. Each backend fills only its own fields; the order of [`ServiceConfigs::args`] is
/// the shell's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ServiceConfigs {
    /// The front proxy's site ([`proxy::FrontProxy`]).
    pub(crate) nginx: Option<String>,
    /// Supervisor: the web app server and the processes of every release on this host.
    pub(crate) app: Option<String>,
    /// Supervisor: the singletons on this host (the primary), installed at the switch.
    pub(crate) once: Option<String>,
    /// Supervisor: the schedule its scheduler runs (`CRON<TAB>COMMAND` lines), on the primary.
    pub(crate) schedule: Option<String>,
    /// Systemd: the template units and run scripts of the web app server and processes (a
    /// [`systemd::UnitFiles`] bundle).
    pub(crate) units: Option<String>,
    /// Systemd: the units of the singletons on this host (the primary), started at the switch.
    pub(crate) units_once: Option<String>,
    /// Systemd: the schedule's timers, their services and run scripts (on the primary),
    /// started at the switch.
    pub(crate) timers: Option<String>,
}

impl ServiceConfigs {
    /// The configs in the order `step_configs` takes its arguments, `None` for what this host
    /// does not run.
    pub(crate) fn args(&self) -> [Option<&str>; 7] {
        [
            &self.nginx,
            &self.app,
            &self.once,
            &self.schedule,
            &self.units,
            &self.units_once,
            &self.timers,
        ]
        .map(Option::as_deref)
    }
}

/// What a backend renders a release's configs from.
pub(crate) struct Rendering<'a> {
    pub(crate) templates: Templates,
    /// The release's template values, which backends add to as they render.
    pub(crate) context: RenderContext,
    pub(crate) config: &'a Config,
    pub(crate) target: &'a Target,
    /// What this host runs.
    pub(crate) placed: &'a Placement,
}

/// A process manager: runs a release's app server and processes on a host.
pub(crate) trait ProcessManager {
    /// Its name: `manager = "NAME"` in the config, and the shell's `pm_NAME_*` family
    /// (`templates/remote/pm/NAME.sh`).
    fn name(&self) -> &'static str;

    /// Renders its units or programs for the release and placement of `rendering` into its
    /// fields of `configs`.
    fn render(&self, rendering: &mut Rendering<'_>, configs: &mut ServiceConfigs) -> Result<()>;
}

/// Every process manager, in the order `manager = "auto"` tries them on a host (the first
/// whose `pm_NAME_here` says it runs there).
const ALL: &[&dyn ProcessManager] = &[&systemd::Systemd, &supervisor::Supervisor];

/// The names of every process manager, space-separated, in [`ALL`]'s order: the preamble's
/// `MANAGERS`, whose families the shell runs for what any of them may have left on a host.
pub(crate) fn names() -> String {
    ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(" ")
}

/// The process managers whose configs a target's hosts get: `auto` renders both, and the host
/// runs the one it has.
fn managers(manager: crate::config::Manager) -> &'static [&'static dyn ProcessManager] {
    use crate::config::Manager;
    match manager {
        Manager::Supervisor => &[&supervisor::Supervisor],
        Manager::Systemd => &[&systemd::Systemd],
        Manager::Auto => ALL,
    }
}

/// Renders the front proxy's site and the process manager's units or programs of `release` on
/// a host that runs what `placed` says, as `app_user` (the configs a host keeps in the release
/// and installs when preparing or rolling back to it).
pub(crate) fn service_configs(
    config: &Config,
    target: &Target,
    info: &BuildInfo,
    release: ReleaseId,
    app_user: &str,
    placed: &Placement,
) -> Result<ServiceConfigs> {
    let mut context =
        RenderContext::new(config, target, info)?.for_release(config, target, release);
    context.set("app_user", app_user);
    let mut rendering = Rendering {
        templates: Templates::for_project(config),
        context,
        config,
        target,
        placed,
    };
    let mut configs = ServiceConfigs::default();
    if let Some(app) = &target.app {
        for manager in managers(app.manager) {
            manager.render(&mut rendering, &mut configs)?;
        }
    }
    if let Some(proxy) = proxy::FrontProxy::of(target) {
        configs.nginx = proxy.render(&rendering)?;
    }
    Ok(configs)
}
