//! The preamble: every variable the shell library reads from shipit, as one struct.
//!
//! A script starts with the library, then one `NAME='value'` line per field of [`Preamble`]
//! (quoted by [`crate::plan::quote`], the only way a value reaches a script), then its calls.
//! The shell reads `$NAME` and nothing else of shipit's: the tests below fail when the library
//! reads a name this struct does not declare, or the struct declares one the library never
//! reads, and shellcheck checks the whole library against [`Preamble::declarations`].

use std::collections::BTreeSet;
use std::sync::LazyLock;

use crate::remote::library::LIBRARY;

/// Declares [`Preamble`]: one `String` field per shell variable, in the order they are rendered.
macro_rules! preamble {
    ($( $(#[doc = $doc:literal])+ $field:ident: $name:literal, )*) => {
        /// The variables of one host's scripts (empty when unused).
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub(crate) struct Preamble {
            $( $(#[doc = $doc])+ pub(crate) $field: String, )*
        }

        impl Preamble {
            /// Every variable's shell name, in rendering order.
            pub(crate) const NAMES: &'static [&'static str] = &[$($name),*];

            /// Every variable's shell name and value, in rendering order.
            pub(crate) fn pairs(&self) -> [(&'static str, &str); Preamble::NAMES.len()] {
                [$(($name, self.$field.as_str())),*]
            }

            /// Sets the variable the shell calls `name` (tests of the shell library, which
            /// set what a case needs by the name the shell reads).
            #[cfg(test)]
            pub(crate) fn set_named(&mut self, name: &str, value: impl Into<String>) {
                self.set_field(name, value.into());
            }

            fn set_field(&mut self, name: &str, value: String) {
                match name {
                    $($name => self.$field = value,)*
                    _ => panic!("the preamble has no variable {name}"),
                }
            }
        }
    };
}

preamble! {
    /// `deploy_to`.
    d: "D",
    /// The release id this run deploys or rolls back to.
    id: "ID",
    /// The archive's sha256.
    sha: "SHA",
    /// This run's lock token.
    token: "TOKEN",
    /// What the run does: deploy, rollback, prune, lock, run, maintenance.
    op: "OP",
    /// Which lock to break: none, dead or force.
    break_lock: "BREAK",
    /// Who deploys (user@machine), for the lock and the deploy log.
    deployer: "DEPLOYER",
    /// The release's revision (commit), for the deploy log and hooks.
    revision: "REVISION",
    /// Which shipit runs ([`crate::provenance::LONG`]), for the deploy log.
    shipit_version: "SHIPIT_VERSION",
    /// The settings module every manage.py step, hook and app server uses.
    django_settings_module: "DJANGO_SETTINGS_MODULE",
    /// The python: a path, a command, or a version uv finds.
    python: "PY",
    /// UV_PYTHON_INSTALL_MIRROR where shipit runs: where uv downloads a python version from.
    python_mirror: "PY_MIRROR",
    /// The venv installer: uv, pip or auto.
    installer: "INSTALLER",
    /// The requirements file, inside the release.
    requirements: "REQ",
    /// manage.py, inside the release.
    manage: "MANAGE",
    /// `1` when shipit runs the app server through a process manager.
    app: "APP",
    /// The process manager of this target: supervisor, systemd or auto (`pm_NAME_*`).
    manager: "MANAGER",
    /// Every process manager, in the order `auto` tries them ([`crate::manager::names`]).
    managers: "MANAGERS",
    /// supervisorctl, as the deploy user runs it.
    ctl: "CTL",
    /// supervisor's program directory.
    confd: "CONFD",
    /// systemctl, as the deploy user runs it.
    systemctl: "SYSTEMCTL",
    /// journalctl, as the deploy user runs it.
    journalctl: "JOURNALCTL",
    /// systemd units' scope: system or user.
    scope: "SCOPE",
    /// The prefix of the target's systemd units (`<project>.<target>`).
    unit_prefix: "UNIT_PREFIX",
    /// The prefix releases made before it named their systemd units with (`<project>-<target>`).
    legacy_unit_prefix: "LEGACY_UNIT_PREFIX",
    /// The release's supervisor program.
    program: "PROGRAM",
    /// The glob of every release's supervisor program file of this project and target.
    program_glob: "PROGRAM_GLOB",
    /// The app server (`server_NAME_*`).
    server: "SERVER",
    /// `1` when shipit manages the nginx site.
    nginx: "NGINX",
    /// The nginx site's path.
    site: "SITE",
    /// The command that checks nginx's configuration.
    nginx_test: "NGINX_TEST",
    /// The command that reloads nginx.
    nginx_reload: "NGINX_RELOAD",
    /// The health check's path.
    health_path: "HEALTH_PATH",
    /// The health check's Host header.
    health_host: "HEALTH_HOST",
    /// The status the health check wants, or `any` (below 500).
    health_status: "HEALTH_STATUS",
    /// Seconds the new app server has to answer before the switch.
    health_timeout: "HEALTH_TIMEOUT",
    /// Tries of the health check after the switch.
    health_retries: "HEALTH_RETRIES",
    /// `1` once a rollback unapplied migrations on this host.
    unapplied: "UNAPPLIED",
    /// The app server's account (empty: the deploy user).
    app_user: "APP_USER",
    /// The target's name.
    target: "TARGET",
    /// The target's hosts, space-separated.
    hosts: "HOSTS",
    /// Seconds `step_lock` waits for a live lock.
    lock_wait: "LOCK_WAIT",
    /// Why `shipit lock acquire` holds the lock.
    lock_message: "LOCK_MESSAGE",
    /// Seconds a fleet's prepared host waits for the switch (`prepared_timeout`).
    prepared_timeout: "PREPARED_TIMEOUT",
    /// `1` when this host serves the web role (nginx site and web app server).
    web: "WEB",
    /// [`crate::remote::layout::APP_SOCKET`].
    app_socket: "APP_SOCK",
    /// [`crate::remote::layout::ENV_FILE`].
    env_file: "ENV_FILE",
    /// [`crate::remote::layout::TLS_DIR`].
    tls_dir: "SHIPIT_TLS_DIR",
    /// [`crate::remote::layout::TLS_CERTIFICATE`].
    tls_cert: "SHIPIT_TLS_CERT",
    /// [`crate::remote::layout::TLS_KEY`].
    tls_key: "SHIPIT_TLS_KEY",
    /// [`crate::remote::layout::TLS_WEBROOT`].
    tls_webroot: "SHIPIT_TLS_WEBROOT",
    /// [`crate::remote::layout::TLS_STAPLING`].
    tls_stapling: "SHIPIT_TLS_STAPLING",
    /// `1` when the target serves https (`[targets.T.tls]`).
    tls: "SHIPIT_TLS",
    /// The names the certificate must cover, space-separated (`shipit check`).
    tls_names: "SHIPIT_TLS_NAMES",
    /// [`crate::remote::layout::LOCKED_STATUS`].
    locked: "LOCKED",
    /// [`crate::remote::python::PROBE`].
    py_probe: "PY_PROBE",
    /// [`crate::remote::python::SETTINGS`].
    py_settings: "PY_SETTINGS",
    /// [`crate::remote::python::MIGRATE`].
    py_migrate: "PY_MIGRATE",
    /// [`crate::remote::python::APPLIED`].
    py_applied: "PY_APPLIED",
    /// [`crate::remote::python::ALLOWED_HOST`].
    py_allowed_host: "PY_ALLOWED_HOST",
    /// [`crate::remote::python::GATE`].
    py_gate: "PY_GATE",
    /// What the migration gate does about a breaking migration: refuse, warn, allow or off.
    gate: "GATE",
    /// `1`: an operation the gate cannot judge counts as breaking.
    gate_strict: "GATE_STRICT",
    /// Migrations (`app.name`, space-separated) the gate allows whatever they do.
    gate_allow: "GATE_ALLOW",
    /// Migrations (`app.name`, space-separated) applied after every host has switched.
    gate_after: "GATE_AFTER",
    /// [`crate::remote::python::SNAPSHOT`].
    py_snapshot: "PY_SNAPSHOT",
    /// When the primary takes a database snapshot by itself: `before-migrate`, or off (empty).
    db_backup: "DB_BACKUP",
    /// How many snapshots are kept (0: all).
    db_keep: "DB_KEEP",
}

/// What the script runtime sets itself before the first step (see `Script::render_calls`).
pub(crate) const RUNTIME: &[&str] = &["SHIPIT_NONCE", "SHIPIT_JOB", "SHIPIT_CLEANUP"];

impl Preamble {
    /// The preamble as shell: one quoted assignment per variable.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        for (name, value) in self.pairs() {
            out.push_str(&format!("{name}={}\n", crate::plan::quote(value)));
        }
        out
    }

    /// The preamble as `--dry-run -v` shows it: a value of several lines (the host-side
    /// Python) as its size, not its text.
    pub(crate) fn shown(&self) -> Preamble {
        let mut shown = self.clone();
        for (name, value) in self.pairs() {
            if value.contains('\n') {
                let summary = format!("[{} lines, {} bytes]", value.lines().count(), value.len());
                shown.set_field(name, summary);
            }
        }
        shown
    }

    /// What shellcheck is told the script sets before the library runs: every variable of the
    /// preamble and of the runtime, so that it reports a variable the library reads but nothing
    /// sets (SC2154) and one declared here that nothing reads (SC2034).
    #[cfg(test)]
    pub(crate) fn declarations() -> String {
        Preamble::NAMES
            .iter()
            .chain(RUNTIME)
            .map(|name| format!("{name}=''\n"))
            .collect()
    }
}

/// Every `$NAME` and `${NAME...}` of upper-case letters the library expands, and every
/// NAME it exports.
pub(crate) fn read_names(library: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in library.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let bytes = line.as_bytes();
        for (i, _) in line.match_indices('$') {
            let rest = &bytes[i + 1..];
            let rest = rest.strip_prefix(b"{").unwrap_or(rest);
            let name: String = rest
                .iter()
                .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || **b == b'_')
                .map(|&b| b as char)
                .collect();
            if name.starts_with(|c: char| c.is_ascii_uppercase()) {
                names.insert(name);
            }
        }
        if let Some(exported) = line.trim_start().strip_prefix("export ") {
            names.extend(exported.split_whitespace().map(str::to_string));
        }
    }
    names
}

