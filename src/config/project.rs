//! The `[project]` and `[image]` tables: what the project is and how it is built.

use super::*;

/// The `[image]` table: what `shipit image` builds on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageSettings {
    /// The base image: an OCI layout, `[oci:]DIR[:REF]` (relative to the project root).
    pub base: Option<String>,
    /// The base's Python, an absolute path ending in `pythonX.Y`.
    pub python: Option<String>,
    /// The port the app server listens on inside the container.
    pub port: Option<u16>,
}

/// The `[project]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    /// Short name used for service and file names.
    pub name: String,
    /// Python interpreter on the hosts used to create virtualenvs.
    pub python: String,
    /// `DJANGO_SETTINGS_MODULE` on the hosts (a template: may use `{{ environment }}`).
    pub settings_module: String,
    /// WSGI application for gunicorn, e.g. `hello.wsgi:application`.
    pub wsgi_app: String,
    /// ASGI application for an ASGI server (`[targets.T] server`), e.g.
    /// `hello.asgi:application`.
    pub asgi_app: String,
    /// Path of `manage.py` inside the project.
    pub manage_py: String,
    /// deploy.map path, relative to the root.
    pub deploy_map: PathBuf,
    /// Directory of template overrides, relative to the root.
    pub templates_dir: PathBuf,
    /// Requirements file (or `uv.lock`) per environment; environments not listed use
    /// [`Project::requirements_for`]'s default.
    pub requirements: BTreeMap<String, String>,
    /// The project locks with uv (`uv.lock` beside `pyproject.toml`) and has no `requirements/`
    /// directory: environments not listed install from `uv.lock`.
    pub uv_lock_default: bool,
    /// Where `python` came from when the file does not set it: `.python-version`.
    pub python_from_file: bool,
    /// Extra exclude patterns (gitignore syntax).
    pub exclude: Vec<String>,
    /// Paths that are archived even though they look like secrets (gitignore syntax).
    pub include: Vec<String>,
    /// Commands run locally in the project, in order, before the archive is built.
    pub build: Vec<String>,
    /// Files or directories the build commands make (git-untracked) that go into the archive.
    pub artifacts: Vec<String>,
}

impl Project {
    /// What `environment` installs from: its entry in [project.requirements], else `uv.lock`
    /// for a project that locks with uv and has no `requirements/`, else
    /// `requirements/<env>.txt`.
    pub fn requirements_for(&self, environment: &str) -> String {
        match self.requirements.get(environment) {
            Some(file) => file.clone(),
            None if self.uv_lock_default => UV_LOCK.into(),
            None => format!("requirements/{environment}.txt"),
        }
    }
}

/// The lockfile uv writes.
pub(crate) const UV_LOCK: &str = "uv.lock";

/// Whether a requirements path names a uv lockfile (exported to a requirements file at build).
pub(crate) fn is_uv_lock(path: &str) -> bool {
    Path::new(path).file_name() == Some(std::ffi::OsStr::new(UV_LOCK))
}

