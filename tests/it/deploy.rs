//! `shipit deploy` end to end against real components: OpenSSH sshd (logging in as `deploy`),
//! nginx and supervisord running as `deploy`, and gunicorn serving the example Django project.
//! No mocks: every assertion is about what a person would see (pages served through nginx,
//! symlinks, files, supervisor programs, exit statuses and messages). Needs root.
//!
//! Each test builds its own stack (sshd, nginx, supervisord, a deploy-owned `deploy_to`) on
//! fresh ports and directories, so tests run in parallel threads. The two-host test gives the
//! second host its own filesystem view with a private mount namespace (see `support::fleet`).
//!
//! Per-test timings: `cargo test --test deploy -- --nocapture`.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use support::fleet::{serves_release_on, TwoHosts};
use support::stack::*;
use support::*;

/// The example project's stylesheet, as collectstatic should publish it.
fn example_css() -> String {
    std::fs::read_to_string(support::project::example_dir().join("pages/static/pages/site.css"))
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// 1. A first deploy.

#[test]
fn first_deploy_serves_the_release_through_nginx() {
    let stack = Stack::start();
    let json = stack.deploy_ok();
    let id = json["release"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 14, "release id {id:?}");
    assert_eq!(json["target"], TARGET);
    assert_eq!(
        json["hosts"],
        serde_json::json!([stack.host.sshd.host_spec()]),
        "{json}"
    );

    // Served through nginx -> gunicorn of the new release.
    let body = stack.serves_release(&id);
    assert!(body.contains(&format!("target: {TARGET}\n")), "{body}");
    assert_eq!(
        stack.page("/health", |s, _| s == 200),
        "ok",
        "health check body"
    );
    // collectstatic ran and nginx serves the static root of `current`.
    assert_eq!(
        stack.page("/static/pages/site.css", |s, _| s == 200),
        example_css()
    );

    // The layout on the host.
    let deploy_to = stack.deploy_to();
    assert_eq!(stack.current(), Some(format!("releases/{id}")));
    assert_eq!(stack.releases(), vec![id.clone()]);
    assert_eq!(state_of(&deploy_to, &id), "live");
    assert!(
        !deploy_to.join(".shipit/lock").exists(),
        "the lock was not released"
    );
    let release = deploy_to.join("releases").join(&id);
    assert_eq!(
        std::fs::read_link(release.join("var")).unwrap(),
        deploy_to.join("shared/var"),
        "shared dir link"
    );
    assert!(
        deploy_to.join("shared/var/db.sqlite3").is_file(),
        "migrate made no database"
    );
    let venvs = stack.venvs();
    assert_eq!(venvs.len(), 1, "{venvs:?}");
    assert_eq!(
        std::fs::read_link(release.join(".venv")).unwrap(),
        Path::new("../../venvs").join(&venvs[0]),
        "the venv link is relative, so it survives deploy_to being reached through a symlink"
    );
    assert_eq!(
        json["venv"],
        serde_json::json!([format!("built {}", venvs[0])]),
        "{json}"
    );
    // Everything on the host belongs to the deploy user.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&release).unwrap().uid(),
        deploy_user().uid
    );

    // The release's program runs under supervisor (RUNNING once up for startsecs=1).
    let running = wait_for(Duration::from_secs(10), || {
        let status = stack.programs();
        (status.contains(&program(&id)) && status.contains("RUNNING")).then_some(())
    });
    assert!(running.is_some(), "{}", stack.programs());

    // One connection, one channel (one host): begin receives the archive on its stdin, then
    // asks for prepare and switch, which run in the same exec.
    let usage = &json["usage"];
    assert_eq!(usage["connections"], 1, "{json}");
    assert_eq!(usage["channels"], 1, "{json}");
    assert_eq!(usage["bytes_uploaded"], json["archive"]["size"], "{json}");
}

// ---------------------------------------------------------------------------------------------
// 2. A second deploy.

/// What `status` says once it no longer lists `program`, or after the stop timeout (35 s): a
/// deploy stops the previous release's app server in the background, after it reported success.
fn gone(status: impl Fn() -> String, program: &str) -> String {
    wait_for(Duration::from_secs(35), || {
        let now = status();
        (!now.contains(program)).then_some(now)
    })
    .unwrap_or_else(&status)
}

#[test]
fn second_deploy_serves_new_code_reuses_the_venv_and_stops_the_old_app() {
    let stack = Stack::start();
    let first = stack.deploy_ok();
    let id1 = first["release"].as_str().unwrap().to_string();
    let body = stack.serves_release(&id1);
    assert!(!body.contains("second release"), "{body}");
    let visits_before = visits(&body);

    stack.change_page("marker: second release");
    let second = stack.deploy_ok();
    let id2 = second["release"].as_str().unwrap().to_string();
    assert!(id2 > id1, "release ids must increase: {id1} then {id2}");

    let body = stack.serves_release(&id2);
    assert!(body.contains("<p>marker: second release</p>"), "{body}");
    // var/ is shared: the database (and its visit count) survived the new release.
    assert!(
        visits(&body) > visits_before,
        "visit count went from {visits_before} to {}: the database was not shared",
        visits(&body)
    );
    assert_eq!(stack.current(), Some(format!("releases/{id2}")));
    assert_eq!(stack.releases(), vec![id1.clone(), id2.clone()]);
    assert_eq!(state_of(&stack.deploy_to(), &id1), "good");
    assert_eq!(state_of(&stack.deploy_to(), &id2), "live");

    // Same python, same requirements: the venv is reused.
    let venvs = stack.venvs();
    assert_eq!(venvs.len(), 1, "{venvs:?}");
    assert_eq!(
        first["venv"],
        serde_json::json!([format!("built {}", venvs[0])])
    );
    assert_eq!(
        second["venv"],
        serde_json::json!([format!("reused {}", venvs[0])])
    );

    // The first release's app server is gone (it drains in the background after the deploy
    // reported success, within its stop timeout); the second's runs.
    let status = gone(|| stack.programs(), &program(&id1));
    assert!(!status.contains(&program(&id1)), "{status}");
    assert!(status.contains(&program(&id2)), "{status}");
    assert_eq!(
        list_dir(&stack.host.sup.include_dir),
        vec![format!("{}.conf", program(&id2))]
    );
    let old_socket = stack
        .deploy_to()
        .join(format!("releases/{id1}/.shipit/app.sock"));
    assert!(
        std::os::unix::net::UnixStream::connect(&old_socket).is_err(),
        "the old release's gunicorn still accepts on {}",
        old_socket.display()
    );
    assert!(!stack.deploy_to().join(".shipit/lock").exists());
}

