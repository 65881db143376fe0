//! `shipit deploy`: connect, lock, build, upload, prepare everywhere, then switch everywhere.

use std::time::Instant;

use chrono::Utc;
use serde_json::json;

use crate::build::{self, Artifact, BuildRequest};
use crate::cli::DeployArgs;
use crate::config::{Config, Target, TransportKind};
use crate::error::{Error, Result};
use crate::output::{human_bytes, seconds, Printer};
use crate::plan::deploy::{AppPlan, DeployPlan, NginxPlan};
use crate::plan::releases::parse_inventory;
use crate::plan::script::Script;
use crate::release::{prune, Release, ReleaseId, State};
use crate::session::{connect, deployer, lock_failure, on_all, random_hex, HostSession, ScriptRun};
use crate::templates::{program_name, BuildInfo, RenderContext, Templates};
use crate::transport::Usage;

/// Deploys `args.target`.
pub fn run(config: &Config, args: &DeployArgs, printer: &Printer) -> Result<()> {
    let target = config.target(&args.target)?;
    let started = Instant::now();
    if args.dry_run {
        return dry_run(config, target, printer);
    }
    // Build first, so that every mistake the project can hold (configuration, deploy.map,
    // templates, unsafe files, a missing requirements file) is found before any host is
    // touched. The id is provisional: it is rebuilt in the rare case a host already has a
    // release as new as it.
    let lock_token = random_hex();
    let mut release = ReleaseId::at(Utc::now());
    let (mut artifact, mut plan) = build_release(config, target, release, &lock_token)?;

    let mut sessions = connect(target, args.accept_new_host_key, printer)?;
    let placeholder = DeployPlan {
        break_lock: args.break_lock,
        ..plan.clone()
    };

    // 1. begin: layout, lock, facts.
    let begun = on_all(&mut sessions, |_, s| {
        s.run(&placeholder.begin(&random_hex()), printer)
    });
    let begun = begun.into_iter().collect::<Result<Vec<_>>>()?;
    if let Some(err) = lock_failure(&sessions, &begun) {
        abort_locked(
            &mut sessions,
            &begun,
            &placeholder,
            "another deploy holds a lock",
            printer,
        );
        return Err(err);
    }
    if let Some((i, run)) = begun.iter().enumerate().find(|(_, r)| !r.succeeded()) {
        abort_locked(
            &mut sessions,
            &begun,
            &placeholder,
            "a host could not start the deploy",
            printer,
        );
        return Err(run.error(
            sessions[i].transport.name(),
            "nothing was changed on any host",
        ));
    }

    // 2. build locally with a release id that no host has yet.
    let inventories: Vec<Vec<Release>> = begun
        .iter()
        .map(|r| {
            parse_inventory(&r.facts)
                .into_iter()
                .map(|l| l.release)
                .collect()
        })
        .collect();
    // The begin script looked for the archive it was given; a rebuilt archive is a new one.
    let rebuild = inventories.iter().flatten().any(|r| r.id >= release);
    if rebuild {
        release = ReleaseId::after(Utc::now(), inventories.iter().flatten().map(|r| &r.id));
        match build_release(config, target, release, &lock_token) {
            Ok(rebuilt) => (artifact, plan) = rebuilt,
            Err(e) => {
                abort_locked(
                    &mut sessions,
                    &begun,
                    &placeholder,
                    "the build failed",
                    printer,
                );
                return Err(e);
            }
        }
    }
    printer.info(format!(
        "release {release}: {} ({}, {} files, revision {}{})",
        artifact.path.display(),
        human_bytes(artifact.size),
        artifact.manifest.files.len(),
        short(&artifact.manifest.revision),
        if artifact.manifest.dirty {
            ", dirty"
        } else {
            ""
        }
    ));

    // 3. upload where the archive is not already present.
    let uploads = on_all(&mut sessions, |i, s| {
        if !rebuild && begun[i].facts.get("archive").map(String::as_str) == Some("present") {
            printer.info(format!(
                "{}  ✓ upload skipped: the host already has this archive",
                s.label
            ));
            return Ok(());
        }
        upload(s, &artifact, &plan, printer)
    });
    if let Some((i, Err(e))) = uploads.into_iter().enumerate().find(|(_, r)| r.is_err()) {
        let name = sessions[i].transport.name().to_string();
        abort_all(
            &mut sessions,
            &plan,
            &format!("upload to {name} failed"),
            printer,
        );
        return Err(e);
    }

    // Each host prunes what its own inventory allows once the new release is live.
    let plans: Vec<DeployPlan> = inventories
        .iter()
        .map(|releases| DeployPlan {
            prune: prune_after_switch(releases, release, target.keep_releases),
            ..plan.clone()
        })
        .collect();

    let ready = if sessions.len() == 1 {
        // 4+5. one host: nothing to wait for, so prepare and switch in one exec.
        let switch = plans[0].switch(&random_hex());
        let switch_steps: Vec<String> = switch.steps.iter().map(|s| s.name.clone()).collect();
        let nonce = random_hex();
        let script = plans[0].prepare(&nonce).then(Script { nonce, ..switch });
        let run = sessions[0].run(&script, printer)?;
        if !run.succeeded() {
            let name = sessions[0].transport.name().to_string();
            let switching = run
                .failed
                .as_ref()
                .is_some_and(|(step, _)| switch_steps.contains(step));
            return Err(if switching {
                run.error(&name, switch_outcome(&run))
            } else {
                run.error(&name, current_outcome(&begun))
            });
        }
        report_pruned(&sessions[0].label, &run, printer);
        vec![(0, run)]
    } else {
        prepare_then_switch(&mut sessions, &plans, &begun, printer)?
    };

    let usage = sessions.iter().fold(Usage::default(), |total, s| {
        let u = s.transport.usage();
        Usage {
            connections: total.connections + u.connections,
            channels: total.channels + u.channels,
            bytes_uploaded: total.bytes_uploaded + u.bytes_uploaded,
        }
    });
    let venvs: Vec<String> = ready
        .iter()
        .filter_map(|(_, r)| r.facts.get("venv").cloned())
        .collect();
    printer.result(format!(
        "deployed {release} to {} ({} host{}) in {}",
        target.name,
        sessions.len(),
        if sessions.len() == 1 { "" } else { "s" },
        seconds(started.elapsed())
    ));
    printer.json_result(&json!({
        "release": release.to_string(),
        "target": target.name,
        "hosts": sessions.iter().map(|s| s.transport.name().to_string()).collect::<Vec<_>>(),
        "archive": { "path": artifact.path, "sha256": artifact.sha256, "size": artifact.size },
        "revision": artifact.manifest.revision,
        "venv": venvs,
        "seconds": started.elapsed().as_secs_f64(),
        "usage": usage,
    }));
    Ok(())
}

