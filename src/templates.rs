//! Templates: the defaults shipit carries, the project's overrides, and strict rendering.
//!
//! Every template is rendered with [`UndefinedBehavior::Strict`], so a misspelt variable is an
//! error naming the template and line instead of an empty string in a server config. The default
//! templates are embedded in the binary so that one file is all a user installs; a project
//! overrides one by putting a file of the same name in its templates directory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::LazyLock;

use minijinja::{Environment, UndefinedBehavior, Value};

use crate::config::{Config, Target};
use crate::error::{Error, Result};
use crate::release::ReleaseId;

/// Built-in templates, by name.
pub const DEFAULTS: &[(&str, &str)] = &[
    (
        "selector.py.j2",
        include_str!("../templates/selector.py.j2"),
    ),
    ("nginx.conf.j2", include_str!("../templates/nginx.conf.j2")),
    (
        "supervisor.conf.j2",
        include_str!("../templates/supervisor.conf.j2"),
    ),
    (
        "systemd.service.j2",
        include_str!("../templates/systemd.service.j2"),
    ),
    (
        "systemd.run.sh.j2",
        include_str!("../templates/systemd.run.sh.j2"),
    ),
    (
        "systemd.timer.j2",
        include_str!("../templates/systemd.timer.j2"),
    ),
    (
        "systemd.schedule.service.j2",
        include_str!("../templates/systemd.schedule.service.j2"),
    ),
    (
        "systemd.schedule.sh.j2",
        include_str!("../templates/systemd.schedule.sh.j2"),
    ),
    (
        "maintenance.html.j2",
        include_str!("../templates/maintenance.html.j2"),
    ),
];

/// The built-in templates whose output nginx, supervisor or systemd read: a value there that
/// spans lines or holds `;`, `{` or `}` would end a directive and start another.
pub const SERVICE_TEMPLATES: &[&str] = &[
    "nginx.conf.j2",
    "supervisor.conf.j2",
    "systemd.service.j2",
    "systemd.run.sh.j2",
    "systemd.timer.j2",
    "systemd.schedule.service.j2",
    "systemd.schedule.sh.j2",
];

/// Every variable the built-in [`SERVICE_TEMPLATES`] read (`server_name`, `workers`, ...) and
/// the templates that read it, found by parsing them, so a template that starts reading a target
/// variable checks it at once. `vars.NAME` counts as `NAME`.
pub fn service_variables() -> &'static BTreeMap<String, Vec<&'static str>> {
    static NAMES: LazyLock<BTreeMap<String, Vec<&'static str>>> = LazyLock::new(|| {
        let mut names: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
        for (name, text) in DEFAULTS
            .iter()
            .filter(|(n, _)| SERVICE_TEMPLATES.contains(n))
        {
            let mut env = Environment::new();
            env.add_template(name, text)
                .expect("built-in templates parse");
            let template = env.get_template(name).expect("just added");
            let read: BTreeSet<String> = template
                .undeclared_variables(true)
                .iter()
                .map(|v| {
                    let v = v.strip_prefix("vars.").unwrap_or(v);
                    v.split('.').next().unwrap_or(v).to_string()
                })
                .collect();
            for variable in read {
                names.entry(variable).or_default().push(name);
            }
        }
        names
    });
    &NAMES
}

/// A template's text and where it came from.
#[derive(Debug, Clone)]
pub struct TemplateSource {
    /// A path on disk, or `builtin:NAME`.
    pub origin: String,
    /// The template text.
    pub text: String,
}

/// Finds templates: a project file first, then the built-in defaults.
#[derive(Debug, Clone)]
pub struct Templates {
    root: PathBuf,
    overrides: PathBuf,
}

impl Templates {
    /// Templates for the project of `config`.
    pub fn for_project(config: &Config) -> Templates {
        Templates {
            root: config.root.clone(),
            overrides: config.root.join(&config.project.templates_dir),
        }
    }

