//! The runner against fake hosts: what each host is sent, and which locks are given back.

use std::sync::{Arc, Mutex};

use super::*;
use crate::cli::ColorChoice;
use crate::output::Verbosity;
use crate::plan::deploy;
use crate::remote::facts;
use crate::transport::fake::{Behaviour, Fake, FakeHost};

fn printer() -> Printer {
    Printer::new(Verbosity::Quiet, false, ColorChoice::Never)
}

fn fails_at(step: &str, status: i32) -> Behaviour {
    Behaviour {
        fail_at: Some((step.into(), status)),
        ..Behaviour::default()
    }
}

/// A fleet of fake hosts behaving as given, and what each of them sees.
fn fleet(printer: &Printer, hosts: Vec<Behaviour>) -> (Fleet<'_>, Vec<Arc<Mutex<FakeHost>>>) {
    let mut seen = Vec::new();
    let sessions = hosts
        .into_iter()
        .enumerate()
        .map(|(i, behaviour)| {
            let fake = Fake::new(&format!("host{i}"), behaviour);
            seen.push(fake.host.clone());
            HostSession {
                transport: Box::new(fake),
                label: format!("host{i}"),
            }
        })
        .collect();
    let fleet = Fleet {
        sessions,
        printer,
        primary: 0,
    };
    (fleet, seen)
}

fn resolved() -> crate::resolve::Resolved {
    deploy::tests::resolved()
}

fn everything() -> crate::resolve::Placement {
    deploy::tests::everything()
}

fn vars(hosts: usize) -> Vec<Preamble> {
    let preamble = Preamble {
        d: "/srv/app".into(),
        ..Preamble::default()
    };
    vec![preamble; hosts]
}

fn ran(host: &Arc<Mutex<FakeHost>>) -> Vec<String> {
    host.lock().unwrap().scripts.concat()
}

fn nobody_locked(hosts: &[Arc<Mutex<FakeHost>>]) -> bool {
    hosts.iter().all(|h| !h.lock().unwrap().locked)
}

fn deploy(fleet: Fleet<'_>, hosts: usize) -> Result<Vec<ScriptRun>> {
    deploy_as(fleet, hosts, &resolved())
}

/// [`deploy`] of a target resolved as the test needs (e.g. in batches).
fn deploy_as(
    fleet: Fleet<'_>,
    hosts: usize,
    resolved: &crate::resolve::Resolved,
) -> Result<Vec<ScriptRun>> {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("a.tar.gz");
    std::fs::write(&archive, "a").unwrap();
    let (mut locked, _) = fleet.lock(&deploy::begin(&archive, 1, vec![]), vars(hosts))?;
    locked.prepare_then_switch(
        &|_| deploy::tests::prepared(resolved, false),
        &|_| deploy::switch(resolved, &everything(), vec![]),
        resolved.batch,
        "nothing was switched",
    )
}

/// One host through [`Fleet::run_through`], as `shipit deploy` runs it, with `then` the
/// plan it makes of begin's run.
fn run_through(
    fleet: &mut Fleet<'_>,
    then: &mut dyn FnMut(&ScriptRun, &mut Preamble) -> Result<()>,
) -> Result<ScriptRun> {
    let resolved = resolved();
    let mut checked = false;
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("a.tar.gz");
    std::fs::write(&archive, "archive").unwrap();
    fleet.run_through(
        &deploy::begin(&archive, 7, vec![]),
        vars(1).remove(0),
        &mut |begun, vars| {
            then(begun, vars)?;
            // A stage between, as a rollback's check of migrations.
            if !checked {
                checked = true;
                return Ok(Stage::More {
                    phase: crate::plan::rollback::check(),
                    outcome: "nothing was changed".into(),
                });
            }
            Ok(Stage::Last(Rest {
                prepare: vec![deploy::tests::prepared(&resolved, false)],
                switch: vec![deploy::switch(&resolved, &everything(), vec![])],
                outcome: "nothing was switched".into(),
            }))
        },
    )
}

