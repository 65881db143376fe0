//! What `shipit image` is tested against: a real base image, a real registry and a real OCI
//! runtime, all from Debian packages (`.ci/setup` installs them).
//!
//! - [`base_image`]: a Debian 12 root filesystem with `python3` made by `mmdebstrap` from the
//!   Debian mirror (there is no Docker Hub here), turned into an OCI layout with `umoci`, once
//!   (kept in the test's scratch directory under the target directory; later runs reuse it).
//! - [`Registry`]: the CNCF distribution registry (`docker-registry`) on a free loopback port,
//!   plain HTTP, storage in a temporary directory.
//! - [`Container`]: an image unpacked with `umoci unpack` and run by `runc` in the host's
//!   network namespace (so a loopback port reaches it), killed and deleted when dropped.
//!   `crun` is not used: it refuses this machine's hybrid cgroup v1/v2 mount.
//!
//! The same root filesystems and runtime run shipit itself on an older Debian: [`bullseye`]
//! (Debian 11, glibc 2.31, with git) is where the wheel's binary builds and deploys the example
//! ([`Bundle::run_command`]), to prove the wheel portable (tests/it/wheel.rs).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use super::process::stop_tree;
use super::run::{Run, DEPLOY_TIMEOUT};
use super::{free_port, wait_for};

/// The base's Python, as `image.python` names it.
pub const BASE_PYTHON: &str = "/usr/bin/python3.11";

/// `DIR:REF` of an OCI layout holding Debian 12 with python3, built on first use under
/// `scratch` (a test's `CARGO_TARGET_TMPDIR`, which outlives the run, so later runs reuse it).
pub fn base_image(scratch: &Path) -> String {
    static BASE: OnceLock<String> = OnceLock::new();
    BASE.get_or_init(|| {
        debian_layout(
            scratch,
            "shipit-test-base-bookworm-python3-v1",
            "bookworm",
            "python3,ca-certificates",
        )
    })
    .clone()
}

/// `DIR:REF` of an OCI layout holding Debian 11 (glibc 2.31) with git: a deploying machine
/// older than the one the tests run on, built on first use under `scratch` like [`base_image`].
pub fn bullseye(scratch: &Path) -> String {
    static BULLSEYE: OnceLock<String> = OnceLock::new();
    BULLSEYE
        .get_or_init(|| debian_layout(scratch, "shipit-test-bullseye-git-v1", "bullseye", "git"))
        .clone()
}

/// `DIR:SUITE` of the layout `scratch/name`: Debian `suite`'s essential packages plus `include`
/// (comma-separated), made now unless a run before made it.
fn debian_layout(scratch: &Path, name: &str, suite: &str, include: &str) -> String {
    let dir = scratch.join(name);
    if !dir.join("index.json").exists() {
        build_layout(&dir, suite, include);
    }
    format!("{}:{suite}", dir.display())
}

fn run(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn build_layout(dir: &Path, suite: &str, include: &str) {
    let parent = dir.parent().unwrap();
    std::fs::create_dir_all(parent).unwrap();
    let work = tempfile::Builder::new()
        .prefix(".shipit-test-base-")
        .tempdir_in(parent)
        .unwrap();
    let rootfs = work.path().join("rootfs.tar");
    run(Command::new("mmdebstrap")
        .args([
            "--quiet",
            "--variant=essential",
            &format!("--include={include}"),
        ])
        .args(["--dpkgopt=path-exclude=/usr/share/doc/*"])
        .args(["--dpkgopt=path-exclude=/usr/share/man/*"])
        .args(["--dpkgopt=path-exclude=/usr/share/locale/*"])
        .arg(suite)
        .arg(&rootfs)
        .env("SOURCE_DATE_EPOCH", "1700000000"));
    let layout = work.path().join("layout");
    let image = format!("{}:{suite}", layout.display());
    run(Command::new("umoci")
        .arg("init")
        .arg("--layout")
        .arg(&layout));
    run(Command::new("umoci").args(["new", "--image", &image]));
    run(Command::new("umoci")
        .args(["raw", "add-layer", "--image", &image])
        .arg(&rootfs));
    run(Command::new("umoci").args([
        "config",
        "--image",
        &image,
        "--config.env",
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "--config.env",
        "LANG=C.UTF-8",
    ]));
    // Another test process may have finished first: then its layout stays.
    let _ = std::fs::rename(&layout, dir);
}

/// `skopeo ARGS`: its stdout, or a panic with what it said.
pub fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A private distribution registry on a free loopback port (plain HTTP).
pub struct Registry {
    child: Child,
    _dir: TempDir,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Registry {
    /// Starts it and waits until it answers `/v2/`.
    pub fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry (apt-get install docker-registry)");
        let mut registry = Registry {
            child,
            _dir: dir,
            port,
        };
        let up = wait_for(Duration::from_secs(20), || {
            if let Ok(Some(status)) = registry.child.try_wait() {
                panic!("docker-registry exited: {status}");
            }
            super::http_get(port, "/v2/").ok().map(|_| ())
        });
        assert!(up.is_some(), "docker-registry did not answer on {port}");
        registry
    }

    /// `127.0.0.1:PORT/name`.
    pub fn reference(&self, name: &str) -> String {
        format!("127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        stop_tree(&mut self.child, Duration::from_secs(5), |pid| {
            super::process::signal(pid, "TERM");
        });
    }
}

/// An image unpacked into a runtime bundle (`umoci unpack`).
pub struct Bundle {
    dir: TempDir,
    config: Value,
}