fn short(revision: &str) -> &str {
    revision.get(..12).unwrap_or(revision)
}

/// A build description used before the real release id is known (template checks, begin).
pub(crate) fn provisional_build() -> BuildInfo {
    BuildInfo {
        release: ReleaseId::at(Utc::now()),
        build_time: Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        revision: "unknown".into(),
        dirty: false,
    }
}

fn current_outcome(begun: &[ScriptRun]) -> String {
    let currents: Vec<&str> = begun
        .iter()
        .map(|r| r.facts.get("current").map(String::as_str).unwrap_or(""))
        .collect();
    match currents.first() {
        Some(c) if !c.is_empty() && currents.iter().all(|x| x == c) => {
            format!("nothing was switched: `current` still points at {c} and the site serves it")
        }
        _ => "nothing was switched: `current` is unchanged on every host".into(),
    }
}

/// Releases the locks this deploy took when it stops before anything was prepared.
fn abort_locked(
    sessions: &mut [HostSession],
    begun: &[ScriptRun],
    plan: &DeployPlan,
    reason: &str,
    printer: &Printer,
) {
    for (session, run) in sessions.iter_mut().zip(begun) {
        if run.succeeded() {
            let _ = session.run(&plan.release_lock(&random_hex(), reason), printer);
        }
    }
}

fn abort_all(sessions: &mut [HostSession], plan: &DeployPlan, reason: &str, printer: &Printer) {
    for session in sessions.iter_mut() {
        let _ = session.run(&plan.abort(&random_hex(), reason), printer);
    }
}

fn upload(
    session: &mut HostSession,
    artifact: &Artifact,
    plan: &DeployPlan,
    printer: &Printer,
) -> Result<()> {
    let started = Instant::now();
    let bar = printer.progress_bar(artifact.size, &format!("{}upload", prefix(&session.label)));
    let result = session
        .transport
        .upload(&artifact.path, &plan.upload_path(), &mut |sent| {
            bar.set_position(sent)
        });
    bar.finish_and_clear();
    result?;
    let elapsed = started.elapsed();
    printer.info(format!(
        "{}  ✓ upload {:<17} {:>7}  ({}, {}/s)",
        session.label,
        "",
        seconds(elapsed),
        human_bytes(artifact.size),
        human_bytes((artifact.size as f64 / elapsed.as_secs_f64().max(0.001)) as u64)
    ));
    Ok(())
}

fn prefix(label: &str) -> String {
    if label.is_empty() {
        String::new()
    } else {
        format!("{label} ")
    }
}

