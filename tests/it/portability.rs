//! Hosts without GNU coreutils, against real components: a host whose shell and tools are
//! BusyBox's (as on Alpine) deploys, redeploys and rolls back; a host that lacks a tool the
//! remote steps need is refused before anything changes, with the tool named. Needs root and
//! Debian's `busybox`.

use std::path::Path;
use std::process::Command;

use support::stack::*;
use support::*;

/// A directory of BusyBox applets (every one but those in `without`), readable by the deploy user.
fn busybox_bin(without: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("shipit-busybox-")
        .tempdir_in("/tmp")
        .unwrap();
    chmod(dir.path(), 0o755);
    let status = Command::new("busybox")
        .arg("--install")
        .arg("-s")
        .arg(dir.path())
        .status()
        .expect("Debian's busybox is installed (.ci/setup)");
    assert!(status.success());
    for tool in without {
        std::fs::remove_file(dir.path().join(tool)).unwrap();
    }
    dir
}

/// Restarts the stack's sshd so that sessions find `first` before the system's tools.
fn sessions_use(stack: &mut Stack, path: &str) {
    stack
        .host
        .sshd
        .restart_with_config(&format!("SetEnv PATH={path}\n"));
}

/// What `sh -c 'command -v sha256sum'` finds in a session.
fn session_finds(stack: &Stack, tool: &str) -> String {
    let out = stack
        .host
        .sshd
        .ssh_command(&format!(
            "command -v {tool}; readlink -f \"$(command -v sh)\""
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_busybox_host_deploys_redeploys_and_rolls_back() {
    let mut stack = Stack::start();
    let bin = busybox_bin(&[]);
    let path = format!(
        "{}:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        bin.path().display()
    );
    sessions_use(&mut stack, &path);
    let found = session_finds(&stack, "sha256sum");
    assert!(
        found.starts_with(&bin.path().join("sha256sum").display().to_string()),
        "sessions do not use BusyBox: {found}"
    );
    assert!(
        found.contains("busybox"),
        "the shell is not BusyBox's: {found}"
    );

    let v1 = stack.deploy_release();
    stack.serves_release(&v1);
    stack.project.write("pages/marker.txt", "two\n");
    stack.project.commit_all("second");
    let v2 = stack.deploy_release();
    assert_ne!(v1, v2);
    stack.serves_release(&v2);
    stack.rollback(&[]).expect_code(0);
    stack.serves_release(&v1);
}

#[test]
fn a_host_that_lacks_a_tool_is_refused_with_its_name_before_anything_changes() {
    let mut stack = Stack::start();
    let bin = busybox_bin(&["sha256sum"]);
    // BusyBox for everything, and only the programs shipit runs by name from the system.
    let system = tempfile::Builder::new()
        .prefix("shipit-system-")
        .tempdir_in("/tmp")
        .unwrap();
    chmod(system.path(), 0o755);
    for program in ["python3", "uv", "nginx", "supervisorctl"] {
        for dir in ["/usr/local/bin", "/usr/sbin", "/usr/bin"] {
            let found = Path::new(dir).join(program);
            if found.exists() {
                std::os::unix::fs::symlink(&found, system.path().join(program)).unwrap();
                break;
            }
        }
    }
    let path = format!("{}:{}", bin.path().display(), system.path().display());
    sessions_use(&mut stack, &path);

    let run = stack.deploy(&[]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("this host lacks sha256sum"),
        "{}",
        run.stderr
    );
    assert!(
        !stack.deploy_to().join("releases").exists(),
        "the layout was created"
    );
}
