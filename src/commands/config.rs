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
use crate::config::show::{self, rows_json, table, Explicit, Row};
use crate::config::{Config, Manager, Target};
use crate::error::Result;
use crate::output::Printer;
use crate::templates::{BuildInfo, RenderContext, Templates};

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

    let project = show::project(config, &explicit, &file);

    let revision = crate::build::source::revision(&config.root)?;
    let mut out = format!(
        "configuration {} (project {})\n",
        config.path.display(),
        config.root.display()
    );
    out.push_str(&table("[project]", &project));
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
        "project": rows_json(&project),
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
    let settings = show::settings(config, t, explicit, file);

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
    var("asgi_app", "project.asgi_app".into());
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
    // The schedule's timers, and ACME's renewal, which runs as a schedule entry.
    let timers = matches!(manager, Some(Manager::Systemd | Manager::Auto))
        && (!t.schedule.is_empty()
            || matches!(
                t.tls.as_ref().map(|tls| &tls.mode),
                Some(crate::config::TlsMode::Acme { .. })
            ));
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
        ("systemd.timer.j2", timers),
        ("systemd.schedule.service.j2", timers),
        ("systemd.schedule.sh.j2", timers),
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