/// Several hosts: prepare everywhere, switch nowhere unless every host is ready, then switch
/// everywhere. Returns the prepare runs.
fn prepare_then_switch(
    sessions: &mut [HostSession],
    plans: &[DeployPlan],
    begun: &[ScriptRun],
    printer: &Printer,
) -> Result<Vec<(usize, ScriptRun)>> {
    let prepared = on_all(sessions, |i, s| {
        s.run(&plans[i].prepare(&random_hex()), printer)
    });
    let mut failure = None;
    let mut ready = Vec::new();
    for (i, result) in prepared.into_iter().enumerate() {
        let name = sessions[i].transport.name().to_string();
        match result {
            Ok(run) if run.succeeded() => ready.push((i, run)),
            Ok(run) => {
                failure.get_or_insert_with(|| {
                    (name.clone(), run.error(&name, current_outcome(begun)))
                });
            }
            Err(e) => {
                failure.get_or_insert_with(|| (name.clone(), e));
            }
        }
    }
    if let Some((name, error)) = failure {
        let reason = format!("preparing {name} failed");
        for (i, _) in &ready {
            let _ = sessions[*i].run(&plans[*i].abort(&random_hex(), &reason), printer);
        }
        return Err(error);
    }
    let switched = on_all(sessions, |i, s| {
        s.run(&plans[i].switch(&random_hex()), printer)
    });
    let mut errors = Vec::new();
    for (i, result) in switched.into_iter().enumerate() {
        let name = sessions[i].transport.name().to_string();
        match result {
            Ok(run) if run.succeeded() => report_pruned(&sessions[i].label, &run, printer),
            Ok(run) => errors.push(run.error(&name, switch_outcome(&run))),
            Err(e) => errors.push(e),
        }
    }
    match errors.into_iter().next() {
        Some(first) => Err(first),
        None => Ok(ready),
    }
}

/// What a failed switch script left: steps from `finish` on run after the new release went
/// live, and their failure undoes nothing.
fn switch_outcome(run: &ScriptRun) -> &'static str {
    match run.failed.as_ref().map(|(step, _)| step.as_str()) {
        Some("finish" | "prune" | "stop-old-app") => {
            "the new release is live; this step failed after the switch and nothing was undone"
        }
        _ => "this host switched back to its previous release",
    }
}

/// Prints what the switch script's prune step removed.
fn report_pruned(label: &str, run: &ScriptRun, printer: &Printer) {
    let removed: Vec<&str> = run
        .facts
        .iter()
        .filter(|(_, kind)| kind.as_str() == "release")
        .filter_map(|(key, _)| key.strip_prefix("removed:"))
        .collect();
    let venvs = run
        .facts
        .keys()
        .filter(|k| k.starts_with("removed:venv:"))
        .count();
    if removed.is_empty() && venvs == 0 {
        return;
    }
    let freed: u64 = run
        .facts
        .get("freed_kib")
        .and_then(|k| k.parse().ok())
        .unwrap_or(0);
    printer.info(format!(
        "{label}  pruned {} release(s) {} and {venvs} unused virtualenv(s), freed {}",
        removed.len(),
        removed.join(" "),
        human_bytes(freed * 1024)
    ));
}

