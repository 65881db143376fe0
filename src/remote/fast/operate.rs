//! The operator's commands on a host: `releases` (inventory, removal), `check`, `maintenance`,
//! `run`, and a rollback's reading and unapplying of migrations, with the venvs' python stubbed.

use super::{each_shell, Host};

pub(super) const COVERS: &[&str] = &[
    "step_inventory",
    "step_require_releases",
    "step_remove",
    "step_check",
    "step_maintenance_prepare",
    "step_maintenance_on",
    "step_maintenance_off",
    "step_require_current",
    "step_run",
    "step_migrations",
    "step_unapply",
    "step_logs",
];

/// The release live before this run.
const OLD: &str = "20261101000000";

/// This run's release (a rollback's target).
const ID: &str = "20261122010320";

/// Makes `OLD` live, its venv's python a stub logged as `live-python` running `body` (`$1` is
/// MANAGE or `-c`).
fn live(host: &Host, body: &str) {
    host.release(OLD, "live");
    host.stub_at(
        host.d(&format!("releases/{OLD}/.venv/bin/python")),
        "live-python",
        body,
    );
    host.current(&format!("releases/{OLD}"));
}

#[test]
fn inventory_of_a_host_never_deployed_says_so() {
    each_shell(|host| {
        std::fs::remove_dir_all(host.d("releases")).unwrap();
        let run = host.step("step_inventory", &[]);
        run.status(0).says("nothing deployed under");
        assert_eq!(run.fact("current"), None, "{run:?}");
    });
}

#[test]
fn inventory_reports_each_release_its_size_venv_revision_and_use() {
    each_shell(|host| {
        host.release_with_venv(OLD, "live", "kkkk", 100_000);
        host.write(
            host.d(&format!("releases/{OLD}/.shipit/manifest.json")),
            "{\n  \"revision\": \"abc1234\",\n  \"files\": []\n}\n",
        );
        host.current(&format!("releases/{OLD}"));
        host.release(ID, "prepared");
        host.write(host.d("releases/20261001000000/code.py"), "");
        // A process of this user working in release 20261001000000: an app server, say.
        let run = host.run(
            "(cd \"$D/releases/20261001000000\" && exec sleep 10 >/dev/null 2>&1) &\n\
             busy=$!\n\
             until readlink \"/proc/$busy/cwd\" | grep -q releases/; do sleep 0.01; done\n\
             shipit_step inventory step_inventory\n\
             kill $busy",
        );
        run.status(0).fact_is("current", OLD);
        let in_use: Vec<&str> = run.fact("in_use").unwrap().split_whitespace().collect();
        assert_eq!(in_use, ["20261001000000"], "{run:?}");
        let unknown = run.fact("release:20261001000000").unwrap();
        assert!(
            unknown.starts_with("unknown ") && unknown.ends_with(" - -"),
            "{run:?}"
        );
        let old: Vec<String> = run
            .fact(&format!("release:{OLD}"))
            .unwrap()
            .split(' ')
            .map(str::to_string)
            .collect();
        assert_eq!(
            [&old[0], &old[2], &old[3]],
            ["live", "kkkk", "abc1234"],
            "{run:?}"
        );
        assert!(old[1].parse::<u64>().unwrap() >= 100, "{run:?}");
        assert!(
            run.fact(&format!("release:{ID}"))
                .unwrap()
                .starts_with("prepared "),
            "{run:?}"
        );
        assert_eq!(run.fact("dangling"), None, "{run:?}");
    });
}

#[test]
fn inventory_reports_a_current_whose_release_is_gone() {
    each_shell(|host| {
        host.current("releases/20261001000000");
        host.step("step_inventory", &[])
            .status(0)
            .fact_is("current", "20261001000000")
            .fact_is("dangling", "releases/20261001000000");
    });
}

#[test]
fn require_releases_refuses_an_empty_host_or_a_current_that_is_no_symlink() {
    each_shell(|host| {
        host.step("step_require_releases", &[]).status(0);
        host.write(host.d("current"), "a file");
        host.step("step_require_releases", &[])
            .status(1)
            .says("current is a file, not a symlink");
        std::fs::remove_file(host.d("current")).unwrap();
        std::fs::remove_dir_all(host.d("releases")).unwrap();
        host.step("step_require_releases", &[])
            .status(1)
            .says("nothing is deployed under");
    });
}