/// The site nginx gets differs between releases only by a comment naming the release, so
/// "reload nginx only if the site changed" should not reload it for a plain code change:
/// `current` moves traffic by itself.
#[test]
fn a_code_change_does_not_rewrite_the_nginx_site() {
    let stack = Stack::start();
    let first = stack.deploy_ok();
    stack.serves_release(first["release"].as_str().unwrap());
    let site = stack.host.nginx.sites_dir.join("hello.conf");
    let site_before = std::fs::read_to_string(&site).unwrap();
    let reloads_before = stack
        .host
        .nginx
        .error_log()
        .matches("reconfiguring")
        .count();

    stack.change_page("marker: code only");
    let second = stack.deploy_ok();
    stack.serves_release(second["release"].as_str().unwrap());
    assert_eq!(std::fs::read_to_string(&site).unwrap(), site_before);
    assert_eq!(
        stack
            .host
            .nginx
            .error_log()
            .matches("reconfiguring")
            .count(),
        reloads_before,
        "nginx was reloaded although only the code changed"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. New requirements, new venv.

#[test]
fn changed_requirements_build_a_new_venv() {
    let stack = Stack::start();
    let first = stack.deploy_ok();
    let old_venv = stack.venvs();
    assert_eq!(old_venv.len(), 1);

    let req = "requirements/deployment.txt";
    let text = stack.project.read(req);
    stack.project.write(
        req,
        &format!("{text}six==1.16.0\n    # via the deploy test\n"),
    );
    stack.project.commit_all("add six");
    let second = stack.deploy_ok();
    let id2 = second["release"].as_str().unwrap().to_string();
    stack.serves_release(&id2);

    let venvs = stack.venvs();
    assert_eq!(venvs.len(), 2, "{venvs:?}");
    let new_venv = venvs.iter().find(|v| **v != old_venv[0]).unwrap().clone();
    assert_eq!(
        second["venv"],
        serde_json::json!([format!("built {new_venv}")])
    );
    assert_ne!(first["venv"], second["venv"]);
    assert_eq!(
        std::fs::read_link(stack.deploy_to().join("releases").join(&id2).join(".venv")).unwrap(),
        Path::new("../../venvs").join(&new_venv)
    );
    // The new venv has the new package and still serves.
    let python = stack
        .deploy_to()
        .join("venvs")
        .join(&new_venv)
        .join("bin/python");
    run_as_deploy_ok(&format!(
        "{} -c 'import six, django, gunicorn'",
        shell_quote(&python.display().to_string())
    ));
}

/// The venv key covers the files a requirements file includes (`-r`, recursively, relative to
/// the including file): a change to an included file only builds a new venv instead of reusing
/// one that lacks it.
#[test]
fn a_change_to_an_included_requirements_file_builds_a_new_venv() {
    let mut stack = Stack::start();
    let deployment = stack.project.read("requirements/deployment.txt");
    stack
        .project
        .write("requirements/split.txt", "-r split/deployment.txt\n");
    stack.project.write(
        "requirements/split/deployment.txt",
        &format!("{deployment}-r extra.txt\n"),
    );
    stack
        .project
        .write("requirements/split/extra.txt", "# nothing extra yet\n");
    stack.set_requirements("requirements/split.txt");
    let first = stack.deploy_ok();
    let old_venv = stack.venvs();
    assert_eq!(old_venv.len(), 1);

    stack
        .project
        .write("requirements/split/extra.txt", "six==1.16.0\n");
    stack
        .project
        .commit_all("six, in a file the requirements include");
    let second = stack.deploy_ok();
    let id2 = second["release"].as_str().unwrap().to_string();
    stack.serves_release(&id2);

    let venvs = stack.venvs();
    assert_eq!(
        venvs.len(),
        2,
        "the included file's change reused the venv: {venvs:?}"
    );
    let new_venv = venvs.iter().find(|v| **v != old_venv[0]).unwrap().clone();
    assert_eq!(
        second["venv"],
        serde_json::json!([format!("built {new_venv}")]),
        "{first}"
    );
    let python = stack
        .deploy_to()
        .join("venvs")
        .join(&new_venv)
        .join("bin/python");
    run_as_deploy_ok(&format!(
        "{} -c 'import six, django, gunicorn'",
        shell_quote(&python.display().to_string())
    ));
}

// ---------------------------------------------------------------------------------------------
/// The health check's Host header is by default the first of the release's ALLOWED_HOSTS (as
/// its settings say), so a site that allows only its own name deploys with no health setting;
/// a Host it does not allow gets a 400, which fails the deploy at once with the hint instead
/// of waiting out the timeout.
#[test]
fn the_health_check_asks_with_an_allowed_host_and_a_400_fails_at_once_with_the_hint() {
    let mut stack = Stack::start();
    let env = "\n[targets.test.env]\nDJANGO_ALLOWED_HOSTS = \"shop.example.org\"\n";
    stack.set_options(|o| o.extra = env.into());
    let first = stack.deploy_ok();
    let release = first["release"].as_str().unwrap().to_string();

    stack.set_options(|o| o.extra = format!("health = {{ host = \"other.example\" }}\n{env}"));
    stack.change_page("marker: not allowed");
    let run = stack.deploy(&[]);
    run.expect_code(1).says(&[
        "the new app server answered its health check on",
        "HTTP/1.0 400 Bad Request",
        "the Host header (other.example) is not in ALLOWED_HOSTS",
        "nothing was switched",
    ]);
    assert!(!run.stderr.contains("within 30s"), "{}", run.stderr);
    assert_eq!(stack.current_id(), release);
}

// 4. A failing migration.

#[test]
fn failing_migration_leaves_the_old_release_serving() {
    let stack = Stack::start();
    let first = stack.deploy_ok();
    let id1 = first["release"].as_str().unwrap().to_string();
    stack.serves_release(&id1);
    let site = stack.host.nginx.sites_dir.join("hello.conf");
    let site_before = std::fs::read_to_string(&site).unwrap();

    stack.project.write(
        "pages/migrations/0002_fail.py",
        "from django.db import migrations\n\n\n\
         class Migration(migrations.Migration):\n\
         \x20   dependencies = [(\"pages\", \"0001_initial\")]\n\
         \x20   operations = [migrations.RunPython(lambda apps, schema: 1 / 0)]\n",
    );
    stack.change_page("marker: never served");
    let run = stack.deploy(&[]);
    run.expect_code(1).says(&[
        &format!(
            "{}: step `migrate` failed with exit status",
            stack.host.sshd.host_spec()
        ),
        "ZeroDivisionError",
    ]);
    assert!(
        run.stderr.starts_with("error:") || run.stderr.contains("\nerror: "),
        "{}",
        run.stderr
    );

    // Nothing moved: current, the page, the nginx site, the app server.
    assert_eq!(stack.current(), Some(format!("releases/{id1}")));
    let body = stack.serves_release(&id1);
    assert!(!body.contains("never served"), "{body}");
    assert_eq!(std::fs::read_to_string(&site).unwrap(), site_before);
    let status = stack.programs();
    assert!(status.contains(&program(&id1)), "{status}");
    assert_eq!(status.lines().count(), 1, "{status}");

    // The failed release is kept for inspection, marked failed; the lock is gone.
    let releases = stack.releases();
    assert_eq!(releases.len(), 2, "{releases:?}");
    let failed = releases.iter().find(|r| **r != id1).unwrap();
    assert_eq!(state_of(&stack.deploy_to(), failed), "failed");
    assert_eq!(state_of(&stack.deploy_to(), &id1), "live");
    assert!(
        !stack.deploy_to().join(".shipit/lock").exists(),
        "lock left behind"
    );
}

/// The pids of the processes whose working directory is `dir` or below it.
fn processes_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(dir)))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Without migrate hooks, the settings probe and collectstatic run in the background while
/// `migrate` runs: a migration that waits for collectstatic's first file finishes. A failing
/// collectstatic still fails the deploy as the step `collectstatic`, with its own message, after
/// `migrate` completed.
#[test]
fn collectstatic_runs_while_migrate_runs_and_its_failure_still_fails_the_deploy() {
    let stack = Stack::start();
    stack.project.write(
        "pages/migrations/0002_wait_for_static.py",
        "import os, time\n\
         from django.conf import settings\n\
         from django.db import migrations\n\n\n\
         def wait(apps, schema_editor):\n\
         \x20   css = os.path.join(settings.STATIC_ROOT, 'pages', 'site.css')\n\
         \x20   for _ in range(900):\n\
         \x20       if os.path.exists(css):\n\
         \x20           print('collectstatic wrote %s while migrate ran' % css)\n\
         \x20           return\n\
         \x20       time.sleep(0.1)\n\
         \x20   raise RuntimeError('collectstatic did not run while migrate ran')\n\n\n\
         class Migration(migrations.Migration):\n\
         \x20   dependencies = [('pages', '0001_initial')]\n\
         \x20   operations = [migrations.RunPython(wait)]\n",
    );
    stack
        .project
        .commit_all("a migration that waits for collectstatic");
    let run = stack.deploy(&["-v"]);
    run.expect_code(0).says(&[
        "→ background (settings, collectstatic)",
        "collectstatic wrote",
        "collectstatic took",
    ]);
    let first: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(migrate_fact(&first), "ran", "{first}");
    assert_eq!(first["collectstatic"][0], "ran", "{first}");
    assert_eq!(first["settings"][0], "ran", "{first}");
    let v1 = first["release"].as_str().unwrap().to_string();
    assert!(stack.serves_release(&v1).contains("/static/"));
    assert_eq!(
        stack.page("/static/pages/site.css", |status, _| status == 200),
        example_css()
    );

    // Hashed names and a stylesheet naming a file that does not exist: collectstatic fails.
    let settings = "hello/settings/deployment.py";
    let text = stack.project.read(settings);
    stack.project.write(
        settings,
        &format!("{text}{}", hashed_static_settings("staticfiles")),
    );
    let css = "pages/static/pages/site.css";
    let text = stack.project.read(css);
    stack.project.write(
        css,
        &format!("{text}\nbody {{ background: url(\"missing.png\"); }}\n"),
    );
    stack.project.write(
        "pages/migrations/0003_after.py",
        "from django.db import migrations\n\n\n\
         class Migration(migrations.Migration):\n\
         \x20   dependencies = [('pages', '0002_wait_for_static')]\n\
         \x20   operations = [migrations.RunPython(migrations.RunPython.noop)]\n",
    );
    stack.change_page("marker: never served");
    let run = stack.deploy(&[]);
    run.expect_code(1).says(&[
        &format!(
            "{}: step `collectstatic` failed with exit status",
            stack.host.sshd.host_spec()
        ),
        "missing.png",
        "could not be found",
    ]);
    eprintln!("[overlap] a failing collectstatic:\n{}", run.stderr);
    let failed = stack
        .releases()
        .into_iter()
        .find(|r| *r != v1)
        .expect("the failed release is kept");
    assert_eq!(stack.state(&failed), "failed");
    let shown = std::fs::read_to_string(
        stack
            .deploy_to()
            .join("releases")
            .join(&failed)
            .join(".shipit/showmigrations"),
    )
    .unwrap();
    assert!(
        shown.contains("[X]  pages.0003_after"),
        "migrate ran:\n{shown}"
    );
    let body = stack.serves_release(&v1);
    assert!(!body.contains("never served"), "{body}");
    assert!(!stack.locked(), "lock left behind");
}

