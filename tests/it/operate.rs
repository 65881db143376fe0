//! The operator's verbs against real projects and the real stack: `init` on a fresh
//! `django-admin startproject` and on the example, `config`, `completions`, `lock`, `audit` and
//! `run`. The stack tests need root (they start sshd, nginx and supervisord).

use support::project::{project, startproject};
use support::*;

#[test]
fn init_sets_up_a_fresh_startproject_that_builds() {
    let p = startproject("mysite");
    let init = Run::of(p.shipit().arg("init"));
    init.expect_code(0)
        .says(&[
            "wrote shipit.toml",
            "wrote conf/deploy.map",
            "wrote requirements.in",
        ])
        .prints(&[
            "uv pip compile requirements.in -o requirements.txt",
            "shipit build -t production",
            "shipit deploy -t production",
        ]);
    assert!(p
        .read("conf/deploy.map")
        .contains("mysite/selected_settings.py"));
    let config = p.read("shipit.toml");
    assert!(
        config.contains("settings_module = \"mysite.selected_settings\""),
        "{config}"
    );
    assert!(
        config.contains("wsgi_app = \"mysite.wsgi:application\""),
        "{config}"
    );

    // Before the requirements are compiled, a deploy says what is missing.
    Run::of(p.shipit().args(["deploy", "-t", "production", "--dry-run"]))
        .expect_code(2)
        .says_error(&["requirements.txt"]);
    // The first of the next commands, for real.
    let compiled = std::process::Command::new("uv")
        .args([
            "pip",
            "compile",
            "-q",
            "requirements.in",
            "-o",
            "requirements.txt",
        ])
        .current_dir(&p.root)
        .output()
        .unwrap();
    assert!(compiled.status.success(), "{compiled:?}");
    let built = Run::of(p.shipit().args(["build", "-o"]).arg(p.out("a.tar.gz")));
    built.expect_code(0);
    Run::of(p.shipit().args(["deploy", "-t", "production", "--dry-run"])).expect_code(0);
    let archive = project::Archive::open(&p.out("a.tar.gz"));
    assert!(archive.contains("mysite/selected_settings.py"));
    let selector = archive.text("mysite/selected_settings.py");
    assert!(selector.contains("from .settings import *"), "{selector}");
    assert!(archive.contains("requirements.txt"));

    // The selector really imports the project's settings.
    let unpacked = p.out("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let tar = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(p.out("a.tar.gz"))
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(tar.success());
    let out = std::process::Command::new(p.sandbox.join(".django/bin/python"))
        .args(["-c", "import django; django.setup(); from django.conf import settings; print(settings.SHIPIT_TARGET, settings.ROOT_URLCONF)"])
        .env("DJANGO_SETTINGS_MODULE", "mysite.selected_settings")
        .current_dir(&unpacked)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "production mysite.urls",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Run again: nothing is replaced, and .shipit/ stays ignored once.
    assert!(
        init.stderr.contains("added .shipit/ to .gitignore"),
        "{}",
        init.stderr
    );
    p.write("shipit.toml", &format!("{config}\n# mine\n"));
    Run::of(p.shipit().arg("init"))
        .expect_code(0)
        .says(&["skip shipit.toml (exists)", "skip conf/deploy.map (exists)"]);
    assert!(p.read("shipit.toml").ends_with("# mine\n"));
    assert_eq!(p.read(".gitignore").matches(".shipit/").count(), 1);
}

#[test]
fn init_on_the_example_skips_what_exists() {
    let p = project();
    let before = p.read("shipit.toml");
    let init = Run::of(p.shipit().arg("init"));
    init.expect_code(0)
        .says(&["skip shipit.toml (exists)", "skip conf/deploy.map (exists)"])
        .prints(&["environment deployment", "requirements/deployment.txt"]);
    assert_eq!(p.read("shipit.toml"), before);
    assert!(!p.path("requirements.in").exists());
}

#[test]
fn init_outside_a_django_project_says_so() {
    let p = project();
    std::fs::remove_file(p.path("manage.py")).unwrap();
    Run::of(p.shipit().arg("init"))
        .expect_code(2)
        .says_error(&["no manage.py"]);
    assert!(p.path("shipit.toml").exists());
}

#[test]
fn config_shows_defaults_variables_templates_and_sources_with_secrets_redacted() {
    let p = project();
    let config = p.read("shipit.toml");
    p.write(
        "shipit.toml",
        &config.replace(
            "[targets.local.vars]\n",
            "[targets.local.env]\nMODE = \"calm\"\n\n[targets.local.secrets]\nAPI_KEY = { env = \"SHIPIT_TEST_API_KEY\" }\n\n[targets.local.vars]\n",
        ),
    );
    let shown = Run::of(
        p.shipit()
            .args(["config", "-t", "local"])
            .env("SHIPIT_TEST_API_KEY", "hunter2-very-secret"),
    );
    shown.expect_code(0).prints(&[
        "keep_releases",
        "5",
        "default",
        "health.path",
        "server_name",
        "targets.local.vars.server_name",
        "builtin:selector.py.j2",
        "hello/settings/selected.py",
        "MODE",
        "calm",
        "API_KEY",
        "[REDACTED]",
        "environment variable SHIPIT_TEST_API_KEY",
        "release_dir",
    ]);
    assert!(!shown.stdout.contains("hunter2"), "{}", shown.stdout);
    assert!(
        !shown.stdout.contains("staging.example.com"),
        "only the target asked for"
    );

    let json = Run::of(
        p.shipit()
            .args(["config", "--json"])
            .env("SHIPIT_TEST_API_KEY", "hunter2-very-secret"),
    );
    json.expect_code(0);
    assert!(!json.stdout.contains("hunter2"));
    let value = json.json();
    let local = &value["targets"]["local"];
    assert_eq!(local["settings"]["keep_releases"]["value"], 5);
    assert_eq!(local["settings"]["keep_releases"]["source"], "default");
    assert_eq!(local["settings"]["deploy_to"]["source"], "shipit.toml");
    assert_eq!(local["variables"]["listen"]["value"], 8080);
    assert_eq!(local["env"]["API_KEY"]["value"], "[REDACTED]");
    assert_eq!(
        value["targets"]["staging"]["variables"]["server_name"]["value"],
        "staging.example.com"
    );
    assert_eq!(value["project"]["python"]["value"], "/usr/bin/python3");
    assert_eq!(value["project"]["wsgi_app"]["source"], "default");
}

#[test]
fn completions_complete_subcommands_in_a_real_bash() {
    let p = project();
    let script = Run::of(p.shipit().args(["completions", "bash"]));
    script.expect_code(0);
    let file = p.out("shipit.bash");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, &script.stdout).unwrap();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(shipit ro); COMP_CWORD=1; _shipit shipit ro shipit; echo \"${{COMPREPLY[@]}}\"",
            file.display()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "rollback");
    let zsh = Run::of(p.shipit().args(["completions", "zsh"]));
    assert!(zsh.expect_code(0).stdout.starts_with("#compdef shipit"));
    let fish = Run::of(p.shipit().args(["completions", "fish"]));
    assert!(fish.expect_code(0).stdout.contains("complete -c shipit"));
}

