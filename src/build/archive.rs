//! Writing the release archive: a reproducible, streamed `tar.gz`.
//!
//! Reproducible: entries are sorted, every header has the same mtime (the build time), owner
//! 0:0 with empty names, and mode 0644 or 0755; the gzip header carries no name and no time.
//! Streamed: each file is read once, through a SHA-256 hasher, straight into the tar stream, and
//! compression runs on a second thread fed by a bounded channel, so memory stays flat however
//! large the project and reading overlaps compressing (as `tar | gzip` does). The archive is
//! written to a temporary file beside the destination and renamed into place, so a failed build
//! never leaves a half-written archive under the final name.
//!
//! Scanned: as a file streams in, [`super::content`] looks at its bytes for secrets; a finding
//! stops the build before the archive is renamed into place.

use std::fs::File;
use std::io::{self, BufRead, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread;

use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

use super::content::{Finding, Scanner, SCAN_LIMIT};
use super::manifest::{write_manifest, ManifestFile, ManifestHeader, MANIFEST_PATH};

const CHUNK: usize = 256 * 1024;
const CHUNKS_IN_FLIGHT: usize = 8;

/// One thing to put in the archive.
#[derive(Debug, Clone)]
pub enum Entry<'a> {
    /// A file on disk, streamed.
    File {
        /// Path inside the archive; on disk, the same path under `root`.
        path: &'a str,
        /// The project root.
        root: &'a Path,
        /// Whether it gets mode 0755.
        executable: bool,
        /// Whether its content is scanned for secrets (not when `include` names it).
        scan: bool,
    },
    /// A symlink.
    Symlink {
        /// Path inside the archive.
        path: &'a str,
        /// Link target.
        target: &'a str,
    },
    /// Content made by the build (rendered deploy.map files).
    Generated {
        /// Path inside the archive.
        path: &'a str,
        /// The content.
        bytes: &'a [u8],
        /// The template it came from.
        template: &'a str,
    },
}

