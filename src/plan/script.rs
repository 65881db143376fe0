//! A remote script: the shell library of `templates/remote/` (see [`crate::remote::library`]), a preamble of quoted
//! variables, and one-line step calls; plus the parser for the marker lines it prints.
//!
//! One script is one SSH exec, however many steps it has, so the number of round trips does not
//! grow with the work (Mina's approach). The step runner, the markers and the cleanup on failure
//! or on a lost connection are shell functions in the library; Rust only renders values, quoted
//! by [`super::quote`], and calls.

use super::quote;
use super::step::{Cleanup, Step};
use crate::remote::library;
use crate::remote::preamble::Preamble;
use crate::remote::protocol::job_name;
#[cfg(test)]
use crate::remote::protocol::{parse_line, Event};

/// One part of a script: steps that share what to do when one of them fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    pub(crate) steps: Vec<Step>,
    pub(crate) cleanup: Cleanup,
}

/// A script for one host: variables, then parts in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Script {
    /// Marker nonce; random per run.
    pub(crate) nonce: String,
    /// Variable assignments run before the first step (values quoted when rendered).
    pub(crate) vars: Preamble,
    /// The parts in order.
    pub(crate) parts: Vec<Part>,
    /// Whether the script asks shipit for more calls after its last part (see
    /// [`Script::continued`]) instead of ending there.
    pub(crate) continues: bool,
}

impl Script {
    /// A script of one part.
    pub(crate) fn new(
        nonce: impl Into<String>,
        vars: Preamble,
        steps: Vec<Step>,
        cleanup: Cleanup,
    ) -> Script {
        Script {
            nonce: nonce.into(),
            vars,
            parts: vec![Part { steps, cleanup }],
            continues: false,
        }
    }

    /// This script, asking shipit for more after its last part (`shipit_continue`, event
    /// [`crate::remote::protocol::Event::Next`]): shipit answers with the calls of a script of the same nonce, made from
    /// what this one reported, and they run in the same exec. Used when a deploy has a single
    /// host: its prepare and switch go on from its begin without another exec.
    pub(crate) fn continued(mut self) -> Script {
        self.continues = true;
        self
    }

    /// This script followed by `next`'s parts, in one exec, each part keeping its own cleanup,
    /// with a gate between them where the script asks shipit whether to go on (see
    /// `shipit_gate`). Used when a deploy has a single host: there is nobody to wait for between
    /// preparing and switching, so it saves a round trip and never leaves the lock held without
    /// a script, while Ctrl-C can still stop it before the switch.
    pub(crate) fn then(mut self, next: Script) -> Script {
        if let Some(last) = self.parts.last_mut() {
            last.steps.push(Step::Gate);
        }
        self.parts.extend(next.parts);
        self
    }

    /// Every step of the script, in order.
    fn steps(&self) -> impl Iterator<Item = &Step> {
        self.parts.iter().flat_map(|part| &part.steps)
    }

    /// The step the host reported as `id`, if it is one of this script's.
    pub(crate) fn step(&self, id: &str) -> Option<&Step> {
        self.steps().find(|step| step.id() == id)
    }

    /// The local archive, its size and the earlier builds a delta may be made against, of the
    /// script's [`Step::Upload`].
    pub(crate) fn upload(&self) -> Option<(&std::path::Path, u64, &[crate::delta::Base])> {
        self.steps().find_map(|step| match step {
            Step::Upload {
                archive,
                size,
                bases,
            } => Some((archive.as_path(), *size, bases.as_slice())),
            _ => None,
        })
    }

    /// Runs the rendered script in a real `sh` here and returns what it printed and the facts it
    /// reported (tests of the remote library).
    #[cfg(test)]
    pub(crate) fn run_for_facts(&self) -> (String, super::releases::Facts) {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(self.render())
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let facts = text
            .lines()
            .filter_map(|l| match parse_line(&self.nonce, l) {
                Event::Fact(k, v) => Some((k, v)),
                _ => None,
            })
            .collect();
        (text, facts)
    }

