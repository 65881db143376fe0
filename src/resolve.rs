//! Configuration + target + environment → everything a plan needs, resolved once.
//!
//! Like uv's `settings.rs` or ripgrep's `LowArgs → HiArgs`: the commands never read `Config`
//! or `Target` fields to decide remote work; they resolve a [`Resolved`] first (the settings
//! module is rendered here, and its template errors surface before any host is touched), and
//! the plans and the runner are built from it and from what hosts report.

use std::io::Read;

use crate::config::{
    App, Backup, Config, GateMode, Health, Hooks, Installer, MigrateOn, Nginx, Notify, Process,
    SecretSource, Target, Tls, TlsMode, SCHEDULER, WEB_ROLE,
};
use crate::error::{Error, Result};
use crate::manager::server::AppServer;
use crate::manager::supervisor::{program_glob, program_name};
use crate::manager::systemd::{legacy_unit_prefix, unit_prefix};
use crate::release::ReleaseId;
use crate::remote::preamble::Preamble;
use crate::remote::{layout, python};
use crate::templates::{BuildInfo, RenderContext};

/// What a run does, as the remote side records it (`OP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Deploy,
    Rollback,
    Prune,
    Maintenance,
    /// `shipit lock`: acquire, release, status.
    Lock,
    /// `shipit run`, `shipit audit`: read, or an operator's command.
    Run,
    /// `shipit db`: database snapshots.
    Db,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Deploy => "deploy",
            Op::Rollback => "rollback",
            Op::Prune => "prune",
            Op::Maintenance => "maintenance",
            Op::Lock => "lock",
            Op::Run => "run",
            Op::Db => "db",
        }
    }
}

/// What `--break-lock` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BreakLock {
    /// Never break a lock.
    No,
    /// Break a lock whose holder is gone (`--break-lock`).
    Dead,
    /// Break any lock (`--break-lock --force`).
    Force,
}

impl BreakLock {
    /// From the two flags.
    pub(crate) fn from_flags(break_lock: bool, force: bool) -> BreakLock {
        match (break_lock, force) {
            (false, _) => BreakLock::No,
            (true, false) => BreakLock::Dead,
            (true, true) => BreakLock::Force,
        }
    }

    fn name(self) -> &'static str {
        match self {
            BreakLock::No => "none",
            BreakLock::Dead => "dead",
            BreakLock::Force => "force",
        }
    }
}

/// A target resolved for remote work.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) project: String,
    pub(crate) target: String,
    /// The target's hosts as configured, space-separated (`localhost` for the local transport).
    pub(crate) hosts: String,
    pub(crate) deploy_to: String,
    pub(crate) python: String,
    pub(crate) installer: Installer,
    pub(crate) requirements: String,
    pub(crate) manage_py: String,
    pub(crate) settings_module: String,
    pub(crate) shared_dirs: Vec<String>,
    pub(crate) shared_files: Vec<String>,
    pub(crate) hooks: Hooks,
    pub(crate) nginx: Option<Nginx>,
    /// HTTPS for the nginx site.
    pub(crate) tls: Option<Tls>,
    pub(crate) app: Option<App>,
    /// The app server that serves the web process.
    pub(crate) server: AppServer,
    pub(crate) health: Health,
    /// The migration gate.
    pub(crate) migrations: crate::config::Migrations,
    /// Database snapshots.
    pub(crate) database: crate::config::Database,
    pub(crate) keep_releases: u32,
    pub(crate) primary: usize,
    pub(crate) migrate: MigrateOn,
    pub(crate) batch: Option<u32>,
    /// Seconds a fleet's prepared host waits for the switch before it gives up.
    pub(crate) prepared_timeout: u32,
    pub(crate) deployer: String,
    pub(crate) lock_token: String,
    /// The app server's account; `None`: the deploy user.
    pub(crate) app_user: Option<String>,
    pub(crate) allow_root: bool,
    /// What each host runs (index as in the target's hosts; one entry for a local target).
    pub(crate) placements: Vec<Placement>,
    /// Who is told about the run: the target's own `notify` table, else the top-level one.
    pub(crate) notify: Notify,
}