impl Entry<'_> {
    /// Path inside the archive.
    pub fn path(&self) -> &str {
        match self {
            Entry::File { path, .. }
            | Entry::Symlink { path, .. }
            | Entry::Generated { path, .. } => path,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Hex SHA-256 of the compressed archive.
    pub sha256: String,
    /// Size of the compressed archive in bytes.
    pub size: u64,
    /// The manifest stored in it, but for its file list.
    pub header: ManifestHeader,
    /// How many entries the manifest lists.
    pub files: usize,
}

/// Writes `entries` (sorted by path, unique) and then the manifest completed from `header` to
/// `destination`, with every tar header stamped `mtime`.
pub fn write(
    destination: &Path,
    entries: &[Entry],
    header: ManifestHeader,
    mtime: u64,
) -> Result<Written> {
    debug_assert!(entries.windows(2).all(|w| w[0].path() < w[1].path()));
    let dir = created_parent(destination)?;
    let temp = tempfile::Builder::new()
        .prefix(".shipit-archive-")
        .suffix(".part")
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temporary file in", dir, e))?;
    let file = temp
        .reopen()
        .map_err(|e| Error::io("open", temp.path(), e))?;

    let (sender, receiver) = sync_channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
    let compressor = thread::spawn(move || compress(receiver, file));

    let tar_result = write_tar(ChannelWriter::new(sender), entries, &header, mtime, dir);
    // The tar writer (and with it the sender) is gone now, so the compressor sees the end.
    let compressed = compressor.join().expect("compressor thread does not panic");
    let files = tar_result?;
    let (sha256, size) = compressed.map_err(|e| Error::io("write", temp.path(), e))?;
    temp.persist(destination)
        .map_err(|e| Error::io("move the archive to", destination, e.error))?;
    Ok(Written {
        sha256,
        size,
        header,
        files,
    })
}

/// The manifest's file list as it grows: one JSON line per entry in a temporary file, so a
/// build's memory does not grow with the number of files (200k files would hold ~50 MB).
struct Spill {
    file: BufWriter<File>,
    count: usize,
}

impl Spill {
    fn new(dir: &Path) -> Result<Spill> {
        let file = tempfile::tempfile_in(dir)
            .map_err(|e| Error::io("create a temporary file in", dir, e))?;
        Ok(Spill {
            file: BufWriter::new(file),
            count: 0,
        })
    }

    fn push(&mut self, entry: &ManifestFile) -> io::Result<()> {
        serde_json::to_writer(&mut self.file, entry)?;
        self.file.write_all(b"\n")?;
        self.count += 1;
        Ok(())
    }

    /// The stored manifest, in a temporary file of its own (its size goes in the tar header
    /// before its bytes), and its size.
    fn manifest(self, header: &ManifestHeader, dir: &Path) -> io::Result<(File, u64)> {
        let mut spilled = self.file.into_inner().map_err(|e| e.into_error())?;
        spilled.seek(SeekFrom::Start(0))?;
        let lines = io::BufReader::new(spilled).lines().map(|line| {
            line.and_then(|l| serde_json::from_str::<ManifestFile>(&l).map_err(io::Error::from))
        });
        let mut stored = tempfile::tempfile_in(dir)?;
        write_manifest(&mut stored, header, lines)?;
        let size = stored.seek(SeekFrom::End(0))?;
        stored.seek(SeekFrom::Start(0))?;
        Ok((stored, size))
    }
}

/// Writes the entries and the manifest; returns how many entries the manifest lists.
fn write_tar(
    sink: ChannelWriter,
    entries: &[Entry],
    header: &ManifestHeader,
    mtime: u64,
    dir: &Path,
) -> Result<usize> {
    let mut manifest = Spill::new(dir)?;
    let mut findings: Vec<(String, Finding)> = Vec::new();
    let spill_error = |e: io::Error| Error::Archive {
        message: format!("cannot write the manifest's temporary file: {e}"),
    };
    let mut builder = tar::Builder::new(sink);
    builder.mode(tar::HeaderMode::Deterministic);
    let header_for = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(mtime);
        header.set_uid(0);
        header.set_gid(0);
        header
    };
    let tar_error = |path: &str, e: io::Error| Error::Archive {
        message: format!("cannot add `{path}` to the archive: {e}"),
    };
    for entry in entries {
        match entry {
            Entry::File {
                path,
                root,
                executable,
                scan,
            } => {
                let disk = &root.join(path);
                let file = File::open(disk).map_err(|e| Error::io("read", disk, e))?;
                let size = file
                    .metadata()
                    .map_err(|e| Error::io("read", disk, e))?
                    .len();
                let mode = if *executable { 0o755 } else { 0o644 };
                let mut header = header_for(tar::EntryType::Regular, mode, size);
                let scanner = (*scan && size <= SCAN_LIMIT).then(|| Scanner::new(path));
                let mut reader = HashingReader::new(Scanned {
                    inner: file.take(size),
                    scanner,
                });
                builder
                    .append_data(&mut header, path, &mut reader)
                    .map_err(|e| tar_error(path, e))?;
                if let Some(finding) = reader.inner.scanner.take().and_then(Scanner::finish) {
                    findings.push((path.to_string(), finding));
                }
                if reader.count != size {
                    return Err(Error::Archive {
                        message: format!(
                            "{} changed size while it was being archived; build again",
                            disk.display()
                        ),
                    });
                }
                manifest
                    .push(&ManifestFile {
                        path: path.to_string(),
                        sha256: Some(reader.hex()),
                        size: Some(size),
                        mode: Some(format!("{mode:04o}")),
                        link: None,
                        template: None,
                    })
                    .map_err(spill_error)?;
            }
            Entry::Symlink { path, target } => {
                let mut header = header_for(tar::EntryType::Symlink, 0o777, 0);
                builder
                    .append_link(&mut header, path, target)
                    .map_err(|e| tar_error(path, e))?;
                manifest
                    .push(&ManifestFile {
                        path: path.to_string(),
                        sha256: None,
                        size: None,
                        mode: None,
                        link: Some(target.to_string()),
                        template: None,
                    })
                    .map_err(spill_error)?;
            }
            Entry::Generated {
                path,
                bytes,
                template,
            } => {
                let mut header = header_for(tar::EntryType::Regular, 0o644, bytes.len() as u64);
                builder
                    .append_data(&mut header, path, *bytes)
                    .map_err(|e| tar_error(path, e))?;
                manifest
                    .push(&ManifestFile {
                        path: path.to_string(),
                        sha256: Some(hex(&Sha256::digest(bytes))),
                        size: Some(bytes.len() as u64),
                        mode: Some("0644".into()),
                        link: None,
                        template: Some(template.to_string()),
                    })
                    .map_err(spill_error)?;
            }
        }
    }
    let mut findings = findings.into_iter();
    if let Some((path, first)) = findings.next() {
        return Err(Error::SecretContent {
            path,
            line: first.line,
            what: first.what,
            more: findings
                .map(|(path, f)| format!("{path}:{}", f.line))
                .collect(),
        });
    }
    let files = manifest.count;
    let (stored, size) = manifest.manifest(header, dir).map_err(spill_error)?;
    let mut tar_header = header_for(tar::EntryType::Regular, 0o644, size);
    builder
        .append_data(&mut tar_header, MANIFEST_PATH, stored)
        .map_err(|e| tar_error(MANIFEST_PATH, e))?;
    let mut sink = builder
        .into_inner()
        .map_err(|e| tar_error("(end of archive)", e))?;
    sink.flush().map_err(|e| tar_error("(end of archive)", e))?;
    Ok(files)
}

