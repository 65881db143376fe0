//! `shipit.toml`: the model of a project and its deploy targets.
//!
//! Parsing happens in two steps, as in ripgrep's `LowArgs`/`HiArgs`: serde reads the file into
//! `Raw*` structs that keep the source span of every value we may complain about, then
//! [`Config::load`] validates and resolves them into plain types. Every validation error names the
//! file, the line and the dotted key, because "invalid config" on its own wastes an operator's
//! night.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result};

/// The configuration file name looked up in the project directory.
pub const CONFIG_FILE: &str = "shipit.toml";

/// Names the templates see that a target's `vars` must not shadow.
pub const RESERVED_VARS: &[&str] = &[
    "project",
    "target",
    "environment",
    "release",
    "build_time",
    "revision",
    "dirty",
    "deploy_to",
    "release_dir",
    "settings_module",
    "wsgi_app",
    "program",
    "vars",
];

/// A loaded and validated `shipit.toml`.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// The Django project root (the directory holding `shipit.toml` unless configured).
    pub root: PathBuf,
    /// The `[project]` table.
    pub project: Project,
    /// Targets by name, sorted.
    pub targets: BTreeMap<String, Target>,
    /// The `[image]` table (`shipit image`).
    pub image: ImageSettings,
    /// `[aliases]`: short names for commands `shipit run` and `shipit console` run (e.g.
    /// `dbshell = "./manage.py dbshell"`).
    pub aliases: BTreeMap<String, String>,
}

/// The `[image]` table: what `shipit image` builds on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageSettings {
    /// The base image: an OCI layout, `[oci:]DIR[:REF]` (relative to the project root).
    pub base: Option<String>,
    /// The base's Python, an absolute path ending in `pythonX.Y`.
    pub python: Option<String>,
    /// The port the app server listens on inside the container.
    pub port: Option<u16>,
}

/// The `[project]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    /// Short name used for service and file names.
    pub name: String,
    /// Python interpreter on the hosts used to create virtualenvs.
    pub python: String,
    /// `DJANGO_SETTINGS_MODULE` on the hosts (a template: may use `{{ environment }}`).
    pub settings_module: String,
    /// WSGI application for gunicorn, e.g. `hello.wsgi:application`.
    pub wsgi_app: String,
    /// Path of `manage.py` inside the project.
    pub manage_py: String,
    /// deploy.map path, relative to the root.
    pub deploy_map: PathBuf,
    /// Directory of template overrides, relative to the root.
    pub templates_dir: PathBuf,
    /// Requirements file per environment; environments not listed use `requirements/<env>.txt`.
    pub requirements: BTreeMap<String, String>,
    /// Extra exclude patterns (gitignore syntax).
    pub exclude: Vec<String>,
    /// Paths that are archived even though they look like secrets (gitignore syntax).
    pub include: Vec<String>,
    /// Commands run locally in the project, in order, before the archive is built.
    pub build: Vec<String>,
    /// Files or directories the build commands make (git-untracked) that go into the archive.
    pub artifacts: Vec<String>,
}

impl Project {
    /// The pip-compiled requirements file used for `environment`.
    pub fn requirements_for(&self, environment: &str) -> String {
        self.requirements
            .get(environment)
            .cloned()
            .unwrap_or_else(|| format!("requirements/{environment}.txt"))
    }
}

/// How commands reach a target's hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// OpenSSH-compatible SSH (the default).
    Ssh,
    /// Run on this machine, without SSH.
    Local,
}

/// How the virtualenv is populated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Installer {
    /// `uv` when the host has it, else pip.
    Auto,
    /// Always `uv venv` + `uv pip sync`.
    Uv,
    /// Always `python -m venv` + pip.
    Pip,
}

impl fmt::Display for Installer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Installer::Auto => "auto",
            Installer::Uv => "uv",
            Installer::Pip => "pip",
        })
    }
}

/// Where a secret's value comes from, on the machine that deploys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum SecretSource {
    /// An environment variable of the deploying shell.
    Env(String),
    /// A file (`~` and project-relative paths allowed); one trailing newline is dropped.
    File(String),
    /// A command run with `sh -c` (e.g. `pass show hello/secret-key`); its stdout, one trailing
    /// newline dropped.
    Command(String),
}

/// Where `migrate` runs on a target with several hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MigrateOn {
    /// On the primary host only, under the database's advisory lock: the hosts share one
    /// database (PostgreSQL, MySQL), the production shape.
    Once,
    /// On every host: each host has its own database (SQLite in a shared directory).
    EachHost,
}

/// One `[targets.NAME]` table, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The target's name, e.g. `production`.
    pub name: String,
    /// Hosts to deploy to.
    pub hosts: Vec<HostSpec>,
    /// Absolute directory on each host that holds releases, shared files and `current`.
    pub deploy_to: String,
    /// Environment name, e.g. `deployment` or `staging`.
    pub environment: String,
    /// Good releases kept after a deploy.
    pub keep_releases: u32,
    /// Directories kept across releases, linked into each one.
    pub shared_dirs: Vec<String>,
    /// Files kept across releases, linked into each one.
    pub shared_files: Vec<String>,
    /// Key file for SSH authentication.
    pub identity_file: Option<PathBuf>,
    /// Extra known_hosts file trusted besides `~/.ssh/known_hosts`.
    pub known_hosts: Option<PathBuf>,
    /// `jump`: the jump hosts every host is reached through, replacing `~/.ssh/config`'s
    /// ProxyJump (`Some(vec![])`: `"none"`, connect directly); `None`: as ssh config says.
    pub jump: Option<Vec<HostSpec>>,
    /// SSH or local.
    pub transport: TransportKind,
    /// How the venv is populated.
    pub installer: Installer,
    /// Free-form template variables.
    pub vars: BTreeMap<String, toml::Value>,
    /// Environment of the app (every `manage.py` step, hook and app process): plain values.
    pub env: BTreeMap<String, String>,
    /// Environment values resolved on the deploying machine at deploy time, never shown.
    pub secrets: BTreeMap<String, SecretSource>,
    /// Account the app server runs as; `None`: the deploy user.
    pub app_user: Option<String>,
    /// Whether the app server may run as root.
    pub allow_root: bool,
    /// Hook commands.
    pub hooks: Hooks,
    /// Index in `hosts` of the host that runs once-steps (`migrate`, `once` hooks).
    pub primary: usize,
    /// Where `migrate` runs: once, on the primary (one shared database), or on each host.
    pub migrate: MigrateOn,
    /// Hosts switched at a time (each batch is health-checked before the next); `None`: all.
    pub batch: Option<u32>,
    /// nginx site management; `None` leaves nginx alone.
    pub nginx: Option<Nginx>,
    /// The process manager that runs the app server and processes (`[targets.T.app]`,
    /// `[targets.T.supervisor]`, `[targets.T.systemd]`); `None` leaves the app server alone.
    pub app: Option<App>,
    /// How a new release's app server is checked before and after the switch.
    pub health: Health,
    /// Processes besides the web app server (`[targets.T.processes]`), by name.
    pub processes: BTreeMap<String, Process>,
    /// Hosts (indices in `hosts`) by role (`[targets.T.roles]`); a host listed under no role
    /// carries every role.
    pub roles: BTreeMap<String, Vec<usize>>,
    /// Scheduled commands (`[targets.T.schedule]`), one entry per schedule in the order of
    /// their keys: five numeric cron fields and the commands run in order, on the primary in
    /// `current`.
    pub schedule: Vec<(String, Vec<String>)>,
}

impl Target {
    /// Whether host `host` (an index in `hosts`) carries `role`: it is listed under it, or
    /// under no role at all.
    pub fn carries(&self, host: usize, role: &str) -> bool {
        let listed = |hosts: &Vec<usize>| hosts.contains(&host);
        if !self.roles.values().any(listed) {
            return true;
        }
        self.roles.get(role).is_some_and(listed)
    }

