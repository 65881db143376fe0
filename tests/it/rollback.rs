//! `shipit rollback` and `shipit releases` end to end against real components: OpenSSH sshd
//! (logging in as `deploy`), nginx and supervisord running as `deploy`, and gunicorn serving the
//! example Django project with its SQLite database in the shared `var/`. No mocks: every
//! assertion is about what a person would see (pages served through nginx, `current`, state
//! files, supervisor programs, the database, the deploy log, exit statuses and messages).
//! Needs root.
//!
//! Each test builds its own stack (see `support::stack`), so tests run in parallel threads.
//! Per-test timings: `cargo test --test rollback -- --nocapture`.

use serde_json::Value;

use support::stack::*;
use support::*;

// ---------------------------------------------------------------------------------------------
// Helpers.

/// One row of `shipit releases --json` for the only host.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    id: String,
    state: String,
    label: String,
    current: bool,
}

fn row(id: &str, state: &str, label: &str, current: bool) -> Row {
    Row {
        id: id.into(),
        state: state.into(),
        label: label.into(),
        current,
    }
}

/// The releases of the only host in `releases --json` output, oldest first.
fn rows(json: &Value) -> Vec<Row> {
    let hosts = json["hosts"].as_array().expect("hosts");
    assert_eq!(hosts.len(), 1, "{json}");
    hosts[0]["releases"]
        .as_array()
        .expect("releases")
        .iter()
        .map(|r| Row {
            id: r["id"].as_str().unwrap().to_string(),
            state: r["state"].as_str().unwrap().to_string(),
            label: r["label"].as_str().unwrap().to_string(),
            current: r["current"].as_bool().unwrap(),
        })
        .collect()
}

/// `shipit releases --json` (no pruning), which must succeed.
fn listed(stack: &Stack) -> Value {
    let run = stack.list_releases(&[]);
    run.expect_code(0);
    run.json()
}

/// Everything a refused rollback must leave exactly as it was.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    current: Option<String>,
    releases: Vec<(String, String)>,
    /// Deploy-log lines that record a change (refusal entries are allowed to appear).
    log: Vec<Vec<String>>,
    programs: Vec<String>,
    site: String,
    locked: bool,
}

fn snapshot(stack: &Stack) -> Snapshot {
    let releases = stack
        .releases()
        .into_iter()
        .map(|id| {
            let state = stack.state(&id);
            (id, state)
        })
        .collect();
    let mut programs: Vec<String> = list_dir(&stack.host.sup.include_dir);
    programs.extend(
        stack
            .programs()
            .lines()
            .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" ")),
    );
    Snapshot {
        current: stack.current(),
        releases,
        log: stack
            .log()
            .into_iter()
            .filter(|l| !l.get(5).is_some_and(|o| o.starts_with("refused")))
            .collect(),
        programs,
        site: std::fs::read_to_string(stack.host.nginx.sites_dir.join("hello.conf"))
            .unwrap_or_default(),
        locked: stack.locked(),
    }
}

/// The last line of the deploy log as `(action, release, outcome)`.
fn last_log(stack: &Stack) -> (String, String, String) {
    let log = stack.log();
    let last = log.last().expect("the deploy log is empty");
    assert_eq!(last.len(), 7, "malformed log line {last:?}");
    (last[2].clone(), last[3].clone(), last[5].clone())
}

/// Asserts that `current`, the page served through nginx, the state files, the supervisor
/// programs and the lock all say that `id` is live (and nothing else runs).
fn assert_live(stack: &Stack, id: &str) -> String {
    assert_eq!(stack.current(), Some(format!("releases/{id}")));
    let body = stack.serves_release(id);
    assert_eq!(stack.state(id), "live");
    assert_eq!(
        list_dir(&stack.host.sup.include_dir),
        vec![format!("{}.conf", program(id))]
    );
    let running = wait_for(std::time::Duration::from_secs(10), || {
        let status = stack.programs();
        (status.lines().count() == 1 && status.contains(&program(id)) && status.contains("RUNNING"))
            .then_some(())
    });
    assert!(running.is_some(), "{}", stack.programs());
    assert!(!stack.locked(), "the lock was left behind");
    body
}

/// Commits a migration whose RunPython raises, so the next deploy fails at `migrate`.
fn add_failing_migration(stack: &Stack, marker: &str) {
    stack.project.write(
        "pages/migrations/0002_fail.py",
        "from django.db import migrations\n\n\n\
         class Migration(migrations.Migration):\n\
         \x20   dependencies = [(\"pages\", \"0001_initial\")]\n\
         \x20   operations = [migrations.RunPython(lambda apps, schema: 1 / 0)]\n",
    );
    stack.change_page(marker);
}

/// Removes the failing migration again (and changes the page), committed.
fn remove_failing_migration(stack: &Stack, marker: &str) {
    std::fs::remove_file(stack.project.path("pages/migrations/0002_fail.py")).unwrap();
    stack.change_page(marker);
}

/// A deploy that must fail (exit 1) at `migrate`; returns the id of the failed release.
fn deploy_failing(stack: &Stack) -> String {
    let before = stack.releases();
    let run = stack.deploy(&[]);
    run.expect_code(1)
        .says(&["step `migrate` failed", "ZeroDivisionError"]);
    let after = stack.releases();
    let new: Vec<&String> = after.iter().filter(|r| !before.contains(r)).collect();
    assert_eq!(new.len(), 1, "before {before:?}, after {after:?}");
    assert_eq!(stack.state(new[0]), "failed");
    new[0].clone()
}