#[test]
fn one_host_begins_prepares_and_switches_in_one_exec() {
    let printer = printer();
    let facts = Behaviour {
        facts: [(
            "facts".to_string(),
            vec![(facts::key::CURRENT.into(), "20260101000000".into())],
        )]
        .into(),
        ..Behaviour::default()
    };
    let (mut fleet, hosts) = fleet(&printer, vec![facts]);
    let mut seen = None;
    let run = run_through(&mut fleet, &mut |begun, vars| {
        seen = facts::current(&begun.facts).cloned();
        vars.id = "20260101000001".into();
        Ok(())
    })
    .unwrap();
    assert!(run.succeeded());
    assert_eq!(seen.as_deref(), Some("20260101000000"));
    let scripts = hosts[0].lock().unwrap().scripts.clone();
    assert_eq!(scripts.len(), 1, "one exec: {scripts:?}");
    let steps = &scripts[0];
    assert_eq!(steps[..5], ["layout", "lock", "reap", "facts", "upload"]);
    assert!(steps.contains(&"migrate".to_string()));
    assert!(steps.contains(&"gate".to_string()));
    assert_eq!(steps.last().unwrap(), "migrate-after-switch");
    assert!(nobody_locked(&hosts));
    // The first stage went behind the archive; only the second was waited for.
    assert_eq!(hosts[0].lock().unwrap().waited_for_rest, 1);
}

#[test]
fn a_plan_that_fails_after_begin_gives_the_lock_back_in_the_same_exec() {
    let printer = printer();
    let (mut fleet, hosts) = fleet(&printer, vec![Behaviour::default()]);
    let error = run_through(&mut fleet, &mut |_, _| {
        Err(Error::usage("app_user cannot be told"))
    })
    .unwrap_err();
    assert!(
        error.to_string().contains("app_user cannot be told"),
        "{error}"
    );
    let scripts = hosts[0].lock().unwrap().scripts.clone();
    assert_eq!(scripts, [["layout", "lock", "reap", "facts", "upload"]]);
    assert!(nobody_locked(&hosts));
    // A failing step of begin is the error, and the plan is never made.
    let (mut fleet, hosts) = fleet_of(&printer, fails_at("facts", 3));
    let mut planned = false;
    let error = run_through(&mut fleet, &mut |_, _| {
        planned = true;
        Ok(())
    })
    .unwrap_err();
    assert!(!planned);
    assert!(error.to_string().contains("facts"), "{error}");
    assert!(nobody_locked(&hosts));
}

#[test]
fn an_archive_that_cannot_be_read_fails_before_the_host_is_touched() {
    let printer = printer();
    let (mut fleet, hosts) = fleet(&printer, vec![Behaviour::default()]);
    let missing = std::path::Path::new("/nonexistent/shipit/a.tar.gz");
    let error = fleet
        .run_through(
            &deploy::begin(missing, 7, vec![]),
            vars(1).remove(0),
            &mut |_, _| unreachable!("no plan without a begin"),
        )
        .unwrap_err();
    assert!(
        error.to_string().contains("/nonexistent/shipit/a.tar.gz"),
        "{error}"
    );
    assert!(hosts[0].lock().unwrap().scripts.is_empty(), "no exec");
}

fn fleet_of(printer: &Printer, host: Behaviour) -> (Fleet<'_>, Vec<Arc<Mutex<FakeHost>>>) {
    fleet(printer, vec![host])
}

#[test]
fn only_the_primary_migrates_and_every_host_switches() {
    let printer = printer();
    let (fleet, hosts) = fleet(&printer, vec![Behaviour::default(); 3]);
    deploy(fleet, 3).unwrap();
    for (i, host) in hosts.iter().enumerate() {
        let steps = ran(host);
        assert_eq!(
            steps.contains(&"migrate".to_string()),
            i == 0,
            "host{i}: {steps:?}"
        );
        assert!(steps.contains(&"switch".to_string()));
        // begin, prepare up to migrate, the rest of prepare, the hook only the primary
        // runs, the rest, switch.
        let scripts = host.lock().unwrap().scripts.len();
        assert!(scripts >= 4, "host{i} ran {scripts} scripts");
    }
    assert!(nobody_locked(&hosts));
}