/// A failing `migrate` ends the collectstatic running beside it (and waits until it is gone)
/// before the deploy reports: nothing keeps writing into the failed release.
#[test]
fn a_failing_migrate_stops_the_collectstatic_running_beside_it() {
    let stack = Stack::start();
    let v1 = stack.deploy_release();
    // collectstatic hangs (it runs: the stylesheet changed); the migration fails once it sees
    // collectstatic run in its release.
    let css = "pages/static/pages/site.css";
    let text = stack.project.read(css);
    stack
        .project
        .write(css, &format!("{text}\nh1 {{ letter-spacing: 1px; }}\n"));
    let settings = "hello/settings/deployment.py";
    let text = stack.project.read(settings);
    stack.project.write(
        settings,
        &format!(
            "{text}\nimport sys as _sys, time as _time\n\n\
             if 'collectstatic' in _sys.argv:\n    _time.sleep(300)\n"
        ),
    );
    stack.project.write(
        "pages/migrations/0002_fail.py",
        "import os, time\n\
         from django.db import migrations\n\n\n\
         def running():\n\
         \x20   for pid in filter(str.isdigit, os.listdir('/proc')):\n\
         \x20       try:\n\
         \x20           here = os.readlink('/proc/%s/cwd' % pid) == os.getcwd()\n\
         \x20           if here and b'collectstatic' in open('/proc/%s/cmdline' % pid, 'rb').read():\n\
         \x20               return True\n\
         \x20       except OSError:\n\
         \x20           pass\n\
         \x20   return False\n\n\n\
         def fail(apps, schema_editor):\n\
         \x20   for _ in range(900):\n\
         \x20       if running():\n\
         \x20           raise RuntimeError('migration failed while collectstatic ran')\n\
         \x20       time.sleep(0.1)\n\
         \x20   raise RuntimeError('collectstatic never ran')\n\n\n\
         class Migration(migrations.Migration):\n\
         \x20   dependencies = [('pages', '0001_initial')]\n\
         \x20   operations = [migrations.RunPython(fail)]\n",
    );
    stack.change_page("marker: never served");
    let started = std::time::Instant::now();
    let run = stack.deploy(&[]);
    run.expect_code(1).says(&[
        &format!(
            "{}: step `migrate` failed with exit status",
            stack.host.sshd.host_spec()
        ),
        "migration failed while collectstatic ran",
        "stopped the background steps",
    ]);
    eprintln!("[overlap] a failing migrate:\n{}", run.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(200),
        "the deploy waited for collectstatic"
    );
    let failed = stack.releases().into_iter().find(|r| *r != v1).unwrap();
    let left = processes_in(&stack.deploy_to().join("releases").join(&failed));
    assert!(
        left.is_empty(),
        "processes left in the failed release: {left:?}"
    );
    assert_eq!(stack.state(&failed), "failed");
    stack.serves_release(&v1);
    assert!(!stack.locked(), "lock left behind");
}

/// The `migrate` fact of a deploy's JSON (`ran`, or `skipped, no migration changed since ID`).
fn migrate_fact(json: &Value) -> String {
    json["migrate"][0].as_str().unwrap_or("").to_string()
}

