//! The project tree that goes into an archive: what git tracks, minus excludes and secrets.
//!
//! Inside a git work tree the file list is `git ls-files` (so build output, virtualenvs and
//! anything untracked never ship) and the revision, dirty flag and commit time come from git.
//! Elsewhere an ignore-aware walk (`.gitignore`, `.ignore`) stands in. Either way every name is
//! checked by [`super::policy`] before it is accepted.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::error::{Error, Result};

use super::policy;

/// What kind of entry a source file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// A regular file; `executable` when any execute bit is set.
    File {
        /// Whether any execute bit is set.
        executable: bool,
        /// Size in bytes when listed.
        size: u64,
    },
    /// A symlink to a (validated, relative) target.
    Symlink {
        /// Link target.
        target: String,
    },
}

/// One file of the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path inside the archive, `/`-separated; on disk it is the same path under the root (not
    /// stored twice: a tree of 200k files would hold both).
    pub path: String,
    /// File or symlink.
    pub kind: SourceKind,
}

/// Version-control facts about the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// Commit hash, or `unknown` outside git.
    pub commit: String,
    /// Whether tracked files differ from the commit.
    pub dirty: bool,
    /// Commit time as a Unix timestamp, when in git.
    pub commit_time: Option<i64>,
}

/// The files to archive, sorted by path, and the secret-looking files that were left out.
#[derive(Debug, Clone)]
pub struct SourceTree {
    /// Files to archive, sorted by path.
    pub files: Vec<SourceFile>,
    /// Files left out because they look like secrets (names only).
    pub secrets_skipped: Vec<String>,
    /// Git facts.
    pub revision: Revision,
}

/// Rules that decide which listed files are archived.
pub struct Selection {
    exclude: Gitignore,
    include: Gitignore,
    /// `shipit.toml` and the configuration file in use, relative to the root when they lie inside
    /// it: every target's hosts and secret commands, which a release has no use for, so they ship
    /// only when `include` names them.
    own_config: Vec<String>,
}

impl Selection {
    /// Builds the rules from gitignore-style `exclude` and `include` patterns, relative to `root`,
    /// and leaves out `shipit.toml` and `config_file` (shipit's own configuration) unless
    /// `include` names them.
    pub fn new(
        root: &Path,
        config_file: &Path,
        exclude: &[String],
        include: &[String],
    ) -> Result<Selection> {
        let build = |patterns: &[String], key: &str| -> Result<Gitignore> {
            let mut builder = GitignoreBuilder::new(root);
            for pattern in patterns {
                builder.add_line(None, pattern).map_err(|e| {
                    Error::usage(format!("invalid pattern `{pattern}` in project.{key}: {e}"))
                })?;
            }
            builder
                .build()
                .map_err(|e| Error::usage(format!("invalid project.{key} patterns: {e}")))
        };
        Ok(Selection {
            exclude: build(exclude, "exclude")?,
            include: build(include, "include")?,
            own_config: [crate::config::CONFIG_FILE.to_string()]
                .into_iter()
                .chain(inside(root, config_file))
                .collect(),
        })
    }

    /// Matches the absolute path: the ignore crate strips its root from the front of a path
    /// textually, so a relative `hello/settings/x` under a root spelt `hello` would lose its
    /// first component and match the wrong patterns.
    fn matches(rules: &Gitignore, path: &str) -> bool {
        rules
            .matched_path_or_any_parents(rules.path().join(path), false)
            .is_ignore()
    }

    fn excluded(&self, path: &str) -> bool {
        policy::is_reserved(path) || Selection::matches(&self.exclude, path)
    }

    /// Why a symlink's target (a path inside the project, resolved) must not be linked to, or
    /// `None`: it is shipit's own directory, excluded, or (by name) a secret.
    fn unlinkable(&self, target: &str, is_dir: bool) -> Option<String> {
        if policy::is_reserved(target) {
            return Some(format!(
                "`{target}` is inside `{}`, where a host keeps the release's env file and secrets",
                policy::RESERVED_DIR
            ));
        }
        let excluded = self
            .exclude
            .matched_path_or_any_parents(self.exclude.path().join(target), is_dir)
            .is_ignore();
        if excluded {
            return Some(format!("`{target}` is excluded from the archive"));
        }
        let secret = if is_dir {
            policy::secret_dir_kind(target)
        } else {
            policy::secret_kind(target)
        };
        match secret {
            Some(kind) if !self.explicitly_included(target) => Some(format!(
                "`{target}` looks like a secret ({kind}) and is not archived"
            )),
            _ if !is_dir && self.withheld(target) => Some(format!(
                "`{target}` is shipit's configuration and is not archived"
            )),
            _ => None,
        }
    }

