//! A TCP proxy in front of sshd that the test controls: the one proxy of the harness, used by
//! the fault-injection tests (`tests/it/faults.rs`) to break the link at a chosen moment and by the
//! deploy benchmark (`benches/deploy.rs`) to make the link slow. It forwards bytes between shipit
//! and sshd unchanged unless told otherwise:
//!
//! - [`Proxy::delayed`] delivers every chunk it reads `delay` later, in order, in both
//!   directions: a link with a round trip of `2 * delay` (tc netem is not available in
//!   containers). One reader and one writer thread per direction, joined by a bounded queue of
//!   `(deliver_at, bytes)`. The TCP handshake itself is not delayed (connect() completes
//!   locally), so a new connection costs about one round trip less than on a real link.
//! - [`Proxy::cut`] closes every live connection at once, both ways (each side sees the
//!   other close: shipit's reads fail, sshd sees its client go away and closes the session's
//!   pipes, so the remote script gets SIGPIPE at its next write).
//! - [`Proxy::cut_after_upstream_bytes`] arms a cut that fires from inside the forwarding
//!   thread once N more bytes went from shipit to sshd: with a big archive, that is mid-upload,
//!   without racing against anything.
//! - [`Proxy::corrupt_after_upstream_bytes`] flips one bit of the byte N bytes further in
//!   the shipit-to-sshd stream: what a faulty link or middlebox would do to an upload.
//! - [`Proxy::pause_after_upstream_bytes`] holds the shipit-to-sshd stream still after N
//!   more bytes until [`Proxy::resume`], so a test can act while an upload is half done.
//!
//! The faults act on the stream where the proxy reads it; on a delayed proxy, bytes already
//! queued for delivery are lost by a cut. New connections are accepted and forwarded normally
//! after a cut, so a re-run goes through the same proxy.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const CHUNK: usize = 64 * 1024;
/// Chunks a delayed direction may hold in flight (each at most `CHUNK` bytes).
const QUEUE: usize = 256;

/// What the proxy does to the shipit-to-sshd stream once it has forwarded some more bytes.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Cut { after: u64 },
    Corrupt { after: u64 },
    Pause { after: u64 },
}

#[derive(Default)]
struct State {
    /// Both sockets of every connection forwarded so far (closed ones are harmless to shut
    /// down again).
    streams: Vec<TcpStream>,
    /// The armed fault and the upstream bytes forwarded since it was armed.
    fault: Option<(Fault, u64)>,
    /// What happened, for the test's messages.
    events: Vec<String>,
    /// The upstream direction is held still (see [`Proxy::pause_after_upstream_bytes`]).
    paused: bool,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

/// A proxy on `127.0.0.1:port` forwarding to one upstream port; stopped (with every connection
/// through it) on drop.
pub struct Proxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU32>,
    state: Shared,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// A proxy on `127.0.0.1:<free port>` forwarding to `127.0.0.1:upstream` at once.
    pub fn start(upstream: u16) -> Proxy {
        Proxy::delayed(upstream, Duration::ZERO)
    }

    /// A proxy on `127.0.0.1:<free port>` forwarding to `127.0.0.1:upstream`, each chunk
    /// `delay` after it was read, in each direction.
    pub fn delayed(upstream: u16, delay: Duration) -> Proxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU32::new(0));
        let state: Shared = Arc::default();
        let acceptor = {
            let (stop, accepted, state) = (stop.clone(), accepted.clone(), state.clone());
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let Ok(server) = TcpStream::connect((Ipv4Addr::LOCALHOST, upstream)) else {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let clones = (
                        client.try_clone(),
                        server.try_clone(),
                        client.try_clone(),
                        server.try_clone(),
                    );
                    let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = clones else {
                        continue;
                    };
                    for s in [&client, &server] {
                        let _ = s.set_nodelay(true);
                    }
                    state.0.lock().unwrap().streams.extend([c3, s3]);
                    pump(client, Outlet::new(s2, delay), Some(state.clone()));
                    pump(server, Outlet::new(c2, delay), None);
                }
            })
        };
        Proxy {
            port,
            stop,
            accepted,
            state,
            acceptor: Some(acceptor),
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u32 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Closes every live connection, both ways, now; returns how many sockets it shut down.
    pub fn cut(&self) -> usize {
        cut_all(&mut self.lock(), "cut by the test")
    }

    /// Cuts every connection once `bytes` more bytes have gone from shipit to sshd.
    pub fn cut_after_upstream_bytes(&self, bytes: u64) {
        self.lock().fault = Some((Fault::Cut { after: bytes }, 0));
    }

    /// Flips the lowest bit of the byte `bytes` further in the shipit-to-sshd stream.
    pub fn corrupt_after_upstream_bytes(&self, bytes: u64) {
        self.lock().fault = Some((Fault::Corrupt { after: bytes }, 0));
    }

    /// Holds the shipit-to-sshd stream still once `bytes` more bytes have gone through, until
    /// [`Proxy::resume`] (the other direction keeps flowing).
    pub fn pause_after_upstream_bytes(&self, bytes: u64) {
        self.lock().fault = Some((Fault::Pause { after: bytes }, 0));
    }

    /// Whether the upstream direction is being held still.
    pub fn paused(&self) -> bool {
        self.lock().paused
    }

    /// Lets a paused upstream direction go on.
    pub fn resume(&self) {
        self.lock().paused = false;
        self.state.1.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.0.lock().unwrap()
    }

    /// Whether an armed fault has not fired yet.
    pub fn armed(&self) -> bool {
        self.lock().fault.is_some()
    }

    /// What the proxy did, in order.
    pub fn events(&self) -> Vec<String> {
        self.lock().events.clone()
    }
}

