//! Which shipit this is: its version, the git revision it was built from and the day it was
//! built (`build.rs` finds the last two). A bug report, a `--json` result and each line of a
//! host's deploy log name the binary that produced them, so "which shipit deployed this?" has
//! an answer after the fact, whichever way shipit was installed (wheel, `cargo install`, source).

use std::sync::LazyLock;

use serde_json::{json, Value};

/// The package version (`Cargo.toml`).
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The full git revision, `-dirty` when built from changed sources, or `unknown`.
pub(crate) const REVISION: &str = env!("SHIPIT_REVISION");

/// The build day, UTC, `YYYY-MM-DD` (`SOURCE_DATE_EPOCH`'s when set).
pub(crate) const BUILT: &str = env!("SHIPIT_BUILT");

/// What `shipit --version` prints after the name: `0.1.0 (f442366a1b2c 2026-05-07)`.
pub(crate) static LONG: LazyLock<String> =
    LazyLock::new(|| format!("{VERSION} ({} {BUILT})", short_revision()));

/// The revision's first 12 hex digits (`-dirty` kept), or `unknown`.
fn short_revision() -> String {
    match REVISION.split_once('-') {
        Some((sha, dirty)) => format!("{}-{dirty}", &sha[..sha.len().min(12)]),
        None => REVISION[..REVISION.len().min(12)].to_string(),
    }
}

/// The `shipit` object of every `--json` result.
pub(crate) fn json() -> Value {
    json!({ "version": VERSION, "revision": REVISION, "built": BUILT })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_revision_is_a_commit_or_unknown_and_the_date_a_day() {
        // Which commit is tests/it/provenance.rs's to check: there is no checkout in a
        // packaged crate.
        let sha = REVISION.strip_suffix("-dirty").unwrap_or(REVISION);
        assert!(
            sha == "unknown" || (sha.len() == 40 && sha.chars().all(|c| c.is_ascii_hexdigit())),
            "{REVISION}"
        );
        assert!(
            chrono::NaiveDate::parse_from_str(BUILT, "%Y-%m-%d").is_ok(),
            "{BUILT}"
        );
    }

    #[test]
    fn the_long_version_names_version_short_revision_and_date() {
        let long = LONG.as_str();
        assert!(long.starts_with(&format!("{VERSION} (")), "{long}");
        assert!(long.ends_with(&format!(" {BUILT})")), "{long}");
        let short = &long[VERSION.len() + 2..long.len() - BUILT.len() - 2];
        let sha = REVISION.strip_suffix("-dirty").unwrap_or(REVISION);
        assert_eq!(
            short.strip_suffix("-dirty").unwrap_or(short),
            &sha[..sha.len().min(12)]
        );
        assert_eq!(
            short.ends_with("-dirty"),
            REVISION.ends_with("-dirty"),
            "{long}"
        );
    }
}