    /// The hosts `--hosts` and `--roles` name (indices in `hosts`, in order): every host named,
    /// and every host carrying a role named; all hosts when neither names any.
    pub fn select(&self, hosts: &[String], roles: &[String]) -> Result<Vec<usize>> {
        if hosts.is_empty() && roles.is_empty() {
            return Ok((0..self.hosts.len().max(1)).collect());
        }
        if self.transport == TransportKind::Local {
            return Err(Error::usage(format!(
                "target {} runs on this machine; --hosts and --roles choose among ssh hosts",
                self.name
            )));
        }
        let mut chosen = vec![false; self.hosts.len()];
        for text in hosts {
            let wanted = HostSpec::parse(text).map_err(Error::usage)?;
            let found = self
                .hosts
                .iter()
                .position(|h| *h == wanted)
                .or_else(|| self.hosts.iter().position(|h| h.same_machine(&wanted)));
            match found {
                Some(i) => chosen[i] = true,
                None => {
                    return Err(Error::Usage {
                        message: format!("`{text}` is not a host of target {}", self.name),
                        hint: Some(format!(
                            "its hosts: {}",
                            self.hosts
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    })
                }
            }
        }
        for role in roles {
            let known = role == WEB_ROLE
                || self.roles.contains_key(role)
                || self.processes.values().any(|p| p.role == *role);
            if !known {
                return Err(Error::Usage {
                    message: format!("target {} has no role `{role}`", self.name),
                    hint: Some(
                        "roles are `web`, the keys of [targets.T.roles] and the processes' roles"
                            .into(),
                    ),
                });
            }
            for (i, slot) in chosen.iter_mut().enumerate() {
                *slot |= self.carries(i, role);
            }
        }
        Ok((0..self.hosts.len()).filter(|i| chosen[*i]).collect())
    }

    /// This target reduced to the hosts `selected` (indices in `hosts`, as [`Target::select`]
    /// gives them): roles follow their hosts; the primary stays the primary when selected,
    /// else the first selected host runs once-steps (`migrate`) and no `once` process starts
    /// (the primary keeps running its own).
    pub fn subset(&self, selected: &[usize]) -> Target {
        if selected.len() == self.hosts.len().max(1) {
            return self.clone();
        }
        let mut sub = self.clone();
        sub.hosts = selected.iter().map(|&i| self.hosts[i].clone()).collect();
        sub.roles = self
            .roles
            .iter()
            .map(|(role, hosts)| {
                let kept = selected
                    .iter()
                    .enumerate()
                    .filter(|(_, old)| hosts.contains(old))
                    .map(|(new, _)| new)
                    .collect();
                (role.clone(), kept)
            })
            .collect();
        match selected.iter().position(|&i| i == self.primary) {
            Some(new) => sub.primary = new,
            None => {
                sub.primary = 0;
                sub.processes.retain(|_, p| !p.once);
            }
        }
        sub
    }
}

/// The role of the web app server and nginx.
pub const WEB_ROLE: &str = "web";

/// The process that runs `[targets.T.schedule]` on the primary; no process may take its name.
pub const SCHEDULER: &str = "schedule";

/// The role a process runs on when it names none.
pub const DEFAULT_PROCESS_ROLE: &str = "worker";

/// One `[targets.T.processes]` entry: a long-running command of each release besides the web
/// app server (a Celery worker, beat), run by the process manager in the release with its venv
/// and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// The command, exec'd by `sh` in the release after its environment is loaded.
    pub run: String,
    /// Hosts of this role run it (ignored with `once`).
    pub role: String,
    /// Copies per host.
    pub replicas: u32,
    /// Seconds a stopping process has to finish (then it is killed).
    pub stop_timeout: u32,
    /// One instance across the target, on the primary, handed over at the switch.
    pub once: bool,
}

/// A schedule entry's commands: one, or several run in order at the same times.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawSchedule {
    One(String),
    Several(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawProcess {
    Command(String),
    Table(RawProcessTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProcessTable {
    run: String,
    role: Option<String>,
    #[serde(default = "default_replicas")]
    replicas: i64,
    #[serde(default = "default_stop_timeout")]
    stop_timeout: i64,
    #[serde(default)]
    once: bool,
}

fn default_replicas() -> i64 {
    1
}
fn default_stop_timeout() -> i64 {
    30
}

/// The health check of a release's app server, through its own unix socket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Path requested.
    #[serde(default = "default_health_path")]
    pub path: String,
    /// Status expected; `None` accepts any status below 500.
    #[serde(default)]
    pub status: Option<u16>,
    /// `Host` header sent (must be in Django's ALLOWED_HOSTS).
    #[serde(default = "default_health_host")]
    pub host: String,
    /// Seconds a new app server has to answer before the deploy fails.
    #[serde(default = "default_health_timeout")]
    pub timeout: u32,
    /// Attempts, one second apart, after the switch before it is reverted.
    #[serde(default = "default_health_retries")]
    pub retries: u32,
}

impl Default for Health {
    fn default() -> Health {
        Health {
            path: default_health_path(),
            status: None,
            host: default_health_host(),
            timeout: default_health_timeout(),
            retries: default_health_retries(),
        }
    }
}

fn default_health_path() -> String {
    "/".into()
}
fn default_health_host() -> String {
    "localhost".into()
}
fn default_health_timeout() -> u32 {
    30
}
fn default_health_retries() -> u32 {
    3
}

/// Hook commands run inside the new release directory: on each host, or with `once = true`
/// only on the target's primary host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// Before `migrate`.
    #[serde(default)]
    pub before_migrate: Vec<Hook>,
    /// After `migrate` (and `collectstatic`), before the switch.
    #[serde(default)]
    pub after_migrate: Vec<Hook>,
    /// After `current` has been switched and services reloaded.
    #[serde(default)]
    pub after_switch: Vec<Hook>,
}

/// One hook: a command (`"./manage.py compilemessages"`) or a table
/// (`{ run = "./manage.py createcachetable", once = true }`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Hook {
    /// Runs on every host.
    Command(String),
    /// `once = true` runs it on the primary host only.
    Table {
        /// The shell command.
        run: String,
        /// Run on the primary host only.
        #[serde(default)]
        once: bool,
    },
}

impl Hook {
    /// The shell command.
    pub fn command(&self) -> &str {
        match self {
            Hook::Command(run) | Hook::Table { run, .. } => run,
        }
    }

    /// Whether it runs on the primary host only.
    pub fn once(&self) -> bool {
        matches!(self, Hook::Table { once: true, .. })
    }
}

/// Where the nginx site goes and how nginx is checked and reloaded.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nginx {
    /// Absolute path the rendered site is installed at, e.g. `/etc/nginx/sites-enabled/hello.conf`.
    pub site: String,
    /// Command that checks the whole nginx configuration.
    #[serde(default = "default_nginx_test")]
    pub test: String,
    /// Command that reloads nginx.
    #[serde(default = "default_nginx_reload")]
    pub reload: String,
}

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
struct RawApp {
    manager: Manager,
}

/// Which systemd instance runs the units, and how it is driven.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Systemd {
    /// `system`: system units, run as the app user, driven through `ctl` (by default
    /// `sudo -n systemctl`: the sudo rule the README spells out). `user`: the deploy user's own
    /// units (`systemctl --user`), which outlive its sessions only with `loginctl enable-linger`.
    #[serde(default)]
    pub scope: SystemdScope,
    /// The `systemctl` command prefix; the scope's default when unset.
    #[serde(default)]
    pub ctl: Option<String>,
    /// The `journalctl` command prefix (`shipit logs`); the scope's default when unset.
    #[serde(default)]
    pub journal: Option<String>,
}

impl Default for Systemd {
    fn default() -> Systemd {
        Systemd {
            scope: SystemdScope::System,
            ctl: None,
            journal: None,
        }
    }
}

impl Systemd {
    /// The `systemctl` command prefix.
    pub fn ctl(&self) -> String {
        self.ctl.clone().unwrap_or_else(|| match self.scope {
            SystemdScope::System => "sudo -n systemctl".into(),
            SystemdScope::User => "systemctl --user".into(),
        })
    }

    /// The `journalctl` command prefix.
    pub fn journal(&self) -> String {
        self.journal.clone().unwrap_or_else(|| match self.scope {
            SystemdScope::System => "journalctl".into(),
            SystemdScope::User => "journalctl --user".into(),
        })
    }
}

/// `[targets.T.systemd] scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SystemdScope {
    #[default]
    System,
    User,
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

fn default_nginx_test() -> String {
    "nginx -t".into()
}
fn default_nginx_reload() -> String {
    "nginx -s reload".into()
}
fn default_supervisorctl() -> String {
    "supervisorctl".into()
}
fn default_supervisor_conf_dir() -> String {
    "/etc/supervisor/conf.d".into()
}

impl Default for Supervisor {
    fn default() -> Supervisor {
        Supervisor {
            conf_dir: default_supervisor_conf_dir(),
            ctl: default_supervisorctl(),
        }
    }
}

