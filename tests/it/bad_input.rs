//! The bad-input corpus: every case is something an operator can get wrong, and each must end
//! with one clear message, a non-zero exit status that scripts can trust, and nothing changed
//! where the site is served from.
//!
//! Configuration, deploy.map and template mistakes are caught before any host is touched
//! (exit 2). Mistakes only a host can reveal (a failing migration, nginx rejecting the site,
//! supervisor not running, an unwritable deploy_to) run a real deploy with the `local`
//! transport against a real first release, and check that `current`, the releases and the lock
//! are as they were. SSH-specific cases (unknown and changed host keys, wrong user, missing key,
//! unreachable host) run against a real sshd in `tests/deploy.rs`, and `~/.ssh/config` ones
//! (an option shipit cannot honour refused, no `ssh` client) in `tests/ssh.rs`; the ones that need no server are
//! here too.

use std::path::{Path, PathBuf};

use support::project::Project;
use support::Run;

/// A copy of the example project with a `t` target deploying locally into its own directory.
struct Case {
    project: Project,
    deploy_to: PathBuf,
}

const CONFIG: &str = r#"
[project]
name = "hello"
python = "/usr/bin/python3"

[project.requirements]
deployment = "requirements/deployment.txt"

[targets.t]
transport = "local"
deploy_to = "DEPLOY_TO"
environment = "deployment"
# These cases run as root on this machine.
allow_root = true
shared_dirs = ["var"]
"#;

impl Case {
    fn new() -> Case {
        let project = support::project::project();
        let deploy_to = project.sandbox.join("srv/app");
        project.write(
            "shipit.toml",
            &CONFIG.replace("DEPLOY_TO", deploy_to.to_str().unwrap()),
        );
        project.commit_all("target t");
        Case { project, deploy_to }
    }

    /// Replaces `from` with `to` in shipit.toml (committed).
    fn config(&self, from: &str, to: &str) -> &Self {
        self.project.edit_config(from, to);
        self.project.commit_all("config");
        self
    }

    fn write(&self, path: &str, text: &str) -> &Self {
        self.project.write(path, text);
        self.project.commit_all(path);
        self
    }

    fn run(&self, args: &[&str]) -> Run {
        Run::of(self.project.shipit().args(args))
    }

    /// A run that must fail; assert what it says with [`Run::says_error`].
    fn fails(&self, args: &[&str]) -> Run {
        let failure = self.run(args);
        assert_ne!(failure.code, 0, "expected a failure:\n{}", failure.stderr);
        failure
    }

    fn deploy_fails(&self) -> Run {
        self.fails(&["deploy", "--target", "t"])
    }

    fn deploy_ok(&self) {
        self.run(&["deploy", "--target", "t"]).expect_code(0);
    }

