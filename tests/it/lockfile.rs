//! Projects that lock with uv (`pyproject.toml` + `uv.lock`, as `uv init` makes them), against
//! a real host: they deploy with no exported requirements file. Needs root, and PyPI (or uv's
//! cache) for `uv lock` and the installs.

use std::process::Command;

use support::stack::*;

/// The `NAME==VERSION` pin of `name` in the example's requirements file.
fn pin(stack: &Stack, name: &str) -> String {
    stack
        .project
        .read("requirements/deployment.txt")
        .lines()
        .find(|l| l.starts_with(&format!("{name}==")))
        .unwrap_or_else(|| panic!("{name} is not pinned in requirements/deployment.txt"))
        .to_string()
}

/// Whether the release's venv can import `module`.
fn imports(stack: &Stack, module: &str) -> bool {
    Command::new(stack.deploy_to().join("current/.venv/bin/python"))
        .args(["-c", &format!("import {module}")])
        .output()
        .unwrap()
        .status
        .success()
}

/// The example project, locked with uv instead of pip-compiled: `requirements/` removed, the
/// default (`uv.lock`) used, an extra named by the target installed, the `dev` group not. The
/// same lock reuses the venv; a changed lock builds another.
#[test]
fn a_uv_locked_project_deploys_without_a_requirements_file() {
    let mut stack = Stack::start();
    let (django, gunicorn) = (pin(&stack, "django"), pin(&stack, "gunicorn"));
    let pyproject = |extra: &str| {
        format!(
            "[project]\nname = \"hello\"\nversion = \"1.0\"\nrequires-python = \">=3.11\"\n\
             dependencies = [\"{django}\", \"{gunicorn}\"]\n\n\
             [project.optional-dependencies]\nworker = [\"{extra}\"]\n\n\
             [dependency-groups]\ndev = [\"iniconfig==2.0.0\"]\n"
        )
    };
    stack
        .project
        .write("pyproject.toml", &pyproject("typing-extensions==4.12.2"));
    let root = stack.project.root.clone();
    let lock = || {
        let out = Command::new("uv")
            .args(["lock", "--quiet", "--python", "/usr/bin/python3"])
            .current_dir(&root)
            .output()
            .expect("run uv");
        assert!(
            out.status.success(),
            "uv lock: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    lock();
    stack.project.git(&["rm", "-r", "-q", "requirements"]);
    stack.project_toml = stack.project_toml.replace(
        "\n[project.requirements]\ndeployment = \"requirements/deployment.txt\"\n",
        "\n",
    );
    assert!(
        !stack.project_toml.contains("requirements"),
        "{}",
        stack.project_toml
    );
    stack.set_options(|o| o.extra = "extras = [\"worker\"]\n".into());

    let first = stack.deploy_ok();
    stack.serves_release(first["release"].as_str().unwrap());
    let exported =
        std::fs::read_to_string(stack.deploy_to().join("current/.shipit/requirements.txt"))
            .unwrap();
    assert!(
        exported.contains(&django) && exported.contains("--hash=sha256:"),
        "{exported}"
    );
    assert!(
        imports(&stack, "typing_extensions"),
        "the target's extra was not installed"
    );
    assert!(!imports(&stack, "iniconfig"), "the dev group was installed");

    stack.change_page("marker: same lock");
    let second = stack.deploy_ok();
    let venvs = stack.venvs();
    assert_eq!(venvs.len(), 1, "{venvs:?}");
    assert_eq!(
        second["venv"],
        serde_json::json!([format!("reused {}", venvs[0])])
    );

    stack
        .project
        .write("pyproject.toml", &pyproject("typing-extensions==4.12.1"));
    lock();
    stack.project.commit_all("another extra version");
    let third = stack.deploy_ok();
    assert_eq!(stack.venvs().len(), 2, "{third}");
    assert!(
        third["venv"][0].as_str().unwrap().starts_with("built "),
        "{third}"
    );
}
