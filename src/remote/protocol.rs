//! The protocol of a running script: the marker lines it prints, what each means, and what
//! shipit answers when the script asks (a gate's `switch` or `stop`, the calls to continue with).
//!
//! A marker is `@@shipit:<nonce> <kind> …` on a line of its own; the nonce is random per run, so
//! a step's output cannot forge one. The shell side is `shipit_mark` and its callers in
//! `templates/remote/`.

/// Prefix of every marker line.
pub const MARKER: &str = "@@shipit:";

/// The name of a run's private background-job directory (`SHIPIT_JOB`, beside `SHIPIT_NONCE`
/// in every script): a hash of the nonce, so that the nonce is never in a name any user of the
/// host can list, worked out here rather than by two processes on the host for every script.
pub(crate) fn job_name(nonce: &str) -> String {
    use sha2::{Digest, Sha256};
    crate::build::archive::hex(&Sha256::digest(nonce.as_bytes()))[..16].to_string()
}

/// What one line of remote output means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A step started.
    Begin(String),
    /// A step finished successfully.
    End(String),
    /// A step failed with this status.
    Fail(String, i32),
    /// A fact reported by the script (`key`, `value`).
    Fact(String, String),
    /// The script waits at a gate for `switch` or `stop` on its stdin.
    Gate,
    /// The script asks for the archive of its [`crate::plan::step::Step::Upload`] on its stdin; `exact`: the
    /// host reads exactly the archive's bytes and nothing after them (GNU `head -c`), so what
    /// the script asks for next may follow right behind. `delta`: the sha256 of the live
    /// release's manifest, when the script asks for a delta against it (see [`crate::delta`]).
    Send { exact: bool, delta: Option<String> },
    /// The script asks for the calls to go on with (see [`crate::plan::script::Script::continued`]).
    Next,
    /// The script ran to its end.
    Done,
    /// Ordinary output of a step.
    Output(String),
}

/// Classifies one output line of a script run with `nonce`.
pub fn parse_line(nonce: &str, line: &str) -> Event {
    let Some(rest) = line
        .strip_prefix(MARKER)
        .and_then(|r| r.strip_prefix(nonce))
        .and_then(|r| r.strip_prefix(' '))
    else {
        return Event::Output(line.to_string());
    };
    let (kind, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    match kind {
        "begin" => Event::Begin(rest.to_string()),
        "end" => Event::End(rest.to_string()),
        "fail" => match rest.rsplit_once(' ') {
            Some((step, status)) => Event::Fail(step.to_string(), status.parse().unwrap_or(-1)),
            None => Event::Output(line.to_string()),
        },
        "fact" => {
            let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
            Event::Fact(key.to_string(), value.to_string())
        }
        "done" => Event::Done,
        "gate" => Event::Gate,
        "send" => {
            let words: Vec<&str> = rest.split(' ').collect();
            Event::Send {
                exact: words.first() == Some(&"exact"),
                delta: words
                    .iter()
                    .position(|w| *w == "delta")
                    .and_then(|at| words.get(at + 1))
                    .map(|sha| sha.to_string()),
            }
        }
        "next" => Event::Next,
        _ => Event::Output(line.to_string()),
    }
}

/// The events of one line of output: a step whose last line has no newline (a command's
/// `printf x`) leaves the next marker after its text, so the text comes first, then the marker.
pub fn parse_output(nonce: &str, line: &str) -> Vec<Event> {
    let marker = format!("{MARKER}{nonce} ");
    match line.find(&marker) {
        Some(at) if at > 0 => vec![
            Event::Output(line[..at].to_string()),
            parse_line(nonce, &line[at..]),
        ],
        _ => vec![parse_line(nonce, line)],
    }
}

/// What shipit answers an [`Event::Gate`]: `stop` to give the new release up, else `switch`.
pub(crate) fn gate_answer(stop: bool) -> String {
    format!("{}\n", if stop { "stop" } else { "switch" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_after_output_without_a_newline_is_still_a_marker() {
        assert_eq!(
            parse_output("n", "a b|@@shipit:n end run"),
            [Event::Output("a b|".into()), Event::End("run".into())]
        );
        assert_eq!(parse_output("n", "@@shipit:n done ok"), [Event::Done]);
        assert_eq!(
            parse_output("n", "x @@shipit:other end run"),
            [Event::Output("x @@shipit:other end run".into())]
        );
    }

    #[test]
    fn output_cannot_forge_markers_without_the_nonce() {
        assert_eq!(
            parse_line("secret", "@@shipit:guess done ok"),
            Event::Output("@@shipit:guess done ok".into())
        );
        assert_eq!(parse_line("secret", "@@shipit:secret done ok"), Event::Done);
    }

    #[test]
    fn a_send_says_whether_the_host_reads_exactly_and_which_delta_it_asks_for() {
        let send = |rest: &str| parse_line("n", &format!("@@shipit:n send{rest}"));
        let delta = Some("ab12".to_string());
        assert_eq!(
            send(""),
            Event::Send {
                exact: false,
                delta: None
            }
        );
        assert_eq!(
            send(" exact"),
            Event::Send {
                exact: true,
                delta: None
            }
        );
        assert_eq!(
            send(" delta ab12"),
            Event::Send {
                exact: false,
                delta: delta.clone()
            }
        );
        assert_eq!(
            send(" exact delta ab12"),
            Event::Send { exact: true, delta }
        );
    }

    #[test]
    fn a_gate_is_answered_with_the_words_the_library_reads() {
        // `step_gate` goes on only on `switch`; anything else, `stop` included, stops.
        let go_on = format!("\"$answer\" != {}", gate_answer(false).trim_end());
        assert!(crate::remote::library::LIBRARY.contains(&go_on), "{go_on}");
        assert_ne!(gate_answer(true), gate_answer(false));
    }
}
