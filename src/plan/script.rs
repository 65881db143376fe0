//! A remote script: named steps rendered into one POSIX shell program, and the parser for the
//! marker lines it prints.
//!
//! One script is one SSH exec, however many steps it has, so the number of round trips does not
//! grow with the work (Mina's approach). Each step runs in a subshell with `set -e`; before and
//! after it the script prints a marker line carrying a per-run nonce, which is how shipit shows
//! live progress and timings and knows which step failed, without the step's own output being
//! able to forge a marker. On failure the script runs its cleanup and exits with the step's
//! status.

/// One named unit of remote work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Short name shown to the user, e.g. `migrate`.
    pub name: String,
    /// Shell commands; run with `set -e` in a subshell.
    pub body: String,
}

impl Step {
    /// A step called `name` running `body`.
    pub fn new(name: impl Into<String>, body: impl Into<String>) -> Step {
        Step {
            name: name.into(),
            body: body.into(),
        }
    }
}

/// Steps plus what every step needs (variables) and what to do when one fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Marker nonce; random per run.
    pub nonce: String,
    /// Lines run before the first step (variable assignments, exports).
    pub preamble: Vec<String>,
    /// The steps in order.
    pub steps: Vec<Step>,
    /// Run (outside any step) when a step fails; `$SHIPIT_FAILED_STEP` names the step.
    pub on_failure: String,
}

/// Prefix of every marker line.
pub const MARKER: &str = "@@shipit:";

impl Script {
    /// An empty script with the given nonce.
    pub fn new(nonce: impl Into<String>) -> Script {
        Script {
            nonce: nonce.into(),
            preamble: Vec::new(),
            steps: Vec::new(),
            on_failure: String::new(),
        }
    }

    /// Adds a variable assignment (the value is quoted here).
    pub fn var(&mut self, name: &str, value: &str) -> &mut Self {
        self.preamble
            .push(format!("{name}={}", super::quote(value)));
        self
    }

    /// Adds a raw preamble line.
    pub fn line(&mut self, line: impl Into<String>) -> &mut Self {
        self.preamble.push(line.into());
        self
    }

    /// Appends a step.
    pub fn step(&mut self, name: impl Into<String>, body: impl Into<String>) -> &mut Self {
        self.steps.push(Step::new(name, body));
        self
    }

    /// One script that runs these steps and then `next`'s (in one exec), each part keeping its
    /// own failure handling. Used when a deploy has a single host: there is nobody to wait for
    /// between preparing and switching, so it saves a round trip and never leaves the lock
    /// held without a script running.
    pub fn then(mut self, next: Script) -> Script {
        let names: Vec<String> = next.steps.iter().map(|s| super::quote(&s.name)).collect();
        self.on_failure = format!(
            "case \"$SHIPIT_FAILED_STEP\" in\n{})\n:\n{}\n;;\n*)\n:\n{}\n;;\nesac",
            names.join("|"),
            next.on_failure,
            self.on_failure
        );
        self.preamble.extend(next.preamble);
        self.steps.extend(next.steps);
        self
    }

    /// The whole program, to be fed to `sh -s`.
    ///
    /// Everything is wrapped in a function that is called with stdin from /dev/null, so a
    /// command that reads stdin cannot swallow the rest of the script.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# shipit remote script; generated, do not edit\n");
        out.push_str("shipit_main() {\n");
        out.push_str("exec 2>&1\n");
        out.push_str("set -u\n");
        out.push_str("umask 022\n");
        out.push_str(&format!("SHIPIT_NONCE={}\n", super::quote(&self.nonce)));
        out.push_str(
            "shipit_mark() { printf '%s%s %s\\n' '@@shipit:' \"$SHIPIT_NONCE\" \"$*\"; }\n",
        );
        out.push_str("shipit_fact() { shipit_mark fact \"$1\" \"$2\"; }\n");
        out.push_str("shipit_on_failure() {\n:\n");
        out.push_str(&self.on_failure);
        out.push_str("\n}\n");
        // A cut connection shows up as SIGPIPE at the next write (or SIGHUP/SIGTERM from sshd):
        // undo what the interrupted step started, quietly, since nobody is listening any more.
        out.push_str("SHIPIT_STEP=start\n");
        out.push_str(
            "trap 'trap \"\" PIPE HUP TERM; [ \"$SHIPIT_STEP\" = done ] && exit 0; SHIPIT_FAILED_STEP=\"$SHIPIT_STEP\"; shipit_on_failure >/dev/null 2>&1; exit 129' PIPE HUP TERM\n",
        );
        for line in &self.preamble {
            out.push_str(line);
            out.push('\n');
        }
        for step in &self.steps {
            let name = super::quote(&step.name);
            out.push_str(&format!("SHIPIT_STEP={name}\n"));
            out.push_str(&format!("shipit_mark begin {name}\n"));
            out.push_str("(\nset -e\n");
            out.push_str(&step.body);
            out.push_str("\n)\n");
            out.push_str("SHIPIT_STATUS=$?\n");
            out.push_str("if [ \"$SHIPIT_STATUS\" -ne 0 ]; then\n");
            out.push_str(&format!("  shipit_mark fail {name} \"$SHIPIT_STATUS\"\n"));
            out.push_str(&format!("  SHIPIT_FAILED_STEP={name}\n"));
            out.push_str("  shipit_on_failure\n");
            out.push_str("  return \"$SHIPIT_STATUS\"\n");
            out.push_str("fi\n");
            out.push_str(&format!("shipit_mark end {name}\n"));
        }
        // Every step ran: losing the connection now must not undo anything.
        out.push_str("SHIPIT_STEP=done\n");
        out.push_str("shipit_mark done ok\n");
        out.push_str("}\n");
        out.push_str("shipit_main </dev/null\n");
        out
    }
}

