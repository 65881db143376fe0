//! Which shipit ran: `shipit --version` names the version, this checkout's git revision and the
//! build day, and every `--json` result carries the same in its `shipit` object (the deploy
//! log's copy is asserted by operate::audit_merges_the_logs_of_every_host_by_time).

use std::process::Command;

use serde_json::Value;
use support::project::project;
use support::shipit_bin;

/// `shipit --version`, which must succeed.
fn version_line() -> String {
    let out = Command::new(shipit_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// HEAD of the checkout the binary was built from.
fn head() -> String {
    let out = Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "HEAD"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn version_names_the_version_the_checkouts_revision_and_the_build_day() {
    let line = version_line();
    let rest = line
        .strip_prefix(&format!("shipit {} (", env!("CARGO_PKG_VERSION")))
        .unwrap_or_else(|| panic!("{line}"));
    let (revision, day) = rest
        .trim_end()
        .trim_end_matches(')')
        .split_once(' ')
        .unwrap();
    let sha = revision.strip_suffix("-dirty").unwrap_or(revision);
    assert_eq!(sha, &head()[..12], "{line}");
    assert!(
        chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").is_ok(),
        "{day:?} is not a YYYY-MM-DD day: {line}"
    );
    let short = Command::new(shipit_bin()).arg("-V").output().unwrap();
    assert_eq!(String::from_utf8(short.stdout).unwrap(), line);
}

#[test]
fn every_json_result_names_the_shipit_that_printed_it() {
    let line = version_line();
    let project = project();
    let json = |args: &[&str]| -> Value {
        let out = project.shipit().args(args).arg("--json").output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    for result in [
        json(&["build", "--target", "local"]),
        json(&["config", "--target", "local"]),
    ] {
        let shipit = &result["shipit"];
        assert_eq!(shipit["version"], env!("CARGO_PKG_VERSION"), "{result}");
        let revision = shipit["revision"].as_str().unwrap();
        assert!(revision.starts_with(&head()), "{result}");
        let built = shipit["built"].as_str().unwrap();
        let short = revision.get(..12).unwrap();
        let dirty = if revision.ends_with("-dirty") {
            "-dirty"
        } else {
            ""
        };
        assert_eq!(
            line.trim(),
            format!(
                "shipit {} ({short}{dirty} {built})",
                env!("CARGO_PKG_VERSION")
            ),
            "{result}"
        );
    }
}
