//! Stopping daemons and everything they spawned, with std only (signals via `kill(1)`), so
//! that no daemon or app server outlives the test that started it, even one that panicked.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `(ppid, starttime, zombie)` from `/proc/PID/stat`.
fn stat(pid: u32) -> Option<(u32, u64, bool)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm (field 2) may contain spaces and parens: fields after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest: state(3) ppid(4) ... starttime(22) => indices 0, 1, ..., 19
    let zombie = matches!(*f.first()?, "Z" | "X");
    Some((f.get(1)?.parse().ok()?, f.get(19)?.parse().ok()?, zombie))
}

/// A process identified by pid and start time, so a recycled pid is never signalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcId {
    pid: u32,
    start: u64,
}

impl ProcId {
    /// The process that has `pid` now, if any.
    pub(crate) fn of(pid: u32) -> Option<ProcId> {
        stat(pid).map(|(_, start, _)| ProcId { pid, start })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether it still runs (a zombie does not).
    pub fn alive(&self) -> bool {
        // A zombie is dead for our purposes (its sockets are closed); PID 1 here may not reap.
        stat(self.pid).is_some_and(|(_, start, zombie)| start == self.start && !zombie)
    }
}

/// Every process, by parent, found through /proc.
fn processes_by_parent() -> HashMap<u32, Vec<ProcId>> {
    let mut children: HashMap<u32, Vec<ProcId>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some((ppid, start, _)) = stat(pid) {
                children
                    .entry(ppid)
                    .or_default()
                    .push(ProcId { pid, start });
            }
        }
    }
    children
}

/// The current children of `parent`.
pub(crate) fn children(parent: u32) -> Vec<ProcId> {
    processes_by_parent().remove(&parent).unwrap_or_default()
}

/// All current descendants of `root` (children, grandchildren, ...), found through /proc.
pub(crate) fn descendants(root: u32) -> Vec<ProcId> {
    let children = processes_by_parent();
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for c in children.get(&p).into_iter().flatten() {
            out.push(*c);
            todo.push(c.pid);
        }
    }
    out
}

/// `kill -SIG pid`; true if the signal was sent.
pub(crate) fn signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Wait up to `timeout` for `child` to exit; true if it did (and was reaped).
pub(crate) fn wait_timeout(child: &mut Child, timeout: Duration) -> bool {
    super::wait_for(timeout, || match child.try_wait() {
        Ok(Some(_)) | Err(_) => Some(()),
        Ok(None) => None,
    })
    .is_some()
}

/// Stop a daemon that is our direct child: note its descendants, run `ask` (send a signal or
/// run a shutdown command), wait up to `grace` for it to exit, SIGKILL it otherwise, then
/// SIGKILL any noted descendant still alive. Never panics (it runs from `Drop`).
pub(crate) fn stop_tree(child: &mut Child, grace: Duration, ask: impl FnOnce(u32)) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let pid = child.id();
    let tree = descendants(pid);
    ask(pid);
    if !wait_timeout(child, grace) {
        let _ = child.kill();
        let _ = child.wait();
    }
    for p in tree.iter().filter(|p| p.alive()) {
        signal(p.pid, "KILL");
    }
    // Give the kernel a moment to close their sockets.
    super::wait_for(Duration::from_secs(2), || {
        (!tree.iter().any(|p| p.alive())).then_some(())
    });
}
