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
/// The target's cron, run as the `schedule` process under supervisor.
pub(crate) const SCHEDULER: &str = include_str!("../../templates/remote/py/scheduler.py");

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
        ] {
            let out = std::process::Command::new("python3")
                .args([
                    "-c",
                    "import sys; compile(sys.argv[1], sys.argv[2], 'exec')",
                ])
                .arg(code)
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
}
