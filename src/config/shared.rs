//! `shared_dirs` and `shared_files` of a target: paths kept across releases under
//! `deploy_to/shared/` and linked into each release.

use super::*;

/// Names inside a release that shipit manages itself; no shared path may replace them.
pub(super) const RELEASE_OWN: &[&str] = &[".shipit", ".venv"];

/// Validates a `shared_dirs`/`shared_files` entry and returns it normalized (`./a//b/` is
/// `a/b`): relative, inside the release, not the release root and not shipit's own files.
pub(super) fn shared_path(path: &str) -> std::result::Result<String, String> {
    relative_path(path)?;
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let Some(first) = parts.first() else {
        return Err(format!(
            "`{path}` is the release directory itself; name a directory or file inside it"
        ));
    };
    if RELEASE_OWN.contains(first) {
        return Err(format!(
            "`{path}` is inside `{first}`, which shipit manages in every release; choose another path"
        ));
    }
    Ok(parts.join("/"))
}

/// Validates `shared_dirs` and `shared_files`: each is linked into every release, so each names
/// one path of its own inside the release, never the release itself, shipit's own files, or
/// another shared path (in either list).
pub(super) fn validate_shared(
    source: &Source,
    target: &str,
    dirs: Vec<Spanned<String>>,
    files: Vec<Spanned<String>>,
) -> Result<(Vec<String>, Vec<String>)> {
    let key = |k: &str| key_for(target, k);
    let mut shared_seen: Vec<(String, &str)> = Vec::new();
    let mut shared = |list: Vec<Spanned<String>>, k: &'static str| -> Result<Vec<String>> {
        let mut paths = Vec::new();
        for p in list {
            let bad = |why: String| source.error(p.span(), key(k), why);
            let path = shared_path(p.get_ref()).map_err(bad)?;
            if let Some((other, other_key)) = shared_seen.iter().find(|(other, _)| {
                path == *other
                    || path.starts_with(&format!("{other}/"))
                    || other.starts_with(&format!("{path}/"))
            }) {
                let how = if path == *other {
                    "is already shared".to_string()
                } else if path.starts_with(other.as_str()) {
                    format!("is inside `{other}`, already shared")
                } else {
                    format!("contains `{other}`, already shared")
                };
                return Err(bad(format!(
                    "`{path}` {how} (in {}); each shared path must stand on its own",
                    key(other_key)
                )));
            }
            shared_seen.push((path.clone(), k));
            paths.push(path);
        }
        Ok(paths)
    };
    let dirs = shared(dirs, "shared_dirs")?;
    let files = shared(files, "shared_files")?;
    Ok((dirs, files))
}
