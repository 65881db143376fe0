//! Release ids: the UTC timestamps that name release directories.
//!
//! A release id is `YYYYmmddHHMMSS` in UTC, so that lexical order is time order and an operator
//! can read when a release was made from its name. Ids are pure values; choosing one that does not
//! collide with what a host already has is [`ReleaseId::after`]'s job.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};

const FORMAT: &str = "%Y%m%d%H%M%S";

/// The name of one release directory, e.g. `20261122010320`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReleaseId(i64);

impl ReleaseId {
    /// The id of a release made at `time` (second precision).
    pub fn at(time: DateTime<Utc>) -> ReleaseId {
        ReleaseId(time.timestamp())
    }

    /// The id for a release made at `time` that sorts after every id in `existing`.
    pub fn after<'a>(
        time: DateTime<Utc>,
        existing: impl IntoIterator<Item = &'a ReleaseId>,
    ) -> ReleaseId {
        let latest = existing.into_iter().max().map_or(i64::MIN, |id| id.0);
        ReleaseId(time.timestamp().max(latest.saturating_add(1)))
    }

    /// Parses a release directory name; `None` for anything that is not exactly an id.
    pub fn parse(text: &str) -> Option<ReleaseId> {
        if text.len() != 14 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let naive = NaiveDateTime::parse_from_str(text, FORMAT).ok()?;
        let id = ReleaseId(Utc.from_utc_datetime(&naive).timestamp());
        // chrono reads a leap second (`…60`) as `…59`: two names, one id. Only exact ids count.
        (id.to_string() == text).then_some(id)
    }

    /// When the release was made.
    pub fn time(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.0, 0).unwrap_or_default()
    }
}

