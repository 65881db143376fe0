//! `current` in the states a person or a crash can leave it in, against real components: a real
//! directory, missing, or dangling (pointing at a release that is gone). A deploy checks it
//! before touching anything and says what to do; `rollback --to` recovers a dangling one.
//! Needs root.

use std::os::unix::fs::symlink;

use support::stack::*;

/// A second commit, so the next deploy is a new release with another revision.
fn change(stack: &Stack, text: &str) {
    stack.project.write("pages/marker.txt", text);
    stack.project.commit_all(text);
}

#[test]
fn a_current_that_is_a_real_directory_is_refused_before_anything_changes() {
    let stack = Stack::start();
    let v1 = stack.deploy_release();
    let current = stack.deploy_to().join("current");
    std::fs::remove_file(&current).unwrap();
    std::fs::create_dir(&current).unwrap();
    std::fs::write(current.join("index.html"), "hand-made\n").unwrap();
    change(&stack, "two");

    let run = stack.deploy(&[]);

    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("is a directory, not a symlink"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("move it aside"), "{}", run.stderr);
    assert_eq!(stack.releases(), vec![v1], "a release was unpacked");
    assert!(
        current.join("index.html").exists(),
        "the directory was touched"
    );
}

#[test]
fn a_missing_current_is_deployed_over_like_a_first_deploy() {
    let stack = Stack::start();
    stack.deploy_release();
    std::fs::remove_file(stack.deploy_to().join("current")).unwrap();
    change(&stack, "two");

    let v2 = stack.deploy_release();

    stack.serves_release(&v2);
    assert_eq!(stack.current_id(), v2);
}

#[test]
fn a_dangling_current_is_recovered_by_rollback_to_and_by_a_deploy() {
    let stack = Stack::start();
    let v1 = stack.deploy_release();
    change(&stack, "two");
    let v2 = stack.deploy_release();
    // The release `current` points at is gone (a person's `rm -rf`, a full disk's cleanup).
    std::fs::remove_dir_all(stack.deploy_to().join(format!("releases/{v2}"))).unwrap();

    let run = stack.rollback(&["--to", &v1]);
    run.expect_code(0);
    stack.serves_release(&v1);
    assert_eq!(stack.current_id(), v1);

    // Dangling again; a plain deploy switches over it and says what it found.
    let current = stack.deploy_to().join("current");
    std::fs::remove_file(&current).unwrap();
    symlink(format!("releases/{v2}"), &current).unwrap();
    change(&stack, "three");
    let run = stack.deploy(&[]);
    run.expect_code(0);
    assert!(
        run.stderr.contains(&format!(
            "`current` points at releases/{v2}, which does not exist"
        )),
        "{}",
        run.stderr
    );
    let v3 = run.release();
    stack.serves_release(&v3);
}
