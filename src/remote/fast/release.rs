//! Making a release: facts, the archive's upload and check, unpacking, env, shared paths, the
//! virtualenv (uv or pip stubbed: a missing tool, a full disk), the gate and hooks.

use super::{each_shell, Host};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub(super) const COVERS: &[&str] = &[
    "step_facts",
    "step_upload",
    "step_verify",
    "step_unpack",
    "step_env",
    "step_shared",
    "step_virtualenv",
    "step_prepared",
    "step_gate",
    "step_hook",
];

/// An archive of `files` (path, content) in the kept archives, named by its sha256, which the
/// preamble's SHA is set to.
fn archive(host: &mut Host, files: &[(&str, &str)]) {
    let src = host.path("src");
    for (path, content) in files {
        host.write(src.join(path), content);
    }
    let tmp = host.path("archive.tar.gz");
    let ok = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&tmp)
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let out = std::process::Command::new("sha256sum")
        .arg(&tmp)
        .output()
        .unwrap();
    let sha = String::from_utf8(out.stdout).unwrap()[..64].to_string();
    host.write(host.d(&format!(".shipit/archives/{sha}.tar.gz.part")), "");
    std::fs::rename(&tmp, host.d(&format!(".shipit/archives/{sha}.tar.gz.part"))).unwrap();
    host.set("SHA", sha);
}

#[test]
fn facts_report_the_user_the_releases_and_the_archive() {
    each_shell(|host| {
        host.write(host.r(".shipit/state"), "live\n");
        host.write(
            host.r(".shipit/manifest.json"),
            "{\n  \"revision\": \"abc1234\",\n  \"files\": []\n}\n",
        );
        std::os::unix::fs::symlink("releases/20261122010320", host.d("current")).unwrap();
        host.stub("uv", "");
        let run = host.step("step_facts", &[]);
        run.status(0)
            .fact_is("current", "20261122010320")
            .fact_is("release:20261122010320", "live 0 - abc1234")
            .fact_is("archive", "missing");
        assert!(run.fact("uv").unwrap().ends_with("/bin/uv"), "{run:?}");
        assert!(run.fact("user").is_some(), "{run:?}");
    });
}

#[test]
fn facts_refuse_a_current_that_is_a_directory() {
    each_shell(|host| {
        std::fs::create_dir_all(host.d("current")).unwrap();
        host.step("step_facts", &[])
            .status(1)
            .says("is a directory, not a symlink");
    });
}

#[test]
fn upload_skips_a_kept_archive_and_reports_a_cut_one() {
    each_shell(|host| {
        host.write(host.d(".shipit/archives/.keep"), "");
        // stdin (fd 3) ends at once: nothing of the 10 bytes arrives.
        let run = host.step("step_upload", &["10"]);
        run.status(1)
            .says("upload interrupted: 0 of 10 bytes arrived");
        assert!(!host.d(".shipit/archives/.tar.gz.part").exists());
        host.write(host.d(".shipit/archives/.tar.gz"), "kept");
        host.step("step_upload", &["10"])
            .status(0)
            .says("skipped: the host has this archive");
    });
}

#[test]
fn verify_accepts_the_archive_and_deletes_a_corrupt_one() {
    each_shell(|host| {
        archive(host, &[("manage.py", "")]);
        host.step("step_verify", &[]).status(0).says("verified");
        host.set("SHA", "0".repeat(64));
        host.write(
            host.d(&format!(".shipit/archives/{}.tar.gz.part", "0".repeat(64))),
            "x",
        );
        host.step("step_verify", &[])
            .status(1)
            .says("the uploaded archive is corrupt");
        assert!(!host
            .d(&format!(".shipit/archives/{}.tar.gz", "0".repeat(64)))
            .exists());
        host.step("step_verify", &[]).status(1).says("is missing");
    });
}