    /// The calls after the library: what differs from one script to another.
    pub(crate) fn render_calls(&self) -> String {
        let mut out = String::from("shipit_start\n");
        out.push_str(&format!(
            "SHIPIT_NONCE={}\nSHIPIT_JOB={}\n",
            quote(&self.nonce),
            job_name(&self.nonce)
        ));
        out.push_str(&self.vars.render());
        out.push_str("shipit_init\n");
        for part in &self.parts {
            out.push_str(&format!("SHIPIT_CLEANUP={}\n", part.cleanup.function()));
            for step in &part.steps {
                out.push_str(&format!(
                    "shipit_step {} {}\n",
                    quote(&step.id()),
                    step.call()
                ));
            }
        }
        out.push_str(if self.continues {
            "shipit_continue\n"
        } else {
            "shipit_done\n"
        });
        out
    }

    /// What shipit answers a script that asks for more (see [`Script::continued`]) to run
    /// this one: its size in bytes on a line, then its calls.
    pub(crate) fn continuation(&self) -> String {
        let calls = self.render_calls();
        format!("{}\n{calls}", calls.len())
    }

    /// The whole program, to be fed to `sh -s`: the library and the calls, [`packed`].
    ///
    /// The calls are wrapped in a function that is called with stdin from /dev/null, so a
    /// command that reads stdin cannot swallow the rest of the script.
    pub(crate) fn render(&self) -> String {
        format!(
            "# shipit remote script; generated, do not edit\n{}\nshipit_main 3<&0 </dev/null\nexit $?\n",
            packed(&self.body())
        )
    }

    /// What [`Script::render`] packs: the library, and the calls as `shipit_main`.
    fn body(&self) -> String {
        format!(
            "{}\nshipit_main() {{\n{}}}\n",
            library::sent(),
            self.render_calls()
        )
    }
}

/// `body` (shell that defines functions and sets variables) as the host's shell unpacks it:
/// gzip-compressed, base64 in one quoted word, evaluated. The library and the preamble's Python
/// are about 85 KB as text and 33 KB packed, and every exec sends them: on a real
/// link that is round trips of TCP slow start saved per exec. The word is part of the script's
/// text, so the shell has read it before anything runs (nothing is read from stdin, which stays
/// the channel's answers). Hosts need `base64` and `gzip` (coreutils and gzip, or BusyBox).
fn packed(body: &str) -> String {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(body.as_bytes())
        .expect("compressing into memory cannot fail");
    let bytes = gz.finish().expect("compressing into memory cannot fail");
    format!(
        "command -v base64 >/dev/null && command -v gzip >/dev/null || {{ echo 'shipit needs base64 and gzip on the host (coreutils and gzip, or BusyBox)'; exit 127; }}\n\
         eval \"$(printf %s '{}' | base64 -d | gzip -dc)\" || exit 1\n",
        super::base64(&bytes)
    )
}

/// The body a [`packed`] script carries (for the fake transport, which reads its calls).
#[cfg(test)]
pub(crate) fn unpacked(script: &str) -> Option<String> {
    use std::io::Read;
    let word = script.split("printf %s '").nth(1)?.split('\'').next()?;
    let bytes = super::decode_base64(word)?;
    let mut body = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut body)
        .ok()?;
    Some(body)
}