/// Commits a real schema change: a `Note` model, its migration `pages.0002_note`, and an index
/// page that counts notes (so this code needs the table).
fn add_note_model(stack: &Stack) {
    let p = &stack.project;
    p.write(
        "pages/models.py",
        &format!(
            "{}\n\nclass Note(models.Model):\n    text = models.CharField(max_length=200, default=\"\")\n",
            p.read("pages/models.py")
        ),
    );
    p.write(
        "pages/migrations/0002_note.py",
        "from django.db import migrations, models\n\n\n\
         class Migration(migrations.Migration):\n\
         \x20   dependencies = [(\"pages\", \"0001_initial\")]\n\
         \x20   operations = [\n\
         \x20       migrations.CreateModel(\n\
         \x20           name=\"Note\",\n\
         \x20           fields=[\n\
         \x20               (\"id\", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name=\"ID\")),\n\
         \x20               (\"text\", models.CharField(default=\"\", max_length=200)),\n\
         \x20           ],\n\
         \x20       ),\n\
         \x20   ]\n",
    );
    let views = p.read("pages/views.py");
    let views = views
        .replace(
            "from .models import Visit",
            "from .models import Note, Visit",
        )
        .replace(
            "\"visits\": Visit.objects.count(),",
            "\"visits\": Visit.objects.count(),\n            \"notes\": Note.objects.count(),",
        );
    assert!(views.contains("Note.objects.count()"), "{views}");
    p.write("pages/views.py", &views);
    let page = "pages/templates/pages/index.html";
    p.write(
        page,
        &p.read(page).replace(
            "visits: {{ visits }}\n",
            "visits: {{ visits }}\nnotes: {{ notes }}\n",
        ),
    );
    p.commit_all("notes");
}

/// What the shared SQLite database says, read by the deploy user: the applied `pages`
/// migrations and whether the `pages_note` table exists.
fn database(stack: &Stack) -> (Vec<String>, bool) {
    let db = stack.deploy_to().join("shared/var/db.sqlite3");
    let script = "import sqlite3, sys\n\
                  c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)\n\
                  for (n,) in c.execute(\"SELECT name FROM django_migrations WHERE app = 'pages' ORDER BY name\"): print('pages.' + n)\n\
                  t = c.execute(\"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'pages_note'\").fetchone()[0]\n\
                  print('table:%d' % t)\n";
    let out = run_as_deploy_ok(&format!(
        "python3 -c {} {}",
        shell_quote(script),
        shell_quote(&db.display().to_string())
    ));
    let mut migrations = Vec::new();
    let mut table = false;
    for line in out.lines() {
        match line.strip_prefix("table:") {
            Some(t) => table = t == "1",
            None => migrations.push(line.to_string()),
        }
    }
    (migrations, table)
}

// ---------------------------------------------------------------------------------------------
// 1. Rolling back twice.

#[test]
fn two_rollbacks_go_back_one_good_release_at_a_time() {
    let stack = Stack::start();
    let mut ids = Vec::new();
    let mut deploys = Vec::new();
    for n in 1..=3 {
        stack.change_page(&format!("marker: release {n}"));
        let json = stack.deploy_ok();
        ids.push(json["release"].as_str().unwrap().to_string());
        deploys.push(json);
    }
    let (v1, v2, v3) = (&ids[0], &ids[1], &ids[2]);
    assert!(assert_live(&stack, v3).contains("marker: release 3"));

    // Before any rollback: v3 live, v2 is where a rollback goes.
    let json = listed(&stack);
    assert_eq!(json["target"], TARGET, "{json}");
    let host = &json["hosts"][0];
    assert_eq!(host["host"], stack.host.sshd.host_spec(), "{json}");
    assert_eq!(host["prune"], Value::Null, "{json}");
    assert_eq!(
        rows(&json),
        vec![
            row(v1, "good", "good", false),
            row(v2, "good", "previous good", false),
            row(v3, "live", "live", true),
        ]
    );
    let venv = stack.venvs();
    assert_eq!(venv.len(), 1, "{venv:?}");
    for (release, deploy) in host["releases"].as_array().unwrap().iter().zip(&deploys) {
        assert_eq!(release["revision"], deploy["revision"], "{json}");
        assert_eq!(release["venv"], Value::from(venv[0].clone()), "{json}");
        assert!(release["size_kib"].as_u64().unwrap() > 0, "{json}");
        assert!(release["age_seconds"].as_i64().unwrap() >= 0, "{json}");
        // Only the live release's gunicorn works in its directory.
        assert_eq!(release["in_use"], release["current"], "{json}");
    }
    // The table a person reads says the same.
    let text = stack.shipit(&["releases", "--target", TARGET]);
    text.expect_code(0);
    let line_of = |id: &str| {
        text.stdout
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("no line for {id}:\n{}", text.stdout))
            .to_string()
    };
    assert!(line_of(v2).contains("previous good"), "{}", text.stdout);
    assert!(
        line_of(v3).contains("live") && line_of(v3).contains("current"),
        "{}",
        text.stdout
    );

    // First rollback: v2 serves again, v3 is marked rolled back and its app server is gone.
    let run = stack.rollback(&[]);
    run.expect_code(0);
    let out = run.json();
    assert_eq!(
        (out["from"].as_str(), out["to"].as_str()),
        (Some(&**v3), Some(&**v2))
    );
    assert_eq!(out["unapplied"], serde_json::json!([]), "{out}");
    let body = assert_live(&stack, v2);
    assert!(
        body.contains("marker: release 2") && !body.contains("marker: release 3"),
        "{body}"
    );
    assert_eq!(stack.state(v3), "rolled_back");
    assert_eq!(stack.state(v1), "good");
    assert_eq!(
        last_log(&stack),
        ("rollback".into(), v2.clone(), format!("ok (from {v3})"))
    );

    // A prune now removes nothing: v1 is where the next rollback goes, and the rolled-back v3
    // survives until a deploy after the rollback (`rollback --to` may still want it).
    let run = stack.list_releases(&["--prune", "--keep", "1", "--dry-run"]);
    run.expect_code(0);
    let prune = &run.json()["hosts"][0]["prune"];
    assert_eq!(prune["releases"], serde_json::json!([]), "{prune}");
    assert_eq!(stack.releases(), ids, "a dry run removed something");

    // Second rollback goes further back, never returning to v3.
    let run = stack.rollback(&[]);
    run.expect_code(0);
    assert_eq!(run.json()["to"], Value::from(v1.clone()));
    let body = assert_live(&stack, v1);
    assert!(body.contains("marker: release 1"), "{body}");
    assert_eq!(
        rows(&listed(&stack)),
        vec![
            row(v1, "live", "live", true),
            row(v2, "rolled_back", "rolled back", false),
            row(v3, "rolled_back", "rolled back", false),
        ]
    );
    assert_eq!(
        last_log(&stack),
        ("rollback".into(), v1.clone(), format!("ok (from {v2})"))
    );

    // And there is nowhere further to go.
    stack
        .rollback(&[])
        .expect_code(5)
        .says(&["there is no earlier good release"]);
    assert_live(&stack, v1);
}

