//! `shipit build`: project tree + rendered deploy.map files + manifest → one `tar.gz`.
//!
//! The same tree, target and `SOURCE_DATE_EPOCH` give the same bytes: the build time defaults to
//! the commit time (or, outside git, the newest file's mtime), not the wall clock.

pub mod archive;
pub(crate) mod commands;
pub(crate) mod content;
pub mod deploy_map;
pub(crate) mod lock;
pub mod manifest;
pub mod policy;
pub mod source;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::config::{Config, Notify, SecretSource, Target, TlsMode, UrlSource};
use crate::error::{Error, Result};
use crate::release::ReleaseId;
use crate::templates::{BuildInfo, RenderContext, Templates};

use self::archive::Entry;
use self::deploy_map::DeployMap;
use self::manifest::{ManifestHeader, MANIFEST_FORMAT};
use self::source::{Selection, SourceKind};

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest<'a> {
    /// The project configuration.
    pub config: &'a Config,
    /// The target whose selector files are rendered.
    pub target: &'a Target,
    /// Where the archive goes; `None` for the default under `.shipit/dist/`.
    pub output: Option<PathBuf>,
    /// Build time override (`SOURCE_DATE_EPOCH`).
    pub source_date_epoch: Option<i64>,
}

/// A finished archive.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// Where it was written.
    pub path: PathBuf,
    /// Hex SHA-256 of the archive.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Its manifest, but for the file list (which stays in the archive: see `archive`).
    pub manifest: ManifestHeader,
    /// How many entries the manifest lists.
    pub files: usize,
    /// Whether the requirements file of the target's environment and manage.py are in it.
    has_requirements: bool,
    has_manage_py: bool,
    /// Secret-looking files that were left out.
    pub secrets_skipped: Vec<String>,
}

/// The earliest `SOURCE_DATE_EPOCH` accepted: 1980-01-01 (zip and many tools cannot go earlier;
/// a smaller value is a mistake such as milliseconds cut short or a `0` placeholder).
const EPOCH_MIN: i64 = 315_532_800;
/// The first `SOURCE_DATE_EPOCH` refused: 2100-01-01 (a larger value is milliseconds or a typo).
const EPOCH_END: i64 = 4_102_444_800;

/// Reads `SOURCE_DATE_EPOCH` from the environment, if set.
pub fn source_date_epoch_from_env() -> Result<Option<i64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) => parse_source_date_epoch(&value).map(Some),
        Err(_) => Ok(None),
    }
}

/// Parses a `SOURCE_DATE_EPOCH` value: whole seconds since 1970, from 1980 up to (not including)
/// 2100.
fn parse_source_date_epoch(value: &str) -> Result<i64> {
    let hint = || {
        Some(
            "unset it, or set it to whole seconds since 1970, e.g. `git log -1 --format=%ct`"
                .to_string(),
        )
    };
    let epoch = value.trim().parse::<i64>().map_err(|_| Error::Usage {
        message: format!(
            "SOURCE_DATE_EPOCH=`{value}` is not a Unix timestamp (whole seconds since 1970)"
        ),
        hint: hint(),
    })?;
    if !(EPOCH_MIN..EPOCH_END).contains(&epoch) {
        return Err(Error::Usage {
            message: format!(
                "SOURCE_DATE_EPOCH=`{value}` is outside 1980-01-01..2100-01-01 ({EPOCH_MIN}..{EPOCH_END} seconds since 1970); milliseconds, or a placeholder?"
            ),
            hint: hint(),
        });
    }
    Ok(epoch)
}