/// What one host runs, by its roles and whether it is the primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placement {
    /// The nginx site and the web app server (the `web` role).
    pub(crate) web: bool,
    /// Processes of each release started before the switch (the host carries their role).
    pub(crate) processes: Vec<(String, Process)>,
    /// Singletons (`once`): handed over from the old release to the new one at the switch,
    /// so that two never run at once. The target's on the primary only; the scheduler also
    /// on each web host that renews an ACME certificate.
    pub(crate) once: Vec<(String, Process)>,
    /// The schedule this host runs (CRON, commands): the target's on the primary, and the
    /// certificate's renewal on each web host in ACME mode (`tls.renew`).
    pub(crate) schedule: Vec<(String, Vec<String>)>,
}

impl Placement {
    /// Where everything runs: one host that is the primary and carries every role.
    #[cfg(test)]
    pub(crate) fn everything(processes: &[(String, Process)]) -> Placement {
        Placement {
            web: true,
            processes: processes.iter().filter(|(_, p)| !p.once).cloned().collect(),
            once: processes.iter().filter(|(_, p)| p.once).cloned().collect(),
            schedule: Vec::new(),
        }
    }
}

/// The process that runs a target's schedule: `.shipit/scheduler.py` (templates/remote/py/
/// scheduler.py) with the release's venv, a `once` process, so it is handed over at the switch
/// and never runs twice; a stopping scheduler lets running commands finish for up to ten
/// minutes (the scheduler catches up the minutes that leaves without one).
fn scheduler() -> Process {
    Process {
        run: "python .shipit/scheduler.py .shipit/schedule.tab".into(),
        role: String::new(),
        replicas: 1,
        stop_timeout: 600,
        once: true,
    }
}

/// What host `host` of `target` runs.
pub(crate) fn placement(target: &Target, host: usize) -> Placement {
    let primary = host == target.primary;
    let web = target.carries(host, WEB_ROLE);
    let mut placed = Placement {
        web,
        processes: Vec::new(),
        once: Vec::new(),
        schedule: if primary {
            target.schedule.clone()
        } else {
            Vec::new()
        },
    };
    // tls needs [nginx] (config::target): a web host serves the site with the certificate.
    if let (true, Some(tls)) = (web, &target.tls) {
        if let TlsMode::Acme { renew, .. } = &tls.mode {
            let when = renew.clone().unwrap_or_else(|| {
                crate::config::default_renew(&format!("{} {}", target.deploy_to, target.name), host)
            });
            let script = format!("{}/{}", target.deploy_to, crate::remote::layout::TLS_RENEW);
            placed
                .schedule
                .push((when, vec![crate::plan::quote(&script)]));
        }
    }
    if !placed.schedule.is_empty() {
        placed.once.push((SCHEDULER.to_string(), scheduler()));
    }
    for (name, process) in &target.processes {
        if process.once {
            if primary {
                placed.once.push((name.clone(), process.clone()));
            }
        } else if target.carries(host, &process.role) {
            placed.processes.push((name.clone(), process.clone()));
        }
    }
    placed
}

/// The values of one run that are not the target's: which release, which archive, and so on.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunVars {
    pub(crate) release: Option<ReleaseId>,
    pub(crate) sha256: Option<String>,
    pub(crate) revision: Option<String>,
    /// A rollback unapplied migrations on this host (its cleanup migrates forward again).
    pub(crate) unapplied: bool,
    /// Seconds to wait for a live lock before giving up (`deploy --lock-wait`).
    pub(crate) lock_wait: u32,
    /// Why `shipit lock acquire` holds the lock.
    pub(crate) lock_message: Option<String>,
    /// `deploy --allow-breaking-migrations`: the gate reports breaking migrations and lets
    /// them run.
    pub(crate) allow_breaking_migrations: bool,
}

