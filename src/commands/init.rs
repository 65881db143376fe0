//! `shipit init`: a first `shipit.toml`, `conf/deploy.map` and requirements input for a Django
//! project, from what the project already says about itself.
//!
//! Detection reads the project (manage.py's `DJANGO_SETTINGS_MODULE`, the settings' module or
//! package, `WSGI_APPLICATION`, requirements files) into a [`Detected`]; rendering the files is
//! pure; writing never replaces an existing file (`skip PATH (exists)`), so `init` is safe to run
//! in a project that is already set up.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::cli::InitArgs;
use crate::error::{Error, Result};
use crate::output::Printer;

/// What `init` learnt about the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Detected {
    /// `project.name`: the settings' top package.
    pub(crate) name: String,
    /// The module manage.py names, e.g. `mysite.settings` or `hello.settings.development`.
    pub(crate) manage_settings: String,
    /// The package the selector goes into (`mysite`, `hello.settings`).
    pub(crate) selector_package: String,
    /// The selector's file, relative to the project (`mysite/selected_settings.py`).
    pub(crate) selector_path: String,
    /// The module the selector imports (`settings`, `production`): `environment` unless set.
    pub(crate) settings: String,
    /// The target's environment.
    pub(crate) environment: String,
    /// `module:callable` gunicorn serves.
    pub(crate) wsgi_app: String,
    /// Requirements file of the environment, relative to the project.
    pub(crate) requirements: String,
    /// Whether that file exists; when not, `requirements_in` is what to compile it from.
    pub(crate) requirements_found: bool,
    /// Every requirements `.txt` found.
    pub(crate) requirements_files: Vec<String>,
    /// The `.in` file compiled into `requirements` (written when missing).
    pub(crate) requirements_in: String,
}

impl Detected {
    /// `DJANGO_SETTINGS_MODULE` on the hosts: the selector.
    pub(crate) fn selector_module(&self) -> String {
        let file = Path::new(&self.selector_path)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("selected");
        format!("{}.{file}", self.selector_package)
    }
}

/// Environments `init` recognises among a settings package's modules, in order of preference.
const DEPLOYED: &[&str] = &["production", "deployment", "prod", "staging"];

/// Reads the Django project at `root`.
pub(crate) fn detect(root: &Path, manage_py: &str) -> Result<Detected> {
    let manage = root.join(manage_py);
    let text = std::fs::read_to_string(&manage).map_err(|_| Error::Project {
        message: format!("no {manage_py} in {}: this is not a Django project", root.display()),
        hint: Some(
            "run `shipit init` at the root of the project (where manage.py is), or create one with `django-admin startproject NAME .`"
                .into(),
        ),
    })?;
    let manage_settings = quoted_after(&text, "DJANGO_SETTINGS_MODULE").ok_or_else(|| {
        Error::Project {
            message: format!("{manage_py} sets no DJANGO_SETTINGS_MODULE"),
            hint: Some("it should call os.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"PROJECT.settings\")".into()),
        }
    })?;
    let as_path = |module: &str| root.join(module.replace('.', "/"));
    let parts: Vec<&str> = manage_settings.split('.').collect();
    let parent = parts[..parts.len() - 1].join(".");
    let last = parts[parts.len() - 1].to_string();
    // A settings package (hello/settings/ with base.py, production.py, ...) or one module.
    let (package, modules) = if as_path(&manage_settings).join("__init__.py").is_file() {
        (
            manage_settings.clone(),
            modules_of(&as_path(&manage_settings)),
        )
    } else if !parent.is_empty()
        && as_path(&parent).join("__init__.py").is_file()
        && parts.len() > 2
    {
        (parent.clone(), modules_of(&as_path(&parent)))
    } else {
        (parent.clone(), Vec::new())
    };
    let deployed = DEPLOYED
        .iter()
        .find(|m| modules.iter().any(|x| x == *m))
        .map(|m| m.to_string());
    let (selector_file, environment, settings) = match deployed {
        Some(env) => ("selected.py", env.clone(), env),
        None if modules.is_empty() => ("selected_settings.py", "production".into(), last),
        // A package without a production module: select the module manage.py uses.
        None => ("selected.py", "production".into(), last),
    };
    let top = parts[0].to_string();
    let name: String = top
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let settings_text = settings_text(root, &manage_settings, &package);
    let wsgi_app = quoted_after(&settings_text, "WSGI_APPLICATION")
        .and_then(|w| w.rsplit_once('.').map(|(m, f)| format!("{m}:{f}")))
        .unwrap_or_else(|| format!("{top}.wsgi:application"));

    let requirements_files = requirements_files(root);
    let wanted = [
        environment.as_str(),
        "production",
        "deployment",
        "prod",
        "base",
        "requirements",
    ];
    let found = wanted.iter().find_map(|w| {
        requirements_files.iter().find(|f| {
            let stem = Path::new(f)
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("");
            stem == *w || stem == format!("requirements-{w}")
        })
    });
    let found = found.or(requirements_files.first()).cloned();
    let requirements = found.clone().unwrap_or_else(|| "requirements.txt".into());
    let requirements_in = Path::new(&requirements)
        .with_extension("in")
        .to_string_lossy()
        .into_owned();
    let selector_path = format!("{}/{selector_file}", package.replace('.', "/"));
    Ok(Detected {
        name,
        manage_settings,
        selector_package: package,
        selector_path,
        settings,
        environment,
        wsgi_app,
        requirements_found: found.is_some(),
        requirements,
        requirements_files,
        requirements_in,
    })
}

