//! `shipit build` end to end: a copy of tests/example under real git, the real binary, and the
//! archive read back with the tar crate.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use assert_cmd::Command;
use serde_json::Value;

use support::project::*;
use support::Run;

const MANIFEST: &str = ".shipit/manifest.json";
const SELECTOR: &str = "hello/settings/selected.py";

/// A successful build: what `--json` printed and the archive it wrote.
struct Built {
    json: Value,
    path: PathBuf,
    archive: Archive,
}

impl Built {
    fn bytes(&self) -> Vec<u8> {
        fs::read(&self.path).unwrap()
    }
}

/// `shipit build ARGS --json` in `project`; panics unless it succeeds.
fn build(project: &Project, args: &[&str]) -> Built {
    build_with(project, project.shipit(), args)
}

/// Like [`build`], with a prepared command (e.g. extra environment).
fn build_with(project: &Project, mut shipit: Command, args: &[&str]) -> Built {
    let out = shipit
        .arg("build")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "shipit build {args:?} failed:\n{stderr}"
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "--json printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let path = project
        .sandbox
        .join(json["path"].as_str().expect("path is a string"));
    let archive = Archive::open(&path);
    Built {
        json,
        path,
        archive,
    }
}

/// `shipit build ARGS -o SANDBOX/out/hello.tar.gz`, which must fail without leaving any archive
/// (final or temporary) behind.
fn build_fails(project: &Project, args: &[&str]) -> Run {
    build_fails_with(project, project.shipit(), args)
}

fn build_fails_with(project: &Project, mut shipit: Command, args: &[&str]) -> Run {
    let out_dir = project.out("");
    fs::create_dir_all(&out_dir).unwrap();
    let archive = project.out("hello.tar.gz");
    let run = Run::of(shipit.arg("build").args(args).arg("-o").arg(&archive));
    assert!(run.code != 0, "shipit build {args:?} succeeded");
    assert!(run.code != -1, "shipit build {args:?} was killed");
    let stderr = &run.stderr;
    assert!(stderr.contains("error: "), "no `error:` line:\n{stderr}");
    assert!(run.stdout.is_empty(), "a failed build printed a result");
    assert!(
        !archive.exists(),
        "a failed build wrote {}",
        archive.display()
    );
    let leftovers: Vec<_> = fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        leftovers.is_empty(),
        "a failed build left {leftovers:?} behind"
    );
    assert!(
        !project.path(".shipit/dist").exists(),
        "a failed build wrote into .shipit/dist"
    );
    run
}

/// 1-based number of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line contains {needle:?}"))
        + 1
}

// --- What goes into the archive -----------------------------------------------------------

#[test]
fn archive_holds_the_tracked_files_the_rendered_selector_and_the_manifest_last() {
    let project = project();
    let built = build(&project, &["--target", "local"]);

    // Every tracked file but shipit's own configuration (see shipit_toml_ships_only_when_...).
    let mut expected = project.tracked_files();
    expected.retain(|path| path != "shipit.toml");
    expected.push(SELECTOR.to_string());
    expected.sort();
    expected.push(MANIFEST.to_string());
    assert_eq!(built.archive.paths(), expected);
}

#[test]
fn manifest_describes_every_archived_file_exactly() {
    let project = project();
    let built = build(&project, &["--target", "local"]);
    let manifest = built.archive.manifest();

    assert_eq!(manifest["format"], 2);
    assert_eq!(manifest["project"], "hello");
    assert_eq!(manifest["target"], "local");
    assert_eq!(manifest["environment"], "deployment");
    let files = manifest["files"].as_array().unwrap();
    let (manifest_entry, others) = built.archive.entries.split_last().unwrap();
    assert_eq!(manifest_entry.path, MANIFEST);
    assert_eq!(files.len(), others.len());
    for (file, entry) in files.iter().zip(others) {
        assert_eq!(file["path"], entry.path.as_str());
        assert_eq!(
            file["sha256"],
            sha256_hex(&entry.bytes).as_str(),
            "{}",
            entry.path
        );
        assert_eq!(file["size"], entry.bytes.len(), "{}", entry.path);
        assert_eq!(
            file["mode"],
            format!("{:04o}", entry.mode).as_str(),
            "{}",
            entry.path
        );
    }
    let selector = files.iter().find(|f| f["path"] == SELECTOR).unwrap();
    assert_eq!(selector["template"], "selector.py.j2");
}

#[test]
fn every_entry_has_the_commit_time_root_owner_and_a_plain_mode() {
    let project = project();
    let built = build(&project, &["--target", "local"]);

    for entry in &built.archive.entries {
        assert_eq!(entry.mtime, COMMIT_EPOCH, "{}", entry.path);
        assert_eq!((entry.uid, entry.gid), (0, 0), "{}", entry.path);
        assert_eq!(entry.kind, tar::EntryType::Regular, "{}", entry.path);
    }
    assert_eq!(built.archive.entry("manage.py").mode, 0o755);
    assert_eq!(built.archive.entry("hello/settings/base.py").mode, 0o644);
    assert_eq!(built.archive.entry(SELECTOR).mode, 0o644);
}

