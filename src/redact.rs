//! Masks credential-looking text wherever shipit shows or records it.
//!
//! Configured secrets are masked by value (see `Printer::redact`), but a hook command or an
//! `env` value can carry a credential shipit was never told about: `curl -H "Authorization:
//! Bearer …"`, `https://user:password@host`, `API_TOKEN=… ./notify`. Those shapes are masked
//! here, in one place, so step labels, errors, `--json` and logs all say `[REDACTED]` alike.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// What replaces a credential.
pub(crate) const MASK: &str = "[REDACTED]";

/// `(pattern, replacement)`: each keeps the part that says *what* the credential is.
static RULES: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    let key = r"[A-Za-z0-9_.-]*(?i:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential)[A-Za-z0-9_.-]*";
    [
        // The password of a URL's user info: scheme://user:PASSWORD@host.
        (
            r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@".to_string(),
            "${1}[REDACTED]@",
        ),
        // HTTP authorization: Bearer TOKEN, Basic CREDENTIALS, `Authorization: token TOKEN`.
        (
            r"(?i)(\bbearer\s+|\bbasic\s+|authorization:\s*token\s+)[A-Za-z0-9._~+/=-]{8,}"
                .to_string(),
            "${1}[REDACTED]",
        ),
        // NAME=VALUE and --name VALUE where the name says it holds a credential.
        (
            format!(r#"(\b{key}=|--{key}[= ])("[^"]*"|'[^']*'|[^\s"'&;|]+)"#),
            "${1}[REDACTED]",
        ),
    ]
    .into_iter()
    .map(|(pattern, replacement)| {
        (
            Regex::new(&pattern).expect("the redaction patterns are valid"),
            replacement,
        )
    })
    .collect()
});

/// `text` with every credential-looking part replaced by [`MASK`].
pub(crate) fn credentials(text: &str) -> Cow<'_, str> {
    let mut text = Cow::Borrowed(text);
    for (pattern, replacement) in RULES.iter() {
        if let Cow::Owned(replaced) = pattern.replace_all(&text, *replacement) {
            text = Cow::Owned(replaced);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::credentials;

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
        ] {
            assert_eq!(credentials(text), text);
        }
    }
}
