//! One boot of a [`SystemdHost`](super::SystemdHost): `boot.sh` run from a thread of its own
//! in a new cgroup, systemd found as PID 1 of the namespaces it made, and its end (SIGKILL to
//! PID 1, the namespace waited for, the cgroup removed).

use std::fs::OpenOptions;
use std::os::raw::{c_int, c_ulong};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, TryRecvError};
use std::thread::JoinHandle;

use super::disk::Disk;
use super::{BOOT_TIMEOUT, ROOT_PATH, SETTLE_TIMEOUT};
use crate::process::{self, ProcId};
use crate::*;

extern "C" {
    fn prctl(option: c_int, ...) -> c_int;
}

const PR_SET_PDEATHSIG: c_int = 1;
const SIGKILL: c_ulong = 9;

/// One boot of a host: systemd as PID 1 of its namespaces, in a cgroup of its own.
pub(super) struct Boot {
    /// The namespace's PID 1 (systemd), as the test sees it.
    pub(super) pid1: ProcId,
    /// `pid:[INODE]` of the namespace (the kernel may give a later namespace the same).
    pub(super) pid_namespace: String,
    outer: Outer,
}

impl Boot {
    /// Runs `boot.sh outside` and waits for systemd to be PID 1 of the new namespaces.
    pub(super) fn start(disk: &Disk, binds: &[(PathBuf, PathBuf)]) -> Result<Boot, String> {
        let outer = Outer::spawn(disk, binds)?;
        // PID 1 is unshare's child, once it has become systemd.
        let found = wait_for(BOOT_TIMEOUT, || {
            if outer.exited() {
                return Some(None);
            }
            process::children(outer.pid).into_iter().find_map(|child| {
                let comm = std::fs::read_to_string(format!("/proc/{}/comm", child.pid()));
                let ns = std::fs::read_link(format!("/proc/{}/ns/pid", child.pid()));
                match (comm, ns) {
                    (Ok(comm), Ok(ns)) if comm.trim() == "systemd" => {
                        Some(Some((child, ns.display().to_string())))
                    }
                    _ => None,
                }
            })
        });
        match found {
            Some(Some((pid1, pid_namespace))) => Ok(Boot {
                pid1,
                pid_namespace,
                outer,
            }),
            other => {
                let why = match other {
                    Some(_) => "boot.sh ended before systemd started",
                    None => "systemd did not start",
                };
                // unshare passes SIGKILL on to the namespace's PID 1 (--kill-child).
                let end = ProcId::of(outer.pid);
                match outer.end(end) {
                    Ok(()) => Err(why.to_string()),
                    Err(e) => Err(format!("{why}; {e}")),
                }
            }
        }
    }

    pub(super) fn exited(&self) -> bool {
        self.outer.exited()
    }

    /// SIGKILL to PID 1, then waits for the namespace to be gone and removes its cgroup.
    pub(super) fn kill(self) -> Result<(), String> {
        self.outer.end(Some(self.pid1))
    }
}

/// `boot.sh outside`, then `unshare`: the parent of the namespace's PID 1, started and reaped
/// by a thread of its own (see the module doc), and the cgroup it runs in.
struct Outer {
    pid: u32,
    cgroup: PathBuf,
    /// Disconnected once the process exited and was reaped.
    exit: mpsc::Receiver<()>,
    keeper: JoinHandle<()>,
}

