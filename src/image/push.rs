//! Pushing the layout to a registry with `skopeo copy`.
//!
//! Why skopeo rather than a registry client in shipit: it is packaged everywhere (Debian,
//! Fedora, Homebrew), speaks every registry's authentication (it reads the same
//! `auth.json`/`~/.docker/config.json` as podman and docker), and keeps the manifest as written,
//! so the digest pushed is the digest built. shipit stays free of an async HTTP stack for one
//! upload.

use std::path::Path;
use std::process::Command;

use crate::error::{Error, Result};

/// Copies image `reference` of the layout `dir` to `destination` (`registry/name:tag`) and
/// returns the digest the registry stored. `insecure`: plain HTTP or an unverified
/// certificate (a registry on a private network or loopback).
pub(crate) fn push(
    dir: &Path,
    reference: &str,
    destination: &str,
    insecure: bool,
) -> Result<String> {
    let destination = destination.strip_prefix("docker://").unwrap_or(destination);
    let digest_file = tempfile::NamedTempFile::new()
        .map_err(|e| Error::io("create a temporary file in", std::env::temp_dir(), e))?;
    let output = Command::new("skopeo")
        .arg("copy")
        .arg("--quiet")
        .arg(format!("--dest-tls-verify={}", !insecure))
        .arg("--digestfile")
        .arg(digest_file.path())
        .arg(format!("oci:{}:{reference}", dir.display()))
        .arg(format!("docker://{destination}"))
        .output()
        .map_err(|e| Error::Image {
            stage: "push",
            message: format!("cannot run skopeo: {e}"),
            tail: Vec::new(),
            hint: Some(
                "install skopeo (`apt-get install skopeo`); --push copies the layout with it"
                    .into(),
            ),
        })?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = said.lines().collect();
        return Err(Error::Image {
            stage: "push",
            message: format!("pushing to {destination} failed"),
            tail: lines[lines.len().saturating_sub(8)..]
                .iter()
                .map(|l| l.to_string())
                .collect(),
            hint: Some(
                "log in first (`skopeo login REGISTRY`); a registry without TLS needs --insecure-registry"
                    .into(),
            ),
        });
    }
    let digest = std::fs::read_to_string(digest_file.path())
        .map_err(|e| Error::io("read", digest_file.path(), e))?;
    Ok(digest.trim().to_string())
}
