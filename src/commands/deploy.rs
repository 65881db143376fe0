//! `shipit deploy`: build, connect, lock, upload, prepare everywhere, then switch everywhere.

use std::time::Instant;

use chrono::Utc;
use serde_json::json;

use crate::build;
use crate::cli::{DeployArgs, MigrateWhen};
use crate::config::{Config, NotifyEvent};
use crate::error::{Error, Result};
use crate::notify::{self, Notice, Notifier, Told};
use crate::output::{human_bytes, seconds, Printer};
use crate::plan::deploy::{begin, prepare, prune_after_switch, switch, ServiceConfigs};
use crate::plan::releases::{draining, has_archive, releases, removed};
use crate::release::{Release, ReleaseId};
use crate::remote::facts;
use crate::resolve::{service_configs, AppEnv, BreakLock, Op, Resolved, RunVars};
use crate::runner::{Rest, Stage};
use crate::session::ScriptRun;

/// What a deploy decides from what begin found on the hosts.
struct Planned {
    release: ReleaseId,
    /// The release's program name (`PROGRAM` in the scripts' preamble).
    program: String,
    /// Each host's service configs.
    configs: Vec<ServiceConfigs>,
    /// What each host prunes after its switch.
    doomed: Vec<Vec<ReleaseId>>,
    /// Per host: whether the archive was `sent`, a `delta` was (see [`crate::delta`]), or neither (`skipped`).
    uploads: Vec<&'static str>,
    /// What a failure before the switch leaves.
    current: String,
}

/// Deploys `args.target`, and tells the webhooks how it ended once it touched the hosts.
pub(crate) fn run(config: &Config, args: &DeployArgs, printer: &Printer) -> Result<()> {
    let started = Instant::now();
    let mut told = None;
    let deployed = deploy(config, args, printer, &mut told);
    let release = deployed
        .as_ref()
        .ok()
        .and_then(Option::as_ref)
        .map(ToString::to_string);
    let event = match deployed {
        Ok(_) => NotifyEvent::DeploySuccess,
        Err(_) => NotifyEvent::DeployFailure,
    };
    notify::finish(
        told,
        |start| Notice {
            event,
            release,
            ..start
        },
        started.elapsed(),
        deployed.as_ref().err(),
    );
    deployed.map(|_| ())
}

