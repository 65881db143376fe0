//! Wagtail benchmark (issue 13): shipit on a real-size project over a slow link, side by side
//! with the seed's Fabric flow and with the floor of the same remote work in one `ssh` command.
//!
//! Run as root: `cargo bench --bench wagtail`. Needs PyPI the first time (the tools venv with
//! `wagtail` and `fabric` in /var/tmp, and the `deploy` user's uv and pip caches).
//!
//! 1. Generates a Wagtail site (`tests/support/src/wagtail.rs`: `wagtail start`, requirements
//!    compiled with `uv pip compile`) under git, and starts sshd, nginx and supervisord from the
//!    test harness with the delay proxy in front of sshd (`SHIPIT_BENCH_DELAY_MS`, 25 ms each way).
//! 2. First deploy of shipit and of the Fabric peer (`benches/wagtail_fabfile.py`, one channel
//!    per step; its own deploy_to, supervisor program and nginx site on the same servers).
//! 3. `SHIPIT_BENCH_RUNS` (5) rounds of: a code-only change (a template line) deployed by
//!    shipit, a shipit rollback; a static change (the site's stylesheet) by shipit and Fabric;
//!    another code-only change by the floor (its remote work by hand in one ssh command) and by
//!    Fabric; another by the floor-min (the same without migrate and collectstatic, the old app
//!    server stopped in the background: connect + upload + unpack + app start); a new migration
//!    by shipit and Fabric. Every deploy is checked through nginx.
//! 4. Prints min/median per scenario, the ratios to Fabric and to both floors, and per-step
//!    medians (shipit's own step timings from `-v`, Fabric's and the floors' laps).
//!
//! Knobs: `SHIPIT_BENCH_DELAY_MS`, `SHIPIT_BENCH_RUNS`, `SHIPIT_BENCH_FABRIC=0` (leave the
//! Fabric peer out), `SHIPIT_BENCH_KEEP=1` (keep the project, deploy dirs and HOME).

use std::path::Path;
use std::time::{Duration, Instant};

use support::bench::{env_num, floor_script, laps, median, secs, step_medians, step_times, Floor};
use support::project::Project;
use support::proxy::Proxy;
use support::wagtail::{self, Site, PROJECT};
use support::{free_port, http_get, shipit_bin, Nginx, Run, Sshd, Supervisord};

const TARGET: &str = "bench";
const FAB_PROGRAM: &str = "mysite-fab";

/// One timed run: wall time and `(step, seconds)`.
struct Sample {
    wall: Duration,
    steps: Vec<(String, f64)>,
    note: String,
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap() // a JSON string is a valid TOML basic string
}

struct World<'a> {
    sshd: &'a Sshd,
    proxy: &'a Proxy,
    nginx: &'a Nginx,
    supervisor: &'a Supervisord,
    known_hosts: &'a Path,
    home: &'a Path,
    deploy_to: String,
    listen: u16,
    fab_deploy_to: String,
    fab_listen: u16,
    fab_script: std::path::PathBuf,
    tools: std::path::PathBuf,
    fab_count: u32,
    last_id: String,
}

fn shipit_toml(w: &World) -> String {
    format!(
        r#"# Written by benches/wagtail.rs.
[project]
name = "{PROJECT}"
python = "{python}"

[project.requirements]
production = "requirements/deployment.txt"

[targets.{TARGET}]
hosts = ["deploy@127.0.0.1:{port}"]
deploy_to = {deploy_to}
environment = "production"
identity_file = {key}
known_hosts = {known}
shared_dirs = ["var", "media"]

[targets.{TARGET}.vars]
listen = {listen}
server_name = "localhost"

[targets.{TARGET}.nginx]
site = {site}
test = {test}
reload = {reload}

[targets.{TARGET}.supervisor]
conf_dir = {conf_dir}
ctl = {ctl}
"#,
        python = wagtail::HOST_PYTHON,
        port = w.proxy.port,
        deploy_to = toml_str(&w.deploy_to),
        key = toml_str(&w.sshd.client_key.display().to_string()),
        known = toml_str(&w.known_hosts.display().to_string()),
        listen = w.listen,
        site = toml_str(&w.nginx.sites_dir.join("mysite.conf").display().to_string()),
        test = toml_str(&w.nginx.test_command()),
        reload = toml_str(&w.nginx.reload_command()),
        conf_dir = toml_str(&w.supervisor.include_dir.display().to_string()),
        ctl = toml_str(&w.supervisor.ctl_command()),
    )
}

