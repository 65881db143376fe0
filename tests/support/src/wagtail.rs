//! The real-size project of the Wagtail benchmark (`benches/wagtail.rs`, issue 13): a site made
//! by `wagtail start`, its requirements pip-compiled with `uv pip compile`, under git. Nothing
//! of it is committed to shipit: it is generated in a sandbox on every run from PyPI packages
//! installed once into a cached tools venv (`wagtail` to generate the site, `fabric` for the
//! Fabric peer the bench compares shipit with). Wagtail's own apps bring a few hundred static
//! files and, with Django's and its other dependencies', some 400 migration files.
//!
//! What the generator changes in the generated site, and why:
//! - `requirements/deployment.in` (wagtail, Django, gunicorn) compiled to `deployment.txt` for
//!   the hosts' python, as the seed project's requirements are;
//! - `conf/deploy.map`: shipit's environment selector as `mysite/settings/selected.py`;
//! - `production.py`: a placeholder secret key and `ALLOWED_HOSTS`, and the SQLite database in
//!   `var/` (a shared directory), so that it outlives a release;
//! - `base.html`: a marker line (`<p id="bench">...</p>`) the bench changes for a code-only
//!   deploy; `urls.py`: `/release` answers the release id, to check what is served.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::project::{self, Project};

/// The Django project's (and shipit project's) name.
pub const PROJECT: &str = "mysite";
/// What the tools venv holds; a new tag builds a new venv.
const TOOLS: &[&str] = &["wagtail>=8.0,<8.1", "fabric>=3.2,<4"];
const TOOLS_TAG: &str = "wagtail8.0-fabric3.2-v1";
/// What the site's requirements ask for (compiled to `requirements/deployment.txt`).
const REQUIREMENTS_IN: &str = "wagtail>=8.0,<8.1\nDjango>=5.2,<6.2\ngunicorn>=23\n";
/// The interpreter of the hosts (the test stack's) and of the tools venv.
pub const HOST_PYTHON: &str = "/usr/bin/python3";

fn run(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The cached venv with `wagtail` and `fabric` (built with uv the first time, in /var/tmp).
pub fn tools_venv() -> PathBuf {
    let dir = PathBuf::from(format!("/var/tmp/shipit-bench-tools-{TOOLS_TAG}"));
    if dir.join(".complete").exists() {
        return dir;
    }
    let _ = fs::remove_dir_all(&dir);
    println!(
        "   building the tools venv {} (wagtail, fabric)",
        dir.display()
    );
    run(Command::new("uv")
        .args(["venv", "-q", "--python", HOST_PYTHON])
        .arg(&dir));
    run(Command::new("uv")
        .args(["pip", "install", "-q", "--python"])
        .arg(dir.join("bin/python"))
        .args(TOOLS));
    fs::write(dir.join(".complete"), "").unwrap();
    dir
}

/// `X.Y` of the hosts' python.
fn host_python_version() -> String {
    run(Command::new(HOST_PYTHON).args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"]))
        .trim()
        .to_string()
}

fn edit(root: &Path, rel: &str, f: impl FnOnce(String) -> String) {
    let path = root.join(rel);
    let old = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {rel}: {e}"));
    let new = f(old.clone());
    assert_ne!(old, new, "editing {rel} changed nothing");
    fs::write(path, new).unwrap();
}

/// A new Wagtail site from `wagtail start`, adapted for shipit (see the module doc), committed.
pub fn generate(tools: &Path) -> Site {
    let project = project::generated(PROJECT, |root| {
        fs::create_dir_all(root).unwrap();
        run(Command::new(tools.join("bin/wagtail"))
            .args(["start", PROJECT])
            .arg(root));
        fs::create_dir_all(root.join("requirements")).unwrap();
        fs::write(root.join("requirements/deployment.in"), REQUIREMENTS_IN).unwrap();
        run(Command::new("uv")
            .current_dir(root)
            .args([
                "pip",
                "compile",
                "-q",
                "requirements/deployment.in",
                "-o",
                "requirements/deployment.txt",
                "--python-version",
            ])
            .arg(host_python_version()));
        fs::create_dir_all(root.join("conf")).unwrap();
        fs::write(
            root.join("conf/deploy.map"),
            "selector.py.j2  mysite/settings/selected.py\n",
        )
        .unwrap();
        fs::write(
            root.join(".gitignore"),
            "/static/\n/media/\n/var/\n*.sqlite3\n__pycache__/\n",
        )
        .unwrap();
        edit(root, "mysite/settings/production.py", |s| {
            s + "\nimport os\n\n\
                 SECRET_KEY = os.environ.get(\"DJANGO_SECRET_KEY\", \"bench-placeholder-not-secret\")\n\
                 ALLOWED_HOSTS = [\"*\"]\n\
                 DATABASES[\"default\"][\"NAME\"] = BASE_DIR / \"var\" / \"db.sqlite3\"\n"
        });
        edit(root, "mysite/templates/base.html", |s| {
            s.replacen(
                "{% block content %}",
                "<p id=\"bench\">initial</p>\n        {% block content %}",
                1,
            )
        });
        edit(root, "mysite/urls.py", |s| {
            s + "\nfrom django.http import HttpResponse\n\n\
                 urlpatterns.insert(0, path(\"release\", lambda request: HttpResponse(getattr(settings, \"SHIPIT_RELEASE\", \"\"))))\n"
        });
    });
    Site {
        project,
        last_migration: "0002_create_homepage".into(),
        migrations_added: 0,
    }
}

/// The generated site and what the bench has changed in it.
pub struct Site {
    pub project: Project,
    last_migration: String,
    migrations_added: u32,
}

impl Site {
    /// A code-only change: the marker line of `base.html` says `tag`; committed.
    pub fn change_code(&self, tag: &str) {
        edit(&self.project.root, "mysite/templates/base.html", |s| {
            let start = s.find("<p id=\"bench\">").expect("the bench marker");
            let end = start + s[start..].find("</p>").unwrap() + 4;
            format!("{}<p id=\"bench\">{tag}</p>{}", &s[..start], &s[end..])
        });
        self.project.commit_all(&format!("bench: code {tag}"));
    }

    /// A static change: one line more in the site's stylesheet; committed.
    pub fn change_static(&self, tag: &str) {
        edit(&self.project.root, "mysite/static/css/mysite.css", |s| {
            format!("{s}\n/* {tag} */\n")
        });
        self.project.commit_all(&format!("bench: static {tag}"));
    }

    /// A new migration of the `home` app (a no-op RunPython, so the models stay as they are);
    /// committed. Returns its name.
    pub fn add_migration(&mut self) -> String {
        self.migrations_added += 1;
        let name = format!(
            "{:04}_bench_{}",
            2 + self.migrations_added,
            self.migrations_added
        );
        self.project.write(
            &format!("home/migrations/{name}.py"),
            &format!(
                "from django.db import migrations\n\n\n\
                 class Migration(migrations.Migration):\n\
                 \x20   dependencies = [(\"home\", \"{}\")]\n\
                 \x20   operations = [migrations.RunPython(migrations.RunPython.noop, migrations.RunPython.noop)]\n",
                self.last_migration
            ),
        );
        self.last_migration = name.clone();
        self.project.commit_all(&format!("bench: migration {name}"));
        name
    }
}
