//! `shipit check` on the real stack: green on a good host, and each ✗ provoked for real — an
//! unwritable deploy_to, a missing python, a failing nginx test, a lock left behind, an
//! unreachable process manager, a missing shared file, ALLOWED_HOSTS refusing the health check's
//! Host, an unresolvable secret and an unreachable host — with the rest still checked. Needs root.

use serde_json::Value;

use support::stack::*;
use support::*;

/// `shipit check -t test --json`: its exit status and JSON.
fn check(stack: &Stack) -> (Run, Value) {
    let run = stack.shipit(&["check", "-t", TARGET, "--json"]);
    let json = run.json();
    (run, json)
}

/// The status of check `id` of host `host` in `json`.
fn status<'a>(json: &'a Value, host: &str, id: &str) -> &'a str {
    json["hosts"][host]
        .as_array()
        .unwrap_or_else(|| panic!("no host {host} in {json:#}"))
        .iter()
        .find(|o| o["check"] == id)
        .unwrap_or_else(|| panic!("no check {id} for {host} in {json:#}"))["status"]
        .as_str()
        .unwrap()
}

fn detail<'a>(json: &'a Value, host: &str, id: &str) -> &'a str {
    json["hosts"][host]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["check"] == id)
        .unwrap()["detail"]
        .as_str()
        .unwrap()
}

#[test]
fn check_is_green_on_a_good_host_and_names_each_problem_it_is_shown() {
    let mut stack = Stack::start();
    let host = stack.host.sshd.host_spec();

    // Nothing deployed yet: the release checks do not apply, everything else passes.
    let (run, json) = check(&stack);
    run.expect_code(0);
    assert_eq!(json["ok"], true, "{json:#}");
    assert_eq!(status(&json, &host, "django"), "skip", "{json:#}");
    assert!(!stack.deploy_to().exists(), "check created deploy_to");

    // A good, deployed host: every check passes, none is skipped but those shipit has no
    // configuration for (shared files).
    stack.deploy_ok();
    let (run, json) = check(&stack);
    run.expect_code(0);
    for id in [
        "ssh",
        "deploy_to",
        "lock",
        "python",
        "uv",
        "app",
        "nginx",
        "disk",
        "django",
        "allowed_hosts",
    ] {
        assert_eq!(status(&json, &host, id), "ok", "{id}: {json:#}");
    }
    assert_eq!(json["local"][0]["status"], "ok", "{json:#}");
    let human = stack.shipit(&["check", "-t", TARGET]);
    human.expect_code(0);
    assert!(human.stdout.contains("✓ nginx config"), "{}", human.stdout);
    assert!(!human.stdout.contains('✗'), "{}", human.stdout);

    // ALLOWED_HOSTS of one name: the deploy's health check asks with it (the first of the
    // release's ALLOWED_HOSTS); then a health host it refuses, which check names.
    stack.set_options(|o| o.extra = "env = { DJANGO_ALLOWED_HOSTS = \"example.com\" }\n".into());
    stack.deploy_ok();
    let (_, json) = check(&stack);
    assert_eq!(status(&json, &host, "allowed_hosts"), "ok", "{json:#}");
    stack.set_options(|o| o.extra.push_str("health = { host = \"localhost\" }\n"));

    // Now break everything else, for real.
    let unreachable = format!("{}@127.0.0.1:{}", deploy_user().name, free_port());
    stack.set_options(|o| {
        o.hosts.push(unreachable.clone());
        o.extra.push_str(
            "shared_files = [\"conf/extra.env\"]\n\
             secrets = { DJANGO_SECRET_KEY = { env = \"CHECK_TEST_UNSET_VARIABLE\" } }\n",
        );
    });
    stack.project.edit_config(
        "python = \"/usr/bin/python3\"",
        "python = \"/usr/bin/python3-not-installed\"",
    );
    stack.project.edit_config(
        &format!("ctl = {:?}", stack.host.sup.ctl_command()),
        "ctl = \"supervisorctl -s unix:///nonexistent/supervisor.sock\"",
    );
    chmod(&stack.deploy_to(), 0o555);
    let broken_site = stack.host.nginx.sites_dir.join("broken.conf");
    std::fs::write(&broken_site, "this is not nginx;\n").unwrap();
    run_as_deploy_ok(&format!(
        "mkdir {lock} && printf 'token=x\\nby=someone@else\\nsince=2026-01-01T00:00:00Z\\nop=deploy\\nholder_pid=999999\\nholder_start=1\\n' > {lock}/info",
        lock = stack.deploy_to().join(".shipit/lock").display()
    ));

    let (run, json) = check(&stack);
    run.expect_code(1);
    assert_eq!(json["ok"], false);
    for (id, needle) in [
        ("deploy_to", "is not writable by deploy"),
        ("lock", "left behind by someone@else"),
        ("python", "python3-not-installed is not installed"),
        (
            "app",
            "supervisorctl -s unix:///nonexistent/supervisor.sock pid` failed",
        ),
        ("nginx", "failed"),
        ("shared", "missing in"),
        (
            "allowed_hosts",
            "Host localhost is NOT accepted by ALLOWED_HOSTS = ['example.com']",
        ),
    ] {
        assert_eq!(status(&json, &host, id), "fail", "{id}: {json:#}");
        assert!(
            detail(&json, &host, id).contains(needle),
            "{id}: {needle:?} not in {json:#}"
        );
    }
    // What is not broken still passes.
    for id in ["ssh", "disk", "django"] {
        assert_eq!(status(&json, &host, id), "ok", "{id}: {json:#}");
    }
    assert_eq!(json["local"][0]["status"], "fail", "{json:#}");
    assert_eq!(status(&json, &unreachable, "ssh"), "fail", "{json:#}");
    assert_eq!(json["hosts"][&unreachable].as_array().unwrap().len(), 1);
    run.says_error(&["check(s) failed", "nginx config", "ssh"]);

    // The human form: a ✗ and a hint under each problem.
    let human = stack.shipit(&["check", "-t", TARGET]);
    human.expect_code(1);
    assert!(
        human.stdout.contains("✗ deploy_to writable") && human.stdout.contains("      hint: "),
        "{}",
        human.stdout
    );

    // Nothing was changed by checking: the lock left behind is still there, untouched.
    let info = std::fs::read_to_string(stack.deploy_to().join(".shipit/lock/info")).unwrap();
    assert!(info.starts_with("token=x\nby=someone@else\n"), "{info}");
    chmod(&stack.deploy_to(), 0o755);
    std::fs::remove_file(&broken_site).unwrap();
}

