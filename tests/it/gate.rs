//! The migration gate (`templates/remote/py/gate.py`), against real Django and PostgreSQL.
//!
//! - Its classification of every operation it names, run by real Django on a project state
//!   (`gate_cases.py`), with the live release's code unknown and with code that no longer uses
//!   what the operation changes.
//! - Its case under load: a release whose page writes a column, then one that removes the field
//!   and its use at once. Allowed through (`--allow-breaking-migrations`), the live site fails
//!   between migrate and the switch; by default the deploy is refused, nothing changes and no
//!   request fails; the two-step way (code first, then the migration) passes the gate and loses
//!   no request.
//!
//! Needs root. Figures: `cargo test --test it gate:: -- --nocapture`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::load::Load;
use support::stack::*;

/// A venv with the example's Django and psycopg (`requirements/postgres.txt`), made with uv.
fn django_venv() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let run = |command: &mut Command| {
        let out = command.output().expect("run uv");
        assert!(out.status.success(), "{command:?}: {out:?}");
    };
    run(Command::new("uv")
        .args(["venv", "-q", "--python", "/usr/bin/python3"])
        .arg(dir.path()));
    run(Command::new("uv")
        .args(["pip", "install", "-q", "--python"])
        .arg(dir.path().join("bin/python"))
        .arg("-r")
        .arg(support::project::example_dir().join("requirements/postgres.txt")));
    dir
}

