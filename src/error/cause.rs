//! Why a step failed, read from its exit status and what it printed last: the causes a person
//! fixes the same way whichever step or host met them. An error names each with one hint, and a
//! fleet's error gives one hint per cause naming the hosts it applies to, not one per host (or
//! none, with the cause only in the output above it). A host that cannot be reached is an
//! [`Error::Connection`](super::Error::Connection) with its own hint, grouped the same way.

/// A cause shipit recognises in a failed step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cause {
    /// The SSH user may not write (or read, or run) a path: `Permission denied`.
    Permission,
    /// A program the step runs is not on the host, or not on the PATH of its SSH session.
    MissingProgram,
    /// The migration gate found migrations that break the live release until the switch
    /// (`templates/remote/py/gate.py`); nothing was migrated.
    MigrationGate,
}

/// The status a shell gives a command it cannot find.
const NOT_FOUND: i32 = 127;

impl Cause {
    /// The cause of a step that exited with `status` after printing `tail`, when it is one
    /// shipit knows. The last line that names one wins: what failed is said last.
    pub(super) fn of_step(status: i32, tail: &[String]) -> Option<Cause> {
        let said = tail.iter().rev().find_map(|line| Cause::of_line(line));
        said.or((status == NOT_FOUND).then_some(Cause::MissingProgram))
    }

    fn of_line(line: &str) -> Option<Cause> {
        let line = line.trim_end();
        if line.starts_with("migration gate: refused") {
            Some(Cause::MigrationGate)
        } else if line.ends_with("Permission denied")
            || line.ends_with("Operation not permitted")
            || line.ends_with("Read-only file system")
        {
            Some(Cause::Permission)
        } else if line.ends_with(": not found")
            || line.ends_with(": command not found")
            || line.contains("is not on") && line.contains("'s PATH")
            || line.starts_with("this host lacks ")
        {
            Some(Cause::MissingProgram)
        } else {
            None
        }
    }

    /// What to do about it.
    pub(super) fn hint(self) -> &'static str {
        match self {
            Cause::Permission => {
                "permission denied: the SSH user must own deploy_to and everything under it \
                 (`sudo chown -R USER DEPLOY_TO` on the host) and be able to write the process \
                 manager's and nginx's directories the target names; the path is in the output above"
            }
            Cause::MissingProgram => {
                "a program the step runs is missing: install it on the host, or name it by its \
                 full path in shipit.toml (an SSH session's PATH often lacks /usr/sbin and \
                 /usr/local/bin); `shipit check` lists what each host lacks"
            }
            Cause::MigrationGate => {
                "each `fix:` line above says how to make the migration safe; the usual way is two \
                 deploys: first the code that stops using what the migration drops or changes, \
                 then the migration, or one deploy that marks the migration to run after the \
                 switch ([targets.T.migrations] after_switch); `--allow-breaking-migrations` (or \
                 [targets.T.migrations] allow) applies it anyway. The live release keeps serving"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn the_cause_is_read_from_the_last_line_that_names_one() {
        let mkdir = "mkdir: cannot create directory '/srv/app/releases/1': Permission denied";
        assert_eq!(
            Cause::of_step(1, &lines(&format!("{mkdir}\nmarked failed"))),
            Some(Cause::Permission)
        );
        for missing in [
            "sh: 1: xz: not found",
            "bash: xz: command not found",
            "nginx, which [targets.t.nginx] test runs, is not on deploy's PATH on this host (PATH=/usr/bin)",
            "this host lacks sha256sum, which shipit's remote steps need (on Alpine: apk add coreutils)",
        ] {
            assert_eq!(
                Cause::of_step(1, &lines(missing)),
                Some(Cause::MissingProgram),
                "{missing}"
            );
        }
        // Said last: a program that is missing because it could not be read.
        let both = format!("{mkdir}\nsh: 1: /opt/tool: Permission denied\nsh: 1: xz: not found");
        assert_eq!(
            Cause::of_step(1, &lines(&both)),
            Some(Cause::MissingProgram)
        );
        // Status 127 with nothing said is a command the shell did not find.
        assert_eq!(Cause::of_step(127, &[]), Some(Cause::MissingProgram));
        assert_eq!(
            Cause::of_step(1, &lines("OperationalError: no such table")),
            None
        );
        assert_eq!(Cause::of_step(1, &[]), None);
        let gate = "gate: breaking shop.0002_x: RemoveField: drops column \"note\"\n\
                    migration gate: refused, nothing was migrated";
        assert_eq!(Cause::of_step(1, &lines(gate)), Some(Cause::MigrationGate));
    }
}
