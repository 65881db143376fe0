//! Several hosts for one target on this one machine, so that tests can deploy to a fleet: host A
//! in the normal mount namespace, every other host in a private one in which its directories
//! sit at A's paths (see [`start_host_b`]). [`TwoHosts`] is the two-host fleet of deploy.rs and
//! of tests in which both hosts share one service (e.g. one PostgreSQL database,
//! tests/it/postgres.rs); [`Fleet`] has as many hosts as a test asks for (each costs an sshd,
//! an nginx and a supervisord: about a second to start). Needs root.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::stack::*;
use crate::*;

/// Linux mount namespaces, through the C library std already links (no extra crate).
pub mod ns {
    use std::ffi::CString;
    use std::os::raw::{c_char, c_int, c_ulong, c_void};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    extern "C" {
        fn unshare(flags: c_int) -> c_int;
        fn mount(
            source: *const c_char,
            target: *const c_char,
            fstype: *const c_char,
            flags: c_ulong,
            data: *const c_void,
        ) -> c_int;
    }

    const CLONE_NEWNS: c_int = 0x0002_0000;
    const MS_BIND: c_ulong = 0x1000;
    const MS_REC: c_ulong = 0x4000;
    const MS_PRIVATE: c_ulong = 0x0004_0000;

    fn c_path(path: &Path) -> CString {
        CString::new(path.as_os_str().as_bytes()).unwrap()
    }

    /// Moves the CALLING THREAD (and every process it spawns from now on) into a new, private
    /// mount namespace: mounts made here are invisible to the rest of the system.
    pub fn enter_private_mount_namespace() {
        // SAFETY: plain syscalls with valid, NUL-terminated arguments.
        unsafe {
            assert_eq!(
                unshare(CLONE_NEWNS),
                0,
                "unshare(CLONE_NEWNS): {}",
                std::io::Error::last_os_error()
            );
            let root = c_path(Path::new("/"));
            assert_eq!(
                mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    MS_REC | MS_PRIVATE,
                    std::ptr::null()
                ),
                0,
                "make / private: {}",
                std::io::Error::last_os_error()
            );
        }
    }

    /// `mount --bind from onto` in the calling thread's mount namespace.
    pub fn bind(from: &Path, onto: &Path) {
        let (from_c, onto_c) = (c_path(from), c_path(onto));
        // SAFETY: as above.
        let rc = unsafe {
            mount(
                from_c.as_ptr(),
                onto_c.as_ptr(),
                std::ptr::null(),
                MS_BIND,
                std::ptr::null(),
            )
        };
        assert_eq!(
            rc,
            0,
            "bind {} onto {}: {}",
            from.display(),
            onto.display(),
            std::io::Error::last_os_error()
        );
    }
}

/// A second "machine" for a target whose configuration names `a`'s paths.
///
/// One target has one `deploy_to`, one nginx site path and one supervisor `conf_dir` for all
/// its hosts, so two hosts on one machine would share them. Host B therefore runs its own
/// sshd, nginx and supervisord inside a private mount namespace in which B's base, nginx and
/// supervisor directories are bind-mounted over A's: everything B's sessions and daemons do at
/// A's paths lands in B's own directories, as on a second machine. The test (outside the
/// namespace) sees B's files at their real paths (`b.base`, ...).
pub fn start_host_b(a: &Host) -> Host {
    let a_base = a.base.path().to_path_buf();
    let a_nginx = a.nginx.dir.path().to_path_buf();
    let a_sup = a.sup.dir.path().to_path_buf();
    let key = a.sshd.client_key.clone();
    std::thread::spawn(move || {
        ns::enter_private_mount_namespace();
        let sup = Supervisord::start();
        let nginx = Nginx::start();
        let base = deploy_owned_tempdir();
        ns::bind(base.path(), &a_base);
        ns::bind(nginx.dir.path(), &a_nginx);
        ns::bind(sup.dir.path(), &a_sup);
        let sshd = Sshd::start_with_client_key(&key);
        Host {
            sup,
            nginx,
            sshd,
            base,
        }
    })
    .join()
    .expect("start host B")
}

