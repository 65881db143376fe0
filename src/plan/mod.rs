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

/// Standard base64 with padding: file contents inside scripts, keys in known_hosts lines.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
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
