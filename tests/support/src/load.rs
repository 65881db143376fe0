//! A bounded HTTP load generator for the zero-downtime test and `benches/load.rs`.
//!
//! Each worker thread sends `GET PATH` to `127.0.0.1:PORT` over a fresh TCP connection per
//! request (HTTP/1.0, `Connection: close`, no keep-alive), so every request makes nginx open a
//! new upstream connection through the `current` symlink: exactly the path a switch changes.
//! A request counts as ok only when it gets a complete `200` answer; anything else (another
//! status, refused, reset, timeout, a truncated answer) is a failure, and the first few
//! failures are kept with when they happened. Workers stop at [`Load::stop`] or, whatever
//! happens, at the time limit given to [`Load::start`].

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Failures kept in full (the rest are only counted).
const KEEP_FAILURES: usize = 10;
/// Connect, read and write timeout of one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Shared {
    ok: AtomicU64,
    failed: AtomicU64,
    /// Sum and maximum of the latencies of ok requests, in microseconds.
    latency_sum_us: AtomicU64,
    latency_max_us: AtomicU64,
    failures: Mutex<Vec<String>>,
}

/// Running load; [`Load::stop`] ends it and reports.
pub struct Load {
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    started: Instant,
}

/// What a load run saw.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Requests answered `200` in full.
    pub ok: u64,
    /// Requests that failed in any way.
    pub failed: u64,
    /// The first failures: `+SECONDS worker N: what happened`.
    pub failures: Vec<String>,
    /// How long the load ran.
    pub elapsed: Duration,
    /// Mean and maximum latency of the ok requests.
    pub mean_latency: Duration,
    pub max_latency: Duration,
}

impl LoadReport {
    pub fn sent(&self) -> u64 {
        self.ok + self.failed
    }

    /// Requests per second over the whole run.
    pub fn rate(&self) -> f64 {
        self.sent() as f64 / self.elapsed.as_secs_f64().max(0.001)
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} requests in {:.1}s ({:.0}/s): {} ok, {} failed; latency mean {:.1} ms, max {:.1} ms",
            self.sent(),
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.ok,
            self.failed,
            self.mean_latency.as_secs_f64() * 1000.0,
            self.max_latency.as_secs_f64() * 1000.0
        )?;
        for failure in &self.failures {
            write!(f, "\n  {failure}")?;
        }
        Ok(())
    }
}

impl Load {
    /// Starts `threads` workers requesting `path` on `127.0.0.1:port` back to back until
    /// [`Load::stop`] or until `limit` has passed.
    pub fn start(port: u16, path: &str, threads: usize, limit: Duration) -> Load {
        Load::paced(port, path, threads, Duration::ZERO, limit)
    }

    /// [`Load::start`] with each worker pausing `pause` after each request.
    pub fn paced(port: u16, path: &str, threads: usize, pause: Duration, limit: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared::default());
        let started = Instant::now();
        let deadline = started + limit;
        let workers = (0..threads)
            .map(|n| {
                let (stop, shared, path) = (stop.clone(), shared.clone(), path.to_string());
                std::thread::Builder::new()
                    .name(format!("load-{n}"))
                    .spawn(move || {
                        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                            let sent = Instant::now();
                            match get(port, &path) {
                                Ok(()) => {
                                    let us = sent.elapsed().as_micros() as u64;
                                    shared.ok.fetch_add(1, Ordering::SeqCst);
                                    shared.latency_sum_us.fetch_add(us, Ordering::SeqCst);
                                    shared.latency_max_us.fetch_max(us, Ordering::SeqCst);
                                }
                                Err(what) => {
                                    shared.failed.fetch_add(1, Ordering::SeqCst);
                                    let mut failures = shared.failures.lock().unwrap();
                                    if failures.len() < KEEP_FAILURES {
                                        failures.push(format!(
                                            "+{:.3}s worker {n}: {what}",
                                            started.elapsed().as_secs_f64()
                                        ));
                                    }
                                }
                            }
                            if !pause.is_zero() {
                                std::thread::sleep(pause);
                            }
                        }
                    })
                    .expect("spawn a load worker")
            })
            .collect();
        Load {
            stop,
            shared,
            workers,
            started,
        }
    }

    /// `(ok, failed)` so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.shared.ok.load(Ordering::SeqCst),
            self.shared.failed.load(Ordering::SeqCst),
        )
    }

    /// Waits until at least `n` more requests have succeeded (or `timeout` passes); returns
    /// whether they did. Lets a caller make sure the load really overlaps what it does next.
    pub fn wait_for_more_ok(&self, n: u64, timeout: Duration) -> bool {
        let target = self.counts().0 + n;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.counts().0 >= target {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// Stops the workers, waits for them and reports.
    pub fn stop(mut self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        for worker in self.workers.drain(..) {
            worker.join().expect("a load worker panicked");
        }
        let ok = self.shared.ok.load(Ordering::SeqCst);
        let sum = self.shared.latency_sum_us.load(Ordering::SeqCst);
        LoadReport {
            ok,
            failed: self.shared.failed.load(Ordering::SeqCst),
            failures: self.shared.failures.lock().unwrap().clone(),
            elapsed: self.started.elapsed(),
            mean_latency: Duration::from_micros(sum.checked_div(ok).unwrap_or(0)),
            max_latency: Duration::from_micros(self.shared.latency_max_us.load(Ordering::SeqCst)),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        // A test that panics before stop() still ends its workers (they stop at the time limit
        // anyway; this only makes it sooner).
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One `GET` on a fresh connection; `Ok` only for a complete `200` answer.
fn get(port: u16, path: &str) -> Result<(), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream =
        TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(REQUEST_TIMEOUT)))
        .map_err(|e| format!("socket options: {e}"))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: shipit-load\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("receive ({} bytes so far): {e}", raw.len()))?;
    let text = String::from_utf8_lossy(&raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Err(format!("incomplete answer: {text:?}"));
    };
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!(
            "{status}: {}",
            body.trim().chars().take(200).collect::<String>()
        ));
    }
    // A truncated body would show as a short read; nginx sends Content-Length for proxied
    // answers of this size.
    if let Some(length) = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("content-length:")
            .and_then(|v| v.trim().parse::<usize>().ok())
    }) {
        if body.len() != length {
            return Err(format!(
                "{status}: body of {} bytes, Content-Length says {length}",
                body.len()
            ));
        }
    }
    Ok(())
}