#[test]
fn a_held_lock_refuses_every_run_until_released_and_lock_wait_waits_for_it() {
    use std::io::{BufRead, BufReader};
    use support::stack::{Stack, TARGET};
    let stack = Stack::start();
    let first = stack.deploy_release();
    let lock = |args: &[&str]| {
        let mut all = vec!["lock", "-t", TARGET];
        all.extend_from_slice(args);
        stack.shipit(&all)
    };
    lock(&["status"]).expect_code(0).prints(&["unlocked"]);

    lock(&["acquire", "-m", "database maintenance until 14:00"])
        .expect_code(0)
        .prints(&["locked test on 1 host: database maintenance until 14:00"]);
    // Held across sessions: this shipit and its SSH session are gone, the lock is not.
    assert!(stack.locked());
    lock(&["status"]).expect_code(0).prints(&[
        "held with `shipit lock acquire`",
        "database maintenance until 14:00",
        "tester@",
    ]);
    let status = lock(&["status", "--json"]);
    let json = status.json();
    assert_eq!(json["hosts"][0]["held"], true, "{json}");
    assert_eq!(json["hosts"][0]["live"], true, "{json}");

    // Every run is refused, naming the holder and why; a plain --break-lock too.
    stack.deploy(&[]).expect_code(4).says_error(&[
        "locked with `shipit lock acquire`",
        "database maintenance until 14:00",
        "shipit lock -t TARGET release",
    ]);
    stack.deploy(&["--break-lock"]).expect_code(4);
    stack.rollback(&[]).expect_code(4);
    lock(&["acquire", "-m", "again"]).expect_code(4);
    assert_eq!(stack.current_id(), first);
    // `check` names the hold and how to free it.
    let check = stack.shipit(&["check", "-t", TARGET]);
    check.expect_code(1);
    let line = check
        .stdout
        .lines()
        .chain(check.stderr.lines())
        .find(|l| l.contains("lock") && l.contains("database maintenance"))
        .unwrap_or_else(|| panic!("no lock line:\n{}\n{}", check.stdout, check.stderr))
        .to_string();
    assert!(line.contains("shipit lock release"), "{line}");

    // A deploy that waits for the lock goes on once it is released.
    stack.change_page("after the freeze");
    let mut waiting = stack
        .project
        .shipit_with_home(stack.home.path())
        .args(["-v", "deploy", "--target", TARGET, "--lock-wait", "300"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = String::new();
    let mut lines = BufReader::new(waiting.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("waiting up to 300s for the lock held") {
            break;
        }
    }
    assert!(seen.contains("database maintenance until 14:00"), "{seen}");
    lock(&["release"])
        .expect_code(0)
        .prints(&["released the lock held by tester@"]);
    for line in lines {
        seen.push_str(&line.unwrap());
        seen.push('\n');
    }
    assert!(waiting.wait().unwrap().success(), "{seen}");
    let second = stack.current_id();
    assert_ne!(second, first);
    assert!(stack.serves_release(&second).contains("after the freeze"));
    assert!(!stack.locked());
    lock(&["release"])
        .expect_code(0)
        .prints(&["was not locked"]);

    // The deploy log records who held the lock and why.
    let log = stack.log();
    assert!(
        log.iter()
            .any(|l| l[2] == "lock" && l[5] == "acquired: database maintenance until 14:00"),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l[2] == "lock" && l[5].starts_with("released: ")),
        "{log:?}"
    );
}

#[test]
fn lock_release_refuses_a_running_deploys_lock() {
    use support::stack::{Stack, TARGET};
    let stack = Stack::start();
    stack.deploy_release();
    // A lock whose holder is alive: this test process.
    let lock = stack.deploy_to().join(".shipit/lock");
    mkdir_as_deploy(&lock);
    write_as_deploy(
        &lock.join("info"),
        format!(
            "token=t\nby=carol@laptop\nsince=2026-01-01T00:00:00Z\nop=deploy\nrelease=20260101000000\nholder_pid={}\nholder_start={}\n",
            std::process::id(),
            start_time(std::process::id())
        ),
    );
    stack
        .shipit(&["lock", "-t", TARGET, "release"])
        .expect_code(4)
        .says_error(&["carol@laptop", "still running"]);
    assert!(lock.exists());
    stack
        .shipit(&["lock", "-t", TARGET, "status"])
        .expect_code(0)
        .prints(&["held by a running deploy"]);
}

/// Field 22 of /proc/PID/stat: what the lock records as the holder's start time.
fn start_time(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(19).unwrap().to_string()
}

#[test]
fn audit_merges_the_logs_of_every_host_by_time() {
    use std::io::Write;
    use support::fleet::TwoHosts;
    use support::stack::TARGET;
    let mut two = TwoHosts::start();
    two.add_target_toml("migrate = \"each-host\"\n");
    let stack = &two.stack;
    let id1 = stack.deploy_ok()["release"].as_str().unwrap().to_string();
    stack.change_page("second");
    let id2 = stack.deploy_ok()["release"].as_str().unwrap().to_string();
    stack.rollback(&[]).expect_code(0);
    // An entry only B has, older than everything else: merged first, under B's name.
    let mut b_log = std::fs::OpenOptions::new()
        .append(true)
        .open(two.b_to.join(".shipit/log"))
        .unwrap();
    writeln!(
        b_log,
        "2001-01-01T00:00:00Z\tolder@elsewhere\tdeploy\t20010101000000\tfeedbeef\tok"
    )
    .unwrap();

    let run = stack.shipit(&["audit", "-t", TARGET, "--json"]);
    run.expect_code(0);
    let json = run.json();
    let entries = json["entries"].as_array().unwrap();
    let field = |e: &serde_json::Value, k: &str| e[k].as_str().unwrap().to_string();
    assert_eq!(field(&entries[0], "host"), two.b_spec, "{json}");
    assert_eq!(field(&entries[0], "who"), "older@elsewhere");
    let times: Vec<String> = entries.iter().map(|e| field(e, "time")).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "merged by time");
    for spec in [&two.a_spec, &two.b_spec] {
        let mine: Vec<(String, String, String)> = entries
            .iter()
            .filter(|e| field(e, "host") == **spec && field(e, "who").starts_with("tester@"))
            .map(|e| (field(e, "action"), field(e, "release"), field(e, "outcome")))
            .collect();
        assert_eq!(
            mine,
            [
                ("deploy".to_string(), id1.clone(), "ok".to_string()),
                ("deploy".to_string(), id2.clone(), "ok".to_string()),
                (
                    "rollback".to_string(),
                    id1.clone(),
                    format!("ok (from {id2})")
                ),
            ],
            "{spec}: {json}"
        );
    }
    let revision = stack.project.head();
    assert!(entries
        .iter()
        .any(|e| field(e, "release") == id2 && field(e, "revision") == revision));
    // Each line names the shipit that wrote it, as `shipit --version` does; the older line
    // written without it has none.
    let version = std::process::Command::new(support::shipit_bin())
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8(version.stdout).unwrap();
    let long = version.trim().strip_prefix("shipit ").unwrap();
    for e in entries {
        let expected = if field(e, "who") == "older@elsewhere" {
            ""
        } else {
            long
        };
        assert_eq!(field(e, "shipit"), expected, "{json}");
    }

    let text = stack.shipit(&["audit", "-t", TARGET, "-n", "2"]);
    text.expect_code(0).prints(&[
        "TIME",
        "SHIPIT",
        "OUTCOME",
        "rollback",
        &format!("{}   ok (from {id2})", env!("CARGO_PKG_VERSION")),
    ]);
    assert_eq!(text.stdout.lines().count(), 3, "{}", text.stdout);
}