impl serde::Serialize for ReleaseId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Display for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.time().format(FORMAT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_utc_timestamps_that_round_trip() {
        let time = DateTime::from_timestamp(1_795_309_400, 0).unwrap();
        let id = ReleaseId::at(time);
        assert_eq!(id.to_string(), "20261122010320");
        assert_eq!(ReleaseId::parse("20261122010320"), Some(id));
    }

    #[test]
    fn parse_rejects_anything_else() {
        for bad in [
            "",
            "2026112301432",
            "202611230143200",
            "2026112301432x",
            "20261399000000",
            "../20261123",
            "20261122005160",
        ] {
            assert_eq!(ReleaseId::parse(bad), None, "{bad}");
        }
    }

    fn release(id: &str, state: State) -> Release {
        Release {
            id: ReleaseId::parse(id).unwrap(),
            state,
            current: state == State::Live,
            in_use: false,
        }
    }

    fn ids(list: &[ReleaseId]) -> Vec<String> {
        list.iter().map(ToString::to_string).collect()
    }

    const V1: &str = "20260101000001";
    const V2: &str = "20260101000002";
    const V3: &str = "20260101000003";
    const V4: &str = "20260101000004";
    const V5: &str = "20260101000005";

    #[test]
    fn rollback_skips_failed_releases() {
        // v1, v2 good; v3 failed; v4 live: rollback goes to v2, never the failed v3.
        let releases = [
            release(V1, State::Good),
            release(V2, State::Good),
            release(V3, State::Failed),
            release(V4, State::Live),
        ];
        assert_eq!(rollback_target(&releases, None).unwrap().to_string(), V2);
    }

    #[test]
    fn a_second_rollback_goes_further_back() {
        // After rolling back from v3 to v2, v3 is rolled back and v2 live.
        let releases = [
            release(V1, State::Good),
            release(V2, State::Live),
            release(V3, State::RolledBack),
        ];
        assert_eq!(rollback_target(&releases, None).unwrap().to_string(), V1);
    }

    #[test]
    fn rollback_refusals() {
        let only = [release(V1, State::Live)];
        assert_eq!(
            rollback_target(&only, None),
            Err(RollbackRefusal::NothingToRollBackTo)
        );
        assert_eq!(
            rollback_target(&[], None),
            Err(RollbackRefusal::NothingDeployed)
        );
        let releases = [release(V1, State::Failed), release(V2, State::Live)];
        assert_eq!(
            rollback_target(&releases, Some("20990101000000")),
            Err(RollbackRefusal::UnknownRelease("20990101000000".into()))
        );
        assert_eq!(
            rollback_target(&releases, Some("../etc")),
            Err(RollbackRefusal::UnknownRelease("../etc".into()))
        );
        assert!(matches!(
            rollback_target(&releases, Some(V1)),
            Err(RollbackRefusal::Failed(_))
        ));
        assert!(matches!(
            rollback_target(&releases, Some(V2)),
            Err(RollbackRefusal::AlreadyCurrent(_))
        ));
    }

    #[test]
    fn rollback_to_a_named_release_may_go_forward() {
        let releases = [release(V1, State::Live), release(V2, State::RolledBack)];
        assert_eq!(
            rollback_target(&releases, Some(V2)).unwrap().to_string(),
            V2
        );
    }

    #[test]
    fn failed_releases_do_not_take_a_keep_slot() {
        let releases = [
            release(V1, State::Good),
            release(V2, State::Good),
            release(V3, State::Failed),
            release(V4, State::Failed),
            release(V5, State::Live),
        ];
        // keep 2: v5 (live) and v2; v1 goes, and the failed ones go without costing a slot.
        assert_eq!(ids(&prune(&releases, 2)), [V1, V3, V4]);
    }

    #[test]
    fn pruning_never_removes_the_rollback_target_or_what_runs() {
        let mut releases = vec![
            release(V1, State::Good),
            release(V2, State::Good),
            release(V3, State::Live),
        ];
        // keep 1 would keep only v3, but v2 is where a rollback goes.
        assert_eq!(ids(&prune(&releases, 1)), [V1]);
        releases[0].in_use = true;
        assert!(prune(&releases, 1).is_empty());
    }

    #[test]
    fn a_rolled_back_release_survives_one_more_deploy() {
        // Rolled back from v2 to v1, then v3 deployed: v2 stays (rollback --to may want it).
        let mut releases = vec![
            release(V1, State::Good),
            release(V2, State::RolledBack),
            release(V3, State::Live),
        ];
        assert!(prune(&releases, 1).is_empty());
        // After v4, it goes (v1 too: keep 1, and v3 is where a rollback goes).
        releases[2].state = State::Good;
        releases[2].current = false;
        releases.push(release(V4, State::Live));
        assert_eq!(ids(&prune(&releases, 1)), [V1, V2]);
    }

    #[test]
    fn rollback_to_a_named_release_needs_no_live_one() {
        // `current` dangles: no release is current, but `--to` recovers.
        let releases = [release(V1, State::Good), release(V2, State::Good)];
        assert_eq!(
            rollback_target(&releases, Some(V1)).unwrap().to_string(),
            V1
        );
        assert_eq!(
            rollback_target(&releases, None),
            Err(RollbackRefusal::NothingDeployed)
        );
    }

    #[test]
    fn pruning_keeps_exactly_keep_good_releases() {
        let releases = [
            release(V1, State::Good),
            release(V2, State::Good),
            release(V3, State::Good),
            release(V4, State::Good),
            release(V5, State::Live),
        ];
        assert_eq!(ids(&prune(&releases, 2)), [V1, V2, V3]);
        assert!(prune(&releases, 5).is_empty());
    }

    #[test]
    fn after_never_collides_even_when_clock_is_behind() {
        let time = DateTime::from_timestamp(1_795_309_400, 0).unwrap();
        let existing = [
            ReleaseId::at(time),
            ReleaseId::parse("20300101000000").unwrap(),
        ];
        let id = ReleaseId::after(time, &existing);
        assert_eq!(id.to_string(), "20300101000001");
        assert_eq!(ReleaseId::after(time, &[]), ReleaseId::at(time));
    }
}

/// What shipit recorded about a release in `releases/<id>/.shipit/state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Being unpacked and prepared by a deploy.
    Preparing,
    /// Ready to be switched to (a deploy waiting for other hosts, or one that died there).
    Prepared,
    /// `current` points at it.
    Live,
    /// Was live and was left by a later deploy: a rollback target.
    Good,
    /// A deploy of it failed or was aborted; never a rollback target.
    Failed,
    /// Was live and was abandoned by a rollback; a rollback never returns to it by itself.
    RolledBack,
    /// No state recorded (made by something else); treated like a good release.
    Unknown,
}

impl State {
    /// Parses the word in a state file.
    pub fn parse(text: &str) -> State {
        match text.trim() {
            "preparing" => State::Preparing,
            "prepared" => State::Prepared,
            "live" => State::Live,
            "good" => State::Good,
            "failed" => State::Failed,
            "rolled_back" => State::RolledBack,
            _ => State::Unknown,
        }
    }