    /// `current`, the release directories and the lock, to compare before and after.
    fn host_state(&self) -> (Option<PathBuf>, Vec<String>, bool) {
        let current = std::fs::read_link(self.deploy_to.join("current")).ok();
        let mut releases: Vec<String> = std::fs::read_dir(self.deploy_to.join("releases"))
            .map(|dir| {
                dir.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        releases.sort();
        (
            current,
            releases,
            self.deploy_to.join(".shipit/lock").exists(),
        )
    }

    /// States of the releases, by id.
    fn state_of(&self, id: &str) -> String {
        std::fs::read_to_string(
            self.deploy_to
                .join("releases")
                .join(id)
                .join(".shipit/state"),
        )
        .unwrap_or_default()
        .trim()
        .to_string()
    }

    /// Asserts a configuration-level failure: exit 2 and no host directory created.
    fn refused_before_any_host(&self, args: &[&str], needles: &[&str]) {
        let failure = self.fails(args);
        assert_eq!(failure.code, 2, "{}", failure.stderr);
        failure.says_error(needles);
        assert!(!self.deploy_to.exists(), "a host directory was created");
    }

    /// Deploys once, then asserts that a failing deploy leaves `current` serving the first
    /// release, adds no live release and releases the lock.
    fn fails_after_a_good_release(&self, code: i32, needles: &[&str]) -> Run {
        let (current, releases, locked) = self.host_state();
        assert!(current.is_some() && !locked);
        let failure = self.deploy_fails();
        assert_eq!(failure.code, code, "{}", failure.stderr);
        failure.says_error(needles);
        let (after_current, after_releases, after_locked) = self.host_state();
        assert_eq!(after_current, current, "current moved");
        assert!(!after_locked, "the lock was left behind");
        for new in after_releases.iter().filter(|r| !releases.contains(r)) {
            assert_eq!(
                self.state_of(new),
                "failed",
                "release {new} is not marked failed"
            );
        }
        failure
    }
}

fn deploy(case: &Case, needles: &[&str]) {
    case.refused_before_any_host(&["deploy", "--target", "t"], needles);
}

// ---- shipit.toml ------------------------------------------------------------------------------

#[test]
fn malformed_toml() {
    let case = Case::new();
    case.config("[project]", "[project\n");
    deploy(&case, &["shipit.toml:", "unclosed table"]);
}

#[test]
fn unknown_project_key() {
    let case = Case::new();
    case.config(
        "name = \"hello\"\n",
        "name = \"hello\"\npyhton = \"python3\"\n",
    );
    deploy(&case, &["unknown field `pyhton`", "shipit.toml:"]);
}

#[test]
fn unknown_target_key() {
    let case = Case::new();
    case.config(
        "allow_root = true\nshared_dirs",
        "allow_root = true\nkeep = 3\nshared_dirs",
    );
    deploy(&case, &["unknown field `keep`", "keep_releases"]);
}

#[test]
fn unknown_target_names_the_known_ones() {
    let case = Case::new();
    case.refused_before_any_host(
        &["deploy", "--target", "tt"],
        &["unknown target `tt`", "known targets: t"],
    );
}

#[test]
fn missing_configuration_file() {
    let case = Case::new();
    case.refused_before_any_host(
        &[
            "--config",
            "/nonexistent/shipit.toml",
            "deploy",
            "--target",
            "t",
        ],
        &["/nonexistent/shipit.toml", "no such file"],
    );
}

#[test]
fn relative_deploy_to() {
    let case = Case::new();
    let path = case.deploy_to.to_str().unwrap().to_string();
    case.config(
        &format!("deploy_to = \"{path}\""),
        "deploy_to = \"srv/app\"",
    );
    deploy(
        &case,
        &["`targets.t.deploy_to`", "must be an absolute path"],
    );
}

/// Issue 22, defect 16: `/`, a path that is not written normalised, and system directories were
/// taken as a `deploy_to`.
#[test]
fn deploy_to_root_unnormalised_or_a_system_directory() {
    let case = Case::new();
    let path = case.deploy_to.to_str().unwrap().to_string();
    let sandbox = case.project.sandbox.to_str().unwrap().to_string();
    for (bad, needles, untouched) in [
        (
            "/".to_string(),
            &["is the root directory"][..],
            "/releases".to_string(),
        ),
        (
            format!("{sandbox}/srv/../srv/app"),
            &["not a normalised path", "hint: write the directory itself"][..],
            path.clone(),
        ),
        (
            format!("{path}/"),
            &["not a normalised path"][..],
            path.clone(),
        ),
        (
            "/etc/shipit-bad-input".to_string(),
            &["inside `/etc`, which belongs to the system", "hint:"][..],
            "/etc/shipit-bad-input".to_string(),
        ),
        (
            "/var/lib".to_string(),
            &["shared with everything else", "/var/lib/PROJECT"][..],
            "/var/lib/releases".to_string(),
        ),
    ] {
        case.config(
            &format!("deploy_to = \"{path}\""),
            &format!("deploy_to = \"{bad}\""),
        );
        let failure = case.fails(&["deploy", "--target", "t"]);
        assert_eq!(failure.code, 2, "{bad}: {}", failure.stderr);
        let mut with_key = vec!["shipit.toml:", "`targets.t.deploy_to`"];
        with_key.extend_from_slice(needles);
        failure.says_error(&with_key);
        assert!(
            !Path::new(&untouched).exists(),
            "{bad}: {untouched} was created"
        );
        case.config(
            &format!("deploy_to = \"{bad}\""),
            &format!("deploy_to = \"{path}\""),
        );
    }
}

/// Issue 22, defect 11: a template variable nginx reads could add a directive
/// (`server_name = "x; return 200"`).
#[test]
fn a_variable_nginx_reads_cannot_add_a_directive() {
    for value in ["x; return 200", "x\\n    location / { return 200; }", "x }"] {
        let case = Case::new();
        case.config(
            "shared_dirs = [\"var\"]\n",
            &format!("shared_dirs = [\"var\"]\n[targets.t.vars]\nserver_name = \"{value}\"\n"),
        );
        deploy(
            &case,
            &[
                "shipit.toml:",
                "`targets.t.vars.server_name`",
                "written into nginx.conf.j2",
                "would end a directive",
                "hint: write one line",
            ],
        );
    }
}

/// Issue 22, a suspicion to settle: env names are loaded into every deploy step with `set -a`,
/// so `PATH`, `D` or `MANAGE` would have changed what the steps do.
#[test]
fn env_names_of_the_deploy_scripts_are_refused() {
    for (table, name, needle) in [
        ("env", "PATH", "a name `sh` itself reads"),
        ("env", "D", "a variable of shipit's deploy scripts"),
        ("env", "MANAGE", "a variable of shipit's deploy scripts"),
        ("secrets", "IFS", "a name `sh` itself reads"),
        ("env", "SHIPIT_NONCE", "in shipit's own namespace"),
    ] {
        let case = Case::new();
        let value = if table == "env" {
            "\"x\""
        } else {
            "{ env = \"HOME\" }"
        };
        case.config(
            "shared_dirs = [\"var\"]\n",
            &format!("shared_dirs = [\"var\"]\n[targets.t.{table}]\n{name} = {value}\n"),
        );
        deploy(
            &case,
            &[
                "shipit.toml:",
                &format!("`targets.t.{table}.{name}`"),
                needle,
                "set -a",
                "hint:",
            ],
        );
    }
}

/// Paths with characters a shell, nginx or supervisor would interpret are refused outright.
#[test]
fn deploy_to_with_shell_or_config_syntax() {
    let marker = std::env::temp_dir().join(format!("shipit-pwned-{}", std::process::id()));
    for evil in [
        "/srv/my app".to_string(),
        "/srv/it's".to_string(),
        "/srv/a;b".to_string(),
        format!("/srv/$(touch {})", marker.display()),
        "/srv/`id`".to_string(),
        "/srv/a\\nb".to_string(),
    ] {
        let case = Case::new();
        let path = case.deploy_to.to_str().unwrap().to_string();
        case.config(
            &format!("deploy_to = \"{path}\""),
            &format!("deploy_to = \"{evil}\""),
        );
        deploy(
            &case,
            &[
                "`targets.t.deploy_to`",
                "written into nginx and supervisor configs",
            ],
        );
    }
    assert!(!marker.exists(), "a command in deploy_to ran");
}

#[test]
fn host_with_an_invalid_port() {
    let case = Case::new();
    deploy_with_hosts(
        &case,
        "deploy@example.com:99999",
        &["`targets.t.hosts`", "invalid port `99999`"],
    );
}

#[test]
fn host_with_spaces() {
    let case = Case::new();
    deploy_with_hosts(
        &case,
        "deploy@exa mple.com",
        &["`targets.t.hosts`", "contains whitespace"],
    );
}

fn deploy_with_hosts(case: &Case, host: &str, needles: &[&str]) {
    case.config("transport = \"local\"", &format!("hosts = [\"{host}\"]"));
    deploy(case, needles);
}

#[test]
fn host_that_reads_as_an_option() {
    let case = Case::new();
    deploy_with_hosts(
        &case,
        "-oProxyCommand=touch",
        &["`targets.t.hosts`", "starts with `-`"],
    );
}

#[test]
fn jump_host_with_a_bad_port() {
    let case = Case::new();
    case.config(
        "transport = \"local\"",
        "hosts = [\"deploy@app.example.com\"]\njump = \"ops@bastion:ssh\"",
    );
    deploy(&case, &["`targets.t.jump`", "invalid port `ssh`"]);
}

#[test]
fn jump_host_for_a_local_target() {
    let case = Case::new();
    case.config(
        "transport = \"local\"",
        "transport = \"local\"\njump = \"ops@bastion\"",
    );
    deploy(&case, &["`targets.t.jump`", "takes no jump host"]);
}

#[test]
fn keep_releases_zero() {
    let case = Case::new();
    case.config(
        "shared_dirs = [\"var\"]\n",
        "shared_dirs = [\"var\"]\nkeep_releases = 0\n",
    );
    deploy(&case, &["`targets.t.keep_releases`", "between 1 and 1000"]);
}

#[test]
fn shared_path_climbing_out() {
    let case = Case::new();
    case.config("shared_dirs = [\"var\"]\n", "shared_dirs = [\"../var\"]\n");
    deploy(&case, &["`targets.t.shared_dirs`", "must not contain `..`"]);
}

#[test]
fn the_same_host_twice() {
    let case = Case::new();
    case.config(
        "transport = \"local\"",
        "hosts = [\"deploy@app.example.com\", \"root@APP.example.com:22\"]",
    );
    deploy(
        &case,
        &["shipit.toml:", "`targets.t.hosts`", "listed twice"],
    );
}

#[test]
fn shared_paths_naming_the_release_shipit_or_each_other() {
    for (shared, needles) in [
        (
            "shared_dirs = [\".\"]",
            &["`targets.t.shared_dirs`", "the release directory itself"][..],
        ),
        (
            "shared_dirs = [\".shipit\"]",
            &["`targets.t.shared_dirs`", "inside `.shipit`"],
        ),
        (
            "shared_dirs = [\"var\", \"var/log\"]",
            &["`targets.t.shared_dirs`", "inside `var`"],
        ),
        (
            "shared_dirs = [\"var\"]\nshared_files = [\"var\"]",
            &["`targets.t.shared_files`", "`var` is already shared"],
        ),
    ] {
        let case = Case::new();
        case.config("shared_dirs = [\"var\"]", shared);
        let mut with_line = vec!["shipit.toml:"];
        with_line.extend_from_slice(needles);
        deploy(&case, &with_line);
    }
}

#[test]
fn variable_shadowing_a_builtin() {
    let case = Case::new();
    case.config(
        "shared_dirs = [\"var\"]\n",
        "shared_dirs = [\"var\"]\n[targets.t.vars]\nrelease = \"x\"\n",
    );
    deploy(&case, &["`targets.t.vars.release`", "set by shipit"]);
}

#[test]
fn variable_with_an_invalid_name() {
    let case = Case::new();
    case.config(
        "shared_dirs = [\"var\"]\n",
        "shared_dirs = [\"var\"]\n[targets.t.vars]\n\"server-name\" = \"x\"\n",
    );
    deploy(
        &case,
        &["`targets.t.vars.server-name`", "letters, digits and `_`"],
    );
}

#[test]
fn health_path_without_slash() {
    let case = Case::new();
    case.config(
        "shared_dirs = [\"var\"]\n",
        "shared_dirs = [\"var\"]\n[targets.t.health]\npath = \"health\"\n",
    );
    deploy(&case, &["`targets.t.health.path`", "must start with `/`"]);
}

#[test]
fn relative_nginx_site() {
    let case = Case::new();
    case.config(
        "shared_dirs = [\"var\"]\n",
        "shared_dirs = [\"var\"]\n[targets.t.nginx]\nsite = \"sites/hello.conf\"\n",
    );
    deploy(&case, &["`targets.t.nginx.site`", "absolute path"]);
}

// ---- deploy.map and templates -------------------------------------------------------------------

#[test]
fn deploy_map_line_with_three_fields() {
    let case = Case::new();
    case.write(
        "conf/deploy.map",
        "selector.py.j2 hello/settings/selected.py extra\n",
    );
    deploy(&case, &["deploy.map:1:", "found 3 fields"]);
}

#[test]
fn deploy_map_unbalanced_quote() {
    let case = Case::new();
    case.write(
        "conf/deploy.map",
        "# ok\n\"selector.py.j2 hello/settings/selected.py\n",
    );
    deploy(&case, &["deploy.map:2:", "unbalanced quotes"]);
}

#[test]
fn deploy_map_absolute_destination() {
    let case = Case::new();
    case.write("conf/deploy.map", "selector.py.j2 /etc/cron.d/evil\n");
    deploy(&case, &["deploy.map:1:", "must be a relative path"]);
}

/// Issue 22, defect 10: a rendered file inside a shared directory or `.venv` was archived, then
/// hidden by the host's link into shared/ or replaced by the venv the host builds.
#[test]
fn deploy_map_destination_under_a_shared_path_or_the_venv() {
    for (map, needles) in [
        (
            "selector.py.j2 hello/settings/selected.py\nselector.py.j2 var/selected.py\n",
            &[
                "deploy.map:2:",
                "`var/selected.py` is inside `var`",
                "`targets.t.shared_dirs`",
                "render it elsewhere",
            ][..],
        ),
        (
            "selector.py.j2 .venv/lib/selected.py\n",
            &["deploy.map:1:", "inside `.venv/`", "each host builds"][..],
        ),
    ] {
        let case = Case::new();
        case.write("conf/deploy.map", map);
        deploy(&case, needles);
    }
}

#[test]
fn deploy_map_missing_template() {
    let case = Case::new();
    case.write("conf/deploy.map", "missing.j2 hello/settings/selected.py\n");
    deploy(&case, &["deploy.map:1:", "missing.j2", "not found"]);
}

#[test]
fn template_with_an_undefined_variable() {
    let case = Case::new();
    case.write(
        "conf/templates/selector.py.j2",
        "from .deployment import *\nX = {{ sever_name | tojson }}\n",
    );
    deploy(&case, &["selector.py.j2:2:", "undefined"]);
}

#[test]
fn template_with_a_syntax_error() {
    let case = Case::new();
    case.write("conf/templates/nginx.conf.j2", "server {\n{% if %}\n}\n");
    case.config(
        "shared_dirs = [\"var\"]\n",
        &format!(
            "shared_dirs = [\"var\"]\n[targets.t.nginx]\nsite = \"{}\"\n",
            case.project.sandbox.join("site.conf").display()
        ),
    );
    deploy(&case, &["nginx.conf.j2:2:", "syntax error"]);
}

#[test]
fn a_symlink_leaving_the_project() {
    let case = Case::new();
    case.project.symlink("../../../etc/passwd", "escape");
    case.project.commit_all("escape");
    deploy(&case, &["`escape`", "outside the project"]);
}

// ---- arguments --------------------------------------------------------------------------------

#[test]
fn a_release_id_with_shell_syntax_is_just_unknown() {
    let case = Case::new();
    case.deploy_ok();
    let before = case.host_state();
    let marker = case.project.sandbox.join("pwned");
    let evil = format!("$(touch {})", marker.display());
    let failure = case.fails(&["rollback", "--target", "t", "--to", &evil]);
    assert_eq!(failure.code, 5, "a refusal");
    failure.says_error(&["there is no release", "nothing was changed"]);
    assert!(!marker.exists());
    assert_eq!(case.host_state(), before);
}

#[test]
fn rollback_with_nothing_to_go_back_to() {
    let case = Case::new();
    case.deploy_ok();
    let before = case.host_state();
    case.fails(&["rollback", "--target", "t"])
        .says_error(&["no earlier good release"]);
    assert_eq!(case.host_state(), before);
}

/// Issue 22, defect 12: directories under `releases/` whose names are not release ids are the
/// operator's: a prune leaves them, says it ignored them, and never reports or logs them removed.
#[test]
fn odd_release_directories_are_ignored_and_reported() {
    let case = Case::new();
    case.deploy_ok();
    let releases = case.deploy_to.join("releases");
    for odd in ["old-copy", "20260101000001.bak"] {
        std::fs::create_dir_all(releases.join(odd).join(".shipit")).unwrap();
        std::fs::write(releases.join(odd).join(".shipit/state"), "good\n").unwrap();
    }
    for args in [
        &["releases", "--target", "t"][..],
        &[
            "releases", "--target", "t", "--prune", "--keep", "1", "--yes",
        ][..],
    ] {
        let run = case.run(args);
        run.expect_code(0);
        for odd in ["old-copy", "20260101000001.bak"] {
            assert!(
                run.stdout
                    .contains(&format!("ignored releases/{odd}: not a release id")),
                "{args:?}: {}",
                run.stdout
            );
            assert!(releases.join(odd).is_dir(), "{odd} was removed");
        }
        assert!(!run.stdout.contains("removed 2"), "{}", run.stdout);
    }
    let log = std::fs::read_to_string(case.deploy_to.join(".shipit/log")).unwrap();
    assert!(!log.contains("old-copy") && !log.contains(".bak"), "{log}");
}

#[test]
fn prune_keep_zero_is_a_usage_error() {
    let case = Case::new();
    let failure = case.fails(&["releases", "--target", "t", "--prune", "--keep", "0"]);
    assert_eq!(failure.code, 2);
    assert!(failure.stderr.contains("--keep"), "{}", failure.stderr);
    assert!(!case.deploy_to.exists());
}

#[test]
fn variables_are_data_not_code() {
    let case = Case::new();
    let marker = case.project.sandbox.join("pwned");
    let evil = format!("x'; $(touch {m}) `touch {m}`\\n\\\"", m = marker.display());
    case.config(
        "shared_dirs = [\"var\"]\n",
        &format!("shared_dirs = [\"var\"]\n[targets.t.vars]\nnote = \"{evil}\"\n"),
    );
    case.write(
        "conf/templates/selector.py.j2",
        "from .deployment import *  # noqa\nNOTE = {{ note | tojson }}\n",
    );
    case.deploy_ok();
    assert!(!marker.exists(), "a variable ran as a command");
}

// ---- what only a host can tell ------------------------------------------------------------------

#[test]
fn missing_requirements_file() {
    let case = Case::new();
    case.deploy_ok();
    case.config(
        "environment = \"deployment\"",
        "environment = \"production\"",
    );
    let failure =
        case.fails_after_a_good_release(2, &["requirements/production.txt", "not in the archive"]);
    assert!(failure.stderr.contains("hint:"));
}

#[test]
fn missing_manage_py() {
    let case = Case::new();
    case.deploy_ok();
    case.project.git(&["rm", "-q", "manage.py"]);
    case.project.commit_all("no manage.py");
    case.fails_after_a_good_release(2, &["`manage.py` is not in the archive"]);
}

#[test]
fn failing_migration() {
    let case = Case::new();
    case.deploy_ok();
    case.write(
        "pages/migrations/0002_fail.py",
        "from django.db import migrations\n\n\ndef boom(apps, schema_editor):\n    raise RuntimeError('migration exploded')\n\n\nclass Migration(migrations.Migration):\n    dependencies = [('pages', '0001_initial')]\n    operations = [migrations.RunPython(boom)]\n",
    );
    case.fails_after_a_good_release(1, &["step `migrate` failed", "migration exploded"]);
}

#[test]
fn failing_collectstatic() {
    let case = Case::new();
    case.deploy_ok();
    // Hashed names, and a stylesheet that refers to a file that does not exist.
    let settings = case.project.read("hello/settings/deployment.py")
        + "\nSTORAGES = {\"default\": {\"BACKEND\": \"django.core.files.storage.FileSystemStorage\"}, \"staticfiles\": {\"BACKEND\": \"django.contrib.staticfiles.storage.ManifestStaticFilesStorage\"}}\n";
    case.write("hello/settings/deployment.py", &settings);
    let css = case.project.read("pages/static/pages/site.css")
        + "\nbody { background: url(\"missing.png\"); }\n";
    case.write("pages/static/pages/site.css", &css);
    case.fails_after_a_good_release(1, &["step `collectstatic` failed", "missing.png"]);
}

#[test]
fn nginx_rejecting_the_site() {
    let case = Case::new();
    let site = case.project.sandbox.join("sites/hello.conf");
    std::fs::create_dir_all(site.parent().unwrap()).unwrap();
    std::fs::write(&site, "# the site nginx serves today\n").unwrap();
    case.config(
        "shared_dirs = [\"var\"]\n",
        &format!("shared_dirs = [\"var\"]\n[targets.t.nginx]\nsite = \"{}\"\ntest = \"echo 'nginx: [emerg] unexpected end of file' && false\"\nreload = \"true\"\n", site.display()),
    );
    // This "nginx" rejects every site, so even a first deploy fails: the site it serves today
    // must come back, and no `current` may appear.
    let failure = case.deploy_fails();
    assert_eq!(failure.code, 1);
    failure.says_error(&["step `nginx-check` failed", "unexpected end of file"]);
    assert_eq!(
        std::fs::read_to_string(&site).unwrap(),
        "# the site nginx serves today\n"
    );
    assert!(std::fs::read_link(case.deploy_to.join("current")).is_err());
    assert!(!case.deploy_to.join(".shipit/lock").exists());
}

#[test]
fn supervisor_not_running() {
    let case = Case::new();
    case.deploy_ok();
    let conf_dir = case.project.sandbox.join("supervisor.d");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let ctl = format!(
        "supervisorctl -s unix://{}/nothing.sock",
        case.project.sandbox.display()
    );
    case.config(
        "shared_dirs = [\"var\"]\n",
        &format!("shared_dirs = [\"var\"]\n[targets.t.supervisor]\nconf_dir = \"{}\"\nctl = \"{ctl}\"\n[targets.t.health]\ntimeout = 2\n", conf_dir.display()),
    );
    case.fails_after_a_good_release(1, &["step `start-app` failed"]);
    assert_eq!(
        std::fs::read_dir(&conf_dir).unwrap().count(),
        0,
        "the program config was left behind"
    );
}

#[test]
fn deploy_to_not_writable() {
    // Root may write anywhere but below a file (a deploy_to under /proc is refused as a system
    // directory before any host is reached).
    let case = Case::new();
    let path = case.deploy_to.to_str().unwrap().to_string();
    let file = case.project.sandbox.join("a-file");
    std::fs::write(&file, "").unwrap();
    let below = file.join("app");
    case.config(
        &format!("deploy_to = \"{path}\""),
        &format!("deploy_to = \"{}\"", below.display()),
    );
    let failure = case.deploy_fails();
    assert_eq!(failure.code, 1);
    failure.says_error(&["step `layout` failed", below.to_str().unwrap()]);
    assert!(!below.exists());
}

#[test]
fn a_held_lock() {
    let case = Case::new();
    case.deploy_ok();
    std::fs::create_dir(case.deploy_to.join(".shipit/lock")).unwrap();
    std::fs::write(
        case.deploy_to.join(".shipit/lock/info"),
        "token=x\nby=alice@laptop\nsince=2026-11-22T00:00:00Z\n",
    )
    .unwrap();
    let before = case.host_state();
    let failure = case.deploy_fails();
    assert_eq!(failure.code, 4);
    failure.says_error(&["locked by", "alice@laptop", "--break-lock"]);
    assert_eq!(case.host_state(), before);
    assert!(
        !failure.stderr.contains("token=x"),
        "the lock token leaked into the message"
    );
}

#[test]
fn unreachable_host() {
    let case = Case::new();
    let port = support::free_port();
    case.config(
        "transport = \"local\"",
        &format!("hosts = [\"deploy@127.0.0.1:{port}\"]"),
    );
    let failure = case.deploy_fails();
    assert_eq!(failure.code, 3);
    failure.says_error(&[
        &format!("127.0.0.1:{port}"),
        "cannot connect",
        "Connection refused",
    ]);
}

#[test]
fn a_port_that_is_not_ssh() {
    let case = Case::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(1) {
            use std::io::Write;
            let mut stream = stream.unwrap();
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        }
    });
    case.config(
        "transport = \"local\"",
        &format!("hosts = [\"deploy@127.0.0.1:{port}\"]"),
    );
    let failure = case.deploy_fails();
    assert_eq!(failure.code, 3);
    failure.says_error(&[&format!("127.0.0.1:{port}"), "handshake failed"]);
}
