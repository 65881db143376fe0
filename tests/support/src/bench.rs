//! What the benches (`benches/deploy.rs`, `benches/load.rs`, both `harness = false`) share
//! besides the stack: whether this run should benchmark at all, and their knobs from the
//! environment.

use std::path::Path;

/// Whether the bench `name` should run now; prints why not otherwise. It runs only under
/// `cargo bench` (`cargo test --benches` runs bench executables without `--bench`: they only
/// print how to run them then), as root, with the daemons installed.
pub fn should_run(name: &str) -> bool {
    if !std::env::args().any(|a| a == "--bench") {
        println!("{name} benchmark: run it with `cargo bench --bench {name}` (as root)");
        return false;
    }
    if !crate::is_root() {
        eprintln!("{name} benchmark skipped: it must run as root (it creates the `deploy` account and runs sshd, nginx and supervisord)");
        return false;
    }
    for tool in ["/usr/sbin/sshd", "/usr/sbin/nginx", "/usr/bin/supervisord"] {
        if !Path::new(tool).exists() {
            eprintln!(
                "{name} benchmark skipped: {tool} is missing (install the test packages: .ci/setup)"
            );
            return false;
        }
    }
    true
}

/// The number in the environment variable `name`, or `default` when it is unset or not a
/// number.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
