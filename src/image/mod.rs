//! `shipit image`: the release as an OCI image, built without a container daemon.
//!
//! Why: a team that moves from a few VMs to an orchestrator should keep its `shipit.toml`, its
//! reproducible release archive and its pinned requirements instead of starting over with a
//! Dockerfile. The image has three kinds of layers, each changing only when its inputs change:
//!
//! 1. the base image's layers, as they are (an OCI layout the user fetched, pinned by digest:
//!    see [`base`]);
//! 2. `/venv`, keyed like the VM venvs by python + requirements (see [`venv`]);
//! 3. `/app`, the release archive's files (the same tree gives the same layer), with the
//!    target's shared directories as empty directories the app user owns (volume mount points)
//!    and the app user's home, `/home/app`.
//!
//! Every layer tar and JSON document is deterministic and dated `SOURCE_DATE_EPOCH` (default:
//! the commit time), so two builds of one tree give the same manifest digest. The formats come
//! from `oci-spec`; the layout is written next to the destination and renamed into place.

mod base;
mod layer;
mod push;
mod venv;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, Digest, HistoryBuilder, ImageConfigurationBuilder,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, Os, RootFsBuilder,
};

use crate::build::Artifact;
use crate::config::{Config, Target};
use crate::error::{Error, Result};
use crate::release::ReleaseId;
use crate::resolve::Resolved;

pub(crate) use self::base::BaseRef;
use self::layer::{Layer, LayerWriter, Owner};
pub(crate) use self::push::push;
pub(crate) use self::venv::BasePython;

/// Where the release's files are inside the image.
pub(crate) const APP_DIR: &str = "/app";
/// The app user's home (gunicorn and Python libraries write small files there).
const APP_HOME: &str = "/home/app";
/// The account the app runs as (numeric: the base needs no passwd entry for it).
const APP_OWNER: Owner = Owner {
    uid: 10001,
    gid: 10001,
};

/// What to build.
#[derive(Debug, Clone)]
pub(crate) struct ImageRequest<'a> {
    pub(crate) config: &'a Config,
    pub(crate) target: &'a Target,
    pub(crate) resolved: &'a Resolved,
    /// The release archive, already built.
    pub(crate) artifact: &'a Artifact,
    /// The base image layout.
    pub(crate) base: BaseRef,
    /// The base's Python.
    pub(crate) python: BasePython,
    /// The port the app listens on (`PORT`).
    pub(crate) port: u16,
    /// The layout directory to write.
    pub(crate) output: PathBuf,
    /// The name of a `[targets.T.processes]` entry to run instead of gunicorn, and what `sh`
    /// execs for it ([`crate::config::Process::exec`]).
    pub(crate) process: Option<(&'a str, String)>,
}

/// One layer of the built image, described for the report.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct LayerReport {
    /// `base`, `venv` or `app`.
    pub(crate) role: &'static str,
    pub(crate) digest: String,
    pub(crate) diff_id: String,
    pub(crate) size: u64,
}

/// A written image layout.
#[derive(Debug, Clone)]
pub(crate) struct Image {
    pub(crate) dir: PathBuf,
    /// `org.opencontainers.image.ref.name` in the layout: the release id.
    pub(crate) reference: String,
    pub(crate) manifest_digest: String,
    pub(crate) config_digest: String,
    pub(crate) base_digest: String,
    pub(crate) layers: Vec<LayerReport>,
    pub(crate) venv_key: String,
    pub(crate) venv_reused: bool,
    /// The build time, seconds since 1970 (every tar header's mtime).
    pub(crate) mtime: u64,
    /// The one-off commands to run once per rollout, before the new pods serve.
    pub(crate) release_commands: Vec<(String, Vec<String>)>,
}

