//! Provenance of the binary (see `src/provenance.rs`): the git revision it is built from and its
//! build date, handed to the crate as `SHIPIT_REVISION` and `SHIPIT_BUILT`.
//!
//! - The revision is `git rev-parse HEAD` of the checkout this package is the root of, with
//!   `-dirty` when a tracked file differs from it; in a packaged crate (`cargo package`,
//!   `cargo install` of a `.crate`, no checkout of its own) it is the commit `cargo package`
//!   recorded in `.cargo_vcs_info.json`, or `unknown` without one.
//! - The date is `SOURCE_DATE_EPOCH`'s day when that is set (reproducible builds), else today's,
//!   UTC, `YYYY-MM-DD`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // A packaged crate unpacked inside some other checkout (cargo package's own verify build,
    // under target/package/) is not that checkout's HEAD.
    let same = |top: &String| std::fs::canonicalize(top).ok() == std::fs::canonicalize(&root).ok();
    let revision = match git(&root, &["rev-parse", "--show-toplevel"]) {
        Some(top) if same(&top) => git_revision(&root),
        _ => packaged_revision(&root),
    };
    println!("cargo:rustc-env=SHIPIT_REVISION={revision}");
    println!("cargo:rustc-env=SHIPIT_BUILT={}", built());
}

/// `git ARGS` in `dir`: its trimmed stdout, or `None` when git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// What the binary is built from: a change to a tracked file here makes the revision `-dirty`.
const INPUTS: &[&str] = &["build.rs", "Cargo.toml", "Cargo.lock", "src", "templates"];

/// HEAD of the checkout at `root`, `-dirty` when one of the [`INPUTS`] differs from it. Runs
/// again when HEAD moves (a commit, a checkout) or an input changes.
fn git_revision(root: &Path) -> String {
    let Some(head) = git(root, &["rev-parse", "HEAD"]) else {
        return "unknown".into();
    };
    let mut watched = vec!["HEAD".to_string(), "packed-refs".into()];
    if let Some(branch) = git(root, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        // Relative to `root` unless absolute (a worktree's); cargo reruns a build script
        // whose watched file is missing every time, so only those that exist are watched.
        if let Some(path) = git(root, &["rev-parse", "--git-path", &name]) {
            let path = root.join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    for input in INPUTS {
        println!("cargo:rerun-if-changed={input}");
    }
    let mut args = vec!["status", "--porcelain", "--untracked-files=no", "--"];
    args.extend(INPUTS);
    match git(root, &args) {
        Some(changes) if changes.is_empty() => head,
        _ => format!("{head}-dirty"),
    }
}

/// The commit `cargo package` recorded: `"sha1": "<hex>"` in `.cargo_vcs_info.json`, with
/// `-dirty` when it recorded `"dirty": true`.
fn packaged_revision(root: &Path) -> String {
    let file = root.join(".cargo_vcs_info.json");
    if file.exists() {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let Ok(info) = std::fs::read_to_string(&file) else {
        return "unknown".into();
    };
    let value = |key: &str| {
        let rest = &info[info.find(&format!("\"{key}\""))? + key.len() + 2..];
        let rest = rest.trim_start().strip_prefix(':')?.trim_start();
        Some(
            rest.trim_start_matches('"')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect::<String>(),
        )
    };
    match value("sha1") {
        Some(sha) if sha.len() == 40 && sha.chars().all(|c| c.is_ascii_hexdigit()) => {
            if value("dirty").as_deref() == Some("true") {
                format!("{sha}-dirty")
            } else {
                sha
            }
        }
        _ => "unknown".into(),
    }
}

/// `YYYY-MM-DD` (UTC) of `SOURCE_DATE_EPOCH`, or of now.
fn built() -> String {
    let seconds = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("SOURCE_DATE_EPOCH={text} is not a number of seconds")),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_secs(),
    };
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The proleptic Gregorian date of day `days` since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`): a build script has no date library.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
