//! Remote work as data, rendered into one shell script per host.

pub mod deploy;
pub mod releases;
pub mod rollback;
pub mod script;

/// Quotes `text` for a POSIX shell: safe words pass through, everything else is single-quoted,
/// so no value shipit interpolates can run as code (`;`, `$()`, backquotes, newlines included).
pub fn quote(text: &str) -> String {
    let safe = |b: u8| b.is_ascii_alphanumeric() || b"-_./=:@,+%".contains(&b);
    if !text.is_empty() && text.bytes().all(safe) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quotes_everything_a_shell_would_interpret() {
        assert_eq!(quote("/srv/hello"), "/srv/hello");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$(id)`id`;\n"), "'$(id)`id`;\n'");
    }

    #[test]
    fn quoted_values_survive_a_real_shell() {
        for value in [
            "a b",
            "it's",
            "$(echo pwned)",
            "x;y",
            "line\nbreak",
            "*",
            "~",
            "-n",
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", quote(value)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), value);
        }
    }
}
