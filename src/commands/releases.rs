//! `shipit releases`: what each host has, and pruning on demand.

use chrono::Utc;
use serde_json::json;

use crate::cli::ReleasesArgs;
use crate::config::Config;
use crate::error::Result;
use crate::output::{human_bytes, Printer};
use crate::plan::releases::{
    list, not_releases, parse_inventory, prune_begin, remove, removed, Listed, Removed,
};
use crate::plan::rollback::disagreement;
use crate::release::{prune, rollback_target, Release, State};
use crate::resolve::{BreakLock, Op, Resolved, RunVars};

/// Lists releases per host; with `--prune`, removes what the keep policy allows.
pub(crate) fn run(config: &Config, args: &ReleasesArgs, printer: &Printer) -> Result<()> {
    let target = config.target(&args.target.name)?;
    let resolved = Resolved::new(config, target)?;
    let mut fleet = super::connect(
        target,
        &resolved,
        args.connection.accept_new_host_key,
        printer,
    )?;
    let keep = args.keep.unwrap_or(target.keep_releases);
    let hosts = fleet.sessions.len();
    let names = fleet.names();
    let vars = resolved.vars(
        Op::Prune,
        BreakLock::from_flags(args.lock.break_lock, args.lock.force),
        &RunVars::default(),
    );
    let remove_now = args.prune && !args.dry_run;

    let ignored: Vec<Vec<String>>;
    let (listed, outcomes): (Vec<Vec<Listed>>, Vec<Option<Removed>>) = if remove_now {
        let (mut locked, begun) = fleet.lock(&prune_begin(), vec![vars; hosts])?;
        ignored = begun.iter().map(|r| not_releases(&r.facts)).collect();
        let listed: Vec<Vec<Listed>> = begun.iter().map(|r| parse_inventory(&r.facts)).collect();
        let doomed: Vec<Vec<_>> = listed
            .iter()
            .map(|l| prune(&releases_of(l), keep))
            .collect();
        let count: usize = doomed.iter().map(Vec::len).sum();
        if count > 0 {
            let mut ids: Vec<String> = doomed.iter().flatten().map(ToString::to_string).collect();
            ids.sort();
            ids.dedup();
            if let Err(refusal) = printer.confirm(&format!(
                "remove {count} release(s) of {} ({}) and the virtualenvs no other release uses",
                target.name,
                ids.join(" ")
            )) {
                locked.giving_up("not confirmed");
                return Err(refusal);
            }
        }
        let runs = locked.run_each(
            &|i| remove(doomed[i].clone()),
            "the remaining hosts were left as they were",
        )?;
        locked.into_fleet();
        (
            listed,
            runs.iter().map(|r| Some(removed(&r.facts))).collect(),
        )
    } else {
        let runs = fleet.each(&list(), &vec![vars; hosts])?;
        ignored = runs.iter().map(|r| not_releases(&r.facts)).collect();
        (
            runs.iter().map(|r| parse_inventory(&r.facts)).collect(),
            vec![None; hosts],
        )
    };

    let mut hosts_json = Vec::new();
    let mut text = String::new();
    for (((name, listed), outcome), ignored) in
        names.iter().zip(&listed).zip(&outcomes).zip(&ignored)
    {
        let releases = releases_of(listed);
        let doomed = if args.prune {
            prune(&releases, keep)
        } else {
            Vec::new()
        };
        let freed_kib = match outcome {
            Some(removed) => removed.freed_kib,
            None => listed
                .iter()
                .filter(|l| doomed.contains(&l.release.id))
                .map(|l| l.size_kib)
                .sum(),
        };
        text.push_str(&table(name, listed, &releases));
        for odd in ignored {
            text.push_str(&format!(
                "  ignored releases/{}: not a release id, so shipit neither lists nor removes it\n",
                crate::output::printable(odd, false)
            ));
        }
        if args.prune {
            let verb = if remove_now {
                "removed"
            } else {
                "would remove"
            };
            let list = doomed.iter().map(ToString::to_string).collect::<Vec<_>>();
            text.push_str(&format!(
                "  {verb} {} release(s){}{}, {} freed (keeping {keep} good)\n",
                doomed.len(),
                if list.is_empty() {
                    String::new()
                } else {
                    format!(": {}", list.join(" "))
                },
                if remove_now {
                    " and unused virtualenvs"
                } else {
                    ""
                },
                human_bytes(freed_kib * 1024)
            ));
        }
        hosts_json.push(json!({
            "host": name,
            "releases": listed.iter().map(|l| row_json(l, &releases)).collect::<Vec<_>>(),
            "ignored": ignored,
            "prune": args.prune.then(|| json!({
                "keep": keep,
                "dry_run": args.dry_run,
                "releases": doomed.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "removed": outcome.as_ref().map(|r| {
                    r.releases.iter().cloned().chain(r.venvs.iter().map(|v| format!("venv:{v}"))).collect()
                }).unwrap_or_else(Vec::new),
                "freed_kib": freed_kib,
            })),
        }));
    }
    printer.result(text.trim_end());
    let inventories: Vec<(String, Vec<Release>)> = names
        .iter()
        .zip(&listed)
        .map(|(name, listed)| (name.clone(), releases_of(listed)))
        .collect();
    let split = disagreement(&inventories);
    if let Some(runs) = &split {
        printer.warn(format!(
            "the hosts disagree: {runs}; `shipit rollback -t {}` takes every host to the last release all of them had live",
            target.name
        ));
    }
    printer.json_result(&json!({ "target": target.name, "hosts": hosts_json, "disagree": split }));
    Ok(())
}

fn releases_of(listed: &[Listed]) -> Vec<Release> {
    listed.iter().map(|l| l.release.clone()).collect()
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
