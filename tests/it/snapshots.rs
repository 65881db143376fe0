//! Database snapshots (`[targets.T.database]`, `shipit db`), against real PostgreSQL and SQLite:
//! a snapshot is taken before a migration that drops a column (and none when nothing is to be
//! migrated), listed, pruned by `keep`, and restored — the dropped data comes back. Needs root.
//!
//! Figures (the snapshot's time): `cargo test --test it snapshots:: -- --nocapture`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::stack::*;

use crate::gate::{migration, visit_model};

/// `shipit db --target test --json ARGS`.
fn db(stack: &Stack, args: &[&str]) -> support::run::Run {
    run_on_target(&stack.project, stack.home.path(), "db", args)
}

/// The snapshot names on the host, sorted.
fn snapshot_names(stack: &Stack) -> Vec<String> {
    let mut names: Vec<String> = list_dir(&stack.deploy_to().join(".shipit/snapshots"))
        .into_iter()
        .filter_map(|n| n.strip_suffix(".meta").map(str::to_string))
        .collect();
    names.sort();
    names
}

/// One value of a snapshot's `.meta`.
fn meta(stack: &Stack, name: &str, key: &str) -> String {
    let text = std::fs::read_to_string(
        stack
            .deploy_to()
            .join(format!(".shipit/snapshots/{name}.meta")),
    )
    .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
        .to_string()
}

/// The whole story on `stack`, whose database `sql` queries (rows one a line) and whose
/// `columns` query lists the columns of pages_visit; `secret` must never be printed.
fn a_dropped_column_comes_back(
    stack: &mut Stack,
    sql: &dyn Fn(&str) -> String,
    columns: &str,
    secret: &str,
) {
    let extra = stack.options.extra.clone();
    stack.set_options(|o| {
        o.extra = format!("{extra}database = {{ backup = \"before-migrate\", keep = 2 }}\n")
    });
    let said = std::cell::RefCell::new(String::new());
    let keep = |run: support::run::Run| {
        said.borrow_mut()
            .push_str(&format!("{}{}", run.stdout, run.stderr));
        run
    };

    // v1 adds `note`: its migrate applies migrations, so a snapshot is taken first.
    visit_model(
        stack,
        "    note = models.TextField(null=True, blank=True)\n",
    );
    migration(
        stack,
        "0002_visit_note",
        "0001_initial",
        "migrations.AddField(\"visit\", \"note\", models.TextField(null=True, blank=True))",
    );
    stack.project.commit_all("v1: Visit.note");
    let run = keep(stack.deploy(&[]));
    run.expect_code(0);
    let v1 = run.release();
    let first = snapshot_names(stack);
    assert_eq!(first.len(), 1, "{first:?}\n{}", run.stderr);
    assert!(first[0].starts_with(&format!("{v1}-")), "{first:?}");
    sql("INSERT INTO pages_visit (created, note) VALUES (CURRENT_TIMESTAMP, 'precious')");

    // A code-only redeploy migrates nothing: no snapshot.
    stack.change_page("v1b");
    keep(stack.deploy(&[])).expect_code(0);
    assert_eq!(snapshot_names(stack), first);

    // v2 drops the column (let through the gate): the snapshot before it holds the data.
    visit_model(stack, "");
    migration(
        stack,
        "0003_remove_visit_note",
        "0002_visit_note",
        "migrations.RemoveField(\"visit\", \"note\")",
    );
    stack.project.commit_all("v2: drop Visit.note");
    let run = keep(stack.deploy(&["--allow-breaking-migrations"]));
    run.expect_code(0);
    let v2 = run.release();
    let names = snapshot_names(stack);
    let before_v2 = names
        .iter()
        .find(|n| n.starts_with(&format!("{v2}-")))
        .unwrap_or_else(|| panic!("no snapshot before {v2}: {names:?}"))
        .clone();
    let applied = meta(stack, &before_v2, "applied");
    assert!(
        applied.contains("pages.0002_visit_note") && !applied.contains("pages.0003"),
        "{applied}"
    );
    let file = stack.deploy_to().join(format!(
        ".shipit/snapshots/{}",
        meta(stack, &before_v2, "file")
    ));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", file.display());
    eprintln!(
        "[snapshots] {}: {} bytes in {} s",
        meta(stack, &before_v2, "engine"),
        meta(stack, &before_v2, "bytes"),
        meta(stack, &before_v2, "seconds")
    );
    assert!(!sql(columns).contains("note"), "{}", sql(columns));

    // A snapshot now: with keep = 2, the oldest (before v1) goes.
    let run = keep(db(stack, &["backup"]));
    run.expect_code(0);
    let now = run.json()["snapshot"].as_str().unwrap().to_string();
    assert!(now.starts_with(&format!("{v2}-")), "{now}");
    let names = snapshot_names(stack);
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(!names.contains(&first[0]), "{names:?} kept {}", first[0]);
    let listed = keep(db(stack, &["list"]));
    listed.expect_code(0);
    let listed: Vec<String> = listed.json()["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, [now.clone(), before_v2.clone()]);

    // A restore needs a confirmation; with it, the dropped column and its data come back.
    let run = keep(db(stack, &["restore", &before_v2]));
    assert_ne!(run.code, 0, "restored unconfirmed");
    run.says(&["--yes"]);
    assert!(!sql(columns).contains("note"));
    let run = keep(db(stack, &["restore", &before_v2, "--yes"]));
    run.expect_code(0);
    assert_eq!(run.json()["restored"], before_v2.as_str());
    assert_eq!(
        sql("SELECT note FROM pages_visit WHERE note IS NOT NULL").trim(),
        "precious"
    );
    assert!(stack
        .log()
        .iter()
        .any(|l| l[5] == format!("restored snapshot {before_v2}")));
    if !secret.is_empty() {
        assert!(!said.borrow().contains(secret), "the password was printed");
    }
}

#[test]
fn postgres_snapshots_bring_back_a_dropped_column() {
    let pg = support::Postgres::start();
    let (mut stack, _secrets) = Stack::start_with_postgres(&pg);
    let password = pg
        .url()
        .rsplit_once('@')
        .unwrap()
        .0
        .rsplit_once(':')
        .unwrap()
        .1
        .to_string();
    a_dropped_column_comes_back(
        &mut stack,
        &|q| pg.query(q),
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'pages_visit'",
        &password,
    );
}

#[test]
fn sqlite_snapshots_bring_back_a_dropped_column() {
    let mut stack = Stack::start();
    let file = stack.deploy_to().join("shared/var/db.sqlite3");
    let sql = |q: &str| sqlite(&file, q);
    a_dropped_column_comes_back(
        &mut stack,
        &sql,
        "SELECT name FROM pragma_table_info('pages_visit')",
        "",
    );
}

/// Runs `sql` on the SQLite database `file` with Python's sqlite3: rows one a line.
fn sqlite(file: &Path, sql: &str) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nrows = c.execute(sys.argv[2]).fetchall()\nc.commit()\nprint('\\n'.join('|'.join(str(v) for v in r) for r in rows))",
        ])
        .arg(file)
        .arg(sql)
        .output()
        .unwrap();
    assert!(out.status.success(), "{sql}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}
