//! Typed facts: what a script reports with `shipit_fact KEY VALUE`, one parser per kind.
//!
//! A fact is a marker line (see [`super::protocol`]) the session collects into [`Facts`]. Every
//! key is named here once, in [`key`]; the rest of shipit asks the parsers below, so a key the
//! shell stops emitting, or one Rust reads that the shell never emits, fails a test here instead
//! of going quietly missing on a host.

use std::collections::BTreeMap;

use crate::release::{Release, ReleaseId, State};

/// The facts one script reported, by key.
pub type Facts = BTreeMap<String, String>;

/// Declares each fact key once, and [`key::ALL`] with every one of them (the test's list).
macro_rules! keys {
    ($($(#[$doc:meta])* $name:ident = $key:literal,)*) => {
        $($(#[$doc])* pub(crate) const $name: &str = $key;)*
        /// Every key and key prefix (ending in `:`) Rust reads.
        #[cfg(test)]
        pub(crate) const ALL: &[&str] = &[$($name),*];
    };
}

/// The fact keys; a name ending in `:` is a prefix of a family (`release:ID`).
pub(crate) mod key {
    keys! {
        /// `current`'s release id (inventory).
        CURRENT = "current",
        /// Release ids whose app servers run (inventory).
        IN_USE = "in_use",
        /// Release ids whose app servers an earlier run left stopping (inventory).
        DRAINING = "draining",
        /// `release:ID` = `STATE KIB VENV REVISION` (inventory).
        RELEASE = "release:",
        /// `current` points at a release that does not exist.
        DANGLING = "dangling",
        /// The holder of a lock this run could not take.
        LOCKED = "locked",
        /// The lock's run still runs.
        LOCK_LIVE = "lock_live",
        /// `shipit lock acquire` holds the lock.
        LOCK_HELD = "lock_held",
        /// The holder of a lock this run broke (`--break-lock`).
        BROKE_LOCK = "broke_lock",
        /// Another run broke this run's lock.
        LOCK_LOST = "lock_lost",
        /// This run gave its lock back.
        UNLOCKED = "unlocked",
        /// A prepared host stopped waiting for its switch (`prepared_timeout`, or its run was
        /// gone) and gave its release and its lock up before the switch came.
        GAVE_UP = "gave_up",
        /// `shipit lock release` found no lock.
        /// Emitted for the log of the run; no Rust reads it yet.
        #[allow(dead_code)]
        WAS_UNLOCKED = "was_unlocked",
        /// The holder of the lock `shipit lock release` gave back.
        RELEASED = "released",
        /// The script stopped at its gate.
        STOPPED = "stopped",
        /// `present` when the host has the archive already.
        ARCHIVE = "archive",
        /// `delta` when the host asked for a delta instead of the archive (see [`crate::delta`]).
        UPLOAD = "upload",
        /// MEDIA_ROOT, relative to the release, when it is inside it and no shared dir holds it.
        MEDIA_INSIDE = "media_inside",
        /// `reused KEY` or `built KEY`.
        VENV = "venv",
        /// The outcome of the settings step (`skipped …` when it did nothing).
        SETTINGS = "settings",
        /// The outcome of the migrate step.
        MIGRATE = "migrate",
        /// The migrations the gate held for after the switch (`app.name`, space-separated).
        AFTER_SWITCH = "after_switch",
        /// The held migrations were applied after the switch.
        /// Emitted for the log of the run; no Rust reads it yet.
        #[allow(dead_code)]
        MIGRATE_AFTER_SWITCH = "migrate_after_switch",
        /// `snapshot:N` = `NAME RELEASE TAKEN ENGINE BYTES APPLIED`, tab-separated, newest first
        /// (`shipit db list`).
        SNAPSHOT = "snapshot:",
        /// The name of the snapshot `shipit db backup` took.
        SNAPSHOT_TAKEN = "snapshot_taken",
        /// The name of the snapshot `shipit db restore` restored.
        RESTORED = "restored",
        /// The outcome of the collectstatic step.
        COLLECTSTATIC = "collectstatic",
        /// The deploy user's name.
        USER = "user",
        /// The deploy user's uid.
        UID = "uid",
        /// Where the host's `uv` is.
        /// Emitted for the log of the run; no Rust reads it yet.
        #[allow(dead_code)]
        UV = "uv",
        /// `removed:ID` = `release`.
        REMOVED = "removed:",
        /// `removed:venv:KEY` = `venv`.
        REMOVED_VENV = "removed:venv:",
        /// KiB a prune freed.
        FREED_KIB = "freed_kib",
        /// `applied:MIGRATION`: applied on the host.
        APPLIED = "applied:",
        /// `known:N` = a migration the release knows.
        KNOWN = "known:",
        /// `check:ID` = `ok|skip|fail DETAIL`.
        CHECK = "check:",
        /// `log:N` = one line of the deploy log.
        LOG = "log:",
        /// The last line of the host's certificate renewal log (`shipit tls status`).
        TLS_LAST = "tls_last",
    }
}

/// The last line of the host's renewal log: `TIME EVENT DETAIL`, empty when there is none.
pub(crate) fn tls_last(facts: &Facts) -> &str {
    facts.get(key::TLS_LAST).map_or("", String::as_str)
}

/// Whether the fact `key` was reported (flags such as [`key::UNLOCKED`]).
fn flag(facts: &Facts, key: &str) -> bool {
    facts.contains_key(key)
}

/// This run gave its lock back.
pub(crate) fn unlocked(facts: &Facts) -> bool {
    flag(facts, key::UNLOCKED)
}

/// The script stopped at its gate.
pub(crate) fn stopped(facts: &Facts) -> bool {
    flag(facts, key::STOPPED)
}

/// The host had given its prepared release up before its switch came.
pub(crate) fn gave_up(facts: &Facts) -> bool {
    flag(facts, key::GAVE_UP)
}

/// The migrations the gate held for after the switch, when it held some.
pub(crate) fn after_switch(facts: &Facts) -> Option<&str> {
    facts.get(key::AFTER_SWITCH).map(String::as_str)
}

/// Another run broke this run's lock.
pub(crate) fn lock_lost(facts: &Facts) -> bool {
    flag(facts, key::LOCK_LOST)
}

/// The holder of a lock this run broke.
pub(crate) fn broke_lock(facts: &Facts) -> Option<&String> {
    facts.get(key::BROKE_LOCK)
}

/// The holder of the lock `shipit lock release` gave back.
pub(crate) fn released(facts: &Facts) -> Option<&String> {
    facts.get(key::RELEASED)
}

/// Where a dangling `current` points.
pub(crate) fn dangling(facts: &Facts) -> Option<&String> {
    facts.get(key::DANGLING)
}

/// `current`'s release id as the host reported it.
pub(crate) fn current(facts: &Facts) -> Option<&String> {
    facts.get(key::CURRENT)
}

/// The deploy user, and whether it is root (uid 0).
pub(crate) fn user(facts: &Facts) -> (Option<&String>, bool) {
    (
        facts.get(key::USER),
        facts.get(key::UID).map(String::as_str) == Some("0"),
    )
}

/// The virtualenv's outcome (`reused KEY`, `built KEY`).
pub(crate) fn venv(facts: &Facts) -> Option<&String> {
    facts.get(key::VENV)
}

/// The Django steps that report an outcome, with their fact key.
pub(crate) const OUTCOMES: [(&str, &str); 3] = [
    ("settings", key::SETTINGS),
    ("migrate", key::MIGRATE),
    ("collectstatic", key::COLLECTSTATIC),
];

/// The outcome a Django step of [`OUTCOMES`] reported, by its fact key.
pub(crate) fn outcome<'a>(facts: &'a Facts, key: &str) -> Option<&'a String> {
    facts.get(key)
}

/// The skips: each step of [`OUTCOMES`] that did nothing, and why (`skipped …`).
pub(crate) fn skips(facts: &Facts) -> Vec<(&'static str, &String)> {
    OUTCOMES
        .iter()
        .filter_map(|(step, key)| {
            Some((
                *step,
                outcome(facts, key).filter(|m| m.starts_with("skipped"))?,
            ))
        })
        .collect()
}

/// MEDIA_ROOT relative to the release, when uploads would stay behind in it.
pub(crate) fn media_inside(facts: &Facts) -> Option<&String> {
    facts.get(key::MEDIA_INSIDE)
}

/// Migrations applied on the host.
pub(crate) fn applied(facts: &Facts) -> Vec<String> {
    facts
        .keys()
        .filter_map(|k| k.strip_prefix(key::APPLIED).map(str::to_string))
        .collect()
}

/// Migrations a release knows, in its order.
pub(crate) fn known(facts: &Facts) -> Vec<String> {
    facts
        .iter()
        .filter(|(k, _)| k.starts_with(key::KNOWN))
        .map(|(_, v)| v.clone())
        .collect()
}

/// The reported outcome of the host check `id` (`ok|skip|fail DETAIL`).
pub(crate) fn check<'a>(facts: &'a Facts, id: &str) -> Option<&'a String> {
    facts.get(&format!("{}{id}", key::CHECK))
}

