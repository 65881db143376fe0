//! The PyPI wheel (`pyproject.toml`) is what the README says it is: it installs with pip into a
//! fresh venv and with `uv tool install`, its `shipit` is this checkout's, it needs no glibc
//! newer than 2.17 (manylinux2014), and that same binary builds the example (byte-identical to
//! this checkout's build) and deploys it over SSH from Debian 11 (glibc 2.31): a root filesystem
//! made by mmdebstrap, run by runc in this machine's network namespace.
//!
//! Building the wheel takes minutes, so `cargo test` skips this test (ignored);
//! `tests/dist/wheel.sh` builds the wheel as a release does and runs it with `SHIPIT_WHEEL`
//! naming the wheel. Needs root, python3-venv, uv, objdump, mmdebstrap, umoci and runc
//! (`.ci/setup`), and Debian's mirror for the root filesystem the first time.

use std::path::{Path, PathBuf};
use std::process::Command;

use support::image::{bullseye, Bundle};
use support::project::project;
use support::stack::{Stack, TARGET};
use support::{shipit_bin, Run};

/// Where the wheel's binary is in the Debian 11 container.
const IN_CONTAINER: &str = "/usr/local/bin/shipit";

/// `program args`, which must succeed: its stdout.
fn stdout_of(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `shipit VERSION (REVISION` of a `--version` line: what two builds of one checkout share (the
/// build day may differ).
fn version_and_revision(line: &str) -> &str {
    line.trim().rsplit_once(' ').expect("a version line").0
}

/// The newest `GLIBC_x.y` symbol version the dynamic symbols of `binary` need.
fn glibc_floor(binary: &Path) -> (u32, u32) {
    let symbols = stdout_of(Command::new("objdump").arg("-T").arg(binary));
    symbols
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|word| word.strip_prefix("GLIBC_"))
        .filter_map(|version| {
            let (major, minor) = version.split_once('.')?;
            let minor = minor.split('.').next()?;
            Some((major.parse().ok()?, minor.parse().ok()?))
        })
        .max()
        .expect("the binary links glibc")
}

/// pip and `uv tool install` of `wheel` into `dir`: the two installed `shipit`s.
fn install(wheel: &Path, dir: &Path) -> [PathBuf; 2] {
    let venv = dir.join("venv");
    stdout_of(Command::new("python3").arg("-m").arg("venv").arg(&venv));
    stdout_of(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--no-index"])
            .arg(wheel),
    );
    stdout_of(
        Command::new("uv")
            .args(["tool", "install", "--offline", "--from"])
            .arg(wheel)
            .arg("shipit")
            .env("UV_TOOL_DIR", dir.join("uv-tools"))
            .env("UV_TOOL_BIN_DIR", dir.join("uv-bin"))
            .env("UV_CACHE_DIR", dir.join("uv-cache"))
            .env("UV_PYTHON_DOWNLOADS", "never"),
    );
    [venv.join("bin/shipit"), dir.join("uv-bin/shipit")]
}

#[test]
#[ignore = "needs a built wheel: tests/dist/wheel.sh builds one and runs this"]
fn the_wheel_installs_with_pip_and_uv_and_deploys_from_debian_11() {
    let wheel = PathBuf::from(
        std::env::var_os("SHIPIT_WHEEL").expect("SHIPIT_WHEEL names the wheel to test"),
    );
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    let tag = format!(
        "shipit-{}-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(name, tag, "the wheel's tags");

    // Installed both ways, it is one binary: this checkout's, needing glibc 2.17 at most.
    let dir = tempfile::tempdir().unwrap();
    let [pip, uv] = install(&wheel, dir.path());
    assert_eq!(std::fs::read(&pip).unwrap(), std::fs::read(&uv).unwrap());
    let version = stdout_of(Command::new(&pip).arg("--version"));
    let ours = stdout_of(Command::new(shipit_bin()).arg("--version"));
    assert_eq!(
        version_and_revision(&version),
        version_and_revision(&ours),
        "{version} is not this checkout's shipit ({ours})"
    );
    assert_eq!(stdout_of(Command::new(&uv).arg("--version")), version);
    let floor = glibc_floor(&pip);
    assert!(floor <= (2, 17), "needs glibc {}.{}", floor.0, floor.1);
    eprintln!(
        "[wheel] {name}: {}, glibc >= {}.{}",
        version.trim(),
        floor.0,
        floor.1
    );

    // Debian 11: the same binary, mounted in; the temporary directories (projects, keys, HOME)
    // at the same paths as here.
    let layout = bullseye(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let (layout, reference) = layout.rsplit_once(':').unwrap();
    let mut bundle = Bundle::unpack(Path::new(layout), reference);
    let tmp = std::env::temp_dir().canonicalize().unwrap();
    bundle.mount(&tmp, tmp.to_str().unwrap());
    bundle.mount(&pip, IN_CONTAINER);
    let ldd = bundle.run_command("/usr/bin/ldd", Command::new("ldd").arg("--version"));
    ldd.expect_code(0);
    assert!(
        ldd.stdout.lines().next().unwrap().ends_with(" 2.31"),
        "not glibc 2.31: {}",
        ldd.stdout
    );
    let there = bundle.run_command(IN_CONTAINER, Command::new("shipit").arg("--version"));
    there.expect_code(0);
    assert_eq!(there.stdout, version);

    // It builds the example into the archive this checkout's binary builds, byte for byte.
    let project = project();
    let build = |out: &str| {
        let mut command = project.shipit_with_home(dir.path());
        command
            .args(["build", "--target", "local", "--json", "-o"])
            .arg(project.out(out));
        command
    };
    let here = Run::of(&mut assert_cmd::Command::from_std(build("here.tar.gz")));
    here.expect_code(0);
    let old = bundle.run_command(IN_CONTAINER, &build("bullseye.tar.gz"));
    old.expect_code(0);
    assert_eq!(
        old.json()["sha256"],
        here.json()["sha256"],
        "{}",
        old.stdout
    );
    assert_eq!(
        std::fs::read(project.out("bullseye.tar.gz")).unwrap(),
        std::fs::read(project.out("here.tar.gz")).unwrap()
    );

    // And deploys it over SSH: the host serves the release, and its log names this shipit and
    // the container (its own hostname) as where the deploy ran.
    let hostname = |run: Run| run.expect_code(0).stdout.trim().to_string();
    let container = hostname(bundle.run_command(
        "/bin/cat",
        Command::new("cat").arg("/proc/sys/kernel/hostname"),
    ));
    let this_machine = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_ne!(
        container,
        this_machine.trim(),
        "the container has a hostname of its own"
    );
    let stack = Stack::start();
    let mut deploy = stack.project.shipit_with_home(stack.home.path());
    deploy.args(["deploy", "--target", TARGET, "--json"]);
    let run = bundle.run_command(IN_CONTAINER, &deploy);
    run.expect_code(0);
    let json = run.json();
    let release = json["release"].as_str().unwrap().to_string();
    stack.serves_release(&release);
    let long = version.trim().strip_prefix("shipit ").unwrap();
    let [_, revision, built] = ["version", "revision", "built"].map(|k| {
        json["shipit"][k]
            .as_str()
            .unwrap_or_else(|| panic!("no shipit.{k}: {json}"))
            .to_string()
    });
    assert_eq!(json["shipit"]["version"], env!("CARGO_PKG_VERSION"));
    let short = revision.get(..12).unwrap_or(&revision);
    assert!(long.contains(&format!("({short}")), "{long}: {json}");
    assert!(long.ends_with(&format!(" {built})")), "{long}: {json}");
    let line = stack.log().pop().expect("a deploy log line");
    assert_eq!(line[1], format!("tester@{container}"), "{line:?}");
    assert_eq!(line[2..4], ["deploy".to_string(), release], "{line:?}");
    assert_eq!(line[5..], ["ok".to_string(), long.to_string()], "{line:?}");
}