/// Builds the image layout described by `request`.
pub(crate) fn build(request: &ImageRequest) -> Result<Image> {
    let config = request.config;
    let manifest = &request.artifact.manifest;
    let time = chrono::DateTime::parse_from_rfc3339(&manifest.build_time)
        .map_err(|e| Error::usage(format!("build time {}: {e}", manifest.build_time)))?
        .to_utc();
    let mtime = time.timestamp().max(0) as u64;
    let release = ReleaseId::at(time).to_string();

    let output = &request.output;
    // The layout replaces an earlier one, never a directory that is something else.
    let is_layout = output.join("oci-layout").is_file();
    let is_empty = std::fs::read_dir(output).is_ok_and(|mut d| d.next().is_none());
    if output.exists() && !is_layout && !is_empty {
        return Err(Error::Usage {
            message: format!(
                "{} exists and is not an OCI image layout; refusing to replace it",
                output.display()
            ),
            hint: Some("name a new directory with -o".into()),
        });
    }
    let parent = crate::build::archive::created_parent(output)?;
    let staging = tempfile::Builder::new()
        .prefix(".shipit-image-")
        .tempdir_in(parent)
        .map_err(|e| Error::io("create a temporary directory in", parent, e))?;
    let blobs = staging.path().join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| Error::io("create", &blobs, e))?;

    let base = base::load(&request.base, staging.path())?;
    let cache = config.root.join(".shipit").join("image").join("venvs");
    // A uv.lock installs what the build exports from it, as on the hosts.
    let lock = config.project.requirements_for(&request.target.environment);
    let exported = tempfile::tempdir()
        .map_err(|e| Error::io("create", Path::new("a temporary directory"), e))?;
    let requirements_root = if crate::config::is_uv_lock(&lock) {
        let text = crate::build::lock::export(&config.root, &lock, request.target)?;
        let file = exported.path().join(&request.resolved.requirements);
        crate::build::archive::created_parent(&file)?;
        std::fs::write(&file, text).map_err(|e| Error::io("write", &file, e))?;
        exported.path()
    } else {
        config.root.as_path()
    };
    let (venv_key, venv_layer, venv_reused) = venv::layer(
        requirements_root,
        &request.resolved.requirements,
        &request.python,
        &cache,
        &blobs,
        mtime,
    )?;
    let app_layer = app_layer(
        &request.artifact.path,
        &request.resolved.shared_dirs,
        &blobs,
        mtime,
    )?;

    let created = time.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let image_config = image_config(
        request,
        &base,
        &venv_key,
        &venv_layer,
        &app_layer,
        &created,
        &release,
    )?;
    let config_bytes = canonical_json(&image_config)?;
    let config_descriptor = write_blob(&blobs, MediaType::ImageConfig, &config_bytes)?;

    let mut layers: Vec<Descriptor> = base.layers.clone();
    for layer in [&venv_layer, &app_layer] {
        layers.push(Descriptor::new(
            MediaType::ImageLayerGzip,
            layer.size,
            digest(&layer.digest)?,
        ));
    }
    let image_manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config_descriptor.clone())
        .layers(layers)
        .build()
        .map_err(format_error)?;
    let manifest_descriptor = write_blob(
        &blobs,
        MediaType::ImageManifest,
        &canonical_json(&image_manifest)?,
    )?;

    let mut named = manifest_descriptor.clone();
    named.set_annotations(Some(HashMap::from([(
        "org.opencontainers.image.ref.name".to_string(),
        release.clone(),
    )])));
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![named])
        .build()
        .map_err(format_error)?;
    write_file(&staging.path().join("index.json"), &canonical_json(&index)?)?;
    write_file(
        &staging.path().join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;

    // Replace the previous layout in one rename (the old one is removed first: a directory
    // cannot be renamed over a non-empty one).
    if output.exists() {
        std::fs::remove_dir_all(output).map_err(|e| Error::io("remove", output, e))?;
    }
    let kept = staging.keep();
    std::fs::rename(&kept, output).map_err(|e| Error::io("move the image layout to", output, e))?;

    let mut reports: Vec<LayerReport> = base
        .layers
        .iter()
        .zip(base.config.rootfs().diff_ids())
        .map(|(d, diff_id)| LayerReport {
            role: "base",
            digest: d.digest().to_string(),
            diff_id: diff_id.clone(),
            size: d.size(),
        })
        .collect();
    for (role, layer) in [("venv", &venv_layer), ("app", &app_layer)] {
        reports.push(LayerReport {
            role,
            digest: layer.digest.clone(),
            diff_id: layer.diff_id.clone(),
            size: layer.size,
        });
    }
    Ok(Image {
        dir: output.clone(),
        reference: release,
        manifest_digest: manifest_descriptor.digest().to_string(),
        config_digest: config_descriptor.digest().to_string(),
        base_digest: base.digest,
        layers: reports,
        venv_key,
        venv_reused,
        mtime,
        release_commands: release_commands(&config.project.manage_py),
    })
}

/// `migrate` and `collectstatic`, as argv for the image (its entrypoint replaced).
fn release_commands(manage_py: &str) -> Vec<(String, Vec<String>)> {
    ["migrate", "collectstatic"]
        .into_iter()
        .map(|name| {
            (
                name.to_string(),
                vec![
                    format!("{}/bin/python", venv::VENV),
                    format!("{APP_DIR}/{manage_py}"),
                    name.to_string(),
                    "--noinput".to_string(),
                ],
            )
        })
        .collect()
}