#[test]
fn remove_takes_the_chosen_releases_and_unused_venvs_but_never_current() {
    each_shell(|host| {
        host.set("OP", "prune");
        host.lock();
        host.release_with_venv("20261001000000", "good", "aaaa", 10);
        host.release_with_venv(OLD, "live", "bbbb", 10);
        host.current(&format!("releases/{OLD}"));
        let run = host.step("step_remove", &["20261001000000", OLD]);
        run.status(0)
            .fact_is("removed:20261001000000", "release")
            .fact_is("removed:venv:aaaa", "venv")
            .fact_is("unlocked", "1");
        assert_eq!(run.fact(&format!("removed:{OLD}")), None, "{run:?}");
        assert_eq!(run.fact("removed:venv:bbbb"), None, "{run:?}");
        assert!(!host.d("releases/20261001000000").exists());
        assert!(host.d(&format!("releases/{OLD}/code.py")).exists());
        assert!(host.d("venvs/bbbb").exists());
        assert!(!host.d(".shipit/lock").exists());
        // Nothing chosen is said too.
        host.lock();
        host.step("step_remove", &[]).status(0);
        assert_eq!(
            host.log(),
            ["prune removed 20261001000000", "prune removed nothing"]
        );
    });
}

/// `current` written absolute (as Capistrano writes it, or with a trailing slash) is still
/// `current`: removing it was a bug.
#[test]
fn remove_never_takes_current_however_its_link_is_written() {
    each_shell(|host| {
        host.release_with_venv(OLD, "live", "bbbb", 10);
        for target in [
            host.d(&format!("releases/{OLD}"))
                .to_str()
                .unwrap()
                .to_string(),
            format!("releases/{OLD}/"),
        ] {
            host.lock();
            host.current(&target);
            let run = host.step("step_remove", &[OLD]);
            run.status(0);
            assert_eq!(run.fact(&format!("removed:{OLD}")), None, "{run:?}");
            assert!(
                host.d(&format!("releases/{OLD}/code.py")).exists(),
                "{target}"
            );
            assert!(host.d("venvs/bbbb").exists(), "{target}");
        }
    });
}

#[test]
fn remove_refuses_once_the_lock_is_no_longer_ours() {
    each_shell(|host| {
        host.lock();
        host.release_with_venv(OLD, "good", "aaaa", 10);
        host.set("TOKEN", "a broken run");
        host.step("step_remove", &[OLD])
            .status(1)
            .fact_is("lock_lost", "1");
        assert!(host.d(&format!("releases/{OLD}/code.py")).exists());
        assert!(host.d("venvs/aaaa").exists());
        assert!(host.d(".shipit/lock/info").exists());
        assert!(host.log().is_empty(), "{:?}", host.log());
    });
}

/// The host's python3 (`PY`): a stub answering `-V` with `version`, whose venv and ensurepip
/// modules import.
fn python3(host: &Host, version: &str) {
    host.stub(
        "python3",
        &format!("case $1 in -V) echo '{version}' ;; -c) exit 0 ;; esac"),
    );
}

/// nginx managed, its site to go at `etc/nginx/hello.conf`, checked with `nginx -t`.
fn managed_nginx(host: &mut Host) {
    let site = host.path("etc/nginx/hello.conf");
    std::fs::create_dir_all(site.parent().unwrap()).unwrap();
    host.set("NGINX", "1")
        .set("SITE", site.to_str().unwrap())
        .set("NGINX_TEST", "nginx -t");
}

