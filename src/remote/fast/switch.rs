//! Switching and what ends a run: the nginx site installed and checked, `current` renamed over,
//! nginx reloaded, the live release probed over its socket, the switch committed, releases
//! pruned, and a release abandoned because of another host.

use super::{each_shell, App, Host};

pub(super) const COVERS: &[&str] = &[
    "step_nginx_check",
    "step_switch",
    "step_reload_nginx",
    "step_health_check",
    "step_finish",
    "step_prune",
    "step_abort",
    "step_await_switch",
];

/// The release live before this run.
const OLD: &str = "20261101000000";

/// This run's release.
const ID: &str = "20261122010320";

/// The nginx site at `etc/nginx/hello.conf`, checked with `nginx -t` and reloaded with
/// `nginx -s reload` (a stub running `body`), this run holding the lock.
fn nginx(host: &mut Host, body: &str) {
    let site = host.path("etc/nginx/hello.conf");
    std::fs::create_dir_all(site.parent().unwrap()).unwrap();
    host.set("NGINX", "1")
        .set("SITE", site.to_str().unwrap())
        .set("NGINX_TEST", "nginx -t")
        .set("NGINX_RELOAD", "nginx -s reload");
    host.stub("nginx", body);
    host.lock();
}

fn site(host: &Host) -> Option<String> {
    std::fs::read_to_string(host.path("etc/nginx/hello.conf")).ok()
}

#[test]
fn nginx_check_leaves_an_unchanged_site_alone() {
    each_shell(|host| {
        nginx(host, "exit 0");
        host.step("step_nginx_check", &[])
            .status(0)
            .says("keeps no nginx site; nginx is left as it is");
        host.write(host.r(".shipit/nginx.conf"), "server { listen 80; }\n");
        host.write(host.path("etc/nginx/hello.conf"), "server { listen 80; }\n");
        host.step("step_nginx_check", &[])
            .status(0)
            .says("nginx site unchanged");
        assert!(host.calls("nginx").is_empty(), "{:?}", host.shell);
        assert!(!host.d(".shipit/nginx-site.changed").exists());
    });
}