// ---------------------------------------------------------------------------------------------
// 2. Failed releases are never rolled back to.

/// A shell of the deploy user sitting in a release directory, as when someone inspects a failed
/// release; killed (by its pid) on drop.
struct Inspector(std::process::Child);

impl Inspector {
    fn start(dir: &std::path::Path) -> Inspector {
        let child = deploy_command("/bin/sleep")
            .arg("600")
            .current_dir(dir)
            .spawn()
            .expect("start a process in the release");
        Inspector(child)
    }
}

impl Drop for Inspector {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The next successful deploy prunes a failed release (see the pruning test below) unless a
/// process still works in it, so someone is inspecting v3 here: the failed release is still
/// there, between v2 and v4, when the rollback chooses.
#[test]
fn rollback_skips_a_failed_release() {
    let stack = Stack::start();
    stack.change_page("marker: release 1");
    let v1 = stack.deploy_release();
    stack.change_page("marker: release 2");
    let v2 = stack.deploy_release();
    add_failing_migration(&stack, "marker: release 3 (fails)");
    let v3 = deploy_failing(&stack);
    assert_live(&stack, &v2);
    let _inspector = Inspector::start(&stack.deploy_to().join("releases").join(&v3));
    remove_failing_migration(&stack, "marker: release 4");
    let v4 = stack.deploy_release();
    assert_live(&stack, &v4);

    let json = listed(&stack);
    assert_eq!(
        rows(&json),
        vec![
            row(&v1, "good", "good", false),
            row(&v2, "good", "previous good", false),
            row(&v3, "failed", "failed", false),
            row(&v4, "live", "live", true),
        ]
    );
    assert_eq!(json["hosts"][0]["releases"][2]["in_use"], true, "{json}");

    // Naming the failed release is refused, and changes nothing.
    let before = snapshot(&stack);
    stack
        .rollback(&["--to", &v3])
        .expect_code(5)
        .says(&[&format!("release {v3} failed to deploy")]);
    assert_eq!(snapshot(&stack), before);

    let run = stack.rollback(&[]);
    run.expect_code(0);
    assert_eq!(run.json()["to"], Value::from(v2.clone()));
    let body = assert_live(&stack, &v2);
    assert!(body.contains("marker: release 2"), "{body}");
    assert_eq!(stack.state(&v3), "failed");
    assert_eq!(stack.state(&v4), "rolled_back");
}

// ---------------------------------------------------------------------------------------------
// 3. Pruning after a deploy.

/// With `keep_releases = 3`, a failed release between good ones must not cost a good one its
/// slot (if it did, v1 would go); with `keep_releases = 2`, exactly the live release and the
/// rollback target stay.
#[test]
fn a_failed_release_takes_no_keep_slot_and_is_pruned_after_the_next_deploy() {
    let mut stack = Stack::start();
    stack.set_options(|o| o.keep_releases = Some(3));
    stack.change_page("marker: release 1");
    let v1 = stack.deploy_release();
    stack.change_page("marker: release 2");
    let v2 = stack.deploy_release();
    add_failing_migration(&stack, "marker: release 3 (fails)");
    let v3 = deploy_failing(&stack);
    // A failed deploy prunes nothing.
    assert_eq!(stack.releases(), vec![v1.clone(), v2.clone(), v3.clone()]);

    remove_failing_migration(&stack, "marker: release 4");
    let run = stack.deploy(&[]);
    run.expect_code(0)
        .says(&[&format!("pruned 1 release(s) {v3}")]);
    let v4 = run.release();
    assert_live(&stack, &v4);
    assert_eq!(
        stack.releases(),
        vec![v1.clone(), v2.clone(), v4.clone()],
        "keep_releases = 3 keeps three good releases; the failed one takes no slot"
    );
    assert_eq!(
        last_log(&stack),
        ("prune".into(), v4.clone(), format!("removed {v3}"))
    );

    // keep_releases = 2, and another failed deploy before a good one.
    stack.set_options(|o| o.keep_releases = Some(2));
    add_failing_migration(&stack, "marker: release 5 (fails)");
    let v5 = deploy_failing(&stack);
    remove_failing_migration(&stack, "marker: release 6");
    let v6 = stack.deploy_release();
    assert_live(&stack, &v6);
    assert_eq!(stack.releases(), vec![v4.clone(), v6.clone()]);
    assert_eq!(
        last_log(&stack),
        (
            "prune".into(),
            v6.clone(),
            format!("removed {v1} {v2} {v5}")
        )
    );
    // What was kept is a working rollback target.
    stack.rollback(&[]).expect_code(0);
    let body = assert_live(&stack, &v4);
    assert!(body.contains("marker: release 4"), "{body}");
}

// ---------------------------------------------------------------------------------------------
// 4. `releases --prune`.

#[test]
fn prune_keep_2_leaves_exactly_current_and_previous_and_removes_only_unused_venvs() {
    let mut stack = Stack::start();
    stack.set_options(|o| o.keep_releases = Some(10));
    // v1 has its own virtualenv (one more requirement); v2..v4 share another.
    let req = "requirements/deployment.txt";
    let original = stack.project.read(req);
    stack.project.write(
        req,
        &format!("{original}six==1.16.0\n    # via the rollback test\n"),
    );
    stack.project.commit_all("add six");
    let v1 = stack.deploy_release();
    let venv_a = stack.venvs();
    assert_eq!(venv_a.len(), 1);
    stack.project.write(req, &original);
    stack.project.commit_all("drop six");
    let mut ids = vec![v1.clone()];
    for n in 2..=4 {
        stack.change_page(&format!("marker: release {n}"));
        ids.push(stack.deploy_release());
    }
    let (v2, v3, v4) = (ids[1].clone(), ids[2].clone(), ids[3].clone());
    assert_live(&stack, &v4);
    assert_eq!(stack.releases(), ids, "keep_releases = 10 pruned something");
    let venvs = stack.venvs();
    assert_eq!(venvs.len(), 2, "{venvs:?}");
    let venv_b = venvs.iter().find(|v| **v != venv_a[0]).unwrap().clone();

    // A dry run names what would go and removes nothing.
    let log_before = stack.log();
    let run = stack.list_releases(&["--prune", "--keep", "2", "--dry-run"]);
    run.expect_code(0);
    let json = run.json();
    let prune = &json["hosts"][0]["prune"];
    assert_eq!(prune["keep"], 2, "{json}");
    assert_eq!(prune["dry_run"], true, "{json}");
    assert_eq!(prune["releases"], serde_json::json!([v1, v2]), "{json}");
    assert_eq!(prune["removed"], serde_json::json!([]), "{json}");
    assert_eq!(stack.releases(), ids);
    assert_eq!(stack.venvs(), venvs);
    assert_eq!(stack.log(), log_before, "a dry run wrote the deploy log");
    assert!(!stack.locked());
    let text = stack.shipit(&[
        "releases",
        "--target",
        TARGET,
        "--prune",
        "--keep",
        "2",
        "--dry-run",
    ]);
    text.expect_code(0);
    assert!(
        text.stdout
            .contains(&format!("would remove 2 release(s): {v1} {v2}")),
        "{}",
        text.stdout
    );

    // Without a terminal to ask on, removing needs --yes: refused, nothing removed, unlocked.
    stack
        .list_releases(&["--prune", "--keep", "2"])
        .expect_code(2)
        .says_error(&["needs a confirmation", "--yes"]);
    assert_eq!(stack.releases(), ids);
    assert!(!stack.locked());

    // The real prune removes exactly those, and the virtualenv only v1 used.
    let run = stack.list_releases(&["--prune", "--keep", "2", "--yes"]);
    run.expect_code(0);
    let json = run.json();
    let prune = &json["hosts"][0]["prune"];
    assert_eq!(prune["dry_run"], false, "{json}");
    assert_eq!(prune["releases"], serde_json::json!([v1, v2]), "{json}");
    let mut removed: Vec<String> = prune["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    removed.sort();
    let mut expected = vec![v1.clone(), v2.clone(), format!("venv:{}", venv_a[0])];
    expected.sort();
    assert_eq!(removed, expected, "{json}");
    assert!(prune["freed_kib"].as_u64().unwrap() > 0, "{json}");

    assert_eq!(stack.releases(), vec![v3.clone(), v4.clone()]);
    assert_eq!(stack.venvs(), vec![venv_b.clone()]);
    assert_eq!(
        rows(&listed(&stack)),
        vec![
            row(&v3, "good", "previous good", false),
            row(&v4, "live", "live", true),
        ]
    );
    let (action, _, outcome) = last_log(&stack);
    assert_eq!(
        (action.as_str(), outcome),
        ("prune", format!("removed {v1} {v2}"))
    );
    assert!(!stack.locked());
    let body = assert_live(&stack, &v4);
    assert!(body.contains("marker: release 4"), "{body}");

    // Nothing more to prune at keep 2.
    let run = stack.list_releases(&["--prune", "--keep", "2", "--yes"]);
    run.expect_code(0);
    assert_eq!(
        run.json()["hosts"][0]["prune"]["releases"],
        serde_json::json!([])
    );
    assert_eq!(stack.releases(), vec![v3, v4]);
}

// ---------------------------------------------------------------------------------------------
// 5, 6. Migrations the rollback target does not know.

#[test]
fn a_rollback_past_a_migration_is_refused_and_migrate_unapplies_it() {
    let stack = Stack::start();
    let v1 = stack.deploy_release();
    add_note_model(&stack);
    let v2 = stack.deploy_release();
    let body = assert_live(&stack, &v2);
    assert!(body.contains("notes: 0"), "{body}");
    let applied = vec!["pages.0001_initial".to_string(), "pages.0002_note".into()];
    assert_eq!(database(&stack), (applied.clone(), true));

    // Refused: the message names the migration and the ways out; nothing moved.
    // The comparison is answered from what v2 and v1 recorded when they migrated.
    let before = snapshot(&stack);
    let run = stack.rollback(&["-v"]);
    run.expect_code(5).says(&[
        &format!(
            "refusing to roll back to {v1}: the database has migrations it does not know: pages.0002_note"
        ),
        "--migrate",
        "--force",
        &format!("migrations: as recorded by {v2} and {v1}"),
    ]);
    assert_eq!(snapshot(&stack), before);
    assert!(assert_live(&stack, &v2).contains("notes: 0"));
    assert_eq!(stack.state(&v1), "good");

    // A dry run says the same, and with --migrate what it would unapply; it changes nothing.
    stack
        .rollback(&["--dry-run"])
        .expect_code(5)
        .says(&["the database has migrations it does not know: pages.0002_note"]);
    let dry = stack.rollback(&["--dry-run", "--migrate"]);
    dry.expect_code(0);
    let plan = dry.json();
    assert_eq!(plan["from"], v2.as_str());
    assert_eq!(plan["to"], v1.as_str());
    assert_eq!(plan["unapply"][0]["app"], "pages", "{plan}");
    assert!(plan["phases"][0]["steps"].to_string().contains("unapply"));
    // Without a terminal to ask on, unapplying needs --yes.
    stack
        .rollback(&["--migrate"])
        .expect_code(2)
        .says_error(&["needs a confirmation", "--yes"]);
    assert_eq!(snapshot(&stack), before);
    assert!(!stack.locked());
    assert_eq!(database(&stack), (applied.clone(), true));

    // --migrate unapplies it with v2's code, then switches.
    let run = stack.rollback(&["--migrate", "--yes"]);
    run.expect_code(0);
    assert_eq!(
        run.json()["unapplied"],
        serde_json::json!([{"app": "pages", "to": "0001_initial"}])
    );
    let body = assert_live(&stack, &v1);
    assert!(!body.contains("notes:"), "{body}");
    assert_eq!(database(&stack), (vec!["pages.0001_initial".into()], false));
    assert_eq!(stack.state(&v2), "rolled_back");
    assert_eq!(
        last_log(&stack),
        ("rollback".into(), v1.clone(), format!("ok (from {v2})"))
    );

    // Deploying the same code again migrates forward again.
    let v3 = stack.deploy_release();
    let body = assert_live(&stack, &v3);
    assert!(body.contains("notes: 0"), "{body}");
    assert_eq!(database(&stack), (applied.clone(), true));

    // A code-only release, rolled back: no migration differs, answered from the records.
    stack.change_page("code only");
    let v4 = stack.deploy_release();
    let run = stack.rollback(&["-v"]);
    run.expect_code(0)
        .says(&[&format!("migrations: as recorded by {v4} and {v3}")]);
    assert_live(&stack, &v3);
    assert_eq!(database(&stack), (applied, true));
}

#[test]
fn force_switches_despite_an_unknown_migration() {
    let stack = Stack::start();
    let v1 = stack.deploy_release();
    add_note_model(&stack);
    let v2 = stack.deploy_release();
    assert_live(&stack, &v2);

    // --migrate and --force contradict each other.
    stack
        .rollback(&["--migrate", "--force"])
        .expect_code(2)
        .says(&["--force"]);

    let run = stack.rollback(&["--force"]);
    run.expect_code(0).says(&[&format!(
        "switching although release {v1} does not know these applied migrations: pages.0002_note"
    )]);
    let out = run.json();
    assert_eq!(
        out["forced_past"],
        serde_json::json!(["pages.0002_note"]),
        "{out}"
    );
    assert_eq!(out["unapplied"], serde_json::json!([]), "{out}");
    // v1's code runs against a schema it does not know; the database keeps the migration.
    let body = assert_live(&stack, &v1);
    assert!(!body.contains("notes:"), "{body}");
    assert_eq!(
        database(&stack),
        (
            vec!["pages.0001_initial".to_string(), "pages.0002_note".into()],
            true
        )
    );
    assert_eq!(stack.state(&v2), "rolled_back");
}

// ---------------------------------------------------------------------------------------------
// 7. Refusals.

#[test]
fn an_unknown_release_or_nothing_to_roll_back_to_is_refused_and_changes_nothing() {
    let stack = Stack::start();
    // Nothing deployed yet: listing says so, rolling back and pruning are refused.
    let json = listed(&stack);
    assert_eq!(rows(&json), vec![], "{json}");
    stack
        .rollback(&[])
        .expect_code(1)
        .says(&["nothing is deployed"]);
    assert!(!stack.deploy_to().exists(), "rollback created deploy_to");

    let v1 = stack.deploy_release();
    assert_live(&stack, &v1);
    assert_eq!(rows(&listed(&stack)), vec![row(&v1, "live", "live", true)]);
    let before = snapshot(&stack);

    stack.rollback(&[]).expect_code(5).says(&[
        "cannot roll back test",
        "there is no earlier good release to roll back to",
        "nothing was changed",
    ]);
    assert_eq!(snapshot(&stack), before);

    stack
        .rollback(&["--to", "20990101000000"])
        .expect_code(5)
        .says(&["there is no release `20990101000000`", "shipit releases"]);
    assert_eq!(snapshot(&stack), before);

    stack
        .rollback(&["--to", &v1])
        .expect_code(5)
        .says(&[&format!("release {v1} is already current")]);
    assert_eq!(snapshot(&stack), before);

    // Someone else's deploy holds the lock: rollback and prune wait their turn (exit 4) and
    // leave that lock alone; listing takes no lock and still works.
    let lock = stack.deploy_to().join(".shipit/lock");
    mkdir_as_deploy(&lock);
    let info = "token=sekrit-token-of-alice\nby=alice@elsewhere\nsince=2026-01-01T00:00:00Z\nrelease=20260101000000\npid=4242\n";
    write_as_deploy(&lock.join("info"), info);
    let run = stack.rollback(&[]);
    run.expect_code(4)
        .says(&["alice@elsewhere", "--break-lock"]);
    assert!(!run.stderr.contains("sekrit"), "{}", run.stderr);
    stack
        .list_releases(&["--prune", "--keep", "1", "--yes"])
        .expect_code(4)
        .says(&["alice@elsewhere"]);
    assert_eq!(rows(&listed(&stack)), vec![row(&v1, "live", "live", true)]);
    assert_eq!(std::fs::read_to_string(lock.join("info")).unwrap(), info);
    std::fs::remove_dir_all(&lock).unwrap();
    assert_eq!(snapshot(&stack), before);

    // A deploy afterwards is not blocked by anything the refusals left.
    stack.change_page("marker: after the refusals");
    let v2 = stack.deploy_release();
    assert!(assert_live(&stack, &v2).contains("marker: after the refusals"));
}

// ---------------------------------------------------------------------------------------------
// 8. `--to`.

#[test]
fn rollback_to_a_named_release_goes_straight_there() {
    let stack = Stack::start();
    let mut ids = Vec::new();
    for n in 1..=3 {
        stack.change_page(&format!("marker: release {n}"));
        ids.push(stack.deploy_release());
    }
    let (v1, v2, v3) = (&ids[0], &ids[1], &ids[2]);

    let run = stack.rollback(&["--to", v1]);
    run.expect_code(0);
    let out = run.json();
    assert_eq!(
        (out["from"].as_str(), out["to"].as_str()),
        (Some(&**v3), Some(&**v1))
    );
    let body = assert_live(&stack, v1);
    assert!(body.contains("marker: release 1"), "{body}");
    // v2 was skipped over, not abandoned: it is still good.
    assert_eq!(stack.state(v2), "good");
    assert_eq!(stack.state(v3), "rolled_back");
    assert_eq!(
        last_log(&stack),
        ("rollback".into(), v1.clone(), format!("ok (from {v3})"))
    );

    // The log names the revision of the release switched to.
    let line = stack.log().last().cloned().unwrap();
    assert_eq!(
        line[4],
        stack.project.git(&["rev-parse", "HEAD~2"]).trim(),
        "{line:?}"
    );

    // --to may also go forward, even to a rolled-back release; the good release it leaves is
    // still good, so a plain rollback afterwards has somewhere to go.
    stack.rollback(&["--to", v3]).expect_code(0);
    let body = assert_live(&stack, v3);
    assert!(body.contains("marker: release 3"), "{body}");
    assert_eq!(stack.state(v1), "good");
    stack.rollback(&[]).expect_code(0);
    assert_live(&stack, v2);
}

// ---------------------------------------------------------------------------------------------
// The target release's own nginx site.

/// Release 2 ships its own nginx site (a project override of the template with one more
/// location); rolling back must put release 1's site back and reload nginx, and rolling
/// forward again must bring release 2's back.
#[test]
fn a_rollback_restores_the_target_releases_own_nginx_site() {
    let stack = Stack::start();
    let site = stack.host.nginx.sites_dir.join("hello.conf");
    let v1 = stack.deploy_release();
    assert_live(&stack, &v1);
    let site_v1 = std::fs::read_to_string(&site).unwrap();
    stack.page("/moved", |status, _| status == 404);

    let builtin = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/nginx.conf.j2"),
    )
    .unwrap();
    // The app's `location /` is the template's last (an earlier one redirects plain http
    // under tls).
    let at = builtin.rfind("    location / {").unwrap();
    let custom = format!(
        "{}    location = /moved {{\n        return 200 \"answered by the site of release 2\\n\";\n    }}\n\n{}",
        &builtin[..at],
        &builtin[at..]
    );
    assert_ne!(custom, builtin);
    stack.project.write("conf/templates/nginx.conf.j2", &custom);
    stack.project.commit_all("own nginx site");
    let v2 = stack.deploy_release();
    assert_live(&stack, &v2);
    let site_v2 = std::fs::read_to_string(&site).unwrap();
    assert_ne!(site_v2, site_v1);
    let body = stack.page("/moved", |status, _| status == 200);
    assert_eq!(body, "answered by the site of release 2\n");

    stack.rollback(&[]).expect_code(0);
    assert_live(&stack, &v1);
    assert_eq!(std::fs::read_to_string(&site).unwrap(), site_v1);
    stack.page("/moved", |status, _| status == 404);
    assert_eq!(
        list_dir(&stack.host.nginx.sites_dir),
        vec!["hello.conf".to_string()]
    );
    for leftover in ["nginx-site.previous", "nginx-site.changed"] {
        assert!(
            !stack.deploy_to().join(".shipit").join(leftover).exists(),
            "{leftover} left behind"
        );
    }

    stack.rollback(&["--to", &v2]).expect_code(0);
    assert_live(&stack, &v2);
    assert_eq!(std::fs::read_to_string(&site).unwrap(), site_v2);
    stack.page("/moved", |status, _| status == 200);
}

// ---------------------------------------------------------------------------------------------
// Rollbacks that fail before the switch.

/// Commits a wsgi.py that refuses to start when the shared file `var/cannot-start` names its
/// release: a stand-in for an old release that can no longer start against today's shared
/// state. Every release carries the same code; the file picks the victim.
fn add_start_guard(stack: &Stack) {
    let wsgi = "hello/wsgi.py";
    let text = stack.project.read(wsgi);
    let guarded = text.replace(
        "application = get_wsgi_application()",
        "from pathlib import Path\n\n\
         _flag = Path(__file__).resolve().parent.parent / \"var\" / \"cannot-start\"\n\
         if _flag.exists() and _flag.read_text().strip() == os.environ.get(\"SHIPIT_RELEASE\"):\n\
         \x20   raise RuntimeError(\"boom: release %s cannot start\" % os.environ[\"SHIPIT_RELEASE\"])\n\n\
         application = get_wsgi_application()",
    );
    assert_ne!(guarded, text);
    stack.project.write(wsgi, &guarded);
    stack.project.commit_all("start guard");
}

/// Makes release `id` refuse to start from now on (see [`add_start_guard`]).
fn forbid_start(stack: &Stack, id: &str) {
    write_as_deploy(
        &stack.deploy_to().join("shared/var/cannot-start"),
        format!("{id}\n"),
    );
}

#[test]
fn a_rollback_whose_target_cannot_start_changes_nothing() {
    let mut stack = Stack::start();
    // Not the default 30 s: the broken app never answers, so the whole wait is spent.
    stack.set_options(|o| o.extra = "health = { timeout = 8 }\n".into());
    add_start_guard(&stack);
    let v1 = stack.deploy_release();
    stack.change_page("marker: release 2");
    let v2 = stack.deploy_release();
    assert_live(&stack, &v2);
    forbid_start(&stack, &v1);
    let site = std::fs::read_to_string(stack.host.nginx.sites_dir.join("hello.conf")).unwrap();

    stack.rollback(&[]).expect_code(1).says(&[
        "step `start-app` failed",
        &format!("nothing was switched: `current` still points at {v2}"),
    ]);
    let body = assert_live(&stack, &v2);
    assert!(body.contains("marker: release 2"), "{body}");
    assert_eq!(stack.state(&v1), "good");
    assert_eq!(
        std::fs::read_to_string(stack.host.nginx.sites_dir.join("hello.conf")).unwrap(),
        site
    );
    assert_eq!(
        last_log(&stack),
        ("rollback".into(), v1.clone(), "failed: start-app".into())
    );

    // Once the cause is gone, the same rollback works.
    std::fs::remove_file(stack.deploy_to().join("shared/var/cannot-start")).unwrap();
    stack.rollback(&[]).expect_code(0);
    assert_live(&stack, &v1);
}

/// `--migrate` unapplies before it starts the target's app server; when that start fails, the
/// schema is migrated forward again: the live release keeps serving with the schema its code
/// needs.
#[test]
fn a_failed_rollback_with_migrate_leaves_the_live_release_its_schema() {
    let mut stack = Stack::start();
    stack.set_options(|o| o.extra = "health = { timeout = 8 }\n".into());
    add_start_guard(&stack);
    let v1 = stack.deploy_release();
    add_note_model(&stack);
    let v2 = stack.deploy_release();
    assert!(assert_live(&stack, &v2).contains("notes: 0"));
    forbid_start(&stack, &v1);
    let applied = vec!["pages.0001_initial".to_string(), "pages.0002_note".into()];

    stack
        .rollback(&["--migrate", "--yes"])
        .expect_code(1)
        .says(&[
            "unapplying pages to 0001_initial",
            "step `start-app` failed",
            "migrated the live release's schema forward again",
            &format!("`current` still points at {v2}"),
        ]);
    assert_eq!(stack.current(), Some(format!("releases/{v2}")));
    // v2's index page counts notes: it needs the table --migrate dropped.
    let body = assert_live(&stack, &v2);
    assert!(body.contains("notes: 0"), "{body}");
    assert_eq!(
        database(&stack),
        (applied, true),
        "the rollback failed, yet the live release {v2} was left without its migrations"
    );
}

// ---------------------------------------------------------------------------------------------
// Rolling back across an `AddField` the old code cannot run on.

/// Commits, for release 1, a `/visits` page that records a visit and counts them, as the index
/// page does (both write a `Visit` with the columns this code knows).
fn add_visits_page(stack: &Stack) {
    let p = &stack.project;
    p.write(
        "pages/views.py",
        &format!(
            "{}\n\ndef visits(request):\n    Visit.objects.create()\n    return HttpResponse(\"visits: %d\" % Visit.objects.count(), content_type=\"text/plain\")\n",
            p.read("pages/views.py")
        ),
    );
    let urls = p.read("hello/urls.py").replace(
        "    path(\"health\", views.health, name=\"health\"),\n",
        "    path(\"health\", views.health, name=\"health\"),\n    path(\"visits\", views.visits, name=\"visits\"),\n",
    );
    assert!(urls.contains("views.visits"), "{urls}");
    p.write("hello/urls.py", &urls);
    p.commit_all("visits page");
}

/// Commits release 2: `Visit.note`, a required column (`pages.0002_visit_note`, the
/// `AddField` `makemigrations` writes after asking for a one-off default: the column is NOT
/// NULL with no default in the database). The index page writes a note; `/visits` only counts
/// now (it reads columns release 1 knows).
fn add_visit_note(stack: &Stack) {
    let p = &stack.project;
    let models = p.read("pages/models.py").replace(
        "    created = models.DateTimeField(auto_now_add=True)\n",
        "    created = models.DateTimeField(auto_now_add=True)\n    note = models.CharField(max_length=40)\n",
    );
    assert!(models.contains("note ="), "{models}");
    p.write("pages/models.py", &models);
    p.write(
        "pages/migrations/0002_visit_note.py",
        "from django.db import migrations, models\n\n\n\
         class Migration(migrations.Migration):\n\
         \x20   dependencies = [(\"pages\", \"0001_initial\")]\n\
         \x20   operations = [\n\
         \x20       migrations.AddField(\n\
         \x20           model_name=\"visit\",\n\
         \x20           name=\"note\",\n\
         \x20           field=models.CharField(default=\"\", max_length=40),\n\
         \x20           preserve_default=False,\n\
         \x20       ),\n\
         \x20   ]\n",
    );
    let views = p.read("pages/views.py");
    let views = views
        .replace(
            "def index(request):\n    Visit.objects.create()\n",
            "def index(request):\n    Visit.objects.create(note=\"release 2\")\n",
        )
        .replace(
            "def visits(request):\n    Visit.objects.create()\n",
            "def visits(request):\n",
        );
    assert!(views.contains("note=\"release 2\""), "{views}");
    p.write("pages/views.py", &views);
    p.commit_all("visit notes");
}

/// The columns of `pages_visit` and the applied `pages` migrations, read by the deploy user.
fn visit_table(stack: &Stack) -> (Vec<String>, Vec<String>) {
    let db = stack.deploy_to().join("shared/var/db.sqlite3");
    let script = "import sqlite3, sys\n\
                  c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)\n\
                  print(' '.join(r[1] for r in c.execute('PRAGMA table_info(pages_visit)')))\n\
                  print(' '.join(n for (n,) in c.execute(\"SELECT name FROM django_migrations WHERE app = 'pages' ORDER BY name\")))\n";
    let out = run_as_deploy_ok(&format!(
        "python3 -c {} {}",
        shell_quote(script),
        shell_quote(&db.display().to_string())
    ));
    let mut lines = out
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect());
    (lines.next().unwrap(), lines.next().unwrap())
}