#[test]
fn check_of_a_fresh_host_reports_every_check_and_writes_nothing() {
    each_shell(|host| {
        let parent = host.path("srv").parent().unwrap().to_path_buf();
        host.set("D", host.path("srv/hello").to_str().unwrap());
        python3(host, "Python 3.12.1");
        let run = host.step("step_check", &[]);
        run.status(0)
            .fact_is("check:lock", "ok free")
            .fact_is(
                "check:uv",
                "ok not installed: virtualenvs are built with pip",
            )
            .fact_is(
                "check:app",
                "skip no process manager configured: shipit starts no app server",
            )
            .fact_is("check:nginx", "skip nginx is not managed by shipit")
            .fact_is("check:shared", "skip no shared_files")
            .fact_is("check:django", "skip nothing deployed yet")
            .fact_is("check:allowed_hosts", "skip nothing deployed yet");
        let deploy_to = run.fact("check:deploy_to").unwrap();
        assert!(
            deploy_to.starts_with(&format!(
                "ok {} does not exist yet; ",
                host.path("srv/hello").display()
            )) && deploy_to.ends_with(&format!(" can create it in {}", parent.display())),
            "{run:?}"
        );
        assert_eq!(
            run.fact("check:python").unwrap(),
            format!("ok {} (Python 3.12.1)", host.path("bin/python3").display())
        );
        assert!(
            run.fact("check:disk").unwrap().starts_with("ok "),
            "{run:?}"
        );
        assert!(!host.path("srv").exists(), "{:?}", host.shell);
    });
}

