//! `plan::quote` on arbitrary strings without NUL (a shell argument cannot hold one).
//!
//! Rather than spawn `sh` per input, the output is read back with POSIX shell word rules for the
//! only constructs quote may use (`'...'` and `\'`): outside quotes only characters a shell reads
//! literally may appear, and the word must decode to the original text. Structurally the output
//! is either the text itself (all safe characters) or starts and ends with `'` with every other
//! `'` part of a `'\''` sequence.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shipit::plan::quote;

fn safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_./=:@,+%".contains(c)
}

/// Decodes one shell word made of literal safe characters, `'...'` runs and `\X` escapes.
fn unquote(word: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => loop {
                match chars.next() {
                    Some('\'') => break,
                    Some(c) => out.push(c),
                    None => return Err("unterminated single quote".into()),
                }
            },
            '\\' => match chars.next() {
                // A backslash-newline outside quotes is a line continuation: it would vanish.
                Some('\n') | None => return Err("dangling backslash".into()),
                Some(c) => out.push(c),
            },
            c if safe(c) => out.push(c),
            c => return Err(format!("unquoted {c:?} would be interpreted by the shell")),
        }
    }
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if text.contains('\0') {
        return;
    }
    let quoted = quote(&text);
    assert_eq!(
        unquote(&quoted).as_deref(),
        Ok(&*text),
        "quote({text:?}) = {quoted:?} does not read back"
    );
    if quoted == *text {
        assert!(
            !text.is_empty() && text.chars().all(safe),
            "{text:?} left bare"
        );
    } else {
        assert!(quoted.len() >= 2 && quoted.starts_with('\'') && quoted.ends_with('\''));
        let inner = &quoted[1..quoted.len() - 1];
        assert!(
            !inner.replace(r"'\''", "").contains('\''),
            "stray quote in {quoted:?}"
        );
    }
});
