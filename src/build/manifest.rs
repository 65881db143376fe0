//! The manifest: a JSON file at a fixed path in every archive that says what the archive is.
//!
//! It lets a host (and a person) verify an unpacked release file by file, and lets `shipit
//! releases` report the revision of a release without asking git.

use serde::{Deserialize, Serialize};

/// Where the manifest lives inside an archive and a release directory.
pub const MANIFEST_PATH: &str = ".shipit/manifest.json";

/// Format version of [`Manifest`].
pub const MANIFEST_FORMAT: u32 = 2;

/// What an archive contains and how it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// Project name.
    pub project: String,
    /// Target the selector files were rendered for.
    pub target: String,
    /// Environment of that target.
    pub environment: String,
    /// Git commit, or `unknown`.
    pub revision: String,
    /// Whether tracked files differed from the commit.
    pub dirty: bool,
    /// Build time, RFC 3339 UTC.
    pub build_time: String,
    /// Every entry of the archive except the manifest itself, sorted by path.
    pub files: Vec<ManifestFile>,
}

/// One archive entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Path inside the archive.
    pub path: String,
    /// Hex SHA-256 of the content (regular files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Size in bytes (regular files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Octal mode, `0644` or `0755` (regular files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Symlink target (symlinks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The deploy.map template this file was rendered from (rendered files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

impl Manifest {
    /// The manifest as it is stored: pretty JSON with a trailing newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("manifest serialises");
        bytes.push(b'\n');
        bytes
    }
}