    /// Whether a release in this state ever served traffic successfully.
    pub fn is_good(self) -> bool {
        matches!(self, State::Live | State::Good | State::Unknown)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Preparing => "preparing",
            State::Prepared => "prepared",
            State::Live => "live",
            State::Good => "good",
            State::Failed => "failed",
            State::RolledBack => "rolled back",
            State::Unknown => "unknown",
        })
    }
}

/// One release directory on a host, as reported by the host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Release {
    /// Its id.
    pub id: ReleaseId,
    /// Its recorded state.
    pub state: State,
    /// Whether `current` points at it.
    pub current: bool,
    /// Whether a running process works in it.
    pub in_use: bool,
}

/// Why a rollback cannot go anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackRefusal {
    /// `current` points at no release.
    NothingDeployed,
    /// No good release is older than the current one.
    NothingToRollBackTo,
    /// `--to` names a release the host does not have.
    UnknownRelease(String),
    /// `--to` names the current release.
    AlreadyCurrent(ReleaseId),
    /// `--to` names a release whose deploy failed.
    Failed(ReleaseId),
}

impl fmt::Display for RollbackRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RollbackRefusal::NothingDeployed => {
                f.write_str("nothing is deployed (`current` does not point at a release); `--to RELEASE` switches to a release you name")
            }
            RollbackRefusal::NothingToRollBackTo => {
                f.write_str("there is no earlier good release to roll back to")
            }
            RollbackRefusal::UnknownRelease(id) => write!(f, "there is no release `{id}`"),
            RollbackRefusal::AlreadyCurrent(id) => write!(f, "release {id} is already current"),
            RollbackRefusal::Failed(id) => {
                write!(
                    f,
                    "release {id} failed to deploy; it never served and cannot be rolled back to"
                )
            }
        }
    }
}

/// The release a rollback switches to: `to` when given, else the newest good release older
/// than the current one (failed and rolled-back releases are skipped, so a second rollback goes
/// further back instead of returning to the release the first one left).
pub fn rollback_target(
    releases: &[Release],
    to: Option<&str>,
) -> Result<ReleaseId, RollbackRefusal> {
    // `--to` needs no live release: it recovers a `current` that dangles.
    if let Some(wanted) = to {
        let release = ReleaseId::parse(wanted)
            .and_then(|id| releases.iter().find(|r| r.id == id))
            .ok_or_else(|| RollbackRefusal::UnknownRelease(wanted.to_string()))?;
        return match release {
            r if r.current => Err(RollbackRefusal::AlreadyCurrent(r.id)),
            r if matches!(r.state, State::Failed | State::Preparing) => {
                Err(RollbackRefusal::Failed(r.id))
            }
            r => Ok(r.id),
        };
    }
    let current = releases
        .iter()
        .find(|r| r.current)
        .ok_or(RollbackRefusal::NothingDeployed)?;
    releases
        .iter()
        .filter(|r| r.id < current.id && r.state.is_good())
        .map(|r| r.id)
        .max()
        .ok_or(RollbackRefusal::NothingToRollBackTo)
}

/// The releases pruning removes, oldest first.
///
/// Good releases (live, good, unknown) are kept up to `keep`, newest first, the live one
/// included. Failed and rolled-back releases never take a slot and are removed, but a
/// rolled-back release survives the first deploy after its rollback (while at most one good
/// release is newer), so `rollback --to` can still return to it once the cause is understood.
/// Never removed: the current release, the release a rollback would go to, any release a
/// process still works in, and releases being prepared.
pub fn prune(releases: &[Release], keep: u32) -> Vec<ReleaseId> {
    let protected_target = rollback_target(releases, None).ok();
    let good_newer_than = |id: ReleaseId| {
        releases
            .iter()
            .filter(|r| r.id > id && r.state.is_good())
            .count()
    };
    let mut good: Vec<&Release> = releases.iter().filter(|r| r.state.is_good()).collect();
    good.sort_by_key(|r| std::cmp::Reverse(r.id));
    let kept_good: Vec<ReleaseId> = good.iter().take(keep as usize).map(|r| r.id).collect();
    let mut doomed: Vec<ReleaseId> = releases
        .iter()
        .filter(|r| {
            let removable_state = match r.state {
                State::Failed => true,
                State::RolledBack => good_newer_than(r.id) > 1,
                State::Live | State::Good | State::Unknown => !kept_good.contains(&r.id),
                State::Preparing | State::Prepared => false,
            };
            removable_state && !r.current && !r.in_use && Some(r.id) != protected_target
        })
        .map(|r| r.id)
        .collect();
    doomed.sort();
    doomed
}
