//! One error type for the whole tool.
//!
//! Every failure a person can meet is a variant with the fields they need to act on it: which
//! file and line, which host and step, what the step printed last. The message is written once,
//! here; [`Error::hint`] adds advice where we know some, and [`Error::exit_code`] gives scripts a
//! status they can branch on (documented in the README and in `shipit --help`).

use std::fmt;
use std::path::{Path, PathBuf};

mod cause;
use cause::Cause;

/// Exit status of a successful run.
pub const EXIT_OK: i32 = 0;
/// A deploy, rollback or build step failed; hosts are left on their previous release.
pub const EXIT_FAILED: i32 = 1;
/// Bad usage, configuration, template or project content: nothing was touched on any host.
pub const EXIT_USAGE: i32 = 2;
/// A host could not be reached or failed authentication or host key verification.
pub const EXIT_CONNECTION: i32 = 3;
/// Another deploy holds the lock on a host.
pub const EXIT_LOCKED: i32 = 4;
/// shipit refused to act: a rollback with nowhere to go, hosts that disagree, migrations the
/// target release does not know, a migration the gate finds breaking. Nothing was changed.
pub const EXIT_REFUSED: i32 = 5;
/// Ctrl-C stopped the run (the conventional 128 + SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, with what a person needs to fix it.
#[derive(Debug)]
pub enum Error {
    /// `shipit.toml` is unreadable, malformed, or has an invalid value.
    Config {
        /// The configuration file.
        path: PathBuf,
        /// 1-based line of the offending key, when known.
        line: Option<usize>,
        /// Dotted key, e.g. `targets.production.hosts`.
        key: Option<String>,
        /// What is wrong.
        message: String,
        /// How to fix it, when the message alone does not say.
        hint: Option<String>,
    },
    /// `--target` names no target of the configuration.
    UnknownTarget {
        /// What the user typed.
        name: String,
        /// The targets the configuration defines.
        known: Vec<String>,
    },
    /// A line of `deploy.map` cannot be used.
    DeployMap {
        /// The deploy.map file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A template is missing or failed to render.
    Template {
        /// Template name or path.
        name: String,
        /// Line inside the template, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// A project path that must not go into an archive or onto a host.
    UnsafePath {
        /// The path as found (lossy for non-UTF-8 names).
        path: String,
        /// Why it is refused.
        reason: String,
    },
    /// A file bound for the archive holds what looks like a secret (see `build::content`).
    SecretContent {
        /// Its path in the project (and the archive).
        path: String,
        /// 1-based line of the first finding.
        line: usize,
        /// What was found, never the value: `a private key`, `DJANGO_SECRET_KEY=…`.
        what: String,
        /// `path:line` of the other files with a finding.
        more: Vec<String>,
    },
    /// A local file operation failed.
    Io {
        /// What shipit was doing, e.g. "read".
        action: &'static str,
        /// The file it was doing it to.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `git` failed or the project is not what git reports.
    Git {
        /// What went wrong.
        message: String,
    },
    /// A host could not be reached or authenticated.
    Connection {
        /// `user@host:port`.
        host: String,
        /// What went wrong.
        message: String,
        /// Advice, when we have some.
        hint: Option<String>,
    },
    /// The host presented a key that is not in known_hosts.
    HostKeyUnknown {
        /// `host:port`.
        host: String,
        /// SHA256 fingerprint, OpenSSH style.
        fingerprint: String,
        /// Types of the keys known_hosts holds for the host (none: the host is not known).
        known_types: Vec<String>,
        /// The exact known_hosts line that would trust it (`NAME TYPE KEY`: the key's type is
        /// its second field).
        line: String,
        /// The known_hosts file it would go into.
        known_hosts: PathBuf,
    },
    /// The host presented a key different from the one of the same type in known_hosts.
    HostKeyChanged {
        /// `host:port`.
        host: String,
        /// SHA256 fingerprint of the key now presented.
        fingerprint: String,
        /// The known_hosts file that disagrees.
        known_hosts: PathBuf,
        /// Its line holding the other key.
        line: usize,
    },
    /// The host presented a key known_hosts marks `@revoked`.
    HostKeyRevoked {
        /// `host:port`.
        host: String,
        /// SHA256 fingerprint of the key presented.
        fingerprint: String,
        /// The known_hosts file that revokes it.
        known_hosts: PathBuf,
        /// Its `@revoked` line.
        line: usize,
    },
    /// The server's host certificate does not vouch for the host, or known_hosts trusts the
    /// host only through a `@cert-authority` line and the server presented no certificate.
    HostCertificate {
        /// `host:port`.
        host: String,
        /// What is wrong, naming the known_hosts line involved.
        problem: String,
        /// The server presented its plain key, not a certificate.
        plain: bool,
    },
    /// Another deploy holds the lock.
    Locked {
        /// `user@host:port`.
        host: String,
        /// Who holds it, as recorded in the lock.
        holder: String,
        /// Whether the run that took it is still connected.
        live: bool,
        /// Whether it is held with `shipit lock acquire` (until `shipit lock release`).
        held: bool,
    },
    /// The command line asks for something that cannot be done as asked.
    Usage {
        /// What is wrong.
        message: String,
        /// How to ask instead.
        hint: Option<String>,
    },
    /// shipit refused to act; nothing was changed.
    Refused {
        /// Why.
        message: String,
        /// What to do instead.
        hint: String,
    },
    /// A secret of the target could not be resolved on this machine.
    Secret {
        /// The variable's name.
        name: String,
        /// Where its value should come from (never the value).
        from: String,
        /// What went wrong.
        message: String,
        /// What to do about it, when more can be said than where secrets are resolved.
        hint: Option<String>,
    },
    /// Ctrl-C stopped the run at a safe point.
    Interrupted {
        /// What the hosts were left with.
        outcome: String,
    },
    /// Writing the archive failed.
    Archive {
        /// What went wrong.
        message: String,
    },
    /// A remote step failed.
    Step {
        /// `user@host:port`.
        host: String,
        /// The step's name.
        step: String,
        /// Its exit status.
        status: i32,
        /// The last lines it printed.
        tail: Vec<String>,
        /// What shipit did about it (e.g. "current still points at 20261122010320").
        outcome: String,
    },
    /// `shipit image` could not read its base, build a layer, or push.
    Image {
        /// `base`, `virtualenv`, `layer`, `layout` or `push`.
        stage: &'static str,
        /// What went wrong.
        message: String,
        /// The last lines the tool (uv, skopeo) printed.
        tail: Vec<String>,
        /// What to do about it.
        hint: Option<String>,
    },
    /// `shipit check` found problems (each was printed with its hint).
    ChecksFailed {
        /// `host: check` of each failed check.
        failed: Vec<String>,
    },
    /// A `project.build` command failed on this machine, before any host was touched.
    BuildCommand {
        /// The command as configured.
        command: String,
        /// Its exit status (-1 when a signal ended it).
        status: i32,
        /// The last lines it printed.
        tail: Vec<String>,
    },
    /// Several hosts failed in the same round (connecting, locking, a phase, a batch's switch):
    /// each one's own error, in target order, so that none is hidden behind the first.
    Hosts {
        /// One error per failing host (never fewer than two: see [`Error::of_hosts`]).
        errors: Vec<Error>,
    },
    /// A command `shipit run` ran exited with a failure status.
    Command {
        /// The first host (in the target's order) where it failed.
        host: String,
        /// Its exit status there: shipit's own.
        status: i32,
        /// The other hosts where it failed.
        others: Vec<String>,
    },
    /// The project cannot be deployed as it is (e.g. its requirements file is not committed).
    Project {
        /// What is wrong.
        message: String,
        /// How to fix it.
        hint: Option<String>,
    },
}

impl Error {
    /// An [`Error::Io`] for `action` on `path`.
    pub fn io(action: &'static str, path: impl AsRef<Path>, source: std::io::Error) -> Error {
        Error::Io {
            action,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// An [`Error::Config`] without position.
    pub fn config(path: impl AsRef<Path>, message: impl Into<String>) -> Error {
        Error::Config {
            path: path.as_ref().to_path_buf(),
            line: None,
            key: None,
            message: message.into(),
            hint: None,
        }
    }

    /// An [`Error::Usage`] without a hint.
    pub fn usage(message: impl Into<String>) -> Error {
        Error::Usage {
            message: message.into(),
            hint: None,
        }
    }

    /// The error of a round in which each of `errors` is one host's (in target order): that
    /// error alone when one host failed, else [`Error::Hosts`]; `None` when none failed.
    pub fn of_hosts(mut errors: Vec<Error>) -> Option<Error> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(Error::Hosts { errors }),
        }
    }

    /// The process exit status this error maps to.
    pub fn exit_code(&self) -> i32 {
        match self {
            // What the person must act on first: a lock (another run holds it), then a host
            // that cannot be reached, then what failed on the hosts.
            Error::Hosts { errors } => [EXIT_LOCKED, EXIT_CONNECTION]
                .into_iter()
                .find(|code| errors.iter().any(|e| e.exit_code() == *code))
                .unwrap_or_else(|| errors.first().map_or(EXIT_FAILED, Error::exit_code)),
            Error::Config { .. }
            | Error::UnknownTarget { .. }
            | Error::DeployMap { .. }
            | Error::Template { .. }
            | Error::UnsafePath { .. }
            | Error::SecretContent { .. }
            | Error::Project { .. }
            | Error::Usage { .. }
            | Error::Secret { .. } => EXIT_USAGE,
            Error::Connection { .. }
            | Error::HostKeyUnknown { .. }
            | Error::HostKeyChanged { .. }
            | Error::HostKeyRevoked { .. }
            | Error::HostCertificate { .. } => EXIT_CONNECTION,
            Error::Locked { .. } => EXIT_LOCKED,
            Error::Command { status, .. } => (*status).clamp(1, 255),
            Error::Refused { .. } => EXIT_REFUSED,
            // The gate refused before anything was migrated: the live release still serves.
            Error::Step { status, tail, .. }
                if Cause::of_step(*status, tail) == Some(Cause::MigrationGate) =>
            {
                EXIT_REFUSED
            }
            Error::Interrupted { .. } => EXIT_INTERRUPTED,
            Error::Io { .. }
            | Error::Git { .. }
            | Error::Step { .. }
            | Error::Archive { .. }
            | Error::Image { .. }
            | Error::BuildCommand { .. }
            | Error::ChecksFailed { .. } => EXIT_FAILED,
        }
    }

    /// Advice for the person reading the error, when there is some: each of [`Error::hints`]
    /// on a line of its own.
    pub fn hint(&self) -> Option<String> {
        let hints = self.hints();
        (!hints.is_empty()).then(|| hints.join("\n"))
    }

    /// Every piece of advice for the person reading the error: one for most errors, and for
    /// several hosts' one per cause, naming the hosts it applies to.
    pub fn hints(&self) -> Vec<String> {
        let Error::Hosts { errors } = self else {
            return self.own_hint().into_iter().collect();
        };
        let mut causes: Vec<(String, Vec<&str>)> = Vec::new();
        for error in errors {
            let Some(hint) = error.own_hint() else {
                continue;
            };
            let host = error.host().unwrap_or("?");
            match causes.iter_mut().find(|(h, _)| *h == hint) {
                Some((_, hosts)) => hosts.push(host),
                None => causes.push((hint, vec![host])),
            }
        }
        causes
            .into_iter()
            .map(|(hint, hosts)| format!("{}: {hint}", hosts.join(", ")))
            .collect()
    }

    /// The host this error is about, when it is one host's.
    fn host(&self) -> Option<&str> {
        match self {
            Error::Step { host, .. }
            | Error::Locked { host, .. }
            | Error::Connection { host, .. }
            | Error::HostKeyUnknown { host, .. }
            | Error::HostKeyChanged { host, .. }
            | Error::HostKeyRevoked { host, .. }
            | Error::HostCertificate { host, .. } => Some(host),
            _ => None,
        }
    }

    /// The advice for this error by itself.
    fn own_hint(&self) -> Option<String> {
        match self {
            Error::Step { status, tail, .. } => {
                Cause::of_step(*status, tail).map(|c| c.hint().to_string())
            }
            Error::UnknownTarget { known, .. } if known.is_empty() => {
                Some("add a [targets.NAME] table to shipit.toml".into())
            }
            Error::UnknownTarget { name, known } => Some(match suggest(name, known) {
                Some(close) => format!("did you mean `{close}`? known targets: {}", known.join(", ")),
                None => format!("known targets: {}", known.join(", ")),
            }),
            Error::HostKeyUnknown {
                line,
                known_hosts,
                known_types,
                ..
            } if known_types.is_empty() => Some(format!(
                "if you trust this fingerprint, add this line to {}:\n    {line}\nor re-run with --accept-new-host-key",
                known_hosts.display()
            )),
            Error::HostKeyUnknown {
                line, known_hosts, ..
            } => Some(format!(
                "the server did not offer the key known_hosts holds (`ssh` would say the host key has changed), so --accept-new-host-key does not add this one beside it: check with the host's administrator; if its keys were replaced, remove the old line (`ssh-keygen -R HOST -f FILE`), and if you trust this fingerprint, add this line to {}:\n    {line}",
                known_hosts.display()
            )),
            Error::HostKeyChanged {
                known_hosts, line, ..
            } => Some(format!(
                "someone may be intercepting the connection, or the host was reinstalled; check with its administrator, then update {}:{line}",
                known_hosts.display()
            )),
            Error::HostKeyRevoked { .. } => Some(
                "the key was revoked on purpose: the host must get a new key (and known_hosts a line for it); --accept-new-host-key never accepts a revoked key".into(),
            ),
            Error::HostCertificate { plain: true, .. } => Some(
                "give sshd a host certificate signed by that CA (`ssh-keygen -s CA -h -n HOSTNAME KEY.pub`, then `HostCertificate KEY-cert.pub` in sshd_config), or add the host's own key to known_hosts (`ssh-keyscan -t ed25519 HOST`, checked out of band)".into(),
            ),
            Error::HostCertificate { plain: false, .. } => Some(
                "re-sign the host's key (`ssh-keygen -s CA -h -n HOSTNAME -V +52w KEY.pub`) and reload sshd, or fix the @cert-authority line; `ssh-keygen -L -f KEY-cert.pub` shows what a certificate says".into(),
            ),
            Error::Locked { held: true, .. } => Some(
                "it was taken with `shipit lock acquire`: `shipit lock -t TARGET release` gives it back; `--lock-wait SECS` waits for that, --break-lock --force takes it anyway".into(),
            ),
            Error::Locked { live: true, .. } => Some(
                "wait for the other run to finish (`--lock-wait SECS` waits for it); if you are sure it is stuck, --break-lock --force takes the lock from a live run".into(),
            ),
            Error::Locked { live: false, .. } => Some(
                "the run that took the lock is gone (killed, or its connection dropped); re-run with --break-lock".into(),
            ),
            Error::Connection { hint, .. }
            | Error::Config { hint, .. }
            | Error::Usage { hint, .. }
            | Error::Project { hint, .. }
            | Error::Image { hint, .. } => hint.clone(),
            Error::Refused { hint, .. } => Some(format!("{hint}; nothing was changed")),
            Error::Secret { hint: Some(hint), .. } => Some(format!("{hint}; nothing was changed")),
            Error::Secret { hint: None, .. } => Some(
                "secrets are resolved on this machine before any host is touched; nothing was changed".into(),
            ),
            Error::BuildCommand { .. } => Some(
                "run it in the project directory to see why (`-v` shows all of its output); no host was touched".into(),
            ),
            Error::UnsafePath { .. } => Some(
                "remove the file from the project or add it to `exclude` in shipit.toml".into(),
            ),
            Error::SecretContent { path, .. } => Some(format!(
                "if it is no secret, ship the file as it is with `include = [\"{path}\"]` in [project]; if it is one, keep it out with `exclude = [\"{path}\"]` (or remove it from git, and change it), and give the value to the app with [targets.NAME.secrets]"
            )),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config {
                path,
                line,
                key,
                message,
                ..
            } => {
                write!(f, "{}", path.display())?;
                if let Some(line) = line {
                    write!(f, ":{line}")?;
                }
                if let Some(key) = key {
                    write!(f, ": `{key}`")?;
                }
                write!(f, ": {message}")
            }
            Error::UnknownTarget { name, .. } => write!(f, "unknown target `{name}`"),
            Error::DeployMap {
                path,
                line,
                message,
            } => write!(f, "{}:{line}: {message}", path.display()),
            Error::Template {
                name,
                line,
                message,
            } => match line {
                Some(line) => write!(f, "template {name}:{line}: {message}"),
                None => write!(f, "template {name}: {message}"),
            },
            Error::UnsafePath { path, reason } => write!(f, "refusing to archive `{path}`: {reason}"),
            Error::SecretContent {
                path,
                line,
                what,
                more,
            } => {
                write!(
                    f,
                    "refusing to archive {path}:{line}: it holds what looks like a secret ({what}; the value is not shown)"
                )?;
                const SHOWN: usize = 5;
                if !more.is_empty() {
                    write!(f, "; so do {}", more[..more.len().min(SHOWN)].join(", "))?;
                    if more.len() > SHOWN {
                        write!(f, " and {} more", more.len() - SHOWN)?;
                    }
                }
                Ok(())
            }
            Error::Io {
                action,
                path,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
            Error::Git { message } => write!(f, "git: {message}"),
            Error::Connection { host, message, .. } => write!(f, "{host}: {message}"),
            Error::HostKeyUnknown {
                host,
                fingerprint,
                known_types,
                line,
                ..
            } => {
                let key_type = line.split_whitespace().nth(1).unwrap_or("its type");
                write!(
                    f,
                    "{host}: host key is unknown for {key_type} ({fingerprint})"
                )?;
                if !known_types.is_empty() {
                    write!(
                        f,
                        "; known_hosts holds only its {} key",
                        known_types.join(", ")
                    )?;
                }
                write!(f, "; refusing to connect")
            }
            Error::HostKeyChanged {
                host,
                fingerprint,
                known_hosts,
                line,
            } => write!(
                f,
                "{host}: HOST KEY HAS CHANGED (now {fingerprint}, {}:{line} says otherwise); refusing to connect",
                known_hosts.display()
            ),
            Error::HostKeyRevoked {
                host,
                fingerprint,
                known_hosts,
                line,
            } => write!(
                f,
                "{host}: host key {fingerprint} is REVOKED ({}:{line}); refusing to connect",
                known_hosts.display()
            ),
            Error::HostCertificate { host, problem, .. } => {
                write!(f, "{host}: {problem}; refusing to connect")
            }
            Error::Locked {
                host,
                holder,
                live,
                held,
            } => {
                if *held {
                    write!(f, "{host}: locked with `shipit lock acquire` ({holder})")
                } else if *live {
                    write!(f, "{host}: locked by another run, which is still running ({holder})")
                } else {
                    write!(f, "{host}: locked by a run that is no longer connected ({holder})")
                }
            }
            Error::Command {
                host,
                status,
                others,
            } => {
                write!(f, "{host}: the command exited with status {status}")?;
                if !others.is_empty() {
                    write!(f, " (it also failed on {})", others.join(", "))?;
                }
                Ok(())
            }
            Error::Step { outcome, .. } => {
                write_step(f, self, "")?;
                if !outcome.is_empty() {
                    write!(f, "\n  {outcome}")?;
                }
                Ok(())
            }
            Error::Hosts { errors } => {
                write!(f, "{} hosts failed:", errors.len())?;
                // What the hosts were left with, said once when every host's is the same.
                let outcomes: Vec<&str> = errors
                    .iter()
                    .map(|e| match e {
                        Error::Step { outcome, .. } => outcome.as_str(),
                        _ => "",
                    })
                    .collect();
                let shared = outcomes
                    .iter()
                    .all(|o| !o.is_empty() && *o == outcomes[0])
                    .then_some(outcomes[0]);
                for error in errors {
                    match error {
                        Error::Step { outcome, .. } => {
                            write!(f, "\n  ")?;
                            write_step(f, error, "  ")?;
                            if shared.is_none() && !outcome.is_empty() {
                                write!(f, "\n    {outcome}")?;
                            }
                        }
                        other => {
                            let text = other.to_string();
                            write!(f, "\n  {}", text.replace('\n', "\n  "))?;
                        }
                    }
                }
                if let Some(outcome) = shared {
                    write!(f, "\n  {outcome}")?;
                }
                Ok(())
            }
            Error::Image {
                stage,
                message,
                tail,
                ..
            } => {
                write!(f, "image ({stage}): {message}")?;
                write_tail(f, tail)?;
                Ok(())
            }
            Error::ChecksFailed { failed } => write!(
                f,
                "{} check(s) failed: {}",
                failed.len(),
                failed.join(", ")
            ),
            Error::BuildCommand {
                command,
                status,
                tail,
            } => {
                write!(f, "build command `{command}` failed with exit status {status}")?;
                write_tail(f, tail)?;
                Ok(())
            }
            Error::Interrupted { outcome } => write!(f, "interrupted: {outcome}"),
            Error::Secret {
                name, from, message, ..
            } => {
                write!(f, "secret {name} (from {from}) cannot be resolved: {message}")
            }
            Error::Usage { message, .. }
            | Error::Refused { message, .. }
            | Error::Archive { message }
            | Error::Project { message, .. } => f.write_str(message),
        }
    }
}

/// A failed step's host, step, status and last lines (not what it left: the caller says), each
/// line after the first indented by `indent` more.
fn write_step(f: &mut fmt::Formatter<'_>, step: &Error, indent: &str) -> fmt::Result {
    let Error::Step {
        host,
        step,
        status,
        tail,
        ..
    } = step
    else {
        return Ok(());
    };
    write!(f, "{host}: step `{step}` failed with exit status {status}")?;
    write_tail_indented(f, tail, indent)
}

/// The last lines a failed command printed, indented under its message; nothing at all when it
/// printed nothing but blank lines.
fn write_tail(f: &mut fmt::Formatter<'_>, tail: &[String]) -> fmt::Result {
    write_tail_indented(f, tail, "")
}

fn write_tail_indented(f: &mut fmt::Formatter<'_>, tail: &[String], indent: &str) -> fmt::Result {
    if tail.iter().all(|line| line.trim().is_empty()) {
        return Ok(());
    }
    write!(f, "\n{indent}  last lines of output:")?;
    for line in tail {
        write!(f, "\n{indent}  | {line}")?;
    }
    Ok(())
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The known name closest to `name` by edit distance, when it is close enough to be a typo.
pub fn suggest<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_target_names_only() {
        let known = vec!["staging".to_string(), "production".to_string()];
        assert_eq!(suggest("prodution", &known), Some("production"));
        assert_eq!(suggest("stagin", &known), Some("staging"));
        assert_eq!(suggest("qa", &known), None);
    }

    fn step(host: &str, step: &str, status: i32, tail: &str) -> Error {
        Error::Step {
            host: host.into(),
            step: step.into(),
            status,
            tail: tail.lines().map(str::to_string).collect(),
            outcome: "nothing was switched".into(),
        }
    }

    #[test]
    fn several_hosts_are_each_named_with_their_step_and_lines_and_one_hint_per_cause() {
        let denied = "mkdir: cannot create directory '/srv/a/releases/1': Permission denied";
        let error = Error::of_hosts(vec![
            step("a", "unpack", 1, denied),
            step("b", "unpack", 1, denied),
            step(
                "c",
                "before_migrate: backup",
                127,
                "sh: 1: backup: not found",
            ),
        ])
        .unwrap();
        let text = error.to_string();
        assert_eq!(
            text,
            format!(
                "3 hosts failed:\n  \
                 a: step `unpack` failed with exit status 1\n    last lines of output:\n    | {denied}\n  \
                 b: step `unpack` failed with exit status 1\n    last lines of output:\n    | {denied}\n  \
                 c: step `before_migrate: backup` failed with exit status 127\n    last lines of output:\n    | sh: 1: backup: not found\n  \
                 nothing was switched"
            )
        );
        let hints = error.hints();
        assert_eq!(hints.len(), 2, "{hints:?}");
        assert!(hints[0].starts_with("a, b: permission denied"), "{hints:?}");
        assert!(
            hints[1].starts_with("c: a program the step runs is missing"),
            "{hints:?}"
        );
        assert_eq!(error.exit_code(), EXIT_FAILED);

        // A lock wins the exit status; each host keeps its own outcome when they differ.
        let locked = Error::Locked {
            host: "d".into(),
            holder: "by bob".into(),
            live: true,
            held: false,
        };
        let mixed = Error::of_hosts(vec![step("a", "x", 1, ""), locked]).unwrap();
        assert_eq!(mixed.exit_code(), EXIT_LOCKED);
        assert!(
            mixed
                .to_string()
                .contains("\n    nothing was switched\n  d: locked by"),
            "{mixed}"
        );
        // One host's error is that error; none is none.
        assert!(matches!(
            Error::of_hosts(vec![step("a", "x", 1, "")]),
            Some(Error::Step { .. })
        ));
        assert!(Error::of_hosts(Vec::new()).is_none());
    }

    #[test]
    fn a_step_that_printed_only_blank_lines_shows_no_empty_block() {
        let text = step("a", "unpack", 1, "\n  \n").to_string();
        assert_eq!(
            text,
            "a: step `unpack` failed with exit status 1\n  nothing was switched"
        );
    }

    #[test]
    fn exit_codes_separate_usage_from_runtime_failures() {
        let unknown = Error::UnknownTarget {
            name: "x".into(),
            known: vec![],
        };
        assert_eq!(unknown.exit_code(), EXIT_USAGE);
        let locked = Error::Locked {
            host: "h".into(),
            holder: "me".into(),
            live: true,
            held: false,
        };
        assert_eq!(locked.exit_code(), EXIT_LOCKED);
    }
}
