//! The project shipit builds and deploys in tests: a throw-away copy of the example project
//! (`tests/example`) under real git with fixed commit dates, the commands that run `shipit`
//! against it (in a sandbox, with git kept away from the user's config), and a reader for the
//! archives it writes. Used by every test, from `build` (no daemons) to the stack.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use assert_cmd::Command;
use tempfile::TempDir;

/// Author and committer date of every commit the helpers make.
pub const COMMIT_DATE: &str = "2026-01-02T03:04:05Z";
/// [`COMMIT_DATE`] as a Unix timestamp.
pub const COMMIT_EPOCH: u64 = 1_767_323_045;
/// [`COMMIT_DATE`] as a release id.
pub const COMMIT_RELEASE: &str = "20260102030405";

/// The example project shipped in `tests/example` (beside this crate's `tests/support`).
pub fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/support is inside tests/")
        .join("example")
}

/// A copy of the example project in a fresh temporary directory (the "sandbox"):
/// `SANDBOX/hello` is the project, `SANDBOX/out` is where tests put archives.
pub struct Project {
    dir: TempDir,
    /// The temporary directory holding the project.
    pub sandbox: PathBuf,
    /// The project root (holds shipit.toml).
    pub root: PathBuf,
}

/// The example project, committed to a new git repository at [`COMMIT_DATE`].
pub fn project() -> Project {
    let project = project_without_git();
    project.git(&["init", "-q"]);
    project.git(&["config", "user.name", "Shipit Tests"]);
    project.git(&["config", "user.email", "tests@shipit.invalid"]);
    project.commit_all("initial");
    project
}

/// A project named `name` that `make` writes into the (not yet existing) directory it is given,
/// committed to a new git repository at [`COMMIT_DATE`] (the benches' generated projects).
pub fn generated(name: &str, make: impl FnOnce(&Path)) -> Project {
    let dir = tempfile::Builder::new()
        .prefix("shipit-bench-")
        .tempdir()
        .expect("create a temporary directory");
    let sandbox = dir.path().canonicalize().expect("canonical tempdir");
    let root = sandbox.join(name);
    make(&root);
    let project = Project { dir, sandbox, root };
    project.git(&["init", "-q"]);
    project.git(&["config", "user.name", "Shipit Bench"]);
    project.git(&["config", "user.email", "bench@shipit.invalid"]);
    project.commit_all("generated");
    project
}

/// The example project, copied without any git repository.
pub fn project_without_git() -> Project {
    let dir = tempfile::Builder::new()
        .prefix("shipit-test-")
        .tempdir()
        .expect("create a temporary directory");
    // Canonical, so that git's ceiling directory and shipit's paths agree.
    let sandbox = dir.path().canonicalize().expect("canonical tempdir");
    let root = sandbox.join("hello");
    copy_tree(&example_dir(), &root);
    Project { dir, sandbox, root }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        // What running the example by hand leaves in tests/example (all of it git-ignored).
        let skip = [
            ".shipit",
            "__pycache__",
            ".git",
            ".venv",
            "var",
            "staticfiles",
            ".env",
        ];
        if skip.iter().any(|n| name == *n) {
            continue;
        }
        let kind = entry.file_type().unwrap();
        let dest = to.join(&name);
        if kind.is_dir() {
            copy_tree(&entry.path(), &dest);
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path()).unwrap(), &dest).unwrap();
        } else {
            fs::copy(entry.path(), &dest).unwrap(); // keeps the permission bits (manage.py is 0755)
        }
    }
}

/// Keeps git (run by the tests and by shipit) inside the sandbox and away from the user's config:
/// git never looks for a repository above the sandbox (it does not step *into* a ceiling
/// directory, so the ceiling is the sandbox's parent).
pub fn isolate_git(command: &mut StdCommand, sandbox: &Path) {
    for var in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_COMMON_DIR",
        "GIT_NAMESPACE",
    ] {
        command.env_remove(var);
    }
    command
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env(
            "GIT_CEILING_DIRECTORIES",
            sandbox.parent().unwrap_or(sandbox),
        );
}

impl Project {
    /// Leaves the sandbox on disk when the project goes (to look at it afterwards); returns
    /// its path.
    pub fn keep(self) -> PathBuf {
        self.dir.keep()
    }

    /// `rel` inside the project.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// `name` in the sandbox's `out/` directory (outside the project).
    pub fn out(&self, name: &str) -> PathBuf {
        self.sandbox.join("out").join(name)
    }

    /// Writes `contents` to `rel`, creating directories.
    pub fn write(&self, rel: &str, contents: &str) {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
    }