/// Compresses what arrives on `chunks` into `file`; returns the archive's SHA-256 and size.
fn compress(chunks: Receiver<Vec<u8>>, file: File) -> io::Result<(String, u64)> {
    let hashed = HashingWriter::new(BufWriter::with_capacity(CHUNK, file));
    let mut gz = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(hashed, Compression::default());
    for chunk in chunks {
        gz.write_all(&chunk)?;
    }
    let mut hashed = gz.finish()?;
    hashed.inner.flush()?;
    hashed.inner.get_ref().sync_all()?;
    Ok((hashed.hex(), hashed.count))
}

/// The directory `path` goes in (`.` for a bare name), created if missing: where a file is
/// written under a temporary name before it is renamed over `path`.
pub(crate) fn created_parent(path: &Path) -> Result<&Path> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    Ok(dir)
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Sends full chunks to the compressor thread; dropping it ends the stream.
struct ChannelWriter {
    buffer: Vec<u8>,
    sender: SyncSender<Vec<u8>>,
}

impl ChannelWriter {
    fn new(sender: SyncSender<Vec<u8>>) -> ChannelWriter {
        ChannelWriter {
            buffer: Vec::with_capacity(CHUNK),
            sender,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
        self.sender
            .send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the compressor stopped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buffer.len();
        let n = room.min(data.len());
        self.buffer.extend_from_slice(&data[..n]);
        if self.buffer.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buffer.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

/// Shows what passes through a reader to a content scanner, when there is one.
struct Scanned<R> {
    inner: R,
    scanner: Option<Scanner>,
}

impl<R: Read> Read for Scanned<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(scanner) = &mut self.scanner {
            scanner.feed(&buf[..n]);
        }
        Ok(n)
    }
}

/// Hashes and counts what passes through a reader.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> HashingReader<R> {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Hex SHA-256 of everything read so far.
    pub fn hex(&self) -> String {
        hex(&self.hasher.clone().finalize())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Hashes and counts what passes through a writer (the archive here, image layers too).
pub(crate) struct HashingWriter<W> {
    /// The writer underneath.
    pub(crate) inner: W,
    hasher: Sha256,
    /// Bytes written so far.
    pub(crate) count: u64,
}

impl<W> HashingWriter<W> {
    /// Wraps `inner`.
    pub(crate) fn new(inner: W) -> HashingWriter<W> {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Hex SHA-256 of everything written so far.
    pub(crate) fn hex(&self) -> String {
        hex(&self.hasher.clone().finalize())
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        self.hasher.update(&data[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