#[test]
fn a_host_failing_to_prepare_aborts_the_others_and_nobody_switches() {
    let printer = printer();
    let (fleet, hosts) = fleet(
        &printer,
        vec![
            Behaviour::default(),
            fails_at("start-app", 1),
            Behaviour::default(),
        ],
    );
    let error = deploy(fleet, 3).unwrap_err();
    assert!(
        matches!(&error, Error::Step { host, step, .. } if host == "host1" && step == "start-app"),
        "{error}"
    );
    for host in &hosts {
        let steps = ran(host);
        assert!(!steps.contains(&"switch".to_string()), "{steps:?}");
    }
    assert_eq!(ran(&hosts[0]).last().unwrap(), "abort");
    assert_eq!(ran(&hosts[2]).last().unwrap(), "abort");
    assert!(nobody_locked(&hosts));
}

#[test]
fn a_failed_migration_fails_every_host_before_any_switch() {
    let printer = printer();
    let (fleet, hosts) = fleet(&printer, vec![fails_at("migrate", 1), Behaviour::default()]);
    let error = deploy(fleet, 2).unwrap_err();
    assert!(error.to_string().contains("migrate"), "{error}");
    // The other host stopped where it waited for the primary.
    let other = ran(&hosts[1]);
    assert!(!other.contains(&"collectstatic".to_string()), "{other:?}");
    assert_eq!(other.last().unwrap(), "abort");
    assert!(nobody_locked(&hosts));
}

/// A host whose lock another, live run holds.
fn held_lock() -> Behaviour {
    Behaviour {
        fail_at: Some(("lock".into(), LOCKED_STATUS)),
        facts: [(
            "lock".to_string(),
            vec![
                (
                    "locked".to_string(),
                    "by bob@elsewhere since 2026".to_string(),
                ),
                (facts::key::LOCK_LIVE.to_string(), "1".to_string()),
            ],
        )]
        .into(),
        ..Behaviour::default()
    }
}

const BEGIN: [&str; 5] = ["layout", "lock", "reap", "facts", "upload"];

#[test]
fn a_lock_held_elsewhere_gives_back_the_locks_taken() {
    let printer = printer();
    let (fleet, hosts) = fleet(&printer, vec![Behaviour::default(), held_lock()]);
    let error = deploy(fleet, 2).unwrap_err();
    match &error {
        Error::Locked {
            host, holder, live, ..
        } => {
            assert_eq!(host, "host1");
            assert!(holder.contains("bob@elsewhere"));
            assert!(live);
        }
        other => panic!("{other}"),
    }
    assert!(error.hint().unwrap().contains("--break-lock --force"));
    assert_eq!(scripts(&hosts[0]), [BEGIN.to_vec(), vec!["release-lock"]]);
    assert!(nobody_locked(&hosts));
}