#[test]
fn unpack_makes_the_release_once() {
    each_shell(|host| {
        archive(host, &[("manage.py", "print()"), ("app/x.py", "")]);
        std::fs::remove_dir(host.r("")).unwrap();
        host.step("step_verify", &[]).status(0);
        host.step("step_unpack", &[]).status(0);
        assert_eq!(
            std::fs::read_to_string(host.r(".shipit/release")).unwrap(),
            "20261122010320\n"
        );
        assert_eq!(
            std::fs::read_to_string(host.r(".shipit/state")).unwrap(),
            "preparing\n"
        );
        assert!(host.r("app/x.py").is_file());
        host.step("step_unpack", &[])
            .status(1)
            .says("already exists on this host");
    });
}

#[test]
fn env_writes_the_decoded_file_privately() {
    each_shell(|host| {
        std::fs::create_dir_all(host.r(".shipit")).unwrap();
        // "A=1\nB='two words'\n"
        host.step("step_env", &["QT0xCkI9J3R3byB3b3JkcycK"])
            .status(0)
            .says("environment: 2 variable(s)");
        use std::os::unix::fs::PermissionsExt;
        let env = host.r(".shipit/env");
        assert_eq!(
            std::fs::read_to_string(&env).unwrap(),
            "A=1\nB='two words'\n"
        );
        assert_eq!(
            std::fs::metadata(&env).unwrap().permissions().mode() & 0o777,
            0o600
        );
    });
}

#[test]
fn shared_links_directories_and_files_into_the_release() {
    each_shell(|host| {
        host.write(host.r("media/old.txt"), "in the archive");
        host.step(
            "step_shared",
            &["media", "var/cache", "--", ".env", "conf/local.py"],
        )
        .status(0)
        .says("created empty shared file .env");
        for path in ["media", "var/cache", ".env", "conf/local.py"] {
            let link = std::fs::read_link(host.r(path)).unwrap();
            assert_eq!(link, host.d(&format!("shared/{path}")), "{:?}", host.shell);
        }
        assert!(host.d("shared/log").is_dir());
        assert!(host.d("shared/media").is_dir());
        assert!(host.d("shared/conf/local.py").is_file());
    });
}

/// A python3 whose venv module makes a venv with a pip stub running `pip_body`.
fn python(host: &Host, pip_body: &str) {
    let pip = super::quote(pip_body);
    host.stub(
        "python3",
        &format!(
            "case $1 in\n-S) echo 3.12.1 ;;\n-m) mkdir -p \"$3/bin\"; printf '#!/bin/sh\\n%s\\n' {pip} > \"$3/bin/pip\"; chmod +x \"$3/bin/pip\" ;;\nesac"
        ),
    );
}

#[test]
fn virtualenv_is_built_with_pip_once_then_reused() {
    each_shell(|host| {
        host.set("INSTALLER", "pip");
        host.write(
            host.r("requirements/deployment.txt"),
            "django\n-r base.txt\n",
        );
        host.write(host.r("requirements/base.txt"), "requests\n");
        python(host, "exit 0");
        let run = host.step("step_virtualenv", &[]);
        run.status(0);
        let built = run.fact("venv").unwrap().to_string();
        assert!(built.starts_with("built "), "{run:?}");
        let key = &built[6..];
        assert!(host.d(&format!("venvs/{key}/.shipit-complete")).exists());
        assert_eq!(
            std::fs::read_link(host.r(".venv"))
                .unwrap()
                .to_str()
                .unwrap(),
            format!("../../venvs/{key}")
        );
        host.step("step_virtualenv", &[])
            .status(0)
            .fact_is("venv", &format!("reused {key}"));
        // An included file changed: a new venv.
        host.write(host.r("requirements/base.txt"), "requests==2\n");
        let run = host.step("step_virtualenv", &[]);
        assert!(run.fact("venv").unwrap().starts_with("built "), "{run:?}");
        assert_ne!(run.fact("venv").unwrap(), built);
    });
}