/// Host A and `n - 1` hosts like B ([`start_host_b`], started in parallel), and the target's
/// options for all of them: one known_hosts file vouching for every server, nginx listening on
/// a unix socket in the base directory (the same path, A's, is a different socket on each host,
/// where a TCP port would clash on this one machine).
fn start_hosts(n: usize) -> (Host, Vec<Host>, TargetOptions) {
    assert!(n >= 2, "a fleet has two hosts or more");
    prepare_host_user();
    let a = Host::start();
    let others: Vec<Host> = std::thread::scope(|scope| {
        let a = &a;
        let handles: Vec<_> = (1..n)
            .map(|_| scope.spawn(move || start_host_b(a)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let known = a.base.path().join("known_hosts");
    let mut lines = vec![a.sshd.known_hosts_line()];
    lines.extend(others.iter().map(|h| h.sshd.known_hosts_line()));
    std::fs::write(&known, format!("{}\n", lines.join("\n"))).unwrap();
    let mut hosts = vec![a.sshd.host_spec()];
    hosts.extend(others.iter().map(|h| h.sshd.host_spec()));
    let options = TargetOptions {
        hosts,
        known_hosts: Some(known),
        listen: format!("unix:{}", a.base.path().join("http.sock").display()),
        keep_releases: None,
        extra: String::new(),
        app: "app".into(),
    };
    (a, others, options)
}

/// Stops `hosts`' daemons (in parallel), saying how long it took (tests print their timings).
fn stop_hosts(hosts: &mut [Host]) {
    let t = Instant::now();
    std::thread::scope(|scope| {
        for host in hosts.iter_mut() {
            scope.spawn(move || {
                host.sup.stop();
                host.nginx.stop();
                host.sshd.stop();
            });
        }
    });
    eprintln!(
        "[timing] {} more host(s): {:.1}s stopping daemons",
        hosts.len(),
        t.elapsed().as_secs_f64()
    );
}

/// `n` hosts for one target: host 0 is the stack's own (the target names its paths), the others
/// are each in a private mount namespace, like host B ([`start_host_b`]). Hosts are in target order, and
/// host 0 is the primary.
pub struct Fleet {
    /// Host 0, the project and shipit's HOME.
    pub stack: Stack,
    /// Hosts 1 to n-1.
    pub others: Vec<Host>,
    /// Each host's `deploy_to`, at its real path outside its namespace.
    pub to: Vec<PathBuf>,
    /// `deploy@127.0.0.1:PORT` of each host, as shipit names them.
    pub specs: Vec<String>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        stop_hosts(&mut self.others);
    }
}

impl Fleet {
    pub fn start(n: usize) -> Fleet {
        let (a, others, options) = start_hosts(n);
        let mut to = vec![a.deploy_to()];
        to.extend(others.iter().map(|h| h.base.path().join("app")));
        Fleet {
            specs: options.hosts.clone(),
            to,
            stack: Stack::new(a, 0, options),
            others,
        }
    }

    /// Host `i`.
    pub fn host(&self, i: usize) -> &Host {
        match i {
            0 => &self.stack.host,
            _ => &self.others[i - 1],
        }
    }

    /// nginx's unix socket on host `i` (the site listens there), at its real path.
    pub fn http(&self, i: usize) -> PathBuf {
        self.host(i).base.path().join("http.sock")
    }

    /// Whether host `i`'s `deploy_to` is locked.
    pub fn locked(&self, i: usize) -> bool {
        self.to[i].join(".shipit/lock").exists()
    }

    /// Asserts that every host's `current` is release `id`, that its site serves it, and that
    /// no host is locked.
    pub fn all_serve(&self, id: &str) {
        for i in 0..self.to.len() {
            assert_eq!(
                current_of(&self.to[i]),
                Some(format!("releases/{id}")),
                "host {i}"
            );
            serves_release_on(self.host(i), &self.http(i), id);
            assert!(!self.locked(i), "host {i} is still locked");
        }
    }
}

/// The index page nginx serves on `socket`, once it shows `release: ID`.
pub fn serves_release_on(host: &Host, socket: &Path, id: &str) -> String {
    let needle = format!("release: {id}\n");
    let mut last = None;
    wait_for(SERVE_TIMEOUT, || {
        let answer = http_get_unix(socket, "/");
        let ok = matches!(&answer, Ok((200, body)) if body.contains(&needle));
        let body = answer.as_ref().map(|(_, b)| b.clone()).ok();
        last = Some(answer);
        if ok {
            body
        } else {
            None
        }
    })
    .unwrap_or_else(|| {
        panic!(
            "{} never served release {id}; last: {last:?}\nnginx error.log:\n{}\nsupervisord log:\n{}",
            socket.display(),
            host.nginx.error_log(),
            host.sup.log()
        )
    })
}

/// Two hosts (A in the normal namespace, B in its own) for one target, with the paths the test
/// uses to look at each.
pub struct TwoHosts {
    /// Host A (the target's paths are A's), the project and shipit's HOME.
    pub stack: Stack,
    pub b: Host,
    /// nginx's unix socket on A and on B (the site listens there instead of on a TCP port).
    pub a_http: PathBuf,
    pub b_http: PathBuf,
    /// `deploy_to` of A and, at its real path outside B's namespace, of B.
    pub a_to: PathBuf,
    pub b_to: PathBuf,
    /// `deploy@127.0.0.1:PORT` of A and of B, as shipit names them.
    pub a_spec: String,
    pub b_spec: String,
}

impl Drop for TwoHosts {
    fn drop(&mut self) {
        stop_hosts(std::slice::from_mut(&mut self.b));
    }
}

impl TwoHosts {
    pub fn start() -> TwoHosts {
        let (a, mut others, options) = start_hosts(2);
        let b = others.pop().expect("host B");
        let listen_path = a.base.path().join("http.sock");
        TwoHosts {
            a_http: listen_path,
            b_http: b.base.path().join("http.sock"),
            a_to: a.deploy_to(),
            b_to: b.base.path().join("app"),
            a_spec: a.sshd.host_spec(),
            b_spec: b.sshd.host_spec(),
            stack: Stack::new(a, 0, options),
            b,
        }
    }

    /// `(deploy_to, host, http socket)` of A and of B.
    pub fn hosts(&self) -> [(&PathBuf, &Host, &PathBuf); 2] {
        [
            (&self.a_to, &self.stack.host, &self.a_http),
            (&self.b_to, &self.b, &self.b_http),
        ]
    }

    /// Appends `toml` (lines of the `[targets.test]` table) to the target and commits it.
    pub fn add_target_toml(&mut self, toml: &str) {
        self.stack.set_options(|o| o.extra.push_str(toml));
    }

    /// The `deployment` environment installs `file` (e.g. `requirements/postgres.txt`).
    pub fn set_requirements(&mut self, file: &str) {
        self.stack.set_requirements(file);
    }

    /// Writes `deploy_to/shared/REL` on both hosts (mode 0600, owned by deploy, like a secret
    /// an operator put there before the first deploy), creating `deploy_to` and `shared/`.
    pub fn write_shared_file(&self, rel: &str, contents: &str) {
        assert!(
            !rel.starts_with('/') && !rel.split('/').any(|c| c == ".." || c.is_empty()),
            "{rel:?} is not a relative path inside shared/"
        );
        for (to, _, _) in self.hosts() {
            // deploy_to, shared/ and the file's directories, each owned by deploy.
            let mut dir = to.clone();
            mkdir_as_deploy(&dir);
            for component in Path::new("shared").join(rel).parent().unwrap().iter() {
                dir.push(component);
                mkdir_as_deploy(&dir);
            }
            let file = to.join("shared").join(rel);
            write_as_deploy(&file, contents);
            chmod(&file, 0o600);
        }
    }

    /// [`TwoHosts::write_shared_file`], and `shared_files = [REL]` in the target so that every
    /// release links it (call it once: the target gets a single `shared_files` list).
    pub fn share_file(&mut self, rel: &str, contents: &str) {
        assert!(
            !self.stack.options.extra.contains("shared_files"),
            "the target already has a shared_files list:\n{}",
            self.stack.options.extra
        );
        self.write_shared_file(rel, contents);
        let list = serde_json::to_string(&[rel]).unwrap();
        self.add_target_toml(&format!("shared_files = {list}\n"));
    }
}