/// A host as written in `hosts`: `[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// Login user, when given.
    pub user: Option<String>,
    /// Host name, address or `~/.ssh/config` alias.
    pub host: String,
    /// Port, when given.
    pub port: Option<u16>,
}

impl HostSpec {
    /// Parses `[user@]host[:port]`, with `[v6addr]:port` for IPv6.
    pub fn parse(text: &str) -> std::result::Result<HostSpec, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty host".into());
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("host `{text}` contains whitespace"));
        }
        let (user, rest) = match text.rsplit_once('@') {
            Some((user, rest)) if !user.is_empty() => (Some(user.to_string()), rest),
            Some(_) => return Err(format!("host `{text}` has an empty user")),
            None => (None, text),
        };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (addr, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("host `{text}` has an unclosed `[`"))?;
            match after.strip_prefix(':') {
                Some(port) => (addr.to_string(), Some(port)),
                None if after.is_empty() => (addr.to_string(), None),
                None => return Err(format!("host `{text}` is not `[address]:port`")),
            }
        } else {
            match rest.split_once(':') {
                Some((host, port)) => (host.to_string(), Some(port)),
                None => (rest.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(format!("host `{text}` has no host name"));
        }
        // `ssh -G` is given the host and user as arguments: never let one read as an option.
        if host.starts_with('-') || user.as_deref().is_some_and(|u| u.starts_with('-')) {
            return Err(format!(
                "host `{text}` starts with `-`; host names and users never do"
            ));
        }
        let port = match port {
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("host `{text}` has an invalid port `{p}`"))?,
            ),
            None => None,
        };
        Ok(HostSpec { user, host, port })
    }
}

/// Parses a ProxyJump value (or shipit.toml's `jump`): `none`, or comma-separated
/// `[user@]host[:port]` / `ssh://[user@]host[:port]`.
pub(crate) fn parse_jumps(value: &str) -> std::result::Result<Vec<HostSpec>, String> {
    if value.trim().eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    value
        .split(',')
        .map(|hop| {
            let hop = hop.trim();
            HostSpec::parse(hop.strip_prefix("ssh://").unwrap_or(hop))
        })
        .collect()
}

impl HostSpec {
    /// Whether `self` and `other` reach the same sshd: the same host name (any case) and port
    /// (none is 22), whatever the user. Two such entries share one `deploy_to` and its lock.
    pub fn same_machine(&self, other: &HostSpec) -> bool {
        self.host.eq_ignore_ascii_case(&other.host)
            && self.port.unwrap_or(22) == other.port.unwrap_or(22)
    }
}

impl fmt::Display for HostSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    project: Spanned<RawProject>,
    #[serde(default)]
    targets: BTreeMap<Spanned<String>, Spanned<RawTarget>>,
    #[serde(default)]
    image: RawImage,
    #[serde(default)]
    aliases: BTreeMap<Spanned<String>, Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawImage {
    base: Option<String>,
    python: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProject {
    name: Spanned<String>,
    #[serde(default = "default_python")]
    python: String,
    settings_module: Option<String>,
    wsgi_app: Option<String>,
    #[serde(default = "default_manage_py")]
    manage_py: Spanned<String>,
    #[serde(default = "default_deploy_map")]
    deploy_map: Spanned<String>,
    #[serde(default = "default_templates_dir")]
    templates_dir: Spanned<String>,
    #[serde(default)]
    requirements: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    build: Vec<Spanned<String>>,
    #[serde(default)]
    artifacts: Vec<Spanned<String>>,
}

fn default_python() -> String {
    "python3".into()
}
fn default_manage_py() -> Spanned<String> {
    Spanned::new(0..0, "manage.py".into())
}
fn default_deploy_map() -> Spanned<String> {
    Spanned::new(0..0, "conf/deploy.map".into())
}
fn default_templates_dir() -> Spanned<String> {
    Spanned::new(0..0, "conf/templates".into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    #[serde(default = "no_hosts")]
    hosts: Spanned<Vec<Spanned<String>>>,
    deploy_to: Spanned<String>,
    environment: Spanned<String>,
    #[serde(default = "default_keep")]
    keep_releases: Spanned<i64>,
    #[serde(default)]
    shared_dirs: Vec<Spanned<String>>,
    #[serde(default)]
    shared_files: Vec<Spanned<String>>,
    identity_file: Option<String>,
    known_hosts: Option<String>,
    jump: Option<Spanned<String>>,
    #[serde(default = "default_transport")]
    transport: TransportKind,
    #[serde(default = "default_installer")]
    installer: Installer,
    #[serde(default)]
    vars: BTreeMap<Spanned<String>, toml::Value>,
    #[serde(default)]
    env: BTreeMap<Spanned<String>, String>,
    #[serde(default)]
    secrets: BTreeMap<Spanned<String>, SecretSource>,
    app_user: Option<Spanned<String>>,
    #[serde(default)]
    allow_root: bool,
    #[serde(default)]
    hooks: Hooks,
    primary: Option<Spanned<String>>,
    #[serde(default = "default_migrate")]
    migrate: MigrateOn,
    batch: Option<Spanned<i64>>,
    nginx: Option<Spanned<Nginx>>,
    app: Option<Spanned<RawApp>>,
    supervisor: Option<Spanned<Supervisor>>,
    systemd: Option<Spanned<Systemd>>,
    health: Option<Spanned<Health>>,
    #[serde(default)]
    processes: BTreeMap<Spanned<String>, Spanned<RawProcess>>,
    #[serde(default)]
    schedule: BTreeMap<Spanned<String>, RawSchedule>,
    #[serde(default)]
    roles: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
}

/// Letters, digits and `_`, not starting with a digit: template variable and environment
/// variable names alike.
fn is_alias_name(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn is_identifier(text: &str) -> bool {
    text.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn default_migrate() -> MigrateOn {
    MigrateOn::Once
}
fn no_hosts() -> Spanned<Vec<Spanned<String>>> {
    Spanned::new(0..0, Vec::new())
}
fn default_keep() -> Spanned<i64> {
    Spanned::new(0..0, 5)
}
fn default_transport() -> TransportKind {
    TransportKind::Ssh
}
fn default_installer() -> Installer {
    Installer::Auto
}

/// Reports errors against one source file, turning byte spans into line numbers.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn line(&self, span: Range<usize>) -> Option<usize> {
        if span == (0..0) {
            return None;
        }
        let end = span.start.min(self.text.len());
        Some(self.text[..end].matches('\n').count() + 1)
    }

    fn error(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Error {
        Error::Config {
            path: self.path.to_path_buf(),
            line: self.line(span),
            key: Some(key.into()),
            message: message.into(),
        }
    }
}

impl Config {
    /// Finds the configuration: `explicit` if given, else `shipit.toml` in `dir`.
    pub fn locate(dir: &Path, explicit: Option<&Path>) -> PathBuf {
        explicit.map_or_else(|| dir.join(CONFIG_FILE), Path::to_path_buf)
    }

    /// Reads, parses and validates the configuration at `path` for the project in `project`
    /// (`-C DIR`); without one, the configuration file's directory is the project.
    pub fn load(path: &Path, project: Option<&Path>) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Config {
                path: path.to_path_buf(),
                line: None,
                key: None,
                message: "no such file".into(),
            },
            _ => Error::io("read", path, e),
        })?;
        let root = project
            .or_else(|| path.parent())
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Config::parse(path, &root, &text)
    }

    /// Parses and validates configuration text read from `path`, for a project at `root`.
    pub fn parse(path: &Path, root: &Path, text: &str) -> Result<Config> {
        let source = Source { path, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            line: e.span().and_then(|s| source.line(s)),
            key: None,
            message: e.message().trim().to_string(),
        })?;
        let project = validate_project(&source, raw.project)?;
        let mut targets = BTreeMap::new();
        for (name, target) in raw.targets {
            let mut resolved = validate_target(&source, name.get_ref(), name.span(), target)?;
            // Relative key and known_hosts paths belong to the project, wherever shipit runs.
            for path in [&mut resolved.identity_file, &mut resolved.known_hosts]
                .into_iter()
                .flatten()
            {
                if path.is_relative() {
                    *path = root.join(&*path);
                }
            }
            targets.insert(name.into_inner(), resolved);
        }
        let image = validate_image(&source, raw.image)?;
        let mut aliases = BTreeMap::new();
        for (name, command) in raw.aliases {
            if !is_alias_name(name.get_ref()) {
                return Err(source.error(
                    name.span(),
                    format!("aliases.{}", name.get_ref()),
                    "an alias name is letters, digits, `_` and `-`, starting with a letter",
                ));
            }
            if command.get_ref().trim().is_empty() {
                return Err(source.error(
                    command.span(),
                    format!("aliases.{}", name.get_ref()),
                    "an alias needs a command",
                ));
            }
            aliases.insert(name.into_inner(), command.into_inner());
        }
        Ok(Config {
            path: path.to_path_buf(),
            root: root.to_path_buf(),
            project,
            targets,
            image,
            aliases,
        })
    }

    /// The target called `name`, or an error listing the known ones.
    pub fn target(&self, name: &str) -> Result<&Target> {
        self.targets.get(name).ok_or_else(|| Error::UnknownTarget {
            name: name.to_string(),
            known: self.targets.keys().cloned().collect(),
        })
    }

    /// The target named by `name`, or the only target when `name` is `None`.
    pub fn target_or_only(&self, name: Option<&str>) -> Result<&Target> {
        match name {
            Some(name) => self.target(name),
            None if self.targets.len() == 1 => {
                Ok(self.targets.values().next().expect("one target"))
            }
            None => Err(Error::Usage {
                message: format!(
                    "{} defines {} targets; choose one with --target",
                    self.path.display(),
                    self.targets.len()
                ),
                hint: (!self.targets.is_empty()).then(|| {
                    format!(
                        "known targets: {}",
                        self.targets.keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                }),
            }),
        }
    }
}