/// The app layer: every entry of the release archive under `/app`, and the shared directories
/// (empty, owned by the app user: where volumes mount).
fn app_layer(archive: &Path, shared_dirs: &[String], blobs: &Path, mtime: u64) -> Result<Layer> {
    let file = File::open(archive).map_err(|e| Error::io("read", archive, e))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut writer = LayerWriter::new(blobs, mtime)?;
    let app = &APP_DIR[1..];
    writer.dir(app, Owner::ROOT)?;
    let read_error = |e: std::io::Error| Error::io("read", archive, e);
    for entry in tar.entries().map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let path = entry
            .path()
            .map_err(read_error)?
            .to_string_lossy()
            .into_owned();
        let inside = format!("{app}/{}", path.trim_end_matches('/'));
        let header = entry.header();
        match header.entry_type() {
            tar::EntryType::Directory => writer.dir(&inside, Owner::ROOT)?,
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(read_error)?
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                writer.symlink(&inside, &target)?;
            }
            _ => {
                let executable = header.mode().map_err(read_error)? & 0o111 != 0;
                let size = header.size().map_err(read_error)?;
                writer.file(&inside, executable, size, entry)?;
            }
        }
    }
    for dir in shared_dirs {
        writer.dir(&format!("{app}/{dir}"), APP_OWNER)?;
    }
    writer.dir(&APP_HOME[1..], APP_OWNER)?;
    writer.finish()
}

fn image_config(
    request: &ImageRequest,
    base: &base::Base,
    venv_key: &str,
    venv_layer: &Layer,
    app_layer: &Layer,
    created: &str,
    release: &str,
) -> Result<oci_spec::image::ImageConfiguration> {
    let resolved = request.resolved;
    let manifest = &request.artifact.manifest;
    let base_config = base.config.config().clone().unwrap_or_default();

    // The base's environment first (PATH, LANG, …), with /venv/bin ahead on PATH; then ours.
    let mut env: Vec<(String, String)> = base_config
        .env()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let mut set = |name: &str, value: String| {
        env.retain(|(k, _)| k != name);
        env.push((name.to_string(), value));
    };
    let path = base_config
        .env()
        .as_ref()
        .and_then(|e| e.iter().find_map(|kv| kv.strip_prefix("PATH=")))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .to_string();
    set("PATH", format!("{}/bin:{path}", venv::VENV));
    set("VIRTUAL_ENV", venv::VENV.to_string());
    set("HOME", APP_HOME.to_string());
    set("PYTHONUNBUFFERED", "1".into());
    set("PYTHONDONTWRITEBYTECODE", "1".into());
    set("DJANGO_SETTINGS_MODULE", resolved.settings_module.clone());
    set("PORT", request.port.to_string());
    set("SHIPIT_RELEASE", release.to_string());
    set("SHIPIT_TARGET", request.target.name.clone());
    for (name, value) in &request.target.env {
        set(name, value.clone());
    }

    let mut labels = BTreeMap::new();
    labels.insert("org.opencontainers.image.created", created.to_string());
    labels.insert(
        "org.opencontainers.image.title",
        request.config.project.name.clone(),
    );
    labels.insert(
        "org.opencontainers.image.revision",
        manifest.revision.clone(),
    );
    labels.insert("org.opencontainers.image.version", release.to_string());
    labels.insert("org.opencontainers.image.base.digest", base.digest.clone());
    labels.insert("io.shipit.release", release.to_string());
    labels.insert("io.shipit.target", request.target.name.clone());
    labels.insert("io.shipit.dirty", manifest.dirty.to_string());
    labels.insert("io.shipit.archive.sha256", request.artifact.sha256.clone());
    labels.insert("io.shipit.venv", venv_key.to_string());
    labels.insert("io.shipit.health.path", resolved.health.path.clone());
    // The names the platform must provide as secrets; never their values.
    let secrets: Vec<&str> = request.target.secrets.keys().map(String::as_str).collect();
    labels.insert("io.shipit.secrets", secrets.join(","));

    // gunicorn (without --bind it listens on 0.0.0.0:$PORT when PORT is set), or a process of
    // the target, exec'd by sh as on the hosts, with nothing to expose.
    let (entrypoint, cmd, exposed) = match &request.process {
        None => (
            vec![
                format!("{}/bin/python", venv::VENV),
                "-m".to_string(),
                "gunicorn".to_string(),
            ],
            vec![request.config.project.wsgi_app.clone()],
            vec![format!("{}/tcp", request.port)],
        ),
        Some((_, run)) => (
            vec!["/bin/sh".to_string(), "-c".to_string()],
            vec![format!("exec {run}")],
            Vec::new(),
        ),
    };
    labels.insert(
        "io.shipit.process",
        request
            .process
            .as_ref()
            .map_or("web", |(name, _)| name)
            .to_string(),
    );
    let container = ConfigBuilder::default()
        .user(format!("{}:{}", APP_OWNER.uid, APP_OWNER.gid))
        .env(
            env.into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
        )
        .entrypoint(entrypoint)
        .cmd(cmd)
        .working_dir(APP_DIR)
        .exposed_ports(exposed)
        .labels(
            labels
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect::<HashMap<_, _>>(),
        )
        .stop_signal("SIGTERM")
        .build()
        .map_err(format_error)?;

    let mut diff_ids = base.config.rootfs().diff_ids().clone();
    diff_ids.push(venv_layer.diff_id.clone());
    diff_ids.push(app_layer.diff_id.clone());
    let mut history = base.config.history().clone().unwrap_or_default();
    for comment in [
        format!("shipit: virtualenv {venv_key} ({})", resolved.requirements),
        format!("shipit: release {release} of {}", request.target.name),
    ] {
        history.push(
            HistoryBuilder::default()
                .created(created)
                .created_by(comment)
                .build()
                .map_err(format_error)?,
        );
    }
    ImageConfigurationBuilder::default()
        .created(created)
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .config(container)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(diff_ids)
                .build()
                .map_err(format_error)?,
        )
        .history(history)
        .build()
        .map_err(format_error)
}

