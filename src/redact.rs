//! Masks secrets and credential-looking text wherever shipit shows or records it.
//!
//! Configured secrets are masked by value ([`Secrets`]), in every shape a value travels in: as
//! it is (a PEM key or `pass show` output spans several lines), each of its lines alone (a hook
//! that prints one line of it), base64 and URL-encoded. Host output arrives a line at a time, so
//! a value spanning lines is found by [`Stream`], which holds lines back only while they could
//! still be the start of one.
//!
//! A hook command or an `env` value can also carry a credential shipit was never told about:
//! `curl -H "Authorization: Bearer …"`, `https://user:password@host`, `API_TOKEN=… ./notify`.
//! Those shapes are masked by [`credentials`], so step labels, errors, `--json` and logs all say
//! `[REDACTED]` alike. shipit's own placeholders (`[REDACTED]`, a dry run's `[secret from …]`)
//! are never masked again.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// What replaces a credential.
pub(crate) const MASK: &str = "[REDACTED]";

/// The fewest characters a secret (and a line of a multi-line one, to be masked alone) has.
/// Masking is by value: a value of one or two characters would be masked inside every word
/// that holds it, garbling all output while hiding nothing, so such a secret is refused when
/// it is resolved (see `resolve::AppEnv`).
pub(crate) const MIN_SECRET_CHARS: usize = 3;

/// Whether `value` is too short to be masked safely (fewer than [`MIN_SECRET_CHARS`] characters
/// once surrounding blanks are left out).
pub(crate) fn too_short(value: &str) -> bool {
    value.trim().chars().count() < MIN_SECRET_CHARS
}

/// The values never to show, each in every shape it may be shown in.
#[derive(Debug, Clone, Default)]
pub(crate) struct Secrets {
    /// Every shape of every value (some span lines), longest first.
    needles: Vec<String>,
}

impl Secrets {
    /// Adds `value` and its shapes: with CRLF line ends as LF (how output arrives), each of its
    /// lines alone, base64 (also wrapped at 76 columns, as `base64` prints it) and URL-encoded.
    /// Shapes shorter than [`MIN_SECRET_CHARS`] are left out.
    pub(crate) fn add(&mut self, value: &str) {
        let value = value.replace("\r\n", "\n");
        let mut shapes = vec![value.clone()];
        let encoded = crate::plan::base64(value.as_bytes());
        if encoded.len() > 76 {
            let wrapped: Vec<&str> = encoded
                .as_bytes()
                .chunks(76)
                .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
                .collect();
            shapes.push(wrapped.join("\n"));
        }
        shapes.push(encoded);
        shapes.push(url_encoded(&value));
        for shape in shapes {
            if shape.contains('\n') {
                self.needles
                    .extend(shape.lines().map(str::trim).map(str::to_string));
            }
            self.needles.push(shape);
        }
        self.needles.retain(|n| !too_short(n));
        // Longest first, so that of two overlapping shapes the longer is the one found whole.
        self.needles
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        self.needles.dedup();
    }

    /// `text` with every shape of every value, and every credential-looking part, masked.
    pub(crate) fn mask(&self, text: &str) -> String {
        let found = self.occurrences(text);
        let mut masked = String::with_capacity(text.len());
        let mut at = 0;
        for range in found {
            masked.push_str(&text[at..range.start]);
            masked.push_str(MASK);
            at = range.end;
        }
        masked.push_str(&text[at..]);
        credentials(&masked).into_owned()
    }

    /// Where shapes of the values are in `text`: sorted, overlaps merged, none inside one of
    /// shipit's own placeholders.
    fn occurrences(&self, text: &str) -> Vec<Range<usize>> {
        let kept = placeholders(text);
        let mut found: Vec<Range<usize>> = self
            .needles
            .iter()
            .flat_map(|n| text.match_indices(n.as_str()).map(|(i, n)| i..i + n.len()))
            .filter(|r| !kept.iter().any(|k| k.start <= r.start && r.end <= k.end))
            .collect();
        found.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<usize>> = Vec::with_capacity(found.len());
        for range in found {
            match merged.last_mut() {
                Some(last) if range.start < last.end => last.end = last.end.max(range.end),
                _ => merged.push(range),
            }
        }
        merged
    }

