//! The settings of `shipit config`: every key of the model with its value, its default filled
//! in, and where it came from (the file, or `default`), as rows that print as a table or as
//! JSON. `reference.rs`'s tests check these rows against the model's keys and defaults.

use serde_json::{json, Map, Value};

use super::{Config, Manager, Target};

/// One resolved value and where it came from.
pub(crate) struct Row {
    pub(crate) key: String,
    pub(crate) value: Value,
    pub(crate) source: String,
}

/// The keys the configuration file sets, as dotted paths (`project.python`).
pub(crate) struct Explicit(pub(crate) toml::Table);

impl Explicit {
    pub(crate) fn has(&self, path: &str) -> bool {
        let mut table = &self.0;
        let parts: Vec<&str> = path.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            match table.get(*part) {
                Some(toml::Value::Table(t)) if i + 1 < parts.len() => table = t,
                Some(_) => return i + 1 == parts.len(),
                None => return false,
            }
        }
        true
    }
}

/// Rows of one section, each marked as set in `file` or a default.
pub(crate) struct Section<'a> {
    explicit: &'a Explicit,
    file: &'a str,
    prefix: String,
    pub(crate) rows: Vec<Row>,
}

impl Section<'_> {
    pub(crate) fn add(&mut self, key: &str, value: impl Into<Value>) {
        let path = format!("{}.{key}", self.prefix);
        let source = if self.explicit.has(&path) {
            self.file.to_string()
        } else {
            "default".to_string()
        };
        self.rows.push(Row {
            key: key.to_string(),
            value: value.into(),
            source,
        });
    }
    pub(crate) fn add_from(
        &mut self,
        key: &str,
        value: impl Into<Value>,
        source: impl Into<String>,
    ) {
        self.rows.push(Row {
            key: key.to_string(),
            value: value.into(),
            source: source.into(),
        });
    }
}

pub(crate) fn path_value(path: &std::path::Path) -> Value {
    Value::from(path.display().to_string())
}

/// The rows of `[project]`.
pub(crate) fn project(config: &Config, explicit: &Explicit, file: &str) -> Vec<Row> {
    let p = &config.project;
    let mut project = Section {
        explicit,
        file,
        prefix: "project".into(),
        rows: Vec::new(),
    };
    project.add("name", p.name.clone());
    if p.python_from_file {
        project.add_from("python", p.python.clone(), ".python-version");
    } else {
        project.add("python", p.python.clone());
    }
    project.add("settings_module", p.settings_module.clone());
    project.add("wsgi_app", p.wsgi_app.clone());
    project.add("asgi_app", p.asgi_app.clone());
    project.add("manage_py", p.manage_py.clone());
    project.add("deploy_map", path_value(&p.deploy_map));
    project.add("templates_dir", path_value(&p.templates_dir));
    project.add("exclude", json!(p.exclude));
    project.add("include", json!(p.include));
    project.rows
}