fn validate_project(source: &Source, raw: Spanned<RawProject>) -> Result<Project> {
    let raw = raw.into_inner();
    let name = raw.name.get_ref();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(source.error(
            raw.name.span(),
            "project.name",
            format!("`{name}` must be letters, digits, `_` or `-` (it names services and files)"),
        ));
    }
    let module = name.replace('-', "_");
    for (key, value) in [
        ("project.manage_py", &raw.manage_py),
        ("project.deploy_map", &raw.deploy_map),
        ("project.templates_dir", &raw.templates_dir),
    ] {
        relative_path(value.get_ref()).map_err(|why| source.error(value.span(), key, why))?;
    }
    for command in &raw.build {
        if command.get_ref().trim().is_empty() {
            return Err(source.error(command.span(), "project.build", "a build command is empty"));
        }
    }
    for artifact in &raw.artifacts {
        crate::build::policy::archive_path(artifact.get_ref())
            .and_then(|path| {
                if crate::build::policy::is_reserved(&path) {
                    Err(format!("`{path}` is inside .shipit, which shipit reserves"))
                } else {
                    Ok(path)
                }
            })
            .map_err(|why| source.error(artifact.span(), "project.artifacts", why))?;
    }
    let mut requirements = BTreeMap::new();
    for (env, path) in raw.requirements {
        relative_path(path.get_ref())
            .map_err(|why| source.error(path.span(), format!("project.requirements.{env}"), why))?;
        requirements.insert(env, path.into_inner());
    }
    Ok(Project {
        settings_module: raw
            .settings_module
            .unwrap_or_else(|| format!("{module}.settings.selected")),
        wsgi_app: raw
            .wsgi_app
            .unwrap_or_else(|| format!("{module}.wsgi:application")),
        name: raw.name.into_inner(),
        python: raw.python,
        manage_py: raw.manage_py.into_inner(),
        deploy_map: PathBuf::from(raw.deploy_map.into_inner()),
        templates_dir: PathBuf::from(raw.templates_dir.into_inner()),
        requirements,
        exclude: raw.exclude,
        include: raw.include,
        build: raw.build.into_iter().map(Spanned::into_inner).collect(),
        artifacts: raw.artifacts.into_iter().map(Spanned::into_inner).collect(),
    })
}

fn validate_image(source: &Source, raw: RawImage) -> Result<ImageSettings> {
    if let Some(python) = &raw.python {
        crate::image::BasePython::parse(python.get_ref())
            .map_err(|why| source.error(python.span(), "image.python", why))?;
    }
    let port = match raw.port {
        Some(port) => Some(
            u16::try_from(*port.get_ref())
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| source.error(port.span(), "image.port", "must be 1..65535"))?,
        ),
        None => None,
    };
    Ok(ImageSettings {
        base: raw.base,
        python: raw.python.map(Spanned::into_inner),
        port,
    })
}

