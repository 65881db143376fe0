//! Everything shipit prints goes through a [`Printer`].
//!
//! Results go to stdout (one JSON object with `--json`); progress, step timings and warnings go
//! to stderr, so `shipit build --json | jq` works and scripts can ignore the chatter. Colour and
//! progress bars appear only on a terminal.
//!
//! A deploy or rollback also keeps its *run log* ([`Printer::keep_log`]): everything it prints
//! and everything `-v` would have shown, whatever the verbosity, in the project's
//! `.shipit/logs/` (the newest [`LOGS_KEEP`]), secrets redacted as everywhere else. An error
//! names that file, so the output of a failed deploy can be read after the fact.
//!
//! What a host prints is shown as text, never obeyed: every control character in it (escape
//! sequences, carriage returns, …) is neutralised by [`printable`] on its way out, whether to
//! the terminal, `--json` or the run log. Only `shipit console` hands a host the terminal.

// A closed stdout or stderr (`shipit deploy | head -3`) must never panic mid-run: a panic would
// skip giving the locks back. Writes that fail are dropped.
macro_rules! err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::cli::ColorChoice;
use crate::error::Error;
use crate::redact::{Secrets, Stream};

/// How much to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Errors and results only.
    Quiet,
    /// Steps and timings.
    Normal,
    /// Also remote output as it happens.
    Verbose,
}

/// Prints results, progress and errors.
#[derive(Debug, Clone)]
pub struct Printer {
    /// How much to print.
    pub verbosity: Verbosity,
    /// Whether results are JSON.
    pub json: bool,
    color: bool,
    terminal: bool,
    /// Whether confirmations are answered yes without asking (`--yes`).
    assume_yes: bool,
    /// Values never to print (resolved secrets): replaced by `[REDACTED]` in everything shown.
    secrets: Arc<Mutex<Secrets>>,
    /// The run log, once [`Printer::keep_log`] opened one.
    log: Arc<Mutex<Option<RunLog>>>,
}

/// Run logs kept in `.shipit/logs/` per project: the newest this many.
pub(crate) const LOGS_KEEP: usize = 10;

/// An open run log.
#[derive(Debug)]
struct RunLog {
    path: PathBuf,
    file: std::fs::File,
}

