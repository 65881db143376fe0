//! `shipit logs` on the real stack: the live release's gunicorn log through supervisor's log
//! file, each line prefixed with its host; `--grep` filters; `-f` shows a line the app writes
//! after following began, and Ctrl-C ends it (status 130) and the remote tail with it. Needs
//! root.

use std::io::BufRead;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use support::stack::*;
use support::*;

/// A stack whose gunicorn writes an access log line per request to its stdout (the log file).
fn stack_with_access_log() -> Stack {
    let stack = Stack::start();
    let listen = format!("listen = \"{}\"", stack.options.listen);
    stack.project.edit_config(
        &listen,
        &format!("{listen}\ngunicorn_args = \"--access-logfile -\""),
    );
    stack.project.commit_all("access log");
    stack.deploy_ok();
    stack
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    list_dir(std::path::Path::new("/proc"))
        .into_iter()
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|p| {
            let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(needle).then(|| format!("{p}: {cmdline}"))
        })
        .collect()
}

#[test]
fn logs_show_and_filter_the_app_log_prefixed_with_the_host() {
    let stack = stack_with_access_log();
    let host = stack.host.sshd.host_spec();
    let marker = "/health?marker=shown-by-logs";
    stack.page(marker, |s, _| s == 200);
    // The access log line is written when the response is: wait until the file has it.
    let log = stack.deploy_to().join("shared/log/hello-app.log");
    assert!(
        wait_for(SERVE_TIMEOUT, || std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(marker)
            .then_some(()))
        .is_some(),
        "{}",
        app_log(&stack.deploy_to())
    );

    let run = stack.shipit(&["logs", "-t", TARGET, "-n", "200"]);
    run.expect_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines.iter().all(|l| l.starts_with(&format!("{host} | "))),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Booting worker"), "{}", run.stdout);
    assert!(run.stdout.contains(marker), "{}", run.stdout);

    let run = stack.shipit(&[
        "logs",
        "-t",
        TARGET,
        "-n",
        "200",
        "--grep",
        "GET /health\\?marker",
    ]);
    run.expect_code(0);
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    assert!(run.stdout.contains(marker), "{}", run.stdout);

    let run = stack.shipit(&["logs", "-t", TARGET, "--process", "worker"]);
    run.expect_code(1)
        .says_error(&["no process `worker` in this target; its processes: web"]);
}

#[test]
fn logs_follow_shows_new_lines_until_ctrl_c() {
    let stack = stack_with_access_log();
    let host = stack.host.sshd.host_spec();
    let log = stack.deploy_to().join("shared/log/hello-app.log");
    let mut child = stack
        .project
        .shipit_with_home(stack.home.path())
        .args(["logs", "-t", TARGET, "-f", "-n", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shipit logs -f");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The last line already there: following has begun.
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("logs -f printed nothing");
    assert!(first.starts_with(&format!("{host} | ")), "{first}");

    let marker = "/health?marker=written-while-following";
    stack.page(marker, |s, _| s == 200);
    let seen = wait_for(Duration::from_secs(60), || {
        rx.recv_timeout(Duration::from_millis(200))
            .ok()
            .filter(|l| l.contains(marker))
    });
    let line = seen.unwrap_or_else(|| panic!("logs -f never showed {marker}"));
    assert!(line.starts_with(&format!("{host} | ")), "{line}");

    // Ctrl-C: shipit quits at once with 130, and the remote tail goes too.
    let following = processes_mentioning(&log.display().to_string());
    assert!(
        following.iter().any(|p| p.contains("tail")),
        "{following:?}"
    );
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    let status = wait_for(Duration::from_secs(30), || child.try_wait().unwrap())
        .expect("shipit logs -f did not end on Ctrl-C");
    assert_eq!(status.code(), Some(130));
    let gone = wait_for(Duration::from_secs(30), || {
        processes_mentioning(&log.display().to_string())
            .is_empty()
            .then_some(())
    });
    assert!(
        gone.is_some(),
        "still following: {:?}",
        processes_mentioning(&log.display().to_string())
    );
}
