//! `shipit config`: the configuration as shipit will use it, so nobody has to read template
//! sources or defaults in the code to learn what a deploy does.
//!
//! Every setting is shown with its default filled in and where its value came from (the file,
//! or `default`); every template variable with its value and origin; the templates themselves
//! with the file (or built-in) each one is read from; the app's environment with every secret
//! shown as `[REDACTED]` and its source. Nothing is resolved that could prompt or take time:
//! secrets are not read, and no host is contacted.

use serde_json::{json, Map, Value};

use crate::cli::ConfigArgs;
use crate::config::{Config, Manager, Target, TransportKind};
use crate::error::Result;
use crate::output::Printer;
use crate::templates::{BuildInfo, RenderContext, Templates};

/// One resolved value and where it came from.
struct Row {
    key: String,
    value: Value,
    source: String,
}

/// The keys the configuration file sets, as dotted paths (`project.python`).
struct Explicit(toml::Table);

impl Explicit {
    fn has(&self, path: &str) -> bool {
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
struct Section<'a> {
    explicit: &'a Explicit,
    file: &'a str,
    prefix: String,
    rows: Vec<Row>,
}

impl Section<'_> {
    fn add(&mut self, key: &str, value: impl Into<Value>) {
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
    fn add_from(&mut self, key: &str, value: impl Into<Value>, source: impl Into<String>) {
        self.rows.push(Row {
            key: key.to_string(),
            value: value.into(),
            source: source.into(),
        });
    }
}

fn path_value(path: &std::path::Path) -> Value {
    Value::from(path.display().to_string())
}

/// Prints the resolved configuration of `args.target` (every target when none is named).
pub(crate) fn run(config: &Config, args: &ConfigArgs, printer: &Printer) -> Result<()> {
    let text = std::fs::read_to_string(&config.path)
        .map_err(|e| crate::error::Error::io("read", &config.path, e))?;
    let explicit = Explicit(text.parse::<toml::Table>().unwrap_or_default());
    let file = config.path.file_name().map_or_else(
        || "shipit.toml".into(),
        |f| f.to_string_lossy().into_owned(),
    );
    let targets: Vec<&Target> = match &args.target {
        Some(name) => vec![config.target(name)?],
        None => config.targets.values().collect(),
    };

    let p = &config.project;
    let mut project = Section {
        explicit: &explicit,
        file: &file,
        prefix: "project".into(),
        rows: Vec::new(),
    };
    project.add("name", p.name.clone());
    project.add("python", p.python.clone());
    project.add("settings_module", p.settings_module.clone());
    project.add("wsgi_app", p.wsgi_app.clone());
    project.add("manage_py", p.manage_py.clone());
    project.add("deploy_map", path_value(&p.deploy_map));
    project.add("templates_dir", path_value(&p.templates_dir));
    project.add("exclude", json!(p.exclude));
    project.add("include", json!(p.include));

    let revision = crate::build::source::revision(&config.root)?;
    let mut out = format!(
        "configuration {} (project {})\n",
        config.path.display(),
        config.root.display()
    );
    out.push_str(&table("[project]", &project.rows));
    let mut targets_json = Map::new();
    for target in targets {
        let sections = target_sections(config, target, &explicit, &file, &revision)?;
        let mut one = Map::new();
        for (key, title, rows) in &sections {
            out.push_str(&table(title, rows));
            one.insert(key.to_string(), rows_json(rows));
        }
        targets_json.insert(target.name.clone(), Value::Object(one));
    }
    printer.result(out.trim_end());
    printer.json_result(&json!({
        "config": config.path,
        "root": config.root,
        "project": rows_json(&project.rows),
        "targets": targets_json,
    }));
    Ok(())
}

fn target_sections(
    config: &Config,
    target: &Target,
    explicit: &Explicit,
    file: &str,
    revision: &crate::build::source::Revision,
) -> Result<Vec<(&'static str, String, Vec<Row>)>> {
    let t = target;
    let name = &t.name;
    let mut s = Section {
        explicit,
        file,
        prefix: format!("targets.{name}"),
        rows: Vec::new(),
    };
    let transport = match t.transport {
        TransportKind::Ssh => "ssh",
        TransportKind::Local => "local",
    };
    s.add("transport", transport);
    s.add(
        "hosts",
        json!(t.hosts.iter().map(ToString::to_string).collect::<Vec<_>>()),
    );
    s.add("deploy_to", t.deploy_to.clone());
    s.add("environment", t.environment.clone());
    let req = config.project.requirements_for(&t.environment);
    let req_source = if explicit.has(&format!("project.requirements.{}", t.environment)) {
        file.to_string()
    } else {
        "default: requirements/<environment>.txt".into()
    };
    s.add_from("requirements", req, req_source);
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
    s.add(
        "migrate",
        match t.migrate {
            crate::config::MigrateOn::Once => "once",
            crate::config::MigrateOn::EachHost => "each-host",
        },
    );
    s.add(
        "batch",
        t.batch
            .map_or_else(|| Value::from("(all hosts)"), Value::from),
    );
    match &t.nginx {
        Some(n) => {
            s.add("nginx.site", n.site.clone());
            s.add("nginx.test", n.test.clone());
            s.add("nginx.reload", n.reload.clone());
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
            }
        }
        None => s.add("app.manager", "(unmanaged)"),
    }
    s.add("health.path", t.health.path.clone());
    s.add(
        "health.status",
        t.health
            .status
            .map_or_else(|| Value::from("(any below 500)"), Value::from),
    );
    s.add("health.host", t.health.host.clone());
    s.add("health.timeout", t.health.timeout);
    s.add("health.retries", t.health.retries);
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
    let settings = std::mem::take(&mut s.rows);

