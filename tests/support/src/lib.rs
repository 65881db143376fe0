//! The test harness of shipit: real daemons on loopback, no mocks, and everything the
//! integration tests (`tests/it/`, one binary) and the benches (`benches/*.rs`) of the shipit package share.
//!
//! It is a crate of its own (`shipit-test-support`, a path dev-dependency of the root package,
//! named `support` there) so that there is one copy of it: the test binary and each bench is a crate
//! of its own, and a module shared by `#[path]` or `mod common;` is compiled again into every one
//! of them, which is how copies of it used to drift apart. Tests write `use support::*;` (the
//! daemons and the deploy-user helpers below) and `use support::stack::*;` and so on. The
//! root `Cargo.toml` makes it a workspace member too, so `cargo fmt` and `cargo clippy` at the
//! root check it with the rest.
//!
//! - [`project`]: a throw-away copy of the example project (`tests/example`) under real git,
//!   the commands that run `shipit` against it, and a reader for the archives it writes.
//! - [`run`]: where the `shipit` binary is ([`shipit_bin`]; the module says how this separate
//!   crate finds it) and [`Run`], what one run of shipit produced, with the assertions on it
//!   ([`Run::expect_code`], [`Run::says`]).
//! - [`stack`]: one real deploy target (sshd, nginx, supervisord, a `deploy_to`) with the example
//!   project configured for it.
//! - [`fleet`]: two hosts for one target on this one machine.
//! - [`systemd`](mod@systemd): a host run by a real systemd (PID 1 of namespaces of its own),
//!   with its sshd and nginx inside, for the systemd backend.
//! - [`image`](mod@image): a base image, a registry and an OCI runtime for `shipit image`.
//! - [`proxy`]: a TCP proxy in front of sshd that the test controls.
//! - [`netns`]: a private network namespace from which only one forwarded port leads out (the
//!   jump-host tests run shipit there).
//! - [`load`]: an HTTP load generator.
//! - [`websocket`]: a minimal websocket client.
//! - [`pebble`]: an ACME server (Let's Encrypt's test CA) for the HTTPS tests.
//! - [`bench`](mod@bench): what the benches share besides all that.
//! - [`wagtail`]: the Wagtail site `benches/wagtail.rs` generates and deploys.
//! - at the root: the daemons ([`Sshd`], [`Nginx`], [`Supervisord`], [`Postgres`], [`Redis`]), the `deploy`
//!   account and helpers to act as it ([`deploy_user`], [`run_as_deploy`], ...), and small
//!   loopback network helpers ([`free_port`], [`http_get`], ...).
//!
//! Everything that starts a daemon needs root (the tests create a `deploy` account, run sshd,
//! and start nginx / supervisord *as* `deploy`).
//!
//! What runs as whom:
//! - `sshd` runs as root (it must, to switch to `deploy` for sessions); sessions run as `deploy`.
//! - `nginx` (master and workers) and `supervisord` (and therefore every supervised program) run
//!   as `deploy`, so a deploy session can `nginx -t`, `nginx -s reload` and `supervisorctl ...`
//!   them without sudo.
//! - `postgres` ([`Postgres`], a private cluster some tests share between hosts) runs as Debian's
//!   `postgres` account: initdb and the server refuse root.
//! - The test process itself is root; files it writes are root-owned unless it chowns them
//!   (see [`chown_to_deploy`]), and [`run_as_deploy`] runs a shell snippet as `deploy`.
//!
//! Every daemon is a direct child of the test process and is killed (with whatever it spawned)
//! when its struct is dropped, including during a panic. Ports come from [`free_port`], paths
//! from fresh temporary directories, so tests can run in parallel threads and processes.

pub mod bench;
pub mod celery;
pub mod fleet;
pub mod image;
pub mod load;
pub mod netns;
pub mod pebble;
pub mod project;
pub mod proxy;
pub mod run;
pub mod stack;
pub mod systemd;
pub mod systemd_stack;
pub mod wagtail;
pub mod webhook;
pub mod websocket;

mod net;
mod nginx;
mod postgres;
mod process;
mod redis;
mod sshd;
mod supervisord;
mod user;

pub use net::*;
pub use nginx::Nginx;
pub use postgres::Postgres;
pub use redis::Redis;
pub use run::{shipit_bin, Run};
pub use sshd::{new_ed25519_key, ssh_keygen, Sshd};
pub use supervisord::Supervisord;
pub use user::*;

use std::path::Path;
use std::time::{Duration, Instant};

/// Poll `f` until it returns `Some` or `timeout` elapses (small sleeps between tries).
/// `f` is always called at least once.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Read a file as text, or an empty string when it cannot be read.
pub(crate) fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}