#[test]
fn a_new_site_is_installed_checked_and_the_previous_one_kept() {
    each_shell(|host| {
        nginx(host, "exit 0");
        host.write(host.r(".shipit/nginx.conf"), "server { listen 80; }\n");
        host.step("step_nginx_check", &[])
            .status(0)
            .says("nginx site installed at ");
        assert_eq!(site(host).unwrap(), "server { listen 80; }\n");
        assert_eq!(host.calls("nginx"), ["-t"]);
        assert!(host.d(".shipit/nginx-site.changed").exists());
        assert!(!host.d(".shipit/nginx-site.previous").exists());
        // A changed site: the one it replaces is kept for a switch back.
        host.write(host.r(".shipit/nginx.conf"), "server { listen 8080; }\n");
        host.step("step_nginx_check", &[]).status(0);
        assert_eq!(site(host).unwrap(), "server { listen 8080; }\n");
        assert_eq!(
            std::fs::read_to_string(host.d(".shipit/nginx-site.previous")).unwrap(),
            "server { listen 80; }\n"
        );
        // Only the site is in its directory: no temporary file left behind.
        let names: Vec<_> = std::fs::read_dir(host.path("etc/nginx"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["hello.conf"], "{:?}", host.shell);
    });
}

#[test]
fn a_rejected_site_is_replaced_by_the_previous_one() {
    each_shell(|host| {
        nginx(
            host,
            "echo 'nginx: [emerg] unknown directive \"listn\"' >&2; exit 1",
        );
        host.write(host.r(".shipit/nginx.conf"), "server { listn 80; }\n");
        host.write(host.path("etc/nginx/hello.conf"), "server { listen 80; }\n");
        host.step("step_nginx_check", &[])
            .status(1)
            .says("[emerg] unknown directive")
            .says("nginx rejected the new site");
        assert_eq!(site(host).unwrap(), "server { listen 80; }\n");
        assert!(!host.d(".shipit/nginx-site.changed").exists());
        assert!(!host.d(".shipit/nginx-site.previous").exists());
        // A first site that nginx rejects is removed: nginx is as it was.
        std::fs::remove_file(host.path("etc/nginx/hello.conf")).unwrap();
        host.step("step_nginx_check", &[]).status(1);
        assert_eq!(site(host), None, "{:?}", host.shell);
    });
}

#[test]
fn nginx_check_on_a_full_disk_or_a_lost_lock_changes_nothing() {
    each_shell(|host| {
        nginx(host, "exit 0");
        host.write(host.r(".shipit/nginx.conf"), "server { listen 8080; }\n");
        host.write(host.path("etc/nginx/hello.conf"), "server { listen 80; }\n");
        host.stub(
            "cp",
            "echo \"cp: error writing '$3': No space left on device\"; exit 1",
        );
        host.step("step_nginx_check", &[])
            .status(1)
            .says("No space left on device");
        assert_eq!(site(host).unwrap(), "server { listen 80; }\n");
        assert!(!host.d(".shipit/nginx-site.changed").exists());
        std::fs::remove_file(host.path("bin/cp")).unwrap();
        host.set("TOKEN", "a broken run");
        host.step("step_nginx_check", &[])
            .status(1)
            .fact_is("lock_lost", "1");
        assert_eq!(site(host).unwrap(), "server { listen 80; }\n");
        assert!(host.calls("nginx").is_empty(), "{:?}", host.shell);
    });
}

#[test]
fn the_site_serves_static_files_from_the_shared_store_and_media_through_current() {
    each_shell(|host| {
        nginx(host, "exit 0");
        let d = host.d("");
        let (statics, media) = (host.r("static"), host.r("media"));
        host.write(
            host.r(".shipit/django"),
            &format!(
                "STATIC_URL=/static/\nSTATIC_ROOT={}\nMEDIA_URL=/m|a&b/\nMEDIA_ROOT={}\n",
                statics.display(),
                media.display()
            ),
        );
        host.write(
            host.r(".shipit/nginx.conf"),
            "server {\n  location @@STATIC_URL@@ { alias @@STATIC_ROOT@@/; }\n  location @@MEDIA_URL@@ { alias @@MEDIA_ROOT@@/; }\n}\n",
        );
        host.step("step_nginx_check", &[]).status(0);
        assert_eq!(
            site(host).unwrap(),
            format!(
                "server {{\n  location /static/ {{ alias {}/shared/.static/; }}\n  location /m|a&b/ {{ alias {}/current/media/; }}\n}}\n",
                d.display(),
                d.display()
            )
        );
        // Media on another host: nginx serves none.
        host.write(
            host.r(".shipit/django"),
            &format!(
                "STATIC_URL=/static/\nSTATIC_ROOT={}\nMEDIA_URL=https://cdn.example.com/\nMEDIA_ROOT=\n",
                statics.display()
            ),
        );
        host.step("step_nginx_check", &[]).status(0);
        assert_eq!(
            site(host).unwrap(),
            format!(
                "server {{\n  location /static/ {{ alias {}/shared/.static/; }}\n}}\n",
                d.display()
            )
        );
    });
}

#[test]
fn switch_renames_current_to_the_release() {
    each_shell(|host| {
        host.step("step_switch", &[])
            .status(0)
            .says("current -> releases/20261122010320 (was nothing)");
        assert_eq!(
            host.current_target().as_deref(),
            Some("releases/20261122010320")
        );
        host.release(OLD, "live");
        host.current(&format!("releases/{OLD}"));
        host.step("step_switch", &[])
            .status(0)
            .says("(was releases/20261101000000)");
        assert_eq!(
            host.current_target().as_deref(),
            Some("releases/20261122010320")
        );
        // Nothing but `current` is left of the rename.
        let links: Vec<_> = std::fs::read_dir(host.d(""))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.contains("current"))
            .collect();
        assert_eq!(links, ["current"], "{:?}", host.shell);
    });
}

