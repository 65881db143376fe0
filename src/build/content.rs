//! What archived files hold: a scan for secrets that a file's name does not give away.
//!
//! The name rules of [`super::policy`] cannot know that cookiecutter-django's `.django` or a
//! `deploy/app.ini` holds a generated key. So every archived file is looked at as it streams into
//! the archive (no second read): a file whose first bytes, or any chunk, hold a NUL is taken for
//! binary and left alone, and so is a file over [`SCAN_LIMIT`]; a line is looked at up to
//! [`LINE_LIMIT`] bytes. Two things are secrets:
//!
//! - a private-key block: a `-----BEGIN … PRIVATE KEY-----` marker followed by key material
//!   (a base64 line, or `Proc-Type:`), so code that only compares against the marker passes;
//! - a `NAME=VALUE` line (`export NAME=VALUE` too) whose upper-case NAME has a part saying
//!   SECRET, PASSWORD, PASSWD, PASSPHRASE or TOKEN, or ending in KEY (but not PUBLIC or
//!   PUBLISHABLE keys), and whose value is a literal that is not a placeholder (see
//!   [`is_placeholder`]): the shape of env files (`.envs/.production/.django`), shell and ini.
//!   Python is code, not an env file: there constants such as `SESSION_KEY = "_auth_user_id"`
//!   are names, not secrets, so only Django's `SECRET_KEY` (or `*_SECRET_KEY`) set to a quoted
//!   string counts; `SECRET_KEY = os.environ["…"]` reads the environment and is fine.
//!
//! A finding names the file, the line and the NAME, never the value.

/// Files larger than this are not scanned: bundles and data files, not configuration.
pub(crate) const SCAN_LIMIT: u64 = 1 << 20;
/// Bytes of one line that are looked at; the rest of a longer line (minified code) is not.
const LINE_LIMIT: usize = 4096;

/// Something in a file that looks like a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    /// 1-based line.
    pub(crate) line: usize,
    /// What it is, without the value: `a private key`, or ``` `DJANGO_SECRET_KEY` set to a
    /// literal value ```.
    pub(crate) what: String,
}

/// Scans one file fed in chunks of any size.
pub(crate) struct Scanner {
    python: bool,
    /// The current line when it spans chunks (at most [`LINE_LIMIT`] bytes of it).
    partial: Vec<u8>,
    /// 1-based number of the current line.
    line: usize,
    /// The line of a private-key marker whose next line decides whether it starts a key.
    begin: Option<usize>,
    finding: Option<Finding>,
    /// Binary content seen: nothing more is looked at.
    binary: bool,
}

impl Scanner {
    /// A scanner for the file at archive path `path` (its extension says whether it is Python).
    pub(crate) fn new(path: &str) -> Scanner {
        Scanner {
            python: is_python(path),
            partial: Vec::new(),
            line: 1,
            begin: None,
            finding: None,
            binary: false,
        }
    }

    /// Looks at the next bytes of the file.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        if self.finding.is_some() || self.binary {
            return;
        }
        if memchr::memchr(0, bytes).is_some() {
            self.binary = true;
            return;
        }
        while let Some(end) = memchr::memchr(b'\n', bytes) {
            if self.partial.is_empty() {
                self.check(&bytes[..end]);
            } else {
                self.extend(&bytes[..end]);
                let line = std::mem::take(&mut self.partial);
                self.check(&line);
            }
            if self.finding.is_some() {
                return;
            }
            self.line += 1;
            bytes = &bytes[end + 1..];
        }
        self.extend(bytes);
    }

    /// The first finding, once the whole file was fed.
    pub(crate) fn finish(mut self) -> Option<Finding> {
        if self.finding.is_none() && !self.binary && !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.check(&line);
        }
        self.finding
    }

    fn extend(&mut self, bytes: &[u8]) {
        let room = LINE_LIMIT.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&bytes[..room.min(bytes.len())]);
    }

    fn check(&mut self, line: &[u8]) {
        let line = &line[..line.len().min(LINE_LIMIT)];
        let text = trim(line);
        if let Some(begin) = self.begin.take() {
            if is_key_material(text) {
                self.found(begin, "a private key".into());
                return;
            }
        }
        // Most lines start with something else: a keyword, an indent, a bracket, a comment.
        match text.first() {
            Some(b'A'..=b'Z' | b'_' | b'e') => {}
            _ if contains(text, b"-----BEGIN ") => {}
            _ => return,
        }
        if let Some(tail) = private_key_marker(text) {
            // A one-line string holding the whole block: `"-----BEGIN …-----\nMIIE…"`.
            if tail.starts_with(b"\\n") && is_key_material(&tail[2..]) {
                self.found(self.line, "a private key".into());
            } else {
                self.begin = Some(self.line);
            }
            return;
        }
        if let Some(name) = secret_assignment(text, self.python) {
            self.found(self.line, format!("`{name}` set to a literal value"));
        }
    }

    fn found(&mut self, line: usize, what: String) {
        self.finding = Some(Finding { line, what });
    }
}