impl Resolved {
    /// Resolves `target` of `config`.
    pub(crate) fn new(config: &Config, target: &Target) -> Result<Resolved> {
        let neutral = BuildInfo {
            build_time: String::new(),
            revision: String::new(),
            dirty: false,
        };
        let settings_module = RenderContext::new(config, target, &neutral)?
            .get("settings_module")
            .unwrap_or_else(|| config.project.settings_module.clone());
        Ok(Resolved {
            project: config.project.name.clone(),
            target: target.name.clone(),
            hosts: if target.hosts.is_empty() {
                "localhost".into()
            } else {
                let hosts: Vec<String> = target.hosts.iter().map(ToString::to_string).collect();
                hosts.join(" ")
            },
            deploy_to: target.deploy_to.clone(),
            python: config.project.python.clone(),
            installer: target.installer,
            // A uv.lock is installed from the requirements file the build exports it to.
            requirements: crate::build::lock::installed(
                &config.project.requirements_for(&target.environment),
            )
            .to_string(),
            manage_py: config.project.manage_py.clone(),
            settings_module,
            shared_dirs: target.shared_dirs.clone(),
            shared_files: target.shared_files.clone(),
            hooks: target.hooks.clone(),
            nginx: target.nginx.clone(),
            tls: target.tls.clone(),
            app: target.app.clone(),
            server: AppServer::of(target),
            health: target.health.clone(),
            migrations: target.migrations.clone(),
            database: target.database,
            keep_releases: target.keep_releases,
            primary: target.primary,
            migrate: target.migrate,
            batch: target.batch,
            prepared_timeout: target.prepared_timeout,
            deployer: deployer(),
            lock_token: random_hex(),
            app_user: target.app_user.clone(),
            allow_root: target.allow_root,
            placements: (0..target.hosts.len().max(1))
                .map(|host| placement(target, host))
                .collect(),
            notify: target.notify.as_ref().unwrap_or(&config.notify).clone(),
        })
    }

    /// The supervisor program of `release`.
    pub(crate) fn program(&self, release: Option<ReleaseId>) -> String {
        release.map_or_else(String::new, |r| {
            program_name(&self.project, &self.target, &r)
        })
    }

    /// [`Resolved::vars`] of each host, in the target's order, `WEB` saying whether it serves
    /// the site (for the read-only scripts that report on it: `check`, `tls`).
    pub(crate) fn host_vars(&self, op: Op, break_lock: BreakLock, run: &RunVars) -> Vec<Preamble> {
        self.placements
            .iter()
            .map(|placed| Preamble {
                web: if placed.web { "1" } else { "0" }.to_string(),
                ..self.vars(op, break_lock, run)
            })
            .collect()
    }