/// Every upper-case NAME the library assigns itself (`NAME=`, `for NAME in`, `read NAME`).
pub(crate) fn set_names(library: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in library.lines() {
        for word in line.split(|c: char| c.is_whitespace() || c == ';' || c == '(') {
            if let Some((name, _)) = word.split_once('=') {
                if !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                {
                    names.insert(name.to_string());
                }
            }
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        for pair in words.windows(2) {
            if matches!(pair[0], "for" | "read" | "-r") {
                names.insert(pair[1].to_string());
            }
        }
    }
    names
}

/// Names that change how `sh` itself behaves (`IFS`, `ENV`, `PS4`, `CDPATH`, ...), or that it
/// keeps up to date itself (`PWD`, `OPTIND`, ...): a value from the app's environment would
/// change what every step after `shipit_load_env` does.
pub(crate) const SHELL_NAMES: &[&str] = &[
    "BASH_ENV",
    "CDPATH",
    "ENV",
    "HOME",
    "IFS",
    "LINENO",
    "OLDPWD",
    "OPTARG",
    "OPTIND",
    "PATH",
    "POSIXLY_CORRECT",
    "PPID",
    "PS1",
    "PS2",
    "PS4",
    "PWD",
    "SHELL",
    "SHELLOPTS",
    "BASHOPTS",
];

/// The prefix of shipit's own environment names (`SHIPIT_RELEASE`, `SHIPIT_NONCE`, ...).
pub(crate) const SHIPIT_PREFIX: &str = "SHIPIT_";

/// Why an app environment name (`[targets.T.env]`, `[targets.T.secrets]`) cannot be used: the
/// steps source `.shipit/env` with `set -a`, so such a name would replace what the library or
/// `sh` relies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reserved {
    /// `sh` reads it ([`SHELL_NAMES`]).
    Shell,
    /// shipit's namespace ([`SHIPIT_PREFIX`]).
    Shipit,
    /// The library reads or assigns it.
    Library,
}

