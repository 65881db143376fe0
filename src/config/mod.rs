//! `shipit.toml`: the model of a project and its deploy targets.
//!
//! Parsing happens in two steps, as in ripgrep's `LowArgs`/`HiArgs`: serde reads the file into
//! `Raw*` structs that keep the source span of every value we may complain about, then
//! [`Config::load`] validates and resolves them into plain types. Every validation error names the
//! file, the line and the dotted key, because "invalid config" on its own wastes an operator's
//! night.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result};

mod app;
mod database;
mod env;
mod health;
mod hooks;
mod hosts;
mod migrations;
mod nginx;
mod notify;
mod processes;
mod project;
#[cfg(test)]
mod reference;
mod schedule;
mod selection;
mod shared;
pub(crate) mod show;
mod target;
#[cfg(test)]
mod tests;
mod tls;
mod vars;

pub use app::*;
pub use database::*;
use env::validate_env;
pub use health::*;
pub use hooks::*;
pub use hosts::*;
use migrations::validate_migrations;
pub use migrations::*;
pub use nginx::*;
pub use notify::*;
use notify::{validate_notify, RawNotify};
pub use processes::*;
pub use project::*;
use schedule::{validate_schedule, RawSchedule};
use selection::validate_roles;
use shared::validate_shared;
pub use target::*;
use tls::validate_tls;
pub use tls::*;
use vars::validate_vars;
pub use vars::RESERVED_VARS;

/// The configuration file name looked up in the project directory.
pub const CONFIG_FILE: &str = "shipit.toml";

/// A loaded and validated `shipit.toml`.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// The Django project root (the directory holding `shipit.toml` unless configured).
    pub root: PathBuf,
    /// The `[project]` table.
    pub project: Project,
    /// Targets by name, sorted.
    pub targets: BTreeMap<String, Target>,
    /// The `[image]` table (`shipit image`).
    pub image: ImageSettings,
    /// `[aliases]`: short names for commands `shipit run` and `shipit console` run (e.g.
    /// `dbshell = "./manage.py dbshell"`).
    pub aliases: BTreeMap<String, String>,
    /// The `[notify]` table: the webhooks of every target without a `notify` table of its own.
    pub notify: Notify,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    project: Spanned<RawProject>,
    #[serde(default)]
    targets: BTreeMap<Spanned<String>, Spanned<RawTarget>>,
    #[serde(default)]
    image: RawImage,
    #[serde(default)]
    aliases: BTreeMap<Spanned<String>, Spanned<String>>,
    notify: Option<RawNotify>,
}

/// Reports errors against one source file, turning byte spans into line numbers.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn line(&self, span: Range<usize>) -> Option<usize> {
        if span == (0..0) {
            return None;
        }
        let end = span.start.min(self.text.len());
        Some(self.text[..end].matches('\n').count() + 1)
    }

    fn error(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Error {
        self.config_error(span, key.into(), message.into(), None)
    }

    /// An error like [`Source::error`], with advice on how to fix it.
    fn refuse(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Error {
        self.config_error(span, key.into(), message.into(), Some(hint.into()))
    }

    fn config_error(
        &self,
        span: Range<usize>,
        key: String,
        message: String,
        hint: Option<String>,
    ) -> Error {
        Error::Config {
            path: self.path.to_path_buf(),
            line: self.line(span),
            key: Some(key),
            message,
            hint,
        }
    }
}

impl Config {
    /// Finds the configuration: `explicit` if given, else `shipit.toml` in `dir`.
    pub fn locate(dir: &Path, explicit: Option<&Path>) -> PathBuf {
        explicit.map_or_else(|| dir.join(CONFIG_FILE), Path::to_path_buf)
    }

    /// Reads, parses and validates the configuration at `path` for the project in `project`
    /// (`-C DIR`); without one, the configuration file's directory is the project.
    pub fn load(path: &Path, project: Option<&Path>) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Config {
                path: path.to_path_buf(),
                line: None,
                key: None,
                message: "no such file".into(),
                hint: None,
            },
            _ => Error::io("read", path, e),
        })?;
        let root = project
            .or_else(|| path.parent())
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Config::parse(path, &root, &text)
    }

    /// Parses and validates configuration text read from `path`, for a project at `root`.
    pub fn parse(path: &Path, root: &Path, text: &str) -> Result<Config> {
        let source = Source { path, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            line: e.span().and_then(|s| source.line(s)),
            key: None,
            message: e.message().trim().to_string(),
            hint: None,
        })?;
        let project = validate_project(&source, root, raw.project)?;
        let mut targets = BTreeMap::new();
        for (name, target) in raw.targets {
            let mut resolved = validate_target(&source, name.get_ref(), name.span(), target)?;
            // Relative key and known_hosts paths belong to the project, wherever shipit runs.
            for path in [&mut resolved.identity_file, &mut resolved.known_hosts]
                .into_iter()
                .flatten()
            {
                if path.is_relative() {
                    *path = root.join(&*path);
                }
            }
            targets.insert(name.into_inner(), resolved);
        }
        let image = validate_image(&source, raw.image)?;
        let mut aliases = BTreeMap::new();
        for (name, command) in raw.aliases {
            if !is_alias_name(name.get_ref()) {
                return Err(source.error(
                    name.span(),
                    format!("aliases.{}", name.get_ref()),
                    "an alias name is letters, digits, `_` and `-`, starting with a letter",
                ));
            }
            if command.get_ref().trim().is_empty() {
                return Err(source.error(
                    command.span(),
                    format!("aliases.{}", name.get_ref()),
                    "an alias needs a command",
                ));
            }
            aliases.insert(name.into_inner(), command.into_inner());
        }
        let notify = match raw.notify {
            Some(notify) => validate_notify(&source, "notify", notify)?,
            None => Notify::default(),
        };
        Ok(Config {
            path: path.to_path_buf(),
            root: root.to_path_buf(),
            project,
            targets,
            image,
            aliases,
            notify,
        })
    }

    /// The target called `name`, or an error listing the known ones.
    pub fn target(&self, name: &str) -> Result<&Target> {
        self.targets.get(name).ok_or_else(|| Error::UnknownTarget {
            name: name.to_string(),
            known: self.targets.keys().cloned().collect(),
        })
    }

    /// The target named by `name`, or the only target when `name` is `None`.
    pub fn target_or_only(&self, name: Option<&str>) -> Result<&Target> {
        match name {
            Some(name) => self.target(name),
            None if self.targets.len() == 1 => {
                Ok(self.targets.values().next().expect("one target"))
            }
            None => Err(Error::Usage {
                message: format!(
                    "{} defines {} targets; choose one with --target",
                    self.path.display(),
                    self.targets.len()
                ),
                hint: (!self.targets.is_empty()).then(|| {
                    format!(
                        "known targets: {}",
                        self.targets.keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                }),
            }),
        }
    }
}

/// Letters, digits, `_` and `-`: names that become parts of file and program names.
fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn key_for(target: &str, key: &str) -> String {
    format!("targets.{target}.{key}")
}

/// Checks that `path` is relative and stays inside its base (no `..`, not absolute).
pub fn relative_path(path: &str) -> std::result::Result<(), String> {
    if path.is_empty() {
        return Err("must not be empty".into());
    }
    if path.contains('\0') || path.contains('\n') {
        return Err(format!(
            "`{}` contains NUL or a newline",
            path.escape_debug()
        ));
    }
    for component in Path::new(path).components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(format!("`{path}` must not contain `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("`{path}` must be a relative path"))
            }
        }
    }
    Ok(())
}

/// Expands a leading `~/` to the home directory.
pub fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}
