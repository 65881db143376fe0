//! Fault injection against real components: OpenSSH sshd, nginx and supervisord running as
//! `deploy`, and gunicorn serving the example Django project. No mocks.
//!
//! shipit reaches sshd through a TCP proxy the test controls (`support::proxy`). A deploy runs
//! with `-v`, which prints `→ STEP` on stderr as each remote step begins; the test closes every
//! connection through the proxy at the moment a chosen step begins (for the upload, from inside
//! the proxy once a few MB of the archive went through). Then, whatever the step:
//!
//! - shipit exits with status 3 and a connection error naming the host;
//! - `current` points at a complete release, whose app server is the only one running, and the
//!   site serves it through nginx (the old release, unless the cut came after the new one was
//!   committed: each test prints which it saw and at which step the remote cleanup ran);
//! - the deploy lock is given back by the remote script's trap within a bounded wait (every
//!   cut falls while a script runs: the archive goes to the begin script's stdin);
//! - a plain re-run succeeds and serves the new code.
//!
//! Also: a cut during a rollback's switch, a full disk (a small tmpfs mounted as `deploy_to`), an
//! archive corrupted on the host's disk while it is uploaded (the sha256 check), and a bit flipped
//! on the wire (SSH's MAC check kills the connection).
//!
//! Needs root (and CAP_SYS_ADMIN for the tmpfs). Timings: `--nocapture`.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use support::proxy::Proxy;
use support::stack::*;
use support::*;

