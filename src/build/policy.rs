//! What may go into an archive: path safety and the secret-file rule.
//!
//! These are pure checks on names. An archive is unpacked on a server as a deploy user, so a
//! name that climbs out of the release (`..`, absolute paths, a symlink pointing outside the
//! project) is refused outright rather than silently archived, and files that usually hold
//! secrets (`.env`, `local.py`, private keys) stay out unless a rule names them explicitly.

use std::path::{Component, Path};

/// Directory inside an archive (and a release) that shipit reserves for itself.
pub const RESERVED_DIR: &str = ".shipit";

/// File names that are left out of archives because they usually hold secrets.
pub const SECRET_NAMES: &[&str] = &[
    ".env",
    "local.py",
    "local_settings.py",
    ".netrc",
    ".pgpass",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
];

/// File name suffixes that are left out of archives because they usually hold secrets.
pub const SECRET_SUFFIXES: &[&str] = &[".pem", ".key", ".p12", ".pfx", ".keystore"];

/// Validates a path as it will appear inside an archive and returns it normalised
/// (`/`-separated, no `.` components, no trailing slash).
pub fn archive_path(path: &str) -> Result<String, String> {
    if path.is_empty() {
        return Err("is empty".into());
    }
    if path.chars().any(|c| c == '\0' || c == '\n' || c == '\r') {
        return Err(format!(
            "`{}` contains a control character",
            path.escape_debug()
        ));
    }
    if path.starts_with('/') {
        return Err(format!("`{path}` must be a relative path"));
    }
    let mut parts = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str().expect("from a str")),
            Component::CurDir => {}
            Component::ParentDir => return Err(format!("`{path}` must not contain `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("`{path}` must be a relative path"))
            }
        }
    }
    if parts.is_empty() {
        return Err(format!("`{path}` names no file"));
    }
    Ok(parts.join("/"))
}

/// Whether `path` (normalised) lies in the directory shipit reserves.
pub fn is_reserved(path: &str) -> bool {
    path == RESERVED_DIR || path.starts_with(".shipit/")
}

/// Whether the file at archive path `path` looks like it holds secrets.
pub fn is_secret(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    SECRET_NAMES.contains(&name)
        || (name.starts_with(".env.") && !is_example(name))
        || SECRET_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// `.env.example` and `.env.sample` document variables; they are not secrets.
fn is_example(name: &str) -> bool {
    name.ends_with(".example") || name.ends_with(".sample") || name.ends_with(".template")
}

/// Checks a symlink at archive path `link` pointing at `target`: the target must be relative and
/// resolve inside the archive root. Returns the target normalised to `/` separators.
pub fn symlink_target(link: &str, target: &str) -> Result<String, String> {
    if target.starts_with('/') {
        return Err(format!(
            "it is a symlink to the absolute path `{target}`, which the host may not have"
        ));
    }
    let mut depth: Vec<&str> = link.split('/').collect();
    depth.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if depth.pop().is_none() {
                    return Err(format!(
                        "it is a symlink to `{target}`, which points outside the project"
                    ));
                }
            }
            other => depth.push(other),
        }
    }
    Ok(target.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_paths_are_normalised_and_confined() {
        assert_eq!(archive_path("./a//b/./c").unwrap(), "a/b/c");
        assert!(archive_path("/etc/passwd")
            .unwrap_err()
            .contains("relative"));
        assert!(archive_path("a/../../b").unwrap_err().contains(".."));
        assert!(archive_path("a\nb").unwrap_err().contains("control"));
        assert!(archive_path(".").is_err());
        assert!(archive_path("").is_err());
    }

    #[test]
    fn secrets_are_recognised_by_name() {
        for secret in [
            ".env",
            "hello/settings/local.py",
            "deploy/server.pem",
            ".env.production",
            "certs/site.key",
            "home/.ssh/id_ed25519",
        ] {
            assert!(is_secret(secret), "{secret}");
        }
        for plain in [
            "hello/settings/base.py",
            ".env.example",
            "environment.py",
            "keys.py",
            "docs/local.py.txt",
            "id_ed25519.pub",
        ] {
            assert!(!is_secret(plain), "{plain}");
        }
    }

    #[test]
    fn symlinks_must_stay_inside() {
        assert!(symlink_target("a/link", "../b/file").is_ok());
        assert!(symlink_target("a/b/link", "../../top").is_ok());
        assert!(symlink_target("link", "../outside")
            .unwrap_err()
            .contains("outside the project"));
        assert!(symlink_target("a/link", "../../x").is_err());
        assert!(symlink_target("a/link", "/etc/passwd")
            .unwrap_err()
            .contains("absolute"));
    }

    #[test]
    fn reserved_dir() {
        assert!(is_reserved(".shipit/manifest.json"));
        assert!(!is_reserved(".shipitrc"));
    }
}
