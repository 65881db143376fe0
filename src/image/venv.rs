//! The image's virtualenv layer: `/venv`, built here with uv for Linux x86_64 from wheels only.
//!
//! The key is the VM venvs' key made for an image: the base's Python (path and version), the
//! platform, and the requirements file with every file it includes (`-r`/`-c`, recursively).
//! A finished layer is kept under `.shipit/image/venvs/KEY` (its blob and its digests), so a
//! build whose requirements did not change reuses it without running uv: the layer changes at
//! the rate its inputs change. Built afresh, it has the same digest anyway (uv installs the same
//! wheels; the tar is deterministic), which the tests check with the cache removed.
//!
//! Nothing is compiled and nothing runs on the base's Python: packages go into
//! `lib/pythonX.Y/site-packages` with `uv pip install --target --python-platform
//! --python-version --only-binary :all:`, and `pyvenv.cfg` plus `bin/python` (a symlink to the
//! base's interpreter) make it a virtualenv. Console scripts are left out (their `#!` lines
//! would name this machine's Python); the image runs `python -m gunicorn`.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

use super::layer::{Layer, LayerWriter};

/// Where the virtualenv is inside the image.
pub(crate) const VENV: &str = "/venv";
/// The platform uv installs for.
const PLATFORM: &str = "x86_64-manylinux_2_28";

/// The base image's Python, as configured (`image.python`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BasePython {
    /// Absolute path in the base image, e.g. `/usr/local/bin/python3.12`.
    pub(crate) path: String,
    /// `X.Y`, from the file name.
    pub(crate) version: String,
}

impl BasePython {
    /// Parses an absolute path ending in `pythonX.Y`.
    pub(crate) fn parse(path: &str) -> std::result::Result<BasePython, String> {
        let name = path.rsplit('/').next().unwrap_or_default();
        let version = name.strip_prefix("python").unwrap_or_default();
        let valid = path.starts_with('/')
            && version.split_once('.').is_some_and(|(major, minor)| {
                !major.is_empty()
                    && !minor.is_empty()
                    && major
                        .bytes()
                        .chain(minor.bytes())
                        .all(|b| b.is_ascii_digit())
            });
        if !valid {
            return Err(format!(
                "`{path}` is not an absolute path ending in pythonX.Y (e.g. /usr/local/bin/python3.12): the version decides which wheels go into the image"
            ));
        }
        Ok(BasePython {
            path: path.to_string(),
            version: version.to_string(),
        })
    }
}

/// The requirements file and every file it includes, each after a `-- PATH` line: what the key
/// hashes (as the remote `shipit_requirements` does for the VM venvs).
pub(crate) fn requirements_text(root: &Path, file: &str) -> Result<String> {
    fn walk(root: &Path, file: &str, depth: usize, out: &mut String) -> Result<()> {
        let fail = |message: String| Error::Project {
            message,
            hint: Some("fix the -r/-c lines of the requirements files".into()),
        };
        if depth > 16 {
            return Err(fail(format!(
                "requirements files include each other deeper than 16 levels (a cycle?) at {file}"
            )));
        }
        let path = root.join(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| fail(format!("cannot read requirements file {file}: {e}")))?;
        out.push_str(&text);
        let dir = Path::new(file).parent().unwrap_or(Path::new(""));
        for line in text.lines() {
            let line = line.trim();
            let rest = ["--requirement", "--constraint", "-r", "-c"]
                .iter()
                .find_map(|flag| line.strip_prefix(flag));
            let Some(rest) = rest else { continue };
            let included = rest
                .trim_start_matches(|c: char| c == '=' || c.is_whitespace())
                .split(|c: char| c.is_whitespace() || c == '#')
                .next()
                .unwrap_or_default();
            if included.is_empty() || included.contains("://") {
                continue;
            }
            let included = dir.join(included).to_string_lossy().into_owned();
            out.push_str(&format!("\n-- {included}\n"));
            walk(root, &included, depth + 1, out)?;
        }
        Ok(())
    }
    let mut out = String::new();
    walk(root, file, 0, &mut out)?;
    Ok(out)
}

/// The venv key: 16 hex digits of the python, platform and requirements.
pub(crate) fn key(python: &BasePython, requirements: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(format!("{}\n{}\n{PLATFORM}\n", python.path, python.version));
    hasher.update(requirements);
    crate::build::archive::hex(&hasher.finalize()[..8])
}

