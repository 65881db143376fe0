//! The remote steps as data: a stable id, the one-line call of its shell function in
//! `templates/remote/`, and where it runs.
//!
//! Ids never contain user text (a hook is `before_migrate[0]`), so a marker line always parses
//! and a failure is reported under the name the plan gave it.

use super::quote;
use crate::migrations::Unapply;
use crate::release::ReleaseId;

pub(crate) use crate::remote::layout::LOCKED_STATUS;

/// Where a step runs in a fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// On every host.
    EachHost,
    /// On the primary host only, once per run (e.g. `migrate` against a shared database).
    Once,
}

/// The hook lists of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HookPhase {
    BeforeMigrate,
    AfterMigrate,
    AfterSwitch,
}

impl HookPhase {
    fn name(self) -> &'static str {
        match self {
            HookPhase::BeforeMigrate => "before_migrate",
            HookPhase::AfterMigrate => "after_migrate",
            HookPhase::AfterSwitch => "after_switch",
        }
    }
}

/// What a script runs when one of its steps fails (a shell function of the library).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cleanup {
    /// Give the lock back (begin and lock-only scripts).
    Lock,
    /// Undo what preparing left outside the release, mark it failed, unlock.
    Prepare,
    /// Switch back unless committed, undo, unlock.
    Switch,
}

impl Cleanup {
    /// The shell function.
    pub(crate) fn function(self) -> &'static str {
        match self {
            Cleanup::Lock => "on_lock_failure",
            Cleanup::Prepare => "on_prepare_failure",
            Cleanup::Switch => "on_switch_failure",
        }
    }
}