    /// Whether a file at `path` would enter the archive (were it listed).
    pub(crate) fn archivable(&self, path: &str) -> bool {
        !self.excluded(path) && !self.withheld(path)
    }

    /// Whether `include` names `path`, which lets a secret-looking file into the archive.
    pub(crate) fn explicitly_included(&self, path: &str) -> bool {
        Selection::matches(&self.include, path)
    }

    /// Whether `path` is left out as a secret-looking file (or shipit's own configuration).
    pub(crate) fn withheld(&self, path: &str) -> bool {
        (policy::is_secret(path) || self.own_config.iter().any(|c| c == path))
            && !self.explicitly_included(path)
    }
}

/// `path` relative to `root` when it lies inside it, spelt either way (`--config other.toml`
/// beside `-C .`): both are resolved on disk when they exist.
pub(crate) fn inside(root: &Path, path: &Path) -> Option<String> {
    // A file not made yet: its directory resolved, then its name.
    let resolve = |p: &Path| {
        std::fs::canonicalize(p)
            .or_else(|e| match (p.parent(), p.file_name()) {
                (Some(dir), Some(name)) => std::fs::canonicalize(dir).map(|d| d.join(name)),
                _ => Err(e),
            })
            .unwrap_or_else(|_| p.to_path_buf())
    };
    let relative = resolve(path)
        .strip_prefix(resolve(root))
        .ok()?
        .to_path_buf();
    relative.to_str().map(str::to_string)
}