impl Bundle {
    /// Unpacks image `reference` of layout `layout`, in the host's network namespace, without a
    /// terminal.
    pub fn unpack(layout: &Path, reference: &str) -> Bundle {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("bundle");
        run(Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:{reference}", layout.display()))
            .arg(&bundle));
        let text = std::fs::read_to_string(bundle.join("config.json")).unwrap();
        let mut config: Value = serde_json::from_str(&text).unwrap();
        config["process"]["terminal"] = Value::Bool(false);
        let namespaces = config["linux"]["namespaces"].as_array_mut().unwrap();
        namespaces.retain(|n| n["type"] != "network");
        Bundle { dir, config }
    }

    /// The runtime configuration umoci wrote (from the image config), as edited so far.
    pub fn config(&self) -> &Value {
        &self.config
    }

    /// Bind-mounts the host directory (or file) `source` at `destination` in every later run
    /// (as a volume of an orchestrator would be).
    pub fn mount(&mut self, source: &Path, destination: &str) {
        self.config["mounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "destination": destination,
                "type": "bind",
                "source": source,
                "options": ["rbind", "rw"],
            }));
    }

    /// A file of the unpacked root filesystem.
    pub fn rootfs(&self, rel: &str) -> PathBuf {
        self.dir.path().join("bundle/rootfs").join(rel)
    }

    /// Writes the runtime configuration with its process edited by `edit`; the bundle's path.
    fn prepare(&self, edit: impl FnOnce(&mut Value)) -> PathBuf {
        let mut config = self.config.clone();
        edit(&mut config["process"]);
        let bundle = self.dir.path().join("bundle");
        std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
        bundle
    }

    fn runc(&self) -> Command {
        let mut runc = Command::new("runc");
        runc.arg("--root").arg(self.dir.path().join("runc"));
        runc
    }

    /// Runs `args` in the container to its end (a one-off command such as `migrate`):
    /// `(success, stdout + stderr)`.
    pub fn run_once(&self, args: &[String], env: &[(&str, &str)]) -> (bool, String) {
        let bundle = self.prepare(|process| {
            process["args"] = serde_json::json!(args);
            set_env(process, pairs(env));
        });
        let id = container_id();
        let out = self
            .runc()
            .arg("run")
            .arg("--bundle")
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let _ = self.runc().args(["delete", "--force", &id]).output();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Runs `command` in the container as it would run here, with `program` (a path in the
    /// container, e.g. a binary [`Bundle::mount`]ed there) instead of its program: its arguments,
    /// the environment it sets or removes (over the image's), its working directory. What it
    /// did, killed after [`DEPLOY_TIMEOUT`] like a run of shipit here.
    pub fn run_command(&self, program: &str, command: &std::process::Command) -> Run {
        let text = |s: &std::ffi::OsStr| s.to_str().expect("UTF-8").to_string();
        let mut args = vec![program.to_string()];
        args.extend(command.get_args().map(text));
        let bundle = self.prepare(|process| {
            process["args"] = serde_json::json!(args);
            set_env(
                process,
                command.get_envs().map(|(n, v)| (text(n), v.map(text))),
            );
            if let Some(dir) = command.get_current_dir() {
                process["cwd"] = Value::String(text(dir.as_os_str()));
            }
        });
        let id = container_id();
        let mut runc = self.runc();
        runc.stdin(Stdio::null());
        let mut runc = assert_cmd::Command::from_std(runc);
        runc.arg("run")
            .arg("--bundle")
            .arg(&bundle)
            .arg(&id)
            .timeout(DEPLOY_TIMEOUT);
        let run = Run::of(&mut runc);
        let _ = self.runc().args(["delete", "--force", &id]).output();
        run
    }

    /// Starts the image's own process (entrypoint + cmd) with `env` added.
    pub fn start(&self, env: &[(&str, &str)]) -> Container<'_> {
        let bundle = self.prepare(|process| set_env(process, pairs(env)));
        let id = container_id();
        let log = self.dir.path().join(format!("{id}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = self
            .runc()
            .arg("run")
            .arg("--bundle")
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start runc (apt-get install runc)");
        Container {
            bundle: self,
            child,
            id,
            log,
        }
    }
}

/// Sets (`Some`) or removes (`None`) each variable of `env` in the process's environment,
/// over the image's.
fn set_env(process: &mut Value, env: impl IntoIterator<Item = (String, Option<String>)>) {
    let list = process["env"].as_array_mut().unwrap();
    for (name, value) in env {
        list.retain(|e| !e.as_str().unwrap().starts_with(&format!("{name}=")));
        if let Some(value) = value {
            list.push(Value::String(format!("{name}={value}")));
        }
    }
}

/// `env` as [`set_env`] takes it: every variable set.
fn pairs<'a>(env: &'a [(&str, &str)]) -> impl Iterator<Item = (String, Option<String>)> + 'a {
    env.iter()
        .map(|(n, v)| (n.to_string(), Some(v.to_string())))
}

fn container_id() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!(
        "shipit-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    )
}

/// A running container; killed and deleted when dropped.
pub struct Container<'b> {
    bundle: &'b Bundle,
    child: Child,
    id: String,
    log: PathBuf,
}

impl Container<'_> {
    /// What the container printed so far.
    pub fn log(&self) -> String {
        super::read_lossy(&self.log)
    }

    /// Whether runc (and so the container's process) still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `runc exec` of `args` in the running container: its stdout.
    pub fn exec(&self, args: &[&str]) -> String {
        let out = self
            .bundle
            .runc()
            .arg("exec")
            .arg(&self.id)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let id = self.id.clone();
        let runc = |args: &[&str]| {
            let _ = self.bundle.runc().args(args).output();
        };
        runc(&["kill", &id, "TERM"]);
        if !super::process::wait_timeout(&mut self.child, Duration::from_secs(10)) {
            runc(&["kill", &id, "KILL"]);
            let _ = self.child.wait();
        }
        runc(&["delete", "--force", &id]);
    }
}
