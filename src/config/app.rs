//! The `[targets.T.app]`, `[targets.T.supervisor]` and `[targets.T.systemd]` tables: which process
//! manager runs the app and how it is driven.

use super::*;

/// Where supervisor program configs go and how supervisor is driven.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Supervisor {
    /// Directory supervisord includes program configs from.
    #[serde(default = "default_supervisor_conf_dir")]
    pub conf_dir: String,
    /// `supervisorctl` command prefix, e.g. `sudo supervisorctl -c /etc/supervisor/supervisord.conf`.
    #[serde(default = "default_supervisorctl")]
    pub ctl: String,
}

/// The process manager of a target: which one, and how each is driven. A host with `auto`
/// uses systemd when systemd runs it (`/run/systemd/system` exists), supervisor otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    /// `[targets.T.app] manager`.
    pub manager: Manager,
    /// `[targets.T.supervisor]`, or its defaults.
    pub supervisor: Supervisor,
    /// `[targets.T.systemd]`, or its defaults.
    pub systemd: Systemd,
}

/// `[targets.T.app] manager`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Manager {
    Supervisor,
    Systemd,
    Auto,
}

impl Manager {
    /// The name the config and the remote shell use.
    pub fn name(self) -> &'static str {
        match self {
            Manager::Supervisor => "supervisor",
            Manager::Systemd => "systemd",
            Manager::Auto => "auto",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApp {
    manager: Manager,
}

/// Which systemd instance runs the units, and how it is driven.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Systemd {
    /// `system`: system units, run as the app user, driven through `ctl` (by default
    /// `sudo -n systemctl`: the sudo rule the book spells out, docs/src/process-managers.md). `user`: the deploy user's own
    /// units (`systemctl --user`), which outlive its sessions only with `loginctl enable-linger`.
    #[serde(default)]
    pub scope: SystemdScope,
    /// The `systemctl` command prefix; the scope's default when unset.
    #[serde(default)]
    pub ctl: Option<String>,
    /// The `journalctl` command prefix (`shipit logs`); the scope's default when unset.
    #[serde(default)]
    pub journal: Option<String>,
    /// Local services the units start after and want (`postgresql`, `redis-server`): after a
    /// reboot the app does not start before its database.
    #[serde(default)]
    pub requires: Vec<String>,
    /// systemd's sandboxing for system units (NoNewPrivileges, PrivateTmp unless deploy_to is
    /// under /tmp, ProtectSystem=strict with deploy_to writable, ProtectHome=read-only); `None`:
    /// on.
    #[serde(default)]
    pub hardening: Option<bool>,
}

impl Systemd {
    /// Whether the units are sandboxed: on by default, for system units only (a user manager
    /// cannot set up most of it).
    pub fn hardened(&self) -> bool {
        self.scope == SystemdScope::System && self.hardening.unwrap_or(true)
    }

    /// `requires` as unit names (`postgresql` → `postgresql.service`).
    pub fn required_units(&self) -> Vec<String> {
        self.requires
            .iter()
            .map(|s| {
                if s.contains('.') {
                    s.clone()
                } else {
                    format!("{s}.service")
                }
            })
            .collect()
    }

    /// The `systemctl` command prefix.
    pub fn ctl(&self) -> String {
        self.ctl
            .clone()
            .unwrap_or_else(|| DEFAULT_SYSTEMCTL[self.scope as usize].into())
    }

    /// The `journalctl` command prefix.
    pub fn journal(&self) -> String {
        self.journal
            .clone()
            .unwrap_or_else(|| DEFAULT_JOURNALCTL[self.scope as usize].into())
    }
}

/// `[targets.T.systemd] scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SystemdScope {
    #[default]
    System = 0,
    User = 1,
}

impl SystemdScope {
    /// The name the config and the remote shell use.
    pub fn name(self) -> &'static str {
        match self {
            SystemdScope::System => "system",
            SystemdScope::User => "user",
        }
    }
}