#[test]
fn virtualenv_uses_uv_when_the_host_has_it() {
    each_shell(|host| {
        host.write(host.r("requirements/deployment.txt"), "django\n");
        python(host, "exit 0");
        host.stub("uv", "if [ \"$1\" = venv ]; then mkdir -p \"$5\"; fi");
        host.step("step_virtualenv", &[]).status(0).says("with uv");
        let calls = host.calls("uv");
        assert!(
            calls[0].starts_with("venv --quiet --python python3 "),
            "{calls:?}"
        );
        assert!(
            calls[1].starts_with("pip sync --quiet --python "),
            "{calls:?}"
        );
    });
}

#[test]
fn virtualenv_fails_on_a_full_disk_and_keeps_no_half_venv() {
    each_shell(|host| {
        host.set("INSTALLER", "pip");
        host.write(host.r("requirements/deployment.txt"), "django\n");
        python(
            host,
            "echo 'OSError: [Errno 28] No space left on device'; exit 1",
        );
        let run = host.step("step_virtualenv", &[]);
        run.status(1).says("No space left on device");
        assert!(run.fact("venv").is_none(), "{run:?}");
        assert!(!host.r(".venv").exists());
    });
}

#[test]
fn virtualenv_refuses_a_missing_requirements_file_or_python() {
    each_shell(|host| {
        host.step("step_virtualenv", &[])
            .status(1)
            .says("requirements file requirements/deployment.txt is missing");
        host.write(host.r("requirements/deployment.txt"), "-r missing.txt\n");
        host.set("PY", "/nonexistent/python");
        host.step("step_virtualenv", &[])
            .status(1)
            .says("cannot run python /nonexistent/python");
    });
}

#[test]
fn virtualenv_for_a_python_version_without_uv_or_pip_fails_saying_so() {
    each_shell(|host| {
        host.write(host.r("requirements/deployment.txt"), "django\n");
        host.set("PY", "3.12");
        host.stub("python3", "exit 1");
        host.step("step_virtualenv", &[])
            .status(1)
            .says("cannot install uv");
    });
}

/// A version the host lacks is downloaded by uv, from UV_PYTHON_INSTALL_MIRROR when shipit
/// had one; when that fails the error names the interpreters uv finds and the ways out.
#[test]
fn virtualenv_for_a_missing_python_version_downloads_it_or_names_what_the_host_has() {
    each_shell(|host| {
        host.write(host.r("requirements/deployment.txt"), "django\n");
        host.set("PY", "3.13")
            .set("PY_MIRROR", "https://mirror.example/python");
        host.stub(
            "uv",
            "case \"$1 $2\" in\n\
             'python find') exit 2 ;;\n\
             'python install') echo \"mirror=$UV_PYTHON_INSTALL_MIRROR\"; echo 'error: failed to download' >&2; exit 1 ;;\n\
             'python list') echo 'cpython-3.11.2-linux-x86_64-gnu    /usr/bin/python3.11'; echo 'cpython-3.12.1-linux-x86_64-gnu    /opt/py/bin/python3.12' ;;\n\
             esac",
        );
        host.step("step_virtualenv", &[]).status(1).says("mirror=https://mirror.example/python").says(
            "python 3.13 is not on this host and uv could not download it (the interpreters uv finds here: /usr/bin/python3.11, /opt/py/bin/python3.12)",
        );
    });
}

#[test]
fn prepared_records_the_state_and_the_gate_waits_for_switch() {
    each_shell(|host| {
        std::fs::create_dir_all(host.r(".shipit")).unwrap();
        host.step("step_prepared", &[]).status(0);
        assert_eq!(
            std::fs::read_to_string(host.r(".shipit/state")).unwrap(),
            "prepared\n"
        );
        // No answer on fd 3: the connection is gone, which is a stop.
        host.step("step_gate", &[])
            .status(1)
            .fact_is("stopped", "1");
        let run = host.run("shipit_step gate step_gate 3<<'EOF'\nswitch\nEOF");
        run.status(0);
    });
}