#[test]
fn check_names_a_missing_uv() {
    let uv = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v uv"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let stack = Stack::start_without(&[uv.trim()]);
    let host = stack.host.sshd.host_spec();

    // Without uv, `auto` builds virtualenvs with pip: fine.
    let (run, json) = check(&stack);
    run.expect_code(0);
    assert_eq!(status(&json, &host, "uv"), "ok", "{json:#}");
    assert!(
        detail(&json, &host, "uv").contains("not installed: virtualenvs are built with pip"),
        "{json:#}"
    );

    // `installer = "uv"` needs it.
    stack.project.edit_config(
        "environment = \"deployment\"",
        "environment = \"deployment\"\ninstaller = \"uv\"",
    );
    let (run, json) = check(&stack);
    run.expect_code(1);
    assert_eq!(status(&json, &host, "uv"), "fail", "{json:#}");
    assert!(
        detail(&json, &host, "uv").contains("installer = uv, but uv is not installed"),
        "{json:#}"
    );
    // A python version is found (or installed) by uv: the check says uv is missing, and
    // whether python3's pip can install it (a ✓) or not (a ✗).
    stack
        .project
        .edit_config("python = \"/usr/bin/python3\"", "python = \"3.12\"");
    let (_, json) = check(&stack);
    assert!(
        detail(&json, &host, "python").contains("uv, which is not installed"),
        "{json:#}"
    );
}