fn shipit(project: &Project, home: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = assert_cmd::Command::from_std(project.shipit_with_home(home));
    Run::of(command.args(args).envs(env.iter().copied()))
}

/// Waits until nginx on `port` serves `path` with a body containing every one of `needles`.
fn check_served(port: u16, path: &str, needles: &[&str], what: &str) {
    let ok = support::wait_for(Duration::from_secs(60), || {
        let (status, body) = http_get(port, path).ok()?;
        (status == 200 && needles.iter().all(|n| body.contains(n))).then_some(())
    });
    assert!(
        ok.is_some(),
        "after {what}: nginx on :{port}{path} does not serve {needles:?}: {:?}",
        http_get(port, path).map(|(s, b)| (s, b.chars().take(400).collect::<String>()))
    );
}

/// `shipit deploy` or `shipit rollback` (`args`) with `--json -v`; checks the marker `tag` (when
/// given) and the release are served.
fn run_shipit(site: &Site, w: &mut World, args: &[&str], tag: Option<&str>, what: &str) -> Sample {
    let mut all = args.to_vec();
    all.extend(["--target", TARGET, "--json", "-v"]);
    let run = shipit(&site.project, w.home, &all, &[]);
    assert!(
        run.code == 0,
        "shipit {what} failed (exit status {}):\n{}\n{}",
        run.code,
        run.stderr,
        run.stdout
    );
    let json = run.json();
    // A deploy reports `release`, a rollback `to`.
    let release = json["release"]
        .as_str()
        .or(json["to"].as_str())
        .unwrap_or("?")
        .to_string();
    w.last_id = w.last_id.clone().max(release.clone());
    check_served(w.listen, "/release", &[&release], what);
    if let Some(tag) = tag {
        check_served(
            w.listen,
            "/",
            &[&format!("<p id=\"bench\">{tag}</p>")],
            what,
        );
    }
    let usage = &json["usage"];
    // The summary's lines (indented two spaces), not the steps' own with -v (four).
    let skipped: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("skipped") && l.starts_with("  ") && !l.starts_with("   "))
        .map(str::trim)
        .collect();
    let note = format!(
        "release {release}  connections {}  channels {}  uploaded {} B{}",
        usage["connections"].as_u64().unwrap_or(0),
        usage["channels"].as_u64().unwrap_or(0),
        usage["bytes_uploaded"].as_u64().unwrap_or(0),
        if skipped.is_empty() {
            String::new()
        } else {
            format!("  [{}]", skipped.join("; "))
        }
    );
    let sample = Sample {
        wall: run.elapsed,
        steps: step_times(&run.stderr),
        note,
    };
    println!(
        "  shipit {what:<16} {:>7}  {}",
        secs(sample.wall),
        sample.note
    );
    sample
}

/// A release id after every one so far, in shipit's format.
fn next_id(last: &mut String) -> String {
    let mut at = chrono::Utc::now();
    let mut id = at.format("%Y%m%d%H%M%S").to_string();
    while id <= *last {
        at += chrono::Duration::seconds(1);
        id = at.format("%Y%m%d%H%M%S").to_string();
    }
    *last = id.clone();
    id
}