/// The string literal after `key` on the first line naming it (`KEY = "x"`, `("KEY", "x")`).
fn quoted_after(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|line| {
            let rest = &line[line.find(key)? + key.len()..];
            let rest = rest.trim_start_matches(['"', '\'']);
            let start = rest.find(['"', '\''])?;
            let quote = rest.as_bytes()[start] as char;
            let value = &rest[start + 1..];
            Some(value[..value.find(quote)?].to_string())
        })
        .filter(|v| !v.is_empty())
}

fn modules_of(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".py").map(str::to_string)
        })
        .filter(|n| n != "__init__")
        .collect();
    names.sort();
    names
}

/// The text of every settings file (module or package) where WSGI_APPLICATION may be set.
fn settings_text(root: &Path, module: &str, package: &str) -> String {
    let mut text = String::new();
    let file = root.join(format!("{}.py", module.replace('.', "/")));
    text.push_str(&std::fs::read_to_string(file).unwrap_or_default());
    let dir = root.join(package.replace('.', "/"));
    for m in modules_of(&dir) {
        text.push_str(&std::fs::read_to_string(dir.join(format!("{m}.py"))).unwrap_or_default());
    }
    text
}

/// `requirements.txt`, `requirements-*.txt` and `requirements/*.txt`, sorted.
fn requirements_files(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for (dir, prefix) in [
        (root.to_path_buf(), ""),
        (root.join("requirements"), "requirements/"),
    ] {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let top_level = prefix.is_empty() && name.starts_with("requirements");
            if name.ends_with(".txt") && (top_level || !prefix.is_empty()) {
                found.push(format!("{prefix}{name}"));
            }
        }
    }
    found.sort();
    found
}

/// The files `init` writes, relative to the project, with their text.
pub(crate) fn files(d: &Detected, deploy_map: &str) -> Vec<(String, String)> {
    let mut files = vec![
        ("shipit.toml".to_string(), config_text(d, deploy_map)),
        (
            deploy_map.to_string(),
            format!(
                "# Files rendered into the archive for the target being built (see the README).\n\
                 # TEMPLATE                 DESTINATION (inside the archive)\n\
                 selector.py.j2             {}\n",
                d.selector_path
            ),
        ),
    ];
    if !d.requirements_found {
        files.push((
            d.requirements_in.clone(),
            "# What the project needs directly; compile it into the pinned file shipit installs:\n\
             #   uv pip compile requirements.in -o requirements.txt\n\
             django\n\
             gunicorn\n"
                .replace("requirements.in", &d.requirements_in)
                .replace("requirements.txt", &d.requirements),
        ));
    }
    files
}