#[test]
fn build_time_and_revision_come_from_the_commit_and_no_release_is_named() {
    let project = project();
    let built = build(&project, &["--target", "local"]);
    let manifest = built.archive.manifest();

    assert_eq!(
        manifest.get("release"),
        None,
        "an archive's identity is its content"
    );
    assert_eq!(manifest["build_time"], COMMIT_DATE);
    assert_eq!(manifest["revision"], project.head().as_str());
    assert_eq!(manifest["dirty"], false);
    assert_eq!(built.json["revision"], project.head().as_str());
    assert_eq!(built.json["dirty"], false);
}

#[test]
fn modifying_a_tracked_file_marks_the_build_dirty_and_ships_the_modification() {
    let project = project();
    let settings = project.read("hello/settings/base.py") + "\nDEBUG_TOOLBAR = False\n";
    project.write("hello/settings/base.py", &settings);

    let built = build(&project, &["--target", "local"]);

    assert_eq!(built.archive.manifest()["dirty"], true);
    assert_eq!(built.json["dirty"], true);
    assert_eq!(
        built.archive.manifest()["revision"],
        project.head().as_str()
    );
    assert_eq!(built.archive.text("hello/settings/base.py"), settings);
}

#[test]
fn default_output_is_under_shipit_dist_named_by_project_target_and_build_time() {
    let project = project();
    let built = build(&project, &["--target", "staging"]);

    assert_eq!(
        built.path,
        project.path(".shipit/dist/hello-staging-20260102030405.tar.gz")
    );
    // A second build does not swallow the first one.
    let again = build(&project, &["--target", "staging"]);
    assert!(!again
        .archive
        .paths()
        .iter()
        .any(|p| p.starts_with(".shipit/dist")));
    assert_eq!(again.bytes(), built.bytes());
}

#[test]
fn symlinks_inside_the_project_are_archived_as_symlinks() {
    let project = project();
    project.symlink("hello/settings/base.py", "settings.py");
    project.symlink("../static/pages/site.css", "pages/templates/site.css");
    project.commit_all("links");

    let built = build(&project, &["--target", "local"]);

    let link = built.archive.entry("settings.py");
    assert_eq!(link.kind, tar::EntryType::Symlink);
    assert_eq!(link.link.as_deref(), Some("hello/settings/base.py"));
    let files = built.archive.manifest()["files"].clone();
    let listed = files
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "pages/templates/site.css")
        .unwrap()
        .clone();
    assert_eq!(listed["link"], "../static/pages/site.css");
    assert!(listed.get("sha256").is_none());
}

#[test]
fn a_committed_placeholder_is_replaced_by_the_rendered_selector() {
    let project = project();
    project.write(SELECTOR, "raise ImportError('placeholder')\n");
    project.force_commit(&[SELECTOR], "placeholder selector");

    let built = build(&project, &["--target", "local"]);

    let selectors = built
        .archive
        .paths()
        .iter()
        .filter(|p| *p == SELECTOR)
        .count();
    assert_eq!(selectors, 1);
    assert!(built
        .archive
        .text(SELECTOR)
        .contains("SHIPIT_TARGET = \"local\""));
}

// --- Reproducibility ------------------------------------------------------------------------

#[test]
fn two_builds_of_the_same_commit_are_byte_identical() {
    let project = project();
    let first = build(&project, &["--target", "local", "-o", "out/first.tar.gz"]);
    let second = build(&project, &["--target", "local", "-o", "out/second.tar.gz"]);

    assert_eq!(first.path, project.out("first.tar.gz"));
    assert_eq!(first.bytes(), second.bytes());
    assert_eq!(first.json["sha256"], second.json["sha256"]);
}

#[test]
fn a_config_file_elsewhere_keeps_the_project_directory_as_the_root() {
    let project = project();
    let elsewhere = project.sandbox.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let config = elsewhere.join("shipit.toml");
    std::fs::write(&config, project.read("shipit.toml")).unwrap();
    let mut shipit = project.shipit();
    shipit.arg("--config").arg(&config);
    let built = build_with(
        &project,
        shipit,
        &["--target", "local", "-o", "out/x.tar.gz"],
    );
    assert!(
        built.archive.contains("manage.py"),
        "{:?}",
        built.archive.paths()
    );
}

