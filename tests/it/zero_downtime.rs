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
            .filter(|l| l.starts_with("hello.") && !l.starts_with(&program(live)))
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
    assert_no_request_failed(&stack, &report, " during deploy, rollback and deploy");
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

/// A project shaped like a real production Django site — its secret key and database URL come
/// from the environment (as secrets resolved on the deploying machine), one PostgreSQL, hashed
/// static files at a STATIC_ROOT that is not the default, gunicorn 23 — deploys with no hook and
/// no template variable, and a deploy and a rollback under load on its database-backed page
/// lose no request; the previous release's CSS keeps answering.
#[test]
fn a_production_shaped_project_deploys_and_rolls_back_under_load() {
    let pg = support::Postgres::start();
    let mut stack = Stack::start();
    let secrets = tempfile::tempdir().unwrap();
    let key = secrets.path().join("secret-key");
    let url = secrets.path().join("database-url");
    let secret_key = "production-shaped-secret-key-0123456789abcdef";
    std::fs::write(&key, format!("{secret_key}\n")).unwrap();
    std::fs::write(&url, format!("{}\n", pg.url())).unwrap();

    let requirements = stack
        .project
        .read("requirements/postgres.txt")
        .replace("gunicorn==27.0.1", "gunicorn==23.0.0\npackaging==25.0");
    stack
        .project
        .write("requirements/production.txt", &requirements);
    let settings = "hello/settings/deployment.py";
    let text = stack.project.read(settings);
    stack.project.write(
        settings,
        &format!("{text}{}", hashed_static_settings("build/static")),
    );
    stack.project.commit_all("production shape");
    stack.set_requirements("requirements/production.txt");
    stack.set_options(|o| {
        o.extra = format!(
            "secrets = {{ DJANGO_SECRET_KEY = {{ file = {:?} }}, DATABASE_URL = {{ file = {:?} }} }}\n",
            key.display().to_string(),
            url.display().to_string()
        )
    });

    let v1 = stack.deploy_release();
    let page = stack.serves_release(&v1);
    let old_css = stylesheet_url(&page);
    assert!(
        page.contains(&format!("secret key length: {}\n", secret_key.len())),
        "{page}"
    );
    assert!(
        pg.query("SELECT count(*) FROM pages_visit").trim() != "0",
        "the page's visits are not in PostgreSQL"
    );

    let load = Load::start(stack.port, "/", THREADS, LOAD_LIMIT);
    assert!(
        load.wait_for_more_ok(BETWEEN, Duration::from_secs(20)),
        "the load does not get through: {:?}",
        load.counts()
    );
    stack.change_page("marker: v2");
    let stylesheet = "pages/static/pages/site.css";
    let text = stack.project.read(stylesheet);
    stack
        .project
        .write(stylesheet, &format!("{text}\nh1 {{ margin: 0; }}\n"));
    stack.project.commit_all("v2 css");
    let v2 = stack.deploy_release();
    let new_css = stylesheet_url(&stack.serves_release(&v2));
    assert_ne!(old_css, new_css);
    assert_eq!(support::http_get(stack.port, &old_css).unwrap().0, 200);
    assert!(load.wait_for_more_ok(BETWEEN, Duration::from_secs(20)));

    stack.rollback(&[]).expect_code(0);
    stack.serves_release(&v1);
    assert_eq!(support::http_get(stack.port, &new_css).unwrap().0, 200);
    assert!(load.wait_for_more_ok(BETWEEN, Duration::from_secs(20)));

    assert_no_request_failed(&stack, &load.stop(), "");
    assert!(!stack.locked());
}
