//! The fast tier: every `step_*` of the shell library run on its own in a real `sh` (dash and
//! BusyBox ash), against a temp dir, with the host's tools it does not test stubbed first on
//! PATH (rbenv's `test_helper` and nvm's `test/fast` are the models).
//!
//! The integration tests run the same functions as root against real sshd, nginx and
//! supervisord, in seconds each; here a case takes milliseconds, needs no root (when the tests
//! run as root the shell runs as `nobody`), and a contention or failure case (a held lock, a
//! full disk, a missing tool, a failing migrate) is a stub's exit status away. The scheduler,
//! host-side Python that runs for minutes, is run the same way on a virtual clock (scheduler.rs).

mod app;
mod django;
mod lock;
mod operate;
mod pm;
mod release;
mod scheduler;
mod snapshot;
mod switch;
mod tls;

use crate::plan::quote;
use crate::remote::library::{sent, LIBRARY};
use crate::remote::preamble::Preamble;
use crate::remote::protocol::{job_name, parse_line, Event};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The uid and gid the shell runs as when the tests run as root.
const NOBODY: u32 = 65534;

/// The real shells every case runs in.
#[derive(Clone, Copy, Debug)]
pub(super) enum Shell {
    Dash,
    Ash,
}

impl Shell {
    fn argv(self) -> &'static [&'static str] {
        match self {
            Shell::Dash => &["/usr/bin/dash"],
            Shell::Ash => &["/usr/bin/busybox", "ash"],
        }
    }
}

/// Runs `case` once in each shell, each time on a fresh host.
pub(super) fn each_shell(case: impl Fn(&mut Host)) {
    for shell in [Shell::Dash, Shell::Ash] {
        case(&mut Host::new(shell));
    }
}

/// A host in a temp dir: `deploy/` is `deploy_to`, `home/` is HOME, `bin/` holds the stubs
/// (first on PATH), `calls/` what each stub was called with.
pub(super) struct Host {
    pub(super) shell: Shell,
    dir: tempfile::TempDir,
    /// The run's nonce, unique per host: the background job's directory is named by its hash.
    nonce: String,
    vars: Preamble,
}

