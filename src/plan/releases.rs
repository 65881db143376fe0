//! The remote side of `shipit releases` and of pruning, and the typed parsers of the facts
//! hosts report: releases, the lock's holder, the archive and the virtualenv.
//!
//! The inventory is a shell function of the library (`shipit_inventory`) shared by every script
//! that needs it, so a deploy learns the host's releases in the same exec that takes the lock.
//! Its facts are parsed back into [`Release`] values here, which keeps the choices pure.

use std::collections::BTreeMap;

use crate::release::{Release, ReleaseId, State};

use super::step::{Cleanup, Step};
use super::Phase;

/// The facts one script reported, by key.
pub type Facts = BTreeMap<String, String>;

/// `shipit releases`: inventory with sizes, no lock (it changes nothing).
pub(crate) fn list() -> Phase {
    Phase::new(vec![Step::Inventory], Cleanup::Lock)
}

/// `releases --prune`, first: lock, wait for app servers earlier runs left stopping (at most
/// their stop timeout: a prune is no deploy, and a release a deploy just replaced can go),
/// inventory.
pub(crate) fn prune_begin() -> Phase {
    Phase::new(
        vec![
            Step::RequireReleases,
            Step::Lock,
            Step::Reap { wait: true },
            Step::Inventory,
        ],
        Cleanup::Lock,
    )
}

/// After [`prune_begin`]: remove `doomed` and unused virtualenvs, then unlock.
pub(crate) fn remove(doomed: Vec<ReleaseId>) -> Phase {
    Phase::new(vec![Step::Remove(doomed)], Cleanup::Lock)
}

/// A release as listed by `shipit releases`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Listed {
    /// Id, state, current, in use.
    #[serde(flatten)]
    pub release: Release,
    /// Disk usage in KiB (0 when sizes were not asked for).
    pub size_kib: u64,
    /// Virtualenv key it uses.
    pub venv: Option<String>,
    /// Git revision from its manifest.
    pub revision: Option<String>,
}

/// The release ids of a space-separated inventory fact (`in_use`, `draining`).
fn ids_of(facts: &Facts, key: &str) -> Vec<ReleaseId> {
    facts
        .get(key)
        .map(|list| {
            list.split_whitespace()
                .filter_map(ReleaseId::parse)
                .collect()
        })
        .unwrap_or_default()
}

/// Releases whose app servers an earlier run left stopping in the background (a subset of the
/// releases in use).
pub(crate) fn draining(facts: &Facts) -> Vec<ReleaseId> {
    ids_of(facts, "draining")
}

/// Turns inventory facts back into releases, sorted by id.
pub fn parse_inventory(facts: &Facts) -> Vec<Listed> {
    let current = facts.get("current").and_then(|c| ReleaseId::parse(c));
    let in_use = ids_of(facts, "in_use");
    let mut listed: Vec<Listed> = facts
        .iter()
        .filter_map(|(key, value)| {
            let id = ReleaseId::parse(key.strip_prefix("release:")?)?;
            let mut fields = value.split(' ');
            let state = State::parse(fields.next().unwrap_or(""));
            let size_kib = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let word =
                |w: Option<&str>| w.filter(|w| *w != "-" && !w.is_empty()).map(str::to_string);
            let venv = word(fields.next());
            let revision = word(fields.next());
            let is_current = current == Some(id);
            Some(Listed {
                release: Release {
                    id,
                    // `current` is the truth about what is live, whatever a state file says.
                    state: if is_current { State::Live } else { state },
                    current: is_current,
                    in_use: in_use.contains(&id),
                },
                size_kib,
                venv,
                revision,
            })
        })
        .collect();
    listed.sort_by_key(|l| l.release.id);
    listed
}

/// The releases of an inventory, without listing details.
pub(crate) fn releases(facts: &Facts) -> Vec<Release> {
    parse_inventory(facts)
        .into_iter()
        .map(|l| l.release)
        .collect()
}

