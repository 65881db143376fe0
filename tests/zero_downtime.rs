//! Zero downtime under load, against real components: OpenSSH sshd, nginx and supervisord
//! running as `deploy`, and gunicorn serving the example Django project. No mocks.
//!
//! While client threads hit `/health` through nginx continuously (a fresh connection per
//! request, so every request makes nginx connect through `current` again), the test deploys a
//! code change, rolls back and deploys again. Not one request may fail: no 502 from a socket
//! that is not there yet or any more, no reset from an app server stopped too early.
//!
//! Needs root. Timings: `cargo test --test zero_downtime -- --nocapture`.

use std::time::Duration;

use support::load::Load;
use support::stack::*;

/// Client threads of the load.
const THREADS: usize = 2;
/// Whatever happens, the load stops after this long.
const LOAD_LIMIT: Duration = Duration::from_secs(75);
/// Requests that must succeed between two operations, so that the load really spans each one.
const BETWEEN: u64 = 50;

/// The release of `current`, checked to be a complete release with a running app server.
fn current_release(stack: &Stack) -> String {
    let id = stack.current_id();
    assert!(
        stack
            .deploy_to()
            .join("releases")
            .join(&id)
            .join(".shipit/manifest.json")
            .is_file(),
        "`current` -> releases/{id}, which has no manifest"
    );
    id
}

/// Waits until the app servers of every release but `live` are gone from supervisor, so the
/// graceful stop of the previous one happened while the load was running.
fn only_program_of(stack: &Stack, live: &str) {
    let status = support::wait_for(Duration::from_secs(20), || {
        let status = stack.programs();
        let others = status
            .lines()
            .filter(|l| l.starts_with("hello-") && !l.starts_with(&program(live)))
            .count();
        (others == 0 && status.contains(&program(live))).then_some(status)
    });
    assert!(
        status.is_some(),
        "expected only {} under supervisor:\n{}",
        program(live),
        stack.programs()
    );
}

#[test]
fn deploy_rollback_and_deploy_under_load_lose_no_request() {
    let stack = Stack::start();
    let v1 = stack.deploy_release();
    stack.serves_release(&v1);
    stack.page("/health", |status, body| status == 200 && body == "ok");

    let load = Load::start(stack.port, "/health", THREADS, LOAD_LIMIT);
    assert!(
        load.wait_for_more_ok(BETWEEN, Duration::from_secs(20)),
        "the load does not get through before any deploy: {:?}",
        load.counts()
    );

    // v2: a code change.
    stack.change_page("marker: v2");
    let v2 = stack.deploy_release();
    assert!(v2 > v1, "{v1} then {v2}");
    let body = stack.serves_release(&v2);
    assert!(body.contains("<p>marker: v2</p>"), "{body}");
    assert_eq!(current_release(&stack), v2);
    only_program_of(&stack, &v2);
    assert!(load.wait_for_more_ok(BETWEEN, Duration::from_secs(20)));

    // Back to v1.
    let run = stack.rollback(&[]);
    run.expect_code(0);
    assert_eq!(run.json()["to"], v1.as_str(), "{}", run.stdout);
    let body = stack.serves_release(&v1);
    assert!(!body.contains("marker: v2"), "{body}");
    assert_eq!(current_release(&stack), v1);
    assert_eq!(stack.state(&v2), "rolled_back");
    only_program_of(&stack, &v1);
    assert!(load.wait_for_more_ok(BETWEEN, Duration::from_secs(20)));

    // v3: another code change.
    stack.change_page("marker: v3");
    let v3 = stack.deploy_release();
    assert!(v3 > v2, "{v2} then {v3}");
    let body = stack.serves_release(&v3);
    assert!(body.contains("<p>marker: v3</p>"), "{body}");
    assert_eq!(current_release(&stack), v3);
    only_program_of(&stack, &v3);
    assert!(load.wait_for_more_ok(BETWEEN, Duration::from_secs(20)));

    let (ok_during, _) = load.counts();
    let report = load.stop();
    eprintln!("[load] {report}");
    assert_eq!(
        report.failed,
        0,
        "requests failed during deploy, rollback and deploy: {report}\nnginx error.log:\n{}\napp log:\n{}",
        stack.host.nginx.error_log(),
        app_log(&stack.deploy_to())
    );
    assert!(
        report.ok >= 300 && ok_during >= 300,
        "too few requests to mean anything: {report}"
    );
    assert!(
        report.elapsed < LOAD_LIMIT,
        "the load hit its time limit before the operations ended: {report}"
    );
    assert!(!stack.locked());
}
