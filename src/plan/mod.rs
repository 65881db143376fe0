//! Remote work as data: steps grouped into phases, rendered into one shell script per host.
//!
//! Planning is pure: a [`crate::resolve::Resolved`] target and typed facts from hosts go in,
//! phases of [`step::Step`]s come out. The runner ([`crate::runner`]) decides which host runs
//! what and when.

pub(crate) mod check;
pub(crate) mod database;
pub(crate) mod deploy;
pub(crate) mod operate;
pub mod releases;
pub(crate) mod rollback;
pub mod script;
pub(crate) mod step;

use step::{Cleanup, Scope, Step};

/// Steps that run as one script on each host, and what that script does when one fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Phase {
    pub(crate) steps: Vec<Step>,
    pub(crate) cleanup: Cleanup,
}

impl Phase {
    pub(crate) fn new(steps: Vec<Step>, cleanup: Cleanup) -> Phase {
        Phase { steps, cleanup }
    }

    /// The rounds a fleet runs this phase in: with several hosts, each run of once-steps is a
    /// round of its own, so it starts only once every host has finished the steps before it (a
    /// host that fails them means the primary never migrates the shared database), and the
    /// other hosts wait for it before the steps after it (every host's `after_migrate` hooks
    /// run after the primary's `migrate`). One host: one round.
    pub(crate) fn rounds(&self, hosts: usize) -> Vec<Phase> {
        if hosts <= 1 {
            return vec![self.clone()];
        }
        let mut rounds: Vec<Vec<Step>> = vec![Vec::new()];
        let mut last_once = false;
        for step in &self.steps {
            let once = step.scope() == Scope::Once;
            if last_once != once {
                rounds.push(Vec::new());
            }
            rounds.last_mut().expect("one round").push(step.clone());
            last_once = once;
        }
        rounds
            .into_iter()
            .filter(|r| !r.is_empty())
            .map(|steps| Phase::new(steps, self.cleanup))
            .collect()
    }

    /// The steps one host runs: once-steps only on the primary.
    pub(crate) fn steps_for(&self, primary: bool) -> Vec<Step> {
        self.steps
            .iter()
            .filter(|s| primary || s.scope() == Scope::EachHost)
            .cloned()
            .collect()
    }
}

/// Standard base64 as OpenSSH decodes it (`b64_pton`): whitespace anywhere is skipped,
/// padding is required, and the bits after the last byte must be zero; `None` for anything
/// else. OpenSSH reads keys, in known_hosts and `.pub` files alike, and private key files
/// this way.
pub(crate) fn decode_base64(text: impl AsRef<[u8]>) -> Option<Vec<u8>> {
    let text: Vec<u8> = text
        .as_ref()
        .iter()
        .copied()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'\x0b')
        .collect();
    let data = text
        .strip_suffix(b"==")
        .or_else(|| text.strip_suffix(b"="))
        .unwrap_or(&text);
    let padding = text.len() - data.len();
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    for c in data {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    // Characters past the last whole group: none, or 2 and `==`, or 3 and `=`; the bits left
    // over are zero.
    let tail = data.len() % 4;
    let padded = matches!((tail, padding), (0, 0) | (2, 2) | (3, 1));
    (padded && bits == 0).then_some(out)
}

/// Quotes `text` for a POSIX shell: safe words pass through, everything else is single-quoted,
/// so no value shipit interpolates can run as code (`;`, `$()`, backquotes, newlines included).
/// The one quoting function for everything that enters a script.
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
    use super::*;

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

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn a_fleet_runs_once_steps_in_a_round_of_their_own() {
        let phase = Phase::new(
            vec![
                Step::Verify,
                Step::Migrate {
                    once: true,
                    always: false,
                    defer: false,
                },
                Step::Collectstatic,
            ],
            Cleanup::Prepare,
        );
        assert_eq!(phase.rounds(1), vec![phase.clone()]);
        let rounds = phase.rounds(3);
        assert_eq!(rounds.len(), 3);
        assert_eq!(rounds[0].steps, [Step::Verify]);
        assert_eq!(
            rounds[1].steps,
            [Step::Migrate {
                once: true,
                always: false,
                defer: false,
            }]
        );
        assert!(rounds[1].steps_for(false).is_empty());
        assert_eq!(rounds[2].steps, [Step::Collectstatic]);
    }
}
