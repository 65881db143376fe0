//! The remote side of `shipit rollback`: phases like a deploy's.
//!
//! 1. **begin**: take the lock, clear up after app servers earlier runs left stopping, and
//!    report the host's releases.
//! 2. **check**: report the migrations the database has applied (asked of the live release) and
//!    those the target release knows, so shipit can refuse a rollback that would strand a schema.
//! 3. **prepare**: wait until the target's programs have stopped if a recent run left them
//!    stopping and install the target's kept nginx site (checked, not yet loaded); then unapply
//!    what the target does not know (`--migrate`, once, on the primary, with the live release's
//!    code, which alone knows how); then start the target's kept app server and wait until it
//!    answers — against the schema it knows, so an old release that cannot run on the newer
//!    schema (an `AddField` it does not fill in) is judged after the unapply, not before.
//!    Nothing is switched yet: from the unapply until the switch the live release serves on the
//!    older schema, and if the target then fails to start, every way out migrates the live
//!    schema forward again (`shipit_remigrate`, `UNAPPLIED`).
//! 4. **switch**, once every host is prepared: rename over `current`, reload nginx if its site
//!    changed, mark the abandoned release `rolled_back` and the target `live`, stop the abandoned
//!    release's app server (in the background: the rollback does not wait for it).

use crate::error::{Error, Result};
use crate::migrations::Unapply;
use crate::release::{rollback_target, Release, ReleaseId, State};
use crate::resolve::{Placement, Resolved};

use super::deploy::{start_services, switch_and_check};
use super::step::{Cleanup, Step};
use super::Phase;

/// Phase 1: lock, clear up after what earlier runs left stopping (without waiting: a release
/// still stopping counts as in use), inventory.
pub(crate) fn begin() -> Phase {
    Phase::new(
        vec![
            Step::RequireReleases,
            Step::Lock,
            Step::Reap { wait: false },
            Step::Inventory,
        ],
        Cleanup::Lock,
    )
}

/// What a dry run reads instead of [`begin`]: the inventory, without the lock.
pub(crate) fn look() -> Phase {
    Phase::new(vec![Step::RequireReleases, Step::Inventory], Cleanup::Lock)
}

/// Phase 2: applied and known migrations.
pub(crate) fn check() -> Phase {
    Phase::new(vec![Step::Migrations], Cleanup::Lock)
}

/// Phase 3: once its programs a recent run left stopping are gone, install the target's nginx
/// site; unapply (once: a fleet's other hosts wait for the primary's unapply); then start and
/// health-check the target, whose code needs the schema it knows. A failure from the unapply on
/// migrates forward again (the primary's cleanup, [`Cleanup::Prepare`], with `UNAPPLIED` set).
pub(crate) fn prepare(resolved: &Resolved, placed: &Placement, unapply: &[Unapply]) -> Phase {
    let mut steps = Vec::new();
    if resolved.app.is_some() {
        steps.push(Step::Reap { wait: true });
    }
    steps.extend(start_services(resolved, placed));
    if !unapply.is_empty() {
        let start = steps
            .iter()
            .position(|s| *s == Step::StartApp)
            .unwrap_or(steps.len());
        steps.insert(start, Step::Unapply(unapply.to_vec()));
    }
    Phase::new(steps, Cleanup::Prepare)
}

/// Phase 4: switch to the target and retire the abandoned release.
pub(crate) fn switch(resolved: &Resolved, placed: &Placement) -> Phase {
    let mut steps = switch_and_check(resolved, placed);
    steps.push(Step::Finish);
    steps.push(Step::Unlock);
    if resolved.app.is_some() {
        steps.push(Step::StopOldApp);
    }
    Phase::new(steps, Cleanup::Switch)
}

/// Where a rollback goes: `to` on every host, from `from`, the live release of every host that
/// moves (`None` when `current` points at no release: it dangles).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Destination {
    pub(crate) from: Option<ReleaseId>,
    pub(crate) to: ReleaseId,
    /// Per host, in target order: it runs `to` already and stays as it is (hosts that disagree,
    /// say after a batch failed once earlier batches had switched).
    pub(crate) stays: Vec<bool>,
}

