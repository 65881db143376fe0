//! Database snapshots (templates/remote/snapshot.sh) with the venv's python stubbed: taken
//! before a migrate that applies something, a failure that stops the deploy before migrate,
//! retention, the list, and a restore by release id.

use super::{each_shell, Host};

pub(super) const COVERS: &[&str] = &["step_db_backup", "step_db_list", "step_db_restore"];

/// What the stubbed py/snapshot.py `take` writes for snapshot `$6` of release `$7` in `$5`.
const TAKE: &str = "printf 'release=%s\\nengine=sqlite\\nfile=%s.sqlite3\\nbytes=3\\ntaken=T\\napplied=a.0001 a.0002\\n' \"$7\" \"$6\" > \"$5/$6.meta\"; printf abc > \"$5/$6.sqlite3\"";

/// A venv python at `dir/.venv/bin/python` whose snapshot `take` runs `take` (exit status as
/// it ends), whose `restore` succeeds, and whose migrate writes the database state.
fn python(host: &Host, dir: &std::path::Path, take: &str) {
    host.stub_at(
        dir.join(".venv/bin/python"),
        "python",
        &format!(
            "case $3 in\n\
             take) {take} ;;\n\
             restore) echo \"restored $5\" ;;\n\
             *) printf 'applied=1\\n' > \"$5\" ;;\n\
             esac"
        ),
    );
}

/// The release about to migrate, with a migration, the lock held, the gate off.
fn migrating(host: &mut Host, take: &str) {
    std::fs::create_dir_all(host.r(".shipit")).unwrap();
    python(host, &host.r(""), take);
    host.write(host.r("manage.py"), "");
    host.write(host.r("app/migrations/0001_initial.py"), "ops = []\n");
    host.lock();
    host.set("GATE", "off");
    host.set("DB_BACKUP", "before-migrate");
}

/// The snapshots on the host, by name, sorted.
fn snapshots(host: &Host) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(host.d(".shipit/snapshots"))
        .map(|dir| {
            dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_snapshot_is_taken_before_migrate_applies_anything() {
    each_shell(|host| {
        migrating(host, TAKE);
        host.step("step_migrate", &[])
            .status(0)
            .fact_is("migrate", "ran");
        let calls = host.calls("python");
        let take = calls.iter().position(|c| c.contains(" take "));
        let run = calls.iter().position(|c| c.contains(" run "));
        assert!(take.is_some() && take < run, "{calls:?}");
        assert!(
            calls[take.unwrap()].ends_with(" 20261122010320 pending"),
            "{calls:?}"
        );
        let names = snapshots(host);
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names[0].starts_with("20261122010320-"), "{names:?}");
        use std::os::unix::fs::PermissionsExt;
        let dir = std::fs::metadata(host.d(".shipit/snapshots")).unwrap();
        assert_eq!(dir.permissions().mode() & 0o777, 0o700);
        // Off: none.
        host.set("DB_BACKUP", "");
        host.step("step_migrate", &["always"]).status(0);
        assert_eq!(snapshots(host).len(), 2);
    });
}

#[test]
fn a_failed_snapshot_stops_the_deploy_before_migrate() {
    each_shell(|host| {
        migrating(
            host,
            &format!("{TAKE}; echo 'pg_dump: connection refused'; exit 1"),
        );
        let run = host.step("step_migrate", &[]);
        run.status(1)
            .says("pg_dump: connection refused")
            .says("snapshot failed: nothing was migrated");
        assert!(run.fact("migrate").is_none(), "{run:?}");
        assert!(!host.calls("python").iter().any(|c| c.contains(" run ")));
        assert_eq!(snapshots(host), Vec::<String>::new());
    });
}

/// Release 20261101000000 live, with its venv python, and the lock held.
fn live(host: &Host) {
    let live = host.release("20261101000000", "live");
    python(host, &live, TAKE);
    host.current("releases/20261101000000");
    host.lock();
}

/// Writes snapshot `name` as py/snapshot.py leaves it.
fn snapshot(host: &Host, name: &str) {
    let release = name.split('-').next().unwrap();
    host.write(
        host.d(&format!(".shipit/snapshots/{name}.meta")),
        &format!("release={release}\nengine=sqlite\nfile={name}.sqlite3\nbytes=3\ntaken=T\napplied=a.0001 a.0002\n"),
    );
    host.write(host.d(&format!(".shipit/snapshots/{name}.sqlite3")), "abc");
}

#[test]
fn retention_keeps_the_newest_and_the_list_is_newest_first() {
    each_shell(|host| {
        live(host);
        host.set("DB_KEEP", "2");
        for name in [
            "20261101000000-20261101000100",
            "20261001000000-20261001000100",
            "20261102000000-20261102000100",
        ] {
            snapshot(host, name);
        }
        let run = host.step("step_db_backup", &[]);
        run.status(0)
            .says("snapshot: removed 20261001000000-20261001000100 (keep = 2)")
            .says("snapshot: removed 20261101000000-20261101000100 (keep = 2)");
        let taken = run.fact("snapshot_taken").unwrap().to_string();
        assert!(taken.starts_with("20261101000000-"), "{taken}");
        assert_eq!(
            snapshots(host),
            [
                format!("{taken}.meta"),
                format!("{taken}.sqlite3"),
                "20261102000000-20261102000100.meta".to_string(),
                "20261102000000-20261102000100.sqlite3".into(),
            ]
        );
        let list = host.step("step_db_list", &[]);
        list.status(0)
            .fact_is(
                "snapshot:000001",
                &format!("{taken}\t20261101000000\tT\tsqlite\t3\t2"),
            )
            .fact_is(
                "snapshot:000002",
                "20261102000000-20261102000100\t20261102000000\tT\tsqlite\t3\t2",
            );
    });
}

#[test]
fn a_restore_by_release_id_takes_its_newest_snapshot_and_is_logged() {
    each_shell(|host| {
        live(host);
        host.set("OP", "db");
        snapshot(host, "20261102000000-20261102000100");
        snapshot(host, "20261102000000-20261102000200");
        let run = host.step("step_db_restore", &["20261102000000"]);
        run.status(0)
            .says("restored ")
            .fact_is("restored", "20261102000000-20261102000200");
        let calls = host.calls("python");
        assert!(
            calls
                .last()
                .unwrap()
                .ends_with("20261102000000-20261102000200.sqlite3"),
            "{calls:?}"
        );
        assert_eq!(
            host.log().last().unwrap(),
            "db restored snapshot 20261102000000-20261102000200"
        );
        host.step("step_db_restore", &["2026"])
            .status(1)
            .says("no snapshot 2026 under");
    });
}
