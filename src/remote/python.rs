//! The host-side Python: real `.py` files in `templates/remote/py/` (linted by ruff and
//! byte-compiled in CI), sent to the host as preamble values ([`super::preamble::Preamble`]),
//! so a phase is still one exec and the code may hold any character. The shell runs each as
//! `python -c "$PY_NAME" ARGS...` with the release's venv; the scheduler, a long-running
//! process, is kept in the release as `.shipit/scheduler.py` with its supervisor programs.

/// The health probe over the release's unix socket.
pub(crate) const PROBE: &str = include_str!("../../templates/remote/py/probe.py");
/// The settings probe and its reuse of the live release's answer.
pub(crate) const SETTINGS: &str = include_str!("../../templates/remote/py/settings.py");
/// migrate under an advisory lock, its plan, and the database state that decides skipping it.
pub(crate) const MIGRATE: &str = include_str!("../../templates/remote/py/migrate.py");
/// The migrations the database's table records as applied.
pub(crate) const APPLIED: &str = include_str!("../../templates/remote/py/applied.py");
/// Whether ALLOWED_HOSTS accepts the health check's Host.
pub(crate) const ALLOWED_HOST: &str = include_str!("../../templates/remote/py/allowed_host.py");
/// The migration gate: whether the migrations about to be applied break the live release.
pub(crate) const GATE: &str = include_str!("../../templates/remote/py/gate.py");
/// Database snapshots: taken before migrate applies something, listed, restored.
pub(crate) const SNAPSHOT: &str = include_str!("../../templates/remote/py/snapshot.py");
/// The target's cron, run as the `schedule` process under supervisor.
pub(crate) const SCHEDULER: &str = include_str!("../../templates/remote/py/scheduler.py");

/// `code` as it is sent in a preamble: without its comment-only and blank lines, and without
/// the docstrings of the module and of each `def` and `class` (a docstring is a line that
/// starts with `"""` first in the file or right after a `def`/`class` line, up to the line
/// holding the closing `"""`). Every exec carries the preamble's Python, and the docstrings are
/// a third of it. `every_file_compiles_with_the_hosts_python` compiles what is sent.
pub(crate) fn sent(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut lines = code.lines();
    let mut opens_block = true;
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if opens_block && trimmed.starts_with(r#"""""#) {
            let closed = trimmed.len() > 3 && trimmed[3..].contains(r#"""""#);
            if !closed {
                lines.by_ref().find(|l| l.contains(r#"""""#));
            }
            opens_block = false;
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        opens_block = (trimmed.starts_with("def ") || trimmed.starts_with("class "))
            && trimmed.ends_with(':');
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_compiles_with_the_hosts_python() {
        for (name, code) in [
            ("probe", PROBE),
            ("settings", SETTINGS),
            ("migrate", MIGRATE),
            ("applied", APPLIED),
            ("allowed_host", ALLOWED_HOST),
            ("scheduler", SCHEDULER),
            ("gate", GATE),
            ("snapshot", SNAPSHOT),
        ]
        .into_iter()
        .flat_map(|(name, code)| [(name, code.to_string()), (name, sent(code))])
        {
            let out = std::process::Command::new("python3")
                .args([
                    "-c",
                    "import sys; compile(sys.argv[1], sys.argv[2], 'exec')",
                ])
                .arg(&code)
                .arg(name)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn what_is_sent_has_no_docstring_comment_or_blank_line_and_keeps_the_code() {
        let code = "\"\"\"Module.\n\nMore.\n\"\"\"\n\nimport os\n\n\n# why\ndef f(a):\n    \"\"\"One line.\"\"\"\n    return a  # kept\n\n\nclass C:\n    \"\"\"Two\n    lines.\"\"\"\n\n    x = \"\"\"not a docstring\"\"\"\n";
        assert_eq!(
            sent(code),
            "import os\ndef f(a):\n    return a  # kept\nclass C:\n    x = \"\"\"not a docstring\"\"\"\n"
        );
    }
}