fn validate_target(
    source: &Source,
    name: &str,
    name_span: Range<usize>,
    raw: Spanned<RawTarget>,
) -> Result<Target> {
    let key = |k: &str| format!("targets.{name}.{k}");
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(source.error(
            name_span,
            format!("targets.{name}"),
            "target names are letters, digits, `_` or `-`",
        ));
    }
    let target_span = raw.span();
    let raw = raw.into_inner();

    let mut hosts: Vec<HostSpec> = Vec::new();
    for host in raw.hosts.get_ref() {
        let spec = HostSpec::parse(host.get_ref())
            .map_err(|why| source.error(host.span(), key("hosts"), why))?;
        if let Some(earlier) = hosts.iter().find(|h| h.same_machine(&spec)) {
            return Err(source.error(
                host.span(),
                key("hosts"),
                format!(
                    "`{spec}` is listed twice (also as `{earlier}`): one run would lock itself out of the host; list each host once"
                ),
            ));
        }
        hosts.push(spec);
    }
    match raw.transport {
        TransportKind::Ssh if hosts.is_empty() => {
            let span = if raw.hosts.span() == (0..0) {
                target_span
            } else {
                raw.hosts.span()
            };
            return Err(source.error(
                span,
                key("hosts"),
                "an ssh target needs at least one host, e.g. hosts = [\"deploy@example.com\"]",
            ));
        }
        TransportKind::Local if !hosts.is_empty() => {
            return Err(source.error(
                raw.hosts.span(),
                key("hosts"),
                "a local target runs on this machine and takes no hosts",
            ));
        }
        _ => {}
    }
    let jump = match &raw.jump {
        None => None,
        Some(_) if raw.transport == TransportKind::Local => {
            return Err(source.error(
                raw.jump.as_ref().map_or(0..0, Spanned::span),
                key("jump"),
                "a local target runs on this machine and takes no jump host",
            ))
        }
        Some(value) => Some(
            parse_jumps(value.get_ref())
                .map_err(|why| source.error(value.span(), key("jump"), why))?,
        ),
    };

    let deploy_to = raw.deploy_to.get_ref();
    if !deploy_to.starts_with('/') {
        return Err(source.error(
            raw.deploy_to.span(),
            key("deploy_to"),
            format!("`{deploy_to}` must be an absolute path"),
        ));
    }
    safe_service_path(deploy_to)
        .map_err(|why| source.error(raw.deploy_to.span(), key("deploy_to"), why))?;
    let environment = raw.environment.get_ref();
    if environment.is_empty()
        || !environment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(source.error(
            raw.environment.span(),
            key("environment"),
            format!("`{environment}` must be letters, digits, `_` or `-`"),
        ));
    }
    let keep = *raw.keep_releases.get_ref();
    if !(1..=1000).contains(&keep) {
        return Err(source.error(
            raw.keep_releases.span(),
            key("keep_releases"),
            format!("must be between 1 and 1000, not {keep}"),
        ));
    }
    let primary = match &raw.primary {
        None => 0,
        Some(p) => {
            let wanted = HostSpec::parse(p.get_ref())
                .map_err(|why| source.error(p.span(), key("primary"), why))?;
            hosts.iter().position(|h| *h == wanted).ok_or_else(|| {
                source.error(
                    p.span(),
                    key("primary"),
                    format!("`{}` is not one of the target's hosts", p.get_ref()),
                )
            })?
        }
    };
    let batch = match &raw.batch {
        None => None,
        Some(b) if *b.get_ref() >= 1 && *b.get_ref() <= 1000 => Some(*b.get_ref() as u32),
        Some(b) => {
            return Err(source.error(
                b.span(),
                key("batch"),
                format!("must be between 1 and 1000 hosts, not {}", b.get_ref()),
            ))
        }
    };
    // Shared paths are linked into every release: each names one path of its own inside the
    // release, never the release itself, shipit's own files, or another shared path.
    let mut shared_seen: Vec<(String, &str)> = Vec::new();
    let mut shared = |list: Vec<Spanned<String>>, k: &'static str| -> Result<Vec<String>> {
        let mut paths = Vec::new();
        for p in list {
            let bad = |why: String| source.error(p.span(), key(k), why);
            let path = shared_path(p.get_ref()).map_err(bad)?;
            if let Some((other, other_key)) = shared_seen.iter().find(|(other, _)| {
                path == *other
                    || path.starts_with(&format!("{other}/"))
                    || other.starts_with(&format!("{path}/"))
            }) {
                let how = if path == *other {
                    "is already shared".to_string()
                } else if path.starts_with(other.as_str()) {
                    format!("is inside `{other}`, already shared")
                } else {
                    format!("contains `{other}`, already shared")
                };
                return Err(bad(format!(
                    "`{path}` {how} (in {}); each shared path must stand on its own",
                    key(other_key)
                )));
            }
            shared_seen.push((path.clone(), k));
            paths.push(path);
        }
        Ok(paths)
    };
    let shared_dirs = shared(raw.shared_dirs, "shared_dirs")?;
    let shared_files = shared(raw.shared_files, "shared_files")?;

    let env_name = |name: &Spanned<String>, table: &str| -> Result<String> {
        let text = name.get_ref();
        if !is_identifier(text) {
            return Err(source.error(
                name.span(),
                key(&format!("{table}.{text}")),
                "environment variable names are letters, digits and `_`, not starting with a digit",
            ));
        }
        Ok(text.clone())
    };
    let mut env = BTreeMap::new();
    for (name, value) in raw.env {
        env.insert(env_name(&name, "env")?, value);
    }
    let mut secrets = BTreeMap::new();
    for (name, from) in raw.secrets {
        let text = env_name(&name, "secrets")?;
        if env.contains_key(&text) {
            return Err(source.error(
                name.span(),
                key(&format!("secrets.{text}")),
                format!("`{text}` is also in env; a name is either a plain value or a secret"),
            ));
        }
        secrets.insert(text, from);
    }
    let app_user = match raw.app_user {
        Some(user) => {
            let text = user.get_ref();
            if text.is_empty()
                || !text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
            {
                return Err(source.error(
                    user.span(),
                    key("app_user"),
                    format!("`{text}` is not an account name"),
                ));
            }
            if text == "root" && !raw.allow_root {
                return Err(source.error(
                    user.span(),
                    key("app_user"),
                    "the app server would run as root; use an unprivileged account, or set allow_root = true if you really mean it",
                ));
            }
            Some(user.into_inner())
        }
        None => None,
    };

    let mut vars = BTreeMap::new();
    for (var, value) in raw.vars {
        if !is_identifier(var.get_ref()) {
            return Err(source.error(
                var.span(),
                key(&format!("vars.{}", var.get_ref())),
                "variable names are letters, digits and `_`, not starting with a digit",
            ));
        }
        if RESERVED_VARS.contains(&var.get_ref().as_str()) {
            return Err(source.error(
                var.span(),
                key(&format!("vars.{}", var.get_ref())),
                format!(
                    "`{}` is set by shipit for every template; choose another name",
                    var.get_ref()
                ),
            ));
        }
        vars.insert(var.into_inner(), value);
    }
    let nginx = match raw.nginx {
        Some(n) => {
            if !n.get_ref().site.starts_with('/') {
                return Err(source.error(n.span(), key("nginx.site"), "must be an absolute path"));
            }
            safe_service_path(&n.get_ref().site)
                .map_err(|why| source.error(n.span(), key("nginx.site"), why))?;
            Some(n.into_inner())
        }
        None => None,
    };
    let supervisor = match raw.supervisor {
        Some(s) => {
            if !s.get_ref().conf_dir.starts_with('/') {
                return Err(source.error(
                    s.span(),
                    key("supervisor.conf_dir"),
                    "must be an absolute path",
                ));
            }
            safe_service_path(&s.get_ref().conf_dir)
                .map_err(|why| source.error(s.span(), key("supervisor.conf_dir"), why))?;
            Some(s.into_inner())
        }
        None => None,
    };
    let app = resolve_app(source, name, raw.app, supervisor, raw.systemd)?;
    let health = match raw.health {
        Some(h) => {
            let span = h.span();
            let h = h.into_inner();
            let bad = |key: &str, why: &str| source.error(span.clone(), key_for(name, key), why);
            if !h.path.starts_with('/')
                || h.path.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(bad(
                    "health.path",
                    "must start with `/` and contain no spaces",
                ));
            }
            if h.host.is_empty() || h.host.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(bad("health.host", "must be a host name without spaces"));
            }
            if h.status.is_some_and(|s| !(100..=599).contains(&s)) {
                return Err(bad(
                    "health.status",
                    "must be an HTTP status between 100 and 599",
                ));
            }
            if !(1..=600).contains(&h.timeout) {
                return Err(bad("health.timeout", "must be between 1 and 600 seconds"));
            }
            if !(1..=100).contains(&h.retries) {
                return Err(bad("health.retries", "must be between 1 and 100"));
            }
            h
        }
        None => Health::default(),
    };
    let processes = validate_processes(source, name, raw.processes)?;
    let mut schedule = Vec::new();
    for (when, commands) in raw.schedule {
        let entry_key = key(&format!("schedule.\"{}\"", when.get_ref()));
        let spec = cron_fields(when.get_ref())
            .map_err(|why| source.error(when.span(), entry_key.clone(), why))?;
        let commands = match commands {
            RawSchedule::One(command) => vec![command],
            RawSchedule::Several(commands) => commands,
        };
        if commands.is_empty()
            || commands
                .iter()
                .any(|c| c.trim().is_empty() || c.chars().any(|c| c.is_control()))
        {
            return Err(source.error(
                when.span(),
                entry_key,
                "each command must be one non-empty line",
            ));
        }
        schedule.push((spec, commands));
    }
    let mut roles = BTreeMap::new();
    for (role, listed) in raw.roles {
        let role_key = key(&format!("roles.{}", role.get_ref()));
        if !is_name(role.get_ref()) {
            return Err(source.error(
                role.span(),
                role_key,
                "role names are letters, digits, `_` or `-`",
            ));
        }
        let mut indices = Vec::new();
        for host in listed {
            let wanted = HostSpec::parse(host.get_ref())
                .map_err(|why| source.error(host.span(), role_key.clone(), why))?;
            let index = hosts.iter().position(|h| *h == wanted).ok_or_else(|| {
                source.error(
                    host.span(),
                    role_key.clone(),
                    format!("`{}` is not one of the target's hosts", host.get_ref()),
                )
            })?;
            indices.push(index);
        }
        roles.insert(role.into_inner(), indices);
    }
    Ok(Target {
        health,
        processes,
        roles,
        schedule,
        name: name.to_string(),
        hosts,
        deploy_to: match deploy_to.trim_end_matches('/') {
            "" => "/".to_string(),
            trimmed => trimmed.to_string(),
        },
        environment: raw.environment.into_inner(),
        keep_releases: keep as u32,
        shared_dirs,
        shared_files,
        identity_file: raw.identity_file.map(|p| expand_home(&p)),
        known_hosts: raw.known_hosts.map(|p| expand_home(&p)),
        jump,
        transport: raw.transport,
        installer: raw.installer,
        vars,
        hooks: raw.hooks,
        env,
        secrets,
        app_user,
        allow_root: raw.allow_root,
        primary,
        migrate: raw.migrate,
        batch,
        nginx,
        app,
    })
}

