//! The `[targets.T]` table: one deploy target, its hosts, paths and settings.

use super::*;

/// How commands reach a target's hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// OpenSSH-compatible SSH (the default).
    #[default]
    Ssh,
    /// Run on this machine, without SSH.
    Local,
}

/// How the virtualenv is populated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Installer {
    /// `uv` when the host has it, else pip (the default).
    #[default]
    Auto,
    /// Always `uv venv` + `uv pip sync`.
    Uv,
    /// Always `python -m venv` + pip.
    Pip,
}

/// What serves the app as the `web` process (`[targets.T] server`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Server {
    /// gunicorn serving `project.wsgi_app` (the default).
    #[default]
    Gunicorn,
    /// uvicorn serving `project.asgi_app`, as gunicorn's workers (the `uvicorn-worker`
    /// package): gunicorn's socket, graceful stop and logs, with HTTP and websockets over ASGI.
    Uvicorn,
}

impl Server {
    /// The servers shipit runs, by the names the config uses.
    pub const ALL: [Server; 2] = [Server::Gunicorn, Server::Uvicorn];

    /// The name the config uses.
    pub fn name(self) -> &'static str {
        match self {
            Server::Gunicorn => "gunicorn",
            Server::Uvicorn => "uvicorn",
        }
    }
}

impl TransportKind {
    /// The name the config uses.
    pub fn name(self) -> &'static str {
        match self {
            TransportKind::Ssh => "ssh",
            TransportKind::Local => "local",
        }
    }
}