fn cut_all(state: &mut State, why: &str) -> usize {
    let n = state.streams.len();
    for s in state.streams.drain(..) {
        let _ = s.shutdown(Shutdown::Both);
    }
    state.events.push(format!("{why}: shut down {n} sockets"));
    n
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept, then end every forwarded connection so its threads end.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        self.resume();
        cut_all(&mut self.lock(), "proxy stopped");
    }
}

/// Where one direction's bytes go: straight to the socket, or through a queue to a thread that
/// writes each chunk once its delay has passed.
enum Outlet {
    Direct(TcpStream),
    Delayed {
        delay: Duration,
        queue: SyncSender<(Instant, Vec<u8>)>,
    },
}

impl Outlet {
    fn new(mut to: TcpStream, delay: Duration) -> Outlet {
        if delay.is_zero() {
            return Outlet::Direct(to);
        }
        let (queue, rx) = sync_channel::<(Instant, Vec<u8>)>(QUEUE);
        std::thread::spawn(move || {
            for (at, bytes) in rx {
                if let Some(wait) = at.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                // An empty chunk is end-of-stream (forwarded as a half-close).
                if bytes.is_empty() {
                    let _ = to.shutdown(Shutdown::Write);
                    break;
                }
                if to.write_all(&bytes).is_err() {
                    let _ = to.shutdown(Shutdown::Both);
                    break;
                }
            }
        });
        Outlet::Delayed { delay, queue }
    }

    /// Forwards `bytes`; an error means the other side is gone.
    fn send(&mut self, bytes: &[u8]) -> Result<(), ()> {
        if bytes.is_empty() {
            return Ok(()); // an empty chunk in the queue would mean end-of-stream
        }
        match self {
            Outlet::Direct(to) => to.write_all(bytes).map_err(drop),
            Outlet::Delayed { delay, queue } => queue
                .send((Instant::now() + *delay, bytes.to_vec()))
                .map_err(drop),
        }
    }

    /// Forwards the end of the stream (a half-close).
    fn close(self) {
        match self {
            Outlet::Direct(to) => {
                let _ = to.shutdown(Shutdown::Write);
            }
            Outlet::Delayed { delay, queue } => {
                let _ = queue.send((Instant::now() + delay, Vec::new()));
            }
        }
    }
}

/// Copies `from` to `to` until either side closes. The shipit-to-sshd direction carries the
/// `state` through which faults are applied.
fn pump(mut from: TcpStream, mut to: Outlet, state: Option<Shared>) {
    std::thread::spawn(move || {
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let n = match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // Bytes from here on are forwarded after the fault (if any) is applied.
            let mut start = 0;
            if let Some(shared) = &state {
                let mut state = shared.0.lock().unwrap();
                if let Some((fault, seen)) = state.fault {
                    let after = match fault {
                        Fault::Cut { after }
                        | Fault::Corrupt { after }
                        | Fault::Pause { after } => after,
                    };
                    if seen + n as u64 <= after {
                        state.fault = Some((fault, seen + n as u64));
                    } else {
                        let at = (after - seen) as usize;
                        state.fault = None;
                        match fault {
                            Fault::Cut { .. } => {
                                // Forward what came before the cut point, then cut.
                                let _ = to.send(&buffer[..at]);
                                cut_all(&mut state, &format!("cut after {after} upstream bytes"));
                                break;
                            }
                            Fault::Corrupt { .. } => {
                                buffer[at] ^= 1;
                                state
                                    .events
                                    .push(format!("flipped a bit of upstream byte {after}"));
                            }
                            Fault::Pause { .. } => {
                                if to.send(&buffer[..at]).is_err() {
                                    break;
                                }
                                start = at;
                                state.paused = true;
                                state
                                    .events
                                    .push(format!("paused after {after} upstream bytes"));
                                while state.paused {
                                    state = shared
                                        .1
                                        .wait_timeout(state, Duration::from_millis(100))
                                        .unwrap()
                                        .0;
                                }
                                state.events.push("resumed".into());
                            }
                        }
                    }
                }
            }
            if to.send(&buffer[start..n]).is_err() {
                break;
            }
        }
        to.close();
    });
}