/// Where every host goes, or a refusal. Hosts that agree on their live release go to the one
/// before it (or `--to`), the same on all of them. Hosts that disagree go to the newest release
/// every one of them had live (or `--to`): those on it stay, the others, which must agree among
/// themselves, move.
pub(crate) fn choose(
    hosts: &[(String, Vec<Release>)],
    to: Option<&str>,
    target: &str,
) -> Result<Destination> {
    let live = |releases: &[Release]| releases.iter().find(|r| r.current).map(|r| r.id);
    if let Some(runs) = disagreement(hosts) {
        let lives: Vec<Option<ReleaseId>> = hosts.iter().map(|(_, r)| live(r)).collect();
        return choose_for_hosts_that_disagree(hosts, &lives, &runs, to, target);
    }
    let mut chosen: Option<(Option<ReleaseId>, ReleaseId)> = None;
    for (name, releases) in hosts {
        let to = rollback_target(releases, to).map_err(|refusal| Error::Refused {
            message: format!("{name}: cannot roll back {target}: {refusal}"),
            hint: "`shipit releases --target NAME` lists the releases and their states".into(),
        })?;
        let from = live(releases);
        match chosen {
            Some((f, t)) if (f, t) != (from, to) => {
                return Err(Error::Refused {
                    message: format!(
                        "hosts disagree: one would go from {} to {t}, {name} from {} to {to}",
                        describe_from(f),
                        describe_from(from)
                    ),
                    hint: "name the release with --to".into(),
                })
            }
            _ => chosen = Some((from, to)),
        }
    }
    let (from, to) = chosen.ok_or_else(|| Error::Refused {
        message: format!("{target} has no host to roll back"),
        hint: "add hosts to the target".into(),
    })?;
    Ok(Destination {
        from,
        to,
        stays: vec![false; hosts.len()],
    })
}

/// [`choose`] for hosts whose live releases differ (`lives`, in target order; `runs` says so).
fn choose_for_hosts_that_disagree(
    hosts: &[(String, Vec<Release>)],
    lives: &[Option<ReleaseId>],
    runs: &str,
    to: Option<&str>,
    target: &str,
) -> Result<Destination> {
    let refused = |why: String, hint: &str| Error::Refused {
        message: format!("{target}'s hosts disagree ({runs}): {why}"),
        hint: hint.into(),
    };
    let usable = |releases: &[Release], id: ReleaseId, wanted: bool| {
        releases.iter().any(|r| {
            r.id == id
                && (r.current
                    || r.state.is_good()
                    || (wanted && !matches!(r.state, State::Failed | State::Preparing)))
        })
    };
    let to = match to {
        Some(wanted) => {
            let id = ReleaseId::parse(wanted).ok_or_else(|| {
                refused(
                    format!("`{wanted}` is not a release id"),
                    "`shipit releases --target NAME` lists the releases",
                )
            })?;
            if let Some((name, _)) = hosts.iter().find(|(_, r)| !usable(r, id, true)) {
                return Err(refused(
                    format!("{name} has no release {id} it could switch to"),
                    "name a release every host has with --to",
                ));
            }
            id
        }
        None => hosts[0]
            .1
            .iter()
            .map(|r| r.id)
            .filter(|id| hosts.iter().all(|(_, r)| usable(r, *id, false)))
            .max()
            .ok_or_else(|| {
                refused(
                    "no release was live on all of them".into(),
                    "name the release every host should run with --to",
                )
            })?,
    };
    let stays: Vec<bool> = lives.iter().map(|live| *live == Some(to)).collect();
    let mut movers = lives
        .iter()
        .zip(&stays)
        .filter(|(_, s)| !**s)
        .map(|(l, _)| *l);
    let from = movers.next().flatten();
    if movers.any(|other| other != from) {
        return Err(refused(
            format!("the hosts not on {to} run different releases"),
            "roll them back in steps, each to a release named with --to",
        ));
    }
    Ok(Destination { from, to, stays })
}

/// Which release each host runs, when the hosts' live releases differ (`host runs ID, host
/// runs ID`), for messages; `None` when they agree.
pub(crate) fn disagreement(hosts: &[(String, Vec<Release>)]) -> Option<String> {
    let live = |releases: &[Release]| releases.iter().find(|r| r.current).map(|r| r.id);
    let lives: Vec<Option<ReleaseId>> = hosts.iter().map(|(_, r)| live(r)).collect();
    if lives.windows(2).all(|w| w[0] == w[1]) {
        return None;
    }
    let runs: Vec<String> = hosts
        .iter()
        .zip(lives)
        .map(|((name, _), live)| match live {
            Some(id) => format!("{name} runs {id}"),
            None => format!("{name} runs no release"),
        })
        .collect();
    Some(runs.join(", "))
}

