//! The Django steps with the venv's python stubbed: the settings probe, migrate (run, skipped,
//! deferred, failing), collectstatic, and the background job that runs them beside migrate.

use super::{each_shell, Host};

pub(super) const COVERS: &[&str] = &[
    "step_settings",
    "step_migrate",
    "step_migrate_check",
    "step_migrate_after_switch",
    "step_collectstatic",
    "step_background",
    "step_await",
];

/// The release's venv python: a stub logged as `python` running `body` (`$2` is the code,
/// `$3` its mode, `$4` MANAGE, the rest the file's arguments: see `templates/remote/py`).
fn venv_python(host: &Host, body: &str) {
    std::fs::create_dir_all(host.r(".shipit")).unwrap();
    host.stub_at(host.r(".venv/bin/python"), "python", body);
}

/// Holds the lock as this run, as every step after `begin` does.
fn locked(host: &Host) {
    host.write(host.d(".shipit/lock/info"), "token=token\n");
}

#[test]
fn settings_records_what_the_probe_answers() {
    each_shell(|host| {
        venv_python(
            host,
            "printf 'STATICFILES=1\\nSTATIC_ROOT=%s/static\\n' \"$PWD\" > \"$5\"",
        );
        let run = host.step("step_settings", &[]);
        run.status(0)
            .fact_is("settings", "ran")
            .says("  STATICFILES=1");
        let answer = std::fs::read_to_string(host.r(".shipit/django")).unwrap();
        assert!(answer.ends_with("20261122010320/static\n"), "{answer}");
    });
}

/// A MEDIA_ROOT inside the release is reported (uploads would stay behind in it), unless a
/// shared dir holds it; one outside the release is nobody's business.
#[test]
fn settings_report_a_media_root_inside_the_release_that_no_shared_dir_holds() {
    each_shell(|host| {
        let wanted = host.path("media-root");
        venv_python(
            host,
            &format!(
                "printf 'MEDIA_ROOT=%s/%s\\n' \"$PWD\" \"$(cat {})\" > \"$5\"",
                wanted.display()
            ),
        );
        let media = |host: &mut Host, rel: &str| {
            std::fs::write(&wanted, rel).unwrap();
            host.step("step_settings", &[])
        };
        media(host, "media")
            .status(0)
            .fact_is("media_inside", "media")
            .says("warning: MEDIA_ROOT (");
        media(host, "data/uploads").fact_is("media_inside", "data/uploads");
        // A shared dir holds it: `data` links into shared/.
        std::fs::create_dir_all(host.d("shared/data")).unwrap();
        std::os::unix::fs::symlink(host.d("shared/data"), host.r("data")).unwrap();
        let run = media(host, "data/uploads");
        run.status(0);
        assert!(run.fact("media_inside").is_none(), "{run:?}");
        let run = media(host, "../../../srv-media");
        assert!(run.fact("media_inside").is_none(), "{run:?}");
    });
}

#[test]
fn settings_fail_when_the_probe_does() {
    each_shell(|host| {
        venv_python(host, "echo 'ImproperlyConfigured: SECRET_KEY'; exit 1");
        host.step("step_settings", &[])
            .status(1)
            .says("ImproperlyConfigured");
    });
}

/// A python whose migrate and database reads write `applied=1` as the database's state.
fn migrating(host: &Host) {
    venv_python(host, "printf 'applied=1\\n' > \"$5\"");
    host.write(host.r("manage.py"), "");
    host.write(host.r("app/migrations/0001_initial.py"), "ops = []\n");
    locked(host);
}

/// Makes release `id` live, with this release's migrate record.
fn live_with_the_same_migrations(host: &mut Host, id: &str) {
    host.write(
        host.d(&format!("releases/{id}/.shipit/migrated")),
        &std::fs::read_to_string(host.r(".shipit/migrated")).unwrap(),
    );
    std::os::unix::fs::symlink(format!("releases/{id}"), host.d("current")).unwrap();
}

#[test]
fn migrate_runs_then_is_skipped_when_nothing_changed() {
    each_shell(|host| {
        migrating(host);
        host.step("step_migrate", &[])
            .status(0)
            .fact_is("migrate", "ran");
        let record = std::fs::read_to_string(host.r(".shipit/migrated")).unwrap();
        assert!(
            record.starts_with("migrations=") && record.ends_with("\napplied=1\n"),
            "{record}"
        );
        live_with_the_same_migrations(host, "20261101000000");
        let run = host.step("step_migrate", &[]);
        run.fact_is(
            "migrate",
            "skipped, no migration changed since 20261101000000",
        );
        host.step("step_migrate", &["always"])
            .status(0)
            .fact_is("migrate", "ran");
        // A new migration file: migrate runs.
        host.write(host.r("app/migrations/0002_more.py"), "ops = [1]\n");
        host.step("step_migrate", &[])
            .status(0)
            .fact_is("migrate", "ran");
    });
}

