//! The host names of a known_hosts line (its first field), matched as OpenSSH matches them:
//! hostfile.c `match_maybe_hashed`, match.c `match_hostname`, `match_pattern_list` and
//! `match_pattern`.

use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::decode_base64;
use crate::plan::base64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Names {
    /// Comma-separated patterns, each maybe negated by a `!`.
    Patterns(Vec<u8>),
    /// `|1|salt|hash`: the HMAC-SHA1 of the name, keyed by the salt.
    Hashed {
        salt: Vec<u8>,
        /// The hash as the line writes it: OpenSSH compares text, so it matches only as
        /// ssh-keygen writes it (padded base64, nothing after it).
        hash: Vec<u8>,
    },
}

/// The length of a salt (that of a SHA-1 hash).
const SALT_LEN: usize = 20;

/// The longest salt OpenSSH decodes, in base64 characters.
const MAX_SALT_TEXT: usize = 1024;

/// The longest pattern OpenSSH matches: a list holding a longer one matches nothing.
const MAX_PATTERN: usize = 1022;

impl Names {
    /// Reads the first field of a line; a hashed name OpenSSH cannot use makes the line
    /// invalid (hostfile.c `extract_salt`).
    pub(super) fn parse(field: &[u8]) -> Result<Names, String> {
        if field.first() != Some(&b'|') {
            return Ok(Names::Patterns(field.to_vec()));
        }
        let hashed = field
            .strip_prefix(b"|1|")
            .ok_or("unknown hashed host name format")?;
        let malformed = || "malformed hashed host name".to_string();
        let end = hashed
            .iter()
            .position(|b| *b == b'|')
            .ok_or_else(malformed)?;
        let salt = &hashed[..end];
        if salt.is_empty() || salt.len() > MAX_SALT_TEXT {
            return Err(malformed());
        }
        let salt = decode_base64(salt)
            .filter(|salt| salt.len() == SALT_LEN)
            .ok_or_else(malformed)?;
        Ok(Names::Hashed {
            salt,
            hash: hashed[end + 1..].to_vec(),
        })
    }

    /// Whether the line names `name`, given as `ssh` looks it up (lower case, `[host]:port` off
    /// port 22): a hash is of those exact bytes.
    pub(super) fn matches(&self, name: &str) -> bool {
        match self {
            Names::Hashed { salt, hash } => {
                let mut mac =
                    Hmac::<Sha1>::new_from_slice(salt).expect("HMAC takes any key length");
                mac.update(name.as_bytes());
                base64(&mac.finalize().into_bytes()).as_bytes() == hash.as_slice()
            }
            Names::Patterns(list) => match_hostname(name.as_bytes(), list),
        }
    }
}

/// Whether `host` matches the comma-separated `list` of patterns: one pattern matches and no
/// `!`-negated one does, both compared in lower case (ASCII). OpenSSH's `match_hostname`
/// answers -1 for "a negated pattern matched", 0 for "none matched" and 1 for a match;
/// known_hosts takes only 1, which is `true` here.
pub(super) fn match_hostname(host: &[u8], list: &[u8]) -> bool {
    let host = host.to_ascii_lowercase();
    let mut positive = false;
    let mut rest = list;
    while !rest.is_empty() {
        let negated = rest[0] == b'!';
        if negated {
            rest = &rest[1..];
        }
        let end = rest.iter().position(|b| *b == b',').unwrap_or(rest.len());
        let pattern = &rest[..end];
        if pattern.len() > MAX_PATTERN {
            return false;
        }
        rest = rest.get(end + 1..).unwrap_or_default();
        if match_pattern(&host, &pattern.to_ascii_lowercase()) {
            if negated {
                return false;
            }
            positive = true;
        }
    }
    positive
}

/// Whether all of `text` matches `pattern`, where `*` stands for any run of bytes and `?` for
/// any one byte, and every other byte for itself.
pub(super) fn match_pattern(text: &[u8], pattern: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and where in `text` it stopped matching: on a mismatch, that star
    // takes one more byte and matching resumes after it.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        // A `*` first: it is a wildcard also where the text holds a `*`.
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}
