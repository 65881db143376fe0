//! `deploy.map`: which templates are rendered into the archive, and where.
//!
//! The seed's Fabric build copied "the config files as described in conf/deploy.map" into the
//! tarball; these are the *environment selector* files (the module that picks
//! `settings.staging` or `settings.deployment`, a `.env`-style file of non-secret values, ...).
//! Format, one mapping per line:
//!
//! ```text
//! # template               destination inside the archive
//! selector.py.j2           hello/settings/selected.py
//! "conf/app env.j2"        conf/app.env
//! ```
//!
//! Blank lines and lines starting with `#` are ignored; fields are separated by whitespace and
//! may be quoted with shell rules. Parsing is pure; templates are looked up and rendered by the
//! build.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use super::policy;

/// One mapping line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// Template name (see [`crate::templates::Templates::find`]).
    pub template: String,
    /// Destination path inside the archive (validated, `/`-separated).
    pub destination: String,
    /// 1-based line in deploy.map, for error messages.
    pub line: usize,
}

/// A parsed deploy.map.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeployMap {
    /// The file it came from (for messages).
    pub path: PathBuf,
    /// Mappings in file order.
    pub mappings: Vec<Mapping>,
}

impl DeployMap {
    /// Reads `path`; a missing file is an empty map, so a project without selector files needs
    /// no deploy.map.
    pub fn load(path: &Path) -> Result<DeployMap> {
        match std::fs::read_to_string(path) {
            Ok(text) => DeployMap::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DeployMap {
                path: path.to_path_buf(),
                mappings: Vec::new(),
            }),
            Err(e) => Err(Error::io("read", path, e)),
        }
    }

    /// Parses deploy.map text read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<DeployMap> {
        let mut mappings: Vec<Mapping> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let fail = |message: String| Error::DeployMap {
                path: path.to_path_buf(),
                line,
                message,
            };
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let fields =
                shlex::split(trimmed).ok_or_else(|| fail("unbalanced quotes".to_string()))?;
            let [template, destination] = fields.as_slice() else {
                return Err(fail(format!(
                    "expected `TEMPLATE DESTINATION`, found {} field{}",
                    fields.len(),
                    if fields.len() == 1 { "" } else { "s" }
                )));
            };
            if template.is_empty() {
                return Err(fail("the template name is empty".into()));
            }
            crate::config::relative_path(template)
                .map_err(|why| fail(format!("template {why}")))?;
            let destination = policy::archive_path(destination)
                .map_err(|why| fail(format!("destination {why}")))?;
            if policy::is_reserved(&destination) {
                return Err(fail(format!(
                    "destination `{destination}` is inside `.shipit/`, which shipit reserves"
                )));
            }
            if let Some(first) = mappings.iter().find(|m| m.destination == destination) {
                return Err(fail(format!(
                    "destination `{destination}` is already mapped on line {}",
                    first.line
                )));
            }
            mappings.push(Mapping {
                template: template.clone(),
                destination,
                line,
            });
        }
        Ok(DeployMap {
            path: path.to_path_buf(),
            mappings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DeployMap> {
        DeployMap::parse(Path::new("conf/deploy.map"), text)
    }

    #[test]
    fn parses_mappings_comments_and_quotes() {
        let map = parse(
            "# selector\n\nselector.py.j2   hello/settings/selected.py\n  \"conf/app env.j2\" conf/app.env  \n",
        )
        .unwrap();
        assert_eq!(
            map.mappings,
            vec![
                Mapping {
                    template: "selector.py.j2".into(),
                    destination: "hello/settings/selected.py".into(),
                    line: 3
                },
                Mapping {
                    template: "conf/app env.j2".into(),
                    destination: "conf/app.env".into(),
                    line: 4
                },
            ]
        );
    }

    #[test]
    fn bad_lines_give_file_line_and_reason() {
        let cases = [
            (
                "a.j2\n",
                "conf/deploy.map:1: expected `TEMPLATE DESTINATION`, found 1 field",
            ),
            (
                "\na.j2 b c\n",
                "conf/deploy.map:2: expected `TEMPLATE DESTINATION`, found 3 fields",
            ),
            ("a.j2 \"b\n", "conf/deploy.map:1: unbalanced quotes"),
            (
                "a.j2 /etc/passwd\n",
                "conf/deploy.map:1: destination `/etc/passwd` must be a relative path",
            ),
            (
                "a.j2 ../x\n",
                "conf/deploy.map:1: destination `../x` must not contain `..`",
            ),
            (
                "../a.j2 x\n",
                "conf/deploy.map:1: template `../a.j2` must not contain `..`",
            ),
            (
                "a.j2 x\nb.j2 ./x\n",
                "conf/deploy.map:2: destination `x` is already mapped on line 1",
            ),
            (
                "a.j2 .shipit/manifest.json\n",
                "conf/deploy.map:1: destination `.shipit/manifest.json` is inside `.shipit/`",
            ),
        ];
        for (text, expected) in cases {
            let msg = parse(text).unwrap_err().to_string();
            assert!(msg.starts_with(expected), "{text:?}: {msg}");
        }
    }

    #[test]
    fn missing_file_is_an_empty_map() {
        let map = DeployMap::load(Path::new("/nonexistent/deploy.map")).unwrap();
        assert!(map.mappings.is_empty());
    }
}