impl Outer {
    fn spawn(disk: &Disk, binds: &[(PathBuf, PathBuf)]) -> Result<Outer, String> {
        let cgroup = new_cgroup()?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(disk.dir("boot.log"))
            .map_err(|e| format!("open boot.log: {e}"))?;
        let mut command = Command::new("/bin/sh");
        command
            .arg(disk.dir("boot.sh"))
            .arg("outside")
            .arg(&cgroup)
            .arg(disk.dir("console.log"));
        for (from, onto) in binds {
            command.arg(from).arg(onto);
        }
        command
            .env_clear()
            .env("PATH", ROOT_PATH)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        // SAFETY: prctl is a plain system call (async-signal-safe); it changes only the child.
        unsafe {
            command.pre_exec(|| {
                if prctl(PR_SET_PDEATHSIG, SIGKILL) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let (started, spawned) = mpsc::channel();
        let (exited, exit) = mpsc::channel::<()>();
        let keeper = std::thread::Builder::new()
            .name("systemd-host".into())
            .spawn(move || {
                // The death signal fires when THIS thread ends: it lives as long as the child.
                let _exited = exited;
                match command.spawn() {
                    Ok(mut child) => {
                        let _ = started.send(Ok(child.id()));
                        let _ = child.wait();
                    }
                    Err(e) => {
                        let _ = started.send(Err(format!("spawn boot.sh: {e}")));
                    }
                }
            })
            .map_err(|e| format!("spawn a thread: {e}"))?;
        match spawned.recv() {
            Ok(Ok(pid)) => Ok(Outer {
                pid,
                cgroup,
                exit,
                keeper,
            }),
            other => {
                let _ = keeper.join();
                let _ = remove_cgroup(&cgroup);
                Err(match other {
                    Ok(Err(e)) => e,
                    _ => "the boot thread ended".into(),
                })
            }
        }
    }

    fn exited(&self) -> bool {
        matches!(self.exit.try_recv(), Err(TryRecvError::Disconnected))
    }

    /// SIGKILL to `victim` (PID 1, or this process itself), then waits for this process to
    /// exit (it does once PID 1 is gone) and removes the cgroup.
    fn end(self, victim: Option<ProcId>) -> Result<(), String> {
        if let Some(victim) = victim.filter(ProcId::alive) {
            process::signal(victim.pid(), "KILL");
        }
        let gone = wait_for(SETTLE_TIMEOUT, || self.exited().then_some(()));
        if gone.is_none() {
            return Err(format!("pid {} did not end", self.pid));
        }
        let _ = self.keeper.join();
        remove_cgroup(&self.cgroup)
    }
}

/// A new, empty directory in the machine's cgroup v2 hierarchy, under this process's cgroup.
fn new_cgroup() -> Result<PathBuf, String> {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    // `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE SUPER`
    let mount = mountinfo
        .lines()
        .find_map(|line| {
            let (mount, fs) = line.split_once(" - ")?;
            (fs.split_whitespace().next()? == "cgroup2")
                .then(|| mount.split_whitespace().nth(4).map(PathBuf::from))?
        })
        .ok_or("no cgroup2 hierarchy mounted: systemd needs one")?;
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let own = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("this process has no cgroup v2")?;
    let parent = mount.join(own.trim_start_matches('/'));
    remove_stale_cgroups(&parent);
    let dir = parent.join(format!(
        "shipit-systemd-{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Removes the empty cgroups `shipit-systemd-PID-N` in `parent` whose test process PID is
/// gone: one that died without unwinding (its hosts died with it) could not remove its own.
fn remove_stale_cgroups(parent: &Path) {
    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("shipit-systemd-")
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() && !populated(&entry.path()) {
            let _ = remove_tree(&entry.path());
        }
    }
}

/// Whether a process is in the cgroup `dir` or below.
fn populated(dir: &Path) -> bool {
    read_lossy(&dir.join("cgroup.events")).contains("populated 1")
}

/// Removes the cgroup `dir` and those systemd made under it, once no process is left in them
/// (any that is gets SIGKILLed through `cgroup.kill`).
fn remove_cgroup(dir: &Path) -> Result<(), String> {
    if wait_for(SETTLE_TIMEOUT, || (!populated(dir)).then_some(())).is_none() {
        let _ = std::fs::write(dir.join("cgroup.kill"), "1");
        if wait_for(SETTLE_TIMEOUT, || (!populated(dir)).then_some(())).is_none() {
            return Err(format!("processes are left in {}", dir.display()));
        }
    }
    remove_tree(dir)
}

/// rmdir of the cgroup `dir` and every cgroup below it, deepest first (a cgroup directory
/// goes with rmdir once it has no children and no process).
fn remove_tree(dir: &Path) -> Result<(), String> {
    let mut dirs = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < dirs.len() {
        for entry in std::fs::read_dir(&dirs[i]).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(entry.path());
            }
        }
        i += 1;
    }
    for d in dirs.iter().rev() {
        std::fs::remove_dir(d).map_err(|e| format!("rmdir {}: {e}", d.display()))?;
    }
    Ok(())
}