#[test]
fn switch_makes_the_live_releases_static_files_win_in_the_shared_store() {
    use std::os::unix::fs::MetadataExt;
    each_shell(|host| {
        host.write(
            host.r(".shipit/django"),
            &format!("STATIC_ROOT={}\n", host.r("static").display()),
        );
        host.write(host.r("static/css/app.css"), "new");
        // The previous release's file of the same name.
        host.write(host.d("shared/.static/css/app.css"), "old");
        host.write(host.d("shared/.static/css/old.css"), "still linked");
        host.step("step_switch", &[]).status(0);
        let ino = |path| std::fs::metadata(path).unwrap().ino();
        assert_eq!(
            ino(host.d("shared/.static/css/app.css")),
            ino(host.r("static/css/app.css")),
            "{:?}",
            host.shell
        );
        assert!(host.d("shared/.static/css/old.css").exists());
    });
}

#[test]
fn a_switch_that_cannot_be_made_leaves_current_as_it_was() {
    each_shell(|host| {
        host.release(OLD, "live");
        host.current(&format!("releases/{OLD}"));
        host.stub(
            "ln",
            "echo \"ln: failed to create symbolic link '$3': No space left on device\"; exit 1",
        );
        host.step("step_switch", &[])
            .status(1)
            .says("No space left on device")
            .never_says("current -> ");
        assert_eq!(
            host.current_target().as_deref(),
            Some("releases/20261101000000")
        );
        // A `current` that is a directory is not replaced.
        std::fs::remove_file(host.path("bin/ln")).unwrap();
        std::fs::remove_file(host.d("current")).unwrap();
        host.write(host.d("current/index.html"), "hand-made");
        host.step("step_switch", &[]).status(1);
        assert!(host.d("current/index.html").is_file());
    });
}

#[test]
fn nginx_is_reloaded_only_when_the_site_changed() {
    each_shell(|host| {
        nginx(host, "exit 0");
        host.step("step_reload_nginx", &[])
            .status(0)
            .says("nginx site unchanged; no reload needed");
        assert!(host.calls("nginx").is_empty(), "{:?}", host.shell);
        host.write(host.d(".shipit/nginx-site.changed"), "");
        host.step("step_reload_nginx", &[])
            .status(0)
            .says("nginx reloaded");
        assert_eq!(host.calls("nginx"), ["-s reload"]);
    });
}

#[test]
fn a_failed_reload_fails_the_step() {
    each_shell(|host| {
        nginx(
            host,
            "echo 'nginx: [error] invalid PID number \"\" in \"/run/nginx.pid\"'; exit 1",
        );
        host.write(host.d(".shipit/nginx-site.changed"), "");
        host.step("step_reload_nginx", &[])
            .status(1)
            .says("invalid PID number")
            .never_says("nginx reloaded");
    });
}

/// An app server on the live release's socket, reached through `current`.
fn live_app(host: &Host, answers: &[&str]) -> App {
    host.current(&format!("releases/{ID}"));
    App::serve(host, answers)
}