/// Issue 22, defect 9 and item 5. Release 1 writes visits without `note`; on release 2's schema
/// (`note` NOT NULL, no default) its INSERT fails, so its index page — the health check —
/// answers 500 until the `AddField` is unapplied. A rollback that starts and health-checks
/// release 1 before it unapplies (as shipit did) therefore fails every time. `--migrate` must
/// unapply with release 2's code first, then start release 1, health-check it and switch, and
/// the site keeps answering all along: `/visits`, under load, works in release 2 on either
/// schema (it reads only the old columns) and in release 1 only on the old one (it inserts),
/// so a switch before the unapply, or a schema left as release 2's, shows as failed requests.
#[test]
fn rollback_migrate_unapplies_an_add_field_before_the_old_release_starts_under_load() {
    use std::time::Duration;
    let mut stack = Stack::start();
    // A health check that fails takes its whole timeout: not the default 30 s. Release 2's
    // NOT NULL column without a database default breaks release 1's inserts until the switch:
    // the migration gate would refuse it, and this test is about rolling it back, so it is
    // allowed.
    stack.set_options(|o| {
        o.extra = "health = { timeout = 8 }\n\
                   migrations = { allow = [\"pages.0002_visit_note\"] }\n"
            .into()
    });
    add_visits_page(&stack);
    let v1 = stack.deploy_release();
    assert_live(&stack, &v1);
    add_visit_note(&stack);
    let v2 = stack.deploy_release();
    assert_live(&stack, &v2);
    let columns = |names: &[&str]| names.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(
        visit_table(&stack),
        (
            columns(&["id", "created", "note"]),
            columns(&["0001_initial", "0002_visit_note"])
        )
    );

    let load = support::load::Load::start(stack.port, "/visits", 2, Duration::from_secs(120));
    assert!(
        load.wait_for_more_ok(50, Duration::from_secs(20)),
        "the load does not get through: {:?}",
        load.counts()
    );

    // The shape is real: release 1 cannot pass its health check on release 2's schema (a
    // rollback that does not unapply fails at its start and changes nothing).
    let forced = stack.rollback(&["--force"]);
    forced.expect_code(1).says(&[
        "step `start-app` failed",
        "failed its health check",
        "GET / -> HTTP/1.0 500",
        &format!("nothing was switched: `current` still points at {v2}"),
    ]);
    assert_eq!(stack.current(), Some(format!("releases/{v2}")));
    assert_eq!(stack.state(&v1), "good");
    assert!(!stack.locked());

    // The dry run shows the order: unapply (on the primary), then the start and its health
    // check, then the switch.
    let dry = stack.rollback(&["--dry-run", "--migrate"]);
    dry.expect_code(0);
    let plan = dry.json();
    assert_eq!(
        plan["phases"][0]["steps"],
        serde_json::json!(["reap", "nginx-check", "unapply", "start-app"]),
        "{plan}"
    );
    assert_eq!(
        plan["phases"][1]["phase"],
        "switch (once every host is prepared)"
    );

    let run = stack.rollback(&["--migrate", "--yes", "-v"]);
    run.expect_code(0);
    assert_eq!(
        run.json()["unapplied"],
        serde_json::json!([{"app": "pages", "to": "0001_initial"}])
    );
    let unapplied = run.stderr.find("unapply").expect("the unapply step ran");
    let started = run.stderr.rfind("start-app").expect("the start ran");
    assert!(unapplied < started, "{}", run.stderr);
    assert_live(&stack, &v1);
    assert_eq!(
        visit_table(&stack),
        (columns(&["id", "created"]), columns(&["0001_initial"]))
    );
    assert_eq!(stack.state(&v2), "rolled_back");
    // Release 1 now writes its visits under the load.
    assert!(load.wait_for_more_ok(50, Duration::from_secs(20)));
    assert_no_request_failed(&stack, &load.stop(), "");
}