/// The rows of the migration table of the SQLite database `file` under the shared `var/`, as
/// `app.name` lines.
fn applied_in(stack: &Stack, file: &str) -> Vec<String> {
    let db = stack.deploy_to().join("shared/var").join(file);
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\n\
             for a, n in sqlite3.connect(sys.argv[1]).execute('SELECT app, name FROM django_migrations ORDER BY id'):\n\
             \x20   print(a + '.' + n)",
        ])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "read {}: {}",
        db.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn migrate_is_skipped_only_when_provably_nothing_changed() {
    let stack = Stack::start();
    let first = stack.deploy_ok();
    let id1 = first["release"].as_str().unwrap().to_string();
    assert_eq!(
        migrate_fact(&first),
        "ran",
        "a first deploy migrates: {first}"
    );
    let applied = applied_in(&stack, "db.sqlite3");
    assert!(
        applied.contains(&"pages.0001_initial".to_string()),
        "{applied:?}"
    );

    // A code-only change: the same migrations, the same database, untouched since.
    stack.change_page("code only");
    let run = stack.deploy(&[]);
    run.expect_code(0).says(&[&format!(
        "migrate: skipped, no migration changed since {id1}"
    )]);
    let id2 = run.release();
    assert_eq!(
        migrate_fact(&run.json()),
        format!("skipped, no migration changed since {id1}")
    );
    stack.serves_release(&id2);
    assert_eq!(applied_in(&stack, "db.sqlite3"), applied);

    // --migrate=always runs it anyway.
    stack.change_page("forced");
    let run = stack.deploy(&["--migrate=always"]);
    run.expect_code(0);
    assert_eq!(migrate_fact(&run.json()), "ran");
    let id3 = run.release();

    // A new migration runs it, and it is applied.
    stack.project.write(
        "pages/migrations/0002_marker.py",
        "from django.db import migrations\n\n\n\
         class Migration(migrations.Migration):\n\
         \x20   dependencies = [(\"pages\", \"0001_initial\")]\n\
         \x20   operations = [migrations.RunSQL(\"CREATE TABLE bench_marker (id integer)\", \"DROP TABLE bench_marker\")]\n",
    );
    stack.change_page("a new migration");
    let run = stack.deploy(&[]);
    run.expect_code(0);
    assert_eq!(migrate_fact(&run.json()), "ran", "{}", run.stderr);
    let with_marker = applied_in(&stack, "db.sqlite3");
    assert_eq!(
        with_marker.last().map(String::as_str),
        Some("pages.0002_marker"),
        "{with_marker:?} (after {id3})"
    );

    // Another database (the settings name another SQLite file): migrated, though no migration
    // file changed.
    let base = stack.project.read("hello/settings/base.py");
    stack.project.write(
        "hello/settings/base.py",
        &base.replace("VAR_DIR / \"db.sqlite3\"", "VAR_DIR / \"other.sqlite3\""),
    );
    stack.project.commit_all("another database");
    let run = stack.deploy(&["-v"]);
    run.expect_code(0);
    assert_eq!(migrate_fact(&run.json()), "ran", "{}", run.stderr);
    // The migration files were the live release's, so the database was read while the app
    // server started; found changed, the app server was stopped, migrate ran, it started again.
    let restarted = run
        .stderr
        .find("the database changed since")
        .expect("migrate-check found the database changed");
    let started_again = run.stderr[restarted..]
        .find("health check before the switch")
        .expect("the app server was started again after migrate");
    assert!(
        run.stderr[restarted..restarted + started_again]
            .contains("stopped the new release's programs"),
        "{}",
        run.stderr
    );
    assert_eq!(applied_in(&stack, "other.sqlite3"), with_marker);
    stack.serves_release(&run.release());

    // The same database, recreated since the live release migrated it: migrated again.
    std::fs::remove_file(stack.deploy_to().join("shared/var/other.sqlite3")).unwrap();
    stack.change_page("database recreated");
    let run = stack.deploy(&[]);
    run.expect_code(0);
    assert_eq!(migrate_fact(&run.json()), "ran", "{}", run.stderr);
    assert_eq!(applied_in(&stack, "other.sqlite3"), with_marker);
    stack.serves_release(&run.release());

    // And then nothing changed again: skipped.
    stack.change_page("code only again");
    let run = stack.deploy(&[]);
    run.expect_code(0);
    assert!(
        migrate_fact(&run.json()).starts_with("skipped"),
        "{}",
        run.stderr
    );

    // An installed app more, whose migrations were in the venv all along: migrated.
    let base = stack.project.read("hello/settings/base.py");
    stack.project.write(
        "hello/settings/base.py",
        &base.replace(
            "    \"django.contrib.staticfiles\",\n",
            "    \"django.contrib.staticfiles\",\n    \"django.contrib.sites\",\n",
        ),
    );
    stack.project.commit_all("the sites app");
    let run = stack.deploy(&[]);
    run.expect_code(0);
    assert_eq!(migrate_fact(&run.json()), "ran", "{}", run.stderr);
    let applied = applied_in(&stack, "other.sqlite3");
    assert!(
        applied.contains(&"sites.0001_initial".to_string()),
        "{applied:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. The deploy lock.

#[test]
fn a_held_lock_refuses_the_deploy_until_broken() {
    let stack = Stack::start();
    let deploy_to = stack.deploy_to();
    let lock = deploy_to.join(".shipit/lock");
    for dir in [deploy_to.clone(), deploy_to.join(".shipit"), lock.clone()] {
        mkdir_as_deploy(&dir);
    }
    let info = "token=sekrit-token-of-alice\nby=alice@elsewhere\nsince=2026-01-01T00:00:00Z\nrelease=20260101000000\npid=4242\n";
    write_as_deploy(&lock.join("info"), info);

    let run = stack.deploy(&[]);
    run.expect_code(4)
        .says(&["locked by", "alice@elsewhere", "--break-lock"]);
    assert!(
        !run.stderr.contains("sekrit"),
        "the lock token leaked:\n{}",
        run.stderr
    );
    assert_eq!(stack.releases(), Vec::<String>::new());
    assert_eq!(stack.current(), None);
    // Someone else's lock is left exactly as it was.
    assert_eq!(std::fs::read_to_string(lock.join("info")).unwrap(), info);

    let run = stack.deploy(&["--break-lock"]);
    run.expect_code(0);
    let id = run.release();
    stack.serves_release(&id);
    assert_eq!(stack.current(), Some(format!("releases/{id}")));
    assert!(!lock.exists(), "lock left behind after --break-lock");
}

#[test]
fn of_two_simultaneous_deploys_exactly_one_wins() {
    let stack = Stack::start();
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| stack.deploy(&[]));
        let b = scope.spawn(|| stack.deploy(&[]));
        (a.join().unwrap(), b.join().unwrap())
    });
    let mut codes = [a.code, b.code];
    codes.sort();
    assert_eq!(
        codes,
        [0, 4],
        "a: {}\n{}\nb: {}\n{}",
        a.code,
        a.stderr,
        b.code,
        b.stderr
    );
    let (winner, loser) = if a.code == 0 { (a, b) } else { (b, a) };
    loser.says(&["locked by"]);
    let id = winner.release();
    stack.serves_release(&id);
    assert_eq!(stack.releases(), vec![id]);
    assert!(!stack.deploy_to().join(".shipit/lock").exists());
}

// ---------------------------------------------------------------------------------------------
// 6, 7. Host keys.

/// `SHA256:...` of the single key in a known_hosts file, by ssh-keygen.
fn fingerprint_of_known_hosts(file: &Path) -> String {
    let out = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .unwrap_or_else(|| panic!("no fingerprint in {text}"))
        .to_string()
}

#[test]
fn an_unknown_host_key_is_refused_unless_accepted_and_then_recorded() {
    let mut stack = Stack::start();
    stack.set_options(|o| o.known_hosts = None);
    let line = stack.host.sshd.known_hosts_line();
    let port = stack.host.sshd.port;
    assert!(line.starts_with(&format!("[127.0.0.1]:{port} ssh-ed25519 ")));
    let fingerprint = fingerprint_of_known_hosts(&stack.host.sshd.known_hosts);
    let user_known_hosts = stack.home.path().join(".ssh/known_hosts");

    let run = stack.deploy(&[]);
    run.expect_code(3)
        .says(&[&fingerprint, &line, "--accept-new-host-key"]);
    assert!(!stack.deploy_to().exists(), "deploy_to was created");
    assert!(!user_known_hosts.exists(), "a refused key was recorded");

    let run = stack.deploy(&["--accept-new-host-key"]);
    run.expect_code(0);
    let id = run.release();
    stack.serves_release(&id);
    assert_eq!(
        std::fs::read_to_string(&user_known_hosts).unwrap(),
        format!("{line}\n")
    );

    // From now on the recorded key is trusted without the flag: this deploy gets as far as
    // the (held) lock, which needs a verified, authenticated session.
    let lock = stack.deploy_to().join(".shipit/lock");
    mkdir_as_deploy(&lock);
    write_as_deploy(&lock.join("info"), "token=x\nby=someone@else\n");
    stack.deploy(&[]).expect_code(4);
    assert_eq!(
        std::fs::read_to_string(&user_known_hosts).unwrap(),
        format!("{line}\n"),
        "the key was recorded twice"
    );
}

#[test]
fn a_changed_host_key_is_refused_even_with_accept_new_host_key() {
    let mut stack = Stack::start();
    let known_hosts = stack.host.sshd.known_hosts.clone();
    let old = std::fs::read_to_string(&known_hosts).unwrap();
    stack.host.sshd.regenerate_host_key();
    let new_line = stack.host.sshd.known_hosts_line();
    let scratch = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(scratch.path(), format!("{new_line}\n")).unwrap();
    let new_fingerprint = fingerprint_of_known_hosts(scratch.path());

    for args in [&[][..], &["--accept-new-host-key"][..]] {
        let run = stack.deploy(args);
        run.expect_code(3)
            .says(&["HOST KEY HAS CHANGED", &new_fingerprint]);
        assert!(
            run.stderr
                .contains(&format!("127.0.0.1:{}", stack.host.sshd.port)),
            "{}",
            run.stderr
        );
    }
    assert_eq!(std::fs::read_to_string(&known_hosts).unwrap(), old);
    assert!(!stack.home.path().join(".ssh").exists());
    assert!(!stack.deploy_to().exists(), "deploy_to was created");

    // The same when the stale key is in ~/.ssh/known_hosts rather than the target's file.
    std::fs::create_dir_all(stack.home.path().join(".ssh")).unwrap();
    let user_known_hosts = stack.home.path().join(".ssh/known_hosts");
    std::fs::write(&user_known_hosts, &old).unwrap();
    stack.set_options(|o| o.known_hosts = None);
    for args in [&[][..], &["--accept-new-host-key"][..]] {
        stack
            .deploy(args)
            .expect_code(3)
            .says(&["HOST KEY HAS CHANGED", &new_fingerprint]);
    }
    assert_eq!(std::fs::read_to_string(&user_known_hosts).unwrap(), old);
    assert!(!stack.deploy_to().exists(), "deploy_to was created");
}