/// Builds the archive described by `request`.
pub fn build(request: &BuildRequest) -> Result<Artifact> {
    let config = request.config;
    let target = request.target;
    let root = &config.root;
    let selection = Selection::new(
        root,
        &config.path,
        &config.project.exclude,
        &config.project.include,
    )?;
    check_secret_files(config, &selection)?;
    let tree = source::scan(root, &selection, &config.project.artifacts)?;

    let epoch = match (request.source_date_epoch, tree.revision.commit_time) {
        (Some(epoch), _) | (None, Some(epoch)) => epoch,
        (None, None) => newest_mtime(root, &tree.files)?,
    };
    let time = DateTime::from_timestamp(epoch, 0)
        .ok_or_else(|| Error::usage(format!("build time {epoch} is out of range")))?;
    let info = BuildInfo {
        build_time: time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        revision: tree.revision.commit.clone(),
        dirty: tree.revision.dirty,
    };

    let map = DeployMap::load(&root.join(&config.project.deploy_map))?;
    map.check_shared(target)?;
    let templates = Templates::for_project(config);
    let context = RenderContext::new(config, target, &info)?;
    let mut rendered = Vec::new();
    for mapping in &map.mappings {
        let text = templates
            .render(&mapping.template, &context)
            .map_err(|e| match e {
                Error::Template {
                    line: None,
                    message,
                    name,
                } if message.starts_with("not found") => Error::DeployMap {
                    path: map.path.clone(),
                    line: mapping.line,
                    message: format!("template `{name}` {message}"),
                },
                other => other,
            })?;
        check_destination(&map, mapping, &tree.files)?;
        if let Some(kind) = policy::secret_kind(&mapping.destination) {
            if !selection.explicitly_included(&mapping.destination) {
                return Err(Error::DeployMap {
                    path: map.path.clone(),
                    line: mapping.line,
                    message: format!(
                        "destination `{}` looks like a secret file ({kind}); a rendered file \
                         ships in every archive, so name it in project.include to ship it anyway \
                         (secrets belong in the host's env file: see `[targets.T.env]`)",
                        mapping.destination
                    ),
                });
            }
        }
        rendered.push((mapping, text));
    }

    // A uv.lock (committed) is exported to the requirements file the hosts install.
    let requirements = config.project.requirements_for(&target.environment);
    let exported = if crate::config::is_uv_lock(&requirements)
        && tree.files.iter().any(|f| f.path == requirements)
    {
        Some(lock::export(root, &requirements, target)?)
    } else {
        None
    };

    let generated: Vec<&str> = rendered
        .iter()
        .map(|(m, _)| m.destination.as_str())
        .collect();
    source::check_links(root, &selection, &tree.files, &generated)?;

    // Rendered files replace tracked files of the same name (e.g. a committed placeholder).
    let mut entries: Vec<Entry> = tree
        .files
        .iter()
        .filter(|f| !rendered.iter().any(|(m, _)| m.destination == f.path))
        .map(|f| match &f.kind {
            SourceKind::File { executable, .. } => Entry::File {
                path: &f.path,
                root,
                executable: *executable,
                scan: !selection.explicitly_included(&f.path),
            },
            SourceKind::Symlink { target } => Entry::Symlink {
                path: &f.path,
                target,
            },
        })
        .collect();
    entries.extend(rendered.iter().map(|(m, text)| Entry::Generated {
        path: &m.destination,
        bytes: text.as_bytes(),
        template: &m.template,
    }));
    if let Some(text) = &exported {
        entries.push(Entry::Generated {
            path: lock::EXPORTED,
            bytes: text.as_bytes(),
            template: &requirements,
        });
    }
    entries.sort_by(|a, b| a.path().cmp(b.path()));

    let has = |path: &str| entries.binary_search_by(|e| e.path().cmp(path)).is_ok();
    let has_requirements = has(lock::installed(&requirements));
    let has_manage_py = has(&config.project.manage_py);
    let header = ManifestHeader {
        format: MANIFEST_FORMAT,
        project: config.project.name.clone(),
        target: target.name.clone(),
        environment: target.environment.clone(),
        revision: info.revision.clone(),
        dirty: info.dirty,
        build_time: info.build_time.clone(),
    };
    let path = request
        .output
        .clone()
        .unwrap_or_else(|| default_output(root, config, target, time));
    let written = archive::write(&path, &entries, header, epoch.max(0) as u64)?;
    if request.output.is_none() {
        prune_dist(&path, &format!("{}-{}-", config.project.name, target.name));
    }
    Ok(Artifact {
        path,
        sha256: written.sha256,
        size: written.size,
        manifest: written.header,
        files: written.files,
        has_requirements,
        has_manage_py,
        secrets_skipped: tree.secrets_skipped,
    })
}