/// A rollback's starting point for messages.
pub(crate) fn describe_from(from: Option<ReleaseId>) -> String {
    from.map_or_else(|| "a release that is gone".to_string(), |id| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::State;

    fn release(id: &str, state: State, current: bool) -> Release {
        Release {
            id: ReleaseId::parse(id).unwrap(),
            state,
            current,
            in_use: current,
        }
    }

    #[test]
    fn hosts_that_disagree_are_refused() {
        let a = vec![
            release("20260101000001", State::Good, false),
            release("20260101000002", State::Live, true),
        ];
        let b = vec![
            release("20260101000001", State::Failed, false),
            release("20260101000000", State::Good, false),
            release("20260101000002", State::Live, true),
        ];
        let err = choose(&[("a".into(), a.clone()), ("b".into(), b)], None, "prod").unwrap_err();
        assert!(err.to_string().contains("hosts disagree"), "{err}");
        let chosen = choose(&[("a".into(), a)], None, "prod").unwrap();
        assert_eq!(
            (describe_from(chosen.from), chosen.to.to_string()),
            ("20260101000002".into(), "20260101000001".into())
        );
    }

    /// A batch failed after the first had switched: host a runs the new release, b and c the
    /// one before it (on b and c the new one failed). Every host goes to the newest release all
    /// of them had live; those on it stay.
    #[test]
    fn hosts_split_by_a_failed_batch_go_back_to_the_last_release_all_had_live() {
        let a = vec![
            release("20260101000000", State::Good, false),
            release("20260101000001", State::Good, false),
            release("20260101000002", State::Live, true),
        ];
        let back = |failed: State| {
            vec![
                release("20260101000000", State::Good, false),
                release("20260101000001", State::Live, true),
                release("20260101000002", failed, false),
            ]
        };
        let hosts = [
            ("a".to_string(), a.clone()),
            ("b".to_string(), back(State::Failed)),
            ("c".to_string(), back(State::Prepared)),
        ];
        let chosen = choose(&hosts, None, "prod").unwrap();
        assert_eq!(
            chosen,
            Destination {
                from: ReleaseId::parse("20260101000002"),
                to: ReleaseId::parse("20260101000001").unwrap(),
                stays: vec![false, true, true],
            }
        );
        // --to the one before: every host would move, from two releases: in steps, please.
        let err = choose(&hosts, Some("20260101000000"), "prod").unwrap_err();
        assert!(
            err.to_string()
                .contains("the hosts not on 20260101000000 run different releases"),
            "{err}"
        );
        // --to the new release: only the hosts where it did not fail could go.
        let err = choose(&hosts, Some("20260101000002"), "prod").unwrap_err();
        assert!(
            err.to_string().contains(
                "prod's hosts disagree (a runs 20260101000002, b runs 20260101000001, c runs 20260101000001): b has no release 20260101000002"
            ),
            "{err}"
        );
        // No release live on all of them.
        let lone = vec![release("20260101000003", State::Live, true)];
        let err = choose(&[("a".into(), a), ("d".into(), lone)], None, "prod").unwrap_err();
        assert!(
            err.to_string()
                .contains("no release was live on all of them"),
            "{err}"
        );
    }

    #[test]
    fn unapply_comes_before_the_target_starts_and_runs_once() {
        let resolved = super::super::deploy::tests::resolved();
        let placed = super::super::deploy::tests::everything();
        let unapply = [Unapply {
            app: "pages".into(),
            to: "0001_initial".into(),
        }];
        let phase = prepare(&resolved, &placed, &unapply);
        let ids: Vec<String> = phase.steps.iter().map(|s| s.id()).collect();
        assert_eq!(ids, ["reap", "nginx-check", "unapply", "start-app"]);
        // The other hosts skip the unapply and start the target only once the primary's is done.
        assert_eq!(phase.steps_for(false).len(), 3);
        let rounds: Vec<Vec<String>> = phase
            .rounds(2)
            .iter()
            .map(|r| r.steps.iter().map(|s| s.id()).collect())
            .collect();
        assert_eq!(
            rounds,
            [
                vec!["reap", "nginx-check"],
                vec!["unapply"],
                vec!["start-app"]
            ]
        );
        // Without --migrate, nothing to unapply: one round.
        let ids: Vec<String> = prepare(&resolved, &placed, &[])
            .steps
            .iter()
            .map(|s| s.id())
            .collect();
        assert_eq!(ids, ["reap", "nginx-check", "start-app"]);
    }
}
