//! A network from which only one server can be reached: for the jump-host tests, shipit runs
//! in a private network namespace whose only way out is one forwarded port to the bastion's
//! sshd. Everything else on this machine's loopback (the target's sshd above all) does not
//! exist from in there, so a deploy that reaches the target went through the bastion. The
//! servers themselves stay in the normal namespace, so their sessions have the machine's
//! network (uv still reaches the package index). Needs root.
//!
//! [`Isolated::new`] makes the namespace (its loopback up) and a listener on its
//! `127.0.0.1:port`; a thread of the test, in the normal namespace, accepts there and connects
//! each connection to the real `127.0.0.1:target_port`. [`Isolated::enter`] makes a command
//! start inside the namespace.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::raw::c_int;
use std::os::unix::process::CommandExt;
use std::process::Command;

extern "C" {
    fn unshare(flags: c_int) -> c_int;
    fn setns(fd: c_int, nstype: c_int) -> c_int;
}

const CLONE_NEWNET: c_int = 0x4000_0000;

/// A private network namespace with one port forwarded out of it.
pub struct Isolated {
    /// The namespace (`/proc/thread-self/ns/net` of the thread that made it).
    namespace: File,
    /// The port inside the namespace that leads to the forwarded server.
    pub port: u16,
}

impl Isolated {
    /// A new namespace in which `127.0.0.1:port` (see [`Isolated::port`]) leads to
    /// `127.0.0.1:target_port` of this machine, and nothing else is reachable.
    pub fn new(target_port: u16) -> Isolated {
        // A thread of its own enters the new namespace (namespaces are per thread) and ends:
        // the namespace lives on through the handle and the listener it returns.
        let (namespace, listener) = std::thread::spawn(|| {
            // SAFETY: a plain syscall; it only changes this short-lived thread.
            let rc = unsafe { unshare(CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "unshare(CLONE_NEWNET): {}",
                std::io::Error::last_os_error()
            );
            let up = Command::new("ip")
                .args(["link", "set", "lo", "up"])
                .status()
                .expect("run ip");
            assert!(up.success(), "ip link set lo up failed");
            let namespace = File::open("/proc/thread-self/ns/net").expect("open the namespace");
            let listener =
                TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("listen in the namespace");
            (namespace, listener)
        })
        .join()
        .expect("namespace thread");
        let port = listener.local_addr().expect("local_addr").port();
        // Accepting needs no namespace; the connections it makes are in the normal one.
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect((Ipv4Addr::LOCALHOST, target_port)) else {
                    continue;
                };
                forward(client, server);
            }
        });
        Isolated { namespace, port }
    }

    /// Makes `command` start inside the namespace.
    pub fn enter(&self, command: &mut Command) {
        let fd: RawFd = self.namespace.as_raw_fd();
        // SAFETY: setns is async-signal-safe and touches only the child being started.
        unsafe {
            command.pre_exec(move || {
                if setns(fd, CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
}

/// Copies both ways between `a` and `b` until each side closes.
fn forward(a: TcpStream, b: TcpStream) {
    let pipe = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let mut buffer = [0u8; 64 * 1024];
            loop {
                match from.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        });
    };
    if let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) {
        pipe(a, b2);
        pipe(b, a2);
    }
}