    /// The preamble of every script of this run: every variable the shell library reads.
    pub(crate) fn vars(&self, op: Op, break_lock: BreakLock, run: &RunVars) -> Preamble {
        let flag = |on: bool| if on { "1" } else { "0" }.to_string();
        let app = self.app.as_ref();
        let nginx = self.nginx.as_ref();
        let one_line = crate::plan::step::one_line;
        Preamble {
            d: self.deploy_to.clone(),
            id: run.release.map(|r| r.to_string()).unwrap_or_default(),
            sha: run.sha256.clone().unwrap_or_default(),
            token: self.lock_token.clone(),
            op: op.name().to_string(),
            break_lock: break_lock.name().to_string(),
            deployer: one_line(&self.deployer),
            revision: one_line(run.revision.as_deref().unwrap_or("")),
            shipit_version: crate::provenance::LONG.clone(),
            django_settings_module: self.settings_module.clone(),
            python: self.python.clone(),
            python_mirror: std::env::var("UV_PYTHON_INSTALL_MIRROR").unwrap_or_default(),
            installer: self.installer.to_string(),
            requirements: self.requirements.clone(),
            manage: self.manage_py.clone(),
            app: flag(app.is_some()),
            manager: app
                .map(|a| a.manager.name().to_string())
                .unwrap_or_default(),
            managers: crate::manager::names(),
            ctl: app.map(|a| a.supervisor.ctl.clone()).unwrap_or_default(),
            confd: app
                .map(|a| a.supervisor.conf_dir.clone())
                .unwrap_or_default(),
            systemctl: app.map(|a| a.systemd.ctl()).unwrap_or_default(),
            journalctl: app.map(|a| a.systemd.journal()).unwrap_or_default(),
            scope: app
                .map(|a| a.systemd.scope.name().to_string())
                .unwrap_or_default(),
            unit_prefix: unit_prefix(&self.project, &self.target),
            legacy_unit_prefix: legacy_unit_prefix(&self.project, &self.target),
            program: self.program(run.release),
            program_glob: program_glob(&self.project, &self.target),
            server: self.server.name().to_string(),
            nginx: flag(nginx.is_some()),
            site: nginx.map(|n| n.site.clone()).unwrap_or_default(),
            nginx_test: nginx.map(|n| n.test.clone()).unwrap_or_default(),
            nginx_reload: nginx.map(|n| n.reload.clone()).unwrap_or_default(),
            health_path: self.health.path.clone(),
            health_host: self.health.host.clone().unwrap_or_default(),
            health_status: self
                .health
                .status
                .map_or_else(|| "ok".to_string(), |s| s.to_string()),
            health_timeout: self.health.timeout.to_string(),
            health_retries: self.health.retries.to_string(),
            unapplied: flag(run.unapplied),
            app_user: self.app_user.clone().unwrap_or_default(),
            target: self.target.clone(),
            hosts: self.hosts.clone(),
            lock_wait: run.lock_wait.to_string(),
            lock_message: one_line(run.lock_message.as_deref().unwrap_or("")),
            prepared_timeout: self.prepared_timeout.to_string(),
            web: "1".to_string(),
            app_socket: layout::APP_SOCKET.to_string(),
            env_file: layout::ENV_FILE.to_string(),
            tls_dir: layout::TLS_DIR.to_string(),
            tls_cert: layout::TLS_CERTIFICATE.to_string(),
            tls_key: layout::TLS_KEY.to_string(),
            tls_webroot: layout::TLS_WEBROOT.to_string(),
            tls_stapling: layout::TLS_STAPLING.to_string(),
            tls: flag(self.tls.is_some()),
            tls_names: self
                .tls
                .as_ref()
                .map(|t| t.names.join(" "))
                .unwrap_or_default(),
            locked: layout::LOCKED_STATUS.to_string(),
            py_probe: python::sent(python::PROBE),
            py_settings: python::sent(python::SETTINGS),
            py_migrate: python::sent(python::MIGRATE),
            py_applied: python::sent(python::APPLIED),
            py_allowed_host: python::sent(python::ALLOWED_HOST),
            py_gate: python::sent(python::GATE),
            gate: if run.allow_breaking_migrations && self.migrations.gate != GateMode::Off {
                "allow".to_string()
            } else {
                self.migrations.gate.name().to_string()
            },
            gate_strict: flag(self.migrations.strict),
            gate_allow: self.migrations.allow.join(" "),
            gate_after: self.migrations.after_switch.join(" "),
            // Sent only to the scripts that may take or restore a snapshot: every exec carries
            // the preamble (see `every_script_is_at_most_44_kb_on_the_wire`).
            py_snapshot: if op == Op::Db
                || (op == Op::Deploy && self.database.backup != Backup::Off)
            {
                python::sent(python::SNAPSHOT)
            } else {
                String::new()
            },
            db_backup: match self.database.backup {
                Backup::Off => String::new(),
                on => on.name().to_string(),
            },
            db_keep: self.database.keep.to_string(),
        }
    }

    /// [`Resolved::vars`] for every host: what differs between hosts (`WEB`) set per host.
    pub(crate) fn fleet_vars(&self, op: Op, break_lock: BreakLock, run: &RunVars) -> Vec<Preamble> {
        self.placements
            .iter()
            .map(|placed| Preamble {
                web: if placed.web { "1" } else { "0" }.to_string(),
                ..self.vars(op, break_lock, run)
            })
            .collect()
    }
}

