//! How scripts and archives reach a host: over SSH, or on this machine.
//!
//! A transport does three things and nothing more: run a shell script (streaming its output
//! lines), upload a file, and count what it used. Everything a deploy does on a host is a script
//! from [`crate::plan`], so the same plan runs over SSH or locally.

#[cfg(test)]
pub(crate) mod fake;
pub mod local;
pub mod ssh;

use std::path::Path;

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

    /// Runs `script` with `sh`, calling `on_line` for each line it prints; returns its exit status.
    fn run(&mut self, script: &str, on_line: &mut dyn FnMut(&str)) -> Result<i32>;

    /// Streams the local file `local` to the path `remote` on the host, calling `progress` with
    /// the bytes sent so far.
    fn upload(&mut self, local: &Path, remote: &str, progress: &mut dyn FnMut(u64)) -> Result<()>;

    /// What this transport has used so far.
    fn usage(&self) -> Usage;
}

/// Splits a byte stream into lines for [`Transport::run`], tolerating invalid UTF-8.
pub(crate) fn for_each_line(
    reader: impl std::io::Read,
    on_line: &mut dyn FnMut(&str),
) -> std::io::Result<()> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        on_line(text.trim_end_matches(['\n', '\r']));
    }
}
