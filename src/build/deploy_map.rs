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

use crate::config::Target;
use crate::error::{Error, Result};

use super::policy;

/// The release's virtualenv, which each host creates in the release after unpacking it.
const VENV: &str = ".venv";

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
            if destination == VENV || destination.starts_with(&format!("{VENV}/")) {
                return Err(fail(format!(
                    "destination `{destination}` is inside `{VENV}/`, which each host builds \
                     itself and replaces; render it to a path of the project instead"
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

impl DeployMap {
    /// Refuses a destination that a shared path of `target` covers: the host replaces that path
    /// with a link into `deploy_to/shared/`, so the rendered file would never reach the app (or,
    /// for a shared file mapped itself, would be overwritten by the link).
    pub fn check_shared(&self, target: &Target) -> Result<()> {
        for mapping in &self.mappings {
            let dest = &mapping.destination;
            for (key, shared) in target
                .shared_dirs
                .iter()
                .map(|p| ("shared_dirs", p))
                .chain(target.shared_files.iter().map(|p| ("shared_files", p)))
            {
                if dest == shared || dest.starts_with(&format!("{shared}/")) {
                    return Err(Error::DeployMap {
                        path: self.path.clone(),
                        line: mapping.line,
                        message: format!(
                            "destination `{dest}` is {} `{shared}`, which `targets.{}.{key}` \
                             shares across releases: each host replaces it with a link into \
                             shared/, so the rendered file would never reach the app; render it \
                             elsewhere, or drop `{shared}` from {key}",
                            if dest == shared {
                                "the shared path"
                            } else {
                                "inside"
                            },
                            target.name,
                        ),
                    });
                }
            }
        }
        Ok(())
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
            (
                "a.j2 ./.venv/bin/activate\n",
                "conf/deploy.map:1: destination `.venv/bin/activate` is inside `.venv/`, which each host builds",
            ),
            (
                "a.j2 .venv\n",
                "conf/deploy.map:1: destination `.venv` is inside `.venv/`",
            ),
        ];
        for (text, expected) in cases {
            let msg = parse(text).unwrap_err().to_string();
            assert!(msg.starts_with(expected), "{text:?}: {msg}");
        }
    }

    /// Issue 22, defect 10: a rendered file under a shared path was archived, then hidden on the
    /// host by the link into shared/.
    #[test]
    fn destinations_under_a_shared_path_are_refused_naming_the_key() {
        let config = crate::config::Config::parse(
            Path::new("shipit.toml"),
            Path::new("."),
            "[project]\nname = \"x\"\n[targets.t]\ntransport = \"local\"\n\
             deploy_to = \"/srv/x\"\nenvironment = \"e\"\nshared_dirs = [\"var\", \"media\"]\n\
             shared_files = [\"conf/app.ini\"]\n",
        )
        .unwrap();
        let target = &config.targets["t"];
        for (text, expected) in [
            (
                "a.j2 x/settings.py\nb.j2 var/cache/x\n",
                "conf/deploy.map:2: destination `var/cache/x` is inside `var`, which `targets.t.shared_dirs` shares",
            ),
            (
                "a.j2 media\n",
                "conf/deploy.map:1: destination `media` is the shared path `media`, which `targets.t.shared_dirs`",
            ),
            (
                "a.j2 conf/app.ini\n",
                "conf/deploy.map:1: destination `conf/app.ini` is the shared path `conf/app.ini`, which `targets.t.shared_files`",
            ),
        ] {
            let msg = parse(text)
                .unwrap()
                .check_shared(target)
                .unwrap_err()
                .to_string();
            assert!(msg.starts_with(expected), "{text:?}: {msg}");
            assert!(msg.contains("render it elsewhere"), "{msg}");
        }
        parse("a.j2 variables.py\nb.j2 conf/app.ini.example\n")
            .unwrap()
            .check_shared(target)
            .unwrap();
    }

    #[test]
    fn missing_file_is_an_empty_map() {
        let map = DeployMap::load(Path::new("/nonexistent/deploy.map")).unwrap();
        assert!(map.mappings.is_empty());
    }
}
