//! What may go into an archive: path safety and the secret-file rule.
//!
//! These are pure checks on names. An archive is unpacked on a server as a deploy user, so a
//! name that climbs out of the release (`..`, absolute paths, a symlink pointing outside the
//! project) is refused outright rather than silently archived, and files that usually hold
//! secrets (`.env`, `local.py`, private keys, anything under `.envs/` or `secrets/`) stay out
//! unless a rule names them explicitly. What the files hold is checked by [`super::content`].

use std::path::{Component, Path};

/// Directory inside an archive (and a release) that shipit reserves for itself.
pub const RESERVED_DIR: &str = ".shipit";

/// Why a name is taken for a secret: one rule per kind of file, matched case-insensitively
/// against the file name, or for [`SecretRule::Dir`] against each directory above it. This table
/// is the one place the secret-file rule lives; README's list and the tests follow it.
pub const SECRET_RULES: &[(SecretRule, &str)] = &[
    // cookiecutter-django commits `.envs/.production/.django` with a generated secret key.
    (SecretRule::Dir(".envs"), "directory of env files"),
    (SecretRule::Dir(".secrets"), "secrets directory"),
    (SecretRule::Dir("secrets"), "secrets directory"),
    (SecretRule::Name(".env"), "dotenv file"),
    (SecretRule::Name(".envrc"), "direnv file"),
    (SecretRule::Prefix(".env."), "dotenv file"),
    (SecretRule::Prefix(".env-"), "dotenv file"),
    (SecretRule::Prefix(".env_"), "dotenv file"),
    (SecretRule::Suffix(".env"), "dotenv file"),
    (SecretRule::Infix(".env."), "dotenv file"),
    (SecretRule::Name("local.py"), "local Django settings"),
    (
        SecretRule::Name("local_settings.py"),
        "local Django settings",
    ),
    (SecretRule::Name("secrets.py"), "secrets module"),
    (SecretRule::Name(".netrc"), "netrc credentials"),
    (SecretRule::Name(".pgpass"), "PostgreSQL password file"),
    (SecretRule::Name(".pypirc"), "PyPI credentials"),
    (SecretRule::Name(".npmrc"), "npm credentials"),
    (SecretRule::Name(".htpasswd"), "HTTP password file"),
    (SecretRule::Name("credentials"), "cloud credentials"),
    (SecretRule::Name("credentials.json"), "cloud credentials"),
    (
        SecretRule::Between("service-account", ".json"),
        "service account key",
    ),
    (SecretRule::Prefix("id_rsa"), "SSH private key"),
    (SecretRule::Prefix("id_dsa"), "SSH private key"),
    (SecretRule::Prefix("id_ecdsa"), "SSH private key"),
    (SecretRule::Prefix("id_ed25519"), "SSH private key"),
    (SecretRule::Suffix(".pem"), "PEM key or certificate"),
    (SecretRule::Suffix(".key"), "private key"),
    (SecretRule::Suffix(".p12"), "PKCS#12 key store"),
    (SecretRule::Suffix(".pfx"), "PKCS#12 key store"),
    (SecretRule::Suffix(".keystore"), "Java key store"),
    (SecretRule::Suffix(".jks"), "Java key store"),
    (SecretRule::Suffix(".ppk"), "PuTTY private key"),
];

