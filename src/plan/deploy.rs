//! The remote side of `shipit deploy`, as phases of steps.
//!
//! 1. **begin**: create the layout, take the lock, clear up after app servers earlier runs left
//!    stopping, report facts (releases, `current`, whether the archive is already there), and
//!    receive the archive on the script's stdin unless the host has it.
//! 2. **prepare**: verify, unpack, link shared paths, build or reuse the
//!    virtualenv, hooks, `migrate` (once, on the primary), `collectstatic` (in the background
//!    during `migrate` when nothing must run between them, see `overlaps_migrate`), keep the
//!    rendered service configs, install and check the nginx site, start the release's own app
//!    server.
//! 3. **switch** (only once every host is prepared): rename over `current`, reload nginx if its
//!    site changed, check health, `after_switch` hooks, record the release live (from here on
//!    nothing is undone), prune, stop the other app servers (in the background: they drain
//!    within their stop timeout while shipit reports success).

use crate::config::{MigrateOn, TlsMode};
use crate::release::{prune, Release, ReleaseId, State};
use crate::resolve::{Placement, Resolved, TlsFiles};

use super::step::{Cleanup, HookPhase, Step};
use super::Phase;

pub(crate) use crate::manager::ServiceConfigs;

/// Phase 1: layout, lock, clear up after what earlier runs left stopping (without waiting for
/// it: a release still stopping is reported `draining`, see [`prune_after_switch`]), facts,
/// and the archive (`size` bytes of the local file `archive`) unless the host has it, or a delta
/// against one of `bases` (see [`crate::delta`]).
pub(crate) fn begin(archive: &std::path::Path, size: u64, bases: Vec<crate::delta::Base>) -> Phase {
    Phase::new(
        vec![
            Step::Layout,
            Step::Lock,
            Step::Reap { wait: false },
            Step::Facts,
            Step::Upload {
                archive: archive.to_path_buf(),
                size,
                bases,
            },
        ],
        Cleanup::Lock,
    )
}

fn hooks(phase: HookPhase, list: &[crate::config::Hook]) -> impl Iterator<Item = Step> + '_ {
    list.iter()
        .enumerate()
        .map(move |(index, hook)| Step::Hook {
            phase,
            index,
            command: hook.command().to_string(),
            once: hook.once(),
        })
}

/// Phase 2: everything up to a running, unexposed new release on a host that runs what `placed`
/// says; `env` is the release's env file; `migrate_always`: run `migrate` even when provably
/// nothing changed.
pub(crate) fn prepare(
    resolved: &Resolved,
    placed: &Placement,
    configs: &ServiceConfigs,
    env: &str,
    tls_files: Option<&TlsFiles>,
    migrate_always: bool,
) -> Phase {
    let mut steps = vec![
        Step::Verify,
        Step::Unpack,
        Step::Env(env.to_string()),
        Step::Shared {
            dirs: resolved.shared_dirs.clone(),
            files: resolved.shared_files.clone(),
        },
        Step::Virtualenv,
    ];
    let start = start_services(resolved, placed);
    // Reading the database while the app server starts: see `Step::Migrate`.
    let defer = overlaps_migrate(resolved) && !migrate_always && start.contains(&Step::StartApp);
    let migrate = Step::Migrate {
        once: resolved.migrate == MigrateOn::Once,
        always: migrate_always,
        defer,
    };
    if overlaps_migrate(resolved) {
        steps.extend([
            Step::Background(vec![Step::Settings, Step::Collectstatic]),
            migrate,
            Step::Await(Box::new(Step::Settings)),
            Step::Await(Box::new(Step::Collectstatic)),
        ]);
    } else {
        steps.push(Step::Settings);
        steps.extend(hooks(
            HookPhase::BeforeMigrate,
            &resolved.hooks.before_migrate,
        ));
        steps.push(migrate);
        steps.push(Step::Collectstatic);
        steps.extend(hooks(
            HookPhase::AfterMigrate,
            &resolved.hooks.after_migrate,
        ));
    }
    steps.push(Step::Configs(configs.clone()));
    let (before, after) = tls_steps(resolved, placed, tls_files);
    steps.extend(before);
    steps.extend(start);
    if defer {
        steps.push(Step::MigrateCheck);
    }
    steps.extend(after);
    steps.push(Step::Prepared);
    Phase::new(steps, Cleanup::Prepare)
}

/// The certificate steps of a host that serves the site over https: those before the site is
/// installed and checked (the certificate it names must exist), and those after (ACME's
/// http-01 is answered by the new site). A deploy's only: a rollback never touches them.
fn tls_steps(
    resolved: &Resolved,
    placed: &Placement,
    files: Option<&TlsFiles>,
) -> (Vec<Step>, Vec<Step>) {
    let (Some(tls), Some(_), true) = (&resolved.tls, &resolved.nginx, placed.web) else {
        return (vec![], vec![]);
    };
    match (&tls.mode, files) {
        (TlsMode::Files { .. }, Some(files)) => (
            vec![Step::TlsFiles {
                certificate: files.certificate.clone(),
                key: files.key.clone(),
            }],
            vec![],
        ),
        (TlsMode::Files { .. }, None) => (vec![], vec![]),
        (
            TlsMode::Acme {
                directory,
                email,
                domains,
                directory_ca,
                ..
            },
            _,
        ) => (
            vec![Step::TlsPlaceholder],
            vec![Step::TlsIssue {
                directory: directory.clone(),
                email: email.clone().unwrap_or_default(),
                directory_ca: directory_ca.clone().unwrap_or_default(),
                domains: domains.clone(),
            }],
        ),
    }
}