impl Printer {
    /// A printer for the given flags, looking at whether stderr is a terminal.
    pub fn new(verbosity: Verbosity, json: bool, color: ColorChoice) -> Printer {
        let terminal = std::io::stderr().is_terminal();
        let color = match color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && std::env::var_os("NO_COLOR").is_none(),
        };
        Printer {
            verbosity,
            json,
            color,
            terminal,
            assume_yes: false,
            secrets: Default::default(),
            log: Default::default(),
        }
    }

    /// From now on, writes every line this printer handles (also those only `-v` shows) to a
    /// new file `DIR/<UTC time>-<name>.log` (mode 0600), headed by `heading`, and removes all
    /// but the newest [`LOGS_KEEP`] logs of `dir`. A log that cannot be written is a warning,
    /// never a failure of the run.
    pub fn keep_log(&self, dir: &Path, name: &str, heading: &str) {
        let open = || {
            std::fs::create_dir_all(dir)?;
            // Two runs in the same microsecond: the second takes the next one.
            loop {
                let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
                let path = dir.join(format!("{stamp}-{name}.log"));
                use std::os::unix::fs::OpenOptionsExt;
                match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                {
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    opened => return opened.map(|file| (path, file)),
                }
            }
        };
        let opened = open();
        match opened {
            Ok((path, file)) => {
                *self.log.lock().unwrap_or_else(|e| e.into_inner()) = Some(RunLog { path, file });
                self.log_line(heading);
                prune_logs(dir);
            }
            Err(e) => self.warn(format!(
                "cannot keep a log of this run in {}: {e}",
                dir.display()
            )),
        }
    }

    /// Where this run's log is, when it keeps one.
    pub fn log_path(&self) -> Option<PathBuf> {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.as_ref().map(|l| l.path.clone())
    }

    /// Appends `text` (redacted, each line stamped with the UTC time) to the run log, if any.
    fn log_line(&self, text: &str) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(log) = log.as_mut() {
            let stamp = chrono::Utc::now().format("%H:%M:%S%.3f");
            let text = self.clean(text);
            for line in text.lines() {
                let _ = writeln!(log.file, "{stamp} {line}");
            }
        }
    }

    /// This printer without progress lines (errors, warnings and results only), sharing what
    /// it redacts.
    pub fn quiet(&self) -> Printer {
        Printer {
            verbosity: Verbosity::Quiet,
            ..self.clone()
        }
    }

    /// Answers every confirmation yes (`--yes`).
    pub fn assume_yes(mut self, yes: bool) -> Printer {
        self.assume_yes = yes;
        self
    }

    /// Asks `question` before something that cannot be undone. With `--yes` the answer is yes;
    /// on a terminal the person answers (anything but y/yes is no: refused, nothing changed);
    /// without a terminal to ask on, it is a usage error naming `--yes`.
    pub fn confirm(&self, question: &str) -> Result<(), Error> {
        if self.assume_yes {
            return Ok(());
        }
        if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
            return Err(Error::Usage {
                message: format!(
                    "{question}: this needs a confirmation, and stdin is not a terminal to ask on"
                ),
                hint: Some("pass --yes (-y) to confirm".into()),
            });
        }
        {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "{} [y/N] ", self.clean(question));
            let _ = err.flush();
        }
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        match answer.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" => Ok(()),
            _ => Err(Error::Refused {
                message: "not confirmed; nothing was changed".into(),
                hint: "answer y to go on, or pass --yes".into(),
            }),
        }
    }

    /// From now on, `values` (in each of their shapes, see [`Secrets::add`]) are shown as
    /// `[REDACTED]` wherever they would appear: remote output, error tails, results and JSON.
    pub fn redact(&self, values: impl IntoIterator<Item = String>) {
        let mut secrets = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        for value in values {
            secrets.add(&value);
        }
    }

    /// A [`Stream`] masking what this printer masks now: for a host's output, which comes a
    /// line at a time while a secret may span lines.
    pub(crate) fn stream(&self) -> Stream {
        Stream::new(
            self.secrets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }

    /// `text` as it may be shown: secrets and credentials masked, control characters
    /// neutralised.
    /// `text` with every value this printer redacts masked, as it would be shown (for what
    /// leaves this machine otherwise, e.g. a notification).
    pub(crate) fn mask(&self, text: &str) -> String {
        self.secrets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .mask(text)
    }

    fn clean(&self, text: &str) -> String {
        printable(&self.mask(text), true).into_owned()
    }

    /// `value` with every string in it masked (before it is encoded, so that a value holding
    /// quotes or newlines is found as it is).
    fn clean_json(&self, value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(text) => Value::String(self.mask(text)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.clean_json(v)).collect()),
            Value::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), self.clean_json(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Whether live progress (bars, spinners) should be drawn.
    pub fn shows_progress(&self) -> bool {
        self.terminal && self.verbosity == Verbosity::Normal
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// A progress line on stderr (hidden when quiet).
    pub fn info(&self, message: impl AsRef<str>) {
        self.log_line(message.as_ref());
        if self.verbosity >= Verbosity::Normal {
            err!("{}", self.clean(message.as_ref()));
        }
    }

    /// Detail shown only with `--verbose`.
    pub fn detail(&self, message: impl AsRef<str>) {
        self.log_line(message.as_ref());
        if self.verbosity >= Verbosity::Verbose {
            err!("{}", self.clean(message.as_ref()));
        }
    }

    /// A remote step finished.
    pub fn step_done(&self, host: &str, step: &str, elapsed: std::time::Duration) {
        self.log_line(&format!("{host}  ✓ {step:<24} {:>7}", seconds(elapsed)));
        if self.verbosity >= Verbosity::Normal {
            err!(
                "{host}  {} {:<24} {:>7}",
                self.paint("32", "✓"),
                self.clean(step),
                seconds(elapsed)
            );
        }
    }

    /// A remote step failed.
    pub fn step_failed(&self, host: &str, step: &str, elapsed: std::time::Duration) {
        self.log_line(&format!("{host}  ✗ {step:<24} {:>7}", seconds(elapsed)));
        err!(
            "{host}  {} {:<24} {:>7}",
            self.paint("31;1", "✗"),
            self.clean(step),
            seconds(elapsed)
        );
    }

    /// A byte progress bar (bytes, rate, ETA) on a terminal; hidden otherwise.
    pub fn progress_bar(&self, total: u64, label: &str) -> indicatif::ProgressBar {
        if !self.shows_progress() {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        bar
    }

    /// A warning on stderr (shown even when quiet).
    pub fn warn(&self, message: impl AsRef<str>) {
        self.log_line(&format!("warning: {}", message.as_ref()));
        err!(
            "{} {}",
            self.paint("33;1", "warning:"),
            self.clean(message.as_ref())
        );
    }

    /// The human result of a command, on stdout (suppressed with `--json`).
    pub fn result(&self, message: impl AsRef<str>) {
        self.log_line(message.as_ref());
        if !self.json {
            out!("{}", self.clean(message.as_ref()));
        }
    }

    /// The JSON result of a command, on stdout (only with `--json`).
    /// Each object carries `shipit` ([`crate::provenance::json`]): which binary produced it.
    pub fn json_result(&self, value: &serde_json::Value) {
        let mut value = self.clean_json(value);
        if let Some(fields) = value.as_object_mut() {
            fields.insert("shipit".into(), crate::provenance::json());
        }
        let text = json_text(&value);
        self.log_line(&text);
        if self.json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
        }
    }

    /// Prints `error` in the `error: … / hint: …` form on stderr (a `hint:` line per piece of
    /// advice), and where the run log is.
    pub fn error(&self, error: &Error) {
        let hints = error.hints();
        self.log_line(&format!("error: {error}"));
        for hint in &hints {
            self.log_line(&format!("hint: {hint}"));
        }
        err!(
            "{} {}",
            self.paint("31;1", "error:"),
            self.clean(&error.to_string())
        );
        for hint in &hints {
            err!("{} {}", self.paint("36;1", "hint:"), self.clean(hint));
        }
        if let Some(path) = self.log_path() {
            err!(
                "{} the full output of this run is in {}",
                self.paint("36;1", "log:"),
                path.display()
            );
        }
    }
}

/// `text` safe to show on a terminal: every control character (C0, DEL and C1: escape
/// sequences, carriage returns, bells, …) becomes a space, but newlines and tabs stay when
/// `lines` (else they are spaces too, for one-line records such as the deploy log).
pub(crate) fn printable(text: &str, lines: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && !(lines && (c == '\n' || c == '\t'));
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| if unsafe_char(c) { ' ' } else { c })
            .collect(),
    )
}

