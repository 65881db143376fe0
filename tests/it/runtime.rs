//! The app's runtime against real components: its environment and secrets, the account it runs
//! as, and what is readable on the host. Needs root.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::stack::*;
use support::*;

/// A secret only this test knows, in a file outside the project (shipit reads it at deploy).
struct Secret {
    dir: tempfile::TempDir,
    value: String,
}

impl Secret {
    fn new() -> Secret {
        let dir = tempfile::tempdir().unwrap();
        let value = format!("s3cr3t-{}", random_word());
        std::fs::write(dir.path().join("secret-key"), format!("{value}\n")).unwrap();
        Secret { dir, value }
    }

    fn path(&self) -> String {
        self.dir.path().join("secret-key").display().to_string()
    }
}

fn random_word() -> String {
    let mut bytes = [0u8; 12];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn with_env(stack: &mut Stack, greeting: &str, secret: &Secret) {
    let toml = format!(
        "env = {{ HELLO_GREETING = {greeting:?} }}\nsecrets = {{ DJANGO_SECRET_KEY = {{ file = {:?} }} }}\n",
        secret.path()
    );
    stack.set_options(|o| o.extra = toml);
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every file under `dir` whose bytes contain `needle` (gzip archives decompressed).
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if !path.ends_with("venvs") {
                    stack.push(path);
                }
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            let mut bytes = std::fs::read(&path).unwrap_or_default();
            if path.to_string_lossy().ends_with(".gz") {
                let mut text = Vec::new();
                if flate2::read::GzDecoder::new(&bytes[..])
                    .read_to_end(&mut text)
                    .is_ok()
                {
                    bytes = text;
                }
            }
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[test]
fn secrets_reach_the_app_and_nothing_else() {
    let mut stack = Stack::start();
    let secret = Secret::new();
    with_env(&mut stack, "hi there", &secret);

    let run = stack.deploy(&["-v"]);
    run.expect_code(0);
    let id = run.release();
    let page = stack.serves_release(&id);
    assert!(
        page.contains(&format!("secret key length: {}\n", secret.value.len())),
        "{page}"
    );
    assert!(page.contains("greeting: hi there\n"), "{page}");

    // Not in what shipit printed (with -v: every remote line), its JSON, the remote log, the
    // archives (local and on the host) or any file of the host but the release's env file.
    assert!(!run.stderr.contains(&secret.value), "{}", run.stderr);
    assert!(!run.stdout.contains(&secret.value), "{}", run.stdout);
    let env_file = stack.deploy_to().join(format!("releases/{id}/.shipit/env"));
    assert_eq!(
        files_containing(&stack.deploy_to(), &secret.value),
        vec![env_file.display().to_string()]
    );
    assert!(files_containing(&stack.project.root, &secret.value).is_empty());
    // Not world-readable: the env file, the log, the lock's directory is gone.
    assert_eq!(mode(&env_file), 0o600);
    assert_eq!(mode(&stack.deploy_to().join(".shipit/log")) & 0o077, 0);
    // shipit's state and the kept archives: the deploy user's alone.
    assert_eq!(mode(&stack.deploy_to().join(".shipit")), 0o700);
    let archives = stack.deploy_to().join(".shipit/archives");
    assert_eq!(mode(&archives), 0o700);
    let kept: Vec<_> = std::fs::read_dir(&archives).unwrap().flatten().collect();
    assert!(!kept.is_empty());
    for archive in kept {
        assert_eq!(mode(&archive.path()), 0o600, "{}", archive.path().display());
    }
    // Not on any command line of the host.
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&ps.stdout).contains(&secret.value));
    // The app server (every process working in the release) runs as the deploy user.
    let release = std::fs::canonicalize(stack.deploy_to().join(format!("releases/{id}"))).unwrap();
    let uids: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd == release))
        .filter_map(|e| {
            let status = std::fs::read_to_string(e.path().join("status")).ok()?;
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(!uids.is_empty(), "no process runs in {}", release.display());
    assert!(uids.iter().all(|u| *u == deploy_user().uid), "{uids:?}");
}

#[test]
fn a_rollback_restores_the_environment_of_its_release() {
    let mut stack = Stack::start();
    let secret = Secret::new();
    with_env(&mut stack, "one", &secret);
    let v1 = stack.deploy_release();
    with_env(&mut stack, "two", &secret);
    let v2 = stack.deploy_release();
    assert!(stack.serves_release(&v2).contains("greeting: two\n"));
    stack.rollback(&[]).expect_code(0);
    assert!(stack.serves_release(&v1).contains("greeting: one\n"));
}

#[test]
fn a_secret_that_cannot_be_resolved_stops_the_deploy_before_any_host() {
    let mut stack = Stack::start();
    stack.set_options(|o| {
        o.extra =
            "secrets = { DJANGO_SECRET_KEY = { env = \"SHIPIT_TEST_SURELY_UNSET\" } }\n".into()
    });
    stack
        .deploy(&[])
        .expect_code(2)
        .says(&["DJANGO_SECRET_KEY", "SHIPIT_TEST_SURELY_UNSET is not set"]);
    assert!(!stack.deploy_to().exists(), "a host was touched");
}

#[test]
fn a_secret_too_short_to_mask_is_refused_before_any_host() {
    let mut stack = Stack::start();
    let dir = tempfile::tempdir().unwrap();
    let pin = dir.path().join("pin");
    std::fs::write(&pin, "7q\n").unwrap();
    stack.set_options(|o| {
        o.extra = format!("secrets = {{ PIN = {{ file = {:?} }} }}\n", pin.display())
    });
    let refused = stack.deploy(&[]);
    refused
        .expect_code(2)
        .says_error(&["secret PIN", "too short", "hint:", "longer value"]);
    assert!(!refused.stderr.contains("7q"), "{}", refused.stderr);
    assert!(!stack.deploy_to().exists(), "a host was touched");
}

/// Every line of `secret`, and the raw ESC byte, are nowhere in `text`.
fn shows_neither_secret_nor_escape(what: &str, text: &str, secret: &str) {
    for line in secret.lines() {
        assert!(!text.contains(line), "{what} shows {line:?}:\n{text}");
    }
    assert!(!text.contains('\x1b'), "{what} shows a raw ESC:\n{text}");
    assert!(!text.contains('\x07'), "{what} shows a raw BEL:\n{text}");
}

#[test]
fn a_multi_line_secret_and_control_bytes_a_hook_prints_are_masked_and_neutralised() {
    let mut stack = Stack::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deploy-key");
    let secret = format!(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn{}\nAAAAC3{}\n-----END OPENSSH PRIVATE KEY-----",
        random_word(),
        random_word()
    );
    // As `pass show` leaves it: a trailing line end.
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let print =
        r#"printf '%s\n' "$DEPLOY_KEY"; printf 'before \033[31mred\033]0;pwned\007 after\n'"#;
    let hook = |extra: &str| {
        format!(
            "secrets = {{ DEPLOY_KEY = {{ file = {:?} }} }}\nhooks = {{ before_migrate = [{:?}] }}\n",
            file.display(),
            format!("{print}{extra}")
        )
    };
    stack.set_options(|o| o.extra = hook("; exit 3"));

    // The error tail as text, then with -v and --json.
    let text = stack.shipit(&["deploy", "-t", TARGET]);
    assert_ne!(text.code, 0, "{}", text.stderr);
    let verbose = stack.deploy(&["-v"]);
    assert_ne!(verbose.code, 0, "{}", verbose.stderr);
    for (what, shown) in [
        ("the error", &text.stderr),
        ("stdout", &text.stdout),
        ("-v", &verbose.stderr),
        ("--json", &verbose.stdout),
    ] {
        shows_neither_secret_nor_escape(what, shown, &secret);
    }
    // Shown, masked and neutralised, not dropped: in the tail of the failed step.
    let tail = text.stderr.split("before_migrate").last().unwrap();
    assert!(tail.contains("[REDACTED]"), "{}", text.stderr);
    assert!(tail.contains("before  [31mred"), "{}", text.stderr);

    // The run logs of both.
    let logs = stack.project.root.join(".shipit/logs");
    let mut kept = 0;
    for log in std::fs::read_dir(&logs).unwrap().flatten() {
        let text = std::fs::read_to_string(log.path()).unwrap();
        shows_neither_secret_nor_escape(&log.path().display().to_string(), &text, &secret);
        kept += 1;
    }
    assert_eq!(kept, 2);

    // `shipit run`, as text and as JSON.
    stack.set_options(|o| o.extra = hook(""));
    stack.deploy(&[]).expect_code(0);
    for args in [&[][..], &["--json"][..]] {
        let mut all = vec!["run", "-t", TARGET];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--", print]);
        let run = stack.shipit(&all);
        run.expect_code(0);
        shows_neither_secret_nor_escape("run", &format!("{}{}", run.stdout, run.stderr), &secret);
        assert!(run.stdout.contains("[REDACTED]"), "{}", run.stdout);
    }
}

#[test]
fn an_app_user_of_root_is_refused_unless_allowed() {
    let mut stack = Stack::start();
    stack.set_options(|o| o.extra = "app_user = \"root\"\n".into());
    stack
        .deploy(&[])
        .expect_code(2)
        .says(&["app_user", "root", "allow_root"]);
    assert!(!stack.deploy_to().exists(), "a host was touched");
}

fn get(stack: &Stack, path: &str) -> (u16, String) {
    http_get(stack.port, path).unwrap()
}

#[test]
fn static_files_are_served_where_the_settings_put_them_and_old_hashed_files_survive() {
    let stack = Stack::start();
    // A STATIC_ROOT that is not the default, and hashed names (ManifestStaticFilesStorage).
    let settings = "hello/settings/deployment.py";
    let text = stack.project.read(settings);
    stack.project.write(
        settings,
        &format!("{text}{}", hashed_static_settings("build/collected-static")),
    );
    stack.project.commit_all("hashed static files elsewhere");
    let v1 = stack.deploy_release();
    let old_css = stylesheet_url(&stack.serves_release(&v1));
    assert!(old_css.starts_with("/static/pages/site."), "{old_css}");
    assert_eq!(get(&stack, &old_css).0, 200);

    // A new stylesheet: a new hashed name. The old page's CSS still answers after the switch.
    let css = "pages/static/pages/site.css";
    let text = stack.project.read(css);
    stack
        .project
        .write(css, &format!("{text}\nh1 {{ letter-spacing: 1px; }}\n"));
    stack.project.commit_all("new css");
    let v2 = stack.deploy_release();
    let new_css = stylesheet_url(&stack.serves_release(&v2));
    assert_ne!(new_css, old_css);
    assert_eq!(get(&stack, &new_css).0, 200);
    assert_eq!(
        get(&stack, &old_css).0,
        200,
        "the previous release's CSS is gone"
    );

    // And after a rollback, the newer page's CSS still answers too.
    stack.rollback(&[]).expect_code(0);
    stack.serves_release(&v1);
    assert_eq!(get(&stack, &old_css).0, 200);
    assert_eq!(get(&stack, &new_css).0, 200);
}

/// Every file under `dir` (relative path -> bytes).
fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn collectstatic_is_skipped_when_its_inputs_are_unchanged_and_gives_what_a_full_run_gives() {
    let stack = Stack::start();
    // Hashed names (ManifestStaticFilesStorage) at a STATIC_ROOT that is not the default.
    let settings = "hello/settings/deployment.py";
    let text = stack.project.read(settings);
    stack.project.write(
        settings,
        &format!("{text}{}", hashed_static_settings("build/collected-static")),
    );
    stack.project.commit_all("hashed static files elsewhere");
    let first = stack.deploy_ok();
    let v1 = first["release"].as_str().unwrap().to_string();
    assert_eq!(first["collectstatic"][0], "ran", "{first}");

    // A template change: collectstatic is skipped, the files are the live release's, linked.
    stack.change_page("template only");
    let second = stack.deploy_ok();
    let v2 = second["release"].as_str().unwrap().to_string();
    assert_eq!(
        second["collectstatic"][0],
        format!("skipped, static inputs unchanged since {v1}").as_str(),
        "{second}"
    );
    let css = stylesheet_url(&stack.serves_release(&v2));
    assert_eq!(get(&stack, &css).0, 200, "{css}");
    let root = |id: &str| {
        stack
            .deploy_to()
            .join("releases")
            .join(id)
            .join("build/collected-static")
    };
    let inode = |id: &str| {
        std::os::unix::fs::MetadataExt::ino(
            &std::fs::metadata(root(id).join("staticfiles.json")).unwrap(),
        )
    };
    assert_eq!(
        inode(&v1),
        inode(&v2),
        "the skipped release's files are hard links to the live release's"
    );

    // What was linked is byte for byte what a full collectstatic of release v2 writes.
    let linked = tree(&root(&v2));
    assert!(
        linked.contains_key("staticfiles.json"),
        "{:?}",
        linked.keys()
    );
    let release = stack.deploy_to().join("releases").join(&v2);
    run_as_deploy_ok(&format!(
        "cd {r} && mv build/collected-static build/linked && set -a && . ./.shipit/env && set +a && \
         DJANGO_SETTINGS_MODULE=hello.settings.selected .venv/bin/python manage.py collectstatic --noinput >/dev/null",
        r = shell_quote(&release.display().to_string())
    ));
    let full = tree(&root(&v2));
    assert_eq!(
        linked.keys().collect::<Vec<_>>(),
        full.keys().collect::<Vec<_>>(),
        "the same files"
    );
    for (path, bytes) in &full {
        assert!(
            linked[path] == *bytes,
            "{path} differs from a full collectstatic"
        );
    }

    // A changed stylesheet: collectstatic runs, and the new hashed name is served.
    let sheet = "pages/static/pages/site.css";
    let text = stack.project.read(sheet);
    stack
        .project
        .write(sheet, &format!("{text}\nh1 {{ letter-spacing: 2px; }}\n"));
    stack.project.commit_all("new css");
    let third = stack.deploy_ok();
    assert_eq!(third["collectstatic"][0], "ran", "{third}");
    let new_css = stylesheet_url(&stack.serves_release(third["release"].as_str().unwrap()));
    assert_ne!(new_css, css);
    assert!(get(&stack, &new_css).1.contains("letter-spacing: 2px"));

    // A storage class of the project's own: code the static hash does not cover, so
    // collectstatic always runs.
    stack.project.write(
        "hello/storage.py",
        "from django.contrib.staticfiles.storage import ManifestStaticFilesStorage\n\n\n\
         class Storage(ManifestStaticFilesStorage):\n    pass\n",
    );
    let text = stack.project.read(settings);
    stack.project.write(
        settings,
        &format!(
            "{text}\nSTORAGES[\"staticfiles\"] = {{\"BACKEND\": \"hello.storage.Storage\"}}\n"
        ),
    );
    stack.project.commit_all("the project's own storage");
    assert_eq!(stack.deploy_ok()["collectstatic"][0], "ran");
    stack.change_page("template only, own storage");
    let fifth = stack.deploy_ok();
    assert_eq!(fifth["collectstatic"][0], "ran", "{fifth}");
}

/// The `settings` fact of a deploy's JSON, and the STATIC_ROOT the release recorded.
fn settings_of(stack: &Stack, json: &serde_json::Value) -> (String, String) {
    let id = json["release"].as_str().unwrap();
    let answer = std::fs::read_to_string(
        stack
            .deploy_to()
            .join("releases")
            .join(id)
            .join(".shipit/django"),
    )
    .unwrap();
    let root = answer
        .lines()
        .find_map(|l| l.strip_prefix("STATIC_ROOT="))
        .unwrap_or_default()
        .to_string();
    (
        json["settings"][0].as_str().unwrap_or_default().into(),
        root,
    )
}

/// Django is set up to read the static settings only when something they read changed: a
/// template change reuses the live release's answer (its paths moved to the new release); a
/// changed settings file, environment or a new file in the project is read again.
#[test]
fn the_settings_are_read_again_only_when_something_they_read_changed() {
    let mut stack = Stack::start();
    let settings = "hello/settings/deployment.py";
    let text = stack.project.read(settings);
    stack.project.write(
        settings,
        &format!(
            "{text}{}STATIC_ROOT = BASE_DIR / os.environ.get(\"HELLO_STATIC\", \"collected\")\n",
            hashed_static_settings("build/collected-static")
        ),
    );
    stack.project.commit_all("STATIC_ROOT from the environment");
    let first = stack.deploy_ok();
    let deploy_to = stack.deploy_to();
    let release = |json: &serde_json::Value| {
        deploy_to
            .join("releases")
            .join(json["release"].as_str().unwrap())
            .display()
            .to_string()
    };
    assert_eq!(
        settings_of(&stack, &first),
        ("ran".into(), format!("{}/collected", release(&first)))
    );

    // A template change: the answer is the live release's, with this release's paths.
    stack.change_page("template only");
    let second = stack.deploy_ok();
    let v1 = first["release"].as_str().unwrap();
    assert_eq!(
        settings_of(&stack, &second),
        (
            format!("skipped, nothing they read changed since {v1}"),
            format!("{}/collected", release(&second))
        )
    );
    let css = stylesheet_url(&stack.serves_release(second["release"].as_str().unwrap()));
    assert_eq!(get(&stack, &css).0, 200, "{css}");

    // The environment changes STATIC_ROOT: read again, and served from there.
    stack.set_options(|o| o.extra = "env = { HELLO_STATIC = \"elsewhere\" }\n".into());
    let third = stack.deploy_ok();
    assert_eq!(
        settings_of(&stack, &third),
        ("ran".into(), format!("{}/elsewhere", release(&third)))
    );
    let css = stylesheet_url(&stack.serves_release(third["release"].as_str().unwrap()));
    assert_eq!(get(&stack, &css).0, 200, "{css}");

    // A settings file changes it: read again.
    let text = stack.project.read(settings);
    stack.project.write(
        settings,
        &format!("{text}STATIC_ROOT = BASE_DIR / \"third\"\n"),
    );
    stack.project.commit_all("another STATIC_ROOT");
    let fourth = stack.deploy_ok();
    assert_eq!(
        settings_of(&stack, &fourth),
        ("ran".into(), format!("{}/third", release(&fourth)))
    );

    // A new file the settings only look for: read again.
    let text = stack.project.read(settings);
    stack.project.write(
        settings,
        &format!(
            "{text}if (BASE_DIR / \"static-here\").exists():\n    STATIC_ROOT = BASE_DIR / \"here\"\n"
        ),
    );
    stack.project.commit_all("STATIC_ROOT when a file exists");
    let fifth = stack.deploy_ok();
    assert_eq!(settings_of(&stack, &fifth).0, "ran");
    stack.project.write("static-here", "");
    stack.project.commit_all("the file exists");
    let sixth = stack.deploy_ok();
    assert_eq!(
        settings_of(&stack, &sixth),
        ("ran".into(), format!("{}/here", release(&sixth)))
    );
    stack.serves_release(sixth["release"].as_str().unwrap());
}

#[test]
fn python_given_as_a_version_is_found_by_uv() {
    let stack = Stack::start();
    // Debian's 3.11: uv finds it (a version the host lacks would be `uv python install`ed,
    // which needs network access to python-build-standalone that this machine does not have).
    let config = stack.project.read("shipit.toml");
    stack.project.write(
        "shipit.toml",
        &config.replace("python = \"/usr/bin/python3\"", "python = \"3.11\""),
    );
    stack.project.commit_all("python by version");
    let id = stack.deploy_release();
    stack.serves_release(&id);
    let venv = std::fs::read_link(stack.deploy_to().join(format!("releases/{id}/.venv"))).unwrap();
    let cfg = std::fs::read_to_string(
        stack
            .deploy_to()
            .join(format!("releases/{id}"))
            .join(&venv)
            .join("pyvenv.cfg"),
    )
    .unwrap();
    assert!(cfg.contains("3.11"), "{cfg}");
}

#[test]
fn an_older_gunicorn_deploys_with_the_defaults() {
    let stack = Stack::start();
    // gunicorn 23 rejects --no-control-socket, which only 25 and later need; it needs packaging.
    let requirements = "requirements/deployment.txt";
    let text = stack.project.read(requirements);
    stack.project.write(
        requirements,
        &text.replace("gunicorn==27.0.1", "gunicorn==23.0.0\npackaging==25.0"),
    );
    stack.project.commit_all("gunicorn 23");
    let id = stack.deploy_release();
    stack.serves_release(&id);
    let args = std::fs::read_to_string(
        stack
            .deploy_to()
            .join(format!("releases/{id}/.shipit/gunicorn.args")),
    )
    .unwrap();
    assert_eq!(
        args.trim(),
        "",
        "gunicorn 23 gets no version-specific option"
    );
}

#[test]
fn credentials_in_hook_commands_are_masked_in_labels_errors_json_and_logs() {
    let mut stack = Stack::start();
    let token = format!("tok3n{}", random_word());
    let password = format!("pw{}", random_word());
    let passing =
        format!("API_TOKEN={token} true && curl_url=https://ci:{password}@ci.invalid/ping && true");
    stack.set_options(|o| {
        o.extra = format!("hooks = {{ before_migrate = [{passing:?}] }}\n");
    });

    let run = stack.deploy(&["-v"]);
    run.expect_code(0);
    let dry = stack.deploy(&["--dry-run", "-v"]);
    dry.expect_code(0);
    let failing = format!("curl -H 'Authorization: Bearer {token}' https://ci.invalid && exit 9");
    stack.set_options(|o| {
        o.extra = format!("hooks = {{ after_switch = [{failing:?}] }}\n");
    });
    let failed = stack.deploy(&[]);
    assert_ne!(failed.code, 0, "{}", failed.stderr);

    for (what, text) in [
        ("stderr", &run.stderr),
        ("stdout", &run.stdout),
        ("the dry run's scripts", &dry.stdout),
        ("the dry run's stderr", &dry.stderr),
        ("stderr of the failure", &failed.stderr),
        ("stdout of the failure", &failed.stdout),
    ] {
        assert!(!text.contains(&token), "{what} shows the token:\n{text}");
        assert!(
            !text.contains(&password),
            "{what} shows the password:\n{text}"
        );
    }
    let scripts = format!("{}{}", dry.stdout, dry.stderr);
    assert!(scripts.contains("API_TOKEN=[REDACTED]"), "{scripts}");
    assert!(
        scripts.contains("https://ci:[REDACTED]@ci.invalid"),
        "{scripts}"
    );
    assert!(
        failed.stderr.contains("Bearer [REDACTED]"),
        "{}",
        failed.stderr
    );
    for needle in [&token, &password] {
        assert!(files_containing(&stack.deploy_to().join(".shipit"), needle).is_empty());
        assert!(files_containing(&stack.project.root.join(".shipit"), needle).is_empty());
    }
}