/// Whether the settings probe and `collectstatic` run in the background while `migrate` runs:
/// neither needs the database, and on a first deploy they are about a third of the prepare
/// phase. Only without `before_migrate`/`after_migrate` hooks, which may prepare what
/// collectstatic reads and run in order around `migrate`; and only when `migrate` does not end
/// a round of the phase (one host, or `migrate` on every host), so that the job and its waits
/// are in the same script.
fn overlaps_migrate(resolved: &Resolved) -> bool {
    resolved.hooks.before_migrate.is_empty()
        && resolved.hooks.after_migrate.is_empty()
        && (resolved.placements.len() <= 1 || resolved.migrate == MigrateOn::EachHost)
}

/// Phase 3: switch `current`, check, record, prune `doomed`, stop the old app server and
/// processes (and hand the singletons over).
pub(crate) fn switch(resolved: &Resolved, placed: &Placement, doomed: Vec<ReleaseId>) -> Phase {
    let mut steps = switch_and_check(resolved, placed);
    steps.extend(hooks(HookPhase::AfterSwitch, &resolved.hooks.after_switch));
    steps.push(Step::Finish);
    steps.push(Step::Prune(doomed));
    if resolved.app.is_some() {
        steps.push(Step::StopOldApp);
    }
    steps.push(Step::MigrateAfterSwitch {
        once: resolved.migrate == MigrateOn::Once,
    });
    Phase::new(steps, Cleanup::Switch)
}

/// The steps every switch starts with (a deploy's and a rollback's): check the lock is still
/// this run's, rename over `current`, reload nginx if its site changed, check the app through
/// `current` (on the hosts that serve the web role).
pub(super) fn switch_and_check(resolved: &Resolved, placed: &Placement) -> Vec<Step> {
    let mut steps = vec![Step::CheckLock, Step::Switch];
    if resolved.nginx.is_some() && placed.web {
        steps.push(Step::ReloadNginx);
    }
    if resolved.app.is_some() && placed.web {
        steps.push(Step::HealthCheck);
    }
    steps
}

/// Install the release's nginx site and start its app server and processes, for the services
/// shipit manages and this host's roles: how a deploy's and a rollback's prepare end.
pub(super) fn start_services(resolved: &Resolved, placed: &Placement) -> Vec<Step> {
    let mut steps = Vec::new();
    if resolved.nginx.is_some() && placed.web {
        steps.push(Step::NginxCheck);
    }
    if resolved.app.is_some() && (placed.web || !placed.processes.is_empty()) {
        steps.push(Step::StartApp);
    }
    steps
}