/// What to prune on a host whose releases are `releases` once `new` is live there.
fn prune_after_switch(releases: &[Release], new: ReleaseId, keep: u32) -> Vec<ReleaseId> {
    let mut after: Vec<Release> = releases
        .iter()
        .map(|r| Release {
            current: false,
            state: if r.current { State::Good } else { r.state },
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

/// The remote plan of `target` for the build `info` of an archive with `sha256`.
pub(crate) fn plan_for(
    config: &Config,
    target: &Target,
    info: &BuildInfo,
    sha256: &str,
    lock_token: &str,
    nginx: Option<NginxPlan>,
    app: Option<AppPlan>,
) -> DeployPlan {
    DeployPlan {
        deploy_to: target.deploy_to.clone(),
        release: info.release,
        archive_sha256: sha256.to_string(),
        python: config.project.python.clone(),
        installer: target.installer,
        requirements: config.project.requirements_for(&target.environment),
        manage_py: config.project.manage_py.clone(),
        settings_module: String::new(),
        shared_dirs: target.shared_dirs.clone(),
        shared_files: target.shared_files.clone(),
        hooks: target.hooks.clone(),
        nginx,
        app,
        lock_token: lock_token.to_string(),
        deployer: deployer(),
        revision: info.revision.clone(),
        break_lock: false,
        prune: Vec::new(),
    }
    .with_settings(config, target, info)
}

/// Renders the nginx site and supervisor program of `target` for the build `info`.
fn render_services(
    config: &Config,
    target: &Target,
    info: &BuildInfo,
) -> Result<(Option<NginxPlan>, Option<AppPlan>)> {
    let templates = Templates::for_project(config);
    let context = RenderContext::new(config, target, info)?;
    let (mut nginx, mut app) = services(config, target, info.release);
    if let Some(nginx) = &mut nginx {
        nginx.config = templates.render("nginx.conf.j2", &context)?;
    }
    if let Some(app) = &mut app {
        app.config = templates.render("supervisor.conf.j2", &context)?;
    }
    Ok((nginx, app))
}

/// Where `target`'s nginx site and `release`'s supervisor program live, and how they are
/// controlled; the rendered configs are left empty.
pub(crate) fn services(
    config: &Config,
    target: &Target,
    release: ReleaseId,
) -> (Option<NginxPlan>, Option<AppPlan>) {
    let nginx = target.nginx.as_ref().map(|n| NginxPlan {
        site: n.site.clone(),
        test: n.test.clone(),
        reload: n.reload.clone(),
        config: String::new(),
    });
    let app = target.supervisor.as_ref().map(|s| AppPlan {
        conf_dir: s.conf_dir.clone(),
        ctl: s.ctl.clone(),
        program: program_name(&config.project.name, &target.name, &release),
        // Exactly 14 digits: `hello-test-*` would also match target `test-eu`'s programs.
        program_glob: format!(
            "{}-{}-{}.conf",
            config.project.name,
            target.name,
            "[0-9]".repeat(14)
        ),
        config: String::new(),
        health: target.health.clone(),
    });
    (nginx, app)
}

/// Refuses an archive that cannot work on a host, before anything is uploaded.
fn check_archive(config: &Config, target: &Target, artifact: &Artifact) -> Result<()> {
    let has = |path: &str| artifact.manifest.files.iter().any(|f| f.path == path);
    let requirements = config.project.requirements_for(&target.environment);
    if !has(&requirements) {
        return Err(Error::Project {
            message: format!(
                "the requirements file `{requirements}` of environment `{}` is not in the archive",
                target.environment
            ),
            hint: Some("commit it (pip-compile or `uv pip compile` it from a .in file), or map the environment in [project.requirements]".into()),
        });
    }
    if !has(&config.project.manage_py) {
        return Err(Error::Project {
            message: format!("`{}` is not in the archive", config.project.manage_py),
            hint: Some("commit manage.py, or set project.manage_py to where it is".into()),
        });
    }
    Ok(())
}

/// Builds the archive of `release`, checks it can work on a host, and renders the remote plan.
fn build_release(
    config: &Config,
    target: &Target,
    release: ReleaseId,
    lock_token: &str,
) -> Result<(Artifact, DeployPlan)> {
    let artifact = build::build(&BuildRequest {
        config,
        target,
        output: None,
        source_date_epoch: build::source_date_epoch_from_env()?,
        release: Some(release),
    })?;
    check_archive(config, target, &artifact)?;
    let info = BuildInfo {
        release,
        build_time: artifact.manifest.build_time.clone(),
        revision: artifact.manifest.revision.clone(),
        dirty: artifact.manifest.dirty,
    };
    let (nginx, app) = render_services(config, target, &info)?;
    let plan = plan_for(
        config,
        target,
        &info,
        &artifact.sha256,
        lock_token,
        nginx,
        app,
    );
    Ok((artifact, plan))
}

/// Builds the archive and prints what each host would run, touching no host.
fn dry_run(config: &Config, target: &Target, printer: &Printer) -> Result<()> {
    let release = ReleaseId::at(Utc::now());
    let (artifact, plan) = build_release(config, target, release, "dry-run")?;
    let hosts: Vec<String> = match target.transport {
        TransportKind::Local => vec!["local".into()],
        TransportKind::Ssh => target.hosts.iter().map(ToString::to_string).collect(),
    };
    let scripts = [
        ("begin", plan.begin("dry-run")),
        (
            "prepare (after uploading the archive)",
            plan.prepare("dry-run"),
        ),
        (
            "switch (once every host is prepared)",
            plan.switch("dry-run"),
        ),
    ];
    let mut text = format!(
        "dry run: would deploy release {release} ({}) to {}: {}\n",
        artifact.path.display(),
        target.name,
        hosts.join(", ")
    );
    for (phase, script) in &scripts {
        text.push_str(&format!("{phase}: one ssh exec per host\n"));
        for step in &script.steps {
            text.push_str(&format!("  - {}\n", step.name));
        }
    }
    printer.result(text.trim_end());
    for (phase, script) in &scripts {
        printer.detail(format!("\n# --- {phase} ---\n{}", script.render()));
    }
    printer.json_result(&json!({
        "release": release.to_string(),
        "target": target.name,
        "hosts": hosts,
        "phases": scripts.iter().map(|(phase, script)| json!({
            "phase": phase,
            "steps": script.steps.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    }));
    Ok(())
}