/// The floor: builds the archive of HEAD (untimed), then ONE ssh command does the remote work;
/// `reuse_static`: the floor of connect + upload + unpack + app start (see [`Floor`]).
fn run_floor(site: &Site, w: &mut World, tag: &str, reuse_static: Option<&str>) -> Sample {
    let id = next_id(&mut w.last_id);
    let at = chrono::NaiveDateTime::parse_from_str(&id, "%Y%m%d%H%M%S")
        .unwrap()
        .and_utc()
        .timestamp()
        .to_string();
    let run = shipit(
        &site.project,
        w.home,
        &["build", "--target", TARGET, "--json"],
        &[("SOURCE_DATE_EPOCH", &at)],
    );
    assert!(run.code == 0, "shipit build: {}", run.stderr);
    let json = run.json();
    let archive = json["path"].as_str().expect("archive path").to_string();
    let sha = json["sha256"].as_str().expect("sha256").to_string();
    let confd = w.supervisor.include_dir.display().to_string();
    let ctl = w.supervisor.ctl_command();
    let script = floor_script(&Floor {
        deploy_to: &w.deploy_to,
        id: &id,
        sha: &sha,
        confd: &confd,
        ctl: &ctl,
        project: PROJECT,
        target: TARGET,
        settings_module: "mysite.settings.selected",
        shared: &["var", "media"],
        reuse_static,
    });
    let mut cmd = w.sshd.ssh_command_via(w.proxy.port, w.known_hosts, &script);
    cmd.stdin(std::fs::File::open(&archive).expect("open the archive"));
    let started = Instant::now();
    let out = cmd.output().expect("run ssh");
    let wall = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "the floor script failed: {stderr}");
    check_served(w.listen, "/release", &[&id], "the floor");
    check_served(
        w.listen,
        "/",
        &[&format!("<p id=\"bench\">{tag}</p>")],
        "the floor",
    );
    println!(
        "  {:<6} {:<16} {:>7}  release {id}  one ssh exec",
        if reuse_static.is_some() {
            "floor-min"
        } else {
            "floor"
        },
        tag,
        secs(wall)
    );
    Sample {
        wall,
        steps: laps(&stderr),
        note: String::new(),
    }
}

/// The Fabric peer's configs: its supervisor program and nginx site.
fn fab_configs(w: &World) -> (String, String) {
    let d = &w.fab_deploy_to;
    let supervisor = format!(
        "[program:{FAB_PROGRAM}]\n\
         command={d}/current/env/bin/gunicorn mysite.wsgi:application --bind unix:{d}/app.sock --umask 007 --workers 2\n\
         directory={d}/current\n\
         environment=DJANGO_SETTINGS_MODULE=\"mysite.settings.selected\"\n\
         autostart=true\nautorestart=true\nstartsecs=1\nstopsignal=TERM\nstopasgroup=true\nkillasgroup=true\n\
         redirect_stderr=true\nstdout_logfile={d}/app.log\n"
    );
    let nginx = format!(
        "upstream mysite_fab {{ server unix:{d}/app.sock fail_timeout=0; }}\n\
         server {{\n    listen {listen};\n    server_name localhost;\n\
         \x20   location /static/ {{ alias {d}/current/static/; }}\n\
         \x20   location / {{ proxy_set_header Host $host; proxy_pass http://mysite_fab; }}\n}}\n",
        listen = w.fab_listen
    );
    (supervisor, nginx)
}

