//! `Config::parse` on arbitrary UTF-8 `shipit.toml` text.
//!
//! Checks: no panic; on `Ok`, every target's `deploy_to` is absolute (and normalised: no
//! trailing `/` except for `/` itself) and its name is a valid target name; on `Err`, the message
//! is non-empty, names the file, and the error is a usage error (exit status 2), with any line
//! number inside the text.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use shipit::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(Path::new("shipit.toml"), Path::new("."), text) {
        Ok(config) => {
            for (name, target) in &config.targets {
                assert_eq!(name, &target.name);
                assert!(
                    !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
                    "accepted target name {name:?}"
                );
                assert!(
                    target.deploy_to.starts_with('/'),
                    "target {name}: deploy_to {:?} is not absolute",
                    target.deploy_to
                );
                assert!(
                    target.deploy_to == "/" || !target.deploy_to.ends_with('/'),
                    "target {name}: deploy_to {:?} keeps a trailing slash",
                    target.deploy_to
                );
                assert!((1..=1000).contains(&target.keep_releases));
            }
        }
        Err(err) => {
            let message = err.to_string();
            assert!(!message.is_empty(), "empty error message for {text:?}");
            assert!(
                message.starts_with("shipit.toml"),
                "error does not name the file: {message:?}"
            );
            assert_eq!(err.exit_code(), 2, "{message}");
            if let shipit::error::Error::Config {
                line: Some(line), ..
            } = err
            {
                let lines = text.matches('\n').count() + 1;
                assert!(
                    (1..=lines).contains(&line),
                    "line {line} outside 1..={lines}: {message}"
                );
            }
        }
    }
});
