//! The local terminal, for `shipit console`: its size, its `TERM`, and raw mode (keys go to the
//! remote program as typed, Ctrl-C included, and nothing is echoed twice).
//!
//! Done with `stty` on `/dev/tty` rather than termios bindings: one small, well-known command,
//! no new dependency, and a saved `stty -g` state that is restored on every way out ([`Raw`]'s
//! `Drop`).

use std::process::{Command, Stdio};

fn stty(args: &[&str]) -> Option<String> {
    let tty = std::fs::File::open("/dev/tty").ok()?;
    let out = Command::new("stty")
        .args(args)
        .stdin(Stdio::from(tty))
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Columns and rows of the terminal (80×24 when there is none).
pub(crate) fn size() -> (u32, u32) {
    stty(&["size"])
        .and_then(|s| {
            let (rows, cols) = s.split_once(' ')?;
            Some((cols.parse().ok()?, rows.parse().ok()?))
        })
        .filter(|(c, r)| *c > 0 && *r > 0)
        .unwrap_or((80, 24))
}

/// The terminal type to ask the remote pty for.
pub(crate) fn term() -> String {
    std::env::var("TERM")
        .ok()
        .filter(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or_else(|| "xterm".into())
}

/// Raw mode while it lives; the terminal's previous settings come back when it drops.
pub(crate) struct Raw {
    saved: Option<String>,
}

impl Raw {
    /// Puts the terminal in raw mode (does nothing when there is no terminal).
    pub(crate) fn enter() -> Raw {
        let saved = stty(&["-g"]);
        if saved.is_some() {
            stty(&["raw", "-echo"]);
        }
        Raw { saved }
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            stty(&[saved]);
        }
    }
}