#[test]
fn run_streams_each_hosts_output_in_the_live_release_and_propagates_the_exit_status() {
    use support::fleet::TwoHosts;
    use support::stack::TARGET;
    let mut two = TwoHosts::start();
    two.stack
        .project_toml
        .push_str("\n[aliases]\nwhere = \"echo release=$SHIPIT_RELEASE\"\n");
    two.add_target_toml(
        "migrate = \"each-host\"\nenv = { MODE = \"calm\" }\nsecrets = { API_KEY = { command = \"echo hunter2-very-secret\" } }\n",
    );
    let stack = &two.stack;
    let id = stack.deploy_ok()["release"].as_str().unwrap().to_string();
    let run = |args: &[&str]| {
        let mut all = vec!["run", "-t", TARGET];
        all.extend_from_slice(args);
        stack.shipit(&all)
    };

    // The release's directory, environment, settings and virtualenv, on every host, prefixed.
    let shown = run(&[
        "--",
        "echo \"$MODE $SHIPIT_RELEASE $DJANGO_SETTINGS_MODULE $(basename \"$(pwd -P)\")\"; python -c 'import gunicorn, sys; print(sys.prefix)'; echo key=$API_KEY",
    ]);
    shown.expect_code(0);
    for spec in [&two.a_spec, &two.b_spec] {
        let lines: Vec<&str> = shown
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{spec}: ")))
            .collect();
        assert_eq!(lines.len(), 3, "{}", shown.stdout);
        assert_eq!(lines[0], format!("calm {id} hello.settings.selected {id}"));
        assert!(
            lines[1].ends_with(&format!("/releases/{id}/.venv")),
            "{}",
            lines[1]
        );
        assert_eq!(lines[2], "key=[REDACTED]");
    }
    assert!(!shown.stdout.contains("hunter2"));

    // One host: no prefix. Several words are one command and its arguments, as they are.
    let one = run(&[
        "--hosts",
        &two.b_spec,
        "--",
        "printf",
        "%s|",
        "a b",
        "$HOME",
    ]);
    one.expect_code(0);
    assert_eq!(one.stdout, "a b|$HOME|\n");
    run(&["--primary", "--", "where"])
        .expect_code(0)
        .prints(&[&format!("release={id}")]);

    // The status of the first host where the command failed; the others are named.
    let a_base = stack.host.base.path().to_path_buf();
    std::fs::write(two.b.base.path().join("only-on-b"), "").unwrap();
    let b_fails = run(&[
        "--",
        &format!("test ! -e {}/only-on-b || exit 7", a_base.display()),
    ]);
    b_fails
        .expect_code(7)
        .says_error(&[&format!("{}: the command exited with status 7", two.b_spec)]);
    let both = run(&["--json", "--", "echo out; exit 3"]);
    both.expect_code(3).says_error(&[
        &format!("{}: the command exited with status 3", two.a_spec),
        &format!("also failed on {}", two.b_spec),
    ]);
    let json = both.json();
    assert_eq!(json["hosts"][1]["status"], 3, "{json}");
    assert_eq!(
        json["hosts"][1]["output"],
        serde_json::json!(["out"]),
        "{json}"
    );

    run(&["--hosts", "nowhere", "--", "true"])
        .expect_code(2)
        .says_error(&["has no host nowhere"]);
}

