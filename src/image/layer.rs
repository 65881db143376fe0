//! One image layer: a reproducible tar, gzipped, hashed twice on the way to its blob.
//!
//! The same entries give the same bytes: every header has the build time as mtime, numeric
//! owners without names, a mode that is 0644/0755 for files (0755 for directories), and the
//! gzip header has no name and no time. The tar stream is hashed before compression (the
//! layer's `diff_id`, what the image config lists) and after (the blob digest the manifest
//! names), in one pass, straight into a temporary file in the layout's blob directory that is
//! renamed to its digest when done.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};

use crate::build::archive::{hex, HashingWriter};
use crate::error::{Error, Result};

/// A finished layer blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layer {
    /// `sha256:…` of the gzipped blob.
    pub(crate) digest: String,
    /// `sha256:…` of the uncompressed tar.
    pub(crate) diff_id: String,
    /// Size of the blob in bytes.
    pub(crate) size: u64,
}

/// Owner of an entry: root, or the image's app user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) uid: u64,
    pub(crate) gid: u64,
}

impl Owner {
    pub(crate) const ROOT: Owner = Owner { uid: 0, gid: 0 };
}

/// Writes one layer; parent directories of every entry are added once, before it.
pub(crate) struct LayerWriter {
    tar: tar::Builder<HashingWriter<flate2::write::GzEncoder<HashingWriter<BufWriter<File>>>>>,
    temp: tempfile::NamedTempFile,
    blobs: PathBuf,
    mtime: u64,
    dirs: BTreeSet<String>,
}

impl LayerWriter {
    /// A layer whose blob goes into `blobs` (the layout's `blobs/sha256`), every entry dated
    /// `mtime`.
    pub(crate) fn new(blobs: &Path, mtime: u64) -> Result<LayerWriter> {
        let temp = tempfile::Builder::new()
            .prefix(".layer-")
            .tempfile_in(blobs)
            .map_err(|e| Error::io("create a temporary file in", blobs, e))?;
        let file = temp
            .reopen()
            .map_err(|e| Error::io("open", temp.path(), e))?;
        let gzip = GzBuilder::new().mtime(0).write(
            HashingWriter::new(BufWriter::new(file)),
            Compression::new(6),
        );
        let mut tar = tar::Builder::new(HashingWriter::new(gzip));
        tar.mode(tar::HeaderMode::Deterministic);
        Ok(LayerWriter {
            tar,
            temp,
            blobs: blobs.to_path_buf(),
            mtime,
            dirs: BTreeSet::new(),
        })
    }

    fn header(&self, kind: tar::EntryType, mode: u32, size: u64, owner: Owner) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(self.mtime);
        header.set_uid(owner.uid);
        header.set_gid(owner.gid);
        header
    }

    fn error(&self, path: &str, e: io::Error) -> Error {
        Error::Image {
            stage: "layer",
            message: format!("cannot add `{path}` to a layer: {e}"),
            tail: Vec::new(),
            hint: None,
        }
    }

    /// Adds the missing parent directories of `path` (root-owned, 0755).
    fn parents(&mut self, path: &str) -> Result<()> {
        let mut missing = Vec::new();
        let mut at = path;
        while let Some((parent, _)) = at.rsplit_once('/') {
            if parent.is_empty() || self.dirs.contains(parent) {
                break;
            }
            missing.push(parent.to_string());
            at = parent;
        }
        for dir in missing.into_iter().rev() {
            self.dir(&dir, Owner::ROOT)?;
        }
        Ok(())
    }

    /// A directory (0755) owned by `owner`; once only.
    pub(crate) fn dir(&mut self, path: &str, owner: Owner) -> Result<()> {
        if self.dirs.contains(path) {
            return Ok(());
        }
        self.parents(path)?;
        let mut header = self.header(tar::EntryType::Directory, 0o755, 0, owner);
        self.tar
            .append_data(&mut header, format!("{path}/"), io::empty())
            .map_err(|e| self.error(path, e))?;
        self.dirs.insert(path.to_string());
        Ok(())
    }

    /// A root-owned regular file of `size` bytes read from `data`.
    pub(crate) fn file(
        &mut self,
        path: &str,
        executable: bool,
        size: u64,
        data: impl Read,
    ) -> Result<()> {
        self.parents(path)?;
        let mode = if executable { 0o755 } else { 0o644 };
        let mut header = self.header(tar::EntryType::Regular, mode, size, Owner::ROOT);
        self.tar
            .append_data(&mut header, path, data.take(size))
            .map_err(|e| self.error(path, e))
    }

    /// A symlink to `target`.
    pub(crate) fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        self.parents(path)?;
        let mut header = self.header(tar::EntryType::Symlink, 0o777, 0, Owner::ROOT);
        self.tar
            .append_link(&mut header, path, target)
            .map_err(|e| self.error(path, e))
    }

    /// Adds the tree at `disk` under `prefix`, names sorted at each level; regular files keep
    /// only their executable bit, symlinks their target.
    pub(crate) fn tree(&mut self, prefix: &str, disk: &Path) -> Result<()> {
        let mut names: Vec<_> = std::fs::read_dir(disk)
            .map_err(|e| Error::io("read", disk, e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(|e| Error::io("read", disk, e))?;
        names.sort();
        for name in names {
            let path = disk.join(&name);
            let inside = format!("{prefix}/{}", name.to_string_lossy());
            let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io("read", &path, e))?;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).map_err(|e| Error::io("read", &path, e))?;
                self.symlink(&inside, &target.to_string_lossy())?;
            } else if meta.is_dir() {
                self.dir(&inside, Owner::ROOT)?;
                self.tree(&inside, &path)?;
            } else {
                use std::os::unix::fs::PermissionsExt;
                let file = File::open(&path).map_err(|e| Error::io("read", &path, e))?;
                let executable = meta.permissions().mode() & 0o111 != 0;
                self.file(&inside, executable, meta.len(), file)?;
            }
        }
        Ok(())
    }

    /// Ends the tar and the gzip stream and moves the blob to `blobs/<digest>`.
    pub(crate) fn finish(self) -> Result<Layer> {
        let temp_path = self.temp.path().to_path_buf();
        let write_error = |e: io::Error| Error::io("write", &temp_path, e);
        let tar_hashing = self.tar.into_inner().map_err(write_error)?;
        let diff_id = format!("sha256:{}", tar_hashing.hex());
        let gz_hashing = tar_hashing.inner.finish().map_err(write_error)?;
        let digest = format!("sha256:{}", gz_hashing.hex());
        let size = gz_hashing.count;
        let mut file = gz_hashing.inner;
        file.flush().map_err(write_error)?;
        let destination = self.blobs.join(&digest["sha256:".len()..]);
        self.temp
            .persist(&destination)
            .map_err(|e| Error::io("move the layer to", &destination, e.error))?;
        Ok(Layer {
            digest,
            diff_id,
            size,
        })
    }
}

/// `sha256:<hex>` of `bytes`.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}
