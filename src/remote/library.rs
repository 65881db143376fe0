//! The remote shell library: the files of `templates/remote/`, one per concern, in the order a
//! script needs them.
//!
//! Every script shipit sends starts with this library, so a phase is still one exec however the
//! shell is split on disk. What is sent is [`sent`]: the library without its comments and blank
//! lines (about a third of its size), which only people read.

use std::sync::LazyLock;

/// The files of the library, by path under `templates/remote/`, in order: the runtime and
/// layout first, then each concern, then the backend families behind the seams (`pm.sh` and
/// `pm/*.sh` for process managers, `server/*.sh` for app servers).
macro_rules! files {
    ($($path:literal),* $(,)?) => {
        /// Each file of the library with its path, checked by shellcheck in CI.
        #[cfg(test)]
        pub(crate) const FILES: &[(&str, &str)] =
            &[$(($path, include_str!(concat!("../../templates/remote/", $path)))),*];
        /// The whole library as its files say it, comments included.
        pub(crate) const LIBRARY: &str =
            concat!($(include_str!(concat!("../../templates/remote/", $path)), "\n"),*);
    };
}

files!(
    "runtime.sh",
    "layout.sh",
    "lock.sh",
    "releases.sh",
    "archive.sh",
    "venv.sh",
    "django.sh",
    "migrate.sh",
    "snapshot.sh",
    "background.sh",
    "app.sh",
    "nginx.sh",
    "tls.sh",
    "switch.sh",
    "check.sh",
    "logs.sh",
    "console.sh",
    "pm.sh",
    "pm/supervisor.sh",
    "pm/systemd.sh",
    "server/gunicorn.sh",
    "server/uvicorn.sh",
);

/// The library as it is sent: every line that is only a comment, and every blank line, left
/// out. The library keeps no data in such lines: its multi-line strings are awk and Python
/// programs, whose `#` lines are comments too.
pub(crate) fn sent() -> &'static str {
    static SENT: LazyLock<String> = LazyLock::new(|| strip(LIBRARY));
    &SENT
}

/// `text` without its comment-only and blank lines.
fn strip(text: &str) -> String {
    let mut out = String::with_capacity(text.len() / 2);
    for line in text.lines() {
        let trimmed = line.trim_start();
        if !trimmed.is_empty() && !trimmed.starts_with('#') {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_templates_remote_is_in_the_library() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates/remote");
        let mut on_disk = Vec::new();
        for sub in ["", "pm", "server"] {
            for entry in std::fs::read_dir(format!("{dir}/{sub}")).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                if name.ends_with(".sh") {
                    on_disk.push(if sub.is_empty() {
                        name
                    } else {
                        format!("{sub}/{name}")
                    });
                }
            }
        }
        on_disk.sort();
        let mut listed: Vec<String> = FILES.iter().map(|(p, _)| p.to_string()).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
    }

    #[test]
    fn no_file_is_over_600_lines() {
        for (path, text) in FILES {
            assert!(text.lines().count() <= 600, "{path}");
        }
    }

    #[test]
    fn stripping_keeps_the_code_and_drops_comments() {
        let text = "# a comment\nf() {\n  # inside\n\n  echo \"$x\" # trailing\n}\n";
        assert_eq!(strip(text), "f() {\n  echo \"$x\" # trailing\n}\n");
    }

    #[test]
    fn the_stripped_library_defines_the_same_functions_and_parses() {
        let names = |text: &str| -> Vec<String> {
            text.lines()
                .filter_map(|l| l.split_once("() ").map(|(n, _)| n.to_string()))
                .filter(|n| !n.contains(' '))
                .collect()
        };
        assert_eq!(names(LIBRARY), names(sent()));
        assert!(
            sent().len() * 10 < LIBRARY.len() * 8,
            "{} of {}",
            sent().len(),
            LIBRARY.len()
        );
        let out = std::process::Command::new("/usr/bin/dash")
            .arg("-n")
            .arg("-c")
            .arg(sent())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