// ---------------------------------------------------------------------------------------------
// 9, 10. Dry run, unreachable host.

#[test]
fn dry_run_lists_the_steps_and_touches_no_host() {
    let stack = Stack::start();
    // The harness probed sshd's banner once while starting it; nothing may come after that.
    let connections = stack.host.sshd.log().matches("Connection from").count();
    let run = stack.shipit(&["deploy", "--target", TARGET, "--dry-run"]);
    run.expect_code(0);
    let out = &run.stdout;
    assert!(out.contains(&stack.host.sshd.host_spec()), "{out}");
    for step in [
        "layout",
        "lock",
        "verify",
        "unpack",
        "virtualenv",
        "migrate",
        "collectstatic",
        "nginx-check",
        "start-app",
        "switch",
        "reload-nginx",
        "stop-old-app",
    ] {
        assert!(
            out.contains(&format!("  - {step}\n")),
            "no step {step} in:\n{out}"
        );
    }
    let begin = out.find("begin").unwrap();
    let prepare = out.find("prepare").unwrap();
    let switch = out.find("switch (").unwrap();
    assert!(begin < prepare && prepare < switch, "{out}");

    let run = stack.shipit(&["deploy", "--target", TARGET, "--dry-run", "--json"]);
    run.expect_code(0);
    let json = run.json();
    let phases = json["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 3, "{json}");
    assert!(phases[1]["steps"]
        .as_array()
        .unwrap()
        .contains(&Value::from("migrate")));

    assert!(!stack.deploy_to().exists(), "a dry run created deploy_to");
    assert!(
        !stack.project.root.join(".shipit/dist").exists(),
        "a dry run left an archive in .shipit/dist"
    );
    assert_eq!(
        stack.host.sshd.log().matches("Connection from").count(),
        connections,
        "a dry run connected:\n{}",
        stack.host.sshd.log()
    );
    assert_eq!(list_dir(&stack.host.sup.include_dir), Vec::<String>::new());
    assert_eq!(list_dir(&stack.host.nginx.sites_dir), Vec::<String>::new());
}

#[test]
fn an_unreachable_host_fails_fast_with_exit_3() {
    let mut stack = Stack::start();
    let port = free_port();
    assert!(port_refuses(port));
    let spec = format!("deploy@127.0.0.1:{port}");
    stack.set_options(|o| o.hosts = vec![spec.clone()]);
    let run = stack.deploy(&[]);
    run.expect_code(3).says(&[&spec]);
    assert!(
        run.elapsed < Duration::from_secs(10),
        "took {:?}",
        run.elapsed
    );
    assert!(!stack.deploy_to().exists());
}

// ---------------------------------------------------------------------------------------------
// 8. Two hosts (the fixture is in support::fleet).

#[test]
fn two_hosts_switch_together_and_neither_switches_when_one_fails() {
    let mut two = TwoHosts::start();
    // Each host has its own SQLite database here.
    two.add_target_toml("migrate = \"each-host\"\n");
    let TwoHosts {
        stack,
        a_to,
        b_to,
        a_spec,
        b_spec,
        ..
    } = &two;
    let a = &stack.host;

    // Both hosts get the same release and serve it, each from its own files and daemons.
    let json = stack.deploy_ok();
    let id1 = json["release"].as_str().unwrap().to_string();
    assert_eq!(json["hosts"], serde_json::json!([a_spec, b_spec]), "{json}");
    assert_eq!(json["usage"]["connections"], 2, "{json}");
    assert_eq!(json["venv"].as_array().map(Vec::len), Some(2), "{json}");
    for (to, host, http) in two.hosts() {
        assert_eq!(
            current_of(to),
            Some(format!("releases/{id1}")),
            "{}",
            to.display()
        );
        assert_eq!(state_of(to, &id1), "live");
        serves_release_on(host, http, &id1);
        let status = supervisor_status(&host.sup);
        assert!(status.contains(&program(&id1)), "{status}");
    }
    assert_ne!(a_to, b_to);
    let a_site = a.nginx.sites_dir.join("hello.conf");
    let a_site_before = std::fs::read_to_string(&a_site).unwrap();

    // B cannot prepare the next release: its releases/ is not writable.
    let b_releases = b_to.join("releases");
    chmod(&b_releases, 0o555);
    stack.change_page("marker: two hosts, second release");
    let run = stack.deploy(&[]);
    run.expect_code(1).says(&[
        &format!("{b_spec}: step `unpack` failed"),
        "nothing was switched",
    ]);
    // Neither host switched, both still serve the first release.
    for (to, host, http) in two.hosts() {
        assert_eq!(
            current_of(to),
            Some(format!("releases/{id1}")),
            "{}",
            to.display()
        );
        let body = serves_release_on(host, http, &id1);
        assert!(!body.contains("second release"), "{body}");
        assert!(
            !to.join(".shipit/lock").exists(),
            "{} still locked",
            to.display()
        );
    }
    // A had prepared the release: it is marked failed, its app server stopped, its site back.
    let a_releases = list_dir(&a_to.join("releases"));
    assert_eq!(a_releases.len(), 2, "{a_releases:?}");
    let aborted = a_releases.iter().find(|r| **r != id1).unwrap().clone();
    assert_eq!(state_of(a_to, &aborted), "failed");
    assert_eq!(state_of(a_to, &id1), "live");
    let status = supervisor_status(&a.sup);
    assert!(!status.contains(&program(&aborted)), "{status}");
    assert!(status.contains(&program(&id1)), "{status}");
    assert_eq!(std::fs::read_to_string(&a_site).unwrap(), a_site_before);
    assert_eq!(list_dir(&b_releases), vec![id1.clone()]);

    // Once B is fixed, both switch to one new release, newer than A's aborted one.
    chmod(&b_releases, 0o755);
    let json = stack.deploy_ok();
    let id3 = json["release"].as_str().unwrap().to_string();
    assert!(id3 > aborted, "{id3} is not after the aborted {aborted}");
    for (to, host, http) in two.hosts() {
        assert_eq!(
            current_of(to),
            Some(format!("releases/{id3}")),
            "{}",
            to.display()
        );
        let body = serves_release_on(host, http, &id3);
        assert!(body.contains("second release"), "{body}");
        let status = gone(|| supervisor_status(&host.sup), &program(&id1));
        assert!(!status.contains(&program(&id1)), "{status}");
    }

    // A lock held on B alone: refused, and A's lock (taken first) is released again.
    let a_releases = list_dir(&a_to.join("releases"));
    let b_lock = b_to.join(".shipit/lock");
    mkdir_as_deploy(&b_lock);
    write_as_deploy(&b_lock.join("info"), "token=t\nby=bob@elsewhere\n");
    stack
        .deploy(&[])
        .expect_code(4)
        .says(&[b_spec, "locked by", "bob@elsewhere"]);
    assert!(
        !a_to.join(".shipit/lock").exists(),
        "A's lock was not released"
    );
    assert!(b_lock.join("info").exists(), "B's foreign lock was removed");
    assert_eq!(current_of(a_to), Some(format!("releases/{id3}")));
    assert_eq!(list_dir(&a_to.join("releases")), a_releases);
    std::fs::remove_dir_all(&b_lock).unwrap();

    // B cannot even begin (deploy_to not writable): A's lock is released, nothing changes.
    chmod(b_to, 0o555);
    stack
        .deploy(&[])
        .expect_code(1)
        .says(&[&format!("{b_spec}: step `layout` failed"), "not writable"]);
    chmod(b_to, 0o755);
    for (to, _, _) in two.hosts() {
        assert!(
            !to.join(".shipit/lock").exists(),
            "{} still locked",
            to.display()
        );
        assert_eq!(current_of(to), Some(format!("releases/{id3}")));
    }
    assert_eq!(list_dir(&a_to.join("releases")), a_releases);
}

/// "A failure during the switch switches that host back" (README): the other hosts stay on the
/// new release, so the hosts now run different releases and the error must say so.
#[test]
fn a_switch_failure_on_one_host_switches_only_that_host_back() {
    let mut two = TwoHosts::start();
    // Each host has its own SQLite database here.
    two.add_target_toml("migrate = \"each-host\"\n");
    let json = two.stack.deploy_ok();
    let id1 = json["release"].as_str().unwrap().to_string();
    // The hook fails where `fail-switch` exists at A's base path: only on B.
    let a_base = two.stack.host.base.path().to_path_buf();
    std::fs::write(two.b.base.path().join("fail-switch"), "").unwrap();
    let hook = format!("test ! -e {}/fail-switch", a_base.display());
    two.stack.set_options(|o| {
        o.extra
            .push_str(&format!("hooks = {{ after_switch = [{hook:?}] }}\n"))
    });
    two.stack.change_page("marker: half switched");
    let run = two.stack.deploy(&[]);
    run.expect_code(1).says(&[
        &format!("{}: step `after_switch", two.b_spec),
        "switched back",
    ]);
    let a_releases = list_dir(&two.a_to.join("releases"));
    let id2 = a_releases
        .iter()
        .find(|r| **r != id1)
        .expect("new release on A")
        .clone();

    // A is live on the new release, B back on the old one; both unlocked.
    assert_eq!(current_of(&two.a_to), Some(format!("releases/{id2}")));
    assert_eq!(current_of(&two.b_to), Some(format!("releases/{id1}")));
    let body = serves_release_on(&two.stack.host, &two.a_http, &id2);
    assert!(body.contains("half switched"), "{body}");
    serves_release_on(&two.b, &two.b_http, &id1);
    assert_eq!(state_of(&two.b_to, &id2), "failed");
    assert_eq!(state_of(&two.a_to, &id2), "live");
    let b_status = supervisor_status(&two.b.sup);
    assert!(b_status.contains(&program(&id1)), "{b_status}");
    assert!(!b_status.contains(&program(&id2)), "{b_status}");
    for (to, _, _) in two.hosts() {
        assert!(
            !to.join(".shipit/lock").exists(),
            "{} still locked",
            to.display()
        );
    }
    // Whoever reads the error must learn that A now runs the new release.
    assert!(
        run.stderr.contains(&two.a_spec) && run.stderr.contains(&id2),
        "the error does not say that {} is live on {id2}:\n{}",
        two.a_spec,
        run.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// More failures before the switch, and housekeeping.

#[test]
fn a_site_nginx_rejects_is_rolled_back_and_the_old_release_keeps_serving() {
    let mut stack = Stack::start();
    let first = stack.deploy_ok();
    let id1 = first["release"].as_str().unwrap().to_string();
    stack.serves_release(&id1);
    let site = stack.host.nginx.sites_dir.join("hello.conf");
    let site_before = std::fs::read_to_string(&site).unwrap();

    let port = stack.port;
    stack.set_options(|o| o.listen = format!("127.0.0.1:{port} no_such_listen_parameter"));
    let run = stack.deploy(&[]);
    run.expect_code(1)
        .says(&["step `nginx-check` failed", "no_such_listen_parameter"]);
    assert_eq!(std::fs::read_to_string(&site).unwrap(), site_before);
    assert_eq!(
        list_dir(&stack.host.nginx.sites_dir),
        vec!["hello.conf".to_string()]
    );
    assert_eq!(stack.current(), Some(format!("releases/{id1}")));
    stack.serves_release(&id1);
    let releases = stack.releases();
    let failed = releases
        .iter()
        .find(|r| **r != id1)
        .expect("a failed release dir");
    assert_eq!(state_of(&stack.deploy_to(), failed), "failed");
    let status = stack.programs();
    assert_eq!(status.lines().count(), 1, "{status}");
    assert!(!stack.deploy_to().join(".shipit/lock").exists());
    // nginx itself was never broken: a test of its whole configuration passes.
    run_as_deploy_ok(&stack.host.nginx.test_command());
}

#[test]
fn an_app_that_does_not_start_is_stopped_and_the_old_release_keeps_serving() {
    let mut stack = Stack::start();
    // Not the default 30 s: the broken app never answers, so the whole wait is spent.
    stack.set_options(|o| o.extra = "health = { timeout = 8 }\n".into());
    let first = stack.deploy_ok();
    let id1 = first["release"].as_str().unwrap().to_string();
    stack.serves_release(&id1);

    // migrate and collectstatic do not import the WSGI module; gunicorn does.
    let wsgi = "hello/wsgi.py";
    let text = stack.project.read(wsgi);
    stack.project.write(
        wsgi,
        &format!("{text}\nraise RuntimeError(\"boom: this release cannot start\")\n"),
    );
    stack.project.commit_all("break the app");
    let run = stack.deploy(&[]);
    // The error shows what the app server printed when it died.
    // It fails as soon as supervisor reports the program dead ("died before answering"), or
    // at the latest when the health timeout ends; either way the error names the exception.
    run.expect_code(1).says(&[
        "step `start-app` failed",
        "the app server died with: RuntimeError: boom: this release cannot start",
    ]);
    assert_eq!(stack.current(), Some(format!("releases/{id1}")));
    stack.serves_release(&id1);
    let releases = stack.releases();
    let failed = releases
        .iter()
        .find(|r| **r != id1)
        .expect("a failed release dir");
    assert_eq!(state_of(&stack.deploy_to(), failed), "failed");
    // The broken release's program is gone, the old one runs.
    let status = stack.programs();
    assert!(!status.contains(&program(failed)), "{status}");
    assert!(
        status.contains(&program(&id1)) && status.contains("RUNNING"),
        "{status}"
    );
    assert_eq!(
        list_dir(&stack.host.sup.include_dir),
        vec![format!("{}.conf", program(&id1))]
    );
    assert!(!stack.deploy_to().join(".shipit/lock").exists());
}

#[test]
fn old_releases_beyond_keep_releases_are_removed() {
    let mut stack = Stack::start();
    stack.set_options(|o| o.extra = "keep_releases = 2\n".into());
    let mut ids = Vec::new();
    for n in 1..=3 {
        stack.change_page(&format!("marker: release {n}"));
        ids.push(stack.deploy_ok()["release"].as_str().unwrap().to_string());
    }
    stack.serves_release(&ids[2]);
    assert_eq!(stack.releases(), ids[1..].to_vec());
}

#[test]
fn a_failing_after_switch_hook_switches_back() {
    let mut stack = Stack::start();
    let first = stack.deploy_ok();
    let id1 = first["release"].as_str().unwrap().to_string();
    stack.serves_release(&id1);

    let marker = stack.deploy_to().join("shared/hook-ran");
    stack.set_options(|o| {
        o.extra = format!(
            "hooks = {{ after_switch = [\"pwd > {} && test -x .venv/bin/gunicorn && exit 7\"] }}\n",
            marker.display()
        )
    });
    stack.change_page("marker: switched back");
    let run = stack.deploy(&[]);
    run.expect_code(1).says(&["failed with exit status 7"]);
    // The hook ran in the new release, after the switch...
    let ran_in = std::fs::read_to_string(&marker).expect("the hook did not run");
    let releases = stack.releases();
    let id2 = releases
        .iter()
        .find(|r| **r != id1)
        .expect("the new release")
        .clone();
    assert_eq!(
        ran_in.trim(),
        stack
            .deploy_to()
            .join("releases")
            .join(&id2)
            .display()
            .to_string()
    );
    // ...and its failure put everything back.
    assert_eq!(stack.current(), Some(format!("releases/{id1}")));
    let body = stack.serves_release(&id1);
    assert!(!body.contains("switched back"), "{body}");
    assert_eq!(state_of(&stack.deploy_to(), &id2), "failed");
    let status = stack.programs();
    assert!(
        status.contains(&program(&id1)) && status.contains("RUNNING"),
        "{status}"
    );
    assert!(!status.contains(&program(&id2)), "{status}");
    assert!(!stack.deploy_to().join(".shipit/lock").exists());
}

#[test]
fn a_deploy_killed_midway_gives_its_lock_back_and_a_rerun_succeeds() {
    use std::io::{BufRead, BufReader};
    let stack = Stack::start();
    let first = stack.deploy_ok();
    let id1 = first["release"].as_str().unwrap().to_string();
    stack.serves_release(&id1);
    stack.change_page("marker: after the crash");

    // Kill shipit (SIGKILL: no cleanup at all) once the new release is being prepared.
    let mut child = stack
        .project
        .shipit_with_home(stack.home.path())
        .args(["deploy", "--target", TARGET])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("✓ migrate") {
            child.kill().unwrap();
            break;
        }
    }
    child.wait().unwrap();
    assert!(seen.contains("✓ migrate"), "never got to migrate:\n{seen}");

    assert_eq!(stack.current(), Some(format!("releases/{id1}")));
    stack.serves_release(&id1);
    // The remote script notices the lost connection at its next write and cleans up after
    // itself: the half-prepared release is marked failed and the lock is given back.
    let lock = stack.deploy_to().join(".shipit/lock");
    let released = wait_for(Duration::from_secs(60), || (!lock.exists()).then_some(()));
    assert!(
        released.is_some(),
        "the dead deploy's lock was never released"
    );
    assert_eq!(stack.current(), Some(format!("releases/{id1}")));
    stack.serves_release(&id1);

    // A plain re-run succeeds.
    let run = stack.deploy(&[]);
    run.expect_code(0);
    let id3 = run.release();
    let body = stack.serves_release(&id3);
    assert!(body.contains("after the crash"), "{body}");
    assert!(!lock.exists());
    // Whatever the dead deploy had started is stopped: only the live release's program runs.
    wait_for(Duration::from_secs(10), || {
        (stack.programs().lines().count() == 1).then_some(())
    });
    let status = stack.programs();
    assert_eq!(status.lines().count(), 1, "{status}");
    assert!(status.contains(&program(&id3)), "{status}");
    assert_eq!(
        list_dir(&stack.host.sup.include_dir),
        vec![format!("{}.conf", program(&id3))]
    );
}

/// A `deploy_to` that nginx and supervisor configs cannot carry literally (here, a space) is
/// refused when the configuration is read: exit 2, and no host is touched.
#[test]
fn a_deploy_to_with_a_space_is_refused_before_any_host_is_touched() {
    let mut stack = Stack::start();
    stack.set_options(|o| o.app = "my app".into());
    stack.deploy(&[]).expect_code(2).says(&[
        "deploy_to",
        "my app",
        "written into nginx and supervisor configs",
    ]);
    assert!(!stack.deploy_to().exists());
}

#[test]
fn a_hashed_known_hosts_entry_is_trusted() {
    let mut stack = Stack::start();
    stack.set_options(|o| o.known_hosts = None);
    let ssh_dir = stack.home.path().join(".ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    let file = ssh_dir.join("known_hosts");
    std::fs::write(&file, format!("{}\n", stack.host.sshd.known_hosts_line())).unwrap();
    let out = std::process::Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hashed = std::fs::read_to_string(&file).unwrap();
    assert!(hashed.starts_with("|1|"), "{hashed}");

    // Getting as far as a held lock proves the session was verified and authenticated.
    let lock = stack.deploy_to().join(".shipit/lock");
    mkdir_as_deploy(&stack.deploy_to());
    mkdir_as_deploy(&stack.deploy_to().join(".shipit"));
    mkdir_as_deploy(&lock);
    write_as_deploy(&lock.join("info"), "token=x\nby=someone@else\n");
    stack.deploy(&[]).expect_code(4);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), hashed);
}

/// Host trust as OpenSSH decides it, against a real sshd (ed25519 host key) on a port other
/// than 22: a `@revoked` key, a host known only through `@cert-authority` that presents no
/// certificate, and a held key that
/// is not trusted even with --accept-new-host-key; a host known only by its ECDSA key is
/// unknown for ed25519 (not "changed"); `[127.0.0.1]:PORT` unknown to the file, a plain
/// `127.0.0.1` line vouches for the key it holds and no other (as `ssh` does); a malformed
/// line is skipped with a warning naming it.
#[test]
fn host_trust_follows_openssh_known_hosts_semantics() {
    let stack = Stack::start();
    let known_hosts = stack.host.sshd.known_hosts.clone();
    let line = stack.host.sshd.known_hosts_line(); // [127.0.0.1]:PORT ssh-ed25519 KEY
    let (names, key) = line.split_once(' ').unwrap();
    let other_ed25519 =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICFBZAaMj0Px4RIIdLfJHyeaQM/5dJsiQoMhspD8ucz9";
    let ecdsa = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBJ3CTYogcSBj3pNLhJBThbl/5lfLfsnAIPMXbf89xO8qndWv0j1/qVvBfqUa4DH1a5Tp3nAjn+qUj0cAk3ZtWXs=";
    let refused = |text: &str, needles: &[&str]| {
        for args in [&[][..], &["--accept-new-host-key"][..]] {
            std::fs::write(&known_hosts, text).unwrap();
            let run = stack.deploy(args);
            run.expect_code(3).says_error(needles);
            assert!(
                !run.stderr.contains("HOST KEY HAS CHANGED"),
                "{}",
                run.stderr
            );
            assert_eq!(
                std::fs::read_to_string(&known_hosts).unwrap(),
                text,
                "known_hosts was changed ({args:?})"
            );
        }
        assert!(!stack.deploy_to().exists(), "deploy_to was created");
    };

    refused(
        &format!("{line}\n@revoked * {key}\n"),
        &["is REVOKED", &format!("{}:2", known_hosts.display())],
    );
    refused(
        &format!("@cert-authority {names} {other_ed25519}\n"),
        &[
            "trusts this host only through a @cert-authority key",
            &format!("{}:1", known_hosts.display()),
        ],
    );

    // Without --accept-new-host-key: unknown for this type or this port, never "changed".
    for (text, needles) in [
        (
            format!("{names} {ecdsa}\n"),
            &[
                "unknown for ssh-ed25519",
                "holds only its ecdsa-sha2-nistp256 key",
            ][..],
        ),
        (
            format!("127.0.0.1 {other_ed25519}\n"),
            &["unknown for ssh-ed25519"][..],
        ),
    ] {
        std::fs::write(&known_hosts, &text).unwrap();
        let run = stack.deploy(&[]);
        run.expect_code(3).says_error(needles).says(&[&line]);
        assert!(!run.stderr.contains("HAS CHANGED"), "{}", run.stderr);
        assert!(!stack.deploy_to().exists(), "deploy_to was created");
    }

    // Trusted from here on: each deploy gets as far as a held lock (exit 4), which needs a
    // verified, authenticated session.
    let lock = stack.deploy_to().join(".shipit/lock");
    mkdir_as_deploy(&stack.deploy_to());
    mkdir_as_deploy(&stack.deploy_to().join(".shipit"));
    mkdir_as_deploy(&lock);
    write_as_deploy(&lock.join("info"), "token=x\nby=someone@else\n");

    // The ECDSA-only host whose server offers no ECDSA key (shipit asked for it first): not
    // trusted on first use beside it (`ssh` says "changed"); the fix is in the hint.
    std::fs::write(&known_hosts, format!("{names} {ecdsa}\n")).unwrap();
    stack
        .deploy(&["--accept-new-host-key"])
        .expect_code(3)
        .says_error(&["unknown for ssh-ed25519"])
        .says(&["ssh-keygen -R", &line]);
    assert_eq!(
        std::fs::read_to_string(&known_hosts).unwrap(),
        format!("{names} {ecdsa}\n")
    );

    // The port unknown to the file, the bare name's line holding this key vouches for it.
    std::fs::write(&known_hosts, format!("127.0.0.1 {key}\n")).unwrap();
    stack.deploy(&[]).expect_code(4);
    assert_eq!(
        std::fs::read_to_string(&known_hosts).unwrap(),
        format!("127.0.0.1 {key}\n")
    );

    // A malformed line elsewhere is skipped with a warning naming it, not fatal.
    std::fs::write(
        &known_hosts,
        format!("web.example.com ssh-ed25519\n{line}\n"),
    )
    .unwrap();
    stack.deploy(&[]).expect_code(4).says(&[&format!(
        "warning: {}:1: no key; line skipped",
        known_hosts.display()
    )]);
}

/// Two targets on one machine whose names share a prefix (`test`, `test-eu`): deploying one
/// must leave the other's app server alone.
#[test]
fn deploying_a_target_leaves_a_target_with_a_longer_name_running() {
    let stack = Stack::start();
    let eu_port = free_port();
    let eu = TargetOptions {
        app: "app-eu".into(),
        listen: format!("127.0.0.1:{eu_port}"),
        ..stack.options.clone()
    };
    let eu_toml = target_toml_named("test-eu", "hello-eu.conf", &stack.host, &eu);
    let text = stack.project.read("shipit.toml");
    stack
        .project
        .write("shipit.toml", &format!("{text}{eu_toml}"));
    stack.project.commit_all("second target");

    let run = stack.shipit(&["deploy", "--target", "test-eu", "--json"]);
    run.expect_code(0);
    let eu_id = run.release();
    let eu_program = format!("hello.test-eu.{eu_id}");
    let test_id = stack.deploy_ok()["release"].as_str().unwrap().to_string();
    stack.serves_release(&test_id);

    let status = stack.programs();
    assert!(status.contains(&program(&test_id)), "{status}");
    assert!(
        status.contains(&eu_program),
        "deploying `test` stopped `test-eu`'s app server:\n{status}"
    );
    let needle = format!("release: {eu_id}\n");
    let got = wait_for(SERVE_TIMEOUT, || {
        http_get(eu_port, "/")
            .ok()
            .filter(|(s, b)| *s == 200 && b.contains(&needle))
    });
    assert!(
        got.is_some(),
        "test-eu no longer serves: {:?}",
        http_get(eu_port, "/")
    );
}

/// Two projects on one host whose names ran together when programs were named
/// `project-target-release`: `hello` + target `a-b` and `hello-a` + target `b` both gave
/// `hello-a-b-<release>`, and each deploy stopped the other's app server. Deploying either must
/// leave the other running and serving.
#[test]
fn two_projects_whose_names_ran_together_leave_each_other_running() {
    let stack = Stack::start();
    let (ab_port, b_port) = (free_port(), free_port());
    let ab = TargetOptions {
        app: "app-ab".into(),
        listen: format!("127.0.0.1:{ab_port}"),
        ..stack.options.clone()
    };
    let b = TargetOptions {
        app: "app-b".into(),
        listen: format!("127.0.0.1:{b_port}"),
        ..stack.options.clone()
    };
    // Project `hello`, target `a-b`: a second target in the project's shipit.toml.
    let text = stack.project.read("shipit.toml");
    let ab_toml = target_toml_named("a-b", "hello-ab.conf", &stack.host, &ab);
    stack
        .project
        .write("shipit.toml", &format!("{text}{ab_toml}"));
    // Project `hello-a`, target `b`: the same code under another project name.
    let project = PROJECT_TOML.replace(
        "name = \"hello\"\n",
        "name = \"hello-a\"\nsettings_module = \"hello.settings.selected\"\nwsgi_app = \"hello.wsgi:application\"\n",
    );
    let b_toml = target_toml_named("b", "hello-a-b.conf", &stack.host, &b);
    stack
        .project
        .write("hello-a.toml", &format!("{project}{b_toml}"));
    stack.project.commit_all("two projects");
    let other = stack.project.root.join("hello-a.toml");
    let other = other.to_str().unwrap();
    let deploy = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--json"]);
        let run = stack.shipit(&all);
        run.expect_code(0);
        run.release()
    };
    let serves = |port: u16, id: &str, who: &str| {
        let needle = format!("release: {id}\n");
        let got = wait_for(SERVE_TIMEOUT, || {
            http_get(port, "/")
                .ok()
                .filter(|(s, b)| *s == 200 && b.contains(&needle))
        });
        assert!(
            got.is_some(),
            "{who} does not serve release {id}: {:?}\n{}",
            http_get(port, "/"),
            stack.programs()
        );
    };

    let ab1 = deploy(&["deploy", "--target", "a-b"]);
    let b1 = deploy(&["--config", other, "deploy", "--target", "b"]);
    serves(ab_port, &ab1, "hello (a-b), after hello-a (b) deployed");
    let ab2 = deploy(&["deploy", "--target", "a-b"]);
    serves(b_port, &b1, "hello-a (b), after hello (a-b) deployed");
    serves(ab_port, &ab2, "hello (a-b)");

    let status = gone(|| stack.programs(), &format!("hello.a-b.{ab1}"));
    assert!(status.contains(&format!("hello.a-b.{ab2}")), "{status}");
    assert!(status.contains(&format!("hello-a.b.{b1}")), "{status}");
    assert!(
        !status.contains(&format!("hello.a-b.{ab1}")),
        "the old release of a-b still runs:\n{status}"
    );
    assert_eq!(status.lines().count(), 2, "{status}");
}

