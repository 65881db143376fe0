//! The remote side of `shipit releases` and of pruning.
//!
//! The inventory is a shell function of the library (`shipit_inventory`) shared by every script
//! that needs it, so a deploy learns the host's releases in the same exec that takes the lock.
//! Its facts are parsed back into releases by [`crate::remote::facts`], which keeps the choices
//! pure.

use crate::release::ReleaseId;

use super::step::{Cleanup, Step};
use super::Phase;

// The facts of these scripts are parsed in the host contract; their callers find them here.
pub(crate) use crate::remote::facts::{
    draining, has_archive, lock_holder, not_releases, parse_inventory, releases, removed, Facts,
    Listed, Removed,
};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::script::Script;

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