    /// Looks `name` up as a project-relative path, then in the overrides directory, then among
    /// the built-in defaults.
    pub fn find(&self, name: &str) -> Result<TemplateSource> {
        let candidates = [self.root.join(name), self.overrides.join(name)];
        for path in &candidates {
            if path.is_file() {
                let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
                return Ok(TemplateSource {
                    origin: path.display().to_string(),
                    text,
                });
            }
        }
        if let Some((_, text)) = DEFAULTS.iter().find(|(n, _)| *n == name) {
            return Ok(TemplateSource {
                origin: format!("builtin:{name}"),
                text: (*text).to_string(),
            });
        }
        Err(Error::Template {
            name: name.to_string(),
            line: None,
            message: format!(
                "not found (looked for {} and {}, and it is not a built-in template: {})",
                candidates[0].display(),
                candidates[1].display(),
                DEFAULTS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }

    /// Finds and renders `name` with `context`.
    pub fn render(&self, name: &str, context: &RenderContext) -> Result<String> {
        let source = self.find(name)?;
        render_str(&source.origin, &source.text, context)
    }
}

/// Renders template `text` (called `name` in errors) strictly with `context`.
pub fn render_str(name: &str, text: &str, context: &RenderContext) -> Result<String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.add_filter("shell_quote", |s: String| crate::plan::quote(&s));
    env.add_filter("tojson", strict_tojson);
    let fail = |e: minijinja::Error| Error::Template {
        name: name.to_string(),
        line: e.line(),
        message: describe(&e),
    };
    env.add_template(name, text).map_err(fail)?;
    let template = env.get_template(name).map_err(fail)?;
    template
        .render(Value::from(context.values.clone()))
        .map_err(fail)
}

/// The built-in `tojson`, except that an undefined value anywhere inside is an error instead of
/// `null` (strict mode does not reach into filters, and `tojson` is how the selector writes
/// Python literals, so a misspelt name would otherwise ship as `None`).
fn strict_tojson(
    value: &Value,
    indent: Option<Value>,
    args: minijinja::value::Kwargs,
) -> std::result::Result<Value, minijinja::Error> {
    fn check(value: &Value) -> std::result::Result<(), minijinja::Error> {
        if value.is_undefined() {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::UndefinedError,
                "undefined value passed to tojson",
            ));
        }
        if matches!(
            value.kind(),
            minijinja::value::ValueKind::Seq | minijinja::value::ValueKind::Map
        ) {
            for item in value.try_iter()? {
                check(&item)?;
                if value.kind() == minijinja::value::ValueKind::Map {
                    check(&value.get_item(&item)?)?;
                }
            }
        }
        Ok(())
    }
    check(value)?;
    minijinja::filters::tojson(value, indent, args)
}

fn describe(error: &minijinja::Error) -> String {
    let mut message = match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    };
    if error.kind() == minijinja::ErrorKind::UndefinedError {
        message.push_str(
            " (every variable must be defined: set it in the target's [vars] or use `| default(...)`)",
        );
    }
    message
}

/// Facts about one build that templates may use. No release id: an archive's identity is its
/// content, so the same tree deployed twice is the same archive (the release id reaches the app
/// through `SHIPIT_RELEASE` and `.shipit/release`, written when a host unpacks it).
#[derive(Debug, Clone, PartialEq)]
pub struct BuildInfo {
    /// Build time, RFC 3339 UTC (from `SOURCE_DATE_EPOCH` or the commit time).
    pub build_time: String,
    /// Git commit, or `unknown` outside git.
    pub revision: String,
    /// Whether tracked files differ from the commit.
    pub dirty: bool,
}

/// What the nginx site needs of `[targets.T.tls]` (`false` without it): the paths of the
/// certificate, the key, the stapling include and the challenge directory, the port suffix of the redirect to https,
/// the HSTS header (empty: none) and whether ACME's challenge is served.
fn tls(target: &Target) -> Value {
    use crate::remote::layout::{TLS_CERTIFICATE, TLS_KEY, TLS_STAPLING, TLS_WEBROOT};
    let Some(tls) = &target.tls else {
        return Value::from(false);
    };
    let path = |rel: &str| format!("{}/{rel}", target.deploy_to);
    let port = tls.port;
    let mut map: BTreeMap<&str, Value> = BTreeMap::new();
    map.insert("certificate", path(TLS_CERTIFICATE).into());
    map.insert("key", path(TLS_KEY).into());
    map.insert("webroot", path(TLS_WEBROOT).into());
    map.insert("stapling", path(TLS_STAPLING).into());
    map.insert("port", port.into());
    map.insert(
        "redirect_port",
        if port == 443 {
            String::new()
        } else {
            format!(":{port}")
        }
        .into(),
    );
    map.insert(
        "acme",
        matches!(tls.mode, crate::config::TlsMode::Acme { .. }).into(),
    );
    map.insert(
        "hsts",
        tls.hsts
            .as_ref()
            .map(|h| h.header())
            .unwrap_or_default()
            .into(),
    );
    Value::from_serialize(&map)
}

/// The variables a template sees.
#[derive(Debug, Clone, Default)]
pub struct RenderContext {
    values: BTreeMap<String, Value>,
}

