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
/// the replies of `on_line` to `input`; how many payload bytes it wrote. Once the script takes
/// no more input (it failed and exited, say, with an archive still coming), the rest of what it
/// printed is still read to the end, as its last lines say why, and later replies are dropped.
pub(crate) fn for_each_line(
    reader: impl std::io::Read,
    input: &mut dyn std::io::Write,
    on_line: &mut OnLine<'_>,
) -> std::io::Result<u64> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(reader);
    let mut line = Vec::new();
    let mut sent = 0;
    let mut open = true;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(sent);
        }
        let text = String::from_utf8_lossy(&line);
        if let Some(reply) = on_line(text.trim_end_matches(['\n', '\r'])) {
            if open {
                open = send(reply, input, &mut sent)?;
            }
        }
    }
}

/// Writes `reply` to `input`, adding the payload bytes written to `sent`: whether `input` took
/// it all; an error only when the payload cannot be read.
fn send(reply: Reply, input: &mut dyn std::io::Write, sent: &mut u64) -> std::io::Result<bool> {
    use std::io::Read;
    let (mut payload, after): (Box<dyn Read + Send>, String) = match reply {
        Reply::Line(answer) => (Box::new(std::io::empty()), answer),
        Reply::Payload(bytes, after) => (bytes, after),
    };
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let n = match payload.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("upload interrupted: {e}"),
                ))
            }
        };
        if input.write_all(&buffer[..n]).is_err() {
            return Ok(false);
        }
        *sent += n as u64;
    }
    Ok(input
        .write_all(after.as_bytes())
        .and_then(|()| input.flush())
        .is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes `room` bytes, then fails as a closed pipe does.
    struct Closing {
        room: usize,
        took: Vec<u8>,
    }

    impl std::io::Write for Closing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.room == 0 {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.took.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_script_that_stops_reading_is_still_heard_to_the_end() {
        let output = "ask\nfailed: no space left\nask again\nlast words\n";
        let mut input = Closing {
            room: 3,
            took: Vec::new(),
        };
        let mut heard = Vec::new();
        let sent = for_each_line(output.as_bytes(), &mut input, &mut |line| {
            heard.push(line.to_string());
            line.starts_with("ask")
                .then(|| Reply::Payload(Box::new(&b"archive"[..]), "rest\n".into()))
        })
        .unwrap();
        assert_eq!(
            heard,
            ["ask", "failed: no space left", "ask again", "last words"]
        );
        assert_eq!(input.took, b"arc");
        assert_eq!(sent, 0, "a partly written chunk is not counted");
        // An archive that cannot be read is the error.
        struct Unreadable;
        impl std::io::Read for Unreadable {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::PermissionDenied.into())
            }
        }
        let error = for_each_line("ask\n".as_bytes(), &mut Vec::new(), &mut |_| {
            Some(Reply::Payload(Box::new(Unreadable), String::new()))
        })
        .unwrap_err();
        assert!(error.to_string().contains("upload interrupted"), "{error}");
    }
}