/// Deploys `args.target`: the release, or `None` for a dry run. Once it is about to touch the
/// hosts, the webhooks are told it starts, and kept in `told` with what they were told.
fn deploy(
    config: &Config,
    args: &DeployArgs,
    printer: &Printer,
    told: &mut Told,
) -> Result<Option<ReleaseId>> {
    let whole = config.target(&args.target.name)?;
    let target = &whole.canary(&args.hosts, &args.roles, args.allow_mixed)?;
    if let Some(note) = whole.singletons_left(target) {
        printer.info(note);
    }
    let resolved = Resolved::new(config, target)?;
    let migrate_always = args.migrate == MigrateWhen::Always;
    let started = Instant::now();
    // Secrets are resolved first, before the build commands run and any host is touched, and
    // are never shown from then on (not in the run log either). A dry run needs none.
    let (env, tls_files) = if args.dry_run {
        (AppEnv::default(), None)
    } else {
        let env = AppEnv::resolve(config, target)?;
        printer.redact(env.secrets.iter().cloned());
        if !env.secrets.is_empty() {
            printer.redact([crate::plan::base64(env.file().as_bytes())]);
        }
        // A certificate brought in files: its key is masked like a secret, and so is the
        // base64 word its step call carries (the key with the newline the file ends with).
        let tls_files = crate::resolve::TlsFiles::resolve(config, target)?;
        if let Some(files) = &tls_files {
            printer.redact([
                files.key.trim_end().to_string(),
                crate::plan::base64(files.key.as_bytes()),
            ]);
        }
        super::keep_run_log(config, "deploy", &resolved, printer);
        (env, tls_files)
    };
    // Build once, before any host is touched: every mistake the project can hold is found
    // here, and the archive (which names no release) is the one every host gets.
    // A dry run writes its archive where nothing keeps it.
    let scratch = tempfile::tempdir()
        .map_err(|e| crate::error::Error::io("create", std::env::temp_dir(), e))?;
    let output = args.dry_run.then(|| {
        scratch
            .path()
            .join(format!("{}-{}.tar.gz", config.project.name, target.name))
    });
    let (artifact, info) = build::build_deployable(config, target, output, printer)?;
    let user = resolved.app_user.as_deref().unwrap_or("DEPLOY_USER");
    let primary = &resolved.placements[resolved.primary];
    let configs = service_configs(
        config,
        target,
        &info,
        ReleaseId::at(Utc::now()),
        user,
        primary,
    )?;
    if args.dry_run {
        return super::dry_run::show(
            &resolved,
            target,
            &artifact,
            &configs,
            migrate_always,
            printer,
        )
        .map(|()| None);
    }
    // From here on the hosts are touched.
    let notifier = Notifier::start(config, &resolved, printer);
    let notice = Notice {
        revision: Some(artifact.manifest.revision.clone()),
        ..Notice::new(NotifyEvent::DeployStart, &resolved)
    };
    notifier.send(&notice);
    *told = Some((notifier, notice));
    let env_file = env.file();
    let fleet = super::connect(
        target,
        &resolved,
        args.connection.accept_new_host_key,
        printer,
    )?;
    let provisional = ReleaseId::at(Utc::now());
    let run_vars = RunVars {
        release: Some(provisional),
        sha256: Some(artifact.sha256.clone()),
        revision: Some(artifact.manifest.revision.clone()),
        lock_wait: args.lock_wait.unwrap_or(0),
        allow_breaking_migrations: args.allow_breaking_migrations,
        ..RunVars::default()
    };
    let vars = resolved.fleet_vars(
        Op::Deploy,
        BreakLock::from_flags(args.lock.break_lock, args.lock.force),
        &run_vars,
    );
    let begin = begin(
        &artifact.path,
        artifact.size,
        crate::delta::bases(&artifact.path),
    );
    let names = fleet.names();
    let labels: Vec<String> = fleet.sessions.iter().map(|s| s.label.clone()).collect();
    // What begin's facts decide: the release id, each host's service configs, what it prunes.
    let plan = |begun: &[ScriptRun]| -> Result<Planned> {
        // The release id: now, or just after the newest release any host has.
        let inventories: Vec<Vec<Release>> = begun.iter().map(|r| releases(&r.facts)).collect();
        let release = if inventories.iter().flatten().any(|r| r.id >= provisional) {
            ReleaseId::after(Utc::now(), inventories.iter().flatten().map(|r| &r.id))
        } else {
            provisional
        };
        let mut configs = Vec::with_capacity(begun.len());
        for (i, run) in begun.iter().enumerate() {
            let user = app_user(&resolved, run, &names[i])?;
            configs.push(service_configs(
                config,
                target,
                &info,
                release,
                &user,
                &resolved.placements[i],
            )?);
        }
        printer.info(format!(
            "release {release}: archive {} ({}, {} files, revision {}{})",
            &artifact.sha256[..12],
            human_bytes(artifact.size),
            artifact.files,
            short(&artifact.manifest.revision),
            if artifact.manifest.dirty {
                ", dirty"
            } else {
                ""
            }
        ));
        // Begin received the archive unless the host had it.
        let uploads = begun
            .iter()
            .enumerate()
            .map(|(i, run)| {
                if facts::got_delta(&run.facts) {
                    return "delta";
                }
                if !has_archive(&run.facts) {
                    return "sent";
                }
                printer.info(format!(
                    "{}  ✓ upload skipped: the host already has this archive",
                    labels[i]
                ));
                "skipped"
            })
            .collect();
        let doomed = inventories
            .iter()
            .zip(begun)
            .map(|(r, run)| {
                prune_after_switch(r, &draining(&run.facts), release, resolved.keep_releases)
            })
            .collect();
        Ok(Planned {
            release,
            program: resolved.program(Some(release)),
            configs,
            doomed,
            uploads,
            current: current_outcome(begun),
        })
    };
    let prepare_on = |planned: &Planned, i: usize| {
        prepare(
            &resolved,
            &resolved.placements[i],
            &planned.configs[i],
            &env_file,
            tls_files.as_ref(),
            migrate_always,
        )
    };
    let switch_on = |planned: &Planned, i: usize| {
        switch(
            &resolved,
            &resolved.placements[i],
            planned.doomed[i].clone(),
        )
    };
    let mut planned = None;
    let (mut fleet, runs) =
        fleet.run_stages(&begin, vars, resolved.batch, &mut |begun, preambles| {
            let p = plan(begun)?;
            preambles.set(|v| {
                v.id = p.release.to_string();
                v.program.clone_from(&p.program);
            });
            let rest = Rest {
                prepare: (0..begun.len()).map(|i| prepare_on(&p, i)).collect(),
                switch: (0..begun.len()).map(|i| switch_on(&p, i)).collect(),
                outcome: p.current.clone(),
            };
            planned = Some(p);
            Ok(Stage::Last(rest))
        })?;
    let planned = planned.expect("a deploy that ran planned its release");
    let Planned {
        release, uploads, ..
    } = planned;
    for (session, run) in fleet.sessions.iter().zip(&runs) {
        for (step, skipped) in facts::skips(&run.facts) {
            printer.info(format!("{}  {step}: {skipped}", session.label));
        }
        if let Some(media) = facts::media_inside(&run.facts) {
            let dir = media.split('/').next().unwrap_or(media);
            printer.warn(format!(
                "{}: MEDIA_ROOT is {media} inside the release, so uploads are lost at the next deploy: add \"{dir}\" to shared_dirs",
                session.label
            ));
        }
        report_pruned(&session.label, run, printer);
    }

    let usage = super::usage(&mut fleet.sessions);
    let names = fleet.names();
    // Per host: what a delta saves shows here, beside the archive's size.
    let sent: serde_json::Map<_, _> = names
        .iter()
        .zip(&fleet.sessions)
        .map(|(n, s)| (n.clone(), json!(s.transport.usage().bytes_uploaded)))
        .collect();
    printer.result(format!(
        "deployed {release} to {} ({} host{}) in {}",
        target.name,
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        seconds(started.elapsed())
    ));
    printer.json_result(&json!({
        "release": release.to_string(),
        "target": target.name,
        "hosts": names,
        "upload": names.iter().zip(&uploads).map(|(n, u)| (n.clone(), json!(u))).collect::<serde_json::Map<_, _>>(),
        "bytes_sent": sent,
        "archive": { "path": artifact.path, "sha256": artifact.sha256, "size": artifact.size },
        "revision": artifact.manifest.revision,
        "venv": runs.iter().filter_map(|r| facts::venv(&r.facts).cloned()).collect::<Vec<_>>(),
        "settings": runs.iter().filter_map(|r| facts::outcome(&r.facts, facts::key::SETTINGS).cloned()).collect::<Vec<_>>(),
        "migrate": runs.iter().filter_map(|r| facts::outcome(&r.facts, facts::key::MIGRATE).cloned()).collect::<Vec<_>>(),
        "collectstatic": runs.iter().filter_map(|r| facts::outcome(&r.facts, facts::key::COLLECTSTATIC).cloned()).collect::<Vec<_>>(),
        "seconds": started.elapsed().as_secs_f64(),
        "usage": usage,
    }));
    Ok(Some(release))
}

