//! The `[targets.T.processes]` table: the long-running commands beside the web app server.

use super::*;

/// The role of the web app server and nginx.
pub const WEB_ROLE: &str = "web";

/// The process that runs `[targets.T.schedule]` on the primary; no process may take its name.
pub const SCHEDULER: &str = "schedule";

/// The role a process runs on when it names none.
pub const DEFAULT_PROCESS_ROLE: &str = "worker";

/// One `[targets.T.processes]` entry: a long-running command of each release besides the web
/// app server (a Celery worker, beat), run by the process manager in the release with its venv
/// and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// The command, run by `sh` in the release after its environment is loaded: exec'd when it
    /// is one simple command, under a shell of its own when it needs one ([`Process::exec`]).
    pub run: String,
    /// Hosts of this role run it (ignored with `once`).
    pub role: String,
    /// Copies per host.
    pub replicas: u32,
    /// Seconds a stopping process has to finish (then it is killed).
    pub stop_timeout: u32,
    /// One instance across the target, on the primary, handed over at the switch.
    pub once: bool,
}

impl Process {
    /// Whether `run` needs a shell: a list (`a && b`, `a; b`, `a &`), a pipeline, a loop or
    /// another compound command, a subshell, or a leading assignment (`A=1 cmd`) — none of
    /// which `exec` takes. A simple command, however quoted and expanded, is exec'd.
    pub fn needs_shell(&self) -> bool {
        needs_shell(&self.run)
    }

    /// What the process manager's `sh` execs in the release: `run` itself when it is one simple
    /// command, so that the manager's signals (a graceful stop) reach the program and not a
    /// shell; else `/bin/sh -c 'RUN'`, a shell of its own, which the manager stops with its
    /// whole process group (a shell does not pass a signal on: its children would be left
    /// running).
    pub fn exec(&self) -> String {
        if self.needs_shell() {
            format!("/bin/sh -c {}", crate::plan::quote(&self.run))
        } else {
            self.run.clone()
        }
    }
}

/// The words a command cannot start with and be exec'd: reserved words (and bash's `[[`).
const RESERVED: &[&str] = &[
    "!", "{", "}", "[[", "case", "do", "done", "elif", "else", "esac", "fi", "for", "function",
    "if", "in", "select", "then", "until", "while",
];

/// See [`Process::needs_shell`]: a scan of `run` as sh reads it, quotes, backslashes and
/// command substitutions (`$(...)`, backquotes) skipped, for an operator outside all of them.
fn needs_shell(run: &str) -> bool {
    let first = run.split_whitespace().next().unwrap_or("");
    let assignment = first.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    if assignment || RESERVED.contains(&first) || first.starts_with('(') {
        return true;
    }
    let mut chars = run.chars().peekable();
    let (mut single, mut double, mut backquote) = (false, false, false);
    // Open parentheses of `$(...)` and `$((...))`.
    let mut depth = 0usize;
    let mut previous = ' ';
    while let Some(c) = chars.next() {
        let before = std::mem::replace(&mut previous, c);
        if single {
            single = c != '\'';
            continue;
        }
        if c == '\\' {
            chars.next();
            continue;
        }
        if c == '`' {
            backquote = !backquote;
            continue;
        }
        if c == '$' && chars.peek() == Some(&'(') {
            chars.next();
            depth += 1;
            continue;
        }
        if backquote || depth > 0 {
            match c {
                '(' if depth > 0 => depth += 1,
                ')' if depth > 0 => depth -= 1,
                _ => {}
            }
            continue;
        }
        if c == '"' {
            double = !double;
            continue;
        }
        if double {
            continue;
        }
        if c == '\'' {
            single = true;
            continue;
        }
        // `2>&1`, `<&3`, `>|`: redirections, which exec takes.
        let redirection = matches!(c, '&' | '|') && matches!(before, '>' | '<');
        if matches!(c, ';' | '&' | '|' | '(' | ')') && !redirection {
            return true;
        }
    }
    false
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawProcess {
    Command(String),
    Table(RawProcessTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProcessTable {
    run: String,
    role: Option<String>,
    #[serde(default = "default_replicas")]
    replicas: i64,
    #[serde(default = "default_stop_timeout")]
    stop_timeout: i64,
    #[serde(default)]
    once: bool,
}

/// `replicas` when unset.
pub(crate) const DEFAULT_REPLICAS: i64 = 1;
/// `stop_timeout` when unset, in seconds.
pub(crate) const DEFAULT_STOP_TIMEOUT: i64 = 30;

fn default_replicas() -> i64 {
    DEFAULT_REPLICAS
}
fn default_stop_timeout() -> i64 {
    DEFAULT_STOP_TIMEOUT
}

pub(super) fn validate_processes(
    source: &Source,
    target: &str,
    raw: BTreeMap<Spanned<String>, Spanned<RawProcess>>,
) -> Result<BTreeMap<String, Process>> {
    let mut processes = BTreeMap::new();
    for (name, entry) in raw {
        let key = key_for(target, &format!("processes.{}", name.get_ref()));
        let span = entry.span();
        let bad = |why: String| source.error(span.clone(), key.clone(), why);
        if !is_name(name.get_ref()) {
            return Err(source.error(
                name.span(),
                key,
                "process names are letters, digits, `_` or `-` (they name programs and units)",
            ));
        }
        if name.get_ref() == SCHEDULER {
            return Err(source.error(
                name.span(),
                key,
                "`schedule` is the process that runs [targets.T.schedule]; name the process otherwise",
            ));
        }
        if name.get_ref() == WEB_ROLE {
            return Err(source.error(
                name.span(),
                key,
                "`web` is the app server shipit runs itself; name the process otherwise",
            ));
        }
        let table = match entry.into_inner() {
            RawProcess::Command(run) => RawProcessTable {
                run,
                role: None,
                replicas: DEFAULT_REPLICAS,
                stop_timeout: DEFAULT_STOP_TIMEOUT,
                once: false,
            },
            RawProcess::Table(table) => table,
        };
        if table.run.trim().is_empty() || table.run.chars().any(|c| c.is_control()) {
            return Err(bad(
                "`run` must be one non-empty line (a command the process manager execs)".into(),
            ));
        }
        let role = table
            .role
            .unwrap_or_else(|| DEFAULT_PROCESS_ROLE.to_string());
        if !is_name(&role) {
            return Err(bad(format!(
                "role `{role}`: role names are letters, digits, `_` or `-`"
            )));
        }
        if !(1..=64).contains(&table.replicas) {
            return Err(bad(format!(
                "replicas must be between 1 and 64, not {}",
                table.replicas
            )));
        }
        if table.once && table.replicas != 1 {
            return Err(bad(
                "a `once` process runs as one instance across the target; drop replicas".into(),
            ));
        }
        if !(1..=86_400).contains(&table.stop_timeout) {
            return Err(bad(format!(
                "stop_timeout must be between 1 and 86400 seconds, not {}",
                table.stop_timeout
            )));
        }
        processes.insert(
            name.into_inner(),
            Process {
                run: table.run,
                role,
                replicas: table.replicas as u32,
                stop_timeout: table.stop_timeout as u32,
                once: table.once,
            },
        );
    }
    Ok(processes)
}