#[test]
fn check_reports_what_is_wrong_and_still_succeeds() {
    use std::os::unix::fs::PermissionsExt;
    each_shell(|host| {
        std::fs::set_permissions(host.d("releases"), std::fs::Permissions::from_mode(0o555))
            .unwrap();
        host.write(
            host.d(".shipit/lock/info"),
            "token=other\nby=bob@desk\nsince=2026-11-22T00:00:00Z\nop=deploy\nrelease=1\nholder_pid=1\nholder_start=0\n",
        );
        host.set("PY", "/nonexistent/python3")
            .set("INSTALLER", "uv");
        managed_nginx(host);
        host.stub(
            "nginx",
            "echo 'nginx: [emerg] unknown directive \"listn\" in /etc/nginx/sites/hello.conf:2' >&2\necho 'nginx: configuration file /etc/nginx/nginx.conf test failed' >&2\nexit 1",
        );
        host.stub(
            "df",
            "printf 'Filesystem 1024-blocks Used Available Capacity Mounted on\\n/dev/sda1 1000000 999000 1000 100%% /\\n'",
        );
        host.write(host.d("shared/.env"), "");
        live(
            host,
            "case $1 in\n-c) echo \"Host $4 is NOT accepted by ALLOWED_HOSTS = ['example.com']\"; exit 1 ;;\n*) echo 'SystemCheckError: System check identified some issues:'; echo 'ERRORS:'; echo '?: (security.E001) SECRET_KEY is missing.'; exit 1 ;;\nesac",
        );
        let d = host.d("");
        let run = host.step("step_check", &[".env", "conf/local.py"]);
        run.status(0)
            .fact_is(
                "check:lock",
                "fail left behind by bob@desk since 2026-11-22T00:00:00Z, deploy 1; that run is gone",
            )
            .fact_is(
                "check:python",
                &format!(
                    "fail python /nonexistent/python3 is not installed (not found on PATH={}:/usr/bin:/bin:{}/.local/bin)",
                    host.path("bin").display(),
                    host.path("home").display()
                ),
            )
            .fact_is("check:uv", "fail installer = uv, but uv is not installed")
            .fact_is(
                "check:nginx",
                "fail `nginx -t` failed: nginx: [emerg] unknown directive \"listn\" in /etc/nginx/sites/hello.conf:2 nginx: configuration file /etc/nginx/nginx.conf test failed",
            )
            .fact_is(
                "check:shared",
                &format!("fail missing in {}/shared: conf/local.py", d.display()),
            )
            .fact_is(
                "check:django",
                "fail releases/20261101000000: SystemCheckError: System check identified some issues: ERRORS:",
            )
            .fact_is(
                "check:allowed_hosts",
                "fail Host localhost is NOT accepted by ALLOWED_HOSTS = ['example.com']",
            );
        let deploy_to = run.fact("check:deploy_to").unwrap();
        assert!(
            deploy_to.starts_with(&format!(
                "fail {}/releases is not writable by ",
                d.display()
            )),
            "{run:?}"
        );
        assert!(
            run.fact("check:disk")
                .unwrap()
                .starts_with("fail only 0 MiB free in "),
            "{run:?}"
        );
        assert!(
            run.fact("check:disk")
                .unwrap()
                .ends_with("; a release and its virtualenv need about 256 MiB"),
            "{run:?}"
        );
        std::fs::set_permissions(host.d("releases"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    });
}

#[test]
fn check_passes_a_host_ready_to_deploy() {
    each_shell(|host| {
        let versioned = host.path("bin/python3.12");
        host.script(&versioned, "echo 'Python 3.12.7'");
        host.stub(
            "uv",
            &format!(
                "case $1 in --version) echo 'uv 0.5.0' ;; python) echo {} ;; esac",
                versioned.display()
            ),
        );
        host.set("PY", "3.12").set("INSTALLER", "uv");
        managed_nginx(host);
        host.stub("nginx", "exit 0");
        host.write(host.d("shared/.env"), "");
        host.write(host.d("shared/conf/local.py"), "");
        live(
            host,
            "case $1 in\n-c) echo \"Host $4 is accepted by ALLOWED_HOSTS = ['$4']\" ;;\n*) printf 'System check identified some issues:\\n\\nWARNINGS:\\n?: (security.W004) You have not set SECURE_HSTS_SECONDS.\\n?: (security.W008) SECURE_SSL_REDIRECT is not True.\\n\\nSystem check identified 2 issues (0 silenced).\\n' ;;\nesac",
        );
        let run = host.step("step_check", &[".env", "conf/local.py"]);
        run.status(0)
            .fact_is(
                "check:python",
                &format!("ok python 3.12 is {} (Python 3.12.7)", versioned.display()),
            )
            .fact_is(
                "check:uv",
                &format!("ok {} (uv 0.5.0)", host.path("bin/uv").display()),
            )
            .fact_is("check:nginx", "ok `nginx -t` passed")
            .fact_is(
                "check:shared",
                &format!("ok all 2 present in {}/shared", host.d("").display()),
            )
            .fact_is(
                "check:django",
                "ok releases/20261101000000: System check identified 2 issues (0 silenced). warnings: security.W004 security.W008 ",
            )
            .fact_is(
                "check:allowed_hosts",
                "ok Host localhost is accepted by ALLOWED_HOSTS = ['localhost']",
            );
        assert!(
            run.fact("check:deploy_to")
                .unwrap()
                .starts_with(&format!("ok {} is writable by ", host.d("").display())),
            "{run:?}"
        );
        assert_eq!(
            host.calls("live-python")[0],
            "manage.py check --deploy",
            "{:?}",
            host.shell
        );
    });
}

#[test]
fn check_tells_a_held_lock_from_a_running_and_a_dead_one() {
    each_shell(|host| {
        let info = "token=other\nby=bob@desk\nsince=2026-11-22T00:00:00Z\nop=deploy\nrelease=1\n";
        host.write(
            host.d(".shipit/lock/info"),
            &format!("{info}{}", super::lock::live_holder()),
        );
        host.step("step_check", &[]).fact_is(
            "check:lock",
            "fail held by bob@desk since 2026-11-22T00:00:00Z, deploy 1, and that run is still going",
        );
        host.write(
            host.d(".shipit/lock/info"),
            &format!("{info}held=1\nmessage=db maintenance\n"),
        );
        host.step("step_check", &[]).fact_is(
            "check:lock",
            "fail held by bob@desk since 2026-11-22T00:00:00Z, held: db maintenance (`shipit lock release` frees it)",
        );
    });
}

/// An nginx site that knows maintenance mode.
fn maintained_site(host: &mut Host) {
    let site = host.path("etc/nginx/hello.conf");
    host.set("NGINX", "1")
        .set("SITE", site.to_str().unwrap())
        .set("OP", "maintenance");
    host.write(
        &site,
        &format!(
            "if (-f {}/.shipit/maintenance.html) {{ return 503; }}\n",
            host.d("").display()
        ),
    );
}

#[test]
fn maintenance_goes_on_in_two_steps_and_off_again() {
    use std::os::unix::fs::PermissionsExt;
    each_shell(|host| {
        maintained_site(host);
        let page = host.d(".shipit/maintenance.html");
        // "<h1>Back soon</h1>\n", written world-readable whatever the host's umask.
        host.run("umask 077\nshipit_step maintenance-prepare step_maintenance_prepare PGgxPkJhY2sgc29vbjwvaDE+Cg==")
            .status(0);
        assert!(!page.exists());
        host.step("step_maintenance_on", &[])
            .status(0)
            .says("maintenance mode on: nginx answers 503 with ")
            .says("except on /");
        assert_eq!(
            std::fs::read_to_string(&page).unwrap(),
            "<h1>Back soon</h1>\n"
        );
        assert_eq!(
            std::fs::metadata(&page).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert!(!host.d(".shipit/maintenance.html.next").exists());
        host.step("step_maintenance_off", &[])
            .status(0)
            .says("maintenance mode off");
        assert!(!page.exists());
        host.step("step_maintenance_off", &[])
            .status(0)
            .says("maintenance mode was not on");
        assert_eq!(host.log(), ["maintenance on", "maintenance off"]);
    });
}

#[test]
fn maintenance_needs_a_site_that_knows_it() {
    each_shell(|host| {
        host.step("step_maintenance_prepare", &["cGFnZQ=="])
            .status(1)
            .says("this target has no [nginx]");
        maintained_site(host);
        let site = host.path("etc/nginx/hello.conf");
        host.write(&site, "server { listen 80; }\n");
        host.step("step_maintenance_prepare", &["cGFnZQ=="])
            .status(1)
            .says("does not know maintenance mode");
        std::fs::remove_file(&site).unwrap();
        host.step("step_maintenance_prepare", &["cGFnZQ=="])
            .status(1)
            .says("yet: deploy first");
        assert!(!host.d(".shipit/maintenance.html.next").exists());
    });
}

#[test]
fn maintenance_is_not_turned_on_without_its_page() {
    each_shell(|host| {
        maintained_site(host);
        host.stub(
            "base64",
            "echo 'base64: write error: No space left on device' >&2; exit 1",
        );
        host.step("step_maintenance_prepare", &["cGFnZQ=="])
            .status(1)
            .says("No space left on device");
        std::fs::remove_file(host.d(".shipit/maintenance.html.next")).ok();
        host.step("step_maintenance_on", &[])
            .status(1)
            .never_says("maintenance mode on");
        assert!(!host.d(".shipit/maintenance.html").exists());
        assert!(host.log().is_empty(), "{:?}", host.log());
    });
}

#[test]
fn require_current_refuses_a_host_where_nothing_is_live() {
    each_shell(|host| {
        host.step("step_require_current", &[])
            .status(1)
            .says("(no current release)");
        host.current(&format!("releases/{ID}"));
        host.step("step_require_current", &[]).status(0);
    });
}

#[test]
fn run_runs_the_command_in_the_live_release_with_its_env_and_venv() {
    each_shell(|host| {
        live(host, "echo \"the venv's python: $*\"");
        let old = host.d(&format!("releases/{OLD}"));
        host.write(old.join(".shipit/env"), "GREETING='hello there'\n");
        host.write(old.join(".shipit/release"), &format!("{OLD}\n"));
        host.step(
            "step_run",
            &["echo \"$GREETING in $(pwd) as $SHIPIT_RELEASE with $DJANGO_SETTINGS_MODULE\"; python -V"],
        )
        .status(0)
        .says(&format!(
            "hello there in {} as 20261101000000 with hello.settings.selected",
            old.display()
        ))
        .says("the venv's python: -V");
    });
}

#[test]
fn run_is_a_plain_shell_ending_with_the_commands_status() {
    each_shell(|host| {
        live(host, "");
        host.step("step_run", &["false; echo \"after [$UNSET]\"; exit 7"])
            .status(7)
            .says("after []");
        // Nothing live: nothing runs.
        host.current("releases/20261001000000");
        host.step("step_run", &["echo ran"])
            .status(1)
            .says("(no current release)")
            .never_says("\nran");
    });
}

/// This run's release (a rollback's target): its venv's python a stub logged as `python`.
fn target(host: &Host, body: &str) {
    host.release(ID, "rolled_back");
    host.stub_at(host.r(".venv/bin/python"), "python", body);
}

#[test]
fn migrations_are_asked_of_the_live_release_and_the_target() {
    each_shell(|host| {
        live(
            host,
            "printf '[X]  app.0001_initial\\n[X]  app.0002_more\\n[ ]  app.0003_new\\n'",
        );
        target(
            host,
            "printf '[X]  app.0001_initial\\n[ ]  other.0001_initial\\n'",
        );
        let run = host.step("step_migrations", &[]);
        run.status(0)
            .fact_is("applied:app.0001_initial", "1")
            .fact_is("applied:app.0002_more", "1")
            .fact_is("known:000001", "app.0001_initial")
            .fact_is("known:000002", "other.0001_initial");
        assert_eq!(run.fact("applied:app.0003_new"), None, "{run:?}");
        assert_eq!(run.fact("known:000003"), None, "{run:?}");
        assert_eq!(
            host.calls("live-python"),
            ["manage.py showmigrations --plan"]
        );
        assert_eq!(host.calls("python"), ["manage.py showmigrations --plan"]);
    });
}

#[test]
fn migrations_are_taken_from_the_plans_recorded_while_the_database_is_unchanged() {
    each_shell(|host| {
        host.lock();
        // The database as the live release left it: `applied=7`; then changed by hand.
        live(
            host,
            "case $1 in\n-c) cat \"$(dirname \"$0\")/../../db\" > \"$5\" ;;\n*) printf '[X]  app.0001_initial\\n' ;;\nesac",
        );
        let old = host.d(&format!("releases/{OLD}"));
        host.write(old.join("db"), "applied=7\n");
        host.write(old.join(".shipit/migrated"), "migrations=abc\napplied=7\n");
        host.write(
            old.join(".shipit/showmigrations"),
            "[X]  app.0001_initial\n[X]  app.0002_more\n",
        );
        target(host, "");
        host.write(host.r(".shipit/showmigrations"), "[X]  app.0001_initial\n");
        let run = host.step("step_migrations", &[]);
        run.status(0)
            .says("migrations: as recorded by 20261101000000 and 20261122010320")
            .fact_is("applied:app.0002_more", "1")
            .fact_is("known:000001", "app.0001_initial");
        assert_eq!(run.fact("known:000002"), None, "{run:?}");
        let showmigrations = "manage.py showmigrations --plan".to_string();
        assert!(!host.calls("live-python").contains(&showmigrations));
        assert!(host.calls("python").is_empty(), "{:?}", host.shell);
        host.write(old.join("db"), "applied=8\n");
        let run = host.step("step_migrations", &[]);
        run.status(0)
            .never_says("as recorded")
            .fact_is("applied:app.0001_initial", "1");
        assert_eq!(run.fact("applied:app.0002_more"), None, "{run:?}");
        assert!(host.calls("live-python").contains(&showmigrations));
    });
}

#[test]
fn migrations_are_read_through_the_target_when_the_live_release_is_gone() {
    each_shell(|host| {
        host.current("releases/20261001000000");
        target(
            host,
            "case $1 in\n-c) printf '[X]  app.0001_initial\\n' ;;\n*) printf '[X]  app.0001_initial\\n[ ]  app.0002_x\\n' ;;\nesac",
        );
        host.step("step_migrations", &[])
            .status(0)
            .says("current's release is gone: reading the applied migrations through release 20261122010320")
            .fact_is("applied:app.0001_initial", "1")
            .fact_is("known:000002", "app.0002_x");
    });
}

#[test]
fn migrations_fail_saying_which_release_could_not_answer() {
    each_shell(|host| {
        live(
            host,
            "echo 'django.db.utils.OperationalError: could not connect to server'; exit 1",
        );
        target(
            host,
            "echo 'ModuleNotFoundError: No module named hello'; exit 1",
        );
        host.step("step_migrations", &[])
            .status(1)
            .says("could not connect to server")
            .says("showmigrations failed in the live release");
        live(host, "printf '[X]  app.0001_initial\\n'");
        host.step("step_migrations", &[])
            .status(1)
            .says("No module named hello")
            .says("showmigrations failed in release 20261122010320");
        host.current("releases/20261001000000");
        host.step("step_migrations", &[])
            .status(1)
            .says("cannot read the applied migrations through release 20261122010320");
    });
}

#[test]
fn unapply_migrates_back_with_the_live_releases_code_and_env() {
    each_shell(|host| {
        host.lock();
        live(host, "echo \"in $(pwd -P) with $DATABASE_URL\"");
        host.write(
            host.d(&format!("releases/{OLD}/.shipit/env")),
            "DATABASE_URL=sqlite:///db.sqlite3\n",
        );
        host.step("step_unapply", &["app", "0001", "other", "zero"])
            .status(0)
            .says(&format!(
                "in {}/releases/20261101000000 with sqlite:///db.sqlite3",
                host.d("").display()
            ));
        assert_eq!(
            host.calls("live-python"),
            [
                "manage.py migrate app 0001 --noinput",
                "manage.py migrate other zero --noinput"
            ]
        );
    });
}

#[test]
fn a_failing_unapply_stops_and_a_lost_lock_unapplies_nothing() {
    each_shell(|host| {
        host.lock();
        live(
            host,
            "echo 'django.db.migrations.exceptions.IrreversibleError: Operation RunPython is not reversible'; exit 1",
        );
        host.step("step_unapply", &["app", "0001", "other", "zero"])
            .status(1)
            .says("IrreversibleError");
        assert_eq!(
            host.calls("live-python"),
            ["manage.py migrate app 0001 --noinput"]
        );
        host.set("TOKEN", "a broken run");
        host.step("step_unapply", &["app", "0001"])
            .status(1)
            .fact_is("lock_lost", "1");
        assert_eq!(host.calls("live-python").len(), 1);
    });
}

#[test]
fn logs_need_a_live_release_and_a_process_manager() {
    each_shell(|host| {
        host.step("step_logs", &["web", "10", "0", ""])
            .status(1)
            .says(&format!(
                "nothing is deployed under {}\n",
                host.d("").display()
            ));
        host.current(&format!("releases/{ID}"));
        host.step("step_logs", &["web", "10", "0", ""])
            .status(1)
            .says("no process manager is configured: shipit runs no app server here");
    });
}

#[test]
fn logs_under_supervisor_tail_the_files_the_live_releases_programs_name() {
    each_shell(|host| {
        super::pm::supervisor(host, "");
        let log = |name: &str| {
            let path = host.path(name);
            path.to_str().unwrap().to_string()
        };
        let live = format!("hello.production.{OLD}");
        host.write(
            host.d(&format!("releases/{OLD}/.shipit/supervisor.conf")),
            &format!(
                "[program:{live}]\nstdout_logfile={}\nstderr_logfile=NONE\n\
                 [program:{live}.worker]\nstdout_logfile = {}\nstderr_logfile={}\n",
                log("web.log"),
                log("worker.out"),
                log("worker.err")
            ),
        );
        host.write(host.path("web.log"), "GET / 200\nGET /a 200\nGET /b 500\n");
        host.write(host.path("worker.out"), "task a ok\ntask b ok\n");
        host.write(host.path("worker.err"), "boom in task c\n");
        // This run's release is not live: its programs' logs are not the ones shown.
        host.write(
            host.r(".shipit/supervisor.conf"),
            &format!(
                "[program:hello.production.{ID}]\nstdout_logfile={}\n",
                log("new.log")
            ),
        );
        host.write(host.path("new.log"), "GET / 500 from the new release\n");
        host.current(&format!("releases/{OLD}"));
        host.step("step_logs", &["web", "10", "0", " 5[0-9]{2}$"])
            .status(0)
            .says("GET /b 500\n")
            .never_says("GET /a")
            .never_says("new release");
        host.step("step_logs", &["worker", "1", "0", ""])
            .status(0)
            .says("task b ok\nboom in task c\n")
            .never_says("task a");
        host.step("step_logs", &["mailer", "10", "0", ""])
            .status(1)
            .says("no process `mailer` in this target; its processes: web worker \n");
    });
}

#[test]
fn logs_under_systemd_read_the_journal_of_the_processes_units() {
    each_shell(|host| {
        super::pm::systemd(host, "");
        super::pm::release_units(host, OLD, &["web", "worker"], &["beat"]);
        host.current(&format!("releases/{OLD}"));
        host.write(
            host.path("journal"),
            "2026-11-22T01:03:20+0000 web1 gunicorn[7]: GET / 200\n\
             2026-11-22T01:03:21+0000 web1 gunicorn[7]: GET /b 500\n",
        );
        host.step("step_logs", &["web", "20", "0", "500$"])
            .status(0)
            .says("gunicorn[7]: GET /b 500\n")
            .never_says("GET / 200");
        host.step("step_logs", &["mailer", "20", "0", ""])
            .status(1)
            .says("no process `mailer` in this target; its processes: beat web worker \n");
        assert_eq!(
            host.calls("journalctl"),
            ["-u hello.production.web@*.service -u hello.production.web.*@*.service -n 20 --no-pager -q -o short-iso"]
        );
    });
}
