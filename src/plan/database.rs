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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_read_newest_first_and_a_bad_line_is_left_out() {
        let facts: Facts = [
            (
                "snapshot:000001",
                "2-20261102\t2\t2026-11-02T00:00:00Z\tsqlite\t24576\t19",
            ),
            ("snapshot:000002", "1-20261101\t1\tT\tpostgresql\tmany\t3"),
            ("snapshot:000003", "0-20261031\t0\tT\tpostgresql\t10\t3"),
            ("snapshot_taken", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let all = snapshots(&facts);
        assert_eq!(
            all.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["2-20261102", "0-20261031"]
        );
        assert_eq!(
            all[0],
            Snapshot {
                name: "2-20261102".into(),
                release: "2".into(),
                taken: "2026-11-02T00:00:00Z".into(),
                engine: "sqlite".into(),
                bytes: 24576,
                applied: 19,
            }
        );
    }
}