/// Which process manager a target uses: `[targets.T.app] manager` when set (the chosen
/// manager's table may be left out: its defaults apply), else the one whose table is given.
/// A table for a manager the target does not use is an error rather than silently ignored.
fn resolve_app(
    source: &Source,
    target: &str,
    app: Option<Spanned<RawApp>>,
    supervisor: Option<Supervisor>,
    systemd: Option<Spanned<Systemd>>,
) -> Result<Option<App>> {
    let key = |k: &str| key_for(target, k);
    if let Some(s) = &systemd {
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

/// Letters, digits, `_` and `-`: names that become parts of file and program names.
fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn validate_processes(
    source: &Source,
    target: &str,
    raw: BTreeMap<Spanned<String>, Spanned<RawProcess>>,
) -> Result<BTreeMap<String, Process>> {
    let mut processes = BTreeMap::new();
    for (name, entry) in raw {
        let key = key_for(target, &format!("processes.{}", name.get_ref()));
        let span = entry.span();
        let bad = |why: String| source.error(span.clone(), key.clone(), why);
        if !is_name(name.get_ref()) {
            return Err(source.error(
                name.span(),
                key,
                "process names are letters, digits, `_` or `-` (they name programs and units)",
            ));
        }
        if name.get_ref() == SCHEDULER {
            return Err(source.error(
                name.span(),
                key,
                "`schedule` is the process that runs [targets.T.schedule]; name the process otherwise",
            ));
        }
        if name.get_ref() == WEB_ROLE {
            return Err(source.error(
                name.span(),
                key,
                "`web` is the app server shipit runs itself; name the process otherwise",
            ));
        }
        let table = match entry.into_inner() {
            RawProcess::Command(run) => RawProcessTable {
                run,
                role: None,
                replicas: default_replicas(),
                stop_timeout: default_stop_timeout(),
                once: false,
            },
            RawProcess::Table(table) => table,
        };
        if table.run.trim().is_empty() || table.run.chars().any(|c| c.is_control()) {
            return Err(bad(
                "`run` must be one non-empty line (a command the process manager execs)".into(),
            ));
        }
        let role = table
            .role
            .unwrap_or_else(|| DEFAULT_PROCESS_ROLE.to_string());
        if !is_name(&role) {
            return Err(bad(format!(
                "role `{role}`: role names are letters, digits, `_` or `-`"
            )));
        }
        if !(1..=64).contains(&table.replicas) {
            return Err(bad(format!(
                "replicas must be between 1 and 64, not {}",
                table.replicas
            )));
        }
        if table.once && table.replicas != 1 {
            return Err(bad(
                "a `once` process runs as one instance across the target; drop replicas".into(),
            ));
        }
        if !(1..=86_400).contains(&table.stop_timeout) {
            return Err(bad(format!(
                "stop_timeout must be between 1 and 86400 seconds, not {}",
                table.stop_timeout
            )));
        }
        processes.insert(
            name.into_inner(),
            Process {
                run: table.run,
                role,
                replicas: table.replicas as u32,
                stop_timeout: table.stop_timeout as u32,
                once: table.once,
            },
        );
    }
    Ok(processes)
}

/// A cron schedule as five fields (minute, hour, day of month, month, day of week), each a
/// comma-separated list of `*`, `N` or `N-M`, optionally `/STEP`, months and days of the week
/// also by their English names' first three letters (`jan`, `mon-fri`); `@hourly`, `@daily`
/// (`@midnight`), `@weekly`, `@monthly` and `@yearly` (`@annually`) stand for theirs. Returns
/// the five fields, single-spaced, names as numbers.
fn cron_fields(text: &str) -> std::result::Result<String, String> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    // `name` as its number (months from 1, days from 0), anything else as it is.
    let numbered = |field: &str, names: &[&str], first: usize| -> String {
        let mut out = String::new();
        let mut word = String::new();
        for c in field.chars().chain(std::iter::once(',')) {
            if c.is_ascii_alphabetic() {
                word.push(c);
                continue;
            }
            match names.iter().position(|n| n.eq_ignore_ascii_case(&word)) {
                Some(index) => out.push_str(&(index + first).to_string()),
                None => out.push_str(&word),
            }
            word.clear();
            out.push(c);
        }
        out.pop();
        out
    };
    let text = match text.trim() {
        "@hourly" => "0 * * * *",
        "@daily" | "@midnight" => "0 0 * * *",
        "@weekly" => "0 0 * * 0",
        "@monthly" => "0 0 1 * *",
        "@yearly" | "@annually" => "0 0 1 1 *",
        other => other,
    };
    let mut fields: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    if fields.len() == 5 {
        fields[3] = numbered(&fields[3], &MONTHS, 1);
        fields[4] = numbered(&fields[4], &DAYS, 0);
    }
    if fields.len() != 5 {
        return Err(format!(
            "`{text}` is not a schedule: five fields (minute hour day-of-month month day-of-week) or @hourly, @daily, @weekly, @monthly, @yearly"
        ));
    }
    let ranges = [
        ("minute", 0, 59),
        ("hour", 0, 23),
        ("day of month", 1, 31),
        ("month", 1, 12),
        ("day of week", 0, 7),
    ];
    for (field, (what, low, high)) in fields.iter().zip(ranges) {
        for part in field.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((range, step)) => (range, Some(step)),
                None => (part, None),
            };
            let number = |n: &str| -> std::result::Result<u32, String> {
                n.parse::<u32>()
                    .ok()
                    .filter(|n| (low..=high).contains(n))
                    .ok_or_else(|| format!("`{part}`: the {what} is a number from {low} to {high}"))
            };
            if let Some(step) = step {
                if step.parse::<u32>().map_or(true, |s| s == 0) {
                    return Err(format!("`{part}`: the step must be a number above 0"));
                }
            }
            if range != "*" {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                if number(a)? > number(b)? {
                    return Err(format!("`{part}`: the range runs backwards"));
                }
            }
        }
    }
    Ok(fields.join(" "))
}

/// Paths that end up inside nginx and supervisor configs (which have no quoting that survives
/// every directive) are limited to characters both read literally.
fn safe_service_path(path: &str) -> std::result::Result<(), String> {
    match path
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "/._-+@:,=".contains(*c)))
    {
        Some(c) => Err(format!(
            "`{}` contains {:?}; use letters, digits and / . _ - + @ : , = (it is written into nginx and supervisor configs)",
            path.escape_debug(),
            c
        )),
        None => Ok(()),
    }
}

/// Names inside a release that shipit manages itself; no shared path may replace them.
const RELEASE_OWN: &[&str] = &[".shipit", ".venv"];

/// Validates a `shared_dirs`/`shared_files` entry and returns it normalized (`./a//b/` is
/// `a/b`): relative, inside the release, not the release root and not shipit's own files.
fn shared_path(path: &str) -> std::result::Result<String, String> {
    relative_path(path)?;
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let Some(first) = parts.first() else {
        return Err(format!(
            "`{path}` is the release directory itself; name a directory or file inside it"
        ));
    };
    if RELEASE_OWN.contains(first) {
        return Err(format!(
            "`{path}` is inside `{first}`, which shipit manages in every release; choose another path"
        ));
    }
    Ok(parts.join("/"))
}

fn key_for(target: &str, key: &str) -> String {
    format!("targets.{target}.{key}")
}

/// Checks that `path` is relative and stays inside its base (no `..`, not absolute).
pub fn relative_path(path: &str) -> std::result::Result<(), String> {
    if path.is_empty() {
        return Err("must not be empty".into());
    }
    if path.contains('\0') || path.contains('\n') {
        return Err(format!(
            "`{}` contains NUL or a newline",
            path.escape_debug()
        ));
    }
    for component in Path::new(path).components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(format!("`{path}` must not contain `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("`{path}` must be a relative path"))
            }
        }
    }
    Ok(())
}

/// Expands a leading `~/` to the home directory.
pub fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[project]
name = "hello"

[targets.production]
hosts = ["deploy@app1.example.com", "app2.example.com:2222"]
deploy_to = "/srv/hello"
environment = "deployment"
shared_dirs = ["var", "media/"]

[targets.production.vars]
server_name = "example.com"