/// How long the remote cleanup may take to give the lock back after a cut (it runs at the
/// script's next write, i.e. when the interrupted step finishes or prints).
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Every step of a single-host deploy, in order (prepare and switch run as one script; the
/// target has no migrate hooks, so settings and collectstatic run in the background while
/// migrate runs, and are waited for after it).
const DEPLOY_STEPS: &[&str] = &[
    "verify",
    "unpack",
    "shared",
    "virtualenv",
    "background",
    "migrate",
    "settings",
    "collectstatic",
    "configs",
    "nginx-check",
    "start-app",
    "migrate-check",
    "prepared",
    "check-lock",
    "switch",
    "reload-nginx",
    "health-check",
    "finish",
    "prune",
    "stop-old-app",
];

// ---------------------------------------------------------------------------------------------
// A stack whose target goes through the proxy.

struct Faulty {
    stack: Stack,
    proxy: Proxy,
}

impl Faulty {
    fn start() -> Faulty {
        let mut stack = Stack::start();
        let proxy = Proxy::start(stack.host.sshd.port);
        // The host key, trusted for the proxy's port too.
        let sshd = &stack.host.sshd;
        let known = stack.home.path().join("known_hosts");
        std::fs::write(
            &known,
            format!(
                "{}\n{}\n",
                sshd.known_hosts_line(),
                sshd.known_hosts_line_for(proxy.port)
            ),
        )
        .unwrap();
        let port = proxy.port;
        stack.set_options(|o| {
            o.hosts = vec![format!("{}@127.0.0.1:{port}", deploy_user().name)];
            o.known_hosts = Some(known);
        });
        Faulty { stack, proxy }
    }

    /// How shipit names the host in messages.
    fn host(&self) -> String {
        format!("{}@127.0.0.1:{}", deploy_user().name, self.proxy.port)
    }

    /// `shipit ARGS -v`, cutting every connection when a line of its stderr is `→ STEP`.
    fn cut_at(&self, args: &[&str], step: &str) -> Cut {
        let needle = format!("→ {step}");
        self.cut_when(args, &|line| line == needle)
    }

    /// `shipit ARGS -v`, cutting every connection at the first line of its stderr (trimmed)
    /// that `when` likes.
    fn cut_when(&self, args: &[&str], when: &(dyn Fn(&str) -> bool + Sync)) -> Cut {
        let mut fired = false;
        let run = self.watched(args, &mut |line, _| {
            if !fired && when(line.trim()) {
                fired = self.proxy.cut() > 0;
            }
        });
        Cut::new(run, fired)
    }

    /// `shipit deploy -v`, arming `arm` on the proxy once the upload is about to start (the
    /// begin script's `upload` step has begun: it asks for the archive next).
    fn deploy_arming(&self, arm: &(dyn Fn(&Proxy) + Sync)) -> Cut {
        let mut armed = false;
        let run = self.watched(&["deploy", "--target", TARGET], &mut |line, _| {
            if !armed && line.trim().starts_with("→ upload") {
                arm(&self.proxy);
                armed = true;
            }
        });
        let fired = armed && !self.proxy.armed();
        Cut::new(run, fired)
    }

    /// `shipit ARGS -v` ([`Stack::watched`]).
    fn watched(&self, args: &[&str], on_line: &mut (dyn FnMut(&str, u32) + Send)) -> Run {
        self.stack.watched(args, on_line)
    }

    /// Processes of this host's SSH sessions still running (the remote script and what it
    /// started), found by the `SSH_CONNECTION` sshd put in their environment.
    fn remote_processes(&self) -> Vec<u32> {
        let suffix = format!(" {}", self.stack.host.sshd.port);
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            let ours = environ.split(|b| *b == 0).any(|var| {
                std::str::from_utf8(var)
                    .is_ok_and(|v| v.starts_with("SSH_CONNECTION=") && v.ends_with(&suffix))
            });
            if ours {
                pids.push(pid);
            }
        }
        pids
    }

    /// Waits up to [`LOCK_WAIT`] until no remote script of this host runs any more (after a
    /// cut, the script and its cleanup run on until the cleanup ends), then for the lock;
    /// returns how long the lock took to go, if it went.
    fn settled(&self) -> Option<Duration> {
        let started = Instant::now();
        let quiet = wait_for(LOCK_WAIT, || {
            self.remote_processes().is_empty().then_some(())
        });
        assert!(
            quiet.is_some(),
            "remote processes still running {LOCK_WAIT:?} after the cut: {:?}\n{}",
            self.remote_processes(),
            self.state()
        );
        wait_for(Duration::from_secs(1), || {
            (!self.stack.locked()).then(|| started.elapsed())
        })
    }

    /// Everything about the host that a failure message should show.
    fn state(&self) -> String {
        let stack = &self.stack;
        format!(
            "current: {:?}\nreleases: {:?}\nlocked: {}\nlog: {:?}\nprograms:\n{}\nproxy: {:?}\n\
             nginx error.log (tail):\n{}\napp log (tail):\n{}",
            stack.current(),
            stack
                .releases()
                .iter()
                .map(|id| format!("{id}: {}", stack.state(id)))
                .collect::<Vec<_>>(),
            stack.locked(),
            stack.log().last(),
            stack.programs(),
            self.proxy.events(),
            tail(&stack.host.nginx.error_log(), 10),
            tail(&app_log(&stack.deploy_to()), 10),
        )
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A run of shipit that the test interrupted.
struct Cut {
    run: Run,
    /// Whether the fault was injected.
    fired: bool,
    /// The release id the run was deploying (from its `release ID: ...` line).
    release: Option<String>,
}

impl Cut {
    fn new(run: Run, fired: bool) -> Cut {
        let release = run.stderr.lines().find_map(|l| {
            l.strip_prefix("release ")
                .and_then(|r| r.split(':').next())
                .filter(|id| id.len() == 14)
                .map(str::to_string)
        });
        Cut {
            run,
            fired,
            release,
        }
    }
}

/// The release `current` points at, checked to be complete (unpacked, with its manifest).
fn current_release(stack: &Stack) -> String {
    let id = stack.current_id();
    let release = stack.deploy_to().join("releases").join(&id);
    for file in [".shipit/manifest.json", "manage.py", ".venv/bin/python"] {
        assert!(
            release.join(file).exists(),
            "`current` -> releases/{id}, which has no {file}"
        );
    }
    id
}

/// Waits until `live`'s app server is the only one supervisor runs.
fn only_app_of(f: &Faulty, live: &str) {
    let only = wait_for(Duration::from_secs(20), || {
        let status = f.stack.programs();
        let apps: Vec<&str> = status.lines().filter(|l| l.starts_with("hello.")).collect();
        (apps.len() == 1 && apps[0].starts_with(&program(live)) && apps[0].contains("RUNNING"))
            .then_some(())
    });
    assert!(
        only.is_some(),
        "expected only {} running under supervisor\n{}",
        program(live),
        f.state()
    );
}

/// The remote step at which the deploy log says the cleanup ran (`failed: STEP ...`).
fn failed_step(outcome: &str) -> Option<&str> {
    outcome
        .strip_prefix("failed: ")
        .map(|s| s.split(" (").next().unwrap_or(s))
}

fn git_add_big_file(stack: &Stack, rel: &str, bytes: usize, random: bool) {
    let path = stack.project.path(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut data = vec![0u8; bytes];
    if random {
        std::fs::File::open("/dev/urandom")
            .and_then(|mut r| r.read_exact(&mut data))
            .expect("read /dev/urandom");
    }
    std::fs::write(&path, data).unwrap();
    stack.project.commit_all(&format!("add {rel}"));
}

/// A 4 MB incompressible file: the archive takes a moment to upload, verify and unpack (and,
/// with shipit's unoptimised test build, a second or two to build).
fn add_big_random_file(stack: &Stack) {
    git_add_big_file(stack, "data/blob.bin", 4 << 20, true);
}

/// Changes the nginx site shipit renders (another `client_max_body_size`), so the deploy
/// installs, checks and reloads it.
fn change_site(stack: &Stack) {
    let listen = format!("listen = \"127.0.0.1:{}\"\n", stack.port);
    stack.project.edit_config(
        &listen,
        &format!("{listen}client_max_body_size = \"11m\"\n"),
    );
    stack.project.commit_all("another nginx site");
}

/// Changes the requirements file, so the deploy builds a new virtualenv.
fn change_requirements(stack: &Stack) {
    let rel = "requirements/deployment.txt";
    let text = stack.project.read(rel);
    stack
        .project
        .write(rel, &format!("{text}# a new virtualenv for this one\n"));
    stack.project.commit_all("touch the requirements");
}

// ---------------------------------------------------------------------------------------------
// Cutting a deploy at each step.

/// Deploys v1, makes `change` and a page change, deploys that while cutting at `step` ("upload":
/// mid-upload), checks the host, then re-runs the deploy.
fn cut_deploy_at(step: &str, change: fn(&Stack)) {
    let f = Faulty::start();
    let v1 = f.stack.deploy_release();
    f.stack.serves_release(&v1);
    let site = f.stack.host.nginx.sites_dir.join("hello.conf");
    let site_before = std::fs::read_to_string(&site).unwrap();
    change(&f.stack);
    f.stack.change_page("marker: after the cut");

    let deploy = ["deploy", "--target", TARGET];
    let cut = match step {
        "upload" => f.deploy_arming(&|proxy| proxy.cut_after_upstream_bytes(1 << 20)),
        // Once the step said it is building: mid-build, rather than at the step's first echo.
        "virtualenv" => f.cut_when(&deploy, &|line| line.starts_with("building virtualenv")),
        // The step's label names what it runs in the background.
        "background" => f.cut_when(&deploy, &|line| line.starts_with("→ background")),
        _ => f.cut_at(&deploy, step),
    };
    let run = &cut.run;
    assert!(
        cut.fired,
        "the cut at {step} never happened (exit {})\n{}",
        run.code, run.stderr
    );
    run.expect_code(3).says(&[
        &format!("error: {}: connection lost", f.host()),
        "hint: the connection was lost",
    ]);
    // A cut during the upload comes before the release is named (begin receives the archive).
    let new = match (step, cut.release.clone()) {
        ("upload", None) => String::new(),
        (_, Some(new)) => new,
        (_, None) => panic!("the run named no release\n{}", run.stderr),
    };

    // Every cut comes while a script runs on the host (the upload too, in begin): its trap
    // gives the lock back.
    let Some(released) = f.settled() else {
        panic!(
            "the lock was not given back within {LOCK_WAIT:?} of a cut at {step}\n{}",
            f.state()
        )
    };

    // Where the host ended up.
    let live = current_release(&f.stack);
    let log = f.stack.log();
    let last = log.last().expect("a deploy log").clone();
    let observed = if live == v1 {
        if step == "upload" {
            assert_eq!(
                f.stack.releases(),
                std::slice::from_ref(&v1),
                "a release dir was made although the upload never finished\n{}",
                f.state()
            );
            "nothing prepared (the upload never finished)".to_string()
        } else {
            // The cleanup ran at the cut step or a later one, and recorded it.
            assert_eq!(last[3], new, "{}", f.state());
            let at = failed_step(&last[5])
                .unwrap_or_else(|| panic!("last log line {last:?}\n{}", f.state()));
            let from = DEPLOY_STEPS.iter().position(|s| *s == step).unwrap();
            assert!(
                DEPLOY_STEPS[from..].contains(&at),
                "the cleanup ran at {at}, before the cut at {step}\n{}",
                f.state()
            );
            if f.stack.releases().contains(&new) {
                assert_eq!(f.stack.state(&new), "failed", "{}", f.state());
            }
            assert_eq!(
                std::fs::read_to_string(&site).unwrap(),
                site_before,
                "the previous nginx site was not restored\n{}",
                f.state()
            );
            format!("old release kept; the remote cleanup ran at `{at}`")
        }
    } else {
        // Only acceptable if the new release had been committed before the cut.
        assert_eq!(live, new, "{}", f.state());
        assert_eq!(last[3], new, "{}", f.state());
        assert_eq!(last[5], "ok", "{}", f.state());
        assert_eq!(f.stack.state(&new), "live", "{}", f.state());
        "new release live: it was committed before the cut".to_string()
    };
    f.stack.serves_release(&live);
    only_app_of(&f, &live);
    eprintln!(
        "[fault] cut at {step}: exit {} after {:.1}s; {observed}; lock given back within {:.1}s of shipit's exit",
        run.code,
        run.elapsed.as_secs_f64(),
        released.as_secs_f64()
    );

    // A plain re-run succeeds with the new code,
    // through the same proxy.
    let connections = f.proxy.connections();
    let rerun = f.stack.deploy(&[]);
    rerun.expect_code(0);
    assert!(f.proxy.connections() > connections);
    let v3 = rerun.release();
    let body = f.stack.serves_release(&v3);
    assert!(body.contains("<p>marker: after the cut</p>"), "{body}");
    assert!(!f.stack.locked());
    only_app_of(&f, &v3);
}

fn no_change(_: &Stack) {}

#[test]
fn cut_during_upload() {
    cut_deploy_at("upload", add_big_random_file);
}

#[test]
fn cut_at_verify() {
    cut_deploy_at("verify", add_big_random_file);
}

#[test]
fn cut_at_unpack() {
    cut_deploy_at("unpack", add_big_random_file);
}

#[test]
fn cut_at_virtualenv() {
    cut_deploy_at("virtualenv", change_requirements);
}

/// The cut comes as settings and collectstatic start in the background: the cleanup stops them.
#[test]
fn cut_at_background() {
    cut_deploy_at("background", no_change);
}

#[test]
fn cut_at_migrate() {
    cut_deploy_at("migrate", no_change);
}

#[test]
fn cut_at_collectstatic() {
    cut_deploy_at("collectstatic", no_change);
}

#[test]
fn cut_at_configs() {
    cut_deploy_at("configs", change_site);
}

#[test]
fn cut_at_nginx_check() {
    cut_deploy_at("nginx-check", change_site);
}

#[test]
fn cut_at_start_app() {
    cut_deploy_at("start-app", no_change);
}

#[test]
fn cut_at_switch() {
    cut_deploy_at("switch", no_change);
}

#[test]
fn cut_at_reload_nginx() {
    cut_deploy_at("reload-nginx", change_site);
}

#[test]
fn cut_at_health_check() {
    cut_deploy_at("health-check", no_change);
}

/// The switch script's cleanup (switch back to the previous release, stop the new app server)
/// also runs for a cut after the switch was committed: while `stop-old-app` waits for the
/// previous release's gunicorn to stop, the deploy is recorded `ok` and the lock is released,
/// yet the SIGPIPE at the step's next write switches `current` back to the release whose app
/// server was just stopped and stops the new one: nothing serves the site any more (502).
#[test]
fn cut_at_stop_old_app() {
    cut_deploy_at("stop-old-app", no_change);
}

/// The person deploying presses Ctrl-C while shipit waits for the previous app server to finish
/// its requests (`stop-old-app` can take up to `graceful_timeout`, 30 s by default). The switch
/// is committed: the step finishes and the new release keeps serving (a second Ctrl-C would
/// quit at once; the remote cleanup never switches back to the release being stopped).
#[test]
fn ctrl_c_during_stop_old_app_leaves_the_new_release_serving() {
    let f = Faulty::start();
    let v1 = f.stack.deploy_release();
    f.stack.change_page("marker: v2");
    let mut interrupted = false;
    let run = f.watched(&["deploy", "--target", TARGET], &mut |line, pid| {
        if !interrupted && line.trim() == "→ stop-old-app" {
            interrupted = StdCommand::new("kill")
                .args(["-INT", &pid.to_string()])
                .status()
                .is_ok_and(|s| s.success());
        }
    });
    assert!(interrupted, "{}", run.stderr);
    assert!(run.stderr.contains("interrupted"), "{}", run.stderr);
    f.settled();
    let live = current_release(&f.stack);
    assert_ne!(
        live,
        v1,
        "switched back to {v1} after it was retired\n{}",
        f.state()
    );
    f.stack.serves_release(&live);
    only_app_of(&f, &live);
}

/// Ctrl-C before the switch: the step running on the host finishes, then shipit abandons the
/// new release, gives the lock back and exits 130; the old release keeps serving, untouched.
#[test]
fn ctrl_c_before_the_switch_abandons_the_release_and_gives_the_lock_back() {
    let f = Faulty::start();
    let v1 = f.stack.deploy_release();
    f.stack.change_page("marker: v2");
    let mut interrupted = false;
    let run = f.watched(&["deploy", "--target", TARGET], &mut |line, pid| {
        if !interrupted && line.trim() == "→ verify" {
            interrupted = StdCommand::new("kill")
                .args(["-INT", &pid.to_string()])
                .status()
                .is_ok_and(|s| s.success());
        }
    });
    assert!(interrupted, "{}", run.stderr);
    run.expect_code(130)
        .says(&["interrupted", "released the lock"]);
    assert!(!f.stack.locked(), "the lock is still held");
    assert_eq!(current_release(&f.stack), v1);
    f.stack.serves_release(&v1);
    only_app_of(&f, &v1);
    let abandoned: Vec<String> = f
        .stack
        .releases()
        .into_iter()
        .filter(|r| *r != v1)
        .collect();
    for id in &abandoned {
        assert_eq!(f.stack.state(id), "failed", "{id}");
    }
}

// ---------------------------------------------------------------------------------------------
// Cutting a rollback.

fn cut_rollback_at(step: &str) {
    let f = Faulty::start();
    let v1 = f.stack.deploy_release();
    f.stack.change_page("marker: v2");
    let v2 = f.stack.deploy_release();
    f.stack.serves_release(&v2);
    only_app_of(&f, &v2);

    let cut = f.cut_at(&["rollback", "--target", TARGET], step);
    assert!(cut.fired, "the cut never happened\n{}", cut.run.stderr);
    cut.run
        .expect_code(3)
        .says(&[&format!("error: {}: connection lost", f.host())]);
    let released = f.settled();
    assert!(
        released.is_some(),
        "the lock was not given back within {LOCK_WAIT:?}\n{}",
        f.state()
    );
    let live = current_release(&f.stack);
    let last = f.stack.log().last().cloned().unwrap();
    let observed = if live == v2 {
        assert_eq!(last[2], "rollback", "{}", f.state());
        assert!(last[5].starts_with("failed: "), "{}", f.state());
        assert_eq!(f.stack.state(&v2), "live", "{}", f.state());
        format!("stayed on {v2}; the remote cleanup recorded `{}`", last[5])
    } else {
        assert_eq!(live, v1, "{}", f.state());
        assert!(last[5].starts_with("ok"), "{}", f.state());
        format!("rolled back to {v1}: committed before the cut")
    };
    f.stack.serves_release(&live);
    only_app_of(&f, &live);
    eprintln!(
        "[fault] rollback cut at {step}: {observed}; lock given back within {:.1}s of shipit's exit",
        released.unwrap().as_secs_f64()
    );

    // A plain re-run of the rollback (when it did not happen) succeeds.
    if live == v2 {
        let rerun = f.stack.rollback(&[]);
        rerun.expect_code(0);
        assert_eq!(rerun.json()["to"], v1.as_str(), "{}", rerun.stdout);
        let body = f.stack.serves_release(&v1);
        assert!(!body.contains("marker: v2"), "{body}");
        only_app_of(&f, &v1);
    }
    assert!(!f.stack.locked());
}

#[test]
fn cut_at_rollback_switch() {
    cut_rollback_at("switch");
}

/// The rollback twin of [`cut_at_stop_old_app`] (src/plan/rollback.rs builds the same cleanup).
#[test]
fn cut_at_rollback_stop_old_app() {
    cut_rollback_at("stop-old-app");
}

// ---------------------------------------------------------------------------------------------
// A full disk.

/// A tmpfs mounted over a directory, lazily unmounted on drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        mkdir_as_deploy(path);
        let user = deploy_user();
        let out = StdCommand::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!(
                "size={size},mode=0755,uid={},gid={}",
                user.uid, user.gid
            ))
            .arg("shipit-test")
            .arg(path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount -t tmpfs on {} failed (needs CAP_SYS_ADMIN): {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            path: path.to_path_buf(),
        }
    }

    /// Bytes available to the deploy user.
    fn available(&self) -> u64 {
        let out = StdCommand::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&self.path)
            .output()
            .expect("run df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df output")
    }

    /// Writes a filler file as deploy so that about `free` bytes stay available.
    fn fill_leaving(&self, free: u64) {
        let filler = self.path.join("filler");
        let _ = std::fs::remove_file(&filler);
        let mib = (self.available().saturating_sub(free)) >> 20;
        run_as_deploy_ok(&format!(
            "dd if=/dev/zero of={} bs=1M count={mib} status=none",
            shell_quote(&filler.display().to_string())
        ));
    }

    fn unfill(&self) {
        let _ = std::fs::remove_file(self.path.join("filler"));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = StdCommand::new("umount")
            .arg("-l")
            .arg(&self.path)
            .stderr(Stdio::null())
            .status();
    }
}

