//! The CI recipes of docs/src/ci.md, run as CI runs them: the GitHub Actions workflow's `Deploy`
//! step (`run:`) and the GitLab job's `script:` lines are taken out of the page and run by bash
//! with `CI=true`, no terminal, an empty HOME, and the SSH key, the pinned known_hosts entry
//! and the app's secret in CI variables, against the real stack (OpenSSH sshd, nginx,
//! supervisord). Their exit status passes shipit's on: a lock held on the host gives 4. If the
//! page's recipe stops working, these tests fail. Needs root.

use std::path::Path;

use support::stack::*;

/// What the CI variables hold for the app.
const SECRET: &str = "ci-django-secret-0b8e7c2f9a";

/// The page.
fn page() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/src/ci.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fenced block of `doc` whose info string is `info`.
fn block<'a>(doc: &'a str, info: &str) -> &'a str {
    let fence = format!("```{info}\n");
    let start = doc
        .find(&fence)
        .unwrap_or_else(|| panic!("docs/src/ci.md has no ```{info} block"))
        + fence.len();
    let end = start + doc[start..].find("\n```").expect("the block ends");
    &doc[start..end]
}

fn indentation(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The `run: |` script of the workflow step named `step`, dedented.
fn github_run(workflow: &str, step: &str) -> String {
    let lines: Vec<&str> = workflow.lines().collect();
    let named = lines
        .iter()
        .position(|l| l.trim() == format!("- name: {step}"))
        .unwrap_or_else(|| panic!("the workflow has no step `{step}`"));
    let run = named
        + lines[named..]
            .iter()
            .position(|l| l.trim() == "run: |")
            .expect("the step has a `run: |` block");
    let indent = indentation(lines[run]);
    let body: Vec<&str> = lines[run + 1..]
        .iter()
        .take_while(|l| l.trim().is_empty() || indentation(l) > indent)
        .copied()
        .collect();
    let strip = body.iter().map(|l| indentation(l)).min().unwrap_or(0);
    body.iter()
        .map(|l| l.get(strip..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `script:` items of the GitLab job, one command line each.
fn gitlab_script(job: &str) -> String {
    let lines: Vec<&str> = job.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim() == "script:")
        .expect("the job has a `script:` list");
    let indent = indentation(lines[at]);
    let items: Vec<&str> = lines[at + 1..]
        .iter()
        .take_while(|l| indentation(l) > indent)
        .map(|l| {
            l.trim()
                .strip_prefix("- ")
                .unwrap_or_else(|| panic!("not a one-line list item: {l}"))
        })
        .collect();
    assert!(items.len() >= 3, "{items:?}");
    items.join("\n")
}

/// Writes the stack's shipit.toml as the page assumes it: target `production`, no
/// `identity_file` or `known_hosts` (the key and the host key come from CI variables into
/// `~/.ssh`), and the app's secret from the environment.
fn production(stack: &mut Stack) {
    stack.options.known_hosts = None;
    stack.options.extra =
        "secrets = { DJANGO_SECRET_KEY = { env = \"DJANGO_SECRET_KEY\" } }\n".into();
    let target = target_toml_named("production", "hello.conf", &stack.host, &stack.options);
    let target: String = target
        .lines()
        .filter(|l| !l.starts_with("identity_file = "))
        .map(|l| format!("{l}\n"))
        .collect();
    stack
        .project
        .write("shipit.toml", &format!("{}{target}", stack.project_toml));
    stack
        .project
        .commit_all("shipit.toml as docs/src/ci.md assumes it");
}

/// A CI job's shell: bash as GitHub and GitLab run a script (`-eo pipefail`), in the checkout,
/// with nothing but `env` and what a runner sets, stdin closed.
fn ci(stack: &Stack, home: &Path, script: &str, env: &[(&str, &str)]) -> Run {
    let bin = support::shipit_bin();
    let path = format!(
        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        bin.parent().unwrap().display()
    );
    let mut command = std::process::Command::new("bash");
    command
        .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
        .current_dir(&stack.project.root)
        .env_clear()
        .env("PATH", path)
        .env("HOME", home)
        .env("USER", "runner")
        .env("CI", "true")
        .envs(env.iter().copied());
    Run::of(assert_cmd::Command::from_std(command).timeout(DEPLOY_TIMEOUT))
}

/// The CI variables' values: the client key and the pinned known_hosts lines.
fn key_and_known_hosts(stack: &Stack) -> (String, String) {
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    let key = read(&stack.host.sshd.client_key);
    let known = read(&stack.host.sshd.known_hosts);
    assert!(!known.trim().is_empty());
    (key, known)
}

fn assert_no_secret(run: &Run, key: &str) {
    let key_line = key.lines().nth(1).unwrap();
    for (what, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(!text.contains(SECRET), "the secret in {what}:\n{text}");
        assert!(!text.contains(key_line), "the key in {what}:\n{text}");
    }
}

#[test]
fn the_github_actions_recipe_deploys_and_passes_a_held_lock_on_as_exit_status_4() {
    let mut stack = Stack::start();
    production(&mut stack);
    let script = github_run(block(&page(), "yaml,ci-github"), "Deploy");
    let home = tempfile::tempdir().unwrap();
    let summary = home.path().join("step-summary.md");
    let (key, known) = key_and_known_hosts(&stack);
    let summary_path = summary.display().to_string();
    let env = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_STEP_SUMMARY", summary_path.as_str()),
        ("SSH_PRIVATE_KEY", key.as_str()),
        ("SSH_KNOWN_HOSTS", known.as_str()),
        ("DJANGO_SECRET_KEY", SECRET),
    ];
    let run = ci(&stack, home.path(), &script, &env);
    run.expect_code(0);
    assert_no_secret(&run, &key);
    let result: serde_json::Value =
        serde_json::from_str(&stack.project.read("shipit-result.json")).unwrap();
    let release = result["release"].as_str().unwrap().to_string();
    assert_eq!(stack.current_id(), release);
    let written = std::fs::read_to_string(&summary).unwrap();
    assert!(
        written.contains(&format!(
            "Deployed release `{release}` (revision `{}`) to 1 host(s) in",
            &stack.project.head()[..12]
        )),
        "{written}"
    );
    assert!(stack.serves_release(&release).contains(&release));

    // Another run holds the lock: the step fails with shipit's status, 4, and says so.
    ci(
        &stack,
        home.path(),
        "shipit lock -t production acquire -m 'release freeze'",
        &[],
    )
    .expect_code(0);
    let locked = ci(
        &stack,
        home.path(),
        &script,
        &[env.as_slice(), &[("SHIPIT_LOCK_WAIT", "2")]].concat(),
    );
    locked.expect_code(4);
    assert!(
        locked.stderr.contains("release freeze"),
        "{}",
        locked.stderr
    );
    let written = std::fs::read_to_string(&summary).unwrap();
    assert!(
        written.contains("shipit deploy failed with exit status 4"),
        "{written}"
    );
    assert_eq!(stack.current_id(), release);
    ci(
        &stack,
        home.path(),
        "shipit lock -t production release",
        &[],
    )
    .expect_code(0);
}

#[test]
fn the_gitlab_ci_recipe_deploys_with_file_variables() {
    let mut stack = Stack::start();
    production(&mut stack);
    let script = gitlab_script(block(&page(), "yaml,ci-gitlab"));
    let home = tempfile::tempdir().unwrap();
    // GitLab's variables of type File: their values are paths to files holding them.
    let files = tempfile::tempdir().unwrap();
    let (key, known) = key_and_known_hosts(&stack);
    let key_file = files.path().join("SSH_PRIVATE_KEY");
    let known_file = files.path().join("SSH_KNOWN_HOSTS");
    std::fs::write(&key_file, &key).unwrap();
    std::fs::write(&known_file, &known).unwrap();
    let (key_path, known_path) = (
        key_file.display().to_string(),
        known_file.display().to_string(),
    );
    let env = [
        ("GITLAB_CI", "true"),
        ("SSH_PRIVATE_KEY", key_path.as_str()),
        ("SSH_KNOWN_HOSTS", known_path.as_str()),
        ("DJANGO_SECRET_KEY", SECRET),
    ];
    let run = ci(&stack, home.path(), &script, &env);
    run.expect_code(0);
    assert_no_secret(&run, &key);
    let release = stack.current_id();
    assert!(
        run.stdout
            .contains(&format!("deployed release {release} to 1 host(s)")),
        "{}",
        run.stdout
    );
    assert!(stack.serves_release(&release).contains(&release));

    // Without the pinned host key, the job fails with 3 and nothing changes.
    std::fs::write(&known_file, "").unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let untrusted = ci(&stack, fresh.path(), &script, &env);
    untrusted.expect_code(3);
    assert_eq!(stack.current_id(), release);
}