/// One unit of remote work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Create the directory layout.
    Layout,
    /// Refuse unless something is deployed (prune, rollback).
    RequireReleases,
    /// Take the lock.
    Lock,
    /// Clear up after the app servers earlier runs left stopping in the background (see
    /// [`Step::StopOldApp`]): stop what they did not; with `wait`, wait for those still
    /// stopping (before a rollback starts a release again); else they count as in use.
    Reap { wait: bool },
    /// Report who holds the lock (`shipit lock status`).
    LockStatus,
    /// Give back a held lock, or one whose run is gone (`shipit lock release`).
    LockRelease,
    /// Report the deploy log (`shipit audit`).
    Audit,
    /// Refuse unless a release is live (`shipit run`).
    RequireCurrent,
    /// An operator's command in the live release (`shipit run`); its status is the command's.
    Run(String),
    /// A database snapshot now, with the live release's code (`shipit db backup`).
    DbBackup,
    /// Report the database snapshots (`shipit db list`).
    DbList,
    /// Restore a database snapshot (a name, or a release id: its newest) (`shipit db restore`).
    DbRestore(String),
    /// Report releases, `current`, whether the archive is there, uv.
    Facts,
    /// Report releases with their sizes.
    Inventory,
    /// Receive the archive (`size` bytes of the local file `archive`) on the script's stdin,
    /// unless the host has it already: the begin script asks for it, so it costs no exec of
    /// its own. Or a delta against one of `bases`, when the host's live release is one.
    Upload {
        archive: std::path::PathBuf,
        size: u64,
        bases: Vec<crate::delta::Base>,
    },
    /// Check the uploaded archive's sha256.
    Verify,
    /// Unpack into `releases/<id>`.
    Unpack,
    /// Write the release's env file (its text; secrets inside, so the call is never shown).
    Env(String),
    /// Link shared directories and files.
    Shared {
        dirs: Vec<String>,
        files: Vec<String>,
    },
    /// Build or reuse the virtualenv.
    Virtualenv,
    /// Ask the release's settings where static and media files live.
    Settings,
    /// A user's hook command.
    Hook {
        phase: HookPhase,
        index: usize,
        command: String,
        once: bool,
    },
    /// `migrate`, under the database's advisory lock; `once`: on the primary only. Skipped
    /// when provably nothing changed since the live release's migrate, unless `always`.
    /// `defer`: when the migration files are the live release's, the database is read in the
    /// background and [`Step::MigrateCheck`] decides, once the app server has started.
    Migrate {
        once: bool,
        always: bool,
        defer: bool,
    },
    /// Finish what a deferred [`Step::Migrate`] left: skip `migrate` if the database is
    /// unchanged, else stop the new app server, migrate, and start it again.
    MigrateCheck,
    /// Apply the migrations the migration gate held for after the switch (the fact
    /// `after_switch`), once every host serves the release; `once`: on the primary only, after
    /// the last batch. The switch stands whatever it does.
    MigrateAfterSwitch { once: bool },
    /// `collectstatic`.
    Collectstatic,
    /// Start these steps (calls without arguments) one after another in the background while
    /// the script goes on; each one's output, status and time go to files in the release's
    /// `.shipit/background/`, for [`Step::Await`] to report.
    Background(Vec<Step>),
    /// Wait for a step [`Step::Background`] started and report its output and status as its
    /// own: it keeps its id, so progress, a failure and its last lines name that step.
    Await(Box<Step>),
    /// Keep the rendered nginx site, supervisor programs and systemd units in the release.
    Configs(crate::manager::ServiceConfigs),
    /// Write the target's certificate chain and key (files mode; the key is secret, so the
    /// call is never shown).
    TlsFiles { certificate: String, key: String },
    /// Make a placeholder certificate for `nginx -t` until ACME issues the first one.
    TlsPlaceholder,
    /// Have the ACME `directory` issue the certificate for `domains` unless this host has it.
    TlsIssue {
        directory: String,
        email: String,
        directory_ca: String,
        domains: Vec<String>,
    },
    /// `shipit tls renew`: run this host's renewal now (what its timer runs); `force`: even
    /// when the certificate is not due.
    TlsRenew { force: bool },
    /// `shipit tls status`: this host's certificate (the `tls` check) and its last renewal.
    TlsStatus,
    /// Install and check the nginx site.
    NginxCheck,
    /// Start the release's app server and wait for it to answer.
    StartApp,
    /// Mark the release prepared.
    Prepared,
    /// In a script that prepares and switches, wait for shipit's go-ahead before switching.
    Gate,
    /// A fleet's prepared host, whose switch comes in a later script: leave a watch that
    /// abandons the release and gives the lock back when no switch comes in time.
    AwaitSwitch,
    /// Refuse to switch without the lock.
    CheckLock,
    /// Rename a fresh symlink over `current`.
    Switch,
    /// Reload nginx if its site changed.
    ReloadNginx,
    /// Check the live release through `current`.
    HealthCheck,
    /// Record the release live: the switch is committed.
    Finish,
    /// Remove releases the keep policy chose after a deploy, and unlock.
    Prune(Vec<ReleaseId>),
    /// Stop the other releases' app servers: they get SIGTERM and drain in the background,
    /// unwaited for (the next run's [`Step::Reap`] waits for them), unless this release's
    /// singletons take over from old ones.
    StopOldApp,
    /// Report applied and known migrations (rollback).
    Migrations,
    /// Unapply migrations with the live release's code (rollback).
    Unapply(Vec<Unapply>),
    /// Remove releases and unlock (`releases --prune`).
    Remove(Vec<ReleaseId>),
    /// Give the lock back at the end of a run that switched.
    Unlock,
    /// Give the lock back, changing nothing else.
    ReleaseLock,
    /// Abandon this host's prepared release because another host failed.
    Abort(String),
    /// Every read-only check of `shipit check`; the target's shared files are its arguments.
    Check(Vec<String>),
    /// Check that the nginx site knows maintenance mode and put the page (its text) beside
    /// where it goes.
    MaintenancePrepare(String),
    /// Rename the prepared page into place: nginx answers 503 from the next request on.
    MaintenanceOn,
    /// Remove the page: nginx serves the app again.
    MaintenanceOff,
    /// Print the last `lines` lines of `process`'s logs matching `grep` (an ERE; empty: all),
    /// and with `follow`, new ones until shipit goes.
    Logs {
        process: String,
        lines: u32,
        follow: bool,
        grep: String,
    },
}

fn ids(ids: &[ReleaseId]) -> String {
    ids.iter()
        .map(|id| format!(" {id}"))
        .collect::<Vec<_>>()
        .concat()
}

impl Step {
    /// The stable id shown in progress lines and errors.
    pub(crate) fn id(&self) -> String {
        match self {
            Step::Hook { phase, index, .. } => format!("{}[{index}]", phase.name()),
            Step::Await(step) => step.id(),
            other => other.fixed_id().to_string(),
        }
    }

