//! A private Redis on 127.0.0.1, the broker of the Celery-shaped tests (tests/it/processes.rs):
//! Debian's `redis-server` on a free loopback port, in a fresh temporary directory, keeping
//! nothing on disk, our direct child, stopped on drop. Two hosts of a fleet on this machine
//! reach the same one, as they would a shared broker.

use super::process::{self, stop_tree};
use super::{free_port, read_lossy, wait_for};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const REDIS_SERVER: &str = "/usr/bin/redis-server";
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Tries with a new port when another process took the one we picked before redis bound it.
const PORT_TRIES: usize = 3;

/// A Redis server on `127.0.0.1:port`.
pub struct Redis {
    pub port: u16,
    /// Its working directory and `redis.log`.
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Redis {
    /// Starts redis-server; returns once it answers `PING`.
    pub fn start() -> Redis {
        assert!(
            std::path::Path::new(REDIS_SERVER).is_file(),
            "{REDIS_SERVER} is missing: install Debian's `redis-server` (bash .ci/setup)"
        );
        let mut last_log = String::new();
        for _ in 0..PORT_TRIES {
            let dir = tempfile::Builder::new()
                .prefix("shipit-redis-")
                .tempdir()
                .expect("redis tempdir");
            let log = dir.path().join("redis.log");
            let port = free_port();
            let child = Command::new(REDIS_SERVER)
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--logfile")
                .arg(&log)
                .arg("--dir")
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            let mut redis = Redis {
                port,
                dir,
                child: Some(child),
            };
            let up = wait_for(START_TIMEOUT, || {
                if let Some(c) = redis.child.as_mut() {
                    if let Ok(Some(_)) = c.try_wait() {
                        return Some(false);
                    }
                }
                (redis.command("PING").ok()? == "+PONG").then_some(true)
            });
            if up == Some(true) {
                return redis;
            }
            redis.stop();
            last_log = read_lossy(&log);
        }
        panic!("redis-server did not start after {PORT_TRIES} tries:\n{last_log}")
    }

    /// `redis://127.0.0.1:PORT/0`, what `CELERY_BROKER_URL` is.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// One inline command (`PING`, `LLEN celery`); its reply's first line.
    pub fn command(&self, line: &str) -> std::io::Result<String> {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(stream, "{line}\r\nQUIT\r\n")?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply)?;
        Ok(reply.lines().next().unwrap_or("").to_string())
    }

    /// Stops the server (SIGTERM, then SIGKILL). Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_tree(&mut child, Duration::from_secs(5), |pid| {
                process::signal(pid, "TERM");
            });
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