#[test]
fn a_hook_runs_in_the_release_with_its_env_and_status() {
    each_shell(|host| {
        host.write(host.r(".shipit/env"), "GREETING='hello there'\n");
        host.step(
            "step_hook",
            &["echo \"$GREETING in $(pwd) for $SHIPIT_TARGET by $SHIPIT_DEPLOYER\""],
        )
        .status(0)
        .says("hello there in ")
        .says("20261122010320 for production by alice@laptop");
        host.step("step_hook", &["echo before; exit 3; echo after"])
            .status(3)
            .says("before");
    });
}

/// The live release `20261101000000` (`current`): `files` (path, content, mode) and a manifest
/// listing them as shipit writes it; the sha256 of that manifest.
fn live(host: &Host, files: &[(&str, &str, u32)]) -> String {
    let dir = host.d("releases/20261101000000");
    let manifest = manifest(&dir, files);
    std::os::unix::fs::symlink("releases/20261101000000", host.d("current")).unwrap();
    host.write(host.d(".shipit/archives/.keep"), "");
    sha256(manifest.as_bytes())
}

/// Writes `files` into `dir` with their modes, and their manifest (shipit's pretty JSON, a
/// symlink among the files); the manifest's text.
fn manifest(dir: &Path, files: &[(&str, &str, u32)]) -> String {
    let mut listed = Vec::new();
    for (path, content, mode) in files {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, content).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(*mode)).unwrap();
        listed.push(serde_json::json!({
            "path": path,
            "sha256": sha256(content.as_bytes()),
            "size": content.len(),
            "mode": format!("{mode:04o}"),
        }));
    }
    listed.push(serde_json::json!({ "path": "static", "link": "app/static" }));
    let text = serde_json::to_string_pretty(&serde_json::json!({
        "format": 2,
        "project": "p",
        "files": listed,
    }))
    .unwrap()
        + "\n";
    std::fs::create_dir_all(dir.join(".shipit")).unwrap();
    std::fs::write(dir.join(".shipit/manifest.json"), &text).unwrap();
    text
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    crate::build::archive::hex(&sha2::Sha256::digest(bytes))
}

/// The reply shipit gives a script that asks for a delta: `SIZE SHA256`, then a tar.gz of the
/// new manifest and `sent` (path, content, mode) with a symlink, written where fd 3 reads it.
fn delta_reply(host: &Host, new: &[(&str, &str, u32)], sent: &[&str]) -> PathBuf {
    let src = host.path("delta-src");
    manifest(&src, new);
    std::os::unix::fs::symlink("app/static", src.join("static")).unwrap();
    let tgz = host.path("delta.tar.gz");
    let mut args = vec!["-czf".to_string(), tgz.display().to_string(), "-C".into()];
    args.push(src.display().to_string());
    args.extend(["static", ".shipit/manifest.json"].map(String::from));
    args.extend(sent.iter().map(|s| s.to_string()));
    assert!(std::process::Command::new("tar")
        .args(&args)
        .status()
        .unwrap()
        .success());
    let bytes = std::fs::read(&tgz).unwrap();
    let mut reply = format!("{} {}\n", bytes.len(), sha256(&bytes)).into_bytes();
    reply.extend(bytes);
    let path = host.path("reply");
    std::fs::write(&path, reply).unwrap();
    path
}

const LIVE: &[(&str, &str, u32)] = &[
    ("manage.py", "print()", 0o755),
    ("app/same.py", "same", 0o644),
    ("app/code.py", "v1", 0o644),
    ("app/gone.py", "gone", 0o644),
];

const NEW: &[(&str, &str, u32)] = &[
    ("manage.py", "print()", 0o755),
    ("app/same.py", "same", 0o644),
    ("app/code.py", "v2", 0o644),
    ("app/new/added.py", "added", 0o755),
];

/// Runs step_upload on a host whose live release has [`LIVE`], offering its manifest (and
/// another), fd 3 reading the delta to [`NEW`]: the live manifest's sha256 and the run.
fn upload_delta(host: &mut Host) -> (String, super::Run) {
    let base = live(host, LIVE);
    host.set("SHA", "a".repeat(64));
    std::fs::remove_dir(host.r("")).unwrap();
    let reply = delta_reply(host, NEW, &["app/code.py", "app/new/added.py"]);
    let run = host.run(&format!(
        "shipit_step upload step_upload 999 0000 {base} 3<{}",
        reply.display()
    ));
    (base, run)
}