[targets.staging]
hosts = ["deploy@staging.example.com"]
deploy_to = "/srv/hello-staging/"
environment = "staging"
keep_releases = 3
"#;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(Path::new("shipit.toml"), Path::new("."), text)
    }

    #[test]
    fn relative_key_paths_belong_to_the_project_not_the_current_directory() {
        let text = GOOD.replace(
            "keep_releases = 3\n",
            "keep_releases = 3\nidentity_file = \"keys/deploy\"\nknown_hosts = \"conf/known_hosts\"\n",
        );
        let config = Config::parse(
            Path::new("/elsewhere/shipit.toml"),
            Path::new("/srv/proj"),
            &text,
        )
        .unwrap();
        let staging = config.target("staging").unwrap();
        assert_eq!(
            staging.identity_file.as_deref(),
            Some(Path::new("/srv/proj/keys/deploy"))
        );
        assert_eq!(
            staging.known_hosts.as_deref(),
            Some(Path::new("/srv/proj/conf/known_hosts"))
        );
    }

    fn message(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn the_image_table_is_optional_and_checked() {
        assert_eq!(parse(GOOD).unwrap().image, ImageSettings::default());
        let example = parse(include_str!("../conf/shipit.toml")).unwrap();
        assert_eq!(
            example.image,
            ImageSettings {
                base: Some("images/python:3.12".into()),
                python: Some("/usr/local/bin/python3.12".into()),
                port: Some(8000),
            }
        );
        let bad = |table: &str| message(&format!("{GOOD}\n[image]\n{table}\n"));
        let msg = bad("python = \"/usr/bin/python3\"");
        assert!(
            msg.contains("`image.python`") && msg.contains("pythonX.Y"),
            "{msg}"
        );
        let msg = bad("port = 70000");
        assert!(msg.contains("`image.port`: must be 1..65535"), "{msg}");
        let msg = bad("bases = \"x\"");
        assert!(msg.contains("unknown field `bases`"), "{msg}");
    }

    #[test]
    fn schedule_entries_keep_their_commands_and_read_names_as_numbers() {
        let config = parse(&format!(
            "{GOOD}\n[targets.staging.schedule]\n\"0 3 * Jan-mar mon-FRI\" = \"a\"\n\"@daily\" = [\"b\", \"c\"]\n"
        ))
        .unwrap();
        assert_eq!(
            config.target("staging").unwrap().schedule,
            [
                ("0 3 * 1-3 1-5".to_string(), vec!["a".to_string()]),
                (
                    "0 0 * * *".to_string(),
                    vec!["b".to_string(), "c".to_string()]
                ),
            ]
        );
        let msg = message(&format!(
            "{GOOD}\n[targets.staging.schedule]\n\"0 3 * * fry\" = \"a\"\n"
        ));
        assert!(
            msg.contains("the day of week is a number from 0 to 7"),
            "{msg}"
        );
    }

    #[test]
    fn parses_targets_with_defaults() {
        let config = parse(GOOD).unwrap();
        assert_eq!(config.project.settings_module, "hello.settings.selected");
        assert_eq!(config.project.wsgi_app, "hello.wsgi:application");
        assert_eq!(
            config.project.requirements_for("deployment"),
            "requirements/deployment.txt"
        );
        let production = config.target("production").unwrap();
        assert_eq!(production.keep_releases, 5);
        assert_eq!(production.shared_dirs, vec!["var", "media"]);
        assert_eq!(production.hosts[1].port, Some(2222));
        assert_eq!(production.hosts[1].user, None);
        let staging = config.target("staging").unwrap();
        assert_eq!(staging.deploy_to, "/srv/hello-staging");
        assert_eq!(staging.keep_releases, 3);
    }

    #[test]
    fn unknown_target_lists_known_ones_and_suggests() {
        let config = parse(GOOD).unwrap();
        let err = config.target("prodution").unwrap_err();
        assert_eq!(err.to_string(), "unknown target `prodution`");
        let hint = err.hint().unwrap();
        assert!(hint.contains("did you mean `production`"), "{hint}");
        assert!(hint.contains("production, staging"), "{hint}");
    }

    #[test]
    fn unknown_key_names_file_and_line() {
        let text = GOOD.replace("keep_releases = 3", "keep_relases = 3");
        let msg = message(&text);
        assert!(msg.starts_with("shipit.toml:18: "), "{msg}");
        assert!(msg.contains("unknown field `keep_relases`"), "{msg}");
    }

    #[test]
    fn malformed_toml_names_line() {
        let msg = message("[project]\nname = \"x\n");
        assert!(msg.starts_with("shipit.toml:2: "), "{msg}");
    }

    #[test]
    fn invalid_values_name_line_and_key() {
        let msg = message(&GOOD.replace("\"/srv/hello\"", "\"srv/hello\""));
        assert!(
            msg.starts_with("shipit.toml:7: `targets.production.deploy_to`: `srv/hello` must be an absolute path"),
            "{msg}"
        );
        let msg = message(&GOOD.replace("app2.example.com:2222", "app2.example.com:99999"));
        assert!(msg.contains(":6: `targets.production.hosts`"), "{msg}");
        assert!(msg.contains("invalid port `99999`"), "{msg}");
        let msg = message(&GOOD.replace("keep_releases = 3", "keep_releases = 0"));
        assert!(
            msg.contains(":18: `targets.staging.keep_releases`"),
            "{msg}"
        );
        let msg = message(&GOOD.replace("\"media/\"", "\"../media\""));
        assert!(
            msg.contains("`targets.production.shared_dirs`: `../media` must not contain `..`"),
            "{msg}"
        );
    }

    #[test]
    fn paths_written_into_service_configs_are_plain() {
        for bad in [
            "/srv/my app",
            "/srv/a;b",
            "/srv/$(id)",
            "/srv/a'b",
            "/srv/a{b}",
        ] {
            let msg = message(&GOOD.replace("\"/srv/hello\"", &format!("{bad:?}")));
            assert!(
                msg.contains("`targets.production.deploy_to`"),
                "{bad}: {msg}"
            );
            assert!(
                msg.contains("written into nginx and supervisor configs"),
                "{msg}"
            );
        }
    }

    #[test]
    fn vars_may_not_shadow_builtins() {
        let msg = message(&GOOD.replace("server_name =", "release ="));
        assert!(
            msg.contains(":12: `targets.production.vars.release`"),
            "{msg}"
        );
    }

    #[test]
    fn ssh_target_needs_hosts_and_local_takes_none() {
        let msg = message(
            "[project]\nname = \"x\"\n[targets.a]\ndeploy_to = \"/srv\"\nenvironment = \"e\"\n",
        );
        assert!(
            msg.contains("`targets.a.hosts`: an ssh target needs at least one host"),
            "{msg}"
        );
        let ok = parse(
            "[project]\nname = \"x\"\n[targets.a]\ntransport = \"local\"\ndeploy_to = \"/srv\"\nenvironment = \"e\"\n",
        )
        .unwrap();
        assert_eq!(ok.targets["a"].transport, TransportKind::Local);
    }

    #[test]
    fn host_specs_round_trip() {
        for text in ["h", "u@h", "u@h:22", "[::1]:2222", "u@[fe80::1]"] {
            assert_eq!(HostSpec::parse(text).unwrap().to_string(), text);
        }
        for bad in ["", "@h", "u@", "h:0", "h:x", "a b", "[::1"] {
            assert!(HostSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_same_host_twice_is_refused() {
        for (first, second) in [
            ("deploy@app1.example.com", "deploy@app1.example.com"),
            ("deploy@app1.example.com", "other@APP1.example.com:22"),
            ("app2.example.com:2222", "deploy@app2.example.com:2222"),
        ] {
            let text = GOOD.replace(
                "hosts = [\"deploy@app1.example.com\", \"app2.example.com:2222\"]",
                &format!("hosts = [\n  \"{first}\",\n  \"{second}\",\n]"),
            );
            let msg = message(&text);
            assert!(
                msg.starts_with("shipit.toml:8: `targets.production.hosts`: "),
                "{msg}"
            );
            assert!(msg.contains("listed twice"), "{msg}");
        }
        // Another port is another sshd (a container, a forwarded port): allowed.
        let text = GOOD.replace("app2.example.com:2222", "app1.example.com:2222");
        assert_eq!(parse(&text).unwrap().targets["production"].hosts.len(), 2);
    }

    #[test]
    fn shared_paths_stay_inside_the_release_and_apart() {
        let shared = |dirs: &str, files: &str| {
            let text = GOOD.replace(
                "shared_dirs = [\"var\", \"media/\"]",
                &format!("shared_dirs = {dirs}\nshared_files = {files}"),
            );
            parse(&text).map(|c| {
                let t = &c.targets["production"];
                (t.shared_dirs.clone(), t.shared_files.clone())
            })
        };
        let ok = shared(r#"["./var/", "media//up"]"#, r#"["conf/local.ini"]"#).unwrap();
        assert_eq!(ok.0, vec!["var", "media/up"]);
        assert_eq!(ok.1, vec!["conf/local.ini"]);
        for (dirs, files, line, key, needle) in [
            (
                r#"["."]"#,
                "[]",
                9,
                "shared_dirs",
                "the release directory itself",
            ),
            (
                r#"["./"]"#,
                "[]",
                9,
                "shared_dirs",
                "the release directory itself",
            ),
            ("[]", r#"[""]"#, 10, "shared_files", "must not be empty"),
            (r#"[".shipit"]"#, "[]", 9, "shared_dirs", "inside `.shipit`"),
            (
                "[]",
                r#"["./.shipit/env"]"#,
                10,
                "shared_files",
                "inside `.shipit`",
            ),
            (r#"[".venv"]"#, "[]", 9, "shared_dirs", "inside `.venv`"),
            (
                r#"["var", "var/"]"#,
                "[]",
                9,
                "shared_dirs",
                "`var` is already shared",
            ),
            (
                r#"["var", "var/log"]"#,
                "[]",
                9,
                "shared_dirs",
                "inside `var`",
            ),
            (
                r#"["var/log", "var"]"#,
                "[]",
                9,
                "shared_dirs",
                "contains `var/log`",
            ),
            (
                r#"["var"]"#,
                r#"["var"]"#,
                10,
                "shared_files",
                "already shared (in targets.production.shared_dirs)",
            ),
            (
                r#"["var"]"#,
                r#"["var/db.sqlite3"]"#,
                10,
                "shared_files",
                "inside `var`",
            ),
            (
                "[]",
                r#"["a", "a"]"#,
                10,
                "shared_files",
                "`a` is already shared",
            ),
        ] {
            let msg = shared(dirs, files).unwrap_err().to_string();
            let prefix = format!("shipit.toml:{line}: `targets.production.{key}`: ");
            assert!(msg.starts_with(&prefix), "{dirs} {files}: {msg}");
            assert!(msg.contains(needle), "{dirs} {files}: {msg}");
        }
        // Names that merely share a prefix do not overlap.
        assert!(shared(r#"["var", "variable"]"#, r#"["var2"]"#).is_ok());
    }

    #[test]
    fn only_target_is_chosen_without_flag() {
        let config = parse(GOOD).unwrap();
        let err = config.target_or_only(None).unwrap_err();
        assert!(err.to_string().contains("defines 2 targets"));
    }

    #[test]
    fn processes_and_roles_place_work_on_hosts() {
        let text = GOOD.replace(
            "[targets.production.vars]",
            r#"[targets.production.processes]
worker = "celery -A hello worker"
beat = { run = "celery -A hello beat", once = true }
mail = { run = "./manage.py send_queued_mail --loop", role = "mail", replicas = 2, stop_timeout = 90 }

[targets.production.roles]
web = ["deploy@app1.example.com"]
worker = ["app2.example.com:2222"]
mail = ["app2.example.com:2222"]

[targets.production.vars]"#,
        );
        let config = parse(&text).unwrap();
        let production = config.target("production").unwrap();
        let worker = &production.processes["worker"];
        assert_eq!(
            (
                worker.role.as_str(),
                worker.replicas,
                worker.stop_timeout,
                worker.once
            ),
            ("worker", 1, 30, false)
        );
        assert!(production.processes["beat"].once);
        let mail = &production.processes["mail"];
        assert_eq!((mail.replicas, mail.stop_timeout), (2, 90));
        assert!(production.carries(0, "web") && !production.carries(0, "worker"));
        assert!(production.carries(1, "worker") && production.carries(1, "mail"));
        assert!(!production.carries(1, "web"));
        // Without roles every host carries every role.
        let staging = config.target("staging").unwrap();
        assert!(staging.carries(0, "web") && staging.carries(0, "anything"));
    }

    #[test]
    fn bad_processes_and_roles_name_their_key() {
        for (table, needle) in [
            (
                "[targets.staging.processes]\nweb = \"x\"",
                "`targets.staging.processes.web`",
            ),
            (
                "[targets.staging.processes]\n\"a.b\" = \"x\"",
                "letters, digits",
            ),
            ("[targets.staging.processes]\nw = \"\"", "non-empty"),
            (
                "[targets.staging.processes]\nw = { run = \"x\", replicas = 0 }",
                "replicas",
            ),
            (
                "[targets.staging.processes]\nw = { run = \"x\", once = true, replicas = 2 }",
                "drop replicas",
            ),
            (
                "[targets.staging.processes]\nw = { run = \"x\", stop_timeout = 0 }",
                "stop_timeout",
            ),
            (
                "[targets.staging.roles]\nweb = [\"elsewhere\"]",
                "not one of the target's hosts",
            ),
        ] {
            let msg = message(&format!("{GOOD}\n{table}\n"));
            assert!(msg.contains(needle), "{table}: {msg}");
        }
    }

    #[test]
    fn hosts_and_roles_select_a_canary_and_the_subset_keeps_roles_and_singletons_right() {
        let text = r#"
[project]
name = "hello"

[targets.prod]
hosts = ["deploy@a", "deploy@b", "deploy@c"]
deploy_to = "/srv/hello"
environment = "deployment"

[targets.prod.processes]
worker = "celery -A hello worker"
beat = { run = "celery -A hello beat", once = true }

[targets.prod.roles]
web = ["deploy@a", "deploy@b"]
worker = ["deploy@c"]
"#;
        let config = parse(text).unwrap();
        let prod = config.target("prod").unwrap();
        let none: Vec<String> = Vec::new();
        assert_eq!(prod.select(&none, &none).unwrap(), [0, 1, 2]);
        assert_eq!(prod.select(&["deploy@b".into()], &none).unwrap(), [1]);
        // Another user on the same machine is the same host.
        assert_eq!(prod.select(&["root@c".into()], &none).unwrap(), [2]);
        assert_eq!(prod.select(&none, &["worker".into()]).unwrap(), [2]);
        assert_eq!(
            prod.select(&["deploy@c".into()], &["web".into()]).unwrap(),
            [0, 1, 2]
        );
        let err = prod.select(&["deploy@d".into()], &none).unwrap_err();
        assert!(
            err.to_string().contains("not a host of target prod"),
            "{err}"
        );
        let err = prod.select(&none, &["mail".into()]).unwrap_err();
        assert!(err.to_string().contains("no role `mail`"), "{err}");

        // Without the primary (a): b migrates, nobody starts beat, roles follow their hosts.
        let sub = prod.subset(&[1, 2]);
        assert_eq!(sub.hosts.len(), 2);
        assert_eq!(sub.primary, 0);
        assert!(!sub.processes.contains_key("beat"));
        assert!(sub.carries(0, "web") && !sub.carries(0, "worker"));
        assert!(sub.carries(1, "worker") && !sub.carries(1, "web"));
        // With it, the primary stays the primary and keeps its singletons.
        let sub = prod.subset(&[0, 2]);
        assert_eq!(sub.primary, 0);
        assert!(sub.processes.contains_key("beat"));
    }

    #[test]
    fn the_process_manager_is_the_one_named_or_the_one_configured() {
        let target = |tables: &str| {
            let text = format!(
                "[project]\nname = \"hello\"\n\n[targets.prod]\nhosts = [\"a\"]\ndeploy_to = \"/srv/hello\"\nenvironment = \"deployment\"\n{tables}"
            );
            parse(&text).map(|c| c.targets["prod"].app.clone())
        };
        assert_eq!(target("").unwrap(), None);
        let app = target("[targets.prod.supervisor]\n").unwrap().unwrap();
        assert_eq!(app.manager, Manager::Supervisor);
        assert_eq!(app.supervisor.conf_dir, "/etc/supervisor/conf.d");
        let app = target("[targets.prod.systemd]\nscope = \"user\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(app.manager, Manager::Systemd);
        assert_eq!(app.systemd.ctl(), "systemctl --user");
        assert_eq!(app.systemd.journal(), "journalctl --user");
        let app = target("[targets.prod.app]\nmanager = \"systemd\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(app.systemd.scope, SystemdScope::System);
        assert_eq!(app.systemd.ctl(), "sudo -n systemctl");
        let app = target(
            "[targets.prod.app]\nmanager = \"auto\"\n[targets.prod.supervisor]\nctl = \"sudo supervisorctl\"\n[targets.prod.systemd]\nctl = \"systemctl\"\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(app.manager, Manager::Auto);
        assert_eq!(app.supervisor.ctl, "sudo supervisorctl");
        assert_eq!(app.systemd.ctl(), "systemctl");

        for (tables, expected) in [
            (
                "[targets.prod.supervisor]\n[targets.prod.systemd]\n",
                "say which runs the app",
            ),
            (
                "[targets.prod.app]\nmanager = \"supervisor\"\n[targets.prod.systemd]\n",
                "drop [systemd]",
            ),
            (
                "[targets.prod.app]\nmanager = \"systemd\"\n[targets.prod.supervisor]\n",
                "drop [supervisor]",
            ),
            (
                "[targets.prod.app]\nmanager = \"runit\"\n",
                "unknown variant",
            ),
            ("[targets.prod.systemd]\nctl = \" \"\n", "must not be empty"),
            (
                "[targets.prod.systemd]\nscope = \"session\"\n",
                "unknown variant",
            ),
        ] {
            let err = target(tables).unwrap_err().to_string();
            assert!(err.contains(expected), "{tables}: {err}");
        }
    }
}