/// Every upper-case name the library reads or assigns, with the preamble's and the runtime's:
/// derived from the library itself, so a name the shell gains is reserved with it.
pub(crate) fn library_names() -> &'static BTreeSet<String> {
    static NAMES: LazyLock<BTreeSet<String>> = LazyLock::new(|| {
        let mut names = read_names(LIBRARY);
        names.extend(set_names(LIBRARY));
        names.extend(Preamble::NAMES.iter().chain(RUNTIME).map(|n| n.to_string()));
        names
    });
    &NAMES
}

/// Whether `name` is reserved for the shell, shipit or its library, and why.
pub(crate) fn reserved(name: &str) -> Option<Reserved> {
    if SHELL_NAMES.contains(&name) {
        Some(Reserved::Shell)
    } else if name.starts_with(SHIPIT_PREFIX) {
        Some(Reserved::Shipit)
    } else if library_names().contains(name) {
        Some(Reserved::Library)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the library reads from outside: read, never set by itself, and not the host's
    /// environment.
    fn from_shipit(library: &str) -> BTreeSet<String> {
        let set = set_names(library);
        let environment = ["HOME", "PATH", "PPID", "PWD", "TMPDIR", "XDG_RUNTIME_DIR"];
        read_names(library)
            .into_iter()
            .filter(|name| !set.contains(name) && !environment.contains(&name.as_str()))
            .collect()
    }

    /// (read but not declared, declared but not read), for the library `library`.
    fn mismatch(library: &str) -> (Vec<String>, Vec<String>) {
        let read = from_shipit(library);
        let declared: BTreeSet<String> = Preamble::NAMES
            .iter()
            .chain(RUNTIME)
            .map(|n| n.to_string())
            .collect();
        let all_read = read_names(library);
        (
            read.difference(&declared).cloned().collect(),
            declared
                .iter()
                .filter(|name| !all_read.contains(*name))
                .cloned()
                .collect(),
        )
    }

    #[test]
    fn the_preamble_declares_exactly_what_the_library_reads() {
        let (undeclared, unread) = mismatch(LIBRARY);
        assert!(
            undeclared.is_empty(),
            "the library reads, undeclared: {undeclared:?}"
        );
        assert!(unread.is_empty(), "declared, never read: {unread:?}");
    }

    #[test]
    fn a_misspelt_name_on_either_side_is_caught() {
        let misspelt = LIBRARY.replace("\"$HEALTH_PATH\"", "\"$HEALTH_PAHT\"");
        assert_ne!(misspelt, LIBRARY);
        let (undeclared, unread) = mismatch(&misspelt);
        assert_eq!(undeclared, ["HEALTH_PAHT"]);
        assert!(unread.is_empty(), "{unread:?}");
        let unread_only = LIBRARY.replace("$LOCK_MESSAGE", "$LOCK_MSG_X");
        let (_, unread) = mismatch(&unread_only);
        assert_eq!(unread, ["LOCK_MESSAGE"]);
    }

    /// shellcheck's findings on the library after the declarations, or `None` without shellcheck.
    fn shellcheck(library: &str) -> Option<String> {
        let mut child = std::process::Command::new("shellcheck")
            .args(["-s", "sh", "-f", "gcc", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        // Each file is checked alone in CI, where a name set in one file and read in another
        // needs a directive; as one script those directives are dropped, so that a name
        // nothing reads, or one nothing sets, is still found.
        let whole: String = library
            .lines()
            .filter(|line| {
                let line = line.trim();
                line != "# shellcheck disable=SC2034" && line != "# shellcheck disable=SC2153"
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let text = format!("{}{whole}", Preamble::declarations());
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    #[test]
    fn shellcheck_finds_every_variable_of_the_library_set() {
        let Some(found) = shellcheck(LIBRARY) else {
            assert!(std::env::var_os("CI").is_none(), "CI must have shellcheck");
            eprintln!("shellcheck is not installed here: skipped (CI has it)");
            return;
        };
        assert_eq!(
            found, "",
            "shellcheck on the library with the preamble declared"
        );
        let misspelt = LIBRARY.replace("\"$HEALTH_PATH\"", "\"$HEALTH_PAHT\"");
        let found = shellcheck(&misspelt).unwrap();
        assert!(found.contains("HEALTH_PAHT may not be assigned"), "{found}");
        // shellcheck takes an upper-case name it has never seen for the environment's (no
        // SC2154): the_preamble_declares_exactly_what_the_library_reads catches that one.
    }

    #[test]
    fn a_dry_run_shows_the_python_by_its_size() {
        let preamble = Preamble {
            id: "20261122010320".into(),
            py_probe: "import sys\nsys.exit(0)\n".into(),
            ..Preamble::default()
        };
        let shown = preamble.shown();
        assert_eq!(shown.py_probe, "[2 lines, 23 bytes]");
        assert_eq!(shown.id, "20261122010320");
    }

    #[test]
    fn rendering_quotes_every_value_in_order() {
        let preamble = Preamble {
            d: "/srv/it's".into(),
            ..Preamble::default()
        };
        let text = preamble.render();
        assert!(text.starts_with("D='/srv/it'\\''s'\nID=''\n"), "{text}");
        assert_eq!(text.lines().count(), Preamble::NAMES.len());
    }
}
