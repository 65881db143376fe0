//! The backends that run a release on a host, behind one set of names: the process manager
//! (supervisor, systemd), the front proxy (nginx) and the app server (gunicorn).
//!
//! Like dokku's scheduler plugins or Kamal's roles, the rest of shipit asks a backend for what
//! it needs (a release's rendered configs, the names its units and programs go by) and never
//! branches on which backend it is. Adding a process manager is one impl module here, its
//! templates and its shell family (docs/src/managers.md); no plan step changes.
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

/// The rendered service configs of one release on one host: the files `step_configs` keeps
/// in the release's `.shipit/`, each named by its path there. Each backend adds its own files
/// under its own names; the shell's step writes them all alike and knows none of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ServiceConfigs {
    files: Vec<ConfigFile>,
}

/// One file of [`ServiceConfigs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigFile {
    /// Its path under the release's `.shipit/`.
    pub(crate) path: String,
    /// What it is, for `deploy --dry-run -v`.
    pub(crate) what: &'static str,
    pub(crate) text: String,
}

/// The line that starts each file of a [`ServiceConfigs::bundle`].
pub(crate) const FILE_MARK: &str = "#@shipit-file ";

impl ServiceConfigs {
    /// Adds the file at `path` under the release's `.shipit/`.
    pub(crate) fn add(&mut self, path: impl Into<String>, what: &'static str, text: String) {
        self.files.push(ConfigFile {
            path: path.into(),
            what,
            text,
        });
    }

    /// Every file, in the order the backends added them.
    pub(crate) fn files(&self) -> &[ConfigFile] {
        &self.files
    }

    /// The text of the file at `path`, if a backend rendered it.
    #[cfg(test)]
    pub(crate) fn get(&self, path: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.text.as_str())
    }

    /// Every file as one text, in which a `#@shipit-file PATH` line starts each (what
    /// `step_configs` takes); `None` when there is no file.
    pub(crate) fn bundle(&self) -> Option<String> {
        if self.files.is_empty() {
            return None;
        }
        let mut text = String::new();
        for file in &self.files {
            text.push_str(FILE_MARK);
            text.push_str(&file.path);
            text.push('\n');
            text.push_str(&file.text);
            if !file.text.ends_with('\n') {
                text.push('\n');
            }
        }
        Some(text)
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
        if let Some(site) = proxy.render(&rendering)? {
            configs.add(proxy::SITE, "nginx site", site);
        }
    }
    Ok(configs)
}
