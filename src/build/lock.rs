//! Installs from a `uv.lock`: projects that lock with uv (`pyproject.toml` + `uv.lock`, as
//! `uv init` and cookiecutter-django make them) deploy without a hand-exported requirements
//! file. The build exports the lock with `uv export --frozen` into the release as
//! [`EXPORTED`], a pinned, hashed requirements file; from there the hosts (uv or pip), the venv
//! key and `shipit image` treat it like any requirements file. Exporting here, not on the
//! host, keeps the host's needs unchanged (pip works) and the archive reproducible: the same
//! lock exports the same bytes.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::config::{is_uv_lock, Target};
use crate::error::{Error, Result};

/// Where the exported requirements go in the release.
pub(crate) const EXPORTED: &str = ".shipit/requirements.txt";

/// The requirements file the hosts install for `requirements` (a file, or a `uv.lock`).
pub(crate) fn installed(requirements: &str) -> &str {
    if is_uv_lock(requirements) {
        EXPORTED
    } else {
        requirements
    }
}

/// The pinned requirements `lock` (a `uv.lock` under `root`) installs for `target`: its
/// dependencies without the project itself and without the default groups (`dev`), plus the
/// target's extras and groups.
pub(crate) fn export(root: &Path, lock: &str, target: &Target) -> Result<String> {
    export_with(
        root,
        lock,
        &target.environment,
        &target.extras,
        &target.groups,
    )
}

fn export_with(
    root: &Path,
    lock: &str,
    environment: &str,
    extras: &[String],
    groups: &[String],
) -> Result<String> {
    let project = root.join(lock);
    let project = project.parent().unwrap_or(root);
    let failed = |message: String, hint: &str| Error::Project {
        message,
        hint: Some(hint.to_string()),
    };
    let mut command = Command::new("uv");
    command
        .args(["export", "--frozen", "--format", "requirements-txt"])
        .args(["--no-default-groups", "--no-emit-project", "--no-header"])
        .arg("--project")
        .arg(project)
        .env("UV_NO_PROGRESS", "1")
        .stdin(Stdio::null());
    for extra in extras {
        command.args(["--extra", extra]);
    }
    for group in groups {
        command.args(["--group", group]);
    }
    let output = command.output().map_err(|e| {
        failed(
            format!("environment `{environment}` installs from {lock}, which shipit exports with `uv export`, and uv cannot run here: {e}"),
            "install uv where shipit runs (`pip install uv`, or https://docs.astral.sh/uv/), or export a requirements file yourself and name it in [project.requirements]",
        )
    })?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        return Err(failed(
            format!(
                "`uv export --frozen` of {lock} failed: {}",
                crate::output::printable(said.trim(), false)
            ),
            "check that uv.lock is committed beside pyproject.toml and up to date (`uv lock`), and that the target's extras and groups exist in pyproject.toml",
        ));
    }
    String::from_utf8(output.stdout).map_err(|_| {
        failed(
            format!("`uv export` of {lock} printed something that is not UTF-8"),
            "run `uv export --frozen` yourself to see it",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `testdata/uv_project`: asgiref, an extra `worker` (sqlparse), a `dev` group (iniconfig)
    /// and a `prod` group (typing-extensions), locked with `uv lock`.
    fn project() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/build/testdata/uv_project")
    }

    fn pins(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|l| !l.starts_with(' ') && !l.starts_with('#'))
            .map(|l| l.trim_end_matches(" \\"))
            .collect()
    }

    #[test]
    fn the_lock_exports_its_pins_with_hashes_without_dev_and_with_the_targets_extras_and_groups() {
        let root = project();
        let plain = export_with(&root, "uv.lock", "deployment", &[], &[]).unwrap();
        assert_eq!(pins(&plain), ["asgiref==3.8.1"], "{plain}");
        assert!(plain.contains("--hash=sha256:"), "{plain}");
        let all = export_with(
            &root,
            "uv.lock",
            "deployment",
            &["worker".into()],
            &["prod".into()],
        )
        .unwrap();
        assert_eq!(
            pins(&all),
            [
                "asgiref==3.8.1",
                "sqlparse==0.5.3",
                "typing-extensions==4.12.2"
            ],
            "{all}"
        );
        // The same lock exports the same bytes (the archive stays reproducible).
        assert_eq!(
            export_with(&root, "uv.lock", "deployment", &[], &[]).unwrap(),
            plain
        );
    }

    #[test]
    fn an_unknown_extra_or_a_missing_lock_fails_with_the_fix() {
        let root = project();
        let err = export_with(&root, "uv.lock", "deployment", &["nope".into()], &[]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`uv export --frozen` of uv.lock failed"),
            "{text}"
        );
        assert!(text.contains("nope"), "{text}");
        let empty = tempfile::tempdir().unwrap();
        let err = export_with(empty.path(), "uv.lock", "deployment", &[], &[]).unwrap_err();
        assert!(err.hint().unwrap().contains("uv lock"), "{err}");
        assert_eq!(installed("uv.lock"), EXPORTED);
        assert_eq!(installed("sub/uv.lock"), EXPORTED);
        assert_eq!(installed("requirements/prod.txt"), "requirements/prod.txt");
    }
}