/// Python sources, and templates of them (`settings.py-tpl`, `settings.py.j2`).
fn is_python(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    [".py", ".pyi", ".pyw"].iter().any(|ext| {
        name.ends_with(ext)
            || name.contains(&format!("{ext}-"))
            || name.contains(&format!("{ext}."))
    })
}

fn trim(line: &[u8]) -> &[u8] {
    let start = line
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(line.len());
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &line[start..end.max(start)]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// What follows a `-----BEGIN … PRIVATE KEY-----` marker on the line, when there is one.
fn private_key_marker(text: &[u8]) -> Option<&[u8]> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    const END: &[u8] = b"PRIVATE KEY-----";
    let start = memchr::memmem::find(text, BEGIN)?;
    let rest = &text[start + BEGIN.len()..];
    let end = memchr::memmem::find(rest, END)?;
    let kind = &rest[..end];
    if !kind.iter().all(|b| b.is_ascii_uppercase() || *b == b' ') {
        return None;
    }
    Some(&rest[end + END.len()..])
}

/// Whether a line (quotes and escapes around it allowed) is the start of a key's body.
fn is_key_material(text: &[u8]) -> bool {
    let body: Vec<u8> = text
        .iter()
        .copied()
        .skip_while(|b| matches!(b, b'"' | b'\'' | b' '))
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        .collect();
    body.len() >= 32 || text.starts_with(b"Proc-Type:")
}

