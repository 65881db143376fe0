//! Maintenance mode on the real stack: nginx answers 503 with the page (built-in with
//! `--message`, or the project's template) for everything but the health path, the mode stays
//! on through a deploy and a rollback, and turning it off serves the app again. Needs root.

use support::stack::*;

/// `shipit maintenance -t test ARGS`, which must succeed.
fn maintenance(stack: &Stack, args: &[&str]) {
    let mut all = vec!["maintenance", "-t", TARGET];
    all.extend_from_slice(args);
    stack.shipit(&all).expect_code(0);
}

/// The page nginx answers `path` with once it is the maintenance page saying `needle`.
fn in_maintenance(stack: &Stack, path: &str, needle: &str) -> String {
    stack.page(path, |status, body| status == 503 && body.contains(needle))
}

#[test]
fn maintenance_mode_survives_a_deploy_and_a_rollback_until_turned_off() {
    let stack = {
        let mut stack = Stack::start();
        stack.set_options(|o| o.extra = "health = { path = \"/health\" }\n".into());
        stack
    };
    let first = stack.deploy_release();
    stack.serves_release(&first);

    maintenance(&stack, &["on", "--message", "Back at 18:00 <UTC>"]);
    let page = in_maintenance(&stack, "/", "Back at 18:00 &lt;UTC&gt;");
    assert!(page.contains("Down for maintenance"), "{page}");
    in_maintenance(&stack, "/static/pages/site.css", "Back at 18:00");
    in_maintenance(&stack, "/health/", "Back at 18:00");
    // The health path still reaches the app.
    assert_eq!(stack.page("/health", |s, _| s == 200), "ok");

    // A deploy (its health checks reach the app directly) leaves it on.
    stack.change_page("marker: deployed during maintenance");
    let second = stack.deploy_release();
    in_maintenance(&stack, "/", "Back at 18:00");
    assert_eq!(stack.page("/health", |s, _| s == 200), "ok");

    // So does a rollback.
    stack.rollback(&[]).expect_code(0);
    assert_eq!(stack.current_id(), first);
    in_maintenance(&stack, "/", "Back at 18:00");

    maintenance(&stack, &["off"]);
    stack.serves_release(&first);

    // The project's own page, when it has one; on again, then off, the second release.
    stack.project.write(
        "conf/templates/maintenance.html.j2",
        "<p>custom page for {{ project }}: {{ message }}</p>\n",
    );
    maintenance(&stack, &["on", "--message", "upgrading"]);
    assert_eq!(
        in_maintenance(&stack, "/", "custom page"),
        "<p>custom page for hello: upgrading</p>\n"
    );
    stack.rollback(&["--to", &second]).expect_code(0);
    in_maintenance(&stack, "/", "custom page");
    maintenance(&stack, &["off"]);
    let body = stack.serves_release(&second);
    assert!(body.contains("deployed during maintenance"), "{body}");

    // Each switch is in the host's log.
    let actions: Vec<String> = stack
        .log()
        .iter()
        .filter(|l| l[2] == "maintenance")
        .map(|l| l[5].clone())
        .collect();
    assert_eq!(actions, ["on", "off", "on", "off"]);
}

#[test]
fn maintenance_needs_a_site_that_knows_it() {
    let stack = Stack::start();
    let run = stack.shipit(&["maintenance", "-t", TARGET, "on"]);
    run.expect_code(1)
        .says_error(&["no nginx site at", "deploy first"]);
    assert!(!stack.deploy_to().join(".shipit/maintenance.html").exists());
}