/// `value` as one line of JSON whose text holds no control character: serde_json escapes C0
/// ones, and DEL and C1 are escaped here as well (`\u009b`), the same string to a JSON reader.
fn json_text(value: &serde_json::Value) -> String {
    let text = value.to_string();
    if !text.chars().any(char::is_control) {
        return text;
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\u{:04x}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Removes all but the newest [`LOGS_KEEP`] `*.log` files of `dir` (their names sort by time).
/// Best effort: a file that cannot be removed stays.
fn prune_logs(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut logs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    let excess = logs.len().saturating_sub(LOGS_KEEP);
    for old in &logs[..excess] {
        let _ = std::fs::remove_file(old);
    }
}

/// `1.234s` style durations for step timings.
pub fn seconds(elapsed: std::time::Duration) -> String {
    format!("{:.2}s", elapsed.as_secs_f64())
}

/// `1234567` → `1.2 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_logs_keep_everything_redacted_and_only_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        for i in 0..LOGS_KEEP + 2 {
            let printer = Printer::new(Verbosity::Quiet, false, ColorChoice::Never);
            printer.keep_log(&logs, "deploy-test", &format!("run {i}"));
            printer.redact(["hunter22".to_string()]);
            printer.detail("remote said hunter22 quietly");
        }
        let mut names: Vec<String> = std::fs::read_dir(&logs)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), LOGS_KEEP, "{names:?}");
        let newest = std::fs::read_to_string(logs.join(names.last().unwrap())).unwrap();
        assert!(
            newest.contains(&format!("run {}", LOGS_KEEP + 1)),
            "{newest}"
        );
        assert!(
            newest.contains("remote said [REDACTED] quietly"),
            "{newest}"
        );
        assert!(!newest.contains("hunter22"), "{newest}");
        let oldest = std::fs::read_to_string(logs.join(&names[0])).unwrap();
        assert!(oldest.contains("run 2"), "{oldest}");
    }

    #[test]
    fn control_characters_from_a_host_are_neutralised() {
        let host = "\x1b[31mred\x1b[0m\tcol\rover\x07\u{9b}2J\u{7f}\nnext";
        assert_eq!(printable(host, true), " [31mred [0m\tcol over  2J \nnext");
        assert_eq!(printable("a\tb\nc", false), "a b c");
        assert!(matches!(printable("plain ✓", true), Cow::Borrowed(_)));
        let json = json_text(&serde_json::json!({ "out": host }));
        assert!(!json.chars().any(char::is_control), "{json}");
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["out"], host);
    }

    #[test]
    fn a_multi_line_secret_is_masked_in_the_log_and_in_json() {
        let dir = tempfile::tempdir().unwrap();
        let printer = Printer::new(Verbosity::Quiet, true, ColorChoice::Never);
        printer.keep_log(dir.path(), "t", "run");
        let secret = "first-line-of-it\nsecond \"quoted\" line";
        printer.redact([secret.to_string()]);
        printer.detail(format!("tail:\n{secret}\n\x1b]0;title\x07"));
        printer.json_result(&serde_json::json!({ "output": [secret, "ok"] }));
        let name = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let log = std::fs::read_to_string(name.path()).unwrap();
        for leak in ["first-line", "quoted", "\x1b", "\x07"] {
            assert!(!log.contains(leak), "{leak:?} in {log}");
        }
        assert!(
            log.contains(r#"{"output":["[REDACTED]","ok"],"shipit":{"#),
            "{log}"
        );
    }

    #[test]
    fn every_json_result_names_the_shipit_that_made_it() {
        let dir = tempfile::tempdir().unwrap();
        let printer = Printer::new(Verbosity::Quiet, true, ColorChoice::Never);
        printer.keep_log(dir.path(), "t", "run");
        printer.json_result(&serde_json::json!({ "release": "20261122010320" }));
        let name = std::fs::read_dir(dir.path()).unwrap().next().unwrap();
        let log = std::fs::read_to_string(name.unwrap().path()).unwrap();
        let line = log.lines().last().unwrap();
        let value: serde_json::Value = serde_json::from_str(line.split_once(' ').unwrap().1)
            .unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(value["release"], "20261122010320");
        assert_eq!(value["shipit"], crate::provenance::json(), "{line}");
        assert_eq!(value["shipit"]["version"], env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }
}