/// Asserts a failed deploy left the host on `live` and serving it, the lock released. With
/// `disk_full`, only `/health` is asked for: the index page writes to the database, which
/// cannot work on a full disk whatever shipit does.
fn still_on(f: &Faulty, live: &str, run: &Run, disk_full: bool) {
    assert_eq!(
        f.stack.current(),
        Some(format!("releases/{live}")),
        "{}\n{}",
        run.stderr,
        f.state()
    );
    if disk_full {
        f.stack
            .page("/health", |status, body| status == 200 && body == "ok");
    } else {
        f.stack.serves_release(live);
    }
    assert!(!f.stack.locked(), "the lock was left\n{}", f.state());
    only_app_of(f, live);
}

#[test]
fn a_full_disk_fails_cleanly_and_a_rerun_after_freeing_space_succeeds() {
    let f = Faulty::start();
    // `deploy_to` is an 80 MB filesystem: room for the virtualenv (~50 MB) and a few releases.
    let disk = Tmpfs::mount(&f.stack.deploy_to(), "80m");
    let v1 = f.stack.deploy_release();
    f.stack.serves_release(&v1);

    // 8 MB of static data: the archive stays small (zeros compress), but unpacking it takes
    // 8 MB and collectstatic copies it again.
    git_add_big_file(&f.stack, "pages/static/pages/big.bin", 8 << 20, false);
    f.stack.change_page("marker: needs room");

    // Room for the upload, not for the unpacked release.
    disk.fill_leaving(3 << 20);
    let run = f.stack.deploy(&[]);
    run.expect_code(1).says(&[
        &format!("{}: step `unpack` failed", f.host()),
        "No space left on device",
    ]);
    still_on(&f, &v1, &run, true);
    assert_eq!(f.stack.releases(), vec![v1.clone()], "{}", f.state());
    eprintln!("[fault] full disk at unpack:\n{}", tail(&run.stderr, 8));

    // Room for the release, not for collectstatic's copy of it.
    disk.fill_leaving(13 << 20);
    let run = f.stack.deploy(&[]);
    run.expect_code(1).says(&[
        &format!("{}: step `collectstatic` failed", f.host()),
        "No space left on device",
    ]);
    still_on(&f, &v1, &run, true);
    let failed = f.stack.releases().into_iter().find(|id| *id != v1).unwrap();
    assert_eq!(f.stack.state(&failed), "failed");
    eprintln!(
        "[fault] full disk at collectstatic:\n{}",
        tail(&run.stderr, 8)
    );

    // Space again: the old release serves, and a plain re-run deploys.
    disk.unfill();
    f.stack.serves_release(&v1);
    let v2 = f.stack.deploy_release();
    let body = f.stack.serves_release(&v2);
    assert!(body.contains("<p>marker: needs room</p>"), "{body}");
    assert_eq!(
        f.stack
            .page("/static/pages/big.bin", |status, _| status == 200)
            .len(),
        8 << 20
    );
    only_app_of(&f, &v2);
    drop(disk);
}