/// The app's environment for one run: the target's plain `env` values and its `secrets`,
/// resolved on this machine before any host is touched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AppEnv {
    /// Every variable, sorted by name.
    pub(crate) values: Vec<(String, String)>,
    /// The values that must never be shown.
    pub(crate) secrets: Vec<String>,
}

impl AppEnv {
    /// Resolves `target`'s environment; a secret that cannot be resolved is an error naming it.
    pub(crate) fn resolve(config: &Config, target: &Target) -> Result<AppEnv> {
        let mut env = AppEnv::default();
        for (name, value) in &target.env {
            env.values.push((name.clone(), value.clone()));
        }
        for (name, from) in &target.secrets {
            let value = secret_value(config, from).map_err(|message| Error::Secret {
                name: name.clone(),
                from: describe(from),
                message,
                hint: None,
            })?;
            if crate::redact::too_short(&value) {
                return Err(Error::Secret {
                    name: name.clone(),
                    from: describe(from),
                    message: format!(
                        "it is shorter than {} characters, too short to be masked in output",
                        crate::redact::MIN_SECRET_CHARS
                    ),
                    hint: Some(format!(
                        "shipit hides a secret by its value wherever output shows it, and a value this short would be hidden inside ordinary words; give {name} a longer value, or move it to `env` if it is not secret"
                    )),
                });
            }
            env.secrets.push(value.clone());
            env.values.push((name.clone(), value));
        }
        env.values.sort();
        Ok(env)
    }

    /// The release's env file: one `NAME=value` line each, values shell-quoted.
    pub(crate) fn file(&self) -> String {
        self.values
            .iter()
            .map(|(name, value)| format!("{name}={}\n", crate::plan::quote(value)))
            .collect()
    }
}

/// The certificate chain and key of a target in files mode, resolved on this machine like its
/// secrets (and masked like them); a dry run holds where each would come from instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    pub(crate) certificate: String,
    pub(crate) key: String,
}

impl TlsFiles {
    /// `target`'s, when it brings its certificate; one that cannot be read, or is not PEM, is
    /// an error naming its source (never its value).
    pub(crate) fn resolve(config: &Config, target: &Target) -> Result<Option<TlsFiles>> {
        let Some(TlsMode::Files { certificate, key }) = target.tls.as_ref().map(|t| &t.mode) else {
            return Ok(None);
        };
        let read = |name: &str, from: &SecretSource, marker: &str| -> Result<String> {
            let fail = |message: String| Error::Secret {
                name: name.to_string(),
                from: describe(from),
                message,
                hint: None,
            };
            let value = secret_value(config, from).map_err(fail)?;
            if !value.contains(marker) {
                return Err(fail(format!("it holds no PEM `{marker}` block")));
            }
            Ok(format!("{value}\n"))
        };
        Ok(Some(TlsFiles {
            certificate: read(
                "tls.certificate",
                certificate,
                "-----BEGIN CERTIFICATE-----",
            )?,
            key: read("tls.key", key, "PRIVATE KEY-----")?,
        }))
    }

    /// What a dry run shows: where each would come from.
    pub(crate) fn preview(target: &Target) -> Option<TlsFiles> {
        match target.tls.as_ref().map(|t| &t.mode) {
            Some(TlsMode::Files { certificate, key }) => Some(TlsFiles {
                certificate: format!("[secret from {}]", describe(certificate)),
                key: format!("[secret from {}]", describe(key)),
            }),
            _ => None,
        }
    }
}

/// Where a secret comes from, for messages (never its value).
pub(crate) fn describe(from: &SecretSource) -> String {
    match from {
        SecretSource::Env(var) => format!("environment variable {var}"),
        SecretSource::File(path) => format!("file {path}"),
        SecretSource::Command(command) => format!("command `{command}`"),
    }
}