/// Two runs of one target never split a fleet: each takes the primary's lock in a round of its
/// own before any other host's, so the run refused there has touched no other host.
#[test]
fn the_primary_is_locked_before_any_other_host_and_a_refusal_there_touches_none() {
    let printer = printer();
    let (mut first, hosts) = fleet(
        &printer,
        vec![Behaviour::default(), held_lock(), Behaviour::default()],
    );
    first.primary = 1;
    let error = deploy(first, 3).unwrap_err();
    assert!(
        matches!(&error, Error::Locked { host, .. } if host == "host1"),
        "{error}"
    );
    assert_eq!(scripts(&hosts[1]), [vec!["layout", "lock"]]);
    for other in [&hosts[0], &hosts[2]] {
        assert!(scripts(other).is_empty(), "{:?}", scripts(other));
    }

    // The primary free, two others held (another target sharing them): the primary locked
    // first, then both refusals named, and the primary's lock given back.
    let (mut second, hosts) = fleet(
        &printer,
        vec![held_lock(), Behaviour::default(), held_lock()],
    );
    second.primary = 1;
    let error = deploy(second, 3).unwrap_err();
    let Error::Hosts { errors } = &error else {
        panic!("{error}");
    };
    let named: Vec<&str> = errors
        .iter()
        .map(|e| match e {
            Error::Locked { host, .. } => host.as_str(),
            other => panic!("{other}"),
        })
        .collect();
    assert_eq!(named, ["host0", "host2"]);
    assert_eq!(error.exit_code(), crate::error::EXIT_LOCKED);
    assert_eq!(scripts(&hosts[1]), [BEGIN.to_vec(), vec!["release-lock"]]);
    assert!(nobody_locked(&hosts));
}

/// With `--lock-wait`, a run that finds another host held gives every lock back (it never
/// waits holding one) and begins again, at the primary, while the wait has time left.
#[test]
fn a_waiting_run_refused_by_another_host_gives_the_primary_back_and_begins_again() {
    let printer = printer();
    let (fleet, hosts) = fleet(&printer, vec![Behaviour::default(), held_lock()]);
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("a.tar.gz");
    std::fs::write(&archive, "a").unwrap();
    let mut vars = vars(2);
    vars.iter_mut().for_each(|v| v.lock_wait = "2".into());
    let started = std::time::Instant::now();
    let error = fleet
        .lock(&deploy::begin(&archive, 1, vec![]), vars)
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(&error, Error::Locked { host, .. } if host == "host1"),
        "{error}"
    );
    // Two tries, a pause between: each begun on the primary, then given back.
    assert_eq!(
        scripts(&hosts[0]),
        [
            BEGIN.to_vec(),
            vec!["release-lock"],
            BEGIN.to_vec(),
            vec!["release-lock"]
        ]
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    assert!(nobody_locked(&hosts));
}

#[test]
fn one_host_is_locked_in_one_exec() {
    let printer = printer();
    let (fleet, hosts) = fleet(&printer, vec![Behaviour::default()]);
    let (locked, _) = fleet
        .lock(&crate::plan::operate::lock_acquire(), vars(1))
        .unwrap();
    locked.keep_locks();
    assert_eq!(scripts(&hosts[0]).len(), 1);
}

/// Every host that fails a round is in the error, with its step; the others abandon what
/// they prepared.
#[test]
fn every_host_that_fails_prepare_is_named() {
    let printer = printer();
    let (fleet, hosts) = fleet(
        &printer,
        vec![
            Behaviour::default(),
            fails_at("unpack", 1),
            fails_at("virtualenv", 127),
        ],
    );
    let error = deploy(fleet, 3).unwrap_err();
    let Error::Hosts { errors } = &error else {
        panic!("{error}");
    };
    let failed: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| match e {
            Error::Step { host, step, .. } => (host.as_str(), step.as_str()),
            other => panic!("{other}"),
        })
        .collect();
    assert_eq!(failed, [("host1", "unpack"), ("host2", "virtualenv")]);
    let text = error.to_string();
    assert!(text.starts_with("2 hosts failed:"), "{text}");
    // What every host keeps is said once.
    assert_eq!(text.matches("nothing was switched").count(), 1, "{text}");
    assert_eq!(error.exit_code(), crate::error::EXIT_FAILED);
    assert_eq!(ran(&hosts[0]).last().unwrap(), "abort");
    assert!(nobody_locked(&hosts));
}

