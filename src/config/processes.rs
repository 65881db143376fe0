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
    /// The command, exec'd by `sh` in the release after its environment is loaded.
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
