//! How scripts and archives reach a host: over SSH, or on this machine.
//!
//! A transport does two things and nothing more: run a shell script (streaming its output
//! lines, and writing to its stdin what shipit answers, the archive included), and count what it
//! used. Everything a deploy does on a host is a script
//! from [`crate::plan`], so the same plan runs over SSH or locally.

#[cfg(test)]
pub(crate) mod fake;
pub mod local;
pub mod ssh;

use crate::error::Result;

/// What a transport used, for `--json` reports and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// Network connections opened.
    pub connections: u32,
    /// SSH channels (or local processes) opened.
    pub channels: u32,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
}

/// A way to run work on one host.
pub trait Transport: Send {
    /// How the host is named in messages, e.g. `deploy@app1:22` or `local`.
    fn name(&self) -> &str;

    /// Runs `script` with `sh`, calling `on_line` for each line it prints; returns its exit
    /// status. What `on_line` returns is written to the script's standard input (which stays
    /// open while it runs): how a script waiting at a gate is told to go on or to stop, and
    /// how a script that asks for the archive gets it (counted as uploaded).
    fn run(&mut self, script: &str, on_line: &mut OnLine<'_>) -> Result<i32>;

    /// What this transport has used so far.
    fn usage(&self) -> Usage;

    /// Runs `script` on a terminal (`shipit console`): the local terminal's keys go to it and
    /// its output comes back as it is, with the local terminal's size, until it exits; returns
    /// its exit status.
    fn interactive(&mut self, script: &str) -> Result<i32> {
        let _ = script;
        Err(crate::error::Error::usage(format!(
            "{} cannot run an interactive command",
            self.name()
        )))
    }
}

/// What a script is sent on its stdin in answer to a line it printed.
pub(crate) enum Reply {
    /// A line of text: the answer at a gate.
    Line(String),
    /// Bytes to stream, counted as uploaded (the archive a script asked for), then text sent
    /// right behind them and not counted: what the script will ask for next, when shipit knows
    /// it already (see `HostSession::run_continued`), or nothing.
    Payload(Box<dyn std::io::Read + Send>, String),
}

/// Called with each line a script prints; a returned reply is sent to the script's stdin.
pub(crate) type OnLine<'a> = dyn FnMut(&str) -> Option<Reply> + 'a;

/// Splits a byte stream into lines for [`Transport::run`], tolerating invalid UTF-8, and writes
/// the replies of `on_line` to `input`; how many payload bytes it wrote.
pub(crate) fn for_each_line(
    reader: impl std::io::Read,
    input: &mut dyn std::io::Write,
    on_line: &mut OnLine<'_>,
) -> std::io::Result<u64> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(reader);
    let mut line = Vec::new();
    let mut sent = 0;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(sent);
        }
        let text = String::from_utf8_lossy(&line);
        match on_line(text.trim_end_matches(['\n', '\r'])) {
            None => continue,
            Some(Reply::Line(answer)) => input.write_all(answer.as_bytes())?,
            Some(Reply::Payload(mut bytes, after)) => {
                sent += std::io::copy(&mut bytes, input).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("upload interrupted: {e}"))
                })?;
                input.write_all(after.as_bytes())?;
            }
        }
        input.flush()?;
    }
}