#[test]
fn a_lost_connection_still_releases_the_other_hosts() {
    let printer = printer();
    let (fleet, hosts) = fleet(
        &printer,
        vec![
            Behaviour::default(),
            Behaviour {
                drop_at: Some("virtualenv".into()),
                ..Behaviour::default()
            },
        ],
    );
    assert!(matches!(deploy(fleet, 2), Err(Error::Connection { .. })));
    assert_eq!(ran(&hosts[0]).last().unwrap(), "abort");
    assert!(!hosts[0].lock().unwrap().locked);
}

#[test]
fn batches_switch_in_turn_and_a_failed_batch_stops_the_rest() {
    let printer = printer();
    let mut resolved = resolved();
    resolved.batch = Some(2);
    let (fleet, hosts) = fleet(
        &printer,
        vec![
            Behaviour::default(),
            Behaviour::default(),
            fails_at("health-check", 1),
            Behaviour::default(),
            Behaviour::default(),
        ],
    );
    let error = deploy_as(fleet, 5, &resolved).unwrap_err();
    assert!(error.to_string().contains("switched back"), "{error}");
    let switched = |i: usize| ran(&hosts[i]).contains(&"finish".to_string());
    assert!(switched(0) && switched(1), "the first batch stays switched");
    assert!(
        switched(3),
        "the failed batch's other host switched with it"
    );
    assert!(!switched(4), "the batch after a failure never switches");
    assert_eq!(ran(&hosts[4]).last().unwrap(), "abort");
    assert!(nobody_locked(&hosts));
}

/// Migrations the primary's gate held for after the switch run there once, after the last
/// batch: one more exec on the primary only, and none when nothing was held.
#[test]
fn held_migrations_run_on_the_primary_after_the_last_batch_and_only_when_held() {
    let printer = printer();
    let mut resolved = resolved();
    resolved.batch = Some(1);
    let held = Behaviour {
        facts: [(
            "migrate".to_string(),
            vec![(facts::key::AFTER_SWITCH.into(), "app.0002_drop".into())],
        )]
        .into(),
        ..Behaviour::default()
    };
    let (one, hosts) = fleet(&printer, vec![held, Behaviour::default()]);
    deploy_as(one, 2, &resolved).unwrap();
    let scripts = |i: usize| hosts[i].lock().unwrap().scripts.clone();
    let primary = scripts(0);
    assert_eq!(primary.last().unwrap(), &["migrate-after-switch"]);
    // It came after the other host's switch (batch = 1: the primary switched first).
    assert!(ran(&hosts[1]).contains(&"finish".to_string()));
    for (i, host) in [&primary, &scripts(1)].into_iter().enumerate() {
        let runs = host
            .iter()
            .flatten()
            .filter(|s| *s == "migrate-after-switch")
            .count();
        assert_eq!(runs, usize::from(i == 0), "host{i}: {host:?}");
    }

    let (other, hosts) = fleet(&printer, vec![Behaviour::default(); 2]);
    deploy_as(other, 2, &resolved).unwrap();
    for host in &hosts {
        assert!(!ran(host).contains(&"migrate-after-switch".to_string()));
    }
    assert!(nobody_locked(&hosts));
}

#[test]
fn prune_on_several_hosts_unlocks_every_host_even_when_one_fails() {
    let printer = printer();
    let (fleet, hosts) = fleet(
        &printer,
        vec![
            Behaviour::default(),
            fails_at("remove", 1),
            Behaviour::default(),
        ],
    );
    let (mut locked, _) = fleet
        .lock(&crate::plan::rollback::begin(), vars(3))
        .unwrap();
    let result = locked.run_each(
        &|_| crate::plan::releases::remove(vec![]),
        "left as they were",
    );
    drop(locked);
    assert!(result.is_err());
    assert!(ran(&hosts[2]).contains(&"remove".to_string()));
    assert!(nobody_locked(&hosts));
}