/// How a [`SECRET_RULES`] entry matches a lower-cased file name.
#[derive(Debug, Clone, Copy)]
pub enum SecretRule {
    /// The whole name.
    Name(&'static str),
    /// The start of the name.
    Prefix(&'static str),
    /// The end of the name.
    Suffix(&'static str),
    /// A start and an end.
    Between(&'static str, &'static str),
    /// Anywhere inside the name (`production.env.local`).
    Infix(&'static str),
    /// A directory above the file: everything below it is taken for a secret.
    Dir(&'static str),
}

impl SecretRule {
    /// Whether the rule matches a lower-cased path: its last component, or for `Dir` any other.
    fn matches(self, path: &str) -> bool {
        let (dirs, name) = path.rsplit_once('/').unwrap_or(("", path));
        match self {
            SecretRule::Name(n) => name == n,
            SecretRule::Prefix(p) => name.starts_with(p),
            SecretRule::Suffix(s) => name.ends_with(s),
            SecretRule::Between(p, s) => name.starts_with(p) && name.ends_with(s),
            SecretRule::Infix(i) => name.contains(i),
            SecretRule::Dir(d) => dirs.split('/').any(|dir| dir == d),
        }
    }
}

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

/// Why the file at archive path `path` looks like it holds secrets, or `None`.
pub fn secret_kind(path: &str) -> Option<&'static str> {
    let path = path.to_ascii_lowercase();
    let name = path.rsplit('/').next().unwrap_or(&path);
    if is_documentation(name) {
        return None;
    }
    SECRET_RULES
        .iter()
        .find(|(rule, _)| rule.matches(&path))
        .map(|(_, kind)| *kind)
}

/// Why the directory at archive path `dir` holds secrets by name (`.envs`, `config/secrets`),
/// or `None`: a symlink to it would reach them.
pub(crate) fn secret_dir_kind(dir: &str) -> Option<&'static str> {
    let below = format!("{}/", dir.to_ascii_lowercase());
    SECRET_RULES
        .iter()
        .find(|(rule, _)| matches!(rule, SecretRule::Dir(_)) && rule.matches(&below))
        .map(|(_, kind)| *kind)
}

/// Whether the file at archive path `path` looks like it holds secrets.
pub fn is_secret(path: &str) -> bool {
    secret_kind(path).is_some()
}

/// Names that document secrets rather than hold them: `.env.example`, `id_rsa.pub`,
/// `secrets.py.template`, `service-account.schema.json`-style samples.
fn is_documentation(name: &str) -> bool {
    [".example", ".sample", ".template", ".dist", ".pub"]
        .iter()
        .any(|suffix| name.ends_with(suffix))
}

/// Checks a symlink at archive path `link` pointing at `target`: the target must be relative and
/// resolve inside the archive root. Returns the archive path it names, read lexically (a link
/// on the way may send it elsewhere: [`super::source`] resolves it on disk too).
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
    Ok(depth.join("/"))
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
            "keyboard.py",
            "credentials.py",
            "service-account.md",
            "envoy.yaml",
            "hello/templates/env.html",
            ".envs/.production/README.example",
            "envs/production.py",
            "mysecrets/notes.txt",
            "secrets",
            "pages/secrets.html",
        ] {
            assert!(!is_secret(plain), "{plain}");
        }
    }

    /// cookiecutter-django's committed env files, and the other directory conventions.
    #[test]
    fn files_below_a_secrets_directory_are_secrets() {
        for secret in [
            ".envs/.production/.django",
            ".envs/.production/.postgres",
            ".envs/.local/.django",
            "deploy/.secrets/token",
            "secrets/prod/db_password",
            "compose/production.env.local",
        ] {
            assert!(is_secret(secret), "{secret}");
        }
        assert_eq!(secret_dir_kind(".envs"), Some("directory of env files"));
        assert_eq!(
            secret_dir_kind("config/secrets/prod"),
            Some("secrets directory")
        );
        assert_eq!(secret_dir_kind("static"), None);
        assert_eq!(secret_dir_kind("secrets.d"), None);
    }

    /// One name per rule of the table, in another case than the rule's, so each rule is proved
    /// to match, case-insensitively; and a rule added without an example here fails the test.
    #[test]
    fn every_secret_rule_matches_its_example_in_any_case() {
        let examples = [
            ".envs/.production/.Django",
            "config/.SECRETS/db",
            "deploy/Secrets/prod/key.txt",
            ".ENV",
            "app/.envrc",
            ".env.Production",
            ".env-staging",
            ".env_local",
            "deploy/Production.ENV",
            "compose/django.ENV.prod",
            "hello/settings/Local.py",
            "LOCAL_SETTINGS.PY",
            "hello/Secrets.py",
            ".NETRC",
            ".pgpass",
            ".PyPirc",
            "frontend/.npmrc",
            "nginx/.htpasswd",
            "aws/Credentials",
            "gcp/credentials.JSON",
            "Service-Account-prod.json",
            "keys/ID_RSA.bak",
            "id_dsa~",
            "id_ecdsa_sk",
            "backup/id_ed25519.old",
            "tls/site.PEM",
            "tls/site.Key",
            "store.P12",
            "store.pfx",
            "release.KEYSTORE",
            "release.jks",
            "putty/server.PPK",
        ];
        assert_eq!(examples.len(), SECRET_RULES.len());
        for ((rule, kind), example) in SECRET_RULES.iter().zip(examples) {
            assert!(
                rule.matches(&example.to_ascii_lowercase()),
                "{rule:?} should match {example}"
            );
            assert_eq!(secret_kind(example), Some(*kind), "{example}");
        }
    }

    #[test]
    fn symlinks_must_stay_inside() {
        assert_eq!(symlink_target("a/link", "../b/file").unwrap(), "b/file");
        assert_eq!(symlink_target("a/b/link", "../../top").unwrap(), "top");
        assert_eq!(
            symlink_target("static/x.txt", "../.shipit/env").unwrap(),
            ".shipit/env"
        );
        assert_eq!(symlink_target("here", ".").unwrap(), "");
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
