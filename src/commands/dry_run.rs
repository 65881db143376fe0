//! `shipit deploy --dry-run`: the phases and steps each host would run, touching no host.

use chrono::Utc;
use serde_json::json;

use crate::build::Artifact;
use crate::config::{Target, TransportKind};
use crate::error::Result;
use crate::output::Printer;
use crate::plan::deploy::{begin, prepare, switch, ServiceConfigs};
use crate::plan::script::Script;
use crate::release::ReleaseId;
use crate::resolve::{BreakLock, Op, Resolved, RunVars};

/// The env file as a dry run shows it: plain values, and where each secret would come from.
fn env_preview(target: &Target) -> String {
    let mut lines: Vec<String> = target
        .env
        .iter()
        .map(|(name, value)| format!("{name}={}", crate::plan::quote(value)))
        .collect();
    lines.extend(
        target
            .secrets
            .iter()
            .map(|(name, from)| format!("{name}=[secret from {}]", crate::resolve::describe(from))),
    );
    lines.sort();
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// Prints the plan of a deploy of `artifact` (with `-v`, the rendered calls of each script).
pub(super) fn show(
    resolved: &Resolved,
    target: &Target,
    artifact: &Artifact,
    configs: &ServiceConfigs,
    migrate_always: bool,
    printer: &Printer,
) -> Result<()> {
    let release = ReleaseId::at(Utc::now());
    let hosts: Vec<String> = match target.transport {
        TransportKind::Local => vec!["local".into()],
        TransportKind::Ssh => target.hosts.iter().map(ToString::to_string).collect(),
    };
    let vars = resolved.vars(
        Op::Deploy,
        BreakLock::No,
        &RunVars {
            release: Some(release),
            sha256: Some(artifact.sha256.clone()),
            revision: Some(artifact.manifest.revision.clone()),
            ..RunVars::default()
        },
    );
    // What the primary runs (hosts of other roles run a subset of it).
    let placed = &resolved.placements[resolved.primary];
    let phases = [
        (
            "begin",
            begin(
                &artifact.path,
                artifact.size,
                crate::delta::bases(&artifact.path),
            ),
        ),
        (
            "prepare",
            prepare(
                resolved,
                placed,
                configs,
                &env_preview(target),
                crate::resolve::TlsFiles::preview(target).as_ref(),
                migrate_always,
            ),
        ),
        (
            "switch (once every host is prepared)",
            switch(resolved, placed, vec![]),
        ),
    ];
    let primary = hosts.get(resolved.primary).cloned().unwrap_or_default();
    let mut text = format!(
        "dry run: would deploy release {release} (archive {}, {}) to {}: {}\n",
        &artifact.sha256[..12],
        artifact.path.display(),
        target.name,
        hosts.join(", ")
    );
    for (name, phase) in &phases {
        let rounds = phase.rounds(hosts.len()).len();
        text.push_str(&format!(
            "{name}: {rounds} ssh exec{} per host\n",
            if rounds == 1 { "" } else { "s" }
        ));
        for step in &phase.steps {
            let only = if step.scope() == crate::plan::step::Scope::Once && hosts.len() > 1 {
                format!("  [on {primary} only]")
            } else {
                String::new()
            };
            text.push_str(&format!("  - {}{only}\n", step.label()));
        }
    }
    if hosts.len() == 1 {
        text.push_str("(one host: begin, prepare and switch run in one ssh exec)\n");
    }
    printer.result(text.trim_end());
    // With -v: what each host would get, as text (secrets shown by where they come from).
    printer.detail(format!(
        "\n# --- the release's env file (.shipit/env) ---\n{}",
        env_preview(target).trim_end()
    ));
    for file in configs.files() {
        printer.detail(format!(
            "\n# --- {} (.shipit/{}) ---\n{}",
            file.what,
            file.path,
            file.text.trim_end()
        ));
    }
    for (name, phase) in &phases {
        let script = Script::new("dry-run", vars.shown(), phase.steps.clone(), phase.cleanup);
        printer.detail(format!("\n# --- {name} ---\n{}", script.render_calls()));
    }
    printer.json_result(&json!({
        "release": release.to_string(),
        "target": target.name,
        "hosts": hosts,
        "primary": primary,
        "phases": phases.iter().map(|(name, phase)| json!({
            "phase": name,
            "steps": phase.steps.iter().map(|s| s.id()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    }));
    Ok(())
}