#[test]
fn a_refusal_after_locking_gives_every_lock_back() {
    let printer = printer();
    let (fleet, hosts) = fleet(&printer, vec![Behaviour::default(); 2]);
    let run = || -> Result<()> {
        let (mut locked, _) = fleet.lock(&crate::plan::rollback::begin(), vars(2))?;
        locked.giving_up("refused");
        Err(Error::Refused {
            message: "hosts disagree".into(),
            hint: "name the release with --to".into(),
        })
    };
    assert!(matches!(run(), Err(Error::Refused { .. })));
    for host in &hosts {
        assert_eq!(ran(host).last().unwrap(), "release-lock");
    }
    assert!(nobody_locked(&hosts));
}

/// `shipit rollback --migrate` on `hosts` hosts, as the command runs it: begin, the migrations
/// check, then a prepare that unapplies `pages` (once, on the primary, whose preamble says so
/// from then on) before the target starts, and the switch.
fn rollback_migrating(fleet: Fleet<'_>, hosts: usize) -> Result<Vec<ScriptRun>> {
    use crate::plan::rollback;
    let resolved = resolved();
    let unapply = [crate::migrations::Unapply {
        app: "pages".into(),
        to: "0001_initial".into(),
    }];
    let primary = fleet.primary;
    let mut checked = false;
    let (_, runs) = fleet.run_stages(
        &rollback::begin(),
        vars(hosts),
        None,
        &mut |_, preambles| {
            if !checked {
                checked = true;
                return Ok(Stage::More {
                    phase: rollback::check(),
                    outcome: "nothing was changed".into(),
                });
            }
            preambles.set_on(primary, |v| v.unapplied = "1".into());
            Ok(Stage::Last(Rest {
                prepare: (0..hosts)
                    .map(|_| rollback::prepare(&resolved, &everything(), &unapply))
                    .collect(),
                switch: (0..hosts)
                    .map(|_| rollback::switch(&resolved, &everything()))
                    .collect(),
                outcome: "nothing was switched".into(),
            }))
        },
    )?;
    Ok(runs)
}

fn scripts(host: &Arc<Mutex<FakeHost>>) -> Vec<Vec<String>> {
    host.lock().unwrap().scripts.clone()
}

fn unapplied(host: &Arc<Mutex<FakeHost>>) -> Vec<bool> {
    host.lock().unwrap().unapplied.clone()
}

#[test]
fn a_rollback_unapplies_on_the_primary_before_any_host_starts_its_target() {
    let printer = printer();
    let (fleet, hosts) = fleet(&printer, vec![Behaviour::default(); 2]);
    rollback_migrating(fleet, 2).unwrap();
    // begin, check, the prepare up to the unapply, the unapply, the start, the switch: each a
    // round that every host ends before the next begins, so no host starts the target on the
    // newer schema.
    // The unapply is a round of its own: it starts once every host has checked its target.
    let (primary, other) = (scripts(&hosts[0]), scripts(&hosts[1]));
    assert_eq!(primary.len(), 6, "{primary:?}");
    assert_eq!(
        primary[2..5],
        [
            vec!["reap", "nginx-check"],
            vec!["unapply"],
            vec!["start-app", "await-switch"]
        ]
    );
    assert_eq!(
        other[2..4],
        [
            vec!["reap", "nginx-check"],
            vec!["start-app", "await-switch"]
        ]
    );
    for steps in [&primary[5], &other[4]] {
        assert!(steps.contains(&"switch".to_string()), "{steps:?}");
    }
    // From the prepare on, the primary's every cleanup (a failed start, a failed switch, an
    // abort) migrates the live schema forward again; the other hosts' never do.
    assert_eq!(unapplied(&hosts[0]), [false, false, true, true, true, true]);
    assert_eq!(unapplied(&hosts[1]), [false; 5]);
    assert!(nobody_locked(&hosts));
}