/// `[targets.T.supervisor] conf_dir` when unset.
pub(crate) const DEFAULT_SUPERVISOR_CONF_DIR: &str = "/etc/supervisor/conf.d";
/// `[targets.T.supervisor] ctl` when unset.
pub(crate) const DEFAULT_SUPERVISORCTL: &str = "supervisorctl";
/// `[targets.T.systemd] ctl` and `journal` when unset, by scope: system, then user.
pub(crate) const DEFAULT_SYSTEMCTL: [&str; 2] = ["sudo -n systemctl", "systemctl --user"];
pub(crate) const DEFAULT_JOURNALCTL: [&str; 2] = ["journalctl", "journalctl --user"];

fn default_supervisorctl() -> String {
    DEFAULT_SUPERVISORCTL.into()
}
fn default_supervisor_conf_dir() -> String {
    DEFAULT_SUPERVISOR_CONF_DIR.into()
}

impl Default for Supervisor {
    fn default() -> Supervisor {
        Supervisor {
            conf_dir: default_supervisor_conf_dir(),
            ctl: default_supervisorctl(),
        }
    }
}

/// Which process manager a target uses: `[targets.T.app] manager` when set (the chosen
/// manager's table may be left out: its defaults apply), else the one whose table is given.
/// A table for a manager the target does not use is an error rather than silently ignored.
pub(super) fn resolve_app(
    source: &Source,
    target: &str,
    app: Option<Spanned<RawApp>>,
    supervisor: Option<Supervisor>,
    systemd: Option<Spanned<Systemd>>,
) -> Result<Option<App>> {
    let key = |k: &str| key_for(target, k);
    if let Some(s) = &systemd {
        for service in &s.get_ref().requires {
            let name = service.strip_suffix(".service").unwrap_or(service);
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.@:".contains(c))
            {
                return Err(source.error(
                    s.span(),
                    key("systemd.requires"),
                    format!("`{service}` is not a systemd unit name (e.g. `postgresql`, `redis-server.service`)"),
                ));
            }
        }
        for (name, value) in [("ctl", &s.get_ref().ctl), ("journal", &s.get_ref().journal)] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(source.error(
                    s.span(),
                    key(&format!("systemd.{name}")),
                    "must not be empty (leave it out for the scope's default)",
                ));
            }
        }
    }
    let manager = match (&app, &supervisor, &systemd) {
        (Some(app), _, _) => app.get_ref().manager,
        (None, Some(_), None) => Manager::Supervisor,
        (None, None, Some(_)) => Manager::Systemd,
        (None, Some(_), Some(s)) => {
            return Err(source.error(
                s.span(),
                key("app.manager"),
                "both [supervisor] and [systemd] are set: say which runs the app with [targets.T.app] manager = \"supervisor\", \"systemd\" or \"auto\"",
            ))
        }
        (None, None, None) => return Ok(None),
    };
    if let (Manager::Supervisor, Some(s)) = (manager, &systemd) {
        return Err(source.error(
            s.span(),
            key("systemd"),
            "the app's manager is supervisor: drop [systemd] or set manager = \"systemd\" or \"auto\"",
        ));
    }
    if let (Manager::Systemd, Some(_), Some(app)) = (manager, &supervisor, &app) {
        return Err(source.error(
            app.span(),
            key("supervisor"),
            "the app's manager is systemd: drop [supervisor] or set manager = \"supervisor\" or \"auto\"",
        ));
    }
    Ok(Some(App {
        manager,
        supervisor: supervisor.unwrap_or_default(),
        systemd: systemd.map(Spanned::into_inner).unwrap_or_default(),
    }))
}

/// Validates `[targets.T.supervisor]`: `conf_dir` absolute and plain enough for its config.
pub(super) fn validate_supervisor(
    source: &Source,
    target: &str,
    s: Spanned<Supervisor>,
) -> Result<Supervisor> {
    let key = key_for(target, "supervisor.conf_dir");
    if !s.get_ref().conf_dir.starts_with('/') {
        return Err(source.error(s.span(), key, "must be an absolute path"));
    }
    safe_service_path(&s.get_ref().conf_dir).map_err(|why| source.error(s.span(), key, why))?;
    Ok(s.into_inner())
}
