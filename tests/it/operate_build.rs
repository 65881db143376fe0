//! The local build step (`project.build`, `project.artifacts`) against the real stack: what a
//! build command makes is archived under the archive's rules and served by the deployed app;
//! a failing command stops the deploy before any host is touched. Needs root.

use support::project::Archive;
use support::stack::*;

/// `[project]` with `build` and `artifacts` lines added.
fn with_build(stack: &mut Stack, lines: &str) {
    let from = "python = \"/usr/bin/python3\"\n";
    stack.project_toml = stack
        .project_toml
        .replace(from, &format!("{from}{lines}\n"));
    stack.write_config();
}

#[test]
fn a_build_step_artifact_is_archived_and_served() {
    let mut stack = Stack::start();
    // Build output is git-ignored, as it usually is.
    let ignore = stack.project.read(".gitignore");
    stack
        .project
        .write(".gitignore", &format!("{ignore}pages/static/pages/dist/\n"));
    with_build(
        &mut stack,
        r#"build = [
  "mkdir -p pages/static/pages/dist",
  "echo \"console.log('built for $SHIPIT_TARGET');\" > pages/static/pages/dist/app.js",
  "echo SECRET=1 > pages/static/pages/dist/.env",
  "echo building done >&2",
]
artifacts = ["pages/static/pages/dist/"]"#,
    );

    // The same tree gives the same archive, artifacts included; the secret-looking file the
    // build made stays out, as it would if git tracked it.
    let build = |out: &str| {
        let run = stack.shipit(&["build", "-t", TARGET, "-o", out, "--json", "-v"]);
        run.expect_code(0)
            .says(&["build: $ mkdir -p", "building done"]);
        run.json()
    };
    let out1 = stack.project.out("one.tar.gz");
    let out2 = stack.project.out("two.tar.gz");
    let first = build(out1.to_str().unwrap());
    let second = build(out2.to_str().unwrap());
    assert_eq!(first["sha256"], second["sha256"], "{first}\n{second}");
    let archive = Archive::open(&out1);
    assert_eq!(
        archive.text("pages/static/pages/dist/app.js"),
        "console.log('built for test');\n"
    );
    assert!(!archive.contains("pages/static/pages/dist/.env"));
    assert!(
        first["secrets_skipped"]
            .as_array()
            .unwrap()
            .contains(&"pages/static/pages/dist/.env".into()),
        "{first}"
    );

    // collectstatic publishes it and nginx serves it.
    stack.deploy_ok();
    assert_eq!(
        stack.page("/static/pages/dist/app.js", |s, _| s == 200),
        "console.log('built for test');\n"
    );
}

#[test]
fn a_failing_build_step_stops_before_any_host_is_touched() {
    let mut stack = Stack::start();
    with_build(
        &mut stack,
        r#"build = ["echo compiling", "echo 'Error: cannot find module webpack' >&2; exit 3", "touch never-run"]"#,
    );
    let run = stack.deploy(&[]);
    run.expect_code(1).says_error(&[
        "build command `echo 'Error: cannot find module webpack' >&2; exit 3` failed with exit status 3",
        "| Error: cannot find module webpack",
        "no host was touched",
    ]);
    assert!(
        !stack.deploy_to().exists(),
        "the host's deploy_to was created"
    );
    assert!(!stack.project.path("never-run").exists());
}
