//! Everything shipit prints goes through a [`Printer`].
//!
//! Results go to stdout (one JSON object with `--json`); progress, step timings and warnings go
//! to stderr, so `shipit build --json | jq` works and scripts can ignore the chatter. Colour and
//! progress bars appear only on a terminal.

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

use std::io::{IsTerminal, Write};

use crate::cli::ColorChoice;
use crate::error::Error;

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
    /// Values never to print (resolved secrets): replaced by `[REDACTED]` in everything shown,
    /// as is whatever looks like a credential (see `redact`).
    secrets: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
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
            secrets: Default::default(),
        }
    }

    /// From now on, `values` are shown as `[REDACTED]` wherever they would appear: remote
    /// output, error tails, results and JSON.
    pub fn redact(&self, values: impl IntoIterator<Item = String>) {
        let mut secrets = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        // Longest first, so a secret containing another is replaced whole.
        secrets.extend(values.into_iter().filter(|v| v.len() >= 3));
        secrets.sort_by_key(|v| std::cmp::Reverse(v.len()));
        secrets.dedup();
    }

    fn clean(&self, text: &str) -> String {
        let secrets = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        let mut text = text.to_string();
        for secret in secrets.iter() {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), crate::redact::MASK);
            }
        }
        crate::redact::credentials(&text).into_owned()
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
        if self.verbosity >= Verbosity::Normal {
            err!("{}", self.clean(message.as_ref()));
        }
    }

    /// Detail shown only with `--verbose`.
    pub fn detail(&self, message: impl AsRef<str>) {
        if self.verbosity >= Verbosity::Verbose {
            err!("{}", self.clean(message.as_ref()));
        }
    }

    /// A remote step finished.
    pub fn step_done(&self, host: &str, step: &str, elapsed: std::time::Duration) {
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
        err!(
            "{} {}",
            self.paint("33;1", "warning:"),
            self.clean(message.as_ref())
        );
    }

    /// The human result of a command, on stdout (suppressed with `--json`).
    pub fn result(&self, message: impl AsRef<str>) {
        if !self.json {
            out!("{}", self.clean(message.as_ref()));
        }
    }

    /// The JSON result of a command, on stdout (only with `--json`).
    pub fn json_result(&self, value: &serde_json::Value) {
        if self.json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", self.clean(&value.to_string()));
        }
    }

    /// Prints `error` in the `error: … / hint: …` form on stderr.
    pub fn error(&self, error: &Error) {
        err!(
            "{} {}",
            self.paint("31;1", "error:"),
            self.clean(&error.to_string())
        );
        if let Some(hint) = error.hint() {
            err!("{} {}", self.paint("36;1", "hint:"), self.clean(&hint));
        }
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
    use super::human_bytes;

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }
}
