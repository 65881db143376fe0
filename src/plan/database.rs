//! The remote side of `shipit db`: phases that take, list and restore database snapshots on
//! the primary (`templates/remote/snapshot.sh`), and the snapshots as the list reports them.

use super::step::{Cleanup, Step};
use super::Phase;
use crate::remote::facts::{key, Facts};

/// `shipit db backup`: a snapshot now, under the lock.
pub(crate) fn backup() -> Phase {
    Phase::new(
        vec![Step::Lock, Step::DbBackup, Step::ReleaseLock],
        Cleanup::Lock,
    )
}

/// `shipit db list`: changes nothing, takes no lock.
pub(crate) fn list() -> Phase {
    Phase::new(vec![Step::DbList], Cleanup::Lock)
}

/// `shipit db restore NAME`: the snapshot back into the database, under the lock.
pub(crate) fn restore(name: &str) -> Phase {
    Phase::new(
        vec![
            Step::Lock,
            Step::DbRestore(name.to_string()),
            Step::ReleaseLock,
        ],
        Cleanup::Lock,
    )
}

/// A snapshot on the primary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Snapshot {
    /// `RELEASE-TIME`: what `shipit db restore` takes.
    pub(crate) name: String,
    /// The release whose migrate it was taken before (or the live one, by `db backup`).
    pub(crate) release: String,
    /// UTC, `YYYY-mm-ddTHH:MM:SSZ`.
    pub(crate) taken: String,
    /// `postgresql` or `sqlite`.
    pub(crate) engine: String,
    pub(crate) bytes: u64,
    /// How many migrations the database had applied.
    pub(crate) applied: u64,
}

/// The snapshots `step_db_list` reported, newest first; a line it cannot read is left out.
pub(crate) fn snapshots(facts: &Facts) -> Vec<Snapshot> {
    facts
        .iter()
        .filter(|(k, _)| k.starts_with(key::SNAPSHOT))
        .filter_map(|(_, line)| {
            let f: Vec<&str> = line.split('\t').collect();
            let [name, release, taken, engine, bytes, applied] = f[..] else {
                return None;
            };
            Some(Snapshot {
                name: name.into(),
                release: release.into(),
                taken: taken.into(),
                engine: engine.into(),
                bytes: bytes.parse().ok()?,
                applied: applied.parse().ok()?,
            })
        })
        .collect()
}