/// The venv layer for `requirements` (a file under `root`): from the cache under `cache` when
/// its key is there, else built with uv into `blobs` and remembered.
pub(crate) fn layer(
    root: &Path,
    requirements: &str,
    python: &BasePython,
    cache: &Path,
    blobs: &Path,
    mtime: u64,
) -> Result<(String, Layer, bool)> {
    let text = requirements_text(root, requirements)?;
    let key = key(python, &text);
    let dir = cache.join(&key);
    if let Some(layer) = cached(&dir, blobs) {
        return Ok((key, layer, true));
    }
    let staging = tempfile::Builder::new()
        .prefix(".shipit-venv-")
        .tempdir_in(created(cache)?)
        .map_err(|e| Error::io("create a temporary directory in", cache, e))?;
    let venv = staging.path().join("venv");
    let site = venv.join(format!("lib/python{}/site-packages", python.version));
    install(root, requirements, python, &site, cache)?;
    // Console scripts would start this machine's interpreter; the image uses `python -m`.
    let _ = std::fs::remove_dir_all(site.join("bin"));
    std::fs::create_dir_all(venv.join("bin")).map_err(|e| Error::io("create", &venv, e))?;
    let home = python.path.rsplit_once('/').map_or("/", |(dir, _)| dir);
    let cfg = format!(
        "home = {home}\ninclude-system-site-packages = false\nversion = {}\n",
        python.version
    );
    std::fs::write(venv.join("pyvenv.cfg"), cfg).map_err(|e| Error::io("write", &venv, e))?;
    for (name, target) in [
        ("python", python.path.as_str()),
        ("python3", "python"),
        (&format!("python{}", python.version) as &str, "python"),
    ] {
        let link = venv.join("bin").join(name);
        std::os::unix::fs::symlink(target, &link).map_err(|e| Error::io("create", &link, e))?;
    }

    let mut writer = LayerWriter::new(blobs, mtime)?;
    writer.dir(&VENV[1..], super::layer::Owner::ROOT)?;
    writer.tree(&VENV[1..], &venv)?;
    let layer = writer.finish()?;
    remember(&dir, blobs, &layer)?;
    Ok((key, layer, false))
}

/// `dir`, created if missing.
fn created(dir: &Path) -> Result<&Path> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    Ok(dir)
}

/// Runs uv; a failure names what uv said, and a missing wheel gets its own hint.
fn install(
    root: &Path,
    requirements: &str,
    python: &BasePython,
    site: &Path,
    cache: &Path,
) -> Result<()> {
    let output = Command::new("uv")
        .args([
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--only-binary",
            ":all:",
        ])
        .args(["--python-platform", PLATFORM, "--python-version"])
        .arg(&python.version)
        .arg("--target")
        .arg(site)
        .arg("--requirement")
        .arg(root.join(requirements))
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env("UV_NATIVE_TLS", "1")
        .env("UV_LINK_MODE", "copy")
        .env(
            "UV_CACHE_DIR",
            std::env::var_os("UV_CACHE_DIR").unwrap_or_else(|| cache.join("uv").into()),
        )
        .current_dir(root)
        .output()
        .map_err(|e| Error::Image {
            stage: "virtualenv",
            message: format!("cannot run uv: {e}"),
            tail: Vec::new(),
            hint: Some(
                "install uv (`pip install uv`); the image's virtualenv is built with it".into(),
            ),
        })?;
    if output.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<String> = said
        .lines()
        .rev()
        .take(12)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(String::from)
        .collect();
    let no_wheel = said.contains("no wheels")
        || said.contains("doesn't have a source distribution or wheel")
        || said.contains("has no usable wheels")
        || said.contains("--no-build");
    let package = no_wheel.then(|| package_named(&said)).flatten();
    Err(Error::Image {
        stage: "virtualenv",
        message: match &package {
            Some(name) => format!("`{name}` has no wheel for Linux x86_64 and Python {}: the image installs wheels only", python.version),
            None => format!("uv could not install {requirements} for Linux x86_64 and Python {}", python.version),
        },
        tail,
        hint: Some(if no_wheel {
            "pin a version that publishes a manylinux x86_64 wheel, or build the wheel and serve it from an index (`uv pip install --find-links`)".into()
        } else {
            "check that the requirements file installs with `uv pip install --python-platform x86_64-manylinux_2_28 --only-binary :all:`".into()
        }),
    })
}

