//! `shipit init`'s knowledge of a Django project: [`detect`] reads what the project says about
//! itself, [`files`] renders a first configuration from it. The command only writes what is
//! missing and reports.

mod detect;
mod files;

pub(crate) use detect::{detect, Detected};
pub(crate) use files::files;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn write(root: &Path, path: &str, text: &str) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_startproject_layout_gets_a_selector_beside_its_settings_module() {
        let dir = tempfile::tempdir().unwrap();
        let root = &dir.path().join("mysite");
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

    /// A uv-managed project (`uv init` + `django-admin startproject config .`, the
    /// cookiecutter-django shape): named after pyproject.toml, not the settings package;
    /// installing from uv.lock; the selector in the settings package.
    #[test]
    fn a_uv_project_is_named_by_its_pyproject_and_installs_from_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let root = &dir.path().join("site");
        write(
            root,
            "manage.py",
            "os.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"config.settings\")\n",
        );
        write(root, "config/__init__.py", "");
        write(
            root,
            "config/settings.py",
            "WSGI_APPLICATION = \"config.wsgi.application\"\n",
        );
        write(
            root,
            "pyproject.toml",
            "[project]\nname = \"My.Shop\"\nversion = \"1\"\n",
        );
        write(root, "uv.lock", "version = 1\n");
        let d = detect(root, "manage.py").unwrap();
        assert_eq!(d.name, "my-shop");
        assert_eq!(d.requirements, "uv.lock");
        assert!(d.requirements_found);
        assert_eq!(d.wsgi_app, "config.wsgi:application");
        assert_eq!(d.selector_module(), "config.selected_settings");
        let written = files(&d, "conf/deploy.map");
        assert_eq!(written.len(), 2, "no requirements.in beside a lock");
        let config =
            crate::config::Config::parse(Path::new("shipit.toml"), root, &written[0].1).unwrap();
        assert_eq!(config.project.name, "my-shop");
        assert_eq!(config.project.requirements_for("production"), "uv.lock");
        assert_eq!(config.project.settings_module, "config.selected_settings");
        // Without a pyproject.toml: the directory's name.
        std::fs::remove_file(root.join("pyproject.toml")).unwrap();
        assert_eq!(detect(root, "manage.py").unwrap().name, "site");
    }

    #[test]
    fn no_manage_py_is_a_project_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = detect(dir.path(), "manage.py").unwrap_err();
        assert_eq!(error.exit_code(), 2, "{error}");
    }
}
