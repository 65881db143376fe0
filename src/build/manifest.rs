//! The manifest: a JSON file at a fixed path in every archive that says what the archive is.
//!
//! It lets a host (and a person) verify an unpacked release file by file, and lets `shipit
//! releases` report the revision of a release without asking git.

use std::io::Write;

use serde::{Deserialize, Serialize};

/// Where the manifest lives inside an archive and a release directory.
pub const MANIFEST_PATH: &str = ".shipit/manifest.json";

/// Format version of [`Manifest`].
pub const MANIFEST_FORMAT: u32 = 2;

/// What an archive is and how it was made: every field of the manifest but its file list,
/// which is streamed (see [`write_manifest`]) rather than held in memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestHeader {
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

/// Writes the manifest as it is stored (pretty JSON with a trailing newline: the header's
/// fields, then `files`, every entry of the archive but the manifest, sorted by path) to `out`.
/// `files` yields the entries one at a time, so memory does not grow with their number.
pub fn write_manifest(
    out: impl std::io::Write,
    header: &ManifestHeader,
    files: impl Iterator<Item = std::io::Result<ManifestFile>>,
) -> std::io::Result<()> {
    /// The stored shape: the header's fields flattened, then the list.
    #[derive(Serialize)]
    #[serde(bound(serialize = "Streamed<I>: Serialize"))]
    struct Stored<'a, I> {
        #[serde(flatten)]
        header: &'a ManifestHeader,
        files: Streamed<I>,
    }
    /// Serialises an iterator once, as a JSON array.
    struct Streamed<I>(std::cell::RefCell<Option<I>>);
    impl<I: Iterator<Item = std::io::Result<ManifestFile>>> Serialize for Streamed<I> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::{Error, SerializeSeq};
            let files = self.0.borrow_mut().take().expect("serialised once");
            let mut seq = serializer.serialize_seq(None)?;
            for file in files {
                seq.serialize_element(&file.map_err(S::Error::custom)?)?;
            }
            seq.end()
        }
    }
    let mut out = std::io::BufWriter::new(out);
    serde_json::to_writer_pretty(
        &mut out,
        &Stored {
            header,
            files: Streamed(std::cell::RefCell::new(Some(files))),
        },
    )?;
    out.write_all(b"\n")?;
    out.flush()
}