    fn fixed_id(&self) -> &'static str {
        match self {
            Step::Layout => "layout",
            Step::RequireReleases => "require-releases",
            Step::Lock => "lock",
            Step::Reap { .. } => "reap",
            Step::LockStatus => "lock-status",
            Step::LockRelease => "lock-release",
            Step::Audit => "audit",
            Step::RequireCurrent => "require-current",
            Step::Run(_) => "run",
            Step::DbBackup => "db-backup",
            Step::DbList => "db-list",
            Step::DbRestore(_) => "db-restore",
            Step::Facts => "facts",
            Step::Inventory => "inventory",
            Step::Upload { .. } => "upload",
            Step::Verify => "verify",
            Step::Unpack => "unpack",
            Step::Env(_) => "env",
            Step::Shared { .. } => "shared",
            Step::Virtualenv => "virtualenv",
            Step::Settings => "settings",
            Step::Hook { .. } => "hook",
            Step::Migrate { .. } => "migrate",
            Step::MigrateCheck => "migrate-check",
            Step::MigrateAfterSwitch { .. } => "migrate-after-switch",
            Step::Collectstatic => "collectstatic",
            Step::Background(_) => "background",
            Step::Await(_) => "await",
            Step::Configs(_) => "configs",
            Step::TlsFiles { .. } => "tls-files",
            Step::TlsPlaceholder => "tls-placeholder",
            Step::TlsIssue { .. } => "tls-issue",
            Step::TlsRenew { .. } => "tls-renew",
            Step::TlsStatus => "tls-status",
            Step::NginxCheck => "nginx-check",
            Step::StartApp => "start-app",
            Step::Prepared => "prepared",
            Step::Gate => "gate",
            Step::AwaitSwitch => "await-switch",
            Step::CheckLock => "check-lock",
            Step::Switch => "switch",
            Step::ReloadNginx => "reload-nginx",
            Step::HealthCheck => "health-check",
            Step::Finish => "finish",
            Step::Prune(_) => "prune",
            Step::StopOldApp => "stop-old-app",
            Step::Migrations => "migrations",
            Step::Unapply(_) => "unapply",
            Step::Remove(_) => "remove",
            Step::Unlock => "unlock",
            Step::ReleaseLock => "release-lock",
            Step::Abort(_) => "abort",
            Step::Check(_) => "check",
            Step::Logs { .. } => "logs",
            Step::MaintenancePrepare(_) => "maintenance-prepare",
            Step::MaintenanceOn => "maintenance-on",
            Step::MaintenanceOff => "maintenance-off",
        }
    }

    /// The id plus what a person needs to recognise it (a hook's command).
    pub(crate) fn label(&self) -> String {
        match self {
            Step::Hook { command, once, .. } => format!(
                "{} ({}{})",
                self.id(),
                command.lines().next().unwrap_or(""),
                if *once { ", once" } else { "" }
            ),
            Step::Background(steps) => format!(
                "background ({})",
                steps.iter().map(Step::id).collect::<Vec<_>>().join(", ")
            ),
            Step::Await(step) => step.label(),
            Step::Unapply(steps) => format!(
                "unapply ({}; with the live release's code, once)",
                steps
                    .iter()
                    .map(|u| format!("{} to {}", u.app, u.to))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            other => other.id(),
        }
    }

    /// The one-line call of the step's shell function.
    pub(crate) fn call(&self) -> String {
        let function = format!("step_{}", self.fixed_id().replace('-', "_"));
        let args: Vec<String> = match self {
            Step::Shared { dirs, files } => dirs
                .iter()
                .map(|d| quote(d))
                .chain(std::iter::once("--".to_string()))
                .chain(files.iter().map(|f| quote(f)))
                .collect(),
            Step::Hook { command, .. } | Step::Run(command) | Step::DbRestore(command) => {
                vec![quote(command)]
            }
            Step::Env(file) => vec![super::base64(file.as_bytes())],
            Step::TlsFiles { certificate, key } => vec![
                super::base64(certificate.as_bytes()),
                super::base64(key.as_bytes()),
            ],
            Step::TlsIssue {
                directory,
                email,
                directory_ca,
                domains,
            } => [directory, email, directory_ca]
                .into_iter()
                .chain(domains)
                .map(|v| quote(v))
                .collect(),
            Step::TlsRenew { force: true } => vec!["--force".into()],
            Step::Configs(configs) => {
                vec![configs
                    .bundle()
                    .map_or_else(|| "-".to_string(), |text| super::base64(text.as_bytes()))]
            }
            Step::Prune(doomed) | Step::Remove(doomed) => {
                return format!("{function}{}", ids(doomed))
            }
            Step::Unapply(steps) => steps
                .iter()
                .flat_map(|u| [quote(&u.app), quote(&u.to)])
                .collect(),
            Step::Abort(reason) => vec![quote(&one_line(reason))],
            Step::Background(steps) => steps
                .iter()
                .flat_map(|s| [quote(&s.id()), s.call()])
                .collect(),
            Step::Await(step) => vec![quote(&step.id())],
            Step::Check(files) => files.iter().map(|f| quote(f)).collect(),
            Step::MaintenancePrepare(page) => vec![super::base64(page.as_bytes())],
            Step::Logs {
                process,
                lines,
                follow,
                grep,
            } => vec![
                quote(process),
                lines.to_string(),
                if *follow { "1" } else { "0" }.to_string(),
                quote(grep),
            ],
            Step::Migrate { always: true, .. } => vec!["always".to_string()],
            Step::Migrate { defer: true, .. } => vec!["defer".to_string()],
            Step::Reap { wait: true } => vec!["wait".to_string()],
            Step::Upload { size, bases, .. } => std::iter::once(size.to_string())
                .chain(bases.iter().map(|b| quote(&b.manifest)))
                .collect(),
            _ => Vec::new(),
        };
        if args.is_empty() {
            function
        } else {
            format!("{function} {}", args.join(" "))
        }
    }

    /// Where the step runs.
    pub(crate) fn scope(&self) -> Scope {
        match self {
            Step::Migrate { once: true, .. }
            | Step::MigrateAfterSwitch { once: true }
            | Step::Unapply(_) => Scope::Once,
            Step::Hook { once: true, .. } => Scope::Once,
            _ => Scope::EachHost,
        }
    }

    /// Whether a step run after every host switched is needed, from what the host reported
    /// so far: the held migrations only when the gate held some.
    pub(crate) fn wanted(&self, facts: &crate::remote::facts::Facts) -> bool {
        match self {
            Step::MigrateAfterSwitch { .. } => crate::remote::facts::after_switch(facts).is_some(),
            _ => true,
        }
    }

    /// Whether the switch stands once this step has begun: a failure from here on undoes
    /// nothing (the release is recorded live, the previous app server may be gone).
    pub(crate) fn after_commit(&self) -> bool {
        matches!(
            self,
            Step::Finish
                | Step::Prune(_)
                | Step::Unlock
                | Step::StopOldApp
                | Step::MigrateAfterSwitch { .. }
        )
    }
}