/// The first version `.python-version` names (uv's and pyenv's convention), if any.
fn python_version_file(root: &Path) -> Option<String> {
    let text = std::fs::read_to_string(root.join(".python-version")).ok()?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawImage {
    base: Option<String>,
    python: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProject {
    name: Spanned<String>,
    python: Option<String>,
    settings_module: Option<String>,
    wsgi_app: Option<String>,
    asgi_app: Option<String>,
    #[serde(default = "default_manage_py")]
    manage_py: Spanned<String>,
    #[serde(default = "default_deploy_map")]
    deploy_map: Spanned<String>,
    #[serde(default = "default_templates_dir")]
    templates_dir: Spanned<String>,
    #[serde(default)]
    requirements: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    build: Vec<Spanned<String>>,
    #[serde(default)]
    artifacts: Vec<Spanned<String>>,
}

/// `project.python` when unset.
pub(crate) const DEFAULT_PYTHON: &str = "python3";
/// `project.manage_py` when unset.
pub(crate) const DEFAULT_MANAGE_PY: &str = "manage.py";
/// `project.deploy_map` when unset.
pub(crate) const DEFAULT_DEPLOY_MAP: &str = "conf/deploy.map";
/// `project.templates_dir` when unset.
pub(crate) const DEFAULT_TEMPLATES_DIR: &str = "conf/templates";
/// `image.port` when unset: the port gunicorn listens on in the container.
pub(crate) const DEFAULT_IMAGE_PORT: u16 = 8000;

fn default_manage_py() -> Spanned<String> {
    Spanned::new(0..0, DEFAULT_MANAGE_PY.into())
}
fn default_deploy_map() -> Spanned<String> {
    Spanned::new(0..0, DEFAULT_DEPLOY_MAP.into())
}
fn default_templates_dir() -> Spanned<String> {
    Spanned::new(0..0, DEFAULT_TEMPLATES_DIR.into())
}

/// Validates `[project]`; `root` is read for the defaults the project's own files set
/// (`.python-version`, `uv.lock`).
pub(super) fn validate_project(
    source: &Source,
    root: &Path,
    raw: Spanned<RawProject>,
) -> Result<Project> {
    let raw = raw.into_inner();
    let name = raw.name.get_ref();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(source.error(
            raw.name.span(),
            "project.name",
            format!("`{name}` must be letters, digits, `_` or `-` (it names services and files)"),
        ));
    }
    let module = name.replace('-', "_");
    for (key, value) in [
        ("project.manage_py", &raw.manage_py),
        ("project.deploy_map", &raw.deploy_map),
        ("project.templates_dir", &raw.templates_dir),
    ] {
        relative_path(value.get_ref()).map_err(|why| source.error(value.span(), key, why))?;
    }
    for command in &raw.build {
        if command.get_ref().trim().is_empty() {
            return Err(source.error(command.span(), "project.build", "a build command is empty"));
        }
    }
    for artifact in &raw.artifacts {
        crate::build::policy::archive_path(artifact.get_ref())
            .and_then(|path| {
                if crate::build::policy::is_reserved(&path) {
                    Err(format!("`{path}` is inside .shipit, which shipit reserves"))
                } else {
                    Ok(path)
                }
            })
            .map_err(|why| source.error(artifact.span(), "project.artifacts", why))?;
    }
    let mut requirements = BTreeMap::new();
    for (env, path) in raw.requirements {
        relative_path(path.get_ref())
            .map_err(|why| source.error(path.span(), format!("project.requirements.{env}"), why))?;
        requirements.insert(env, path.into_inner());
    }
    let from_file = match &raw.python {
        Some(_) => None,
        None => python_version_file(root),
    };
    Ok(Project {
        python_from_file: from_file.is_some(),
        python: raw
            .python
            .or(from_file)
            .unwrap_or_else(|| DEFAULT_PYTHON.into()),
        uv_lock_default: root.join(UV_LOCK).is_file()
            && root.join("pyproject.toml").is_file()
            && !root.join("requirements").is_dir(),
        settings_module: raw
            .settings_module
            .unwrap_or_else(|| format!("{module}.settings.selected")),
        wsgi_app: raw
            .wsgi_app
            .unwrap_or_else(|| format!("{module}.wsgi:application")),
        asgi_app: raw
            .asgi_app
            .unwrap_or_else(|| format!("{module}.asgi:application")),
        name: raw.name.into_inner(),
        manage_py: raw.manage_py.into_inner(),
        deploy_map: PathBuf::from(raw.deploy_map.into_inner()),
        templates_dir: PathBuf::from(raw.templates_dir.into_inner()),
        requirements,
        exclude: raw.exclude,
        include: raw.include,
        build: raw.build.into_iter().map(Spanned::into_inner).collect(),
        artifacts: raw.artifacts.into_iter().map(Spanned::into_inner).collect(),
    })
}

pub(super) fn validate_image(source: &Source, raw: RawImage) -> Result<ImageSettings> {
    if let Some(python) = &raw.python {
        crate::image::BasePython::parse(python.get_ref())
            .map_err(|why| source.error(python.span(), "image.python", why))?;
    }
    let port = match raw.port {
        Some(port) => Some(
            u16::try_from(*port.get_ref())
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| source.error(port.span(), "image.port", "must be 1..65535"))?,
        ),
        None => None,
    };
    Ok(ImageSettings {
        base: raw.base,
        python: raw.python.map(Spanned::into_inner),
        port,
    })
}
