//! Deltas: an upload proportional to the change.
//!
//! A host whose live release is one shipit built earlier (its archive still in `.shipit/dist`)
//! needs only the files of the new archive that release lacks: the begin script offers the
//! earlier builds' manifests ([`bases`]), the host asks for a delta against its live one when
//! that release's files are still what its manifest says, and shipit sends [`delta`]: the new
//! manifest, every symlink, and the regular files whose sha256 or mode differ. The host
//! hard-links the rest from the live release and checks the whole tree against the new manifest
//! (`shipit_unpack_delta`). Anything else (a first deploy, a build shipit no longer has, a live
//! release changed on the host) gets the whole archive.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::build::archive::hex;
use crate::build::manifest::{ManifestFile, MANIFEST_PATH};

/// An earlier build a delta can be made against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Base {
    /// The sha256 of its manifest, as a host's `releases/<id>/.shipit/manifest.json`.
    pub(crate) manifest: String,
    /// Its archive.
    pub(crate) archive: PathBuf,
}

/// The other archives beside `archive` (the builds `.shipit/dist` keeps): what a host's live
/// release may be. Best effort: one that cannot be read is left out, and costs a full upload.
pub(crate) fn bases(archive: &Path) -> Vec<Base> {
    let Some(Ok(entries)) = archive.parent().map(std::fs::read_dir) else {
        return Vec::new();
    };
    let mut found: Vec<Base> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p != archive && p.to_string_lossy().ends_with(".tar.gz"))
        .filter_map(|p| {
            let manifest = manifest_of(&p).ok()?;
            Some(Base {
                manifest: hex(&Sha256::digest(&manifest)),
                archive: p,
            })
        })
        .collect();
    found.sort_by(|a, b| a.archive.cmp(&b.archive));
    found
}

/// The stored manifest of `archive`.
fn manifest_of(archive: &Path) -> io::Result<Vec<u8>> {
    let mut tar = open(archive)?;
    for entry in tar.entries()? {
        let mut entry = entry?;
        if entry.path()?.as_ref() == Path::new(MANIFEST_PATH) {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            return Ok(bytes);
        }
    }
    Err(io::Error::other(format!(
        "{} has no {MANIFEST_PATH}",
        archive.display()
    )))
}

fn open(archive: &Path) -> io::Result<tar::Archive<flate2::read::GzDecoder<std::fs::File>>> {
    Ok(tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(archive)?,
    )))
}

/// A delta of `archive` for a host whose live release is `base`'s: a tar.gz of the manifest,
/// every symlink, and every regular file whose sha256 or mode `base`'s manifest does not list
/// at its path. The files it leaves out are those the host hard-links from the live release.
pub(crate) fn delta(archive: &Path, base: &Path) -> io::Result<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct Listed {
        files: Vec<ManifestFile>,
    }
    let listed: Listed = serde_json::from_slice(&manifest_of(base)?)?;
    let had: HashMap<String, (Option<String>, Option<String>)> = listed
        .files
        .into_iter()
        .map(|f| (f.path, (f.sha256, f.mode)))
        .collect();
    let mut out = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    let mut tar = open(archive)?;
    for entry in tar.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let mut header = entry.header().clone();
        if let Some(target) = entry.link_name()? {
            out.append_link(&mut header, &path, target)?;
            continue;
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes)?;
        let key = path.to_string_lossy().into_owned();
        let now = (
            Some(hex(&Sha256::digest(&bytes))),
            Some(format!("{:04o}", header.mode()? & 0o7777)),
        );
        if key == MANIFEST_PATH || had.get(&key) != Some(&now) {
            out.append_data(&mut header, &path, &bytes[..])?;
        }
    }
    out.into_inner()?.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar.gz at `path` of `files` (path, content, mode) and a manifest listing them.
    fn archive(path: &Path, files: &[(&str, &str, u32)]) {
        let mut listed = Vec::new();
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            std::fs::File::create(path).unwrap(),
            flate2::Compression::default(),
        ));
        for (name, content, mode) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(*mode);
            tar.append_data(&mut header, name, content.as_bytes())
                .unwrap();
            listed.push(serde_json::json!({
                "path": name,
                "sha256": hex(&Sha256::digest(content.as_bytes())),
                "mode": format!("{mode:04o}"),
            }));
        }
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        tar.append_link(&mut header, "static", "app/static")
            .unwrap();
        let manifest = serde_json::to_vec_pretty(&serde_json::json!({ "files": listed })).unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(manifest.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, MANIFEST_PATH, &manifest[..])
            .unwrap();
        tar.into_inner().unwrap().finish().unwrap();
    }

    fn names(delta: &[u8]) -> Vec<String> {
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(delta));
        tar.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_delta_holds_what_changed_the_symlinks_and_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("p-t-1.tar.gz");
        let new = dir.path().join("p-t-2.tar.gz");
        archive(
            &old,
            &[
                ("app/same.py", "same", 0o644),
                ("app/code.py", "v1", 0o644),
                ("bin/run", "run", 0o644),
                ("gone.txt", "gone", 0o644),
            ],
        );
        archive(
            &new,
            &[
                ("app/same.py", "same", 0o644),
                ("app/code.py", "v2", 0o644),
                ("bin/run", "run", 0o755),
                ("app/added.py", "added", 0o644),
            ],
        );
        let delta = delta(&new, &old).unwrap();
        assert_eq!(
            names(&delta),
            [
                "app/code.py",
                "bin/run",
                "app/added.py",
                "static",
                MANIFEST_PATH
            ]
        );
        let found = bases(&new);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].archive, old);
        assert_eq!(
            found[0].manifest,
            hex(&Sha256::digest(manifest_of(&old).unwrap()))
        );
    }

    #[test]
    fn an_archive_beside_no_other_has_no_base() {
        let dir = tempfile::tempdir().unwrap();
        let only = dir.path().join("p-t-1.tar.gz");
        archive(&only, &[("a", "a", 0o644)]);
        std::fs::write(dir.path().join("notes.txt"), "not an archive").unwrap();
        std::fs::write(dir.path().join("broken.tar.gz"), "not gzip").unwrap();
        assert!(bases(&only).is_empty());
    }
}