impl Host {
    fn new(shell: Shell) -> Host {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["deploy", "home", "bin", "calls", "etc"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let nonce: String = dir
            .path()
            .to_string_lossy()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let mut host = Host {
            shell,
            dir,
            nonce,
            vars: Preamble::default(),
        };
        host.vars = host.preamble();
        host
    }

    /// The variables a script is given (see `Resolved::vars`): the sample target's, without
    /// an app or nginx, release 20261122010320, unless a test sets them with [`Host::set`].
    fn preamble(&self) -> Preamble {
        let mut vars = crate::resolve::test_vars(self.path("deploy").to_str().unwrap());
        vars.ctl = "supervisorctl".into();
        vars.confd = self.path("etc").to_str().unwrap().into();
        vars
    }

    /// Sets preamble variable `name`.
    pub(super) fn set(&mut self, name: &'static str, value: impl Into<String>) -> &mut Host {
        self.vars.set_named(name, value);
        self
    }

    pub(super) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `deploy_to`, or a path inside it.
    pub(super) fn d(&self, rel: &str) -> PathBuf {
        match rel {
            "" => self.path("deploy"),
            _ => self.path("deploy").join(rel),
        }
    }

    /// The release this run deploys (its directory exists).
    pub(super) fn r(&self, rel: &str) -> PathBuf {
        self.d("releases/20261122010320").join(rel)
    }

    /// Writes `content` to `path`, making its directory.
    pub(super) fn write(&self, path: impl AsRef<Path>, content: &str) {
        let path = path.as_ref();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    /// An executable script at `path` (a stub outside `bin/`, a venv's python).
    pub(super) fn script(&self, path: impl AsRef<Path>, body: &str) {
        let path = path.as_ref();
        self.write(path, &format!("#!/bin/sh\n{body}\n"));
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A stub command `name` first on PATH: it appends its arguments, one line per call, to
    /// `calls/NAME`, then runs `body` (its output and exit status are the stub's).
    pub(super) fn stub(&self, name: &str, body: &str) {
        self.stub_at(self.path("bin").join(name), name, body);
    }

    /// A stub at `path` (a venv's python, say) that logs its calls as `name`.
    pub(super) fn stub_at(&self, path: impl AsRef<Path>, name: &str, body: &str) {
        let log = self.path("calls").join(name);
        self.script(
            path,
            &format!("echo \"$*\" >> {}\n{body}", quote(log.to_str().unwrap())),
        );
    }

    /// Holds the lock as this run (its token), as every step after `begin` does.
    pub(super) fn lock(&self) {
        self.write(self.d(".shipit/lock/info"), "token=token\n");
    }

    /// Release `id`, in `state` (its `.shipit/state`): its directory.
    pub(super) fn release(&self, id: &str, state: &str) -> PathBuf {
        let dir = self.d(&format!("releases/{id}"));
        self.write(dir.join(".shipit/state"), &format!("{state}\n"));
        dir
    }

    /// Release `id` in `state` with `size` bytes of code and the venv `key` (built, in
    /// `venvs/`, linked as the release's `.venv` as step_virtualenv links it).
    pub(super) fn release_with_venv(&self, id: &str, state: &str, key: &str, size: usize) {
        let dir = self.release(id, state);
        self.write(dir.join("code.py"), &"x".repeat(size));
        self.write(self.d(&format!("venvs/{key}/bin/python")), "");
        std::os::unix::fs::symlink(format!("../../venvs/{key}"), dir.join(".venv")).unwrap();
    }

    /// Release `id`'s state, or nothing when it has none.
    pub(super) fn state(&self, id: &str) -> String {
        std::fs::read_to_string(self.d(&format!("releases/{id}/.shipit/state")))
            .unwrap_or_default()
            .trim_end()
            .to_string()
    }

    /// Points `current` at `target`, as a switch does (`releases/ID`, relative).
    pub(super) fn current(&self, target: &str) {
        let _ = std::fs::remove_file(self.d("current"));
        std::os::unix::fs::symlink(target, self.d("current")).unwrap();
    }

    /// What `current` points at, or nothing.
    pub(super) fn current_target(&self) -> Option<String> {
        std::fs::read_link(self.d("current"))
            .ok()
            .map(|target| target.to_string_lossy().into_owned())
    }

    /// The operation and outcome (`deploy ok`) of each line of `deploy_to`'s `.shipit/log`.
    pub(super) fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.d(".shipit/log"))
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                format!("{} {}", fields[2], fields[5])
            })
            .collect()
    }

    /// What stub `name` was called with, one entry per call.
    pub(super) fn calls(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.path("calls").join(name))
            .map(|text| text.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// Runs one step: `shipit_step ID FUNCTION ARGS...` after the preamble, as a script does.
    pub(super) fn step(&self, function: &str, args: &[&str]) -> Run {
        let mut call = format!(
            "shipit_step {} {function}",
            function.trim_start_matches("step_")
        );
        for arg in args {
            call.push(' ');
            call.push_str(&quote(arg));
        }
        self.run(&call)
    }

    /// Runs `calls` (shell text) after the library and the preamble, as shipit's scripts do,
    /// with stdin closed and fd 3 from /dev/null.
    pub(super) fn run(&self, calls: &str) -> Run {
        let out = self.command(calls).output().unwrap();
        self.ran(&out)
    }

    /// Starts `calls` as [`Host::run`] runs them, without waiting: races between two runs.
    /// The run's nonce.
    pub(super) fn nonce(&self) -> &str {
        &self.nonce
    }

    pub(super) fn spawn(&self, calls: &str) -> std::process::Child {
        self.command(calls).stdout(Stdio::piped()).spawn().unwrap()
    }

    /// What a run that ended with `out` printed and reported.
    pub(super) fn ran(&self, out: &std::process::Output) -> Run {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let events = text
            .lines()
            .map(|line| parse_line(&self.nonce, line))
            .collect();
        Run {
            shell: self.shell,
            status: out.status.code().unwrap_or(-1),
            text,
            events,
        }
    }

    /// The shell that runs `calls` after the library and the preamble.
    fn command(&self, calls: &str) -> Command {
        let mut preamble = format!(
            "shipit_start\nSHIPIT_NONCE={}\nSHIPIT_JOB={}\n",
            self.nonce,
            job_name(&self.nonce)
        );
        preamble.push_str(&self.vars.render());
        let script = format!(
            "{}\nshipit_main() {{\n{preamble}shipit_init\nSHIPIT_CLEANUP=on_lock_failure\n{calls}\nshipit_done\n}}\nshipit_main 3</dev/null </dev/null\nexit $?\n",
            sent()
        );
        let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
        let mut command = match root {
            true => {
                chown_all(self.dir.path());
                let mut command = Command::new("setpriv");
                command.args([
                    format!("--reuid={NOBODY}"),
                    format!("--regid={NOBODY}"),
                    "--clear-groups".to_string(),
                ]);
                command.args(self.shell.argv());
                command
            }
            false => {
                let argv = self.shell.argv();
                let mut command = Command::new(argv[0]);
                command.args(&argv[1..]);
                command
            }
        };
        let path = format!("{}:/usr/bin:/bin", self.path("bin").display());
        command
            .arg("-c")
            .arg(script)
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.path("home"))
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        command
    }
}

