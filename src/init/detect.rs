//! What a Django project says about itself: manage.py's `DJANGO_SETTINGS_MODULE`, the settings'
//! module or package, `WSGI_APPLICATION` and the requirements files, read into a [`Detected`].
//! Reading only; nothing here writes.

use std::path::Path;

use crate::error::{Error, Result};

/// What `init` learnt about the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Detected {
    /// `project.name`: pyproject.toml's `[project].name`, else the directory's name, else the
    /// settings' top package; as shipit names go (letters, digits, `_`, `-`).
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
    let name = [
        pyproject_name(root),
        root.canonicalize()
            .ok()
            .and_then(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_string)),
        Some(top.clone()),
    ]
    .into_iter()
    .flatten()
    .map(|n| shipit_name(&n))
    .find(|n| !n.is_empty() && n.chars().any(|c| c.is_ascii_alphanumeric()))
    .unwrap_or_else(|| "app".into());
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
    // A project that locks with uv installs from its lock (exported at build).
    let uv_lock =
        root.join(crate::config::UV_LOCK).is_file() && root.join("pyproject.toml").is_file();
    let found = if uv_lock {
        Some(crate::config::UV_LOCK.to_string())
    } else {
        found.or(requirements_files.first()).cloned()
    };
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

/// pyproject.toml's `[project].name`, when there is one.
fn pyproject_name(root: &Path) -> Option<String> {
    let text = std::fs::read_to_string(root.join("pyproject.toml")).ok()?;
    let value: toml::Value = toml::from_str(&text).ok()?;
    value
        .get("project")?
        .get("name")?
        .as_str()
        .map(str::to_string)
}

/// `name` as shipit names go: lower case (as PEP 503 normalises), letters, digits, `_` and `-`
/// (anything else becomes `-`).
fn shipit_name(name: &str) -> String {
    let name: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    name.trim_matches(['-', '_']).to_string()
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