fn run_fabric(site: &Site, w: &mut World, tag: &str, what: &str) -> Sample {
    w.fab_count += 1;
    let first = w.fab_count == 1;
    let id = format!(
        "{}-{:02}",
        chrono::Utc::now().format("%Y%m%d%H%M%S"),
        w.fab_count
    );
    let (supervisor_conf, nginx_conf) = fab_configs(w);
    let cfg = serde_json::json!({
        "host": "127.0.0.1",
        "port": w.proxy.port,
        "user": "deploy",
        "key": w.sshd.client_key.display().to_string(),
        "deploy_to": w.fab_deploy_to,
        "release": id,
        "root": site.project.root.display().to_string(),
        "python": wagtail::HOST_PYTHON,
        "nginx_conf": nginx_conf,
        "nginx_site": w.nginx.sites_dir.join("mysite-fab.conf").display().to_string(),
        "nginx_reload": w.nginx.reload_command(),
        "supervisor_conf": supervisor_conf,
        "supervisor_file": w.supervisor.include_dir.join(format!("{FAB_PROGRAM}.conf")).display().to_string(),
        "ctl": w.supervisor.ctl_command(),
        "program": FAB_PROGRAM,
        "first": first,
        "local_dir": w.home.display().to_string(),
    });
    let mut cmd = std::process::Command::new(w.tools.join("bin/python"));
    cmd.arg(&w.fab_script)
        .arg(cfg.to_string())
        .env("HOME", w.home);
    support::project::isolate_git(&mut cmd, &site.project.sandbox);
    let started = Instant::now();
    let out = cmd.output().expect("run the Fabric peer");
    let wall = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "the Fabric peer ({what}) failed:\n{stderr}"
    );
    check_served(
        w.fab_listen,
        "/",
        &[&format!("<p id=\"bench\">{tag}</p>")],
        "Fabric",
    );
    let channels = stderr
        .lines()
        .find_map(|l| l.strip_prefix("channels "))
        .unwrap_or("?")
        .to_string();
    println!(
        "  fabric {what:<16} {:>7}  release {id}  connections 1  channels {channels}",
        secs(wall)
    );
    // Untimed housekeeping the seed leaves to the operator: only the newest two releases stay.
    let releases = Path::new(&w.fab_deploy_to).join("releases");
    let mut all: Vec<_> = std::fs::read_dir(&releases)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    all.sort();
    for old in all.iter().rev().skip(2) {
        let _ = std::fs::remove_dir_all(old);
    }
    let _ = std::fs::remove_file(format!("/tmp/mysite-fab-{id}.tar.gz"));
    Sample {
        wall,
        steps: laps(&stderr),
        note: format!("channels {channels}"),
    }
}

fn min_median(samples: &[Sample]) -> Option<(Duration, Duration)> {
    if samples.is_empty() {
        return None;
    }
    let mut v: Vec<Duration> = samples.iter().map(|s| s.wall).collect();
    let min = *v.iter().min().unwrap();
    Some((min, median(&mut v)))
}