/// Runs the project's build commands, then builds the archive `shipit deploy` ships (default
/// output, `SOURCE_DATE_EPOCH` honoured) and refuses one that cannot work on a host: its
/// requirements file or manage.py missing.
pub(crate) fn build_deployable(
    config: &Config,
    target: &Target,
    output: Option<PathBuf>,
    printer: &crate::output::Printer,
) -> Result<(Artifact, BuildInfo)> {
    commands::run(config, target, printer)?;
    let artifact = build(&BuildRequest {
        config,
        target,
        output,
        source_date_epoch: source_date_epoch_from_env()?,
    })?;
    let requirements = config.project.requirements_for(&target.environment);
    if !artifact.has_requirements {
        return Err(Error::Project {
            message: format!(
                "the requirements file `{requirements}` of environment `{}` is not in the archive",
                target.environment
            ),
            hint: Some(if crate::config::is_uv_lock(&requirements) {
                "commit uv.lock beside pyproject.toml (`uv lock`), or map the environment to a requirements file in [project.requirements]".into()
            } else {
                "commit it (pip-compile or `uv pip compile` it from a .in file), or map the environment in [project.requirements]".into()
            }),
        });
    }
    if !artifact.has_manage_py {
        return Err(Error::Project {
            message: format!("`{}` is not in the archive", config.project.manage_py),
            hint: Some("commit manage.py, or set project.manage_py to where it is".into()),
        });
    }
    let info = BuildInfo {
        build_time: artifact.manifest.build_time.clone(),
        revision: artifact.manifest.revision.clone(),
        dirty: artifact.manifest.dirty,
    };
    Ok((artifact, info))
}

/// A secret `file` (of any target: they all build from this tree; or of a webhook) must not be
/// one the archive would take: inside the project it is refused unless `exclude`, `.shipit/`
/// or a secret-file name rule keeps it out.
fn check_secret_files(config: &Config, selection: &Selection) -> Result<()> {
    for (key, file) in secret_files(config) {
        let path = config.root.join(crate::config::expand_home(file));
        let Some(inside) = source::inside(&config.root, &path) else {
            continue;
        };
        if selection.archivable(&inside) {
            return Err(Error::Config {
                path: config.path.clone(),
                line: None,
                key: Some(key),
                message: format!(
                    "the secret file `{file}` is inside the project, so the archive would take it \
                     too; keep it outside the project (e.g. under ~/.config/), or name it in \
                     project.exclude"
                ),
                hint: None,
            });
        }
    }
    Ok(())
}

/// Every secret read from a file, by its dotted key: the targets' `secrets` and TLS certificate
/// and key, and the webhooks' `url` and `token`.
fn secret_files(config: &Config) -> Vec<(String, &str)> {
    let mut files = webhook_files("notify", &config.notify);
    for t in config.targets.values() {
        if let Some(own) = &t.notify {
            files.extend(webhook_files(&format!("targets.{}.notify", t.name), own));
        }
        for (name, from) in &t.secrets {
            if let SecretSource::File(file) = from {
                files.push((format!("targets.{}.secrets.{name}", t.name), file.as_str()));
            }
        }
        if let Some(crate::config::Tls {
            mode: TlsMode::Files { certificate, key },
            ..
        }) = &t.tls
        {
            for (what, from) in [("certificate", certificate), ("key", key)] {
                if let SecretSource::File(file) = from {
                    files.push((format!("targets.{}.tls.{what}", t.name), file.as_str()));
                }
            }
        }
    }
    files
}

/// The webhooks' secrets read from a file, of the notify table at `table`.
fn webhook_files<'a>(table: &str, notify: &'a Notify) -> Vec<(String, &'a str)> {
    let mut files = Vec::new();
    for (name, hook) in &notify.webhooks {
        let url = match &hook.url {
            UrlSource::Secret(from) => Some(from),
            UrlSource::Literal(_) => None,
        };
        for (what, from) in [("url", url), ("token", hook.token.as_ref())] {
            if let Some(SecretSource::File(file)) = from {
                files.push((format!("{table}.webhooks.{name}.{what}"), file.as_str()));
            }
        }
    }
    files
}