/// The account host `run`'s app server runs as: `app_user`, or the deploy user; never root
/// unless the target allows it.
fn app_user(resolved: &Resolved, run: &ScriptRun, host: &str) -> Result<String> {
    let user = match &resolved.app_user {
        Some(user) => user.clone(),
        None => facts::user(&run.facts).0.cloned().unwrap_or_default(),
    };
    if user.is_empty() {
        return Err(Error::Refused {
            message: format!("{host}: cannot tell which account the app server would run as"),
            hint: "set app_user in the target".into(),
        });
    }
    // Without a managed app server there is nothing to run as anyone.
    if resolved.app.is_some()
        && (user == "root" || facts::user(&run.facts).1 && resolved.app_user.is_none())
        && !resolved.allow_root
    {
        return Err(Error::Refused {
            message: format!("{host}: the app server would run as root (the deploy user)"),
            hint: "deploy as an unprivileged user, set app_user to one, or set allow_root = true if you really mean it".into(),
        });
    }
    Ok(user)
}

fn short(revision: &str) -> &str {
    revision.get(..12).unwrap_or(revision)
}

fn current_outcome(begun: &[ScriptRun]) -> String {
    let currents: Vec<&str> = begun
        .iter()
        .map(|r| facts::current(&r.facts).map(String::as_str).unwrap_or(""))
        .collect();
    match currents.first() {
        Some(c) if !c.is_empty() && currents.iter().all(|x| x == c) => {
            format!("nothing was switched: `current` still points at {c} and the site serves it")
        }
        _ => "nothing was switched: `current` is unchanged on every host".into(),
    }
}

/// Prints what the switch's prune step removed.
fn report_pruned(label: &str, run: &ScriptRun, printer: &Printer) {
    let removed = removed(&run.facts);
    if removed.releases.is_empty() && removed.venvs.is_empty() {
        return;
    }
    printer.info(format!(
        "{label}  pruned {} release(s) {} and {} unused virtualenv(s), freed {}",
        removed.releases.len(),
        removed.releases.join(" "),
        removed.venvs.len(),
        human_bytes(removed.freed_kib * 1024)
    ));
}