pub(crate) fn secret_value(
    config: &Config,
    from: &SecretSource,
) -> std::result::Result<String, String> {
    let value = match from {
        SecretSource::Env(var) => std::env::var(var).map_err(|_| format!("{var} is not set"))?,
        SecretSource::File(path) => {
            let path = crate::config::expand_home(path);
            let path = config.root.join(path);
            std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        }
        SecretSource::Command(command) => {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .current_dir(&config.root)
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::inherit())
                .output()
                .map_err(|e| format!("cannot run sh: {e}"))?;
            if !out.status.success() {
                return Err(format!("the command failed ({})", out.status));
            }
            String::from_utf8(out.stdout)
                .map_err(|_| "the command printed something that is not UTF-8".to_string())?
        }
    };
    let value = value.strip_suffix('\n').unwrap_or(&value).to_string();
    if value.is_empty() {
        return Err("it is empty".into());
    }
    if value.contains('\0') {
        return Err("it contains a NUL byte".into());
    }
    Ok(value)
}

/// 16 random bytes as hex, for lock tokens and marker nonces.
pub(crate) fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if filled.is_err() {
        // Not secret, only unguessable by accident: time and pid will do.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            ^ u128::from(std::process::id());
        bytes = seed.to_le_bytes();
    }
    crate::build::archive::hex(&bytes)
}

/// `user@machine` of whoever runs shipit, for the lock and the deploy log.
fn deployer() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .or_else(|| {
            let out = std::process::Command::new("id").arg("-un").output().ok()?;
            Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown".into());
    format!("{user}@{}", hostname().unwrap_or_else(|| "unknown".into()))
}

/// This machine's name, as gethostname(3) says (POSIX: Linux and macOS alike).
fn hostname() -> Option<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname writes at most `buffer.len()` bytes into `buffer`, which we own.
    let rc = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if rc != 0 {
        return None;
    }
    let end = buffer.iter().position(|b| *b == 0).unwrap_or(buffer.len());
    let name = String::from_utf8_lossy(&buffer[..end]).trim().to_string();
    (!name.is_empty()).then_some(name)
}

/// A resolved target with every kind of step (hooks, a once hook, nginx, supervisor) for tests.
#[cfg(test)]
pub(crate) fn sample() -> Resolved {
    use crate::config::{Hook, HookTable};
    Resolved {
        project: "hello".into(),
        target: "production".into(),
        hosts: "deploy@web1 deploy@web2".into(),
        deploy_to: "/srv/my app".into(),
        python: "python3".into(),
        installer: Installer::Auto,
        requirements: "requirements/deployment.txt".into(),
        manage_py: "manage.py".into(),
        settings_module: "hello.settings.selected".into(),
        shared_dirs: vec!["var".into()],
        shared_files: vec![".env".into()],
        hooks: Hooks {
            before_migrate: vec![Hook::Command("echo before".into())],
            after_migrate: vec![Hook::Table(HookTable {
                run: "echo once".into(),
                once: true,
            })],
            after_switch: vec![Hook::Command("echo after".into())],
        },
        nginx: Some(Nginx {
            site: "/etc/nginx/sites-enabled/hello.conf".into(),
            test: "nginx -t".into(),
            reload: "nginx -s reload".into(),
            websocket_paths: Vec::new(),
        }),
        tls: None,
        app: Some(App {
            manager: crate::config::Manager::Supervisor,
            supervisor: crate::config::Supervisor::default(),
            systemd: crate::config::Systemd::default(),
        }),
        server: AppServer::Gunicorn,
        health: Health::default(),
        migrations: crate::config::Migrations::default(),
        database: crate::config::Database::default(),
        keep_releases: 5,
        primary: 0,
        migrate: MigrateOn::Once,
        batch: None,
        prepared_timeout: crate::config::DEFAULT_PREPARED_TIMEOUT,
        deployer: "alice@laptop".into(),
        lock_token: "token".into(),
        app_user: None,
        allow_root: false,
        placements: vec![Placement::everything(&[])],
        notify: Notify::default(),
    }
}

