//! The first files of a project, rendered from what was detected: `shipit.toml`, the deploy.map
//! that renders the settings selector, and a requirements input when there is none. Pure: the
//! `init` command writes them. The defaults the configuration shows in comments are the model's
//! (`crate::config`'s constants), not restated here.

use super::Detected;
use crate::config;

/// The files `init` writes, relative to the project, with their text.
pub(crate) fn files(d: &Detected, deploy_map: &str) -> Vec<(String, String)> {
    let mut files = vec![
        ("shipit.toml".to_string(), config_text(d, deploy_map)),
        (
            deploy_map.to_string(),
            format!(
                "# Files rendered into the archive for the target being built (see the deploy.map page of shipit's book).\n\
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
# python = "{python}"
# DJANGO_SETTINGS_MODULE on the hosts: the selector {deploy_map} renders, which imports the
# settings of the target's environment. manage.py keeps using {manage_settings} locally.
settings_module = "{selector_module}"
wsgi_app = "{wsgi_app}"
# manage_py = "{manage_py}"
# deploy_map = "{deploy_map}"
# templates_dir = "{templates_dir}"
# Paths never archived (gitignore syntax); git-untracked files never are anyway.
exclude = ["*.sqlite3"]

# What each environment installs: a pip-compiled (complete, pinned) requirements file, or
# uv.lock (exported with `uv export --frozen` at build).
[project.requirements]
{environment} = "{requirements}"

[targets.production]
# user@host:port or a ~/.ssh/config alias; edit before deploying.
hosts = ["deploy@your-server.example.com"]
# Releases, shared files and the `current` symlink live here.
deploy_to = "/srv/{name}"
environment = "{environment}"
# keep_releases = {keep_releases}
# Kept across releases and linked into each one (e.g. uploads, a SQLite database's directory).
# shared_dirs = ["media"]
# shared_files = []
# primary = "deploy@your-server.example.com"   # runs migrate once (default: the first host)
# migrate = "{migrate}"                              # or "each-host" (a database per host)

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
# sudo rule is in the book's systemd page), or as supervisor programs with [targets.production.supervisor].
# [targets.production.nginx]
# site = "/etc/nginx/sites-enabled/{name}.conf"
# test = "sudo nginx -t"
# reload = "sudo systemctl reload nginx"
# [targets.production.app]
# manager = "systemd"
# [targets.production.supervisor]
# conf_dir = "{conf_dir}"
# ctl = "sudo supervisorctl"

# [targets.production.health]
# path = "{health_path}"
# host = "www.example.com"    # default: the first of ALLOWED_HOSTS

# [targets.production.hooks]
# after_migrate = ["./manage.py check --deploy"]
"#,
        name = d.name,
        manage_settings = d.manage_settings,
        selector_module = d.selector_module(),
        wsgi_app = d.wsgi_app,
        environment = d.environment,
        requirements = d.requirements,
        python = config::DEFAULT_PYTHON,
        manage_py = config::DEFAULT_MANAGE_PY,
        templates_dir = config::DEFAULT_TEMPLATES_DIR,
        keep_releases = config::DEFAULT_KEEP_RELEASES,
        migrate = config::MigrateOn::default().name(),
        conf_dir = config::DEFAULT_SUPERVISOR_CONF_DIR,
        health_path = config::DEFAULT_HEALTH_PATH,
    )
}