/// JSON with object keys sorted (serde_json's map is ordered by key), so documents holding
/// `HashMap`s (labels, ports) serialize the same bytes every time.
fn canonical_json(value: &impl serde::Serialize) -> Result<Vec<u8>> {
    let value = serde_json::to_value(value).map_err(|e| Error::Image {
        stage: "layout",
        message: format!("cannot serialize: {e}"),
        tail: Vec::new(),
        hint: None,
    })?;
    Ok(serde_json::to_vec(&value).expect("a JSON value serializes"))
}

fn write_blob(blobs: &Path, media_type: MediaType, bytes: &[u8]) -> Result<Descriptor> {
    let digest_text = layer::sha256_digest(bytes);
    write_file(&blobs.join(&digest_text["sha256:".len()..]), bytes)?;
    Ok(Descriptor::new(
        media_type,
        bytes.len() as u64,
        digest(&digest_text)?,
    ))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::io("write", path, e))
}

fn digest(text: &str) -> Result<Digest> {
    Digest::from_str(text).map_err(format_error)
}

fn format_error(e: impl std::fmt::Display) -> Error {
    Error::Image {
        stage: "layout",
        message: e.to_string(),
        tail: Vec::new(),
        hint: None,
    }
}

/// Writes the layout `dir` as an `oci-archive` tarball at `path` (deterministic: sorted, dated
/// `mtime`, root-owned).
pub(crate) fn write_archive(dir: &Path, path: &Path, mtime: u64) -> Result<()> {
    let parent = crate::build::archive::created_parent(path)?;
    let temp = tempfile::Builder::new()
        .prefix(".shipit-oci-archive-")
        .tempfile_in(parent)
        .map_err(|e| Error::io("create a temporary file in", parent, e))?;
    let file = temp
        .reopen()
        .map_err(|e| Error::io("open", temp.path(), e))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    tar.mode(tar::HeaderMode::Deterministic);
    let mut paths = Vec::new();
    collect(dir, dir, &mut paths)?;
    paths.sort();
    for relative in paths {
        let disk = dir.join(&relative);
        let mut header = tar::Header::new_gnu();
        header.set_mtime(mtime);
        header.set_uid(0);
        header.set_gid(0);
        if disk.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            tar.append_data(&mut header, &relative, std::io::empty())
        } else {
            let mut file = File::open(&disk).map_err(|e| Error::io("read", &disk, e))?;
            let size = file
                .metadata()
                .map_err(|e| Error::io("read", &disk, e))?
                .len();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o644);
            header.set_size(size);
            tar.append_data(&mut header, &relative, (&mut file).take(size))
        }
        .map_err(|e| Error::io("write", temp.path(), e))?;
    }
    tar.into_inner()
        .and_then(|mut w| std::io::Write::flush(&mut w))
        .map_err(|e| Error::io("write", temp.path(), e))?;
    temp.persist(path)
        .map_err(|e| Error::io("move the archive to", path, e.error))?;
    Ok(())
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("read", dir, e))? {
        let path = entry.map_err(|e| Error::io("read", dir, e))?.path();
        out.push(path.strip_prefix(root).expect("below root").to_path_buf());
        if path.is_dir() {
            collect(root, &path, out)?;
        }
    }
    Ok(())
}