    /// Where the longest unfinished shape at the end of `text` begins: the start of its
    /// longest suffix that is the beginning of a shape but not all of it (`text.len()` when
    /// there is none).
    fn unfinished(&self, text: &str) -> usize {
        (0..text.len())
            .filter(|i| text.is_char_boundary(*i))
            .find(|i| {
                let tail = &text[*i..];
                self.needles
                    .iter()
                    .any(|n| n.len() > tail.len() && n.starts_with(tail))
            })
            .unwrap_or(text.len())
    }
}

/// Masks a stream of text that comes in pieces (a host's output, a line at a time): a value
/// split between pieces, or spanning lines, is masked as if it had come whole.
#[derive(Debug)]
pub(crate) struct Stream {
    secrets: Secrets,
    /// Text taken and not yet given back: a line not yet ended, or lines that may begin a
    /// value that spans lines.
    pending: String,
}

impl Stream {
    /// A stream masking `secrets`.
    pub(crate) fn new(secrets: Secrets) -> Stream {
        Stream {
            secrets,
            pending: String::new(),
        }
    }

    /// Takes `piece`; gives back the lines now known, masked (without their newlines).
    pub(crate) fn push(&mut self, piece: &str) -> Vec<String> {
        self.pending.push_str(piece);
        let found = self.secrets.occurrences(&self.pending);
        // Whole lines only, and none of a value that may still go on, nor of one that a line
        // end would cut in two.
        let mut cut = self.secrets.unfinished(&self.pending);
        let end = loop {
            let end = self.pending[..cut].rfind('\n').map_or(0, |i| i + 1);
            match found.iter().find(|r| r.start < end && end < r.end) {
                Some(across) => cut = across.start,
                None => break end,
            }
        };
        if end == 0 {
            return Vec::new();
        }
        let ready: String = self.pending.drain(..end).collect();
        lines(&self.secrets.mask(&ready))
    }

    /// Gives back all that is left, masked: the stream ended, or a step did.
    pub(crate) fn finish(&mut self) -> Vec<String> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let rest = std::mem::take(&mut self.pending);
        lines(&self.secrets.mask(&rest))
    }
}

/// The lines of `text`, without their newlines (a last empty line is none).
fn lines(text: &str) -> Vec<String> {
    text.strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .map(str::to_string)
        .collect()
}

/// `value` with every byte but RFC 3986's unreserved characters percent-encoded, as a query
/// string or a URL's user info carries it.
fn url_encoded(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// shipit's own placeholders: [`MASK`], and a dry run's `[secret from …]`.
static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\[REDACTED\]|\[secret from [^\]\n]*\]").expect("the placeholder pattern is valid")
});

/// Where shipit's own placeholders are in `text`.
fn placeholders(text: &str) -> Vec<Range<usize>> {
    PLACEHOLDER.find_iter(text).map(|m| m.range()).collect()
}

/// `(pattern, replacement)`: each keeps the part that says *what* the credential is.
static RULES: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        // The password of a URL's user info: scheme://user:PASSWORD@host.
        (
            r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@",
            "${1}[REDACTED]@",
        ),
        // HTTP authorization: Bearer TOKEN, Basic CREDENTIALS, `Authorization: token TOKEN`.
        (
            r"(?i)(\bbearer\s+|\bbasic\s+|authorization:\s*token\s+)[A-Za-z0-9._~+/=-]{8,}",
            "${1}[REDACTED]",
        ),
    ]
    .into_iter()
    .map(|(pattern, replacement)| {
        (
            Regex::new(pattern).expect("the redaction patterns are valid"),
            replacement,
        )
    })
    .collect()
});

/// NAME=VALUE and --name VALUE where the name says it holds a credential: the name, then the
/// value (see [`name_value`]).
static NAME_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    let key = r"[A-Za-z0-9_.-]*(?i:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential)[A-Za-z0-9_.-]*";
    Regex::new(&format!(
        r#"(\b{key}=|--{key}[= ])("[^"]*"|'[^']*'|[^\s"'&;|]+)"#
    ))
    .expect("the NAME=VALUE pattern is valid")
});