#[test]
fn the_default_output_directory_keeps_the_three_newest_archives() {
    let project = project();
    for epoch in [
        "1700000000",
        "1700000100",
        "1700000200",
        "1700000300",
        "1700000400",
    ] {
        let mut shipit = project.shipit();
        shipit.env("SOURCE_DATE_EPOCH", epoch);
        build_with(&project, shipit, &["--target", "local"]);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut kept: Vec<String> = std::fs::read_dir(project.path(".shipit/dist"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        [
            "hello-local-20231114221640.tar.gz",
            "hello-local-20231114221820.tar.gz",
            "hello-local-20231114222000.tar.gz"
        ]
    );
}

#[test]
fn source_date_epoch_sets_the_build_time_and_stays_reproducible() {
    let project = project();
    let with_epoch = || {
        let mut shipit = project.shipit();
        shipit.env("SOURCE_DATE_EPOCH", "1700000000");
        shipit
    };
    let first = build_with(
        &project,
        with_epoch(),
        &["--target", "local", "-o", "out/a.tar.gz"],
    );
    let second = build_with(
        &project,
        with_epoch(),
        &["--target", "local", "-o", "out/b.tar.gz"],
    );
    let from_commit = build(&project, &["--target", "local", "-o", "out/c.tar.gz"]);

    assert_eq!(first.bytes(), second.bytes());
    assert_ne!(first.bytes(), from_commit.bytes());
    for entry in &first.archive.entries {
        assert_eq!(entry.mtime, 1_700_000_000, "{}", entry.path);
    }
    let manifest = first.archive.manifest();
    assert_eq!(manifest["build_time"], "2023-11-14T22:13:20Z");
    assert!(!first.archive.text(SELECTOR).contains("20231114221320"));
}

#[test]
fn the_same_commit_checked_out_elsewhere_builds_the_same_archive() {
    let here = project();
    let there = project();
    assert_ne!(here.root, there.root);
    assert_eq!(
        here.head(),
        there.head(),
        "same content and dates, same commit"
    );

    let a = build(&here, &["--target", "staging"]);
    let b = build(&there, &["--target", "staging"]);

    assert_eq!(a.json["sha256"], b.json["sha256"]);
    assert_eq!(a.bytes(), b.bytes());
}

// --- deploy.map -----------------------------------------------------------------------------

#[test]
fn deploy_map_renders_the_selector_for_the_chosen_target() {
    let project = project();
    let local = build(&project, &["--target", "local"])
        .archive
        .text(SELECTOR);
    let staging = build(&project, &["--target", "staging"])
        .archive
        .text(SELECTOR);

    assert!(local.contains("from .deployment import *"), "{local}");
    assert!(local.contains("SHIPIT_TARGET = \"local\""), "{local}");
    assert!(
        local.contains("SHIPIT_ENVIRONMENT = \"deployment\""),
        "{local}"
    );
    assert!(staging.contains("from .staging import *"), "{staging}");
    assert!(staging.contains("SHIPIT_TARGET = \"staging\""), "{staging}");
    assert!(
        staging.contains("SHIPIT_ENVIRONMENT = \"staging\""),
        "{staging}"
    );
    for text in [&local, &staging] {
        // The archive names no release: the app reads it from the host.
        assert!(!text.contains(COMMIT_RELEASE), "{text}");
        assert!(text.contains("SHIPIT_RELEASE = _os.environ.get(\"SHIPIT_RELEASE\")"));
        assert!(text.contains(&format!("SHIPIT_REVISION = \"{}\"", project.head())));
    }
}

// --- What stays out -------------------------------------------------------------------------

/// Secret-looking files of many kinds and cases, committed by mistake (the first four are the
/// ones the include test names); every rule of the table has its own unit test in
/// `build::policy`.
const COMMITTED_SECRETS: &[&str] = &[
    ".env",
    "hello/settings/local.py",
    "deploy/site.pem",
    "deploy/Production.ENV",
    ".envrc",
    "hello/Secrets.py",
    "keys/id_rsa.bak",
    "keys/server.PPK",
    "gcp/service-account-prod.json",
    "aws/credentials",
    ".netrc",
];

fn commit_secrets(project: &Project) {
    for secret in COMMITTED_SECRETS {
        project.write(secret, "SECRET_KEY=hunter2\n");
    }
    project.write(".env.example", "SECRET_KEY=\n");
    let mut paths = COMMITTED_SECRETS.to_vec();
    paths.push(".env.example");
    project.force_commit(&paths, "secrets, by mistake");
}

fn skipped(built: &Built) -> BTreeSet<String> {
    built.json["secrets_skipped"]
        .as_array()
        .expect("secrets_skipped is a list")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn committed_secrets_are_left_out_and_reported() {
    let project = project();
    commit_secrets(&project);

    let built = build(&project, &["--target", "local"]);

    for secret in COMMITTED_SECRETS {
        assert!(!built.archive.contains(secret), "{secret} was archived");
    }
    assert!(
        built.archive.contains(".env.example"),
        "an example is no secret"
    );
    let mut expected: BTreeSet<String> = COMMITTED_SECRETS.iter().map(|s| s.to_string()).collect();
    expected.insert("shipit.toml".into());
    assert_eq!(skipped(&built), expected);
}

#[test]
fn shipit_toml_ships_only_when_include_names_it() {
    let project = project();

    let built = build(&project, &["--target", "local"]);
    assert!(
        !built.archive.contains("shipit.toml"),
        "every target's hosts and vars went into the release"
    );
    assert!(skipped(&built).contains("shipit.toml"));

    project.edit_config(
        "python = \"/usr/bin/python3\"\n",
        "python = \"/usr/bin/python3\"\ninclude = [\"shipit.toml\"]\n",
    );
    project.commit_all("ship the configuration");
    let built = build(&project, &["--target", "local"]);
    assert!(built.archive.contains("shipit.toml"));
    assert!(!skipped(&built).contains("shipit.toml"));
}

#[test]
fn a_deploy_map_destination_that_looks_like_a_secret_is_refused_unless_included() {
    let project = project();
    let map = project.read("conf/deploy.map");
    project.write("conf/templates/env.j2", "DEBUG=0\n");
    // Not the `.env` the target shares (a destination under a shared path is refused first).
    project.write("conf/deploy.map", &format!("{map}env.j2 config/.env\n"));
    project.commit_all("render a .env");
    let line = map.lines().count() + 1;

    let failure = build_fails(&project, &["--target", "local"]);
    assert_eq!(failure.code, 2);
    failure.says(&[
        &format!("deploy.map:{line}:"),
        "`config/.env` looks like a secret file",
        "project.include",
    ]);

    project.edit_config(
        "python = \"/usr/bin/python3\"\n",
        "python = \"/usr/bin/python3\"\ninclude = [\"config/.env\"]\n",
    );
    project.commit_all("ship the rendered .env on purpose");
    let built = build(&project, &["--target", "local"]);
    assert!(built.archive.contains("config/.env"));
}

#[test]
fn project_include_ships_a_secret_looking_file_it_names() {
    let project = project();
    commit_secrets(&project);
    project.edit_config(
        "python = \"/usr/bin/python3\"\n",
        "python = \"/usr/bin/python3\"\ninclude = [\"deploy/site.pem\"]\n",
    );
    project.commit_all("ship the certificate");

    let built = build(&project, &["--target", "local"]);

    assert!(built.archive.contains("deploy/site.pem"));
    assert!(!built.archive.contains(".env"));
    let mut expected: BTreeSet<String> = COMMITTED_SECRETS.iter().map(|s| s.to_string()).collect();
    expected.remove("deploy/site.pem");
    expected.insert("shipit.toml".into());
    assert_eq!(skipped(&built), expected);
}

#[test]
fn untracked_files_are_not_archived() {
    let project = project();
    project.write("scratch.txt", "notes\n");
    project.write("pages/todo.py", "# later\n");

    let built = build(&project, &["--target", "local"]);

    assert!(!built.archive.contains("scratch.txt"));
    assert!(!built.archive.contains("pages/todo.py"));
    assert_eq!(
        built.json["dirty"], false,
        "untracked files do not make a build dirty"
    );
}

#[test]
fn exclude_patterns_remove_files() {
    let project = project();
    project.edit_config(
        "python = \"/usr/bin/python3\"\n",
        "python = \"/usr/bin/python3\"\nexclude = [\"pages/static/\"]\n",
    );
    project.commit_all("no static files");

    let built = build(&project, &["--target", "local"]);

    let paths = built.archive.paths();
    assert!(
        !paths.iter().any(|p| p.starts_with("pages/static/")),
        "{paths:?}"
    );
    assert!(built.archive.contains("pages/views.py"));
    assert!(built.archive.contains("pages/templates/pages/index.html"));
}

#[test]
fn anchored_exclude_patterns_do_not_depend_on_how_the_project_dir_is_spelled() {
    let project = project();
    // There is no top-level settings/ directory; hello/settings/ must not match.
    project.edit_config(
        "python = \"/usr/bin/python3\"\n",
        "python = \"/usr/bin/python3\"\nexclude = [\"/settings/\"]\n",
    );
    project.commit_all("exclude a top-level settings/ directory");
    let mut relative = project.shipit_in(&project.sandbox);
    relative.args(["-C", "hello"]);

    let spelled_relative = build_with(
        &project,
        relative,
        &["--target", "local", "-o", "out/r.tar.gz"],
    );
    let spelled_absolute = build(&project, &["--target", "local", "-o", "out/a.tar.gz"]);

    assert!(spelled_absolute.archive.contains("hello/settings/base.py"));
    assert!(spelled_relative.archive.contains("hello/settings/base.py"));
    assert_eq!(spelled_relative.bytes(), spelled_absolute.bytes());
}

#[test]
fn only_the_project_subdirectory_of_a_larger_repository_is_archived() {
    let project = project_without_git();
    let repo = project.sandbox.as_path();
    let git = |args: &[&str]| {
        let mut git = std::process::Command::new("git");
        git.arg("-C")
            .arg(repo)
            .args(["-c", "user.name=T", "-c", "user.email=t@t"]);
        git.args(args)
            .env("GIT_AUTHOR_DATE", COMMIT_DATE)
            .env("GIT_COMMITTER_DATE", COMMIT_DATE);
        isolate_git(&mut git, repo);
        let out = git.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    fs::write(repo.join("ROOT.md"), "the monorepo\n").unwrap();
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "all"]);

    let built = build(&project, &["--target", "local"]);

    assert!(built.archive.contains("manage.py"));
    assert!(built.archive.contains("hello/settings/base.py"));
    assert!(!built.archive.paths().iter().any(|p| p.contains("ROOT.md")));
    assert!(
        !built.archive.contains("hello/manage.py"),
        "paths are relative to the project"
    );
    let manifest = built.archive.manifest();
    assert_eq!(manifest.get("release"), None);
    assert_eq!(manifest["revision"], git(&["rev-parse", "HEAD"]).trim());
}

#[test]
fn outside_git_an_ignore_aware_walk_chooses_the_files() {
    let project = project_without_git();
    project.write("notes.sqlite3", "ignored by *.sqlite3\n");
    project.write("var/cache/blob", "ignored by var/\n");
    project.write(".env", "SECRET_KEY=hunter2\n");
    project.write("extra.txt", "not ignored\n");

    let built = build(&project, &["--target", "local"]);

    assert!(built.archive.contains("extra.txt"));
    assert!(built.archive.contains(".gitignore"));
    assert!(built.archive.contains("manage.py"));
    assert!(built.archive.contains(SELECTOR));
    assert!(!built.archive.contains("notes.sqlite3"));
    assert!(!built.archive.contains("var/cache/blob"));
    assert!(!built.archive.contains(".env"));
    assert_eq!(built.archive.manifest()["revision"], "unknown");
}

/// Peak memory (KiB, from GNU time) of `shipit build` in a project with `files` extra files.
fn peak_kib_with(files: usize) -> u64 {
    let project = project_without_git();
    for i in 0..files {
        project.write(
            &format!("bulk/d{:03}/f{i}.txt", i / 1000),
            &format!("{i}\n"),
        );
    }
    let report = project.sandbox.join("time.txt");
    let shipit = project.shipit();
    let program = std::path::PathBuf::from(shipit.get_program());
    let args: Vec<_> = shipit.get_args().map(|a| a.to_owned()).collect();
    let dir = shipit.get_current_dir().map(|d| d.to_owned());
    let mut timed = std::process::Command::new("/usr/bin/time");
    timed
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&report)
        .arg(program)
        .args(args);
    timed.args(["build", "--target", "local", "-o", "out/a.tar.gz"]);
    for (key, value) in shipit.get_envs() {
        match value {
            Some(value) => timed.env(key, value),
            None => timed.env_remove(key),
        };
    }
    if let Some(dir) = dir {
        timed.current_dir(dir);
    }
    let out = timed.output().expect("GNU time is installed (.ci/setup)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::read_to_string(&report).unwrap().trim().parse().unwrap()
}

#[test]
fn build_memory_grows_little_with_the_file_count() {
    // The manifest's file list is spilled to disk and no path is held twice: what is left is the
    // sorted list of paths (~100 bytes a file). Holding the manifest cost ~700 bytes a file.
    let small = peak_kib_with(1_000);
    let large = peak_kib_with(31_000);
    let per_file = (large.saturating_sub(small) * 1024) / 30_000;
    assert!(
        per_file < 400,
        "{per_file} bytes of memory per file ({small} KiB with 1k files, {large} KiB with 31k)"
    );
}

// --- Bad input: a clear message, exit status 2, and no archive ------------------------------

#[test]
fn an_unknown_target_is_named_and_known_ones_listed() {
    let project = project();

    let typo = build_fails(&project, &["--target", "stagin"]);
    assert_eq!(typo.code, 2);
    typo.says(&[
        "unknown target `stagin`",
        "did you mean `staging`?",
        "local, staging",
    ]);

    let unrelated = build_fails(&project, &["--target", "prodution"]);
    assert_eq!(unrelated.code, 2);
    unrelated.says(&[
        "unknown target `prodution`",
        "hint: known targets: local, staging",
    ]);
    assert!(
        !unrelated.stderr.contains("did you mean"),
        "{}",
        unrelated.stderr
    );
}

#[test]
fn malformed_toml_names_file_and_line() {
    let project = project();
    let line = line_of(&project.read("shipit.toml"), "name = \"hello\"");
    project.edit_config("name = \"hello\"", "name = \"hello");

    let failure = build_fails(&project, &["--target", "local"]);

    assert_eq!(failure.code, 2);
    failure.says(&[&format!("shipit.toml:{line}:")]);
}

#[test]
fn an_unknown_key_in_a_target_is_named_with_its_line() {
    let project = project();
    project.edit_config(
        "keep_releases = 3\n",
        "keep_releases = 3\nkeep_relaeses = 4\n",
    );
    let line = line_of(&project.read("shipit.toml"), "keep_relaeses");

    let failure = build_fails(&project, &["--target", "local"]);

    assert_eq!(failure.code, 2);
    failure.says(&[&format!("shipit.toml:{line}:"), "keep_relaeses"]);
}

#[test]
fn a_deploy_map_line_with_three_fields_is_refused_with_its_line() {
    let project = project();
    project.write(
        "conf/deploy.map",
        "# TEMPLATE DESTINATION\nselector.py.j2 hello/settings/selected.py extra\n",
    );

    let failure = build_fails(&project, &["--target", "local"]);

    assert_eq!(failure.code, 2);
    failure.says(&["deploy.map:2:", "3 fields"]);
}

#[test]
fn a_deploy_map_template_that_exists_nowhere_is_named_with_its_line() {
    let project = project();
    let map = project.read("conf/deploy.map") + "\nmissing.conf.j2 conf/missing.conf\n";
    let line = line_of(&map, "missing.conf.j2");
    project.write("conf/deploy.map", &map);

    let failure = build_fails(&project, &["--target", "local"]);

    assert_eq!(failure.code, 2);
    failure.says(&[
        &format!("deploy.map:{line}:"),
        "missing.conf.j2",
        "not found",
    ]);
}

#[test]
fn a_deploy_map_destination_that_is_a_project_directory_is_refused() {
    let project = project();
    project.write("conf/deploy.map", "selector.py.j2 hello/settings\n");

    let failure = build_fails(&project, &["--target", "local"]);

    assert_eq!(failure.code, 2);
    failure.says(&["deploy.map:1:", "hello/settings"]);
}

#[test]
fn an_undefined_variable_in_a_template_override_is_named_with_its_line() {
    let project = project();
    project.write(
        "conf/templates/selector.py.j2",
        "from .{{ environment }} import *\nSHIPIT_TARGET = {{ target | tojson }}\nSERVER_NAME = '{{ server_nmae }}'\n",
    );

    let failure = build_fails(&project, &["--target", "local"]);

    assert_eq!(failure.code, 2);
    failure.says(&["template ", "selector.py.j2:3:", "undefined"]);
}

#[test]
fn an_undefined_variable_piped_through_tojson_is_refused() {
    let project = project();
    // The built-in selector quotes every value with `| tojson`; a typo there must not ship
    // `SHIPIT_TARGET = null`.
    project.write(
        "conf/templates/selector.py.j2",
        "from .{{ environment }} import *\nSHIPIT_TARGET = {{ taget | tojson }}\n",
    );

    let failure = build_fails(&project, &["--target", "local"]);

    assert_eq!(failure.code, 2);
    failure.says(&["selector.py.j2:2:", "undefined"]);
}

#[test]
fn a_symlink_out_of_the_project_is_refused() {
    let project = project();
    project.symlink("../../etc/passwd", "escape");
    project.commit_all("escape hatch");

    let failure = build_fails(&project, &["--target", "local"]);

    assert_eq!(failure.code, 2);
    failure.says(&["`escape`", "outside"]);
}

#[test]
fn an_absolute_symlink_is_refused() {
    let project = project();
    project.symlink("/etc/passwd", "passwd");
    project.commit_all("absolute link");

    let failure = build_fails(&project, &["--target", "local"]);

    assert_eq!(failure.code, 2);
    failure.says(&["`passwd`", "absolute"]);
}

#[test]
fn a_symlink_that_escapes_through_another_symlink_is_refused() {
    let project = project();
    // `here` is the project root itself, which is harmless; but the kernel resolves
    // `here/here/here/..` to the parent of the root, while a lexical check sees `here/here`.
    project.symlink(".", "here");
    project.symlink("here/here/here/../../../etc/passwd", "escape");
    project.commit_all("escape through a chain");

    let failure = build_fails(&project, &["--target", "local"]);

    assert_eq!(failure.code, 2);
    failure.says(&["`escape`", "outside"]);
}

#[test]
fn a_file_name_that_is_not_utf8_is_refused() {
    let project = project();
    let name = std::ffi::OsStr::from_bytes(b"bad\xff.txt");
    fs::write(project.root.join(name), "bytes\n").unwrap();
    project.commit_all("odd name");

    let failure = build_fails(&project, &["--target", "local"]);

    assert_eq!(failure.code, 2);
    failure.says(&["bad", "not valid UTF-8"]);
}

#[test]
fn a_source_date_epoch_that_is_no_timestamp_is_refused() {
    let project = project();
    let mut shipit = project.shipit();
    shipit.env("SOURCE_DATE_EPOCH", "notanumber");

    let failure = build_fails_with(&project, shipit, &["--target", "local"]);

    assert_eq!(failure.code, 2, "a usage mistake");
    failure.says(&["SOURCE_DATE_EPOCH", "notanumber"]);
}

#[test]
fn a_source_date_epoch_outside_1980_to_2100_is_refused() {
    let project = project();
    for value in ["0", "4102444800", "1700000000000"] {
        let mut shipit = project.shipit();
        shipit.env("SOURCE_DATE_EPOCH", value);

        let failure = build_fails_with(&project, shipit, &["--target", "local"]);

        assert_eq!(failure.code, 2, "a usage mistake");
        failure.says(&["SOURCE_DATE_EPOCH", value, "outside 1980-01-01..2100-01-01"]);
    }
}

// --- Output ---------------------------------------------------------------------------------

#[test]
fn json_output_describes_the_archive_on_disk() {
    let project = project();
    let built = build(&project, &["--target", "local", "-o", "out/hello.tar.gz"]);
    let on_disk = built.bytes();

    let keys: BTreeSet<&str> = built
        .json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "build_time",
            "dirty",
            "files",
            "path",
            "revision",
            "secrets_skipped",
            "sha256",
            "shipit",
            "size",
            "target",
        ])
    );
    assert_eq!(built.json["sha256"], sha256_hex(&on_disk).as_str());
    assert_eq!(built.json["size"], on_disk.len());
    assert_eq!(built.json["files"], built.archive.entries.len() - 1);
    assert_eq!(built.json["target"], "local");
    assert_eq!(built.json["build_time"], COMMIT_DATE);
}

