//! A fleet's failure names every host that failed, each with its step and the last lines it
//! printed, and gives one hint per cause (issue 23, item 7), on three real hosts: one whose
//! `releases/` is not writable, one that lacks a program a hook runs, and one that is fine (and
//! so is not named). Then two hosts that cannot be reached, both named. Needs root.

use std::os::unix::fs::PermissionsExt;

use support::fleet::Fleet;
use support::*;

/// The lines of `stderr` from its `error:` line on: the error and its hints.
fn error_of(stderr: &str) -> &str {
    let at = stderr
        .find("error: ")
        .unwrap_or_else(|| panic!("no error in:\n{stderr}"));
    &stderr[at..]
}

#[test]
fn two_hosts_failing_for_two_causes_are_both_named_with_their_step_lines_and_hint() {
    let mut fleet = Fleet::start(3);
    // A pre-migrate backup tool at the same path on every host (each host's base is at A's
    // path in its own namespace).
    let tool = fleet.stack.host.base.path().join("bin/backup-db");
    for i in 0..fleet.to.len() {
        let bin = fleet.host(i).base.path().join("bin");
        mkdir_as_deploy(&bin);
        let file = bin.join("backup-db");
        write_as_deploy(&file, "#!/bin/sh\necho backed up\n");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let hook = format!("{} --quick", tool.display());
    fleet.stack.set_options(|o| {
        o.extra.push_str(&format!(
            "migrate = \"each-host\"\nhooks = {{ before_migrate = [{hook:?}] }}\n"
        ))
    });
    let id = fleet.stack.deploy_release();

    // Host 1 cannot write its releases/, host 2 lost the tool, host 0 is fine.
    chmod(&fleet.to[1].join("releases"), 0o555);
    std::fs::remove_dir_all(fleet.others[1].base.path().join("bin")).unwrap();
    fleet.stack.change_page("two hosts fail");
    let run = fleet.stack.deploy(&[]);
    chmod(&fleet.to[1].join("releases"), 0o755);
    run.expect_code(1);
    let error = error_of(&run.stderr);
    let (ok, denied, missing) = (&fleet.specs[0], &fleet.specs[1], &fleet.specs[2]);
    for needle in [
        "2 hosts failed:".to_string(),
        format!("{denied}: step `unpack` failed with exit status 1"),
        "Permission denied".to_string(),
        format!("{missing}: step `before_migrate"),
        format!("{}: not found", tool.display()),
        "nothing was switched".to_string(),
        format!("hint: {denied}: permission denied"),
        format!("hint: {missing}: a program the step runs is missing"),
    ] {
        assert!(error.contains(&needle), "no {needle:?} in:\n{error}");
    }
    // Each host's lines are under its own name, and the host that prepared is not a failure.
    let denied_block = &error[error.find(&format!("{denied}: step")).unwrap()..];
    let denied_block = &denied_block[..denied_block.find(&format!("{missing}: step")).unwrap()];
    assert!(denied_block.contains("Permission denied"), "{denied_block}");
    assert!(!error.contains(&format!("{ok}: step")), "{error}");
    assert_eq!(error.matches("hint: ").count(), 2, "{error}");
    fleet.all_serve(&id);

    // Two hosts that cannot be reached: both named, one hint for the one cause.
    let (a, b) = (free_port(), free_port());
    let down = [
        format!("deploy@127.0.0.1:{a}"),
        format!("deploy@127.0.0.1:{b}"),
    ];
    let spec0 = ok.clone();
    fleet.stack.set_options(|o| {
        o.hosts = vec![spec0, down[0].clone(), down[1].clone()];
    });
    let run = fleet.stack.deploy(&[]);
    run.expect_code(3);
    let error = error_of(&run.stderr);
    assert!(error.starts_with("error: 2 hosts failed:"), "{error}");
    for host in &down {
        assert!(
            error.contains(&format!("  {host}: ")),
            "{host} in:\n{error}"
        );
    }
    let hints: Vec<&str> = error.lines().filter(|l| l.starts_with("hint: ")).collect();
    assert_eq!(hints.len(), 1, "{error}");
    assert!(
        hints[0].starts_with(&format!("hint: {}, {}: ", down[0], down[1])),
        "{error}"
    );
}