#[test]
fn a_delta_against_the_live_release_builds_the_same_tree() {
    each_shell(|host| {
        let (base, run) = upload_delta(host);
        run.status(0)
            .says("received the files that differ from release 20261101000000");
        assert!(run.text.contains(&format!(" delta {base}")), "{}", run.text);
        host.step("step_verify", &[])
            .status(0)
            .says("a delta from release 20261101000000");
        host.step("step_unpack", &[])
            .status(0)
            .says("unpacked into");
        // What a full unpack makes: the new files, modes and symlink, without the deleted one.
        let full = host.path("full");
        manifest(&full, NEW);
        for (path, _, _) in NEW {
            let (a, b) = (host.r(path), full.join(path));
            assert_eq!(
                std::fs::read(&a).unwrap(),
                std::fs::read(&b).unwrap(),
                "{path}"
            );
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode(&a), mode(&b), "{path}");
        }
        assert!(!host.r("app/gone.py").exists());
        assert_eq!(
            std::fs::read_link(host.r("static")).unwrap(),
            Path::new("app/static")
        );
        // Unchanged files are the live release's, linked; the changed one is new.
        let inode = |p: PathBuf| std::fs::metadata(p).unwrap().ino();
        let old = host.d("releases/20261101000000");
        assert_eq!(inode(host.r("app/same.py")), inode(old.join("app/same.py")));
        assert_ne!(inode(host.r("app/code.py")), inode(old.join("app/code.py")));
        assert_eq!(
            std::fs::read_to_string(old.join("app/code.py")).unwrap(),
            "v1"
        );
        assert!(!host
            .d(&format!(".shipit/archives/{}.tar.gz.delta", "a".repeat(64)))
            .exists());
    });
}

#[test]
fn a_live_release_changed_on_the_host_gets_the_whole_archive() {
    each_shell(|host| {
        let base = live(host, LIVE);
        host.write(host.d("releases/20261101000000/app/same.py"), "tampered");
        let run = host.step("step_upload", &["10", &base]);
        run.status(1)
            .says("sending the whole archive: ")
            .says("app/same.py: FAILED")
            .says("upload interrupted: 0 of 10 bytes arrived");
        assert!(!run.text.contains(" delta "), "{}", run.text);
        // A mode changed is caught as well, and a base shipit does not offer asks for no delta.
        host.write(host.d("releases/20261101000000/app/same.py"), "same");
        let file = host.d("releases/20261101000000/app/code.py");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        host.step("step_upload", &["10", &base])
            .status(1)
            .says("app/code.py: not mode 0644");
        let run = host.step("step_upload", &["10", "0000"]);
        run.status(1).never_says("whole archive");
        assert!(!run.text.contains(" delta "), "{}", run.text);
    });
}

#[test]
fn a_delta_whose_linked_files_changed_since_fails_and_leaves_no_release() {
    each_shell(|host| {
        upload_delta(host).1.status(0);
        host.write(
            host.d("releases/20261101000000/app/same.py"),
            "changed in between",
        );
        host.step("step_unpack", &[])
            .status(1)
            .says("differs from its manifest: app/same.py: FAILED");
        assert!(!host.r("").exists());
    });
}

#[test]
fn a_manifest_with_an_escaped_path_lists_nothing() {
    each_shell(|host| {
        host.write(
            host.path("m.json"),
            "{\n  \"files\": [\n    {\n      \"path\": \"a\\\"b\",\n      \"sha256\": \"00\",\n      \"mode\": \"0644\"\n    },\n    {\n      \"path\": \"c d\",\n      \"sha256\": \"11\",\n      \"mode\": \"0755\"\n    }\n  ]\n}\n",
        );
        let run = host.run(&format!(
            "shipit_manifest_files {} || echo refused",
            host.path("m.json").display()
        ));
        run.says("0755 11 c d").says("refused");
    });
}