impl RenderContext {
    /// The context of `target` for the build `build`: shipit's variables plus the target's vars.
    /// What goes into an archive is rendered with this; service configs add
    /// [`RenderContext::for_release`].
    pub fn new(config: &Config, target: &Target, build: &BuildInfo) -> Result<RenderContext> {
        let mut context = RenderContext::default();
        let server = crate::manager::server::AppServer::of(target);
        for (name, value) in &target.vars {
            context.set(name, Value::from_serialize(value));
        }
        context
            .set("project", config.project.name.as_str())
            .set("target", target.name.as_str())
            .set("environment", target.environment.as_str())
            .set("build_time", build.build_time.as_str())
            .set("revision", build.revision.as_str())
            .set("dirty", build.dirty)
            .set("deploy_to", target.deploy_to.as_str())
            .set("app_socket", crate::remote::layout::APP_SOCKET)
            .set("enter_release", crate::remote::layout::enter_release())
            .set("wsgi_app", config.project.wsgi_app.as_str())
            .set("asgi_app", config.project.asgi_app.as_str())
            .set("server_app", server.app(config))
            .set("server_options", server.options())
            .set(
                "websocket_paths",
                Value::from_serialize(target.nginx.as_ref().map(|n| &n.websocket_paths)),
            )
            .set("vars", Value::from_serialize(&target.vars))
            .set("tls", tls(target));
        let settings = render_str(
            &format!("{} (project.settings_module)", config.path.display()),
            &config.project.settings_module,
            &context,
        )?;
        context.set("settings_module", settings);
        Ok(context)
    }

    /// Adds what only a release on a host has: `release`, `release_dir`, `program`, and the
    /// health check's path without its query (`health_path`, which maintenance mode spares).
    pub fn for_release(mut self, config: &Config, target: &Target, release: ReleaseId) -> Self {
        let health_path = target.health.path.split('?').next().unwrap_or("/");
        self.set("release", release.to_string())
            .set("health_path", health_path)
            .set(
                "release_dir",
                format!("{}/releases/{release}", target.deploy_to),
            )
            .set(
                "program",
                crate::manager::supervisor::program_name(
                    &config.project.name,
                    &target.name,
                    &release,
                ),
            );
        self
    }

    /// Sets one variable.
    pub fn set(&mut self, name: &str, value: impl Into<Value>) -> &mut Self {
        self.values.insert(name.to_string(), value.into());
        self
    }

    /// A variable's value rendered as a string, if it is set.
    pub fn get(&self, name: &str) -> Option<String> {
        self.values.get(name).map(|v| v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> RenderContext {
        let mut c = RenderContext::default();
        c.set("environment", "staging").set("target", "staging");
        c
    }

    #[test]
    fn strict_undefined_names_template_and_line() {
        let err = render_str("site.j2", "ok\n{{ server_nmae }}\n", &context()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("template site.j2:2: undefined value"),
            "{msg}"
        );
    }

    #[test]
    fn default_filter_and_defined_test_work_in_strict_mode() {
        let out = render_str(
            "t",
            "{{ settings | default(environment) }} {% if x is defined %}x{% endif %}",
            &context(),
        )
        .unwrap();
        assert_eq!(out, "staging ");
    }

    #[test]
    fn tojson_refuses_undefined_values_even_nested() {
        for text in [
            "{{ taget | tojson }}",
            "{{ {'a': taget} | tojson }}",
            "{{ [1, taget] | tojson }}",
        ] {
            let err = render_str("t", text, &context()).unwrap_err();
            assert!(err.to_string().contains("undefined"), "{text}: {err}");
        }
        assert_eq!(
            render_str("t", "{{ target | tojson }}", &context()).unwrap(),
            "\"staging\""
        );
    }

    #[test]
    fn syntax_errors_are_template_errors() {
        let err = render_str("bad.j2", "{% if %}", &context()).unwrap_err();
        assert!(
            matches!(err, Error::Template { line: Some(1), .. }),
            "{err}"
        );
    }

    #[test]
    fn the_maintenance_page_escapes_its_message() {
        let mut c = context();
        c.set("message", "Back <soon> & \"then\" some");
        let (name, text) = DEFAULTS
            .iter()
            .find(|(n, _)| *n == "maintenance.html.j2")
            .unwrap();
        let out = render_str(&format!("builtin:{name}"), text, &c).unwrap();
        assert!(
            out.contains("<p>Back &lt;soon&gt; &amp; &quot;then&quot; some</p>"),
            "{out}"
        );
    }

    #[test]
    fn shell_quote_filter_quotes() {
        let mut c = context();
        c.set("path", "/srv/a b;$(rm -rf /)");
        let out = render_str("t", "cd {{ path | shell_quote }}", &c).unwrap();
        assert_eq!(out, "cd '/srv/a b;$(rm -rf /)'");
    }
}