/// What one line of remote output means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A step started.
    Begin(String),
    /// A step finished successfully.
    End(String),
    /// A step failed with this status.
    Fail(String, i32),
    /// A fact reported by the script (`key`, `value`).
    Fact(String, String),
    /// The script ran to its end.
    Done,
    /// Ordinary output of a step.
    Output(String),
}

/// Classifies one output line of a script run with `nonce`.
pub fn parse_line(nonce: &str, line: &str) -> Event {
    let Some(rest) = line
        .strip_prefix(MARKER)
        .and_then(|r| r.strip_prefix(nonce))
        .and_then(|r| r.strip_prefix(' '))
    else {
        return Event::Output(line.to_string());
    };
    let (kind, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    match kind {
        "begin" => Event::Begin(rest.to_string()),
        "end" => Event::End(rest.to_string()),
        "fail" => match rest.rsplit_once(' ') {
            Some((step, status)) => Event::Fail(step.to_string(), status.parse().unwrap_or(-1)),
            None => Event::Output(line.to_string()),
        },
        "fact" => {
            let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
            Event::Fact(key.to_string(), value.to_string())
        }
        "done" => Event::Done,
        _ => Event::Output(line.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

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
    fn steps_report_begin_end_and_facts() {
        let mut script = Script::new("n1");
        script.var("GREETING", "hello world; $(id)");
        script.step("one", "echo \"$GREETING\"\nshipit_fact answer 42");
        script.step("two", "true");
        let (status, events) = run(&script);
        assert_eq!(status, 0);
        assert_eq!(
            events,
            vec![
                Event::Begin("one".into()),
                Event::Output("hello world; $(id)".into()),
                Event::Fact("answer".into(), "42".into()),
                Event::End("one".into()),
                Event::Begin("two".into()),
                Event::End("two".into()),
                Event::Done,
            ]
        );
    }

    #[test]
    fn a_failing_command_stops_the_step_and_runs_cleanup() {
        let mut script = Script::new("n2");
        script.step("ok", "true");
        script.step("bad", "echo before\nfalse\necho after");
        script.step("never", "echo never");
        script.on_failure = "echo \"cleanup after $SHIPIT_FAILED_STEP\"".into();
        let (status, events) = run(&script);
        assert_eq!(status, 1);
        assert_eq!(
            events[2..],
            [
                Event::Begin("bad".into()),
                Event::Output("before".into()),
                Event::Fail("bad".into(), 1),
                Event::Output("cleanup after bad".into()),
            ]
        );
    }

    #[test]
    fn joined_scripts_keep_each_part_s_failure_handling() {
        let part = |fail: &str, label: &str| {
            let mut script = Script::new("n6");
            script.step(format!("{label} step"), fail.to_string());
            script.on_failure = format!("echo \"undo {label}\"");
            script
        };
        let (_, events) = run(&part("false", "first").then(part("true", "second")));
        assert!(
            events.contains(&Event::Output("undo first".into())),
            "{events:?}"
        );
        let (status, events) = run(&part("true", "first").then(part("exit 3", "second")));
        assert_eq!(status, 3);
        assert!(
            events.contains(&Event::Output("undo second".into())),
            "{events:?}"
        );
        assert!(!events.contains(&Event::Output("undo first".into())));
    }

    #[test]
    fn exit_status_of_the_step_is_kept() {
        let mut script = Script::new("n3");
        script.step("exit", "exit 75");
        let (status, events) = run(&script);
        assert_eq!(status, 75);
        assert!(events.contains(&Event::Fail("exit".into(), 75)));
    }

    #[test]
    fn a_lost_connection_runs_the_cleanup() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("cleaned");
        let mut script = Script::new("n5");
        script.step("first", "echo one");
        script.step("long", "sleep 1\necho two");
        script.on_failure = format!(
            "echo \"$SHIPIT_FAILED_STEP\" > {}",
            super::super::quote(flag.to_str().unwrap())
        );
        // The reader goes away after the first line: the script's next write gets SIGPIPE.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script.render())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 8];
        std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
        drop(stdout);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(129));
        let cleaned = std::fs::read_to_string(&flag).unwrap();
        assert!(
            cleaned.starts_with("first") || cleaned.starts_with("long"),
            "{cleaned}"
        );
    }

    #[test]
    fn output_cannot_forge_markers_without_the_nonce() {
        assert_eq!(
            parse_line("secret", "@@shipit:guess done ok"),
            Event::Output("@@shipit:guess done ok".into())
        );
        assert_eq!(parse_line("secret", "@@shipit:secret done ok"), Event::Done);
    }

    #[test]
    fn commands_reading_stdin_do_not_eat_the_script() {
        let mut script = Script::new("n4");
        script.step("reader", "cat");
        script.step("after", "echo still-here");
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
