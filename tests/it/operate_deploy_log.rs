//! The run log on the workstation: every deploy keeps its whole output (also what only `-v`
//! shows) in the project's `.shipit/logs/`, secrets redacted, and a failed deploy's error names
//! that file. Real deploys on the real stack; needs root.

use std::path::PathBuf;

use support::stack::*;

const SECRET: &str = "s3cr3t-value-for-the-log-test";

/// `shipit deploy -t test ARGS` with the secret's source variable set.
fn deploy(stack: &Stack, args: &[&str]) -> Run {
    let mut command =
        assert_cmd::Command::from_std(stack.project.shipit_with_home(stack.home.path()));
    command
        .env("LOG_TEST_SECRET", SECRET)
        .args(["deploy", "--target", TARGET])
        .args(args)
        .timeout(DEPLOY_TIMEOUT);
    Run::of(&mut command)
}

/// The run logs of the project, oldest first.
fn logs(stack: &Stack) -> Vec<PathBuf> {
    let dir = stack.project.path(".shipit/logs");
    let mut logs: Vec<PathBuf> = list_dir(&dir).iter().map(|n| dir.join(n)).collect();
    logs.sort();
    logs
}

#[test]
fn each_deploy_keeps_its_full_output_and_a_failure_names_it() {
    let mut stack = Stack::start();
    stack.set_options(|o| {
        o.extra = "secrets = { DJANGO_SECRET_KEY = { env = \"LOG_TEST_SECRET\" } }\n\
                   hooks = { after_switch = [\"echo the key is $DJANGO_SECRET_KEY\"] }\n"
            .into()
    });
    let run = deploy(&stack, &[]);
    run.expect_code(0);
    assert!(
        !run.stderr.contains("unpacked into"),
        "not verbose:\n{}",
        run.stderr
    );
    let kept = logs(&stack);
    assert_eq!(kept.len(), 1, "{kept:?}");
    let name = kept[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.ends_with("-deploy-test.log"), "{name}");
    let log = std::fs::read_to_string(&kept[0]).unwrap();
    for needle in [
        "shipit deploy --target test by tester@",
        "→ unpack",
        "unpacked into",
        "✓ migrate",
        "the key is [REDACTED]",
        "deployed ",
    ] {
        assert!(log.contains(needle), "the log lacks {needle:?}:\n{log}");
    }
    assert!(!log.contains(SECRET), "the secret is in the log:\n{log}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&kept[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A failing step: the error names the log, which holds what the step printed.
    stack.set_options(|o| {
        o.extra = "hooks = { before_migrate = [\"echo the hook broke here; exit 4\"] }\n".into()
    });
    let run = deploy(&stack, &[]);
    run.expect_code(1);
    let kept = logs(&stack);
    assert_eq!(kept.len(), 2, "{kept:?}");
    run.says(&[&format!(
        "log: the full output of this run is in {}",
        kept[1].display()
    )]);
    let log = std::fs::read_to_string(&kept[1]).unwrap();
    for needle in [
        "the hook broke here",
        "✗ before_migrate[0]",
        "error: ",
        "failed with exit status 4",
    ] {
        assert!(log.contains(needle), "the log lacks {needle:?}:\n{log}");
    }
}
