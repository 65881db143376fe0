//! ProxyCommand: the first hop reached through a local command whose stdin and stdout carry
//! the SSH session. This is how teams reach hosts through AWS SSM
//! (`aws ssm start-session ...`), cloudflared (`cloudflared access ssh --hostname %h`),
//! Teleport (`tsh proxy ssh %r@%h:%p`), `ssh -W %h:%p bastion` or socat.
//!
//! The command runs as `ssh` runs it, `sh -c "exec COMMAND"`, with one end of a socket pair as
//! both its stdin and its stdout; the session runs over the other end, so no thread copies the
//! bytes. Its stderr is kept (the last lines) to explain a connection that fails. When the
//! session is dropped its end closes; the command is sent SIGHUP, as `ssh` does, and reaped.

use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How many lines of the command's stderr an error shows.
const STDERR_LINES: usize = 8;

/// A running proxy command.
pub(crate) struct Proxy {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

/// Starts `command`; returns the socket the session runs over and the running command.
pub(crate) fn start(command: &str) -> std::io::Result<(UnixStream, Proxy)> {
    let (ours, theirs) = UnixStream::pair()?;
    let input = OwnedFd::from(theirs.try_clone()?);
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("exec {command}"))
        .stdin(Stdio::from(input))
        .stdout(Stdio::from(OwnedFd::from(theirs)))
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let pipe = child.stderr.take().expect("stderr is piped");
    let kept = Arc::clone(&stderr);
    let reader = std::thread::Builder::new()
        .name("ssh-proxy-stderr".into())
        .spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut lines = kept.lock().unwrap_or_else(|e| e.into_inner());
                if lines.len() == STDERR_LINES {
                    lines.remove(0);
                }
                lines.push(line);
            }
        })?;
    Ok((
        ours,
        Proxy {
            child,
            stderr,
            reader: Some(reader),
        },
    ))
}

impl Proxy {
    /// What the command did, for an error: whether it exited (waiting a moment for it, since a
    /// failed handshake usually means it is on its way out) and the last lines it printed.
    pub(crate) fn explain(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(2);
        let status = loop {
            match self.child.try_wait() {
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(status) => break status,
                Err(_) => break None,
            }
        };
        if status.is_some() {
            if let Some(reader) = self.reader.take() {
                let _ = reader.join();
            }
        }
        let said = self
            .stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join(" / ");
        let said = crate::output::printable(&said, false);
        match (status, said.is_empty()) {
            (Some(status), true) => {
                format!("the ProxyCommand exited ({status}) and printed nothing")
            }
            (Some(status), false) => format!("the ProxyCommand exited ({status}) saying: {said}"),
            (None, true) => "the ProxyCommand is still running and printed nothing".into(),
            (None, false) => format!("the ProxyCommand said: {said}"),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on our own child's pid, which is not reaped yet (try_wait saw it
            // running), so it cannot name another process.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, libc::SIGHUP);
            }
        }
        let _ = self.child.wait();
    }
}