/// Lists the project at `root`: git-tracked files in a work tree, an ignore-aware walk otherwise,
/// plus every file below the `artifacts` paths (what `project.build` made, usually ignored by
/// git), each checked by the same rules.
pub fn scan(root: &Path, selection: &Selection, artifacts: &[String]) -> Result<SourceTree> {
    let (mut names, revision) = match git_files(root)? {
        Some(names) if names.is_empty() => {
            return Err(Error::Project {
                message: format!("git tracks no files in {}", root.display()),
                hint: Some("commit the project first: shipit archives what git tracks".into()),
            })
        }
        Some(names) => (names, git_revision(root)?),
        None => (
            walk_files(root)?,
            Revision {
                commit: "unknown".into(),
                dirty: false,
                commit_time: None,
            },
        ),
    };
    for artifact in artifacts {
        names.extend(artifact_files(root, artifact)?);
    }
    let mut files = Vec::new();
    let mut secrets_skipped = Vec::new();
    for raw in names {
        match classify(root, &raw, selection)? {
            Some(Listed::File(file)) => files.push(file),
            Some(Listed::Secret(path)) => secrets_skipped.push(path),
            None => {}
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    Ok(SourceTree {
        files,
        secrets_skipped,
        revision,
    })
}

/// What one listed name turned out to be.
enum Listed {
    /// A file to archive.
    File(SourceFile),
    /// A secret-looking file left out (its archive path).
    Secret(String),
}

/// Checks one name listed below `root`: `None` when it is excluded or gone from the work tree.
fn classify(root: &Path, raw: &OsStr, selection: &Selection) -> Result<Option<Listed>> {
    let Some(text) = raw.to_str() else {
        return Err(Error::UnsafePath {
            path: raw.to_string_lossy().into_owned(),
            reason: "its name is not valid UTF-8".into(),
        });
    };
    let path = policy::archive_path(text).map_err(|reason| Error::UnsafePath {
        path: text.to_string(),
        reason,
    })?;
    if selection.excluded(&path) {
        return Ok(None);
    }
    if selection.withheld(&path) {
        return Ok(Some(Listed::Secret(path)));
    }
    let disk = root.join(&path);
    let meta = match std::fs::symlink_metadata(&disk) {
        Ok(meta) => meta,
        // Tracked but deleted in the work tree: it is not part of what is being built.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", &disk, e)),
    };
    let kind = if meta.file_type().is_symlink() {
        let target = std::fs::read_link(&disk).map_err(|e| Error::io("read link", &disk, e))?;
        let target = target.to_str().ok_or_else(|| Error::UnsafePath {
            path: path.clone(),
            reason: "it is a symlink whose target is not valid UTF-8".into(),
        })?;
        policy::symlink_target(&path, target).map_err(|reason| Error::UnsafePath {
            path: path.clone(),
            reason,
        })?;
        resolves_inside(root, &disk, target).map_err(|reason| Error::UnsafePath {
            path: path.clone(),
            reason,
        })?;
        SourceKind::Symlink {
            target: target.to_string(),
        }
    } else if meta.is_file() {
        use std::os::unix::fs::PermissionsExt;
        SourceKind::File {
            executable: meta.permissions().mode() & 0o111 != 0,
            size: meta.len(),
        }
    } else if meta.is_dir() {
        return Err(Error::UnsafePath {
            path,
            reason: "it is a directory git tracks as a submodule; submodules are not supported"
                .into(),
        });
    } else {
        return Err(Error::UnsafePath {
            path,
            reason: "it is not a regular file or symlink".into(),
        });
    };
    Ok(Some(Listed::File(SourceFile { path, kind })))
}

/// The lexical check in [`policy::symlink_target`] cannot see other symlinks on the way
/// (`here -> .`, then `here/here/../../x` climbs out). Resolve the link on disk when it can be
/// resolved; when it dangles, refuse any symlink among the directories it passes through.
fn resolves_inside(root: &Path, link: &Path, target: &str) -> std::result::Result<(), String> {
    let root =
        std::fs::canonicalize(root).map_err(|e| format!("cannot resolve the project root: {e}"))?;
    let parent = link.parent().unwrap_or(&root);
    match std::fs::canonicalize(link) {
        Ok(resolved) if resolved.starts_with(&root) => Ok(()),
        Ok(resolved) => Err(format!(
            "it is a symlink to `{target}`, which resolves to {} outside the project",
            resolved.display()
        )),
        Err(_) => {
            let mut walked = parent.to_path_buf();
            for part in Path::new(target)
                .parent()
                .into_iter()
                .flat_map(Path::components)
            {
                walked.push(part);
                if std::fs::symlink_metadata(&walked).is_ok_and(|m| m.file_type().is_symlink()) {
                    return Err(format!(
                        "it is a dangling symlink to `{target}` that passes through another symlink"
                    ));
                }
            }
            Ok(())
        }
    }
}

/// Checks where each symlink of `files` leads, once the archive's contents are known (`generated`:
/// the rendered deploy.map destinations). A link is refused when it dangles (it would dangle on
/// the host too, or find whatever a host puts there), when it reaches into `.shipit/` (where a
/// host keeps the release's env file: a link under `static/` would let collectstatic publish it),
/// and when its target is left out of the archive (excluded, or a secret by name: on a host the
/// same name may hold the real secret, as a shared file).
pub(crate) fn check_links(
    root: &Path,
    selection: &Selection,
    files: &[SourceFile],
    generated: &[&str],
) -> Result<()> {
    let canonical_root = std::fs::canonicalize(root).map_err(|e| Error::io("resolve", root, e))?;
    for file in files {
        let SourceKind::Symlink { target } = &file.kind else {
            continue;
        };
        let refuse = |why: String| Error::UnsafePath {
            path: file.path.clone(),
            reason: format!("it is a symlink to `{target}`: {why}"),
        };
        // Lexically first: `.shipit/env` rarely exists on this machine, but does on a host.
        let named = policy::symlink_target(&file.path, target).map_err(refuse)?;
        if let Some(why) = Some(&named)
            .filter(|n| !n.is_empty())
            .and_then(|n| selection.unlinkable(n, false))
        {
            return Err(refuse(why));
        }
        let disk = root.join(&file.path);
        let (resolved, is_dir) =
            match std::fs::canonicalize(&disk) {
                Ok(resolved) => {
                    let is_dir = resolved.is_dir();
                    let relative = resolved
                        .strip_prefix(&canonical_root)
                        .ok()
                        .and_then(|p| p.to_str())
                        .map(str::to_string);
                    match relative {
                        Some(relative) => (relative, is_dir),
                        None => {
                            return Err(refuse(format!(
                                "it resolves to {}, outside the project",
                                resolved.display()
                            )))
                        }
                    }
                }
                Err(_) if generated.contains(&named.as_str()) => continue,
                Err(_) => return Err(refuse(
                    "nothing is there (a dangling link); on a host it would dangle too, or find \
                     whatever the host put there"
                        .into(),
                )),
            };
        if let Some(why) = selection.unlinkable(&resolved, is_dir) {
            return Err(refuse(why));
        }
    }
    Ok(())
}

fn git(root: &Path, args: &[&str]) -> Result<std::process::Output> {
    Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .map_err(|e| Error::Git {
            message: format!("cannot run git: {e}"),
        })
}

/// Tracked files relative to `root`, or `None` when `root` is not inside a git work tree.
fn git_files(root: &Path) -> Result<Option<Vec<std::ffi::OsString>>> {
    let inside = git(root, &["rev-parse", "--is-inside-work-tree"]);
    match inside {
        Ok(out) if out.status.success() && out.stdout.starts_with(b"true") => {}
        _ => return Ok(None),
    }
    // Run from `root`, ls-files lists the files below it with paths relative to it.
    let out = git(root, &["ls-files", "-z", "--cached", "--", "."])?;
    if !out.status.success() {
        return Err(Error::Git {
            message: format!(
                "ls-files failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(Some(
        out.stdout
            .split(|b| *b == 0)
            .filter(|name| !name.is_empty())
            .map(|name| OsStr::from_bytes(name).to_os_string())
            .collect(),
    ))
}

/// The revision of the project at `root`: its git commit and whether tracked files changed, or
/// `unknown` outside git.
pub(crate) fn revision(root: &Path) -> Result<Revision> {
    match git_files(root)? {
        Some(_) => git_revision(root),
        None => Ok(Revision {
            commit: "unknown".into(),
            dirty: false,
            commit_time: None,
        }),
    }
}

fn git_revision(root: &Path) -> Result<Revision> {
    let head = git(root, &["log", "-1", "--format=%H %ct"])?;
    let text = String::from_utf8_lossy(&head.stdout);
    let (commit, commit_time) = match text.trim().split_once(' ') {
        Some((hash, time)) if head.status.success() => (hash.to_string(), time.parse().ok()),
        // A repository without commits yet.
        _ => ("unknown".to_string(), None),
    };
    let status = git(
        root,
        &["status", "--porcelain", "--untracked-files=no", "--", "."],
    )?;
    Ok(Revision {
        commit,
        dirty: !status.stdout.is_empty(),
        commit_time,
    })
}

/// The files below the artifact path `artifact` (a file or a directory), relative to `root`,
/// ignore files notwithstanding: build output is what `.gitignore` usually names.
fn artifact_files(root: &Path, artifact: &str) -> Result<Vec<std::ffi::OsString>> {
    let top = root.join(artifact);
    if std::fs::symlink_metadata(&top).is_err() {
        return Err(Error::Project {
            message: format!("the artifact `{artifact}` does not exist after the build commands"),
            hint: Some("make project.build create it, or remove it from project.artifacts".into()),
        });
    }
    let walker = ignore::WalkBuilder::new(&top)
        .standard_filters(false)
        .follow_links(false)
        .build();
    files_of(walker, root, &format!("the artifact {}", top.display()))
}

fn walk_files(root: &Path) -> Result<Vec<std::ffi::OsString>> {
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .require_git(false)
        .follow_links(false)
        .filter_entry(|e| e.file_name() != ".git")
        .build();
    files_of(walker, root, &root.display().to_string())
}

/// The files (not directories) `walker` finds, relative to `root`; `what` names the walk in errors.
fn files_of(walker: ignore::Walk, root: &Path, what: &str) -> Result<Vec<std::ffi::OsString>> {
    let mut names = Vec::new();
    for entry in walker {
        let entry = entry.map_err(|e| Error::Archive {
            message: format!("cannot list {what}: {e}"),
        })?;
        if entry.file_type().is_some_and(|t| t.is_dir()) {
            continue;
        }
        let relative = entry
            .path()
            .strip_prefix(root)
            .expect("walk stays below its root");
        names.push(relative.as_os_str().to_os_string());
    }
    Ok(names)
}