#[test]
fn a_target_that_cannot_start_after_the_unapply_migrates_forward_and_nobody_switches() {
    let printer = printer();
    // On another host: the primary, which unapplied, abandons its prepared target in a script
    // that migrates forward again (step_abort with UNAPPLIED=1).
    let (hosts_fleet, hosts) = fleet(
        &printer,
        vec![Behaviour::default(), fails_at("start-app", 1)],
    );
    let error = rollback_migrating(hosts_fleet, 2).unwrap_err();
    assert!(
        matches!(&error, Error::Step { host, step, .. } if host == "host1" && step == "start-app"),
        "{error}"
    );
    let primary = ran(&hosts[0]);
    assert!(primary.contains(&"unapply".to_string()), "{primary:?}");
    assert!(!primary.contains(&"switch".to_string()), "{primary:?}");
    assert_eq!(scripts(&hosts[0]).last().unwrap(), &["abort"]);
    assert_eq!(unapplied(&hosts[0]).last(), Some(&true));
    assert!(!ran(&hosts[1]).contains(&"switch".to_string()));
    assert!(nobody_locked(&hosts));

    // On the primary itself: the script whose start failed cleans up with UNAPPLIED=1 (its
    // on_prepare_failure migrates forward); the other host abandons its target.
    let (hosts_fleet, hosts) = fleet(
        &printer,
        vec![fails_at("start-app", 1), Behaviour::default()],
    );
    let error = rollback_migrating(hosts_fleet, 2).unwrap_err();
    assert!(
        matches!(&error, Error::Step { host, step, .. } if host == "host0" && step == "start-app"),
        "{error}"
    );
    assert_eq!(scripts(&hosts[0]).last().unwrap(), &["start-app"]);
    assert_eq!(unapplied(&hosts[0]).last(), Some(&true));
    assert_eq!(ran(&hosts[1]).last().unwrap(), "abort");
    for host in &hosts {
        assert!(!ran(host).contains(&"switch".to_string()));
    }
    assert!(nobody_locked(&hosts));
}

#[test]
fn one_host_unapplies_then_starts_its_target_then_switches_in_one_exec() {
    let printer = printer();
    let (fleet, hosts) = fleet(&printer, vec![Behaviour::default()]);
    rollback_migrating(fleet, 1).unwrap();
    let scripts = scripts(&hosts[0]);
    assert_eq!(scripts.len(), 1, "one exec: {scripts:?}");
    let at = |id: &str| scripts[0].iter().position(|s| s == id).unwrap();
    let order = ["migrations", "unapply", "start-app", "gate", "switch"].map(at);
    assert!(order.is_sorted(), "{:?}", scripts[0]);
    assert_eq!(unapplied(&hosts[0]), [true]);
    assert!(nobody_locked(&hosts));
}

/// A rollback of hosts that disagree: host 0 runs the target already, so it prepares nothing
/// (no script, no watch) and only gives its lock back at the switch; host 1 rolls back.
#[test]
fn a_host_with_nothing_to_prepare_only_gives_its_lock_back() {
    use crate::plan::rollback;
    let printer = printer();
    let (fleet, hosts) = fleet(&printer, vec![Behaviour::default(); 2]);
    let resolved = resolved();
    let (_, _) = fleet
        .run_stages(&rollback::begin(), vars(2), Some(1), &mut |_, _| {
            Ok(Stage::Last(Rest {
                prepare: vec![
                    Phase::new(Vec::new(), Cleanup::Prepare),
                    rollback::prepare(&resolved, &everything(), &[]),
                ],
                switch: vec![
                    Phase::new(vec![Step::Unlock], Cleanup::Lock),
                    rollback::switch(&resolved, &everything()),
                ],
                outcome: "nothing was switched".into(),
            }))
        })
        .unwrap();
    assert_eq!(
        scripts(&hosts[0])[1..],
        [vec!["unlock"]],
        "{:?}",
        scripts(&hosts[0])
    );
    let other = scripts(&hosts[1]);
    assert_eq!(
        other[1],
        ["reap", "nginx-check", "start-app", "await-switch"],
        "{other:?}"
    );
    assert!(other[2].contains(&"finish".to_string()), "{other:?}");
    assert!(nobody_locked(&hosts));
}