/// A rendered file may replace a project file, but not a directory or a path below a file.
fn check_destination(
    map: &DeployMap,
    mapping: &deploy_map::Mapping,
    files: &[source::SourceFile],
) -> Result<()> {
    let fail = |message: String| Error::DeployMap {
        path: map.path.clone(),
        line: mapping.line,
        message,
    };
    let dest = &mapping.destination;
    let as_dir = format!("{dest}/");
    if files.iter().any(|f| f.path.starts_with(&as_dir)) {
        return Err(fail(format!(
            "destination `{dest}` is a directory of the project"
        )));
    }
    if let Some(file) = files
        .iter()
        .find(|f| dest.starts_with(&format!("{}/", f.path)))
    {
        return Err(fail(format!(
            "destination `{dest}` is below `{}`, which is a file of the project",
            file.path
        )));
    }
    if let Some(other) = map.mappings.iter().find(|m| {
        dest.starts_with(&format!("{}/", m.destination)) || m.destination.starts_with(&as_dir)
    }) {
        return Err(fail(format!(
            "destination `{dest}` and `{}` (line {}) cannot both exist",
            other.destination, other.line
        )));
    }
    Ok(())
}

/// `.shipit/dist/<project>-<target>-<build time as YYYYmmddHHMMSS>.tar.gz` under the project
/// root; `.shipit/` is never archived, so builds do not swallow earlier builds.
fn default_output(root: &Path, config: &Config, target: &Target, time: DateTime<Utc>) -> PathBuf {
    root.join(".shipit").join("dist").join(format!(
        "{}-{}-{}.tar.gz",
        config.project.name,
        target.name,
        ReleaseId::at(time)
    ))
}

/// Archives kept in `.shipit/dist` per project and target: the newest few, so builds do not fill
/// the disk. Best effort: a file that cannot be removed stays.
const DIST_KEEP: usize = 3;

fn prune_dist(written: &Path, prefix: &str) {
    let Some(dir) = written.parent() else { return };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut archives: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(prefix)
                && name.ends_with(".tar.gz")
                // `<prefix><14 digits>.tar.gz`: another target's longer name is not ours.
                && name[prefix.len()..name.len() - 7].bytes().all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    archives.sort_by_key(|a| std::cmp::Reverse(a.0));
    for (_, path) in archives.into_iter().skip(DIST_KEEP) {
        if path != written {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn newest_mtime(root: &Path, files: &[source::SourceFile]) -> Result<i64> {
    let mut newest = 0;
    for file in files {
        let disk = root.join(&file.path);
        let meta = std::fs::symlink_metadata(&disk).map_err(|e| Error::io("read", &disk, e))?;
        use std::os::unix::fs::MetadataExt;
        newest = newest.max(meta.mtime());
    }
    Ok(newest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_date_epoch_is_whole_seconds_between_1980_and_2100() {
        assert_eq!(
            parse_source_date_epoch("1700000000").unwrap(),
            1_700_000_000
        );
        assert_eq!(parse_source_date_epoch(" 315532800\n").unwrap(), EPOCH_MIN);
        assert_eq!(
            parse_source_date_epoch("4102444799").unwrap(),
            EPOCH_END - 1
        );
        for bad in ["notanumber", "1.5", ""] {
            let msg = parse_source_date_epoch(bad).unwrap_err().to_string();
            assert!(msg.contains("is not a Unix timestamp"), "{bad}: {msg}");
        }
        for bad in ["0", "-1", "315532799", "4102444800", "1700000000000"] {
            let err = parse_source_date_epoch(bad).unwrap_err();
            assert_eq!(err.exit_code(), crate::error::EXIT_USAGE);
            let msg = err.to_string();
            assert!(msg.contains(&format!("SOURCE_DATE_EPOCH=`{bad}`")), "{msg}");
            assert!(msg.contains("outside 1980-01-01..2100-01-01"), "{msg}");
        }
    }
}