fn config_text(d: &Detected, deploy_map: &str) -> String {
    let settings_var = if d.settings == d.environment {
        String::new()
    } else {
        format!(
            "# The settings module the selector imports (default: the environment's name).\n\
             settings = \"{}\"\n",
            d.settings
        )
    };
    format!(
        r#"# shipit configuration, written by `shipit init`. Every optional key shows its default in a
# comment; `shipit config` prints the resolved configuration and every template variable.

[project]
# Names services and archives: letters, digits, `_` and `-`.
name = "{name}"
# Interpreter on the hosts that creates the virtualenv: a path, a command, or a version
# ("3.12") that uv finds or installs.
# python = "python3"
# DJANGO_SETTINGS_MODULE on the hosts: the selector {deploy_map} renders, which imports the
# settings of the target's environment. manage.py keeps using {manage_settings} locally.
settings_module = "{selector_module}"
wsgi_app = "{wsgi_app}"
# manage_py = "manage.py"
# deploy_map = "{deploy_map}"
# templates_dir = "conf/templates"
# Paths never archived (gitignore syntax); git-untracked files never are anyway.
exclude = ["*.sqlite3"]

# The pip-compiled (complete, pinned) requirements each environment installs.
[project.requirements]
{environment} = "{requirements}"

[targets.production]
# user@host:port or a ~/.ssh/config alias; edit before deploying.
hosts = ["deploy@your-server.example.com"]
# Releases, shared files and the `current` symlink live here.
deploy_to = "/srv/{name}"
environment = "{environment}"
# keep_releases = 5
# Kept across releases and linked into each one (e.g. uploads, a SQLite database's directory).
# shared_dirs = ["media"]
# shared_files = []
# primary = "deploy@your-server.example.com"   # runs migrate once (default: the first host)
# migrate = "once"                              # or "each-host" (a database per host)

[targets.production.vars]
{settings_var}server_name = "your-server.example.com"
# listen = 80
# workers = 2

# The app's environment; secrets are resolved on this machine and never shown.
# [targets.production.env]
# DJANGO_ALLOWED_HOSTS = "your-server.example.com"
# [targets.production.secrets]
# DJANGO_SECRET_KEY = {{ command = "pass show {name}/secret-key" }}

# Let shipit install the nginx site and run each release's gunicorn: as systemd units (the
# README gives the sudo rule), or as supervisor programs with [targets.production.supervisor].
# [targets.production.nginx]
# site = "/etc/nginx/sites-enabled/{name}.conf"
# test = "sudo nginx -t"
# reload = "sudo systemctl reload nginx"
# [targets.production.app]
# manager = "systemd"
# [targets.production.supervisor]
# conf_dir = "/etc/supervisor/conf.d"
# ctl = "sudo supervisorctl"

# [targets.production.health]
# path = "/"
# host = "localhost"

# [targets.production.hooks]
# after_migrate = ["./manage.py check --deploy"]
"#,
        name = d.name,
        manage_settings = d.manage_settings,
        selector_module = d.selector_module(),
        wsgi_app = d.wsgi_app,
        environment = d.environment,
        requirements = d.requirements,
    )
}