/// The script of `shipit console`: the library, the preamble and one call of `shipit_console`,
/// without step markers (it runs on a terminal a person reads), its stdin the terminal. Its exit
/// status is the command's.
pub(crate) fn console(vars: &Preamble, command: &str) -> String {
    let mut out = format!(
        "# shipit console script; generated, do not edit\n{}\n",
        library::sent()
    );
    out.push_str(&vars.render());
    out.push_str(&format!(
        "shipit_init\nshipit_console {}\nexit $?\n",
        quote(command)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::step::HookPhase;
    use crate::plan::Phase;
    use std::process::Command;

    fn hook(command: &str) -> Step {
        Step::Hook {
            phase: HookPhase::BeforeMigrate,
            index: 0,
            command: command.into(),
            once: false,
        }
    }

    fn vars(dir: &str) -> Preamble {
        crate::resolve::test_vars(dir)
    }

    fn run(script: &Script) -> (i32, Vec<Event>) {
        let out = Command::new("sh")
            .arg("-c")
            .arg(script.render())
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let events = text.lines().map(|l| parse_line(&script.nonce, l)).collect();
        (out.status.code().unwrap(), events)
    }

    #[test]
    fn a_continued_script_runs_what_shipit_sends_next_or_gives_the_lock_back() {
        let dir = tempfile::tempdir().unwrap();
        let vars = vars(dir.path().to_str().unwrap());
        let begin = Script::new(
            "n9",
            vars.clone(),
            vec![Step::Layout, Step::Lock],
            Cleanup::Lock,
        )
        .continued();
        let lock = dir.path().join(".shipit/lock");
        let answered_to = |script: &Script, answer: &str| {
            use std::io::Write;
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(script.render())
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(answer.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            let text = String::from_utf8(out.stdout).unwrap();
            let events: Vec<Event> = text.lines().map(|l| parse_line("n9", l)).collect();
            (out.status.code().unwrap(), events)
        };
        let answered = |answer: &str| answered_to(&begin, answer);
        // Stop (size 0): the begin part's cleanup gives the lock back.
        let (status, events) = answered("0\n");
        assert_eq!(status, 1, "{events:?}");
        assert!(events.contains(&Event::End("lock".into())), "{events:?}");
        assert!(events.contains(&Event::Next), "{events:?}");
        assert!(
            events.contains(&Event::Fact(
                crate::remote::facts::key::STOPPED.into(),
                "1".into()
            )),
            "{events:?}"
        );
        assert!(!lock.exists(), "{events:?}");
        // Go on: the calls sent run in the same script, their markers under the same nonce.
        let rest = Script::new("n9", vars.clone(), vec![Step::Unlock], Cleanup::Lock);
        let (status, events) = answered(&rest.continuation());
        assert_eq!(status, 0, "{events:?}");
        assert!(events.contains(&Event::End("unlock".into())), "{events:?}");
        assert_eq!(events.last(), Some(&Event::Done), "{events:?}");
        assert!(!lock.exists(), "{events:?}");
        // The rest right behind the archive, all in stdin before the script asks: GNU `head -c`
        // (this machine's) takes the archive's bytes and no more, so the rest still runs.
        let archive = "not a real archive, 34 bytes long\n";
        let uploading = Script::new(
            "n9",
            vars.clone(),
            vec![
                Step::Layout,
                Step::Lock,
                Step::Upload {
                    archive: "unused".into(),
                    size: archive.len() as u64,
                    bases: vec![],
                },
            ],
            Cleanup::Lock,
        )
        .continued();
        let (status, events) =
            answered_to(&uploading, &format!("{archive}{}", rest.continuation()));
        assert_eq!(status, 0, "{events:?}");
        assert!(
            events.contains(&Event::Send {
                exact: true,
                delta: None
            }),
            "{events:?}"
        );
        assert!(events.contains(&Event::End("unlock".into())), "{events:?}");
        let part = std::fs::read_dir(dir.path().join(".shipit/archives"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| path.to_string_lossy().ends_with(".part"))
            .expect("the archive's part file");
        assert_eq!(std::fs::read_to_string(part).unwrap(), archive);
    }

    #[test]
    fn the_calls_are_exact() {
        let vars = Preamble {
            d: "/srv/my app".into(),
            ..Preamble::default()
        };
        let script = Script::new(
            "n0",
            vars.clone(),
            vec![Step::Layout, hook("echo 'hi'; $(id)")],
            Cleanup::Lock,
        );
        assert!(vars.render().starts_with("D='/srv/my app'\nID=''\n"));
        assert_eq!(
            script.render_calls(),
            "shipit_start\n\
             SHIPIT_NONCE=n0\n\
             SHIPIT_JOB=820d5d8baf762ec6\n"
                .to_string()
                + &vars.render()
                + "shipit_init\n\
             SHIPIT_CLEANUP=on_lock_failure\n\
             shipit_step layout step_layout\n\
             shipit_step 'before_migrate[0]' step_hook 'echo '\\''hi'\\''; $(id)'\n\
             shipit_done\n"
        );
    }

    #[test]
    fn steps_report_begin_end_and_output() {
        let dir = tempfile::tempdir().unwrap();
        let mut vars = vars(dir.path().to_str().unwrap());
        vars.revision = "hello world; $(id)".into();
        let script = Script::new(
            "n1",
            vars,
            vec![hook("echo \"$REVISION\""), hook("true")],
            Cleanup::Lock,
        );
        let (status, events) = run(&script);
        assert_eq!(status, 0);
        assert_eq!(
            events,
            vec![
                Event::Begin("before_migrate[0]".into()),
                Event::Output("hello world; $(id)".into()),
                Event::End("before_migrate[0]".into()),
                Event::Begin("before_migrate[0]".into()),
                Event::End("before_migrate[0]".into()),
                Event::Done,
            ]
        );
    }

    #[test]
    fn a_failing_command_stops_the_step_and_keeps_its_status() {
        let dir = tempfile::tempdir().unwrap();
        let script = Script::new(
            "n2",
            vars(dir.path().to_str().unwrap()),
            vec![hook("echo before; exit 75; echo after"), Step::Layout],
            Cleanup::Lock,
        );
        let (status, events) = run(&script);
        assert_eq!(status, 75);
        assert_eq!(
            events,
            [
                Event::Begin("before_migrate[0]".into()),
                Event::Output("before".into()),
                Event::Fail("before_migrate[0]".into(), 75),
            ]
        );
    }

    /// What the venv key hashes: the requirements file and, recursively, every file it includes
    /// with `-r`/`-c` in any of pip's spellings, each relative to the file that includes it.
    #[test]
    fn the_venv_key_covers_every_included_requirements_file() {
        let dir = tempfile::tempdir().unwrap();
        let vars = vars(dir.path().to_str().unwrap());
        let release = dir.path().join("releases/20261122010320");
        let write = |path: &str, text: &str| {
            let path = release.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write(
            "requirements/deployment.txt",
            "-r base.txt\n  --constraint=../constraints.txt # pinned\ndjango==5.2\n    # via -r base.in\n",
        );
        write(
            "requirements/base.txt",
            "-csub/c.txt\r\n--requirement extra.txt\nasgiref==3\n",
        );
        write("requirements/sub/c.txt", "sqlparse<1\n");
        write("requirements/extra.txt", "gunicorn==23\n");
        write("constraints.txt", "django<6\n");
        write("plain.txt", "django==5.2\n");
        // (Output lines come without their `\r\n`.)
        let output = |command: &str| {
            let (status, events) = run(&Script::new(
                "n5",
                vars.clone(),
                vec![hook(command)],
                Cleanup::Lock,
            ));
            let lines: Vec<String> = events
                .into_iter()
                .filter_map(|e| match e {
                    Event::Output(line) => Some(line),
                    _ => None,
                })
                .collect();
            (status, lines.join("\n"))
        };
        assert_eq!(
            output("shipit_requirements requirements/deployment.txt"),
            (
                0,
                "-r base.txt\n  --constraint=../constraints.txt # pinned\ndjango==5.2\n    # via -r base.in\n\
                 \n-- requirements/base.txt\n\
                 -csub/c.txt\n--requirement extra.txt\nasgiref==3\n\
                 \n-- requirements/sub/c.txt\nsqlparse<1\n\
                 \n-- requirements/extra.txt\ngunicorn==23\n\
                 \n-- requirements/../constraints.txt\ndjango<6"
                    .into()
            )
        );
        // A file that includes nothing hashes as itself: keys of existing venvs stay valid.
        assert_eq!(
            output("shipit_requirements plain.txt"),
            (0, "django==5.2".into())
        );

        write("requirements/sub/c.txt", "-r ../missing.txt\n");
        let (status, text) = output("shipit_requirements requirements/deployment.txt");
        assert_eq!(status, 1, "{text}");
        assert!(
            text.contains("requirements file requirements/sub/../missing.txt, included by another, is missing"),
            "{text}"
        );
        write("requirements/sub/c.txt", "-r c.txt\n");
        let (status, text) = output("shipit_requirements requirements/deployment.txt >/dev/null");
        assert_eq!(status, 1, "{text}");
        assert!(text.contains("(a cycle?)"), "{text}");
    }

    /// stop-old-app stops this project and target's other programs, and programs named the way
    /// earlier versions did (`hello-production-ID`) only when they run a release of this
    /// deploy_to: that name is also project `hello-production`'s, or `hello`'s target
    /// `production` elsewhere.
    #[test]
    fn stop_old_app_stops_only_its_own_programs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let confd = dir.path().join("conf.d");
        std::fs::create_dir_all(&confd).unwrap();
        std::os::unix::fs::symlink("releases/20261122010320", dir.path().join("current")).unwrap();
        let mut vars = vars(d);
        vars.app = "1".into();
        vars.manager = "supervisor".into();
        vars.ctl = "echo ctl".into();
        vars.confd = confd.to_str().unwrap().into();
        let conf = |name: &str, directory: &str| {
            std::fs::write(
                confd.join(format!("{name}.conf")),
                format!("[program:{name}]\ndirectory={directory}\n"),
            )
            .unwrap();
        };
        conf(
            "hello.production.20261122010320",
            &format!("{d}/releases/20261122010320"),
        );
        conf(
            "hello.production.20261101000000",
            &format!("{d}/releases/20261101000000"),
        );
        conf(
            "hello-production-20261101000001",
            &format!("{d}/releases/20261101000001"),
        );
        conf(
            "hello-production-20261101000002",
            "/srv/other/releases/20261101000002",
        );
        conf(
            "hello-production-20261122010320",
            &format!("{d}/releases/20261122010320"),
        );
        conf(
            "hello.production-eu.20261101000000",
            "/srv/eu/releases/20261101000000",
        );
        conf(
            "hello-a.production.20261101000000",
            "/srv/a/releases/20261101000000",
        );

        let (status, events) = run(&Script::new(
            "n6",
            vars.clone(),
            vec![Step::StopOldApp],
            Cleanup::Lock,
        ));
        assert_eq!(status, 0, "{events:?}");
        let old = "hello.production.20261101000000 hello-production-20261101000001";
        assert!(
            events.contains(&Event::Output(format!(
                "stopping in the background, each within its stop timeout: {old}"
            ))),
            "{events:?}"
        );
        // The stop runs in the background, recorded until a later run's reap has seen it done.
        let record = dir.path().join(".shipit/draining/20261122010320");
        let done = record.with_extension("done");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !done.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(
            std::fs::read_to_string(record.with_extension("log")).unwrap(),
            format!("ctl update {old}\n")
        );
        let reap = |wait| {
            run(&Script::new(
                "n6",
                vars.clone(),
                vec![Step::Reap { wait }, Step::Facts],
                Cleanup::Lock,
            ))
        };
        let fact = |events: &[Event], key: &str| {
            events.iter().find_map(|e| match e {
                Event::Fact(k, v) if k == key => Some(v.clone()),
                _ => None,
            })
        };
        let in_use = |events: &[Event]| fact(events, "in_use");
        let (status, events) = reap(false);
        assert_eq!(status, 0, "{events:?}");
        assert!(!record.exists() && !done.exists(), "{events:?}");
        // A stop still under way (this test's own process stands for its job): its releases
        // count as in use, and its record stays for a later reap.
        let me = std::process::id();
        let stat = std::fs::read_to_string(format!("/proc/{me}/stat")).unwrap();
        let start = stat
            .rsplit_once(") ")
            .unwrap()
            .1
            .split(' ')
            .nth(19)
            .unwrap();
        let job = format!("pid={me}\nstart={start}\nprogram=hello.production.20261101000000\n");
        std::fs::write(&record, &job).unwrap();
        let (status, events) = reap(false);
        assert_eq!(status, 0, "{events:?}");
        assert_eq!(
            in_use(&events).as_deref(),
            Some("20261101000000 20261122010320 "),
            "{events:?}"
        );
        // ... of which that one only stops: a deploy may prune it (waiting first).
        assert_eq!(
            fact(&events, "draining").as_deref(),
            Some("20261101000000 "),
            "{events:?}"
        );
        assert!(record.exists(), "{events:?}");
        std::fs::write(&done, "").unwrap();
        let (status, events) = reap(true);
        assert_eq!(status, 0, "{events:?}");
        assert!(!record.exists() && !done.exists(), "{events:?}");
        // A stop that never finished (its job was killed): the reap stops the programs itself.
        std::fs::write(&record, "pid=999999999\nstart=1\nprogram=a\nprogram=b.c\n").unwrap();
        let (status, events) = reap(false);
        assert_eq!(status, 0, "{events:?}");
        assert!(
            events.contains(&Event::Output("ctl update a b.c".into())),
            "{events:?}"
        );
        assert!(!record.exists(), "{events:?}");
        let mut left: Vec<String> = std::fs::read_dir(&confd)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "hello-a.production.20261101000000.conf",
                "hello-production-20261101000002.conf",
                "hello-production-20261122010320.conf",
                "hello.production-eu.20261101000000.conf",
                "hello.production.20261122010320.conf",
            ]
        );
    }

    /// start-app installs a release's program under the current name, also a release kept from
    /// before programs were named `project.target.release` (a rollback to it).
    #[test]
    fn a_program_kept_under_its_old_name_is_installed_under_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let vars = vars(dir.path().to_str().unwrap());
        let program = |conf: &str| {
            let file = dir.path().join("supervisor.conf");
            std::fs::write(&file, conf).unwrap();
            let (status, events) = run(&Script::new(
                "n7",
                vars.clone(),
                vec![hook(&format!("shipit_program_conf {}", file.display()))],
                Cleanup::Lock,
            ));
            assert_eq!(status, 0, "{events:?}");
            events
                .into_iter()
                .filter_map(|e| match e {
                    Event::Output(line) => Some(line),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        let current = "[program:hello.production.20261122010320]";
        assert_eq!(
            program("; old\n[program:hello-production-20261122010320]\ndirectory=/srv\n"),
            ["; old", current, "directory=/srv"]
        );
        assert_eq!(program(&format!("{current}\n")), [current]);
        // Another release's name, or a program of a template of one's own, is left alone.
        for other in [
            "[program:hello-production-20261122010321]",
            "[program:my-app]",
        ] {
            assert_eq!(program(&format!("{other}\n")), [other]);
        }
    }

    /// Every script shipit sends, rendered for a target with every kind of step.
    fn every_script() -> Vec<(&'static str, Script)> {
        use crate::migrations::Unapply;
        use crate::plan::{deploy, releases, rollback};
        use crate::resolve::{sample, BreakLock, Op, RunVars};
        let resolved = sample();
        let id = crate::release::ReleaseId::parse("20261122010320");
        let vars = resolved.vars(
            Op::Deploy,
            BreakLock::Force,
            &RunVars {
                release: id,
                sha256: Some("ab".repeat(32)),
                revision: Some("abc\tdef".into()),
                unapplied: true,
                lock_wait: 5,
                lock_message: Some("db work: it's late\nreally".into()),
                allow_breaking_migrations: true,
            },
        );
        let mut configs = deploy::ServiceConfigs::default();
        configs.add("nginx.conf", "nginx site", "server {}\n".into());
        configs.add("supervisor.conf", "programs", "[program:x]\n".into());
        configs.add("supervisor-once.conf", "once", "[program:x.beat]\n".into());
        configs.add("schedule.tab", "schedule", "* * * * *\techo hi\n".into());
        configs.add("systemd/x-web@.service", "units", "[Service]\n".into());
        configs.add("units", "units", "x-web@.service\n".into());
        let placed = deploy::tests::everything();
        let unapply = [Unapply {
            app: "pages".into(),
            to: "zero".into(),
        }];
        let phases = [
            (
                "deploy begin",
                deploy::begin("/tmp/a.tar.gz".as_ref(), 14784, vec![]),
            ),
            (
                "deploy prepare",
                deploy::prepare(&resolved, &placed, &configs, "SECRET='x y'\n", None, false),
            ),
            (
                "deploy switch",
                deploy::switch(&resolved, &placed, id.into_iter().collect()),
            ),
            ("rollback begin", rollback::begin()),
            ("rollback check", rollback::check()),
            (
                "rollback prepare",
                rollback::prepare(&resolved, &placed, &unapply),
            ),
            ("rollback switch", rollback::switch(&resolved, &placed)),
            ("list", releases::list()),
            ("prune begin", releases::prune_begin()),
            ("lock status", crate::plan::operate::lock_status()),
            ("lock acquire", crate::plan::operate::lock_acquire()),
            ("lock release", crate::plan::operate::lock_release()),
            ("remove", releases::remove(id.into_iter().collect())),
            (
                "abort",
                Phase::new(vec![Step::Abort("b failed".into())], Cleanup::Lock),
            ),
            (
                "release",
                Phase::new(vec![Step::ReleaseLock], Cleanup::Lock),
            ),
        ];
        phases
            .into_iter()
            .map(|(name, phase)| {
                (
                    name,
                    Script::new("n", vars.clone(), phase.steps, phase.cleanup),
                )
            })
            .collect()
    }

    /// Every exec carries the library and the preamble's Python: packed, a script stays at
    /// about 40 KB on the wire (110 KB as text), a few round trips of TCP slow start fewer on a
    /// real link. The bound is 44 KB: the migration gate, certificate renewal, the
    /// prepared-host watch and delta uploads brought the largest (a deploy's prepare) to 41 KB; sending each
    /// phase only the functions and Python it reaches is what would bring it back down.
    #[test]
    fn every_script_is_at_most_44_kb_on_the_wire() {
        for (name, script) in every_script() {
            let (sent, text) = (script.render().len(), script.body().len());
            assert!(
                sent <= 44 * 1024,
                "{name}: {sent} bytes sent ({text} as text)"
            );
            assert!(
                sent * 2 < text,
                "{name}: {sent} bytes sent is not half of {text}"
            );
        }
    }

    #[test]
    fn every_rendered_script_parses_and_passes_shellcheck() {
        let shellcheck = Command::new("shellcheck").arg("--version").output().is_ok();
        if !shellcheck {
            eprintln!("shellcheck is not installed here: only `sh -n` runs (CI has both)");
        }
        // Every script is the library plus its calls: one shellcheck run sees them all.
        let mut all = format!("{}\n", library::LIBRARY);
        for (i, (name, script)) in every_script().into_iter().enumerate() {
            for text in [script.render(), script.body()] {
                let out = Command::new("sh")
                    .arg("-n")
                    .arg("-c")
                    .arg(&text)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "sh -n rejects {name}: {out:?}");
            }
            all.push_str(&format!("main_{i}() {{\n{}}}\n", script.render_calls()));
        }
        if shellcheck {
            let mut child = Command::new("shellcheck")
                // SC2016: the preamble's values are data, quoted on purpose ($ in Python included).
                .args(["-s", "sh", "-e", "SC2016", "-"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), all.as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "shellcheck rejects the rendered scripts:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }

    #[test]
    fn commands_reading_stdin_do_not_eat_the_script() {
        let dir = tempfile::tempdir().unwrap();
        let script = Script::new(
            "n4",
            vars(dir.path().to_str().unwrap()),
            vec![hook("cat"), hook("echo still-here")],
            Cleanup::Lock,
        );
        let out = Command::new("sh")
            .arg("-s")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(script.render().as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("still-here"), "{text}");
    }
}