/// The package uv could not install: from "Because NAME==V has no usable wheels", else the
/// first backquoted name in its message (its hints and other errors quote the package).
fn package_named(said: &str) -> Option<String> {
    if let Some(at) = said.find(" has no usable wheels") {
        let before = &said[..at];
        let name = before
            .rsplit(' ')
            .next()?
            .split(['=', '<', '>', '!', '~'])
            .next()?;
        if !name.is_empty() {
            return Some(name.to_string());
        }
    }
    let start = said.find('`')? + 1;
    let end = start + said[start..].find('`')?;
    let quoted = &said[start..end];
    let name = quoted.split(['=', ' ', '<', '>', '@']).next()?;
    (!name.is_empty()).then(|| name.to_string())
}

/// The remembered layer of `dir`, copied into `blobs`, if its blob is still there and whole.
fn cached(dir: &Path, blobs: &Path) -> Option<Layer> {
    let text = std::fs::read_to_string(dir.join("layer.json")).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    let layer = Layer {
        digest: value["digest"].as_str()?.to_string(),
        diff_id: value["diff_id"].as_str()?.to_string(),
        size: value["size"].as_u64()?,
    };
    let blob = dir.join("blob");
    if std::fs::metadata(&blob).ok()?.len() != layer.size {
        return None;
    }
    let destination = blobs.join(&layer.digest["sha256:".len()..]);
    std::fs::hard_link(&blob, &destination)
        .or_else(|_| std::fs::copy(&blob, &destination).map(|_| ()))
        .ok()?;
    Some(layer)
}

/// Keeps the blob and its digests under `dir` for the next build.
fn remember(dir: &Path, blobs: &Path, layer: &Layer) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    let source: PathBuf = blobs.join(&layer.digest["sha256:".len()..]);
    let blob = dir.join("blob");
    std::fs::hard_link(&source, &blob)
        .or_else(|_| std::fs::copy(&source, &blob).map(|_| ()))
        .map_err(|e| Error::io("write", &blob, e))?;
    let json = serde_json::json!({
        "digest": layer.digest,
        "diff_id": layer.diff_id,
        "size": layer.size,
    });
    std::fs::write(dir.join("layer.json"), json.to_string()).map_err(|e| Error::io("write", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_python_path_names_its_version() {
        let p = BasePython::parse("/usr/local/bin/python3.12").unwrap();
        assert_eq!(p.version, "3.12");
        for bad in [
            "python3.12",
            "/usr/bin/python3",
            "/usr/bin/python3.x",
            "/usr/bin/pypy3.10",
        ] {
            assert!(BasePython::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_key_covers_included_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("req")).unwrap();
        std::fs::write(
            dir.path().join("req/app.txt"),
            "-r base.txt\ngunicorn==23.0.0\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("req/base.txt"), "django==5.2\n").unwrap();
        let python = BasePython::parse("/usr/bin/python3.11").unwrap();
        let before = key(
            &python,
            &requirements_text(dir.path(), "req/app.txt").unwrap(),
        );
        std::fs::write(dir.path().join("req/base.txt"), "django==5.2.1\n").unwrap();
        let after = key(
            &python,
            &requirements_text(dir.path(), "req/app.txt").unwrap(),
        );
        assert_ne!(before, after);
        assert_eq!(before.len(), 16);
        std::fs::remove_file(dir.path().join("req/base.txt")).unwrap();
        let err = requirements_text(dir.path(), "req/app.txt").unwrap_err();
        assert!(err.to_string().contains("req/base.txt"), "{err}");
    }

    #[test]
    fn names_the_package_uv_quotes() {
        let said = "error: Distribution `psycopg2==2.9.10 @ registry+https://pypi.org/simple` can't be installed because it doesn't have a source distribution or wheel for the current platform";
        assert_eq!(package_named(said).as_deref(), Some("psycopg2"));
        let said = "error: No solution found when resolving dependencies\n  cause: Because pycrypto==2.6.1 has no usable wheels and you require pycrypto==2.6.1, we can conclude that your requirements are unsatisfiable.";
        assert_eq!(package_named(said).as_deref(), Some("pycrypto"));
    }
}