#[test]
fn plain_output_names_the_archive_its_size_files_and_sha256() {
    let project = project();
    let archive = project.out("hello.tar.gz");
    let out = project
        .shipit()
        .args(["build", "--target", "local", "-o"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let bytes = fs::read(&archive).unwrap();

    assert!(
        stdout.starts_with(&archive.display().to_string()),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("({} bytes)", bytes.len())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("sha256  {}", sha256_hex(&bytes))),
        "{stdout}"
    );
    let files = Archive::open(&archive).entries.len() - 1;
    assert!(stdout.contains(&format!("files   {files}")), "{stdout}");
}

#[test]
fn build_help_mentions_source_date_epoch() {
    let out = Command::new(support::shipit_bin())
        .args(["build", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("SOURCE_DATE_EPOCH"));
}

// --- A build cannot publish a secret (issue 22: defects 2, 4, 7, 16) ------------------------

/// A value shaped like the keys cookiecutter-django generates.
const GENERATED_KEY: &str = "Zq8mK2vLx9pR4tN7wB1cY6hJ3fD5gS0aE8uI2oP4lK7jH9xQ";

/// Whether any entry of the archive holds `needle`.
fn archive_holds(built: &Built, needle: &str) -> bool {
    built.archive.entries.iter().any(|e| {
        e.bytes
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    })
}

/// cookiecutter-django's committed env files: `.envs/.production/.django` and `.postgres`.
fn commit_cookiecutter_envs(project: &Project) {
    project.write(
        ".envs/.production/.django",
        &format!("# General\nUSE_DOCKER=yes\nDJANGO_SECRET_KEY={GENERATED_KEY}\nDJANGO_ADMIN_URL=admin/\n"),
    );
    project.write(
        ".envs/.production/.postgres",
        "POSTGRES_HOST=postgres\nPOSTGRES_DB=hello\nPOSTGRES_PASSWORD=s9Df8g7H6j5K4l3Mn2\n",
    );
    project.force_commit(
        &[".envs/.production/.django", ".envs/.production/.postgres"],
        "cookiecutter-django envs",
    );
}

#[test]
fn cookiecutter_env_files_ship_only_when_include_names_them() {
    let project = project();
    commit_cookiecutter_envs(&project);

    let built = build(&project, &["--target", "local"]);
    assert!(!built.archive.contains(".envs/.production/.django"));
    assert!(!built.archive.contains(".envs/.production/.postgres"));
    assert!(
        !archive_holds(&built, GENERATED_KEY),
        "the secret key was archived"
    );
    assert!(skipped(&built).contains(".envs/.production/.django"));
    assert!(skipped(&built).contains(".envs/.production/.postgres"));

    project.edit_config(
        "python = \"/usr/bin/python3\"\n",
        "python = \"/usr/bin/python3\"\ninclude = [\".envs/.production/\"]\n",
    );
    project.commit_all("ship the envs on purpose");
    let built = build(&project, &["--target", "local"]);
    assert!(built.archive.contains(".envs/.production/.django"));
    assert!(archive_holds(&built, GENERATED_KEY));
}

#[test]
fn a_secret_in_a_file_of_any_name_is_refused_at_its_line_unless_included() {
    let project = project();
    let env = format!("USE_DOCKER=yes\nDJANGO_SECRET_KEY={GENERATED_KEY}\n");
    project.write("compose/production/django.conf", &env);
    project.commit_all("an env file the name rules do not know");

    let failure = build_fails(&project, &["--target", "local"]);
    assert_eq!(failure.code, 2);
    failure.says_error(&[
        "compose/production/django.conf:2",
        "`DJANGO_SECRET_KEY` set to a literal value",
        "include = [\"compose/production/django.conf\"]",
        "exclude = [\"compose/production/django.conf\"]",
    ]);
    assert!(
        !failure.stderr.contains(GENERATED_KEY),
        "{}",
        failure.stderr
    );

    project.edit_config(
        "python = \"/usr/bin/python3\"\n",
        "python = \"/usr/bin/python3\"\ninclude = [\"compose/production/django.conf\"]\n",
    );
    project.commit_all("it is meant to ship");
    let built = build(&project, &["--target", "local"]);
    assert!(built.archive.contains("compose/production/django.conf"));
}

#[test]
fn a_private_key_is_refused_and_every_finding_is_counted() {
    let project = project();
    project.write(
        "deploy/deploy_key",
        "-----BEGIN OPENSSH PRIVATE KEY-----\n\
         b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n\
         -----END OPENSSH PRIVATE KEY-----\n",
    );
    project.write(
        "deploy/run.sh",
        "set -e\nexport API_TOKEN=ghp_9f8e7d6c5b4a\n",
    );
    project.commit_all("keys");

    let failure = build_fails(&project, &["--target", "local"]);
    assert_eq!(failure.code, 2);
    failure.says_error(&[
        "deploy/deploy_key:1",
        "a private key",
        "so do deploy/run.sh:2",
    ]);
}

#[test]
fn a_symlink_into_shipit_dir_is_refused() {
    let project = project();
    // On a host `.shipit/env` holds the release's secrets; collectstatic would copy it into
    // the static root for nginx to serve.
    fs::create_dir_all(project.path("static")).unwrap();
    project.symlink("../.shipit/env", "static/x.txt");
    project.commit_all("a link to the env file");

    let failure = build_fails(&project, &["--target", "local"]);
    assert_eq!(failure.code, 2);
    failure.says_error(&["`static/x.txt`", "`../.shipit/env`", "inside `.shipit`"]);
}

#[test]
fn a_symlink_into_shipit_dir_through_another_link_is_refused() {
    let project = project();
    fs::create_dir_all(project.path(".shipit")).unwrap();
    fs::write(project.path(".shipit/env"), "SECRET=1\n").unwrap();
    project.symlink(".", "up");
    fs::create_dir_all(project.path("static")).unwrap();
    project.symlink("../up/.shipit/env", "static/x.txt");
    project.commit_all("a link through a link");

    let failure = build_fails(&project, &["--target", "local"]);
    assert_eq!(failure.code, 2);
    failure.says_error(&["`static/x.txt`", "inside `.shipit`"]);
}

#[test]
fn a_dangling_symlink_is_refused() {
    let project = project();
    fs::create_dir_all(project.path("static")).unwrap();
    project.symlink("../media/missing.png", "static/logo.png");
    project.commit_all("a link to nothing");

    let failure = build_fails(&project, &["--target", "local"]);
    assert_eq!(failure.code, 2);
    failure.says_error(&["`static/logo.png`", "dangling"]);
}

#[test]
fn a_symlink_to_a_file_left_out_of_the_archive_is_refused() {
    let project = project();
    project.write("private/notes.txt", "notes\n");
    project.symlink("../private/notes.txt", "pages/notes.txt");
    project.edit_config(
        "python = \"/usr/bin/python3\"\n",
        "python = \"/usr/bin/python3\"\nexclude = [\"private/\"]\n",
    );
    project.commit_all("a link to an excluded file");
    let failure = build_fails(&project, &["--target", "local"]);
    assert_eq!(failure.code, 2);
    failure.says_error(&["`pages/notes.txt`", "excluded"]);

    let project = support::project::project();
    project.write(".env", "DEBUG=0\n");
    fs::create_dir_all(project.path("static")).unwrap();
    project.symlink("../.env", "static/env.txt");
    project.commit_all("a link to the (untracked) .env");
    let failure = build_fails(&project, &["--target", "local"]);
    assert_eq!(failure.code, 2);
    failure.says_error(&["`static/env.txt`", "looks like a secret (dotenv file)"]);
}

#[test]
fn with_config_neither_shipit_toml_nor_the_named_file_is_archived() {
    let project = project();
    fs::copy(project.path("shipit.toml"), project.path("other.toml")).unwrap();
    project.commit_all("a second configuration");

    // `--config other.toml` relative to the working directory, the project as `.`.
    let mut shipit = project.shipit_in(&project.root);
    shipit.arg("--config").arg("other.toml");
    let out = project.out("x.tar.gz");
    let built = build_with(
        &project,
        shipit,
        &["--target", "local", "-o", out.to_str().unwrap()],
    );
    assert!(
        !built.archive.contains("shipit.toml"),
        "{:?}",
        built.archive.paths()
    );
    assert!(
        !built.archive.contains("other.toml"),
        "{:?}",
        built.archive.paths()
    );
    assert!(skipped(&built).contains("shipit.toml"));
    assert!(skipped(&built).contains("other.toml"));
}

#[test]
fn a_secret_file_inside_the_project_is_refused_with_its_key() {
    let project = project();
    let original = project.read("shipit.toml");
    let with_secret = |file: &str| {
        let text = original.clone();
        let text = text.replacen(
            "allow_root = true\n",
            &format!(
                "allow_root = true\nsecrets = {{ DJANGO_SECRET_KEY = {{ file = {file:?} }} }}\n"
            ),
            1,
        );
        project.write("shipit.toml", &text);
    };
    with_secret("conf/django_key.txt");
    let failure = build_fails(&project, &["--target", "local"]);
    assert_eq!(failure.code, 2);
    failure.says_error(&[
        "`targets.local.secrets.DJANGO_SECRET_KEY`",
        "`conf/django_key.txt` is inside the project",
        "project.exclude",
    ]);

    // Kept out by a secret-file rule, the same file is fine.
    with_secret("secrets/django_key");
    let built = build(&project, &["--target", "local"]);
    assert!(!built.archive.contains("secrets/django_key"));

    // A webhook's token read from a file: the same rule (on a project nothing was built in).
    let project = support::project::project();
    project.write(
        "shipit.toml",
        &format!(
            "{original}\n[notify.webhooks.team]\nurl = \"https://hooks.example/deploys\"\n\
             token = {{ file = \"conf/hook_token.txt\" }}\n"
        ),
    );
    build_fails(&project, &["--target", "local"]).says_error(&[
        "`notify.webhooks.team.token`",
        "`conf/hook_token.txt` is inside the project",
    ]);

    // A TLS key read from a file (not named like one, which a secret-file rule keeps out):
    // the same rule.
    let project = support::project::project();
    project.write(
        "shipit.toml",
        &format!(
            "{original}
[targets.local.tls]
certificate = {{ file = \"/etc/ssl/site.pem\" }}
             key = {{ file = \"conf/tls.txt\" }}
"
        ),
    );
    build_fails(&project, &["--target", "local"]).says_error(&[
        "`targets.local.tls.key`",
        "`conf/tls.txt` is inside the project",
    ]);
}