/// `shipit ARGS` under `script(1)`: on a pseudo-terminal, as a person at a terminal runs it. The
/// test types into it and reads what it shows.
struct Terminal {
    child: std::process::Child,
    input: std::process::ChildStdin,
    seen: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Terminal {
    fn start(stack: &support::stack::Stack, args: &[&str]) -> Terminal {
        use std::io::Read;
        use std::process::Stdio;
        let shipit = stack.project.shipit_with_home(stack.home.path());
        let mut line = shell_quote(&shipit.get_program().to_string_lossy());
        for arg in shipit
            .get_args()
            .chain(args.iter().map(std::ffi::OsStr::new))
        {
            line.push(' ');
            line.push_str(&shell_quote(&arg.to_string_lossy()));
        }
        let mut script = std::process::Command::new("script");
        script.args(["-qfec", &line, "/dev/null"]);
        for (name, value) in shipit.get_envs() {
            match value {
                Some(value) => script.env(name, value),
                None => script.env_remove(name),
            };
        }
        script.env("TERM", "xterm");
        if let Some(dir) = shipit.get_current_dir() {
            script.current_dir(dir);
        }
        let mut child = script
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("script(1) runs");
        let input = child.stdin.take().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut output = child.stdout.take().unwrap();
        let sink = seen.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = output.read(&mut buffer) {
                if n == 0 {
                    return;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        Terminal { child, input, seen }
    }

    /// Waits until the terminal shows `needle` after what was seen so far was `from` long;
    /// returns where it ends.
    fn expect(&self, from: usize, needle: &str) -> usize {
        wait_for(std::time::Duration::from_secs(60), || {
            let seen = self.seen.lock().unwrap();
            seen[from.min(seen.len())..]
                .find(needle)
                .map(|at| from + at + needle.len())
        })
        .unwrap_or_else(|| {
            panic!(
                "the terminal never showed {needle:?}; it showed:\n{}",
                self.seen.lock().unwrap()
            )
        })
    }

    fn type_line(&mut self, text: &str) {
        use std::io::Write;
        self.input.write_all(text.as_bytes()).unwrap();
        self.input.write_all(b"\r").unwrap();
        self.input.flush().unwrap();
    }

    /// The pseudo-terminal shipit runs on (its stdin), to resize it as a window would be.
    fn tty(&self) -> String {
        wait_for(std::time::Duration::from_secs(30), || {
            let children =
                std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.child.id()))
                    .ok()?;
            let pid = children.split_whitespace().next()?.to_string();
            let tty = std::fs::read_link(format!("/proc/{pid}/fd/0")).ok()?;
            let tty = tty.to_string_lossy().to_string();
            tty.starts_with("/dev/pts/").then_some(tty)
        })
        .expect("shipit runs on a pseudo-terminal")
    }

    fn wait(mut self) -> i32 {
        drop(self.input);
        let status = self.child.wait().unwrap();
        status.code().unwrap_or(-1)
    }
}

#[test]
fn console_is_an_interactive_django_shell_on_a_real_pty_that_follows_resizes() {
    use support::stack::{Stack, TARGET};
    let stack = Stack::start();
    let id = stack.deploy_release();

    let mut console = Terminal::start(&stack, &["console", "-t", TARGET]);
    let mut at = console.expect(0, ">>> ");
    console
        .type_line("from django.conf import settings; print('release', settings.SHIPIT_RELEASE)");
    at = console.expect(at, &format!("release {id}"));
    at = console.expect(at, ">>> ");
    console.type_line("import os; print('size', tuple(os.get_terminal_size()))");
    at = console.expect(at, "size (80, 24)");
    // The window is resized: the remote pty follows.
    let tty = console.tty();
    let resized = std::process::Command::new("stty")
        .args(["-F", &tty, "rows", "33", "cols", "111"])
        .status()
        .unwrap();
    assert!(resized.success());
    let mut seen_size = at;
    wait_for(std::time::Duration::from_secs(30), || {
        console.type_line("print('size', tuple(os.get_terminal_size()))");
        let seen = console.seen.lock().unwrap().clone();
        match seen[seen_size..].find("size (111, 33)") {
            Some(found) => Some(found),
            None => {
                seen_size = seen.len();
                std::thread::sleep(std::time::Duration::from_millis(300));
                None
            }
        }
    })
    .expect("the remote terminal never took the new size");
    console.type_line("exit()");
    assert_eq!(console.wait(), 0);

    // The command's exit status is shipit's.
    let status = Terminal::start(&stack, &["run", "-t", TARGET, "-i", "--", "exit 9"]).wait();
    assert_eq!(status, 9);
    // The script each console uploaded removed itself.
    let home = stack.shipit(&["run", "-t", TARGET, "--", "ls -a \"$HOME\""]);
    home.expect_code(0);
    assert!(!home.stdout.contains(".shipit-console-"), "{}", home.stdout);
}

#[test]
fn pruning_on_a_terminal_asks_first_and_no_changes_nothing() {
    use support::stack::{Stack, TARGET};
    let stack = Stack::start();
    stack.deploy_release();
    stack.change_page("second");
    stack.deploy_release();
    stack.change_page("third");
    stack.deploy_release();
    let before = stack.releases();
    assert_eq!(before.len(), 3);
    let prune = ["releases", "-t", TARGET, "--prune", "--keep", "1"];

    let mut asked = Terminal::start(&stack, &prune);
    asked.expect(0, "[y/N]");
    asked.type_line("n");
    assert_eq!(asked.wait(), 5);
    assert_eq!(stack.releases(), before);
    assert!(!stack.locked());

    let mut asked = Terminal::start(&stack, &prune);
    let at = asked.expect(0, "remove 1 release(s) of test");
    asked.expect(at, "[y/N]");
    asked.type_line("y");
    assert_eq!(asked.wait(), 0);
    assert_eq!(stack.releases(), before[1..]);
}