/// A complete preamble for tests of the shell library: `dir` is `deploy_to`, nothing managed,
/// and the release directory exists.
#[cfg(test)]
pub(crate) fn test_vars(dir: &str) -> Preamble {
    let resolved = Resolved {
        deploy_to: dir.into(),
        nginx: None,
        app: None,
        ..sample()
    };
    let release = ReleaseId::parse("20261122010320");
    std::fs::create_dir_all(format!("{dir}/releases/20261122010320")).unwrap();
    resolved.vars(
        Op::Deploy,
        BreakLock::No,
        &RunVars {
            release,
            ..RunVars::default()
        },
    )
}

/// The commands render a release's configs through here; the backends own it.
pub(crate) use crate::manager::service_configs;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deployer_is_user_at_this_machines_name() {
        let name = std::process::Command::new("hostname").output().unwrap();
        let name = String::from_utf8(name.stdout).unwrap();
        assert_eq!(hostname().as_deref(), Some(name.trim()));
        assert!(
            deployer().ends_with(&format!("@{}", name.trim())),
            "{}",
            deployer()
        );
    }

    fn parse(text: &str) -> Config {
        Config::parse(
            std::path::Path::new("shipit.toml"),
            std::path::Path::new("."),
            text,
        )
        .unwrap()
    }

    #[test]
    fn a_targets_own_notify_table_replaces_the_top_level_one() {
        let config = parse(
            r#"
[project]
name = "hello"

[notify.webhooks.team]
url = "https://hooks.example/team"

[targets.prod]
hosts = ["a"]
deploy_to = "/srv/hello"
environment = "deployment"

[targets.staging]
hosts = ["b"]
deploy_to = "/srv/hello"
environment = "staging"
[targets.staging.notify]
timeout = 1
"#,
        );
        let notify = |name: &str| {
            Resolved::new(&config, config.target(name).unwrap())
                .unwrap()
                .notify
        };
        assert_eq!(notify("prod"), config.notify);
        assert_eq!(notify("prod").webhooks.len(), 1);
        let staging = notify("staging");
        assert!(staging.webhooks.is_empty());
        assert_eq!(staging.timeout, std::time::Duration::from_secs(1));
    }

    #[test]
    fn roles_and_the_primary_decide_what_each_host_runs() {
        let text = r#"
[project]
name = "hello"

[targets.prod]
hosts = ["a", "b", "c"]
deploy_to = "/srv/hello"
environment = "deployment"
primary = "b"

[targets.prod.processes]
worker = "celery -A hello worker"
beat = { run = "celery -A hello beat", once = true }

[targets.prod.roles]
web = ["a", "b"]
worker = ["c"]
"#;
        let config = parse(text);
        let target = config.target("prod").unwrap();
        let names = |list: &[(String, Process)]| -> Vec<String> {
            list.iter().map(|(n, _)| n.clone()).collect()
        };
        let [a, b, c] = [0, 1, 2].map(|host| placement(target, host));
        assert!(a.web && names(&a.processes).is_empty() && a.once.is_empty());
        assert!(b.web && names(&b.processes).is_empty() && names(&b.once) == ["beat"]);
        assert!(!c.web && names(&c.processes) == ["worker"] && c.once.is_empty());
    }

    #[test]
    fn a_canary_that_leaves_out_the_primary_places_no_singleton_and_no_scheduler() {
        let text = r#"
[project]
name = "hello"

[targets.prod]
hosts = ["a", "b"]
deploy_to = "/srv/hello"
environment = "deployment"

[targets.prod.processes]
beat = { run = "celery -A hello beat", once = true }

[targets.prod.schedule]
"* * * * *" = "./manage.py clearsessions"
"#;
        let config = parse(text);
        let prod = config.target("prod").unwrap();
        let once = |target: &Target, host| -> Vec<String> {
            placement(target, host)
                .once
                .into_iter()
                .map(|(n, _)| n)
                .collect()
        };
        assert_eq!(once(prod, 0), ["schedule", "beat"]);
        assert!(once(prod, 1).is_empty());
        // `--hosts b`: b is the subset's first host, and runs no singleton.
        let canary = prod.canary(&["b".into()], &[], true).unwrap();
        assert_eq!(canary.hosts.len(), 1);
        assert!(once(&canary, 0).is_empty());
        // `--hosts a`: the primary is deployed, with its singletons.
        let canary = prod.canary(&["a".into()], &[], true).unwrap();
        assert_eq!(once(&canary, 0), ["schedule", "beat"]);
    }

    #[test]
    fn every_web_host_runs_the_renewal_of_its_acme_certificate_and_the_primary_the_schedule() {
        let text = r#"
[project]
name = "hello"

[targets.prod]
hosts = ["a", "b", "c"]
deploy_to = "/srv/hello"
environment = "deployment"

[targets.prod.roles]
web = ["a", "b"]
worker = ["c"]

[targets.prod.processes]
worker = "celery -A hello worker"

[targets.prod.schedule]
"0 3 * * *" = "./manage.py clearsessions"

[targets.prod.nginx]
site = "/etc/nginx/sites-enabled/hello.conf"

[targets.prod.tls]
domains = ["example.com"]
"#;
        let config = parse(text);
        let prod = config.target("prod").unwrap();
        let [a, b, c] = [0, 1, 2].map(|host| placement(prod, host));
        let renew = vec!["/srv/hello/tls/renew".to_string()];
        assert_eq!(
            a.schedule[0],
            ("0 3 * * *".into(), vec!["./manage.py clearsessions".into()])
        );
        assert_eq!(a.schedule[1].1, renew);
        assert_eq!(b.schedule.len(), 1);
        assert_eq!(b.schedule[0].1, renew);
        assert_ne!(
            a.schedule[1].0, b.schedule[0].0,
            "the hosts ask at different times"
        );
        assert_eq!(b.once[0].0, SCHEDULER);
        assert!(c.schedule.is_empty() && c.once.is_empty());
        // `tls.renew` sets the time; files mode renews nothing.
        let every = text.replace(
            "domains = [\"example.com\"]",
            "domains = [\"example.com\"]\nrenew = \"*/5 * * * *\"",
        );
        let b = placement(parse(&every).target("prod").unwrap(), 1);
        assert_eq!(b.schedule, [("*/5 * * * *".to_string(), renew)]);
        let files = text.replace(
            "domains = [\"example.com\"]",
            "certificate = { file = \"c.pem\" }\nkey = { file = \"k.pem\" }",
        );
        let b = placement(parse(&files).target("prod").unwrap(), 1);
        assert!(b.schedule.is_empty() && b.once.is_empty());
    }

    #[test]
    fn a_secret_too_short_to_mask_is_refused_naming_it_and_its_source() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pin"), "42\n").unwrap();
        std::fs::write(
            dir.path().join("key"),
            "-----BEGIN KEY-----\nab\n-----END KEY-----\n",
        )
        .unwrap();
        let text = r#"
[project]
name = "hello"

[targets.prod]
hosts = ["a"]
deploy_to = "/srv/hello"
environment = "deployment"
secrets = { PIN = { file = "pin" }, TLS_KEY = { file = "key" } }
"#;
        let config = Config::parse(&dir.path().join("shipit.toml"), dir.path(), text).unwrap();
        let error = AppEnv::resolve(&config, config.target("prod").unwrap()).unwrap_err();
        assert_eq!(error.exit_code(), crate::error::EXIT_USAGE);
        let message = error.to_string();
        assert!(message.contains("secret PIN (from file pin)"), "{message}");
        assert!(message.contains("too short"), "{message}");
        assert!(!message.contains("42"), "{message}");
        assert!(error.hint().unwrap().contains("longer value"), "{error:?}");

        // A long value with short lines is masked whole: it is taken.
        std::fs::write(dir.path().join("pin"), "4242\n").unwrap();
        let env = AppEnv::resolve(&config, config.target("prod").unwrap()).unwrap();
        assert_eq!(env.secrets.len(), 2);
    }
}