/// `text` with control characters (newlines) replaced by spaces: for values that end up in
/// one-line records (the deploy log).
pub(crate) fn one_line(text: &str) -> String {
    crate::output::printable(text, false).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_is_exact() {
        let id = ReleaseId::parse("20261122010320").unwrap();
        let cases = [
            (Step::Layout, "layout", "step_layout"),
            (Step::Lock, "lock", "step_lock"),
            (Step::Reap { wait: false }, "reap", "step_reap"),
            (Step::Reap { wait: true }, "reap", "step_reap wait"),
            (
                Step::Upload {
                    archive: "/tmp/x y.tar.gz".into(),
                    size: 14784,
                    bases: vec![],
                },
                "upload",
                "step_upload 14784",
            ),
            (
                Step::Upload {
                    archive: "/tmp/x y.tar.gz".into(),
                    size: 14784,
                    bases: vec![crate::delta::Base {
                        manifest: "ab12".into(),
                        archive: "/tmp/old.tar.gz".into(),
                    }],
                },
                "upload",
                "step_upload 14784 ab12",
            ),
            (Step::LockStatus, "lock-status", "step_lock_status"),
            (Step::LockRelease, "lock-release", "step_lock_release"),
            (Step::Audit, "audit", "step_audit"),
            (Step::DbBackup, "db-backup", "step_db_backup"),
            (Step::DbList, "db-list", "step_db_list"),
            (
                Step::DbRestore("20261122010320-20261123000000".into()),
                "db-restore",
                "step_db_restore 20261122010320-20261123000000",
            ),
            (
                Step::Run("./manage.py check --tag 'a b'".into()),
                "run",
                r"step_run './manage.py check --tag '\''a b'\'''",
            ),
            (
                Step::Shared {
                    dirs: vec!["var".into(), "media files".into()],
                    files: vec![".env".into()],
                },
                "shared",
                "step_shared var 'media files' -- .env",
            ),
            (
                Step::Hook {
                    phase: HookPhase::AfterSwitch,
                    index: 2,
                    command: "echo a\necho 'b'".into(),
                    once: false,
                },
                "after_switch[2]",
                "step_hook 'echo a\necho '\\''b'\\'''",
            ),
            (
                Step::Migrate {
                    once: true,
                    always: false,
                    defer: false,
                },
                "migrate",
                "step_migrate",
            ),
            (
                Step::Migrate {
                    once: true,
                    always: true,
                    defer: false,
                },
                "migrate",
                "step_migrate always",
            ),
            (
                Step::Migrate {
                    once: false,
                    always: false,
                    defer: true,
                },
                "migrate",
                "step_migrate defer",
            ),
            (Step::MigrateCheck, "migrate-check", "step_migrate_check"),
            (
                Step::MigrateAfterSwitch { once: true },
                "migrate-after-switch",
                "step_migrate_after_switch",
            ),
            (
                Step::Env("A='b c'\n".into()),
                "env",
                "step_env QT0nYiBjJwo=",
            ),
            (
                Step::Configs({
                    let mut configs = crate::manager::ServiceConfigs::default();
                    configs.add("nginx.conf", "nginx site", "foo".into());
                    configs.add("systemd/a@.service", "systemd units", "bar\n".into());
                    configs
                }),
                "configs",
                // "#@shipit-file nginx.conf\nfoo\n#@shipit-file systemd/a@.service\nbar\n"
                "step_configs I0BzaGlwaXQtZmlsZSBuZ2lueC5jb25mCmZvbwojQHNoaXBpdC1maWxlIHN5c3RlbWQvYUAuc2VydmljZQpiYXIK",
            ),
            (
                Step::Configs(crate::manager::ServiceConfigs::default()),
                "configs",
                "step_configs -",
            ),
            (
                Step::Background(vec![Step::Settings, Step::Collectstatic]),
                "background",
                "step_background settings step_settings collectstatic step_collectstatic",
            ),
            (
                Step::Await(Box::new(Step::Collectstatic)),
                "collectstatic",
                "step_await collectstatic",
            ),
            (
                Step::TlsFiles {
                    certificate: "c".into(),
                    key: "k".into(),
                },
                "tls-files",
                "step_tls_files Yw== aw==",
            ),
            (Step::TlsPlaceholder, "tls-placeholder", "step_tls_placeholder"),
            (
                Step::TlsIssue {
                    directory: "https://127.0.0.1:14000/dir".into(),
                    email: String::new(),
                    directory_ca: "/etc/ca b.pem".into(),
                    domains: vec!["a.example".into(), "b.example".into()],
                },
                "tls-issue",
                "step_tls_issue https://127.0.0.1:14000/dir '' '/etc/ca b.pem' a.example b.example",
            ),
            (Step::TlsRenew { force: false }, "tls-renew", "step_tls_renew"),
            (
                Step::TlsRenew { force: true },
                "tls-renew",
                "step_tls_renew --force",
            ),
            (Step::TlsStatus, "tls-status", "step_tls_status"),
            (Step::NginxCheck, "nginx-check", "step_nginx_check"),
            (Step::StartApp, "start-app", "step_start_app"),
            (
                Step::Prune(vec![id, id]),
                "prune",
                "step_prune 20261122010320 20261122010320",
            ),
            (Step::Prune(vec![]), "prune", "step_prune"),
            (Step::StopOldApp, "stop-old-app", "step_stop_old_app"),
            (
                Step::Unapply(vec![Unapply {
                    app: "pages".into(),
                    to: "zero".into(),
                }]),
                "unapply",
                "step_unapply pages zero",
            ),
            (
                Step::Abort("host b\nfailed".into()),
                "abort",
                "step_abort 'host b failed'",
            ),
            (Step::ReleaseLock, "release-lock", "step_release_lock"),
            (Step::Unlock, "unlock", "step_unlock"),
            (
                Step::Logs {
                    process: "web".into(),
                    lines: 20,
                    follow: true,
                    grep: "GET /(a|b)".into(),
                },
                "logs",
                "step_logs web 20 1 'GET /(a|b)'",
            ),
            (
                Step::MaintenancePrepare("<p>x</p>".into()),
                "maintenance-prepare",
                "step_maintenance_prepare PHA+eDwvcD4=",
            ),
            (Step::MaintenanceOn, "maintenance-on", "step_maintenance_on"),
            (
                Step::MaintenanceOff,
                "maintenance-off",
                "step_maintenance_off",
            ),
            (
                Step::Check(vec![".env".into(), "conf/my key".into()]),
                "check",
                "step_check .env 'conf/my key'",
            ),
        ];
        for (step, id, call) in cases {
            assert_eq!(step.id(), id);
            assert_eq!(step.call(), call, "{id}");
        }
    }

    #[test]
    fn every_called_function_exists_in_the_library() {
        let library = crate::remote::library::LIBRARY;
        let id = ReleaseId::parse("20261122010320").unwrap();
        for step in [
            Step::Layout,
            Step::RequireReleases,
            Step::Lock,
            Step::Reap { wait: true },
            Step::LockStatus,
            Step::LockRelease,
            Step::Audit,
            Step::RequireCurrent,
            Step::Run(String::new()),
            Step::DbBackup,
            Step::DbList,
            Step::DbRestore(String::new()),
            Step::Facts,
            Step::Inventory,
            Step::Upload {
                archive: "a.tar.gz".into(),
                size: 1,
                bases: vec![],
            },
            Step::Verify,
            Step::Unpack,
            Step::Env(String::new()),
            Step::Virtualenv,
            Step::Settings,
            Step::Migrate {
                once: false,
                always: false,
                defer: false,
            },
            Step::Collectstatic,
            Step::Background(vec![]),
            Step::Await(Box::new(Step::Settings)),
            Step::TlsFiles {
                certificate: String::new(),
                key: String::new(),
            },
            Step::TlsPlaceholder,
            Step::TlsIssue {
                directory: String::new(),
                email: String::new(),
                directory_ca: String::new(),
                domains: vec![],
            },
            Step::NginxCheck,
            Step::StartApp,
            Step::MigrateCheck,
            Step::Prepared,
            Step::Gate,
            Step::AwaitSwitch,
            Step::CheckLock,
            Step::Switch,
            Step::ReloadNginx,
            Step::HealthCheck,
            Step::Finish,
            Step::Prune(vec![id]),
            Step::StopOldApp,
            Step::Migrations,
            Step::Unapply(vec![]),
            Step::Remove(vec![]),
            Step::Unlock,
            Step::ReleaseLock,
            Step::Abort(String::new()),
            Step::Check(vec![]),
            Step::MaintenancePrepare(String::new()),
            Step::MaintenanceOn,
            Step::MaintenanceOff,
            Step::Logs {
                process: String::new(),
                lines: 0,
                follow: false,
                grep: String::new(),
            },
        ] {
            let call = step.call();
            let function = call.split(' ').next().unwrap();
            assert!(
                library.contains(&format!("\n{function}() {{")),
                "{function} is not defined in templates/remote/"
            );
        }
        for cleanup in [Cleanup::Lock, Cleanup::Prepare, Cleanup::Switch] {
            assert!(library.contains(&format!("\n{}() {{", cleanup.function())));
        }
    }

    #[test]
    fn migrate_and_unapply_run_once() {
        assert_eq!(
            Step::Migrate {
                once: true,
                always: false,
                defer: false
            }
            .scope(),
            Scope::Once
        );
        assert_eq!(
            Step::Migrate {
                once: false,
                always: true,
                defer: false
            }
            .scope(),
            Scope::EachHost
        );
        assert_eq!(Step::Unapply(vec![]).scope(), Scope::Once);
        assert_eq!(Step::Collectstatic.scope(), Scope::EachHost);
    }

    #[test]
    fn an_unapply_says_what_it_unapplies_and_with_which_code() {
        let step = Step::Unapply(vec![
            Unapply {
                app: "pages".into(),
                to: "0001_initial".into(),
            },
            Unapply {
                app: "shop".into(),
                to: "zero".into(),
            },
        ]);
        assert_eq!(
            step.label(),
            "unapply (pages to 0001_initial, shop to zero; with the live release's code, once)"
        );
    }

    #[test]
    fn an_awaited_step_keeps_its_name() {
        let awaited = Step::Await(Box::new(Step::Settings));
        assert_eq!(
            (awaited.id(), awaited.label()),
            ("settings".into(), "settings".into())
        );
        assert_eq!(
            Step::Background(vec![Step::Settings, Step::Collectstatic]).label(),
            "background (settings, collectstatic)"
        );
    }
}