#[test]
fn the_gate_classifies_every_operation_it_names() {
    let venv = django_venv();
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(venv.path().join("bin/python"))
        .arg(here.join("tests/it/gate_cases.py"))
        .arg(here.join("templates/remote/py/gate.py"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut seen: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let verdicts = v["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_str().unwrap().into(), p[1].as_str().unwrap().into()))
            .collect();
        let key = (
            v["case"].as_str().unwrap().into(),
            v["vendor"].as_str().unwrap().into(),
        );
        seen.insert(key, verdicts);
    }
    let verdict = |case: &str, vendor: &str| -> (String, String) {
        let found = &seen[&(case.to_string(), vendor.to_string())];
        assert_eq!(found.len(), 1, "{case} on {vendor}: {found:?}");
        found[0].clone()
    };
    let pg = "postgresql";
    let sqlite = "sqlite";
    // Breaking whatever the database: what the live code reads is dropped, renamed or retyped,
    // or what it leaves out of its INSERTs becomes required.
    for (case, what) in [
        (
            "remove_field",
            r#"drops column "note" of table "shop_item""#,
        ),
        (
            "remove_field_db_column",
            r#"drops column "item_code" of table "shop_item""#,
        ),
        (
            "rename_field",
            r#"renames column "name" of table "shop_item" to "title""#,
        ),
        (
            "rename_model",
            r#"renames table "shop_item" (model Item to Product)"#,
        ),
        ("delete_model", r#"drops table "shop_item""#),
        (
            "alter_model_table",
            r#"renames table "shop_item" to "shop_things""#,
        ),
        (
            "alter_field_type",
            r#"changes the type of column "price" of table "shop_item" (IntegerField to DecimalField(9, 2))"#,
        ),
        (
            "alter_field_shorter",
            r#"changes the type of column "name" of table "shop_item" (CharField(50) to CharField(20))"#,
        ),
        (
            "alter_field_not_null",
            r#"makes column "note" of table "shop_item" NOT NULL"#,
        ),
        (
            "add_field_not_null",
            r#"adds NOT NULL column "stock" to table "shop_item" without a database default: the live release's INSERTs leave it out"#,
        ),
        (
            "separate_database_and_state",
            r#"drops column "note" of table "shop_item""#,
        ),
        ("run_sql_drop", "runs SQL that does DROP COLUMN"),
    ] {
        for vendor in [pg, sqlite] {
            assert_eq!(
                verdict(case, vendor),
                ("breaking".into(), what.into()),
                "{case} on {vendor}"
            );
        }
    }
    // Indexes built without CONCURRENTLY block writes on PostgreSQL only.
    for case in [
        "add_index",
        "add_unique_constraint",
        "alter_unique_together",
        "alter_field_unique",
    ] {
        assert_eq!(
            verdict(case, pg),
            (
                "breaking".into(),
                r#"indexes table "shop_item" without CONCURRENTLY"#.into()
            ),
            "{case}"
        );
        assert_eq!(verdict(case, sqlite).0, "compatible", "{case} on SQLite");
    }
    // Code the gate cannot see through.
    for case in ["run_python", "run_sql"] {
        for vendor in [pg, sqlite] {
            assert_eq!(verdict(case, vendor).0, "unknown", "{case} on {vendor}");
        }
    }
    // What the live code keeps working with.
    for case in [
        "alter_field_null",
        "alter_field_longer",
        "add_field_db_default",
        "add_field_null",
        "add_index_concurrently",
        "create_model",
        "alter_model_options",
    ] {
        for vendor in [pg, sqlite] {
            assert_eq!(
                verdict(case, vendor).0,
                "compatible",
                "{case} on {vendor}: {:?}",
                verdict(case, vendor)
            );
        }
    }
    // Against live code that no longer uses what they change, the breaking ones are not.
    let without = "sqlite, live code without it";
    for case in [
        "remove_field",
        "separate_database_and_state",
        "alter_field_not_null",
        "add_field_not_null",
        "delete_model",
        "rename_field",
    ] {
        assert_eq!(
            verdict(case, without).0,
            "compatible",
            "{case}: {:?}",
            verdict(case, without)
        );
    }
    assert_eq!(
        seen.len(),
        2 * 25 + 6,
        "a case was added without an expectation"
    );
}

/// Writes the example's migration `pages.NAME`, after `depends`, doing `operation`.
pub(crate) fn migration(stack: &Stack, name: &str, depends: &str, operation: &str) {
    stack.project.write(
        &format!("pages/migrations/{name}.py"),
        &format!(
            "from django.db import migrations, models\n\n\n\
             class Migration(migrations.Migration):\n\
             \x20   dependencies = [(\"pages\", \"{depends}\")]\n\
             \x20   operations = [{operation}]\n"
        ),
    );
}

/// Writes the example's Visit model with `field` (a line, or nothing) besides `created`.
pub(crate) fn visit_model(stack: &Stack, field: &str) {
    stack.project.write(
        "pages/models.py",
        &format!(
            "from django.db import models\n\n\n\
             class Visit(models.Model):\n\
             \x20   created = models.DateTimeField(auto_now_add=True)\n\
             {field}\n\
             \x20   def __str__(self):\n\
             \x20       return f\"Visit at {{self.created:%Y-%m-%d %H:%M:%S}}\"\n"
        ),
    );
}

/// Deploys under a fresh load on `/` (a page that inserts a row) and returns the deploy and
/// what the load saw.
fn deploy_under_load(
    stack: &Stack,
    args: &[&str],
) -> (support::run::Run, support::load::LoadReport) {
    let load = Load::start(stack.port, "/", 2, Duration::from_secs(120));
    assert!(
        load.wait_for_more_ok(30, Duration::from_secs(20)),
        "the load does not get through before the deploy: {:?}",
        load.counts()
    );
    let run = stack.deploy(args);
    assert!(
        load.wait_for_more_ok(30, Duration::from_secs(20)),
        "{:?}",
        load.counts()
    );
    (run, load.stop())
}

#[test]
fn the_gate_refuses_a_migration_that_breaks_the_live_release_and_passes_the_two_step_way() {
    let pg = support::Postgres::start();
    let (stack, _secrets) = Stack::start_with_postgres(&pg);
    let columns = || {
        pg.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'pages_visit' ORDER BY 1")
    };
    let applied = || pg.query("SELECT name FROM django_migrations WHERE app = 'pages' ORDER BY id");

    // v1: the page writes `note` (every view inserts a Visit).
    visit_model(
        &stack,
        "    note = models.TextField(null=True, blank=True)\n",
    );
    migration(
        &stack,
        "0002_visit_note",
        "0001_initial",
        "migrations.AddField(\"visit\", \"note\", models.TextField(null=True, blank=True))",
    );
    stack.project.commit_all("v1: Visit.note");
    let v1 = stack.deploy_release();
    assert!(columns().contains("note"), "{}", columns());

    // v2 removes the field and its migration drops the column at once: refused, by default.
    visit_model(&stack, "");
    migration(
        &stack,
        "0003_remove_visit_note",
        "0002_visit_note",
        "migrations.RemoveField(\"visit\", \"note\")",
    );
    stack.project.commit_all("v2: drop Visit.note");
    let (run, refused) = deploy_under_load(&stack, &[]);
    run.expect_code(5);
    for said in [
        "gate: breaking pages.0003_remove_visit_note: RemoveField: drops column \"note\" of table \"pages_visit\"",
        "fix: deploy the code that stops using visit.note first, then this migration",
        "migration gate: refused, nothing was migrated",
        "--allow-breaking-migrations",
    ] {
        assert!(run.stderr.contains(said), "missing {said:?}:\n{}", run.stderr);
    }
    assert_eq!(stack.current_id(), v1);
    assert!(
        columns().contains("note"),
        "the refused migration ran: {}",
        columns()
    );
    assert!(!applied().contains("0003"), "{}", applied());
    assert_no_request_failed(&stack, &refused, " while the gate refused");

    // Let through, the live release fails between migrate and the switch.
    let (run, allowed) = deploy_under_load(&stack, &["--allow-breaking-migrations"]);
    run.expect_code(0);
    let v2 = run.release();
    assert!(!columns().contains("note"), "{}", columns());
    let log = stack.log();
    let outcome = &log
        .iter()
        .find(|l| l[3] == v2 && l[5].starts_with("ok"))
        .unwrap_or_else(|| panic!("no ok line for {v2}: {log:?}"))[5];
    assert_eq!(
        outcome,
        "ok (breaking migrations allowed: pages.0003_remove_visit_note)"
    );
    eprintln!(
        "[gate] allowed through: {} of {} requests failed",
        allowed.failed,
        allowed.sent()
    );
    assert!(
        allowed.failed > 0,
        "no request failed while the live release ran without its column: {allowed}"
    );

    // The two-step way: v3 adds `tag`; v4 stops using it; v5 drops it. No request fails, and
    // the gate lets v5 through: the live release (v4) no longer uses the column.
    visit_model(
        &stack,
        "    tag = models.TextField(null=True, blank=True)\n",
    );
    migration(
        &stack,
        "0004_visit_tag",
        "0003_remove_visit_note",
        "migrations.AddField(\"visit\", \"tag\", models.TextField(null=True, blank=True))",
    );
    stack.project.commit_all("v3: Visit.tag");
    let (run, v3_load) = deploy_under_load(&stack, &[]);
    run.expect_code(0);
    assert_no_request_failed(&stack, &v3_load, " adding a nullable column");
    visit_model(&stack, "");
    stack.project.commit_all("v4: stop using Visit.tag");
    let (run, v4_load) = deploy_under_load(&stack, &[]);
    run.expect_code(0);
    assert_no_request_failed(&stack, &v4_load, " deploying the code that stops using tag");
    migration(
        &stack,
        "0005_remove_visit_tag",
        "0004_visit_tag",
        "migrations.RemoveField(\"visit\", \"tag\")",
    );
    stack.project.commit_all("v5: drop Visit.tag");
    let (run, v5_load) = deploy_under_load(&stack, &[]);
    run.expect_code(0);
    let judged = std::fs::read_to_string(
        stack
            .deploy_to()
            .join(format!("releases/{}/.shipit/gate", run.release())),
    )
    .unwrap();
    assert_eq!(
        judged,
        "gate: 1 migration(s) to apply, none breaks the live release\n"
    );
    assert!(!columns().contains("tag"), "{}", columns());
    assert_no_request_failed(
        &stack,
        &v5_load,
        " dropping the column the live release no longer uses",
    );
    assert!(v2 < run.release());

    // One deploy instead of two: v6 adds `mark`; v7 drops it from the model and marks its
    // RemoveField to run after the switch (django-safemigrate's attribute, as a string here):
    // the gate holds it, migrate leaves it out, and it runs once the live release is v7.
    visit_model(
        &stack,
        "    mark = models.TextField(null=True, blank=True)\n",
    );
    migration(
        &stack,
        "0006_visit_mark",
        "0005_remove_visit_tag",
        "migrations.AddField(\"visit\", \"mark\", models.TextField(null=True, blank=True))",
    );
    stack.project.commit_all("v6: Visit.mark");
    stack.deploy(&[]).expect_code(0);
    visit_model(&stack, "");
    stack.project.write(
        "pages/migrations/0007_remove_visit_mark.py",
        "from django.db import migrations\n\n\n\
         class Migration(migrations.Migration):\n\
         \x20   safe = \"after_deploy\"\n\
         \x20   dependencies = [(\"pages\", \"0006_visit_mark\")]\n\
         \x20   operations = [migrations.RemoveField(\"visit\", \"mark\")]\n",
    );
    stack
        .project
        .commit_all("v7: drop Visit.mark after the switch");
    let (run, v7_load) = deploy_under_load(&stack, &[]);
    run.expect_code(0);
    assert!(
        run.stderr.contains("migrate-after-switch"),
        "{}",
        run.stderr
    );
    let v7 = run.release();
    let judged = std::fs::read_to_string(
        stack
            .deploy_to()
            .join(format!("releases/{v7}/.shipit/gate")),
    )
    .unwrap();
    assert!(
        judged.contains("gate: after the switch: pages.0007_remove_visit_mark"),
        "{judged}"
    );
    assert!(!columns().contains("mark"), "{}", columns());
    assert!(
        applied().contains("0007_remove_visit_mark"),
        "{}",
        applied()
    );
    assert_no_request_failed(&stack, &v7_load, " dropping a column after the switch");
    eprintln!(
        "[gate] refused: {} of {} failed; two-step: {}+{}+{} of {}+{}+{} failed; after the switch: {} of {}",
        refused.failed,
        refused.sent(),
        v3_load.failed,
        v4_load.failed,
        v5_load.failed,
        v3_load.sent(),
        v4_load.sent(),
        v5_load.sent(),
        v7_load.failed,
        v7_load.sent()
    );
}