// ---------------------------------------------------------------------------------------------
// A `deploy_to` reached through a symlink.

/// The same `deploy_to`, named through a symlink after the releases were made (storage moved,
/// `/srv/hello -> /data/hello`): pruning must still see which virtualenvs the kept releases
/// use, so that the live release and the rollback target keep theirs.
#[test]
fn pruning_through_a_symlinked_deploy_to_keeps_the_virtualenvs_releases_use() {
    let mut stack = Stack::start();
    let v1 = stack.deploy_release();
    stack.change_page("marker: release 2");
    let v2 = stack.deploy_release();
    assert_live(&stack, &v2);
    let venvs = stack.venvs();
    assert_eq!(venvs.len(), 1);

    std::os::unix::fs::symlink(stack.deploy_to(), stack.host.base.path().join("alias")).unwrap();
    stack.set_options(|o| o.app = "alias".into());
    let run = stack.list_releases(&["--prune", "--keep", "2", "--yes"]);
    run.expect_code(0);
    let json = run.json();
    assert_eq!(
        json["hosts"][0]["prune"]["removed"],
        serde_json::json!([]),
        "{json}"
    );
    assert_eq!(stack.releases(), vec![v1.clone(), v2.clone()]);
    assert_eq!(
        stack.venvs(),
        venvs,
        "the virtualenv the live release uses was removed"
    );

    stack.rollback(&[]).expect_code(0);
    assert_live(&stack, &v1);
}