/// Detects, writes what is missing, prints what was written and the next three commands.
pub(crate) fn run(dir: &Path, args: &InitArgs, printer: &Printer) -> Result<()> {
    let detected = detect(dir, "manage.py")?;
    let mut written = Vec::new();
    let mut skipped = Vec::new();
    for (path, text) in files(&detected, "conf/deploy.map") {
        let full: PathBuf = dir.join(&path);
        if full.exists() || full.is_symlink() {
            printer.info(format!("skip {path} (exists)"));
            skipped.push(path);
            continue;
        }
        if args.dry_run {
            printer.info(format!("would write {path}"));
            written.push(path);
            continue;
        }
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
        }
        // create_new: a file that appeared since the check is still never replaced.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&full)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
            .map_err(|e| Error::io("write", &full, e))?;
        printer.info(format!("wrote {path}"));
        written.push(path);
    }
    let d = &detected;
    // A configuration that was already there names its own targets.
    let target = crate::config::Config::load(&dir.join(crate::config::CONFIG_FILE), Some(dir))
        .ok()
        .and_then(|c| c.targets.keys().next().cloned())
        .unwrap_or_else(|| "production".into());
    let mut next = Vec::new();
    if !d.requirements_found {
        next.push(format!(
            "uv pip compile {} -o {}",
            d.requirements_in, d.requirements
        ));
    } else {
        next.push(format!("shipit config -t {target}"));
    }
    next.push(format!("shipit build -t {target}"));
    next.push(format!("shipit deploy -t {target}"));
    let mut text = format!(
        "project {} (settings {}, wsgi {}, environment {}, requirements {}{})\n",
        d.name,
        d.manage_settings,
        d.wsgi_app,
        d.environment,
        d.requirements,
        if d.requirements_found {
            ""
        } else {
            ", to be compiled"
        }
    );
    text.push_str(&format!(
        "check hosts and deploy_to of target {target} in shipit.toml, then:\n"
    ));
    for command in &next {
        text.push_str(&format!("  {command}\n"));
    }
    printer.result(text.trim_end());
    printer.json_result(&json!({
        "project": d.name,
        "settings": d.manage_settings,
        "settings_module": d.selector_module(),
        "wsgi_app": d.wsgi_app,
        "environment": d.environment,
        "requirements": d.requirements,
        "requirements_found": d.requirements_found,
        "requirements_files": d.requirements_files,
        "written": written,
        "skipped": skipped,
        "next": next,
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, text: &str) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_startproject_layout_gets_a_selector_beside_its_settings_module() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "manage.py",
            "    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n",
        );
        write(root, "mysite/__init__.py", "");
        write(
            root,
            "mysite/settings.py",
            "WSGI_APPLICATION = 'mysite.wsgi.application'\n",
        );
        let d = detect(root, "manage.py").unwrap();
        assert_eq!(d.name, "mysite");
        assert_eq!(d.selector_path, "mysite/selected_settings.py");
        assert_eq!(d.settings, "settings");
        assert_eq!(d.environment, "production");
        assert_eq!(d.wsgi_app, "mysite.wsgi:application");
        assert!(!d.requirements_found);
        assert_eq!(d.requirements_in, "requirements.in");
        let config = &files(&d, "conf/deploy.map")[0].1;
        assert!(
            config.contains("settings_module = \"mysite.selected_settings\""),
            "{config}"
        );
        assert!(config.contains("settings = \"settings\""), "{config}");
        crate::config::Config::parse(Path::new("shipit.toml"), root, config).unwrap();
    }

    #[test]
    fn a_settings_package_selects_its_deployed_module_and_requirements() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "manage.py",
            "os.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"hello.settings.development\")\n",
        );
        for m in ["__init__", "base", "development", "deployment"] {
            write(root, &format!("hello/settings/{m}.py"), "");
        }
        write(
            root,
            "hello/settings/base.py",
            "WSGI_APPLICATION = \"hello.wsgi.application\"\n",
        );
        write(root, "requirements/base.txt", "");
        write(root, "requirements/deployment.txt", "");
        let d = detect(root, "manage.py").unwrap();
        assert_eq!(d.selector_path, "hello/settings/selected.py");
        assert_eq!(d.environment, "deployment");
        assert_eq!(d.settings, "deployment");
        assert_eq!(d.requirements, "requirements/deployment.txt");
        assert!(d.requirements_found);
        assert_eq!(files(&d, "conf/deploy.map").len(), 2);
    }

    #[test]
    fn no_manage_py_is_a_project_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = detect(dir.path(), "manage.py").unwrap_err();
        assert_eq!(error.exit_code(), 2, "{error}");
    }
}
