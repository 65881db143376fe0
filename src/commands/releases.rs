//! `shipit releases`: what each host has, and pruning on demand.

use chrono::Utc;
use serde_json::json;

use crate::cli::ReleasesArgs;
use crate::config::Config;
use crate::error::Result;
use crate::output::{human_bytes, Printer};
use crate::plan::releases::{
    list_script, locked_inventory, parse_inventory, remove, unlock, Listed,
};
use crate::release::{prune, rollback_target, Release, State};
use crate::session::{connect, lock_failure, on_all, random_hex, ScriptRun};

use super::deploy::{plan_for, provisional_build, services};

/// Lists releases per host; with `--prune`, removes what the keep policy allows.
pub fn run(config: &Config, args: &ReleasesArgs, printer: &Printer) -> Result<()> {
    let target = config.target(&args.target)?;
    let mut sessions = connect(target, args.accept_new_host_key, printer)?;
    let token = random_hex();
    let info = provisional_build();
    let (nginx, app) = services(config, target, info.release);
    let base = plan_for(config, target, &info, "", &token, nginx, app);
    let keep = args.keep.unwrap_or(target.keep_releases);
    let lock = args.prune && !args.dry_run;

    let runs = on_all(&mut sessions, |_, s| {
        let script = if lock {
            locked_inventory(&base, &random_hex())
        } else {
            list_script(&random_hex(), &target.deploy_to)
        };
        s.run(&script, printer)
    });
    let runs = runs.into_iter().collect::<Result<Vec<ScriptRun>>>()?;
    if let Some(error) = lock_failure(&sessions, &runs) {
        for (session, run) in sessions.iter_mut().zip(&runs) {
            if run.succeeded() {
                let _ = session.run(&unlock(&base, &random_hex()), printer);
            }
        }
        return Err(error);
    }
    if let Some((i, run)) = runs.iter().enumerate().find(|(_, r)| !r.succeeded()) {
        if lock {
            for (session, run) in sessions.iter_mut().zip(&runs) {
                if run.succeeded() {
                    let _ = session.run(&unlock(&base, &random_hex()), printer);
                }
            }
        }
        return Err(run.error(sessions[i].transport.name(), "nothing was changed"));
    }

    let mut hosts_json = Vec::new();
    let mut text = String::new();
    for (i, run) in runs.iter().enumerate() {
        let name = sessions[i].transport.name().to_string();
        let listed = parse_inventory(&run.facts);
        let releases: Vec<Release> = listed.iter().map(|l| l.release.clone()).collect();
        let doomed = if args.prune {
            prune(&releases, keep)
        } else {
            Vec::new()
        };
        let mut removed_json = Vec::new();
        let freed_kib: u64;
        if lock {
            let removal = sessions[i].run(&remove(&base, &random_hex(), &doomed), printer)?;
            if !removal.succeeded() {
                return Err(removal.error(&name, "the lock was released; some releases may remain"));
            }
            freed_kib = removal
                .facts
                .get("freed_kib")
                .and_then(|k| k.parse().ok())
                .unwrap_or(0);
            removed_json = removal
                .facts
                .keys()
                .filter_map(|k| k.strip_prefix("removed:").map(str::to_string))
                .collect();
        } else {
            freed_kib = listed
                .iter()
                .filter(|l| doomed.contains(&l.release.id))
                .map(|l| l.size_kib)
                .sum();
        }
        text.push_str(&table(&name, &listed, &releases));
        if args.prune {
            let verb = if lock { "removed" } else { "would remove" };
            let list = doomed.iter().map(ToString::to_string).collect::<Vec<_>>();
            text.push_str(&format!(
                "  {verb} {} release(s){}{}, {} freed (keeping {keep} good)\n",
                doomed.len(),
                if list.is_empty() {
                    String::new()
                } else {
                    format!(": {}", list.join(" "))
                },
                if lock { " and unused virtualenvs" } else { "" },
                human_bytes(freed_kib * 1024)
            ));
        }
        hosts_json.push(json!({
            "host": name,
            "releases": listed.iter().map(|l| row_json(l, &releases)).collect::<Vec<_>>(),
            "prune": args.prune.then(|| json!({
                "keep": keep,
                "dry_run": args.dry_run,
                "releases": doomed.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "removed": removed_json,
                "freed_kib": freed_kib,
            })),
        }));
    }
    printer.result(text.trim_end());
    printer.json_result(&json!({ "target": target.name, "hosts": hosts_json }));
    Ok(())
}

/// The state a person cares about: the release a rollback would go to is "previous good".
fn label(release: &Release, all: &[Release]) -> String {
    match rollback_target(all, None) {
        Ok(id) if id == release.id && release.state.is_good() => "previous good".into(),
        _ if release.state == State::Unknown => "good".into(),
        _ => release.state.to_string(),
    }
}

fn age(release: &Release) -> String {
    let seconds = (Utc::now() - release.id.time()).num_seconds().max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn table(host: &str, listed: &[Listed], all: &[Release]) -> String {
    let mut out = format!("{host}\n");
    if listed.is_empty() {
        out.push_str("  no releases\n");
        return out;
    }
    out.push_str(&format!(
        "  {:<16}{:<15}{:>6}{:>11}  {:<12} {}\n",
        "RELEASE", "STATE", "AGE", "SIZE", "REVISION", "NOTE"
    ));
    for l in listed.iter().rev() {
        let note = [
            l.release.current.then_some("current"),
            (l.release.in_use && !l.release.current).then_some("in use"),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
        out.push_str(&format!(
            "  {:<16}{:<15}{:>6}{:>11}  {:<12} {}\n",
            l.release.id.to_string(),
            label(&l.release, all),
            age(&l.release),
            human_bytes(l.size_kib * 1024),
            l.revision
                .as_deref()
                .map_or("-", |r| r.get(..12).unwrap_or(r)),
            note
        ));
    }
    out
}

fn row_json(listed: &Listed, all: &[Release]) -> serde_json::Value {
    json!({
        "id": listed.release.id,
        "state": listed.release.state,
        "label": label(&listed.release, all),
        "current": listed.release.current,
        "in_use": listed.release.in_use,
        "age_seconds": (Utc::now() - listed.release.id.time()).num_seconds().max(0),
        "size_kib": listed.size_kib,
        "venv": listed.venv,
        "revision": listed.revision,
    })
}