/// What to prune on a host whose releases are `releases` once `new` is live there. A release in
/// use only because its app servers still stop in the background (`draining`: a deploy right
/// after another) may be pruned: the prune step waits for them first, so `keep` holds.
pub(crate) fn prune_after_switch(
    releases: &[Release],
    draining: &[ReleaseId],
    new: ReleaseId,
    keep: u32,
) -> Vec<ReleaseId> {
    let mut after: Vec<Release> = releases
        .iter()
        .map(|r| Release {
            current: false,
            state: if r.current { State::Good } else { r.state },
            in_use: r.in_use && !draining.contains(&r.id),
            ..r.clone()
        })
        .collect();
    after.push(Release {
        id: new,
        state: State::Live,
        current: true,
        in_use: true,
    });
    prune(&after, keep)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn resolved() -> Resolved {
        crate::resolve::sample()
    }

    pub(crate) fn everything() -> Placement {
        Placement::everything(&[])
    }

    /// The prepare phase of a host that runs everything, with no configs and no env.
    pub(crate) fn prepared(resolved: &Resolved, migrate_always: bool) -> Phase {
        prepare(
            resolved,
            &everything(),
            &ServiceConfigs::default(),
            "",
            None,
            migrate_always,
        )
    }

    fn ids(phase: &Phase) -> Vec<String> {
        phase.steps.iter().map(|s| s.id()).collect()
    }

    #[test]
    fn prepare_runs_every_step_before_the_switch() {
        let configs = ServiceConfigs::default();
        assert_eq!(
            ids(&prepare(
                &resolved(),
                &everything(),
                &configs,
                "",
                None,
                false
            )),
            [
                "verify",
                "unpack",
                "env",
                "shared",
                "virtualenv",
                "settings",
                "before_migrate[0]",
                "migrate",
                "collectstatic",
                "after_migrate[0]",
                "configs",
                "nginx-check",
                "start-app",
                "prepared"
            ]
        );
        assert_eq!(
            ids(&switch(&resolved(), &everything(), vec![])),
            [
                "check-lock",
                "switch",
                "reload-nginx",
                "health-check",
                "after_switch[0]",
                "finish",
                "prune",
                "stop-old-app",
                "migrate-after-switch"
            ]
        );
    }

    #[test]
    fn on_a_fleet_only_the_primary_migrates_and_the_others_wait_for_it() {
        let phase = prepared(&resolved(), false);
        let rounds: Vec<(Vec<String>, Vec<String>)> = phase
            .rounds(2)
            .iter()
            .map(|r| {
                let ids = |primary| r.steps_for(primary).iter().map(|s| s.id()).collect();
                (ids(true), ids(false))
            })
            .collect();
        let none: Vec<String> = vec![];
        // Every host finishes the steps before migrate first: a host that fails them means the
        // shared database is never migrated.
        assert_eq!(rounds[0].0.last().unwrap(), "before_migrate[0]");
        assert_eq!(rounds[0].0, rounds[0].1);
        assert_eq!(rounds[1], (vec!["migrate".to_string()], none.clone()));
        assert_eq!(rounds[2].0, ["collectstatic"]);
        // The once hook is its own round on the primary, after everyone's collectstatic.
        assert_eq!(rounds[3], (vec!["after_migrate[0]".to_string()], none));
        assert_eq!(rounds.len(), 5, "{rounds:?}");
    }

    #[test]
    fn without_migrate_hooks_settings_and_collectstatic_overlap_migrate() {
        let mut r = resolved();
        r.hooks.before_migrate.clear();
        r.hooks.after_migrate.clear();
        let phase = prepared(&r, false);
        assert_eq!(
            ids(&phase)[..9],
            [
                "verify",
                "unpack",
                "env",
                "shared",
                "virtualenv",
                "background",
                "migrate",
                "settings",
                "collectstatic",
            ]
        );
        assert_eq!(
            phase.steps[5],
            Step::Background(vec![Step::Settings, Step::Collectstatic])
        );
        assert_eq!(phase.steps[8], Step::Await(Box::new(Step::Collectstatic)));
        // The database is read while the app server starts, and decided on after it.
        assert!(matches!(phase.steps[6], Step::Migrate { defer: true, .. }));
        assert_eq!(
            ids(&phase)[9..],
            [
                "configs",
                "nginx-check",
                "start-app",
                "migrate-check",
                "prepared"
            ]
        );
        let always = prepared(&r, true);
        assert!(matches!(
            always.steps[6],
            Step::Migrate { defer: false, .. }
        ));
        assert!(!ids(&always).contains(&"migrate-check".to_string()));
        // One hook of either list keeps today's order.
        for hooked in ["before", "after"] {
            let mut h = resolved();
            if hooked == "before" {
                h.hooks.after_migrate.clear();
            } else {
                h.hooks.before_migrate.clear();
            }
            let steps = ids(&prepared(&h, false));
            assert!(!steps.contains(&"background".to_string()), "{steps:?}");
        }
    }

    #[test]
    fn a_fleet_that_migrates_once_keeps_collectstatic_after_migrate() {
        let mut r = resolved();
        r.hooks.before_migrate.clear();
        r.hooks.after_migrate.clear();
        r.placements = vec![everything(), everything()];
        let steps = ids(&prepared(&r, false));
        assert_eq!(r.migrate, MigrateOn::Once);
        assert!(!steps.contains(&"background".to_string()), "{steps:?}");
        r.migrate = MigrateOn::EachHost;
        let steps = ids(&prepared(&r, false));
        assert!(steps.contains(&"background".to_string()), "{steps:?}");
    }

    #[test]
    fn a_release_only_stopping_may_be_pruned_and_one_in_use_otherwise_may_not() {
        let id = |n: u32| ReleaseId::parse(&format!("2026010100000{n}")).unwrap();
        let release = |n, in_use| Release {
            id: id(n),
            state: State::Good,
            current: n == 3,
            in_use,
        };
        // keep 2: the new release 4 and 3 stay, 1 and 2 go unless something works in them.
        let releases = [release(1, true), release(2, true), release(3, true)];
        assert!(prune_after_switch(&releases, &[], id(4), 2).is_empty());
        assert_eq!(prune_after_switch(&releases, &[id(2)], id(4), 2), [id(2)]);
        assert_eq!(
            prune_after_switch(&releases, &[id(1), id(2)], id(4), 2),
            [id(1), id(2)]
        );
    }

    #[test]
    fn unmanaged_services_have_no_steps() {
        let mut r = resolved();
        r.nginx = None;
        r.app = None;
        let steps = ids(&prepared(&r, false));
        assert!(!steps.contains(&"nginx-check".to_string()));
        assert!(!steps.contains(&"start-app".to_string()));
        assert!(!ids(&switch(&r, &everything(), vec![])).contains(&"stop-old-app".to_string()));
    }
}