/// Who holds a lock this run could not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LockHolder {
    /// `by alice@laptop since 2026-... (deploy 2026...)`.
    pub(crate) who: String,
    /// Whether the process that took it still runs (or it is held with `shipit lock`).
    pub(crate) live: bool,
    /// Whether `shipit lock acquire` holds it.
    pub(crate) held: bool,
}

/// The holder reported by a failed `lock` step.
pub(crate) fn lock_holder(facts: &Facts) -> LockHolder {
    LockHolder {
        who: facts
            .get("locked")
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty() && h != "by  since  ( )")
            .unwrap_or_else(|| "with no details recorded".into()),
        live: facts.get("lock_live").map(String::as_str) == Some("1"),
        held: facts.get("lock_held").map(String::as_str) == Some("1"),
    }
}

/// Whether the host already has the archive (begin's `archive` fact).
pub(crate) fn has_archive(facts: &Facts) -> bool {
    facts.get("archive").map(String::as_str) == Some("present")
}

/// What was removed: releases, virtualenvs, KiB freed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Removed {
    pub(crate) releases: Vec<String>,
    pub(crate) venvs: Vec<String>,
    pub(crate) freed_kib: u64,
}

/// Parses the facts of `shipit_remove_releases`.
pub(crate) fn removed(facts: &Facts) -> Removed {
    Removed {
        releases: facts
            .iter()
            .filter(|(_, kind)| kind.as_str() == "release")
            .filter_map(|(key, _)| key.strip_prefix("removed:").map(str::to_string))
            .collect(),
        venvs: facts
            .keys()
            .filter_map(|k| k.strip_prefix("removed:venv:").map(str::to_string))
            .collect(),
        freed_kib: facts
            .get("freed_kib")
            .and_then(|k| k.parse().ok())
            .unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::script::Script;

    #[test]
    fn inventory_facts_become_releases() {
        let facts: Facts = [
            ("current", "20260101000002"),
            ("in_use", "20260101000002 20260101000001 "),
            ("release:20260101000001", "good 1200 abc - "),
            ("release:20260101000002", "live 800 abc 0123abcd"),
            ("release:20260101000003", "failed 10 - -"),
            ("release:junk", "good 1 - -"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let listed = parse_inventory(&facts);
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[0].release.state, State::Good);
        assert!(listed[0].release.in_use && !listed[0].release.current);
        assert_eq!(listed[0].size_kib, 1200);
        assert_eq!(listed[1].revision.as_deref(), Some("0123abcd"));
        assert!(listed[1].release.current);
        assert_eq!(listed[2].release.state, State::Failed);
        assert_eq!(listed[2].venv, None);
    }

    #[test]
    fn inventory_runs_in_a_real_shell() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let vars = crate::resolve::test_vars(d.to_str().unwrap());
        std::fs::remove_dir(d.join("releases/20261122010320")).unwrap();
        for (id, state) in [("20260101000001", "good"), ("20260101000002", "live")] {
            std::fs::create_dir_all(d.join("releases").join(id).join(".shipit")).unwrap();
            std::fs::write(
                d.join("releases").join(id).join(".shipit/state"),
                format!("{state}\n"),
            )
            .unwrap();
            std::fs::write(
                d.join("releases").join(id).join(".shipit/manifest.json"),
                "{\n  \"revision\": \"feedbeef\",\n}\n",
            )
            .unwrap();
        }
        std::os::unix::fs::symlink("releases/20260101000002", d.join("current")).unwrap();
        let phase = list();
        let script = Script::new("n", vars, phase.steps, phase.cleanup);
        let (text, facts) = script.run_for_facts();
        let listed = parse_inventory(&facts);
        assert_eq!(listed.len(), 2, "{text}");
        assert!(listed[1].release.current);
        assert_eq!(listed[0].revision.as_deref(), Some("feedbeef"));
        assert!(listed[0].size_kib > 0);
    }
}