    /// The text of `rel`.
    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap()
    }

    /// Makes `rel` a symlink to `target`.
    pub fn symlink(&self, target: &str, rel: &str) {
        std::os::unix::fs::symlink(target, self.path(rel)).unwrap();
    }

    /// Runs git in the project at [`COMMIT_DATE`]; panics unless it succeeds; returns stdout.
    pub fn git(&self, args: &[&str]) -> String {
        let mut command = StdCommand::new("git");
        command
            .arg("-C")
            .arg(&self.root)
            .args(args)
            .env("GIT_AUTHOR_DATE", COMMIT_DATE)
            .env("GIT_COMMITTER_DATE", COMMIT_DATE);
        isolate_git(&mut command, &self.sandbox);
        let out = command.output().expect("run git");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Stages everything (as .gitignore allows) and commits it.
    pub fn commit_all(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
    }

    /// Stages `paths` even if .gitignore names them, and commits everything staged.
    pub fn force_commit(&self, paths: &[&str], message: &str) {
        let mut args = vec!["add", "-f", "--"];
        args.extend_from_slice(paths);
        self.git(&args);
        self.git(&["commit", "-q", "-m", message]);
    }

    /// `git rev-parse HEAD`.
    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"]).trim().to_string()
    }

    /// What `git ls-files` lists, sorted.
    pub fn tracked_files(&self) -> Vec<String> {
        let mut files: Vec<String> = self
            .git(&["ls-files", "-z"])
            .split('\0')
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect();
        files.sort();
        files
    }

    /// `shipit -C PROJECT` (absolute) run in the sandbox with a clean environment.
    pub fn shipit(&self) -> Command {
        let mut shipit = self.shipit_in(&self.sandbox);
        shipit.arg("-C").arg(&self.root);
        shipit
    }

    /// `shipit` run in `dir`, with no SOURCE_DATE_EPOCH, no colour and git kept in the sandbox.
    pub fn shipit_in(&self, dir: &Path) -> Command {
        Command::from_std(self.std_shipit_in(dir))
    }

    /// [`Project::shipit`] as an operator's deploy runs it: `HOME` is `home` (so shipit reads
    /// and writes that `~/.ssh`, not root's), `USER` is `tester` (the name the lock and the
    /// deploy log record) and there is no ssh-agent. A std `Command`, so that a test can also
    /// spawn it and watch its output as it comes; [`crate::run::Run::of`] runs it to its end.
    pub fn shipit_with_home(&self, home: &Path) -> StdCommand {
        let mut shipit = self.std_shipit_in(&self.sandbox);
        shipit
            .arg("-C")
            .arg(&self.root)
            .env("HOME", home)
            .env("USER", "tester")
            .env_remove("SSH_AUTH_SOCK");
        shipit
    }

    fn std_shipit_in(&self, dir: &Path) -> StdCommand {
        let mut shipit = StdCommand::new(crate::shipit_bin());
        shipit
            .current_dir(dir)
            .env_remove("SOURCE_DATE_EPOCH")
            .env("NO_COLOR", "1");
        isolate_git(&mut shipit, &self.sandbox);
        shipit
    }

    /// Edits shipit.toml by replacing `from` (which must occur) with `to`.
    pub fn edit_config(&self, from: &str, to: &str) {
        let text = self.read("shipit.toml");
        assert!(text.contains(from), "shipit.toml has no `{from}`");
        self.write("shipit.toml", &text.replacen(from, to, 1));
    }
}

/// One entry of an archive, as read back with the tar crate.
#[derive(Debug, Clone)]
pub struct ArchivedEntry {
    pub path: String,
    pub kind: tar::EntryType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub link: Option<String>,
    pub bytes: Vec<u8>,
}

/// The entries of a `tar.gz`, in archive order.
#[derive(Debug, Clone)]
pub struct Archive {
    pub entries: Vec<ArchivedEntry>,
}

impl Archive {
    /// Reads the `tar.gz` at `path`.
    pub fn open(path: &Path) -> Archive {
        let file =
            fs::File::open(path).unwrap_or_else(|e| panic!("open archive {}: {e}", path.display()));
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut entries = Vec::new();
        for entry in archive.entries().expect("read the tar stream") {
            let mut entry = entry.expect("read a tar entry");
            let header = entry.header().clone();
            let path = entry.path().unwrap().to_str().unwrap().to_string();
            let link = entry
                .link_name()
                .unwrap()
                .map(|l| l.to_str().unwrap().to_string());
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            entries.push(ArchivedEntry {
                path,
                kind: header.entry_type(),
                mode: header.mode().unwrap(),
                uid: header.uid().unwrap(),
                gid: header.gid().unwrap(),
                mtime: header.mtime().unwrap(),
                link,
                bytes,
            });
        }
        Archive { entries }
    }

    /// Entry paths in archive order.
    pub fn paths(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.path.clone()).collect()
    }

    /// Whether the archive has an entry at `path`.
    pub fn contains(&self, path: &str) -> bool {
        self.entries.iter().any(|e| e.path == path)
    }

    /// The entry at `path`; panics when there is none.
    pub fn entry(&self, path: &str) -> &ArchivedEntry {
        self.entries
            .iter()
            .find(|e| e.path == path)
            .unwrap_or_else(|| panic!("`{path}` is not in the archive: {:?}", self.paths()))
    }

    /// The content of `path` as text.
    pub fn text(&self, path: &str) -> String {
        String::from_utf8(self.entry(path).bytes.clone()).unwrap()
    }

    /// The parsed `.shipit/manifest.json`.
    pub fn manifest(&self) -> serde_json::Value {
        serde_json::from_slice(&self.entry(".shipit/manifest.json").bytes)
            .expect("manifest is JSON")
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh `django-admin startproject NAME` (Django from PyPI, installed with uv into a virtualenv
/// in the sandbox, at `SANDBOX/.django`), not under git: what a new user starts from. The
/// virtualenv's python is at `Project::path("../.django/bin/python")`.
pub fn startproject(name: &str) -> Project {
    let dir = tempfile::Builder::new()
        .prefix("shipit-test-")
        .tempdir()
        .expect("create a temporary directory");
    let sandbox = dir.path().canonicalize().expect("canonical tempdir");
    let venv = sandbox.join(".django");
    let run = |command: &mut StdCommand| {
        let out = command.output().expect("run uv / django-admin");
        assert!(
            out.status.success(),
            "{command:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(StdCommand::new("uv").args(["venv", "-q"]).arg(&venv));
    run(StdCommand::new("uv")
        .args(["pip", "install", "-q", "--python"])
        .arg(venv.join("bin/python"))
        .arg("django"));
    run(StdCommand::new(venv.join("bin/django-admin"))
        .args(["startproject", name])
        .current_dir(&sandbox));
    let root = sandbox.join(name);
    Project { dir, sandbox, root }
}