/// The deploy log's lines, in file order.
pub(crate) fn log_lines(facts: &Facts) -> impl Iterator<Item = &String> {
    facts
        .iter()
        .filter(|(k, _)| k.starts_with(key::LOG))
        .map(|(_, line)| line)
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
    ids_of(facts, key::DRAINING)
}

/// Turns inventory facts back into releases, sorted by id.
pub fn parse_inventory(facts: &Facts) -> Vec<Listed> {
    let current = facts.get(key::CURRENT).and_then(|c| ReleaseId::parse(c));
    let in_use = ids_of(facts, key::IN_USE);
    let mut listed: Vec<Listed> = facts
        .iter()
        .filter_map(|(name, value)| {
            let id = ReleaseId::parse(name.strip_prefix(key::RELEASE)?)?;
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

/// The directories under `releases/` whose names are not release ids (left there by hand, or
/// by another tool): never listed as releases, never pruned, reported as ignored.
pub(crate) fn not_releases(facts: &Facts) -> Vec<String> {
    facts
        .keys()
        .filter_map(|name| name.strip_prefix(key::RELEASE))
        .filter(|name| ReleaseId::parse(name).is_none())
        .map(str::to_string)
        .collect()
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
            .get(key::LOCKED)
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty() && h != "by  since  ( )")
            .unwrap_or_else(|| "with no details recorded".into()),
        live: facts.get(key::LOCK_LIVE).map(String::as_str) == Some("1"),
        held: facts.get(key::LOCK_HELD).map(String::as_str) == Some("1"),
    }
}

/// Whether the host already has the archive (begin's `archive` fact).
pub(crate) fn has_archive(facts: &Facts) -> bool {
    facts.get(key::ARCHIVE).map(String::as_str) == Some("present")
}

/// Whether the host was sent a delta against its live release rather than the archive.
pub(crate) fn got_delta(facts: &Facts) -> bool {
    facts.get(key::UPLOAD).map(String::as_str) == Some("delta")
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
        // Only release ids: whatever else a host says it removed, shipit never asked it to.
        releases: facts
            .iter()
            .filter(|(_, kind)| kind.as_str() == "release")
            .filter_map(|(name, _)| name.strip_prefix(key::REMOVED))
            .filter(|id| ReleaseId::parse(id).is_some())
            .map(str::to_string)
            .collect(),
        venvs: facts
            .keys()
            .filter_map(|k| k.strip_prefix(key::REMOVED_VENV).map(str::to_string))
            .collect(),
        freed_kib: facts
            .get(key::FREED_KIB)
            .and_then(|k| k.parse().ok())
            .unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key and key prefix the library emits: `shipit_fact KEY`, `shipit_fact "PREFIX:$…"`
    /// and the deploy log's `awk` (`fact log:%09d`).
    fn emitted(library: &str) -> std::collections::BTreeSet<String> {
        let fact = regex::Regex::new(r#"shipit_fact "?([a-z_]+(?::[a-z_]+)*:?)|fact ([a-z_]+:)%"#)
            .unwrap();
        fact.captures_iter(library)
            .map(|c| c.get(1).or(c.get(2)).unwrap().as_str().to_string())
            .collect()
    }

    /// The keys of `emitted` that [`key::ALL`] lacks, and those of [`key::ALL`] it lacks.
    fn mismatch(library: &str) -> (Vec<String>, Vec<&'static str>) {
        let emitted = emitted(library);
        let unread = emitted
            .iter()
            .filter(|k| !key::ALL.contains(&k.as_str()))
            .cloned()
            .collect();
        let unemitted = key::ALL
            .iter()
            .copied()
            .filter(|k| !emitted.contains(*k))
            .collect();
        (unread, unemitted)
    }

    #[test]
    fn every_fact_the_library_emits_is_parsed_and_every_parsed_one_emitted() {
        let (unread, unemitted) = mismatch(crate::remote::library::LIBRARY);
        assert!(
            unread.is_empty(),
            "emitted but not in facts::key: {unread:?}"
        );
        assert!(
            unemitted.is_empty(),
            "in facts::key but never emitted: {unemitted:?}"
        );
    }

    #[test]
    fn a_misspelt_fact_key_is_caught() {
        let library = crate::remote::library::LIBRARY;
        assert!(library.contains("shipit_fact lock_lost 1"));
        let misspelt = library.replace("shipit_fact lock_lost 1", "shipit_fact lock_lsot 1");
        let (unread, unemitted) = mismatch(&misspelt);
        assert_eq!(unread, ["lock_lsot"]);
        assert_eq!(unemitted, ["lock_lost"]);
    }

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
        assert_eq!(not_releases(&facts), ["junk"]);
    }

    /// Issue 22, defect 12: a name that is no release id was reported (and logged) as removed.
    #[test]
    fn only_release_ids_are_reported_removed() {
        let facts: Facts = [
            ("removed:20260101000001", "release"),
            ("removed:old-copy", "release"),
            ("removed:20260101000002.bak", "release"),
            ("removed:venv:abc", "venv"),
            ("freed_kib", "12"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let removed = removed(&facts);
        assert_eq!(removed.releases, ["20260101000001"]);
        assert_eq!(removed.venvs, ["abc"]);
    }
}