    // Template variables: what the build renders deploy.map with, then what service templates
    // add per release.
    let info = BuildInfo {
        build_time: "(at build: SOURCE_DATE_EPOCH, or the commit time)".into(),
        revision: revision.commit.clone(),
        dirty: revision.dirty,
    };
    let context = RenderContext::new(config, t, &info)?;
    let at = |key: &str| format!("targets.{name}.{key}");
    let mut v = Vec::new();
    let mut var = |key: &str, source: String| {
        let value = match key {
            "dirty" => Value::Bool(revision.dirty),
            _ => match t.vars.get(key) {
                Some(value) => serde_json::to_value(value).unwrap_or(Value::Null),
                None => Value::from(context.get(key).unwrap_or_default()),
            },
        };
        v.push(Row {
            key: key.to_string(),
            value,
            source,
        })
    };
    var("project", "project.name".into());
    var("target", "the target's name".into());
    var("environment", at("environment"));
    var("deploy_to", at("deploy_to"));
    let raw_settings = &config.project.settings_module;
    var(
        "settings_module",
        if context.get("settings_module").as_ref() == Some(raw_settings) {
            "project.settings_module".into()
        } else {
            format!("project.settings_module, rendered from {raw_settings}")
        },
    );
    var("wsgi_app", "project.wsgi_app".into());
    var("revision", "git HEAD of the project".into());
    var("dirty", "git status: tracked files changed".into());
    var("build_time", "the build".into());
    for key in t.vars.keys() {
        var(key, at(&format!("vars.{key}")));
    }
    let per_release = "service templates only, per release";
    v.push(Row {
        key: "vars".into(),
        value: Value::from("(every target variable, as vars.NAME)"),
        source: at("vars"),
    });
    for (key, value) in [
        ("release", "(release id, UTC YYYYmmddHHMMSS)".to_string()),
        ("release_dir", format!("{}/releases/<release>", t.deploy_to)),
        (
            "program",
            format!("{}.{}.<release>", config.project.name, t.name),
        ),
        (
            "app_user",
            t.app_user
                .clone()
                .unwrap_or_else(|| "(the deploy user)".into()),
        ),
    ] {
        v.push(Row {
            key: key.into(),
            value: Value::from(value),
            source: per_release.into(),
        });
    }

    // Which file each template comes from.
    let templates = Templates::for_project(config);
    let mut used: Vec<Row> = Vec::new();
    let map_path = config.root.join(&config.project.deploy_map);
    if map_path.is_file() {
        let map = crate::build::deploy_map::DeployMap::load(&map_path)?;
        for m in &map.mappings {
            let origin = templates
                .find(&m.template)
                .map_or_else(|e| format!("(missing: {e})"), |s| s.origin);
            used.push(Row {
                key: m.destination.clone(),
                value: Value::from(m.template.clone()),
                source: origin,
            });
        }
    }
    let manager = t.app.as_ref().map(|a| a.manager);
    for (service, on) in [
        ("nginx.conf.j2", t.nginx.is_some()),
        (
            "supervisor.conf.j2",
            matches!(manager, Some(Manager::Supervisor | Manager::Auto)),
        ),
        (
            "systemd.service.j2",
            matches!(manager, Some(Manager::Systemd | Manager::Auto)),
        ),
        (
            "systemd.run.sh.j2",
            matches!(manager, Some(Manager::Systemd | Manager::Auto)),
        ),
        (
            "systemd.timer.j2",
            matches!(manager, Some(Manager::Systemd | Manager::Auto)) && !t.schedule.is_empty(),
        ),
        (
            "systemd.schedule.service.j2",
            matches!(manager, Some(Manager::Systemd | Manager::Auto)) && !t.schedule.is_empty(),
        ),
        (
            "systemd.schedule.sh.j2",
            matches!(manager, Some(Manager::Systemd | Manager::Auto)) && !t.schedule.is_empty(),
        ),
    ] {
        if on {
            let origin = templates
                .find(service)
                .map_or_else(|e| format!("(missing: {e})"), |s| s.origin);
            used.push(Row {
                key: format!(
                    "({})",
                    service.trim_end_matches(".j2").trim_end_matches(".conf")
                ),
                value: Value::from(service),
                source: origin,
            });
        }
    }

    // The app's environment: plain values as they are, secrets never.
    let mut env: Vec<Row> = t
        .env
        .iter()
        .map(|(k, value)| Row {
            key: k.clone(),
            value: Value::from(value.clone()),
            source: at(&format!("env.{k}")),
        })
        .collect();
    env.extend(t.secrets.iter().map(|(k, from)| Row {
        key: k.clone(),
        value: Value::from("[REDACTED]"),
        source: format!("secret: {}", crate::resolve::describe(from)),
    }));
    env.push(Row {
        key: "DJANGO_SETTINGS_MODULE".into(),
        value: Value::from(context.get("settings_module").unwrap_or_default()),
        source: "project.settings_module".into(),
    });
    env.sort_by(|a, b| a.key.cmp(&b.key));

    Ok(vec![
        ("settings", format!("[targets.{name}]"), settings),
        (
            "variables",
            format!("[variables] of {name} (what templates see)"),
            v,
        ),
        (
            "templates",
            format!("[templates] of {name} (destination, template, read from)"),
            used,
        ),
        (
            "env",
            format!("[env] of {name} (the app's environment)"),
            env,
        ),
    ])
}

fn display(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "(none)".into(),
        other => other.to_string(),
    }
}

fn table(title: &str, rows: &[Row]) -> String {
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

fn rows_json(rows: &[Row]) -> Value {
    let mut map = Map::new();
    for r in rows {
        map.insert(
            r.key.clone(),
            json!({ "value": r.value, "source": r.source }),
        );
    }
    Value::Object(map)
}