/// The rows of `[targets.NAME]`: its settings and those of its tables.
pub(crate) fn settings(
    config: &Config,
    target: &Target,
    explicit: &Explicit,
    file: &str,
) -> Vec<Row> {
    let t = target;
    let name = &t.name;
    let mut s = Section {
        explicit,
        file,
        prefix: format!("targets.{name}"),
        rows: Vec::new(),
    };
    s.add("transport", t.transport.name());
    s.add(
        "hosts",
        json!(t.hosts.iter().map(ToString::to_string).collect::<Vec<_>>()),
    );
    s.add("deploy_to", t.deploy_to.clone());
    s.add("environment", t.environment.clone());
    let req = config.project.requirements_for(&t.environment);
    let req_source = if explicit.has(&format!("project.requirements.{}", t.environment)) {
        file.to_string()
    } else if config.project.uv_lock_default {
        "default: uv.lock (the project locks with uv and has no requirements/)".into()
    } else {
        "default: requirements/<environment>.txt".into()
    };
    s.add_from("requirements", req, req_source);
    s.add("extras", json!(t.extras));
    s.add("groups", json!(t.groups));
    s.add("keep_releases", t.keep_releases);
    s.add("shared_dirs", json!(t.shared_dirs));
    s.add("shared_files", json!(t.shared_files));
    s.add(
        "identity_file",
        t.identity_file.as_deref().map_or(Value::Null, path_value),
    );
    s.add(
        "known_hosts",
        t.known_hosts.as_deref().map_or(Value::Null, path_value),
    );
    s.add("installer", t.installer.to_string());
    s.add("server", t.server.name());
    s.add(
        "app_user",
        t.app_user
            .clone()
            .map_or_else(|| Value::from("(the deploy user)"), Value::from),
    );
    s.add("allow_root", t.allow_root);
    s.add(
        "primary",
        t.hosts.get(t.primary).map_or_else(
            || Value::from("(this machine)"),
            |h| Value::from(h.to_string()),
        ),
    );
    s.add("migrate", t.migrate.name());
    s.add(
        "batch",
        t.batch
            .map_or_else(|| Value::from("(all hosts)"), Value::from),
    );
    s.add("prepared_timeout", t.prepared_timeout);
    match &t.nginx {
        Some(n) => {
            s.add("nginx.site", n.site.clone());
            s.add("nginx.test", n.test.clone());
            s.add("nginx.reload", n.reload.clone());
            s.add("nginx.websocket_paths", json!(n.websocket_paths));
        }
        None => s.add("nginx", "(unmanaged)"),
    }
    match &t.app {
        Some(a) => {
            s.add("app.manager", a.manager.name());
            if a.manager != Manager::Systemd {
                s.add("supervisor.conf_dir", a.supervisor.conf_dir.clone());
                s.add("supervisor.ctl", a.supervisor.ctl.clone());
            }
            if a.manager != Manager::Supervisor {
                s.add("systemd.scope", a.systemd.scope.name());
                s.add("systemd.ctl", a.systemd.ctl());
                s.add("systemd.journal", a.systemd.journal());
                s.add("systemd.requires", json!(a.systemd.requires));
                s.add("systemd.hardening", a.systemd.hardened());
            }
        }
        None => s.add("app.manager", "(unmanaged)"),
    }
    s.add("health.path", t.health.path.clone());
    s.add(
        "health.status",
        t.health
            .status
            .map_or_else(|| Value::from("(any 2xx or 3xx)"), Value::from),
    );
    s.add(
        "health.host",
        t.health
            .host
            .clone()
            .unwrap_or_else(|| "the first of the release's ALLOWED_HOSTS".into()),
    );
    s.add("health.timeout", t.health.timeout);
    s.add("health.retries", t.health.retries);
    s.add("migrations.gate", t.migrations.gate.name());
    s.add("migrations.strict", t.migrations.strict);
    s.add("migrations.allow", json!(t.migrations.allow));
    s.add("migrations.after_switch", json!(t.migrations.after_switch));
    s.add("database.backup", t.database.backup.name());
    s.add("database.keep", t.database.keep);
    for (phase, hooks) in [
        ("before_migrate", &t.hooks.before_migrate),
        ("after_migrate", &t.hooks.after_migrate),
        ("after_switch", &t.hooks.after_switch),
    ] {
        let list: Vec<String> = hooks
            .iter()
            .map(|h| {
                if h.once() {
                    format!("{} (once)", h.command())
                } else {
                    h.command().to_string()
                }
            })
            .collect();
        s.add(&format!("hooks.{phase}"), json!(list));
    }
    s.rows
}

fn display(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "(none)".into(),
        other => other.to_string(),
    }
}

pub(crate) fn table(title: &str, rows: &[Row]) -> String {
    let mut out = format!("\n{title}\n");
    if rows.is_empty() {
        out.push_str("  (none)\n");
        return out;
    }
    let key_width = rows.iter().map(|r| r.key.len()).max().unwrap_or(0);
    let value_width = rows
        .iter()
        .map(|r| display(&r.value).chars().count())
        .max()
        .unwrap_or(0)
        .min(48);
    for r in rows {
        out.push_str(&format!(
            "  {:<key_width$}  {:<value_width$}  {}\n",
            r.key,
            display(&r.value),
            r.source
        ));
    }
    out
}

pub(crate) fn rows_json(rows: &[Row]) -> Value {
    let mut map = Map::new();
    for r in rows {
        map.insert(
            r.key.clone(),
            json!({ "value": r.value, "source": r.source }),
        );
    }
    Value::Object(map)
}