/// The NAME of a `NAME=VALUE` line whose name says secret and whose value is a real literal.
fn secret_assignment(text: &[u8], python: bool) -> Option<String> {
    let text = std::str::from_utf8(text).ok()?;
    let text = text.strip_prefix("export ").unwrap_or(text).trim_start();
    let name_end = text
        .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .unwrap_or(text.len());
    let name = &text[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let value = text[name_end..].trim_start().strip_prefix('=')?;
    if value.starts_with('=') || !name_says_secret(name) {
        return None;
    }
    if python && !(name == "SECRET_KEY" || name.ends_with("_SECRET_KEY")) {
        return None;
    }
    let literal = literal(value.trim(), python)?;
    (!is_placeholder(literal)).then(|| name.to_string())
}

/// Whether one `_`-separated part of the upper-case `name` says it holds a secret.
fn name_says_secret(name: &str) -> bool {
    let parts = || name.split('_');
    if parts().any(|p| p == "PUBLIC" || p == "PUBLISHABLE") {
        return false;
    }
    parts().any(|p| {
        ["SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "TOKEN"]
            .iter()
            .any(|word| p.contains(word))
            || p.ends_with("KEY")
    })
}

/// The literal a value spells: a quoted string's content (one line, nothing but a comment
/// after it), or outside Python the unquoted text up to a ` #` comment. `None` for anything
/// else: an expression, a multi-line string.
fn literal(value: &str, python: bool) -> Option<&str> {
    match value.chars().next() {
        Some(quote @ ('"' | '\'')) => {
            let inner = &value[1..];
            if inner.starts_with(quote) {
                return None; // `""` (empty) or a `"""` block: nothing on this line
            }
            let end = inner.find(quote)?;
            let rest = inner[end + 1..].trim_start();
            (rest.is_empty() || rest.starts_with(['#', ',', ';'])).then(|| &inner[..end])
        }
        _ if python => None,
        // `[`, `(` or `{`: an expression of some language, not an env value.
        _ if value.contains(['[', '(', '{']) => None,
        _ => Some(value.split(" #").next().unwrap_or(value).trim()),
    }
}

/// Values that are not secrets, compared case-insensitively:
/// - shorter than 8 characters: too short to be a generated secret (a short hand-made password
///   is missed; it should not be in the repository either);
/// - a number, or one of the words `password`, `passphrase`, `testing`, `development`,
///   `production`, `required`;
/// - prose (it has a space);
/// - a reference: `$VAR`, `${VAR}`, `$(cmd)`, `{{ var }}`, `%(var)s`;
/// - a slot: `<your key>`, `xxx`, `***`, `...`;
/// - a marked placeholder: starting `your` or `change` (`changeme`), or holding `placeholder`,
///   `example`, `dummy`, `insecure` (Django's own `django-insecure-…` keys), `redacted`.
pub(crate) fn is_placeholder(value: &str) -> bool {
    let lower = value.trim().to_ascii_lowercase();
    const WORDS: &[&str] = &[
        "password",
        "passphrase",
        "testing",
        "development",
        "production",
        "required",
    ];
    const MARKS: &[&str] = &["placeholder", "example", "dummy", "insecure", "redacted"];
    lower.chars().count() < 8
        || WORDS.contains(&lower.as_str())
        || lower.chars().any(char::is_whitespace)
        || lower.starts_with('$')
        || ["${", "{{", "{%", "%("].iter().any(|r| lower.contains(r))
        || (lower.starts_with('<') && lower.ends_with('>'))
        || lower.chars().all(|c| "x*.-_#?".contains(c))
        || (lower.chars().any(|c| c.is_ascii_digit())
            && lower
                .chars()
                .all(|c| c.is_ascii_digit() || ".+-".contains(c)))
        || lower.starts_with("your")
        || lower.starts_with("change")
        || MARKS.iter().any(|m| lower.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first finding in `text`, fed as one chunk and again one byte at a time.
    fn scan(path: &str, text: &str) -> Option<Finding> {
        let mut whole = Scanner::new(path);
        whole.feed(text.as_bytes());
        let mut bytes = Scanner::new(path);
        for b in text.as_bytes() {
            bytes.feed(std::slice::from_ref(b));
        }
        let found = whole.finish();
        assert_eq!(found, bytes.finish(), "chunking changed the outcome");
        found
    }

    fn flagged(path: &str, text: &str) -> (usize, String) {
        let f = scan(path, text).unwrap_or_else(|| panic!("{path}: nothing found in {text:?}"));
        (f.line, f.what)
    }

    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\n\
        b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n\
        -----END OPENSSH PRIVATE KEY-----\n";

    #[test]
    fn cookiecutter_env_files_are_flagged_at_their_line_without_the_value() {
        let django = "# General\nUSE_DOCKER=yes\nIPYTHONDIR=/app/.ipython\n\
            DJANGO_SECRET_KEY=Zq8mK2vLx9pR4tN7wB1cY6hJ3fD5gS0aE8uI2oP4lK7jH9\n";
        let (line, what) = flagged(".envs/.production/.django", django);
        assert_eq!(
            (line, what.as_str()),
            (4, "`DJANGO_SECRET_KEY` set to a literal value")
        );
        assert!(!what.contains("Zq8m"));
        let postgres = "POSTGRES_HOST=postgres\nPOSTGRES_PORT=5432\nPOSTGRES_DB=app\n\
            POSTGRES_USER=aBcDeFgHiJ\nPOSTGRES_PASSWORD=\"s9Df8g7H6j5K4l3\"\n";
        assert_eq!(flagged("x/.postgres", postgres).0, 5);
        assert_eq!(
            flagged(
                "deploy.sh",
                "set -e\nexport GITHUB_TOKEN=ghp_abcdef123456\n"
            )
            .1,
            "`GITHUB_TOKEN` set to a literal value"
        );
        assert_eq!(flagged("app.ini", "API_KEY = 'k-9f8e7d6c' # prod\n").0, 1);
        assert_eq!(
            flagged(
                "hello/settings/production.py",
                "SECRET_KEY = \"Zq8mK2vLx9pR4tN7wB1c\"\n"
            )
            .0,
            1
        );
    }

    #[test]
    fn private_key_blocks_are_flagged_in_pem_files_and_strings() {
        assert_eq!(flagged("deploy/id", KEY), (1, "a private key".into()));
        assert_eq!(
            flagged(
                "conf/x.txt",
                &format!("intro\n\n  {}", KEY.replace('\n', "\n  "))
            )
            .0,
            3
        );
        let rsa = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n";
        assert_eq!(flagged("k.txt", rsa).0, 1);
        let python = "KEY = (\n    \"-----BEGIN PRIVATE KEY-----\\n\"\n    \"MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\\n\"\n)\n";
        assert_eq!(flagged("tests/keys.py", python).0, 2);
        let one_line = "PEM = \"-----BEGIN EC PRIVATE KEY-----\\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49\"\n";
        assert_eq!(flagged("k.py", one_line).0, 1);
    }

    #[test]
    fn code_that_reads_the_environment_or_names_the_marker_is_not_flagged() {
        for (path, text) in [
            ("hello/settings/deployment.py", "SECRET_KEY = os.environ[\"DJANGO_SECRET_KEY\"]\n"),
            ("s.py", "SECRET_KEY = env(\"DJANGO_SECRET_KEY\")\nPASSWORD_HASHERS = [\n"),
            ("s.py", "SECRET_KEY = None\nAUTH_PASSWORD_VALIDATORS = []\n"),
            ("s.py", "SECRET_KEY = \"django-insecure-1x!abc\"\n"),
            ("auth.py", "SESSION_KEY = \"_auth_user_id\"\nKEY_PREFIX = \"django.contrib.sessions\"\n"),
            ("auth.py", "INTERNAL_RESET_SESSION_TOKEN = \"_password_reset_token\"\n"),
            ("settings.py-tpl", "AUTH_PASSWORD_VALIDATORS = [\nSECRET_KEY = '{{ secret_key }}'\n"),
            ("c.env", "AUTH_PASSWORD_VALIDATORS = [\nTOKEN_CLASSES=(a, b)\n"),
            ("s.py", "SECRET_KEY = \"not needed\"\n"),
            ("s.py", "SECRET_KEY = (\n    \"abc\"\n)\n"),
            ("s.py", "SECRET_KEY = f\"{prefix}abc\"\n"),
            ("s.py", "TOKEN = \"\"\"\nabc\n\"\"\"\n"),
            ("s.py", "if SECRET_KEY == \"x9f8e7d6c\":\n"),
            ("pem.py", "if line.startswith(\"-----BEGIN RSA PRIVATE KEY-----\"):\n"),
            ("pem.py", "HEADER = \"-----BEGIN PRIVATE KEY-----\"\nFOOTER = \"-----END PRIVATE KEY-----\"\n"),
            (".env.x", "# DJANGO_SECRET_KEY=abcdefgh\n"),
            (".env.x", "api_key=abcdefgh\nSTRIPE_PUBLISHABLE_KEY=pk_live_abc\nVAPID_PUBLIC_KEY=BDd3\n"),
            (".env.x", "USE_DOCKER=yes\nDJANGO_ADMIN_URL=admin/\nKEYBOARD=de\n"),
            ("README.md", "DJANGO_SECRET_KEY=...\nDJANGO_SECRET_KEY=<your secret key>\n"),
            ("run.sh", "export DJANGO_SECRET_KEY=\"$(pass show app/key)\"\nPASSWORD=${PGPASSWORD}\n"),
            ("c.ini", "SECRET_KEY={{ secret_key }}\nDB_PASSWORD=%(password)s\n"),
            ("c.ini", "TOKEN_TTL=3600\nSECRET_KEY=changeme\nAPI_TOKEN=your-token-here\nAPI_KEY=xxxx\n"),
            ("img.png", "\u{0}PNG\nSECRET_KEY=abcdefgh1234\n"),
        ] {
            assert_eq!(scan(path, text), None, "{path}: {text:?}");
        }
    }

    #[test]
    fn only_the_start_of_a_long_line_is_looked_at() {
        let long = format!("{}\nSECRET_KEY=abcdefgh1234\n", "a".repeat(3 * LINE_LIMIT));
        assert_eq!(flagged("x.env.txt", &long).0, 2);
        let hidden = format!("A{}SECRET_KEY=abcdefgh1234\n", " ".repeat(LINE_LIMIT));
        assert_eq!(scan("x", &hidden), None);
    }

    #[test]
    fn placeholders() {
        for value in [
            "",
            "changeme",
            "CHANGE_ME",
            "${SECRET}",
            "$SECRET",
            "<secret>",
            "xxx",
            "***",
            "...",
            "your-secret-key",
            "django-insecure-abc",
            "42",
            "1.5",
            "None",
            "a placeholder",
            "hunter2",
            "development",
            "12345678901",
        ] {
            assert!(is_placeholder(value), "{value:?}");
        }
        for value in [
            "hunter22",
            "s3cr3t-9f8e",
            "Zq8mK2vLx9pR4tN7",
            "ghp_abcdef123456",
        ] {
            assert!(!is_placeholder(value), "{value:?}");
        }
    }
}
