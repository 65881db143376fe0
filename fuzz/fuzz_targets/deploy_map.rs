//! `DeployMap::parse` on arbitrary UTF-8 `deploy.map` text.
//!
//! Checks: no panic; on `Ok`, every destination is already normalised (passes
//! `policy::archive_path` unchanged), is not under the reserved `.shipit/`, is unique, and
//! mappings keep file order with valid line numbers; on `Err`, the message starts with
//! `conf/deploy.map:LINE:` for a LINE within the text's line count.
#![no_main]

use std::collections::BTreeSet;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use shipit::build::deploy_map::DeployMap;
use shipit::build::policy;
use shipit::error::Error;

const PATH: &str = "conf/deploy.map";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let line_count = text.lines().count();
    match DeployMap::parse(Path::new(PATH), text) {
        Ok(map) => {
            let mut seen = BTreeSet::new();
            let mut last_line = 0;
            for m in &map.mappings {
                assert_eq!(
                    policy::archive_path(&m.destination).as_deref(),
                    Ok(m.destination.as_str()),
                    "destination {:?} is not normalised",
                    m.destination
                );
                assert!(
                    !policy::is_reserved(&m.destination),
                    "reserved destination {:?} accepted",
                    m.destination
                );
                assert!(
                    seen.insert(m.destination.clone()),
                    "destination {:?} mapped twice",
                    m.destination
                );
                assert!(!m.template.is_empty());
                assert!(
                    m.line > last_line && m.line <= line_count,
                    "line {}",
                    m.line
                );
                last_line = m.line;
            }
        }
        Err(err) => {
            let message = err.to_string();
            assert_eq!(err.exit_code(), 2, "{message}");
            let Error::DeployMap { line, .. } = err else {
                panic!("not a DeployMap error: {message}");
            };
            assert!(
                (1..=line_count).contains(&line),
                "line {line} outside 1..={line_count}: {message}"
            );
            let prefix = format!("{PATH}:{line}:");
            assert!(
                message.starts_with(&prefix),
                "message {message:?} does not start with {prefix:?}"
            );
        }
    }
});