#[test]
fn a_failing_migrate_fails_the_step_and_records_nothing() {
    each_shell(|host| {
        migrating(host);
        venv_python(
            host,
            "echo 'django.db.utils.OperationalError: no such table'; exit 1",
        );
        let run = host.step("step_migrate", &[]);
        run.status(1).says("OperationalError");
        assert!(run.fact("migrate").is_none(), "{run:?}");
        assert!(!host.r(".shipit/migrated").exists());
    });
}

#[test]
fn migrate_needs_the_lock_and_manage_py() {
    each_shell(|host| {
        host.step("step_migrate", &[])
            .status(1)
            .fact_is("lock_lost", "1");
        locked(host);
        host.step("step_migrate", &[])
            .status(1)
            .says("manage.py not found in the release");
    });
}

#[test]
fn a_deferred_migrate_is_checked_after_the_app_starts() {
    each_shell(|host| {
        host.step("step_migrate_check", &[])
            .status(0)
            .says("nothing to check");
        migrating(host);
        host.step("step_migrate", &[]).status(0);
        live_with_the_same_migrations(host, "20261101000000");
        host.step("step_migrate", &["defer"])
            .status(0)
            .says("the database is read while the app server starts");
        assert!(host.r(".shipit/migrate-deferred").exists());
        host.step("step_migrate_check", &[]).status(0).fact_is(
            "migrate",
            "skipped, no migration changed since 20261101000000",
        );
        assert!(!host.r(".shipit/migrate-deferred").exists());
    });
}

#[test]
fn collectstatic_runs_only_when_the_settings_ask_for_it() {
    each_shell(|host| {
        venv_python(host, "");
        host.write(host.r(".shipit/django"), "STATICFILES=0\n");
        host.step("step_collectstatic", &[])
            .status(0)
            .says("django.contrib.staticfiles is not installed");
        host.write(host.r(".shipit/django"), "STATICFILES=1\nSTATIC_ROOT=\n");
        host.step("step_collectstatic", &[])
            .status(0)
            .says("the settings have no STATIC_ROOT");
        assert!(host.calls("python").is_empty());
        let root = host.r("static");
        host.write(
            host.r(".shipit/django"),
            &format!("STATICFILES=1\nSTATIC_ROOT={}\n", root.display()),
        );
        host.step("step_collectstatic", &[])
            .status(0)
            .fact_is("collectstatic", "ran");
        assert_eq!(host.calls("python"), ["manage.py collectstatic --noinput"]);
    });
}

#[test]
fn collectstatic_fails_with_its_command() {
    each_shell(|host| {
        venv_python(
            host,
            "echo 'OSError: [Errno 28] No space left on device'; exit 1",
        );
        host.write(
            host.r(".shipit/django"),
            &format!(
                "STATICFILES=1\nSTATIC_ROOT={}\n",
                host.r("static").display()
            ),
        );
        host.step("step_collectstatic", &[])
            .status(1)
            .says("No space left on device");
    });
}

/// The job's directory is private and its name does not give the nonce away (any user of the
/// host can list /dev/shm; output that knew the nonce could forge the script's markers).
#[test]
fn the_background_job_is_private_and_its_name_hides_the_nonce() {
    each_shell(|host| {
        let run = host.run(
            "probe() { dir=$(shipit_background_dir); echo \"dir=$dir\"; ls -ld \"$dir\"; }\n\
             shipit_step background step_background probe probe\n\
             shipit_step probe step_await probe",
        );
        run.status(0).says("drwx------");
        let dir = run
            .text
            .split("dir=")
            .nth(1)
            .unwrap()
            .lines()
            .next()
            .unwrap();
        let name = dir.rsplit('/').next().unwrap();
        assert!(!dir.contains(host.nonce()), "{dir}");
        assert_eq!(name.len(), "shipit-".len() + 16, "{dir}");
        assert!(!std::path::Path::new(dir).exists(), "{dir}");
    });
}

#[test]
fn background_steps_are_awaited_with_their_output_and_status() {
    each_shell(|host| {
        std::fs::create_dir_all(host.r(".shipit")).unwrap();
        venv_python(host, "printf 'STATICFILES=0\\n' > \"$5\"");
        let run = host.run(
            "shipit_step background step_background settings step_settings collectstatic step_collectstatic\n\
             shipit_step settings step_await settings\n\
             shipit_step collectstatic step_await collectstatic",
        );
        run.status(0)
            .says("started in the background")
            .says("settings took ")
            .says("django.contrib.staticfiles is not installed")
            .fact_is("settings", "ran");
        // A failing one stops the job: its status is the await's, the next never ran.
        venv_python(host, "echo 'no settings'; exit 4");
        let run = host.run(
            "shipit_step background step_background settings step_settings collectstatic step_collectstatic\n\
             shipit_step settings step_await settings",
        );
        run.status(4).says("no settings");
    });
}

