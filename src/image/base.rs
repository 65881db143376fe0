//! The base image: an OCI image layout on disk, pinned by its manifest digest.
//!
//! shipit does not pull images itself: `skopeo copy docker://python:3.12-slim@sha256:…
//! oci:base:3.12` (or any tool that writes an OCI layout) fetches the base once, and every build
//! reuses its layers as they are, so the base layers' digests never change unless the base
//! does. The digest of the manifest used is recorded as the image's
//! `org.opencontainers.image.base.digest` label.

use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};

use crate::error::{Error, Result};

/// A base image found in a layout.
#[derive(Debug, Clone)]
pub(crate) struct Base {
    /// `sha256:…` of the manifest used.
    pub(crate) digest: String,
    /// Its layers, in order.
    pub(crate) layers: Vec<Descriptor>,
    /// Its configuration (environment, diff_ids, history).
    pub(crate) config: ImageConfiguration,
}

/// `[oci:]DIR[:REF]` as written in `image.base` or `--base`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseRef {
    pub(crate) dir: PathBuf,
    pub(crate) reference: Option<String>,
}

impl BaseRef {
    /// Parses `[oci:]DIR[:REF]`; a relative DIR is relative to `root`.
    pub(crate) fn parse(text: &str, root: &Path) -> BaseRef {
        let text = text.strip_prefix("oci:").unwrap_or(text);
        let (dir, reference) = match text.rsplit_once(':') {
            Some((dir, reference)) if !reference.contains('/') && !dir.is_empty() => {
                (dir, Some(reference.to_string()))
            }
            _ => (text, None),
        };
        BaseRef {
            dir: root.join(dir),
            reference,
        }
    }
}

fn fail(base: &BaseRef, message: impl Into<String>) -> Error {
    Error::Image {
        stage: "base",
        message: format!("base image {}: {}", base.dir.display(), message.into()),
        tail: Vec::new(),
        hint: Some(
            "image.base (or --base) names an OCI image layout, e.g. made by `skopeo copy docker://docker.io/library/python:3.12-slim oci:base:3.12`"
                .into(),
        ),
    }
}

fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    dir.join("blobs").join(algorithm).join(hex)
}

/// Reads the base named by `base` and links (or copies) its layer blobs into the layout being
/// written at `layout`.
pub(crate) fn load(base: &BaseRef, layout: &Path) -> Result<Base> {
    let index = ImageIndex::from_file(base.dir.join("index.json"))
        .map_err(|e| fail(base, format!("cannot read index.json: {e}")))?;
    let named = |d: &&Descriptor| {
        d.annotations()
            .as_ref()
            .and_then(|a| a.get("org.opencontainers.image.ref.name"))
            .map(String::as_str)
            == base.reference.as_deref()
    };
    let candidates: Vec<&Descriptor> = match &base.reference {
        Some(_) => index.manifests().iter().filter(named).collect(),
        None => index.manifests().iter().collect(),
    };
    let mut descriptor = match candidates.as_slice() {
        [one] => (*one).clone(),
        [] => {
            return Err(fail(
                base,
                format!(
                    "no image named `{}`",
                    base.reference.as_deref().unwrap_or("")
                ),
            ))
        }
        _ => return Err(fail(base, "it holds several images; name one as DIR:REF")),
    };
    // A multi-platform base: the linux/amd64 image (the venv layer's wheels are for it).
    if descriptor.media_type() == &MediaType::ImageIndex {
        let inner = ImageIndex::from_file(blob_path(&base.dir, descriptor.digest().as_ref()))
            .map_err(|e| fail(base, format!("cannot read its image index: {e}")))?;
        descriptor = inner
            .manifests()
            .iter()
            .find(|d| {
                d.platform().as_ref().is_some_and(|p| {
                    p.os().to_string() == "linux" && p.architecture().to_string() == "amd64"
                })
            })
            .cloned()
            .ok_or_else(|| fail(base, "it has no linux/amd64 image"))?;
    }
    let digest = descriptor.digest().to_string();
    let manifest = ImageManifest::from_file(blob_path(&base.dir, &digest))
        .map_err(|e| fail(base, format!("cannot read manifest {digest}: {e}")))?;
    let config_digest = manifest.config().digest().to_string();
    let config = ImageConfiguration::from_file(blob_path(&base.dir, &config_digest))
        .map_err(|e| fail(base, format!("cannot read config {config_digest}: {e}")))?;
    for layer in manifest.layers() {
        let from = blob_path(&base.dir, layer.digest().as_ref());
        let to = blob_path(layout, layer.digest().as_ref());
        if to.exists() {
            continue;
        }
        std::fs::hard_link(&from, &to)
            .or_else(|_| std::fs::copy(&from, &to).map(|_| ()))
            .map_err(|e| fail(base, format!("cannot copy layer {}: {e}", layer.digest())))?;
    }
    Ok(Base {
        digest,
        layers: manifest.layers().clone(),
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_is_a_layout_directory_and_an_optional_name() {
        let root = Path::new("/p");
        assert_eq!(
            BaseRef::parse("oci:/images/python:3.12", root),
            BaseRef {
                dir: "/images/python".into(),
                reference: Some("3.12".into())
            }
        );
        assert_eq!(
            BaseRef::parse("base", root),
            BaseRef {
                dir: "/p/base".into(),
                reference: None
            }
        );
    }
}