impl MigrateOn {
    /// The name the config uses.
    pub fn name(self) -> &'static str {
        match self {
            MigrateOn::Once => "once",
            MigrateOn::EachHost => "each-host",
        }
    }
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MigrateOn {
    /// On the primary host only, under the database's advisory lock: the hosts share one
    /// database (PostgreSQL, MySQL), the production shape (the default).
    #[default]
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
    /// What serves the app (`server`).
    pub server: Server,
    /// Optional dependencies (`--extra`) installed from a `uv.lock`.
    pub extras: Vec<String>,
    /// Dependency groups (`--group`) installed from a `uv.lock`; none by default (not `dev`).
    pub groups: Vec<String>,
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
    /// Seconds a prepared host of a fleet waits for the switch before it abandons the release
    /// and gives its lock back (a shipit killed between prepare and switch).
    pub prepared_timeout: u32,
    /// nginx site management; `None` leaves nginx alone.
    pub nginx: Option<Nginx>,
    /// HTTPS for the nginx site (`[targets.T.tls]`); `None`: plain http.
    pub tls: Option<Tls>,
    /// The process manager that runs the app server and processes (`[targets.T.app]`,
    /// `[targets.T.supervisor]`, `[targets.T.systemd]`); `None` leaves the app server alone.
    pub app: Option<App>,
    /// How a new release's app server is checked before and after the switch.
    pub health: Health,
    /// The migration gate (`[targets.T.migrations]`).
    pub migrations: Migrations,
    /// Database snapshots (`[targets.T.database]`).
    pub database: Database,
    /// Processes besides the web app server (`[targets.T.processes]`), by name.
    pub processes: BTreeMap<String, Process>,
    /// Hosts (indices in `hosts`) by role (`[targets.T.roles]`); a host listed under no role
    /// carries every role.
    pub roles: BTreeMap<String, Vec<usize>>,
    /// Scheduled commands (`[targets.T.schedule]`), one entry per schedule in the order of
    /// their keys: five numeric cron fields and the commands run in order, on the primary in
    /// `current`.
    pub schedule: Vec<(String, Vec<String>)>,
    /// The target's own `[targets.T.notify]`, which replaces the top-level `[notify]`.
    pub notify: Option<Notify>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTarget {
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
    #[serde(default)]
    transport: TransportKind,
    #[serde(default)]
    installer: Installer,
    server: Option<Spanned<String>>,
    #[serde(default)]
    extras: Vec<Spanned<String>>,
    #[serde(default)]
    groups: Vec<Spanned<String>>,
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
    #[serde(default)]
    migrate: MigrateOn,
    batch: Option<Spanned<i64>>,
    prepared_timeout: Option<Spanned<i64>>,
    nginx: Option<Spanned<Nginx>>,
    tls: Option<Spanned<RawTls>>,
    notify: Option<RawNotify>,
    app: Option<Spanned<RawApp>>,
    supervisor: Option<Spanned<Supervisor>>,
    systemd: Option<Spanned<Systemd>>,
    health: Option<Spanned<Health>>,
    migrations: Option<Spanned<Migrations>>,
    database: Option<Database>,
    #[serde(default)]
    processes: BTreeMap<Spanned<String>, Spanned<RawProcess>>,
    #[serde(default)]
    schedule: BTreeMap<Spanned<String>, RawSchedule>,
    #[serde(default)]
    roles: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
}

/// Letters, digits and `_`, not starting with a digit: template variable and environment
/// variable names alike.
pub(super) fn is_alias_name(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub(super) fn is_identifier(text: &str) -> bool {
    text.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `prepared_timeout` when unset, in seconds: room for the slowest host's last prepare steps
/// and every batch's switch and health check before the last batch's.
pub(crate) const DEFAULT_PREPARED_TIMEOUT: u32 = 600;

/// `keep_releases` when unset.
pub(crate) const DEFAULT_KEEP_RELEASES: i64 = 5;

fn no_hosts() -> Spanned<Vec<Spanned<String>>> {
    Spanned::new(0..0, Vec::new())
}
fn default_keep() -> Spanned<i64> {
    Spanned::new(0..0, DEFAULT_KEEP_RELEASES)
}

pub(super) fn validate_target(
    source: &Source,
    name: &str,
    name_span: Range<usize>,
    raw: Spanned<RawTarget>,
) -> Result<Target> {
    let key = |k: &str| key_for(name, k);
    if !is_name(name) {
        return Err(source.error(
            name_span,
            format!("targets.{name}"),
            "target names are letters, digits, `_` or `-`",
        ));
    }
    let target_span = raw.span();
    let raw = raw.into_inner();
    let hosts = validate_hosts(source, name, &raw.hosts, raw.transport, target_span)?;
    let jump = validate_jump(source, name, raw.jump.as_ref(), raw.transport)?;
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
    deploy_to_path(deploy_to)
        .map_err(|(why, hint)| source.refuse(raw.deploy_to.span(), key("deploy_to"), why, hint))?;
    let environment = raw.environment.get_ref();
    if !is_name(environment) {
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
    let prepared_timeout = match &raw.prepared_timeout {
        None => DEFAULT_PREPARED_TIMEOUT,
        Some(t) if (1..=86_400).contains(t.get_ref()) => *t.get_ref() as u32,
        Some(t) => {
            return Err(source.error(
                t.span(),
                key("prepared_timeout"),
                format!("must be between 1 and 86400 seconds, not {}", t.get_ref()),
            ))
        }
    };
    let (shared_dirs, shared_files) =
        validate_shared(source, name, raw.shared_dirs, raw.shared_files)?;
    let extras = validate_dependency_names(source, &key("extras"), raw.extras)?;
    let groups = validate_dependency_names(source, &key("groups"), raw.groups)?;
    let (env, secrets) = validate_env(source, name, raw.env, raw.secrets)?;
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
    let supervisor = match raw.supervisor {
        Some(s) => Some(validate_supervisor(source, name, s)?),
        None => None,
    };
    let vars = validate_vars(source, name, raw.vars)?;
    let tls =
        match raw.tls {
            Some(t) if raw.nginx.is_none() => return Err(source.refuse(
                t.span(),
                key("tls"),
                "TLS is served by the nginx site shipit installs, and this target has no [nginx]",
                format!("add [targets.{name}.nginx] with the site's path"),
            )),
            Some(t) => {
                let server_name = vars.get("server_name").and_then(toml::Value::as_str);
                Some(validate_tls(source, name, t, server_name)?)
            }
            None => None,
        };
    Ok(Target {
        health: match raw.health {
            Some(h) => validate_health(source, name, h)?,
            None => Health::default(),
        },
        migrations: match raw.migrations {
            Some(m) => validate_migrations(source, name, m)?,
            None => Migrations::default(),
        },
        database: raw.database.unwrap_or_default(),
        processes: validate_processes(source, name, raw.processes)?,
        roles: validate_roles(source, name, raw.roles, &hosts)?,
        schedule: validate_schedule(source, name, raw.schedule)?,
        notify: match raw.notify {
            Some(n) => Some(validate_notify(source, &key("notify"), n)?),
            None => None,
        },
        name: name.to_string(),
        hosts,
        deploy_to: deploy_to.clone(),
        environment: raw.environment.into_inner(),
        keep_releases: keep as u32,
        shared_dirs,
        shared_files,
        identity_file: raw.identity_file.map(|p| expand_home(&p)),
        known_hosts: raw.known_hosts.map(|p| expand_home(&p)),
        jump,
        transport: raw.transport,
        installer: raw.installer,
        server: validate_server(source, name, raw.server)?,
        extras,
        groups,
        vars,
        tls,
        hooks: raw.hooks,
        env,
        secrets,
        app_user,
        allow_root: raw.allow_root,
        primary,
        migrate: raw.migrate,
        batch,
        prepared_timeout,
        nginx: match raw.nginx {
            Some(n) => Some(validate_nginx(source, name, n)?),
            None => None,
        },
        app: resolve_app(source, name, raw.app, supervisor, raw.systemd)?,
    })
}

/// `server`: one shipit runs. granian and daphne are refused by name, so a user who asks for
/// them learns what to use instead.
fn validate_server(source: &Source, target: &str, raw: Option<Spanned<String>>) -> Result<Server> {
    let Some(raw) = raw else {
        return Ok(Server::default());
    };
    let supported = || Server::ALL.map(|s| format!("`{}`", s.name())).join(" or ");
    match Server::ALL.into_iter().find(|s| s.name() == raw.get_ref()) {
        Some(server) => Ok(server),
        None => Err(source.refuse(
            raw.span(),
            key_for(target, "server"),
            format!("shipit does not run `{}` as the app server", raw.get_ref()),
            format!(
                "use {}; an ASGI app (websockets, async views) runs under `uvicorn`",
                supported()
            ),
        )),
    }
}

/// Extra and group names as pyproject.toml spells them (PEP 685): letters, digits, `.`, `_`,
/// `-`, starting with a letter or digit. They become `uv export` arguments.
fn validate_dependency_names(
    source: &Source,
    key: &str,
    names: Vec<Spanned<String>>,
) -> Result<Vec<String>> {
    names
        .into_iter()
        .map(|name| {
            let text = name.get_ref();
            let valid = text.starts_with(|c: char| c.is_ascii_alphanumeric())
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if valid {
                Ok(name.into_inner())
            } else {
                Err(source.error(
                    name.span(),
                    key,
                    format!("`{text}` is not an extra or dependency group name (letters, digits, `.`, `_`, `-`)"),
                ))
            }
        })
        .collect()
}

/// Paths that end up inside nginx and supervisor configs (which have no quoting that survives
/// every directive) are limited to characters both read literally.
pub(super) fn safe_service_path(path: &str) -> std::result::Result<(), String> {
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

/// Directories whose whole tree belongs to the system: a `deploy_to` below one is refused.
const SYSTEM_TREES: &[&str] = &[
    "bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "run", "sbin", "sys",
    "usr",
];

/// Directories that hold other things besides one project: a `deploy_to` may be below one, but
/// not the directory itself (its `releases/`, `shared/`, `current` and `.shipit/` would sit among
/// everything else there, and prune and reap work inside it).
const SHARED_PARENTS: &[&str] = &[
    "/home",
    "/media",
    "/mnt",
    "/opt",
    "/root",
    "/srv",
    "/tmp",
    "/var",
    "/var/cache",
    "/var/lib",
    "/var/log",
    "/var/mail",
    "/var/spool",
    "/var/tmp",
    "/var/www",
];

/// Checks an absolute `deploy_to`: written in its one normal form (no `.`, `..`, `//` or
/// trailing `/`: the shell compares paths under it as text, and `/srv/../etc/x` is not where it
/// seems), neither `/` nor a directory of the system. Returns what is wrong and how to fix it.
pub(super) fn deploy_to_path(path: &str) -> std::result::Result<(), (String, String)> {
    let own =
        "give the project a directory of its own, e.g. `/srv/PROJECT` or `/home/deploy/PROJECT`";
    if path == "/" {
        return Err((
            "`/` is the root directory; shipit creates releases/, shared/ and current there and prunes inside it".into(),
            own.into(),
        ));
    }
    let parts: Vec<&str> = path[1..].split('/').collect();
    if parts.iter().any(|p| matches!(*p, "" | "." | "..")) {
        let mut normal: Vec<&str> = Vec::new();
        for part in &parts {
            match *part {
                "" | "." => {}
                ".." => {
                    normal.pop();
                }
                part => normal.push(part),
            }
        }
        return Err((
            format!("`{path}` is not a normalised path (`.`, `..`, `//` or a trailing `/`)"),
            format!("write the directory itself, e.g. `/{}`", normal.join("/")),
        ));
    }
    let top = parts[0];
    if SYSTEM_TREES.contains(&top) {
        return Err((
            format!("`{path}` is inside `/{top}`, which belongs to the system"),
            own.into(),
        ));
    }
    if SHARED_PARENTS.contains(&path) {
        return Err((
            format!("`{path}` is a directory shared with everything else on the host, not one of its own"),
            format!("use a directory inside it, e.g. `{path}/PROJECT`"),
        ));
    }
    Ok(())
}