// ---------------------------------------------------------------------------------------------
// Corruption.

/// The archive is damaged on the host's disk while it is being uploaded (the proxy holds the
/// upload still halfway so the test can flip a byte of the part already written): the sha256
/// check refuses it before anything is unpacked, and the next deploy uploads it again.
#[test]
fn an_archive_damaged_on_the_host_is_refused_by_the_checksum() {
    let f = Faulty::start();
    let v1 = f.stack.deploy_release();
    add_big_random_file(&f.stack);
    f.stack.change_page("marker: checked");
    let archives = f.stack.deploy_to().join(".shipit/archives");

    let cut = std::thread::scope(|scope| {
        let damage = scope.spawn(|| {
            // Resumes the upload when this thread ends, even by a failed assertion.
            struct Resume<'a>(&'a Proxy);
            impl Drop for Resume<'_> {
                fn drop(&mut self) {
                    self.0.resume();
                }
            }
            let _resume = Resume(&f.proxy);
            let paused = wait_for(Duration::from_secs(60), || f.proxy.paused().then_some(()));
            assert!(paused.is_some(), "the upload never reached the pause");
            // What sshd already received is written out by the remote `head`.
            let part = wait_for(Duration::from_secs(10), || {
                list_dir(&archives)
                    .into_iter()
                    .find(|n| n.ends_with(".part"))
                    .map(|n| archives.join(n))
                    .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 512 << 10))
            });
            let part = part.expect("a partly written .part upload");
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&part)
                .unwrap();
            let mut byte = [0u8; 1];
            file.seek(SeekFrom::Start(256 << 10)).unwrap();
            file.read_exact(&mut byte).unwrap();
            file.seek(SeekFrom::Start(256 << 10)).unwrap();
            file.write_all(&[byte[0] ^ 0x40]).unwrap();
        });
        let cut = f.deploy_arming(&|proxy| proxy.pause_after_upstream_bytes(2 << 20));
        damage.join().expect("damaging the upload failed");
        cut
    });
    assert!(cut.fired, "{}", cut.run.stderr);
    cut.run.expect_code(1).says(&[
        &format!("{}: step `verify` failed", f.host()),
        "the uploaded archive is corrupt: sha256",
    ]);
    still_on(&f, &v1, &cut.run, false);
    assert_eq!(f.stack.releases(), vec![v1.clone()]);
    // The damaged archive is gone, so the next deploy cannot trust it.
    let sha = cut
        .run
        .stderr
        .split("expected ")
        .nth(1)
        .map(|s| s.chars().take(64).collect::<String>())
        .expect("the message names the expected sha256");
    assert!(
        list_dir(&archives).iter().all(|n| !n.contains(&sha)),
        "{:?}",
        list_dir(&archives)
    );
    eprintln!("[fault] damaged upload:\n{}", tail(&cut.run.stderr, 6));

    let rerun = f.stack.deploy(&[]);
    rerun.expect_code(0);
    assert_ne!(
        rerun.json()["usage"]["bytes_uploaded"],
        0,
        "{}",
        rerun.stdout
    );
    let body = f.stack.serves_release(&rerun.release());
    assert!(body.contains("<p>marker: checked</p>"), "{body}");
}