fn steps_table(title: &str, columns: &[(&str, &[Sample])]) {
    let medians: Vec<Vec<(String, f64)>> = columns
        .iter()
        .map(|(_, samples)| {
            let refs: Vec<&[(String, f64)]> = samples.iter().map(|s| s.steps.as_slice()).collect();
            if refs.is_empty() {
                Vec::new()
            } else {
                step_medians(&refs)
            }
        })
        .collect();
    let mut names: Vec<String> = Vec::new();
    for m in &medians {
        for (n, _) in m {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
    }
    // Wide enough for the longest label (`background (settings, collectstatic)`).
    let width = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max(24);
    println!("\n-- {title} (medians)");
    print!("  {:<width$}", "step");
    for (name, _) in columns {
        print!(" {name:>12}");
    }
    println!();
    for n in &names {
        print!("  {n:<width$}");
        for m in &medians {
            let cell = m
                .iter()
                .find(|(k, _)| k == n)
                .map_or("-".to_string(), |(_, s)| format!("{s:.2}s"));
            print!(" {cell:>12}");
        }
        println!();
    }
}

fn main() {
    if !support::bench::should_run("wagtail") {
        return;
    }
    let delay = Duration::from_millis(env_num("SHIPIT_BENCH_DELAY_MS", 25));
    let runs = env_num("SHIPIT_BENCH_RUNS", 5).max(1) as usize;
    let with_fabric = env_num("SHIPIT_BENCH_FABRIC", 1) != 0;
    let bench_started = Instant::now();

    println!(
        "== wagtail benchmark: {} ms each way through a userspace delay proxy ({runs} runs{})",
        delay.as_millis(),
        if with_fabric {
            ", with the Fabric peer"
        } else {
            ""
        }
    );
    println!("   shipit {}", shipit_bin().display());
    println!(
        "   load average at start: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let tools = wagtail::tools_venv();
    let mut site = wagtail::generate(&tools);

    // Declared first, dropped last: the deploy directories outlive the servers using them.
    let deploy_dir = support::deploy_owned_tempdir();
    let home = tempfile::Builder::new()
        .prefix("shipit-bench-home-")
        .tempdir_in("/tmp")
        .unwrap();
    let sshd = Sshd::start();
    let nginx = Nginx::start();
    let supervisor = Supervisord::start();
    let proxy = Proxy::delayed(sshd.port, delay);
    let known_hosts = home.path().join("known_hosts.proxy");
    std::fs::write(
        &known_hosts,
        format!("{}\n", sshd.known_hosts_line_for(proxy.port)),
    )
    .unwrap();
    let fab_script = home.path().join("wagtail_fabfile.py");
    std::fs::write(&fab_script, include_str!("wagtail_fabfile.py")).unwrap();
    let fab_deploy_to = deploy_dir.path().join("fabric");
    support::mkdir_as_deploy(&fab_deploy_to);
    support::mkdir_as_deploy(&fab_deploy_to.join("releases"));
    let mut w = World {
        sshd: &sshd,
        proxy: &proxy,
        nginx: &nginx,
        supervisor: &supervisor,
        known_hosts: &known_hosts,
        home: home.path(),
        deploy_to: deploy_dir.path().join("mysite").display().to_string(),
        listen: free_port(),
        fab_deploy_to: fab_deploy_to.display().to_string(),
        fab_listen: free_port(),
        fab_script,
        tools,
        fab_count: 0,
        last_id: String::new(),
    };
    site.project.write("shipit.toml", &shipit_toml(&w));
    site.project.commit_all("bench target");
    println!(
        "   project {}  shipit :{} -> {}  fabric :{} -> {}",
        site.project.root.display(),
        w.listen,
        w.deploy_to,
        w.fab_listen,
        w.fab_deploy_to
    );

    println!("\n-- runs");
    let first = run_shipit(&site, &mut w, &["deploy"], Some("initial"), "first deploy");
    let fab_first: Vec<Sample> = if with_fabric {
        vec![run_fabric(&site, &mut w, "initial", "first deploy")]
    } else {
        Vec::new()
    };
    let (live_root, files) = count_site(&w.deploy_to);
    println!("  {live_root}: {files}");

    let mut code = Vec::new();
    let mut rollback = Vec::new();
    let mut floor = Vec::new();
    let mut floor_min = Vec::new();
    let mut fab_code = Vec::new();
    let mut statics = Vec::new();
    let mut fab_static = Vec::new();
    let mut migration = Vec::new();
    let mut fab_migration = Vec::new();
    for i in 1..=runs {
        let tag = format!("code{i}");
        site.change_code(&tag);
        code.push(run_shipit(
            &site,
            &mut w,
            &["deploy"],
            Some(&tag),
            &format!("code-only {i}"),
        ));
        rollback.push(run_shipit(
            &site,
            &mut w,
            &["rollback"],
            None,
            &format!("rollback {i}"),
        ));
        let tag = format!("code{i}");
        site.change_static(&format!("static{i}"));
        statics.push(run_shipit(
            &site,
            &mut w,
            &["deploy"],
            Some(&tag),
            &format!("static {i}"),
        ));
        if with_fabric {
            fab_static.push(run_fabric(&site, &mut w, &tag, &format!("static {i}")));
        }
        let tag = format!("floor{i}");
        site.change_code(&tag);
        floor.push(run_floor(&site, &mut w, &tag, None));
        if with_fabric {
            fab_code.push(run_fabric(&site, &mut w, &tag, &format!("code-only {i}")));
        }
        let tag = format!("min{i}");
        site.change_code(&tag);
        floor_min.push(run_floor(&site, &mut w, &tag, Some("static")));
        site.add_migration();
        migration.push(run_shipit(
            &site,
            &mut w,
            &["deploy"],
            Some(&tag),
            &format!("migration {i}"),
        ));
        if with_fabric {
            fab_migration.push(run_fabric(&site, &mut w, &tag, &format!("migration {i}")));
        }
    }

    // Where the time goes.
    let first_v = vec![first];
    steps_table(
        "shipit steps",
        &[
            ("first", &first_v),
            ("code-only", &code),
            ("static", &statics),
            ("migration", &migration),
            ("rollback", &rollback),
        ],
    );
    steps_table("floor laps", &[("code-only", &floor), ("min", &floor_min)]);
    if with_fabric {
        steps_table(
            "Fabric peer steps",
            &[
                ("first", &fab_first),
                ("code-only", &fab_code),
                ("static", &fab_static),
                ("migration", &fab_migration),
            ],
        );
    }

    // Summary.
    let floor_mm = min_median(&floor).unwrap();
    let floor_min_mm = min_median(&floor_min).unwrap();
    println!("\n== summary ({runs} runs; min / median wall seconds)");
    println!(
        "  {:<22} {:>15} {:>15} {:>12} {:>12} {:>12}",
        "scenario", "shipit", "fabric", "vs fabric", "vs floor", "vs floor-min"
    );
    let row = |name: &str, s: &[Sample], f: &[Sample], vs_floor: bool| {
        let (smin, smed) = min_median(s).unwrap();
        let fab = min_median(f);
        let cell = |m: Option<(Duration, Duration)>| {
            m.map_or("-".to_string(), |(a, b)| {
                format!("{:.2} / {:.2}", a.as_secs_f64(), b.as_secs_f64())
            })
        };
        let ratio = fab.map_or("-".to_string(), |(_, fmed)| {
            format!("{:.2}x", smed.as_secs_f64() / fmed.as_secs_f64())
        });
        let to = |floor: (Duration, Duration)| {
            if vs_floor {
                format!("{:.2}x", smed.as_secs_f64() / floor.1.as_secs_f64())
            } else {
                "-".to_string()
            }
        };
        println!(
            "  {name:<22} {:>15} {:>15} {ratio:>12} {:>12} {:>12}",
            cell(Some((smin, smed))),
            cell(fab),
            to(floor_mm),
            to(floor_min_mm)
        );
    };
    row("first deploy", &first_v, &fab_first, false);
    row("code-only redeploy", &code, &fab_code, true);
    row("static change", &statics, &fab_static, false);
    row("new migration", &migration, &fab_migration, false);
    row("rollback", &rollback, &[], false);
    row("floor (one ssh)", &floor, &[], false);
    row("floor-min (one ssh)", &floor_min, &[], false);
    println!("  shipit code-only: {}", code[code.len() / 2].note);
    println!("  (benchmark took {})", secs(bench_started.elapsed()));

    if std::env::var_os("SHIPIT_BENCH_KEEP").is_some() {
        let kept = [site.project.keep(), deploy_dir.keep(), home.keep()];
        println!("  kept (project, deploy dirs, HOME): {kept:?}");
    }
    drop(proxy);
}

/// The live release and how many static files and migration files (project and venv) it has.
fn count_site(deploy_to: &str) -> (String, String) {
    let live = std::fs::canonicalize(Path::new(deploy_to).join("current")).unwrap();
    let count = |dir: &Path, filter: &dyn Fn(&Path) -> bool| -> usize {
        fn walk(dir: &Path, filter: &dyn Fn(&Path) -> bool, n: &mut usize) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let p = e.path();
                let ft = e.file_type().unwrap();
                if ft.is_dir() {
                    walk(&p, filter, n);
                } else if ft.is_file() && filter(&p) {
                    *n += 1;
                }
            }
        }
        let mut n = 0;
        walk(dir, filter, &mut n);
        n
    };
    let statics = count(&live.join("static"), &|_| true);
    let is_migration = |p: &Path| {
        p.extension().is_some_and(|e| e == "py")
            && p.parent()
                .and_then(|d| d.file_name())
                .is_some_and(|d| d == "migrations")
    };
    let venv = std::fs::canonicalize(live.join(".venv")).unwrap();
    let migrations =
        count(&live, &|p| !p.starts_with(&venv) && is_migration(p)) + count(&venv, &is_migration);
    (
        format!("release {}", live.display()),
        format!(
            "{statics} collected static files, {migrations} migration files (project and venv)"
        ),
    )
}