/// Gives everything under `dir` to `nobody`, who runs the shell when the tests run as root.
/// What vanishes meanwhile is skipped: an earlier step's background job (the trash a removal
/// left, say) may still be deleting it.
fn chown_all(dir: &Path) {
    let gone = |err: &std::io::Error| err.kind() == std::io::ErrorKind::NotFound;
    match std::os::unix::fs::lchown(dir, Some(NOBODY), Some(NOBODY)) {
        Err(err) if gone(&err) => return,
        result => result.unwrap(),
    }
    let is_dir = match std::fs::symlink_metadata(dir) {
        Err(err) if gone(&err) => return,
        result => result.unwrap().is_dir(),
    };
    if is_dir {
        let entries = match std::fs::read_dir(dir) {
            Err(err) if gone(&err) => return,
            result => result.unwrap(),
        };
        for entry in entries {
            match entry {
                Err(err) if gone(&err) => {}
                entry => chown_all(&entry.unwrap().path()),
            }
        }
    }
}

/// What one script printed and how it ended.
#[derive(Debug)]
pub(super) struct Run {
    pub(super) shell: Shell,
    pub(super) status: i32,
    pub(super) text: String,
    events: Vec<Event>,
}

impl Run {
    /// The value of the last fact `key`, if the script reported it.
    pub(super) fn fact(&self, key: &str) -> Option<&str> {
        self.events.iter().rev().find_map(|event| match event {
            Event::Fact(k, v) if k == key => Some(v.as_str()),
            _ => None,
        })
    }

    /// Asserts the script ended with `status`.
    pub(super) fn status(&self, status: i32) -> &Run {
        assert_eq!(self.status, status, "{:?}:\n{}", self.shell, self.text);
        self
    }

    /// Asserts the script printed `text`.
    pub(super) fn says(&self, text: &str) -> &Run {
        assert!(
            self.text.contains(text),
            "{:?}: no {text:?} in\n{}",
            self.shell,
            self.text
        );
        self
    }

    /// Asserts the script did not print `text`.
    pub(super) fn never_says(&self, text: &str) -> &Run {
        assert!(
            !self.text.contains(text),
            "{:?}: {text:?} in\n{}",
            self.shell,
            self.text
        );
        self
    }

    /// Asserts fact `key` is `value`.
    pub(super) fn fact_is(&self, key: &str, value: &str) -> &Run {
        assert_eq!(
            self.fact(key),
            Some(value),
            "{:?}:\n{}",
            self.shell,
            self.text
        );
        self
    }
}

/// An app server on this run's release's socket (`.shipit/app.sock`): it answers the Nth
/// request with `answers[N]` (a status line), then closes the connection without an answer. It
/// keeps every request it read.
pub(super) struct App {
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl App {
    pub(super) fn serve(host: &Host, answers: &[&str]) -> App {
        std::fs::create_dir_all(host.r(".shipit")).unwrap();
        let listener = UnixListener::bind(host.r(".shipit/app.sock")).unwrap();
        listener.set_nonblocking(true).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let answers: Vec<String> = answers.iter().map(|a| a.to_string()).collect();
        let thread = {
            let (requests, stop) = (requests.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok((mut stream, _)) = listener.accept() else {
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        continue;
                    };
                    stream.set_nonblocking(false).unwrap();
                    let mut request = Vec::new();
                    let mut buf = [0; 512];
                    while !request.ends_with(b"\r\n\r\n") {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let mut requests = requests.lock().unwrap();
                    if let Some(answer) = answers.get(requests.len()) {
                        let _ = stream.write_all(format!("{answer}\r\n\r\n").as_bytes());
                    }
                    requests.push(String::from_utf8_lossy(&request).into_owned());
                }
            })
        };
        App {
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub(super) fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Every `step_*` function each test file covers, for the meta-test below.
const COVERED: &[&[&str]] = &[
    lock::COVERS,
    release::COVERS,
    django::COVERS,
    switch::COVERS,
    operate::COVERS,
    pm::COVERS,
    app::COVERS,
    tls::COVERS,
    snapshot::COVERS,
];

#[test]
fn every_step_function_has_a_fast_test() {
    let defined: Vec<&str> = LIBRARY
        .lines()
        .filter_map(|line| line.split_once("() "))
        .map(|(name, _)| name)
        .filter(|name| name.starts_with("step_") || name.starts_with("pm_"))
        .collect();
    assert!(defined.len() > 40, "{defined:?}");
    let covered: Vec<&str> = COVERED.iter().flat_map(|c| c.iter().copied()).collect();
    let missing: Vec<&&str> = defined
        .iter()
        .filter(|name| !covered.contains(name))
        .collect();
    assert!(missing.is_empty(), "no fast test for {missing:?}");
    let stale: Vec<&&str> = covered
        .iter()
        .filter(|name| !defined.contains(name))
        .collect();
    assert!(stale.is_empty(), "not in the library: {stale:?}");
}