/// A release venv python whose gate (`judge`) prints `verdict` lines and exits `status`, whose
/// `uses` writes `{}` and says where it ran, and whose migrate writes the database state.
fn gated(host: &Host, verdict: &str, status: i32) {
    migrating(host);
    let record = host.path("gate-calls");
    venv_python(
        host,
        &format!(
            "case $3 in\n\
             judge) echo \"judge $5 $6 [$7] [$8] $9\" >> {record}; printf '%s\\n' {verdict}; exit {status} ;;\n\
             *) printf 'applied=1\\n' > \"$5\" ;;\n\
             esac",
            record = crate::plan::quote(record.to_str().unwrap()),
            verdict = crate::plan::quote(verdict),
        ),
    );
}

/// What the gate stubs were asked, one line per call.
fn gate_calls(host: &Host) -> Vec<String> {
    std::fs::read_to_string(host.path("gate-calls"))
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

#[test]
fn the_gate_refuses_before_anything_is_migrated() {
    each_shell(|host| {
        gated(
            host,
            "gate: breaking app.0002_drop: RemoveField: drops column \"note\" of table \"app_item\"\n  fix: deploy the code first",
            3,
        );
        let run = host.step("step_migrate", &[]);
        run.status(1)
            .says("gate: breaking app.0002_drop: RemoveField")
            .says("migration gate: refused, nothing was migrated");
        assert!(run.fact("migrate").is_none(), "{run:?}");
        assert!(!host.r(".shipit/migrated").exists());
        assert!(!host.r(".shipit/database").exists());
        // What it found stays with the release, for the person and the deploy log.
        let kept = std::fs::read_to_string(host.r(".shipit/gate")).unwrap();
        assert!(kept.contains("fix: deploy the code first"), "{kept}");
        // A first deploy has no live release: nothing told the gate what it uses.
        assert_eq!(gate_calls(host), ["judge refuse 0 [] [] "]);
    });
}

#[test]
fn the_gate_asks_the_live_release_what_it_uses_and_off_asks_nothing() {
    each_shell(|host| {
        gated(
            host,
            "gate: 1 migration(s) to apply, none breaks the live release",
            0,
        );
        let live = host.release("20261101000000", "live");
        let ran_in = host.path("uses-ran-in");
        host.script(
            live.join(".venv/bin/python"),
            &format!(
                "[ \"$3\" = uses ] || exit 9\npwd > {}\necho '{{}}' > \"$5\"",
                crate::plan::quote(ran_in.to_str().unwrap())
            ),
        );
        host.current("releases/20261101000000");
        host.set("GATE_ALLOW", "app.0003_ok other.0001_x");
        let run = host.step("step_migrate", &[]);
        run.status(0)
            .says("none breaks the live release")
            .fact_is("migrate", "ran");
        let uses = host.r(".shipit/live-uses.json");
        assert_eq!(std::fs::read_to_string(&uses).unwrap(), "{}\n");
        assert_eq!(
            std::fs::read_to_string(&ran_in).unwrap().trim_end(),
            live.to_str().unwrap()
        );
        assert_eq!(
            gate_calls(host),
            [format!(
                "judge refuse 0 [app.0003_ok other.0001_x] [] {}",
                uses.display()
            )]
        );
        // Off: no gate at all.
        host.set("GATE", "off");
        host.step("step_migrate", &["always"]).status(0);
        assert_eq!(gate_calls(host).len(), 1);
    });
}

#[test]
fn migrations_held_for_after_the_switch_are_left_out_then_applied() {
    each_shell(|host| {
        let args = host.path("migrate-args");
        migrating(host);
        venv_python(
            host,
            &format!(
                "case $3 in\n\
                 judge) echo 'gate: after the switch: app.0002_drop'; printf 'app.0002_drop\\n' > \"${{10}}\" ;;\n\
                 run) echo \"run [$7]\" >> {args}; printf 'applied=1\\n' > \"$5\" ;;\n\
                 esac",
                args = crate::plan::quote(args.to_str().unwrap())
            ),
        );
        let live = host.release("20261101000000", "live");
        host.script(live.join(".venv/bin/python"), "echo '{}' > \"$5\"");
        host.current("releases/20261101000000");
        // Nothing held yet: the step says so and runs nothing.
        host.step("step_migrate_after_switch", &[])
            .status(0)
            .says("no migration was held for after the switch");
        host.step("step_migrate", &[])
            .status(0)
            .fact_is("after_switch", "app.0002_drop");
        let held = host.r(".shipit/after-switch");
        assert_eq!(std::fs::read_to_string(&held).unwrap(), "app.0002_drop\n");
        host.step("step_migrate_after_switch", &[])
            .status(0)
            .fact_is("migrate_after_switch", "ran");
        // Before the switch migrate was told what to leave out; after it, nothing.
        assert_eq!(
            std::fs::read_to_string(&args).unwrap(),
            format!("run [{}]\nrun []\n", held.display())
        );
        assert!(!held.exists());
        assert!(std::fs::read_to_string(host.r(".shipit/migrated"))
            .unwrap()
            .starts_with("migrations="));
        // A failure says the release stays live and how to finish.
        std::fs::write(&held, "app.0002_drop\n").unwrap();
        venv_python(host, "exit 1");
        host.step("step_migrate_after_switch", &[])
            .status(1)
            .says("the migrations held for after the switch failed: app.0002_drop")
            .says("stays live");
    });
}
