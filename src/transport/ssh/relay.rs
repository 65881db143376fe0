//! The socket a session through a jump host runs over.
//!
//! libssh2 runs a session over a socket, but through a jump host the next hop is a
//! `direct-tcpip` channel of the jump host's session. A relay thread copies between that
//! channel and one end of a local socket pair; the next session runs over the other end. The
//! thread owns the jump host's session: when the next session is dropped its end closes, the
//! relay sends EOF on the channel and ends, and the jump host's session goes with it.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;

use ssh2::{BlockDirections, Channel, Session};

/// Starts copying between `channel` (of `session`, whose socket is `session_fd`) and a new
/// socket pair; returns the end the next session runs over.
pub fn start(session: Session, session_fd: RawFd, channel: Channel) -> std::io::Result<UnixStream> {
    let (ours, theirs) = UnixStream::pair()?;
    ours.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("ssh-jump-relay".into())
        .spawn(move || pump(&session, session_fd, channel, ours))?;
    Ok(theirs)
}

/// Copies both ways until the local end closes or the channel ends.
fn pump(session: &Session, session_fd: RawFd, mut channel: Channel, mut local: UnixStream) {
    session.set_blocking(false);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut to_local: Vec<u8> = Vec::new();
    let mut to_remote: Vec<u8> = Vec::new();
    let (mut local_eof, mut remote_eof, mut eof_sent) = (false, false, false);
    loop {
        let mut progress = false;
        if to_local.is_empty() && !remote_eof {
            match channel.read(&mut buffer) {
                Ok(0) if channel.eof() => {
                    remote_eof = true;
                    let _ = local.shutdown(std::net::Shutdown::Write);
                    progress = true;
                }
                Ok(0) => {}
                Ok(n) => {
                    to_local.extend_from_slice(&buffer[..n]);
                    progress = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
        if !to_local.is_empty() {
            match local.write(&to_local) {
                Ok(n) => {
                    to_local.drain(..n);
                    progress = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
        if to_remote.is_empty() && !local_eof {
            match local.read(&mut buffer) {
                Ok(0) => {
                    local_eof = true;
                    progress = true;
                }
                Ok(n) => {
                    to_remote.extend_from_slice(&buffer[..n]);
                    progress = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
        if !to_remote.is_empty() {
            match channel.write(&to_remote) {
                Ok(n) => {
                    to_remote.drain(..n);
                    progress = n > 0 || progress;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
        if local_eof && to_remote.is_empty() && !eof_sent {
            match channel.send_eof() {
                Ok(()) => eof_sent = true,
                Err(e) if e.code() == ssh2::ErrorCode::Session(-37) => {} // EAGAIN
                Err(_) => return,
            }
        }
        // The next session is gone (it never half-closes): nothing more to carry.
        if eof_sent || (remote_eof && to_local.is_empty() && local_eof) {
            let _ = channel.close();
            return;
        }
        if !progress {
            wait(
                session,
                session_fd,
                &local,
                !to_local.is_empty(),
                to_remote.is_empty() && !local_eof,
            );
        }
    }
}

/// Waits (at most 100 ms: libssh2 may hold data it already read) until either socket can go on.
fn wait(session: &Session, session_fd: RawFd, local: &UnixStream, local_out: bool, local_in: bool) {
    let mut remote_events = libc::POLLIN;
    if matches!(
        session.block_directions(),
        BlockDirections::Outbound | BlockDirections::Both
    ) {
        remote_events |= libc::POLLOUT;
    }
    let mut local_events = 0;
    if local_in {
        local_events |= libc::POLLIN;
    }
    if local_out {
        local_events |= libc::POLLOUT;
    }
    let mut fds = [
        libc::pollfd {
            fd: session_fd,
            events: remote_events,
            revents: 0,
        },
        libc::pollfd {
            fd: local.as_raw_fd(),
            events: local_events,
            revents: 0,
        },
    ];
    // SAFETY: `fds` is a valid array of two pollfd for the duration of the call.
    unsafe {
        libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100);
    }
}
