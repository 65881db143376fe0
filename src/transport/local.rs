//! The `local` transport: the same scripts, run by `sh` on this machine.
//!
//! For single-box setups and the README demo. The archive reaches the script on its stdin, as
//! over SSH.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

use super::{for_each_line, OnLine, Transport, Usage};

/// Runs scripts on this machine.
#[derive(Debug, Default)]
pub struct Local {
    usage: Usage,
}

impl Local {
    /// A local transport.
    pub fn new() -> Local {
        Local::default()
    }
}

impl Transport for Local {
    fn name(&self) -> &str {
        "local"
    }

    fn run(&mut self, script: &str, on_line: &mut OnLine<'_>) -> Result<i32> {
        self.usage.channels += 1;
        let fail = |e: std::io::Error| Error::Connection {
            host: "local".into(),
            message: format!("cannot run sh: {e}"),
            hint: None,
        };
        let mut child = Command::new("sh")
            .arg("-s")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(fail)?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(script.as_bytes()).map_err(fail)?;
        // stdin stays open: the script exits by itself, and may wait for an answer at a gate.
        let stdout = child.stdout.take().expect("piped stdout");
        self.usage.bytes_uploaded += for_each_line(stdout, &mut stdin, on_line).map_err(fail)?;
        drop(stdin);
        let status = child.wait().map_err(fail)?;
        Ok(status.code().unwrap_or(128 + 9))
    }

    fn interactive(&mut self, script: &str) -> Result<i32> {
        self.usage.channels += 1;
        // This process's own terminal is the command's: stdin, stdout and stderr inherited.
        let status = Command::new("sh")
            .arg("-c")
            .arg(script)
            .status()
            .map_err(|e| Error::Connection {
                host: "local".into(),
                message: format!("cannot run sh: {e}"),
                hint: None,
            })?;
        Ok(status.code().unwrap_or(128 + 9))
    }

    fn usage(&self) -> Usage {
        self.usage
    }
}