/// The first deploy has no previous release to switch back to when its switch fails.
#[test]
fn a_failed_first_switch_leaves_no_current_pointing_at_the_failed_release() {
    let mut stack = Stack::start();
    stack.set_options(|o| o.extra = "hooks = { after_switch = [\"exit 3\"] }\n".into());
    let run = stack.deploy(&[]);
    run.expect_code(1).says(&["after_switch"]);
    let releases = stack.releases();
    assert_eq!(releases.len(), 1, "{releases:?}");
    assert_eq!(state_of(&stack.deploy_to(), &releases[0]), "failed");
    assert!(!stack.deploy_to().join(".shipit/lock").exists());
    assert_eq!(stack.programs().lines().count(), 0, "{}", stack.programs());
    assert_eq!(
        stack.current(),
        None,
        "`current` points at the failed release {}, whose app server is stopped",
        releases[0]
    );
}

#[test]
fn authentication_failures_exit_3_and_say_what_was_tried() {
    let stack = Stack::start();
    let spec = stack.host.sshd.host_spec();
    // A key file that does not exist.
    let missing = stack.home.path().join("no-such-key");
    let text = stack.project.read("shipit.toml");
    let key = stack.host.sshd.client_key.display().to_string();
    stack.project.write(
        "shipit.toml",
        &text.replace(&key, &missing.display().to_string()),
    );
    stack.project.commit_all("missing key");
    stack.deploy(&[]).expect_code(3).says(&[
        &spec,
        "authentication",
        &missing.display().to_string(),
    ]);

    // A key the server does not accept.
    let other = stack.home.path().join("other_key");
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(out.status.success());
    stack.project.write(
        "shipit.toml",
        &text.replace(&key, &other.display().to_string()),
    );
    stack.project.commit_all("wrong key");
    stack
        .deploy(&[])
        .expect_code(3)
        .says(&[&spec, "authentication", &other.display().to_string()]);
    assert!(!stack.deploy_to().exists());
}

#[test]
fn an_unchanged_tree_deployed_again_uploads_nothing_and_keeps_one_archive() {
    let stack = Stack::start();
    let first = stack.deploy_ok();
    let host = stack.host.sshd.host_spec();
    assert_eq!(first["upload"][&host], "sent", "{first}");
    let second = stack.deploy_ok();
    assert_eq!(second["upload"][&host], "skipped", "{second}");
    assert_eq!(first["archive"]["sha256"], second["archive"]["sha256"]);
    assert_ne!(first["release"], second["release"]);
    assert_eq!(second["usage"]["bytes_uploaded"], 0);
    let archives = list_dir(&stack.deploy_to().join(".shipit/archives"));
    assert_eq!(archives.len(), 1, "{archives:?}");
    // The release id reaches the app although the archive names none.
    stack.serves_release(second["release"].as_str().unwrap());
}