/// `deploy_to` is a symlink from the start (`/srv/hello -> /data/hello`): pruning works as
/// usual and reports the space it freed.
#[test]
fn pruning_a_deploy_to_that_is_a_symlink_reports_the_space_freed() {
    let mut stack = Stack::start();
    let real = stack.host.base.path().join("data");
    mkdir_as_deploy(&real);
    std::os::unix::fs::symlink(&real, stack.host.base.path().join("app-link")).unwrap();
    stack.set_options(|o| {
        o.app = "app-link".into();
        o.keep_releases = Some(10);
    });
    let mut ids = Vec::new();
    for n in 1..=3 {
        stack.change_page(&format!("marker: release {n}"));
        ids.push(stack.deploy_release());
    }
    assert_live(&stack, &ids[2]);
    let size: u64 = listed(&stack)["hosts"][0]["releases"][0]["size_kib"]
        .as_u64()
        .unwrap();
    assert!(size > 0);

    let run = stack.list_releases(&["--prune", "--keep", "2", "--yes"]);
    run.expect_code(0);
    let json = run.json();
    let prune = &json["hosts"][0]["prune"];
    assert_eq!(prune["removed"], serde_json::json!([ids[0]]), "{json}");
    assert_eq!(stack.releases(), ids[1..].to_vec());
    let freed = prune["freed_kib"].as_u64().unwrap();
    assert!(
        freed >= size / 2,
        "removing {} ({size} KiB) reported {freed} KiB freed: {json}",
        ids[0]
    );
}