/// A bit flipped on the wire during the upload: SSH's MAC check makes sshd drop the connection.
/// shipit reports the lost connection; nothing is prepared or switched; the lock that the
/// finished `begin` script took stays until `--break-lock`.
#[test]
fn a_bit_flipped_on_the_wire_kills_the_connection_and_nothing_switches() {
    let f = Faulty::start();
    let v1 = f.stack.deploy_release();
    add_big_random_file(&f.stack);
    f.stack.change_page("marker: flipped");

    let cut = f.deploy_arming(&|proxy| proxy.corrupt_after_upstream_bytes(1 << 20));
    assert!(cut.fired, "{}", cut.run.stderr);
    cut.run
        .expect_code(3)
        .says(&[&format!("error: {}: ", f.host())]);
    let sshd_log = f.stack.host.sshd.log();
    assert!(
        sshd_log.contains("message authentication code incorrect")
            || sshd_log.contains("Corrupted MAC"),
        "sshd did not report a MAC failure:\n{}",
        tail(&sshd_log, 15)
    );
    assert_eq!(f.stack.current(), Some(format!("releases/{v1}")));
    assert_eq!(f.stack.releases(), vec![v1.clone()]);
    f.stack.serves_release(&v1);
    only_app_of(&f, &v1);
    eprintln!(
        "[fault] flipped bit: {}; lock {}",
        cut.run
            .stderr
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap_or("?"),
        if f.stack.locked() {
            "left held"
        } else {
            "released"
        }
    );

    // The lock is left behind, held by the sshd session that saw the bad MAC; under load that
    // process can take a moment to go, and only then is the lock dead for `--break-lock`.
    let mut rerun = f.stack.deploy(&[]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while rerun.code == 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(300));
        rerun = f.stack.deploy(&["--break-lock"]);
    }
    rerun.expect_code(0);
    let body = f.stack.serves_release(&rerun.release());
    assert!(body.contains("<p>marker: flipped</p>"), "{body}");
}