/// A service URL (`redis://`, `postgres://`, …) once web URLs are left out: its credential
/// can only be its user info's password, which the URL rule masks; the rest (host, port,
/// database) says where the app connects. A web URL's path or query may be the credential
/// (a webhook), so it is masked whole.
static SERVICE_URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z][A-Za-z0-9+.-]*://").expect("the service URL pattern is valid")
});

/// What the NAME=VALUE rule makes of `caps`, found in `text`: kept when the value is one of
/// shipit's placeholders or a service URL, else the name and [`MASK`].
fn name_value(text: &str, caps: &Captures<'_>) -> String {
    let value = caps.get(2).expect("the rule has a value");
    let placeholder = PLACEHOLDER
        .find(&text[value.start()..])
        .is_some_and(|m| m.start() == 0);
    let service = SERVICE_URL.is_match(value.as_str())
        && !value.as_str().to_ascii_lowercase().starts_with("http");
    if placeholder || service {
        caps[0].to_string()
    } else {
        format!("{}{MASK}", &caps[1])
    }
}

/// `text` with every credential-looking part replaced by [`MASK`].
pub(crate) fn credentials(text: &str) -> Cow<'_, str> {
    let mut text = Cow::Borrowed(text);
    for (pattern, replacement) in RULES.iter() {
        if let Cow::Owned(replaced) = pattern.replace_all(&text, *replacement) {
            text = Cow::Owned(replaced);
        }
    }
    if let Cow::Owned(replaced) =
        NAME_VALUE.replace_all(&text, |caps: &Captures<'_>| name_value(&text, caps))
    {
        text = Cow::Owned(replaced);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_masked_and_what_they_are_is_kept() {
        for (text, masked) in [
            (
                "curl -H 'Authorization: Bearer eyJhbGciOi.J9x_y' https://ci/ping",
                "curl -H 'Authorization: Bearer [REDACTED]' https://ci/ping",
            ),
            (
                "psql postgres://app:hunter2@db:5432/app",
                "psql postgres://app:[REDACTED]@db:5432/app",
            ),
            (
                "API_TOKEN=abc123 ./notify && DB_PASSWORD='x y' ./x",
                "API_TOKEN=[REDACTED] ./notify && DB_PASSWORD=[REDACTED] ./x",
            ),
            (
                "./tool --password hunter2 --api-key=k3y --verbose",
                "./tool --password [REDACTED] --api-key=[REDACTED] --verbose",
            ),
            (
                "https://x/?token=abc&page=2",
                "https://x/?token=[REDACTED]&page=2",
            ),
            (
                "curl -H \"Authorization: token ghp_0123456789\" x",
                "curl -H \"Authorization: token [REDACTED]\" x",
            ),
            (
                "git clone https://github.com/a/b",
                "git clone https://github.com/a/b",
            ),
            (
                "SLACK_TOKEN=https://hooks.slack.com/services/T0/B0/XYZ",
                "SLACK_TOKEN=[REDACTED]",
            ),
            (
                "REDIS_PASSWORD_URL=redis://:hunter2@cache:6379/0",
                "REDIS_PASSWORD_URL=redis://:[REDACTED]@cache:6379/0",
            ),
        ] {
            assert_eq!(credentials(text), masked, "{text}");
        }
    }

    #[test]
    fn ordinary_messages_are_left_alone() {
        for text in [
            "secrets.DB_PASSWORD: environment variable DB_PASSWORD is not set",
            "before_migrate[0] (./manage.py check)",
            "ssh://deploy@web1:22",
            "the token of this lock is held by alice",
            "a token identifies the deploy that holds the lock",
            "SECRET_KEY is read from the env file",
            // A password-less broker URL, as Celery prints its settings.
            "CELERY_BROKER_TOKEN_URL=redis://redis:6379/0",
            "- ** ---------- .> transport:   redis://127.0.0.1:6379/0",
        ] {
            assert_eq!(credentials(text), text);
        }
    }

    #[test]
    fn shipits_own_placeholders_are_never_masked_again() {
        let mut secrets = Secrets::default();
        secrets.add("REDACTED");
        secrets.add("from file");
        for text in [
            "DJANGO_SECRET_KEY=[secret from file /home/me/.secrets/key]",
            "API_KEY=[secret from command `pass show shipit/api`]",
            "DB_PASSWORD=[REDACTED]",
            "key=[REDACTED] and --token [REDACTED]",
        ] {
            assert_eq!(secrets.mask(text), text);
        }
    }

    const PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEIPNk8Yx1dH0q2a3b4c5d6e7f8g9h0i1j2k3l4m5n6o7p\n\
        q8r9s0t1u2v3w4x5y6z7A8B9C0D1E2F3G4H5I6J7K8L9M0N1O2P3Q4R5S6T7U8V9\n\
        -----END PRIVATE KEY-----";

    fn secrets(values: &[&str]) -> Secrets {
        let mut secrets = Secrets::default();
        for v in values {
            secrets.add(v);
        }
        secrets
    }

    /// Everything `stream` gives back for `pieces`, then at its end.
    fn streamed(secrets: &Secrets, pieces: &[&str]) -> Vec<String> {
        let mut stream = Stream::new(secrets.clone());
        let mut shown: Vec<String> = pieces.iter().flat_map(|p| stream.push(p)).collect();
        shown.extend(stream.finish());
        shown
    }

    #[test]
    fn a_secret_split_between_two_reads_is_masked() {
        let s = secrets(&["hunter22"]);
        assert_eq!(
            streamed(&s, &["said hun", "ter22 twice\n", "ok\n"]),
            ["said [REDACTED] twice", "ok"]
        );
    }

    #[test]
    fn a_pem_block_is_masked_whole_across_lines() {
        let s = secrets(&[PEM]);
        let mut pieces = vec!["key:\n".to_string()];
        pieces.extend(PEM.lines().map(|l| format!("{l}\n")));
        pieces.push("done\n".into());
        let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
        assert_eq!(streamed(&s, &pieces), ["key:", MASK, "done"]);
        // And in one piece of text, as an error message holds it.
        assert_eq!(s.mask(&format!("key: {PEM}!")), format!("key: {MASK}!"));
    }

    #[test]
    fn each_line_of_a_multi_line_secret_is_masked_alone() {
        // `pass show` output: the password, then a trailing line.
        let pass = "correct-horse\nlogin: alice@example.com";
        let s = secrets(&[PEM, pass]);
        for line in PEM.lines().chain(pass.lines()) {
            let shown = streamed(&s, &[&format!("> {line} <\n")]);
            assert_eq!(shown, [format!("> {MASK} <")], "{line}");
        }
        // The first line alone, then something else: held back only until it is known.
        assert_eq!(streamed(&s, &["correct-horse\n", "next\n"]), [MASK, "next"]);
    }

    #[test]
    fn lines_that_merely_begin_like_a_secret_are_given_back() {
        let s = secrets(&["ab\ncd-long-enough"]);
        let mut stream = Stream::new(s);
        // "ab" could begin the secret: held until the next line says it does not.
        assert!(stream.push("ab\n").is_empty());
        assert_eq!(stream.push("zz\n"), ["ab", "zz"]);
    }

    #[test]
    fn base64_and_url_encoded_shapes_are_masked() {
        let value = "p@ss word/with+signs\nand a second line";
        let s = secrets(&[value, PEM]);
        let encoded = crate::plan::base64(value.as_bytes());
        assert_eq!(s.mask(&format!("env={encoded};")), format!("env={MASK};"));
        let url = "p%40ss%20word%2Fwith%2Bsigns%0Aand%20a%20second%20line";
        assert_eq!(s.mask(&format!("q={url}&x")), format!("q={MASK}&x"));
        // `base64` wraps at 76 columns: the wrapped lines are masked, together and alone.
        let pem64 = crate::plan::base64(PEM.as_bytes());
        let wrapped: Vec<String> = pem64
            .as_bytes()
            .chunks(76)
            .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        let pieces: Vec<&str> = wrapped.iter().map(String::as_str).collect();
        assert_eq!(streamed(&s, &pieces), [MASK]);
        assert_eq!(streamed(&s, &[pieces[1]]), [MASK]);
    }

    #[test]
    fn short_values_are_too_short() {
        assert!(too_short("ab"));
        assert!(too_short(" x \n"));
        assert!(!too_short("abc"));
        // Blank and short lines of a long value are not masked alone.
        let s = secrets(&["long-enough\n\nab"]);
        assert_eq!(s.mask("ab cd\n\n"), "ab cd\n\n");
    }
}
