//! A fleet left split by a failed batch has a way back (issue 23, item 3), on two real hosts
//! switched one at a time (`batch = 1`): host 1's new app server stops answering once it is
//! prepared (its socket is unlinked), so its health check after the switch fails and it switches
//! back, while host 0 runs the new release. The deploy says which host runs which release and
//! the command that makes them agree; `releases` says the hosts disagree; `rollback` with no
//! argument takes every host to the last release all of them had live. Needs root.

use support::fleet::Fleet;
use support::stack::*;

#[test]
fn a_batch_that_fails_after_the_first_switched_is_named_and_rollback_makes_the_hosts_agree() {
    let mut fleet = Fleet::start(2);
    fleet
        .stack
        // A SQLite database per host; one try of the health check after the switch.
        .set_options(|o| {
            o.extra
                .push_str("migrate = \"each-host\"\nbatch = 1\nhealth = { retries = 1 }\n")
        });
    let old = fleet.stack.deploy_release();
    fleet.stack.change_page("a batch fails");

    let (spec0, spec1) = (fleet.specs[0].clone(), fleet.specs[1].clone());
    let mut unlinked = None;
    let run = fleet
        .stack
        .watched(&["deploy", "--target", TARGET], &mut |line, _| {
            if unlinked.is_none() && line.contains(&format!("{spec1}  ✓ await-switch")) {
                let new = list_dir(&fleet.to[1].join("releases"))
                    .into_iter()
                    .find(|r| *r != old)
                    .expect("the new release on host 1");
                let socket = fleet.to[1].join(format!("releases/{new}/.shipit/app.sock"));
                std::fs::remove_file(&socket).expect("host 1's new app socket");
                unlinked = Some(new);
            }
        });
    let new = unlinked.unwrap_or_else(|| panic!("host 1 never prepared:\n{}", run.stderr));
    run.expect_code(1).says(&[
        &format!("{spec1}: step `health-check` failed"),
        &format!(
            "the hosts disagree: {spec0} runs release {new}; {spec1} runs the release it ran before: `shipit rollback -t {TARGET}` takes every host to the last release all of them had live"
        ),
    ]);
    assert_eq!(current_of(&fleet.to[0]), Some(format!("releases/{new}")));
    assert_eq!(current_of(&fleet.to[1]), Some(format!("releases/{old}")));

    // `releases` names each host's release.
    fleet
        .stack
        .list_releases(&[])
        .expect_code(0)
        .says(&[&format!(
            "the hosts disagree: {spec0} runs {new}, {spec1} runs {old}"
        )]);

    // `rollback` with no argument: host 0 goes back to the release both had live, host 1 stays.
    let rolled = fleet.stack.rollback(&[]);
    rolled.expect_code(0).says(&[&format!(
        "rolling {TARGET} back from {new} to {old}; {spec1} ran {old} already"
    )]);
    let json = rolled.json();
    assert_eq!(
        (json["from"].as_str(), json["to"].as_str()),
        (Some(new.as_str()), Some(old.as_str()))
    );
    assert_eq!(json["stayed"], serde_json::json!([spec1]), "{json}");
    fleet.all_serve(&old);
    let listed = fleet.stack.list_releases(&[]);
    listed.expect_code(0);
    assert!(!listed.stderr.contains("disagree"), "{}", listed.stderr);
}