/// The release's venv python is the host's python3 (the probe is real), and `sleep` between
/// tries is a stub, so a retry costs no second.
fn probing(host: &mut Host) {
    std::fs::create_dir_all(host.r(".venv/bin")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/python3", host.r(".venv/bin/python")).unwrap();
    host.stub("sleep", "");
}

#[test]
fn health_check_asks_the_live_release_over_its_socket() {
    each_shell(|host| {
        probing(host);
        host.set("HEALTH_PATH", "/up/?full=1")
            .set("HEALTH_HOST", "www.example.com");
        let app = live_app(host, &["HTTP/1.0 200 OK"]);
        host.step("step_health_check", &[])
            .status(0)
            .says("health check after the switch: GET /up/?full=1 -> HTTP/1.0 200 OK");
        assert_eq!(
            app.requests(),
            ["GET /up/?full=1 HTTP/1.0\r\nHost: www.example.com\r\n\r\n"]
        );
        assert!(host.calls("sleep").is_empty(), "{:?}", host.shell);
    });
}

#[test]
fn a_failed_probe_is_tried_again_a_second_later() {
    each_shell(|host| {
        probing(host);
        let app = live_app(host, &["HTTP/1.0 502 Bad Gateway", "HTTP/1.0 200 OK"]);
        host.step("step_health_check", &[])
            .status(0)
            .says("-> HTTP/1.0 200 OK");
        assert_eq!(app.requests().len(), 2);
        assert_eq!(host.calls("sleep"), ["1"]);
    });
}

#[test]
fn health_check_fails_on_an_error_or_another_status_than_asked() {
    each_shell(|host| {
        probing(host);
        host.set("HEALTH_RETRIES", "1");
        let app = live_app(host, &["HTTP/1.0 500 Internal Server Error"]);
        host.step("step_health_check", &[])
            .status(1)
            .says("release 20261122010320 failed its health check after the switch: GET / -> HTTP/1.0 500 Internal Server Error");
        drop(app);
        std::fs::remove_file(host.r(".shipit/app.sock")).unwrap();
        host.set("HEALTH_STATUS", "200");
        let _app = live_app(host, &["HTTP/1.0 302 Found", "HTTP/1.0 302 Found"]);
        host.step("step_health_check", &[])
            .status(1)
            .says("-> HTTP/1.0 302 Found");
        host.set("HEALTH_STATUS", "302");
        host.step("step_health_check", &[])
            .status(0)
            .says("-> HTTP/1.0 302 Found");
        assert!(host.calls("sleep").is_empty(), "{:?}", host.shell);
    });
}

/// By default any 2xx or 3xx is healthy, the Host header is the first of the release's
/// ALLOWED_HOSTS (from its settings answer), and a 4xx fails at once with the hint.
#[test]
fn health_check_defaults_to_2xx_3xx_and_the_releases_first_allowed_host() {
    each_shell(|host| {
        probing(host);
        host.write(host.r(".shipit/django"), "ALLOWED_HOST=app.example.com\n");
        let app = live_app(host, &["HTTP/1.0 302 Found"]);
        host.step("step_health_check", &[])
            .status(0)
            .says("-> HTTP/1.0 302 Found");
        assert_eq!(
            app.requests(),
            ["GET / HTTP/1.0\r\nHost: app.example.com\r\n\r\n"]
        );
        drop(app);
        std::fs::remove_file(host.r(".shipit/app.sock")).unwrap();
        std::fs::remove_file(host.r(".shipit/django")).unwrap();
        let app = live_app(host, &["HTTP/1.0 400 Bad Request"]);
        host.step("step_health_check", &[])
            .status(1)
            .says("failed its health check after the switch: GET / -> HTTP/1.0 400 Bad Request")
            .says("the Host header (localhost) is not in ALLOWED_HOSTS");
        assert_eq!(app.requests().len(), 1);
        assert!(host.calls("sleep").is_empty(), "{:?}", host.shell);
    });
}

#[test]
fn health_check_gives_up_after_its_tries_when_nothing_listens() {
    each_shell(|host| {
        probing(host);
        host.current(&format!("releases/{ID}"));
        host.step("step_health_check", &[])
            .status(1)
            .says("failed its health check after the switch: ")
            .says(".shipit/app.sock: [Errno 2] No such file or directory");
        assert_eq!(host.calls("sleep"), ["1", "1"]);
        // A server that closes without answering is no answer either.
        let app = live_app(host, &[]);
        host.set("HEALTH_RETRIES", "1");
        host.step("step_health_check", &[]).status(1).says("-> ");
        assert_eq!(app.requests().len(), 1);
    });
}

/// The live release `OLD`, a prepared release this run switched to, and what a finish tidies:
/// a deploy of another release that never finished, one rolled back, and nginx's markers.
fn switched(host: &mut Host) {
    host.lock();
    host.release(OLD, "live");
    host.release("20261110000000", "prepared");
    host.release("20261001000000", "rolled_back");
    host.release(ID, "prepared");
    host.current(&format!("releases/{OLD}"));
    host.write(host.d(".shipit/nginx-site.changed"), "");
    host.write(host.d(".shipit/nginx-site.previous"), "server {}\n");
}

#[test]
fn finish_records_the_release_live_and_tidies_up() {
    each_shell(|host| {
        switched(host);
        // Five kept archives, the first the most recently used.
        let now = std::time::SystemTime::now();
        for n in 0..5u64 {
            let path = host.d(&format!(".shipit/archives/{n}.tar.gz"));
            host.write(&path, "");
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(now - std::time::Duration::from_secs(60 * n))
                .unwrap();
        }
        host.run("shipit_step switch step_switch\nshipit_step finish step_finish")
            .status(0)
            .says("marked 20261110000000 failed: a deploy of it never finished");
        assert_eq!(host.state(ID), "live");
        assert_eq!(host.state(OLD), "good");
        assert_eq!(host.state("20261110000000"), "failed");
        assert_eq!(host.state("20261001000000"), "rolled_back");
        assert!(!host.d(".shipit/nginx-site.changed").exists());
        assert!(!host.d(".shipit/nginx-site.previous").exists());
        let mut kept: Vec<_> = std::fs::read_dir(host.d(".shipit/archives"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        kept.sort();
        assert_eq!(kept, ["0.tar.gz", "1.tar.gz", "2.tar.gz"]);
        assert_eq!(host.log(), ["deploy ok"]);
    });
}

#[test]
fn a_rollback_leaves_the_release_it_left_rolled_back_and_a_roll_forward_good() {
    each_shell(|host| {
        host.set("OP", "rollback");
        host.lock();
        host.release(ID, "prepared");
        host.release("20261201000000", "live");
        host.current("releases/20261201000000");
        host.step("step_finish", &[]).status(0);
        assert_eq!(host.state("20261201000000"), "rolled_back");
        assert_eq!(host.state(ID), "live");
        assert_eq!(host.log(), ["rollback ok (from 20261201000000)"]);
        // `rollback --to` a newer release than the live one.
        host.release(OLD, "live");
        host.current(&format!("releases/{OLD}"));
        host.step("step_finish", &[]).status(0);
        assert_eq!(host.state(OLD), "good");
    });
}

/// A `current` another tool wrote absolute: the release it pointed at is still the one left
/// behind (it stayed `live` beside the new one: a bug).
#[test]
fn finish_leaves_the_previous_release_good_when_current_was_absolute() {
    each_shell(|host| {
        switched(host);
        host.current(host.d(&format!("releases/{OLD}")).to_str().unwrap());
        host.run("shipit_step switch step_switch\nshipit_step finish step_finish")
            .status(0);
        assert_eq!(host.state(ID), "live");
        assert_eq!(host.state(OLD), "good");
        assert_eq!(
            host.current_target().as_deref(),
            Some(&*format!("releases/{ID}"))
        );
    });
}

#[test]
fn finish_changes_nothing_once_the_lock_is_no_longer_ours() {
    each_shell(|host| {
        switched(host);
        host.set("TOKEN", "a broken run");
        host.step("step_finish", &[])
            .status(1)
            .fact_is("lock_lost", "1")
            .says("no longer ours");
        assert_eq!(host.state(ID), "prepared");
        assert_eq!(host.state(OLD), "live");
        assert_eq!(host.state("20261110000000"), "prepared");
        assert!(host.d(".shipit/nginx-site.changed").exists());
        assert!(host.log().is_empty(), "{:?}", host.log());
    });
}

#[test]
fn prune_removes_the_chosen_releases_and_venvs_no_release_uses_then_unlocks() {
    each_shell(|host| {
        host.lock();
        host.release_with_venv("20261001000000", "good", "aaaa", 200_000);
        host.release_with_venv("20261101000000", "good", "bbbb", 10);
        host.release_with_venv("20261110000000", "good", "bbbb", 10);
        host.release_with_venv(ID, "good", "cccc", 10);
        host.write(host.d("venvs/orphan/bin/python"), "");
        host.current(&format!("releases/{ID}"));
        let run = host.step("step_prune", &["20261001000000", "20261101000000"]);
        run.status(0)
            .fact_is("removed:20261001000000", "release")
            .fact_is("removed:20261101000000", "release")
            .fact_is("removed:venv:aaaa", "venv")
            .fact_is("removed:venv:orphan", "venv")
            .fact_is("unlocked", "1");
        assert_eq!(run.fact("removed:venv:bbbb"), None, "{run:?}");
        assert_eq!(run.fact("removed:venv:cccc"), None, "{run:?}");
        let freed: u64 = run.fact("freed_kib").unwrap().parse().unwrap();
        assert!(freed >= 195, "{run:?}");
        for gone in [
            "releases/20261001000000",
            "releases/20261101000000",
            "venvs/aaaa",
            "venvs/orphan",
        ] {
            assert!(!host.d(gone).exists(), "{:?} {gone}", host.shell);
        }
        for kept in ["releases/20261110000000", "venvs/bbbb", "venvs/cccc"] {
            assert!(host.d(kept).exists(), "{:?} {kept}", host.shell);
        }
        assert!(host.r("code.py").exists());
        assert!(!host.d(".shipit/lock").exists());
        assert_eq!(host.log(), ["prune removed 20261001000000 20261101000000"]);
    });
}

#[test]
fn prune_deletes_in_place_what_it_cannot_move_to_the_trash() {
    each_shell(|host| {
        host.lock();
        host.release_with_venv(OLD, "good", "aaaa", 10);
        host.stub(
            "mv",
            "echo \"mv: cannot move '$1': No space left on device\" >&2; exit 1",
        );
        host.step("step_prune", &[OLD])
            .status(0)
            .fact_is("removed:20261101000000", "release")
            .fact_is("removed:venv:aaaa", "venv");
        assert!(!host.d(&format!("releases/{OLD}")).exists());
        assert!(!host.d("venvs/aaaa").exists());
    });
}

#[test]
fn prune_refuses_once_the_lock_is_no_longer_ours() {
    each_shell(|host| {
        host.lock();
        host.release_with_venv(OLD, "good", "aaaa", 10);
        host.set("TOKEN", "a broken run");
        let run = host.step("step_prune", &[OLD]);
        run.status(1).fact_is("lock_lost", "1");
        assert_eq!(run.fact("removed:20261101000000"), None, "{run:?}");
        assert!(host.d(&format!("releases/{OLD}")).exists());
        assert!(host.d("venvs/aaaa").exists());
        assert!(host.d(".shipit/lock/info").exists());
        // Ours, nothing chosen: the lock is given back, and the log says nothing.
        host.set("TOKEN", "token");
        host.step("step_prune", &[])
            .status(0)
            .fact_is("unlocked", "1");
        assert!(host.log().is_empty(), "{:?}", host.log());
    });
}

/// A prepared release whose new nginx site replaced `old_site` (none: it was the first).
fn prepared_with_site(host: &mut Host, old_site: Option<&str>) {
    nginx(host, "exit 0");
    host.release(ID, "prepared");
    host.write(
        host.path("etc/nginx/hello.conf"),
        "server { listen 8080; }\n",
    );
    host.write(host.d(".shipit/nginx-site.changed"), "");
    if let Some(old) = old_site {
        host.write(host.d(".shipit/nginx-site.previous"), old);
    }
}

#[test]
fn abort_abandons_the_prepared_release_and_gives_the_lock_back() {
    each_shell(|host| {
        prepared_with_site(host, Some("server { listen 80; }\n"));
        host.step("step_abort", &["web-2 failed to prepare"])
            .status(0)
            .says("release 20261122010320 abandoned: web-2 failed to prepare")
            .fact_is("unlocked", "1");
        assert_eq!(host.state(ID), "failed");
        assert_eq!(site(host).unwrap(), "server { listen 80; }\n");
        assert!(!host.d(".shipit/nginx-site.changed").exists());
        assert!(!host.d(".shipit/lock").exists());
        assert_eq!(host.log(), ["deploy aborted: web-2 failed to prepare"]);
        // A first site is removed.
        prepared_with_site(host, None);
        host.step("step_abort", &["web-2 failed"]).status(0);
        assert_eq!(site(host), None, "{:?}", host.shell);
    });
}

#[test]
fn abort_leaves_everything_when_the_lock_is_no_longer_ours() {
    each_shell(|host| {
        prepared_with_site(host, Some("server { listen 80; }\n"));
        host.set("TOKEN", "a broken run");
        host.step("step_abort", &["web-2 failed"])
            .status(0)
            .says("no longer ours; leaving everything as it is")
            .never_says("abandoned");
        assert_eq!(host.state(ID), "prepared");
        assert_eq!(site(host).unwrap(), "server { listen 8080; }\n");
        assert!(host.d(".shipit/nginx-site.changed").exists());
        assert!(host.d(".shipit/lock/info").exists());
        assert!(host.log().is_empty(), "{:?}", host.log());
    });
}

#[test]
fn abort_after_unapplying_migrates_the_live_schema_forward() {
    each_shell(|host| {
        host.lock();
        host.release(OLD, "live");
        host.current(&format!("releases/{OLD}"));
        host.stub_at(
            host.d(&format!("releases/{OLD}/.venv/bin/python")),
            "live-python",
            "",
        );
        host.set("UNAPPLIED", "1");
        host.step("step_abort", &["web-2 failed"])
            .status(0)
            .says("migrated the live release's schema forward again");
        assert_eq!(host.calls("live-python"), ["manage.py migrate --noinput"]);
        // Nothing unapplied: nothing migrated.
        host.lock();
        host.set("UNAPPLIED", "0");
        host.step("step_abort", &["web-2 failed"]).status(0);
        assert_eq!(host.calls("live-python").len(), 1);
    });
}

#[test]
fn abort_stops_the_background_steps_first() {
    each_shell(|host| {
        host.lock();
        let pid_file = host.path("settings.pid");
        host.stub_at(
            host.r(".venv/bin/python"),
            "python",
            &format!("echo $$ > {}\nexec sleep 30", pid_file.display()),
        );
        host.run(
            "shipit_step background step_background settings step_settings\n\
             while [ ! -s \"$D/../settings.pid\" ]; do sleep 0.01; done\n\
             shipit_step abort step_abort 'web-2 failed'",
        )
        .status(0)
        .says("stopped the background steps: settings")
        .says("abandoned");
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()));
        // Gone, or a zombie waiting for PID 1 to reap it.
        assert!(
            stat.as_deref().map_or(true, |s| s.contains(") Z ")),
            "{:?} {stat:?}",
            host.shell
        );
    });
}

/// This run's prepared release, its lock held by `holder` (`holder_pid=`, `holder_start=`
/// lines), and the watch step_await_switch leaves, waiting `timeout` seconds.
fn awaiting_switch(host: &mut Host, holder: &str, timeout: &str) -> super::Run {
    host.release(ID, "prepared");
    host.write(
        host.d(".shipit/lock/info"),
        &format!("token=token\n{holder}"),
    );
    host.set("PREPARED_TIMEOUT", timeout);
    let run = host.step("step_await_switch", &[]);
    run.status(0)
        .says(&format!("waiting up to {timeout}s for the switch"));
    run
}

/// The watch's file, as step_await_switch names it (`await-switch.TOKEN`), with `suffix`.
fn awaiting(host: &Host, suffix: &str) -> std::path::PathBuf {
    host.d(&format!(".shipit/await-switch.token{suffix}"))
}

/// Waits up to `seconds` for `done`.
fn within(seconds: u64, done: impl Fn() -> bool) -> bool {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::time::Instant::now() < until {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    done()
}

/// A holder process that no longer runs.
const GONE: &str = "holder_pid=999999999\nholder_start=1\n";

/// Waits until the watch gave the lock back, then checks it abandoned the release, saying `why`
/// in the deploy log.
fn watch_gave_up(host: &Host, why: &str) {
    assert!(
        within(10, || !host.d(".shipit/lock").exists()),
        "{:?}: the watch never gave the lock back",
        host.shell
    );
    assert_eq!(host.state(ID), "failed");
    assert_eq!(host.log(), [format!("deploy aborted: {why}")]);
}

#[test]
fn a_prepared_host_whose_switch_never_comes_abandons_its_release_and_unlocks() {
    each_shell(|host| {
        // The run still holds the lock (its holder lives) but sends nothing: the deadline.
        awaiting_switch(host, &super::lock::live_holder(), "1");
        assert!(host.d(".shipit/lock").exists(), "{:?}", host.shell);
        watch_gave_up(host, "no switch came within 1s (prepared_timeout)");
        // The switch that comes too late refuses, naming why.
        host.step("step_check_lock", &[])
            .status(1)
            .says("stopped waiting for the switch (no switch came within 1s");
    });
}

#[test]
fn a_prepared_host_whose_run_is_gone_gives_up_at_once() {
    each_shell(|host| {
        awaiting_switch(host, GONE, "600");
        watch_gave_up(host, "the run that prepared it is gone");
    });
}

#[test]
fn the_switch_or_an_abort_takes_the_watchs_file_and_the_watch_ends_doing_nothing() {
    each_shell(|host| {
        awaiting_switch(host, &super::lock::live_holder(), "600");
        let record = std::fs::read_to_string(awaiting(host, "")).unwrap();
        let pid = record.split(' ').next().unwrap().to_string();
        assert!(!pid.is_empty(), "{:?}: no watch recorded", host.shell);
        host.step("step_check_lock", &[]).status(0);
        assert!(!awaiting(host, "").exists() && !awaiting(host, ".abort").exists());
        // Gone, or a zombie waiting for PID 1 to reap it.
        let gone = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map_or(true, |stat| stat.contains(") Z "))
        };
        assert!(within(5, gone), "{:?}: the watch still runs", host.shell);
        assert_eq!(host.state(ID), "prepared");
        assert!(host.d(".shipit/lock").exists());
        // An abort (another host failed) takes it too, then gives the release up itself.
        awaiting_switch(host, &super::lock::live_holder(), "600");
        host.step("step_abort", &["web-2 failed"])
            .status(0)
            .says("abandoned: web-2 failed");
        assert!(!awaiting(host, "").exists() && !awaiting(host, ".abort").exists());
        assert_eq!(host.log(), ["deploy aborted: web-2 failed"]);
    });
}

#[test]
fn a_lock_whose_run_left_a_watch_is_live_until_the_watch_gives_it_back() {
    each_shell(|host| {
        // The holder is gone, but the watch it left (this test process) still runs.
        host.write(
            host.d(".shipit/lock/info"),
            &format!("token=other\nby=bob@desk\nsince=2026-11-22T00:00:00Z\nop=deploy\nrelease=1\n{GONE}"),
        );
        let live = super::lock::live_holder();
        let field = |name: &str| {
            live.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .unwrap()
                .to_string()
        };
        host.write(
            host.d(".shipit/await-switch.other"),
            &format!("{} {}\n", field("holder_pid"), field("holder_start")),
        );
        host.step("step_lock", &[])
            .status(75)
            .fact_is("lock_live", "1");
        // Its watch gone too: the lock is dead (broken with --break-lock, as before).
        std::fs::remove_file(host.d(".shipit/await-switch.other")).unwrap();
        host.step("step_lock", &[])
            .status(75)
            .fact_is("lock_live", "0");
    });
}
