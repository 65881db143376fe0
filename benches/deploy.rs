//! Deploy benchmark: `shipit deploy` of the example Django project over a slow link, against
//! the floor of the same remote work done by hand in one `ssh` command.
//!
//! Run as root (the harness creates the `deploy` account and runs real sshd, nginx and
//! supervisord on loopback): `cargo bench --bench deploy`. Needs network access to PyPI the
//! first time (uv builds the release's virtualenv; its cache in ~deploy/.cache/uv is reused).
//!
//! What it does:
//! 1. Starts sshd, nginx and supervisord from the test harness (`tests/support`), and its TCP
//!    proxy in front of sshd delaying every chunk by `DELAY` in each direction (tc netem is not
//!    available in containers). The added round-trip time is checked with a TCP echo and with
//!    `ssh true`, directly and through the proxy.
//! 2. Deploys a git-committed copy of `tests/example` through the proxy: the first deploy (the
//!    virtualenv is built), then `SHIPIT_BENCH_RUNS` code-only redeploys (one template line changed
//!    and committed each time; the virtualenv is reused). Each deploy is checked through nginx.
//! 3. The floor: the same remote work as a code-only redeploy, by hand, in ONE `ssh` command
//!    through the proxy (archive on stdin: write, sha256sum, unpack, link shared paths and the
//!    existing venv, migrate, collectstatic, start gunicorn under supervisor, wait for it to
//!    answer, switch `current` with `mv -T`, stop the old program).
//! 4. Round trips: one deploy with 10 more shared_dirs and 10 `before_migrate` hooks must use
//!    the same number of SSH connections and channels as the plain one.
//! 5. Prints a summary table.
//!
//! Knobs (environment): `SHIPIT_BENCH_DELAY_MS` (default 25, one way), `SHIPIT_BENCH_RUNS`
//! (default 3 code-only redeploys and 3 floor runs), `SHIPIT_BENCH_KEEP=1` (keep the project,
//! deploy_to and HOME directories; the servers still stop).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::bench::{env_num, floor_script, laps, median, secs, step_times, Floor as FloorWork};
use support::project::Project;
use support::proxy::Proxy;
use support::{free_port, http_get, shipit_bin, Nginx, Run, Sshd, Supervisord};

const TARGET: &str = "bench";
const PROJECT: &str = "hello";

// ------------------------------------------------------------------------------------------
// The delayed link
// ------------------------------------------------------------------------------------------

/// Median round trip of a 1-byte echo through a delayed [`Proxy`] (added RTT, with loopback's own).
fn echo_rtt(delay: Duration) -> Duration {
    let echo = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = echo.accept() {
            let mut b = [0u8; 1];
            while matches!(s.read(&mut b), Ok(1)) {
                if s.write_all(&b).is_err() {
                    break;
                }
            }
        }
    });
    let proxy = Proxy::delayed(echo_port, delay);
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, proxy.port)).unwrap();
    s.set_nodelay(true).unwrap();
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        s.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        times.push(t.elapsed());
    }
    drop(s);
    median(&mut times)
}

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn time_ssh_true(sshd: &Sshd, port: u16, known_hosts: &Path) -> Duration {
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let out = sshd
            .ssh_command_via(port, known_hosts, "true")
            .output()
            .expect("run ssh");
        assert!(
            out.status.success(),
            "ssh true on port {port} failed: {}",
            text(&out.stderr)
        );
        times.push(t.elapsed());
    }
    median(&mut times)
}

/// Changes one line of the index template (`<h1>hello</h1>` -> `<h1>hello {tag}</h1>`) and
/// commits it.
fn change_template(project: &Project, tag: &str) {
    let rel = "pages/templates/pages/index.html";
    let old = project.read(rel);
    let new: String = old
        .lines()
        .map(|l| {
            if l.contains("<h1>hello") {
                format!("{{% endif %}}<h1>hello {tag}</h1>")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    assert_ne!(old, new, "the template line to change is gone from {rel}");
    project.write(rel, &new);
    project.commit_all(&format!("bench {tag}"));
}

/// `shipit -C PROJECT ARGS` with a private HOME, no ssh-agent and the extra environment `env`,
/// run to its end (no time limit).
fn shipit(project: &Project, home: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = assert_cmd::Command::from_std(project.shipit_with_home(home));
    Run::of(command.args(args).envs(env.iter().copied()))
}

/// Everything the target config needs to know about the servers.
struct Servers<'a> {
    proxy_port: u16,
    sshd: &'a Sshd,
    known_hosts: &'a Path,
    deploy_to: &'a str,
    nginx: &'a Nginx,
    supervisor: &'a Supervisord,
    listen: u16,
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap() // a JSON string is a valid TOML basic string
}

/// shipit.toml with the `bench` target, optionally with 10 more shared dirs and 10 hooks.
fn shipit_toml(s: &Servers, wide: bool) -> String {
    let mut shared_dirs = vec!["var".to_string()];
    let mut hooks = Vec::new();
    if wide {
        shared_dirs.extend((1..=10).map(|i| format!("extra/dir{i:02}")));
        hooks.extend((0..10).map(|_| "true".to_string()));
    }
    let list = |v: &[String]| v.iter().map(|x| toml_str(x)).collect::<Vec<_>>().join(", ");
    format!(
        r#"# Written by benches/deploy.rs.
[project]
name = "{PROJECT}"
python = "/usr/bin/python3"

[project.requirements]
deployment = "requirements/deployment.txt"

[targets.{TARGET}]
hosts = ["deploy@127.0.0.1:{port}"]
deploy_to = {deploy_to}
environment = "deployment"
identity_file = {key}
known_hosts = {known}
shared_dirs = [{shared_dirs}]
shared_files = [".env"]

[targets.{TARGET}.hooks]
before_migrate = [{hooks}]

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
        port = s.proxy_port,
        deploy_to = toml_str(s.deploy_to),
        key = toml_str(&s.sshd.client_key.display().to_string()),
        known = toml_str(&s.known_hosts.display().to_string()),
        shared_dirs = list(&shared_dirs),
        hooks = list(&hooks),
        listen = s.listen,
        site = toml_str(&s.nginx.sites_dir.join("hello.conf").display().to_string()),
        test = toml_str(&s.nginx.test_command()),
        reload = toml_str(&s.nginx.reload_command()),
        conf_dir = toml_str(&s.supervisor.include_dir.display().to_string()),
        ctl = toml_str(&s.supervisor.ctl_command()),
    )
}

/// One `shipit deploy --json -v` through the proxy.
struct Deploy {
    wall: Duration,
    reported: f64,
    release: String,
    connections: u64,
    channels: u64,
    bytes: u64,
    proxy_connections: u32,
    venv: String,
    /// Whether the switch reloaded nginx (the site file changed).
    nginx_reloaded: bool,
    /// `(step, seconds)` from the ✓ lines on stderr, plus `connect`.
    steps: Vec<(String, f64)>,
}

fn deploy(project: &Project, home: &Path, proxy: &Proxy, listen: u16, tag: &str) -> Deploy {
    let before = proxy.connections();
    let run = shipit(
        project,
        home,
        &["deploy", "--target", TARGET, "--json", "-v"],
        &[],
    );
    let (stderr, wall) = (&run.stderr, run.elapsed);
    assert!(
        run.code == 0,
        "shipit deploy ({tag}) failed (exit status {}):\n{stderr}\n{}",
        run.code,
        run.stdout
    );
    let json = run.json();
    let usage = &json["usage"];
    let steps = step_times(stderr);
    let d = Deploy {
        wall,
        reported: json["seconds"].as_f64().unwrap_or(f64::NAN),
        release: json["release"].as_str().unwrap_or("?").to_string(),
        connections: usage["connections"].as_u64().unwrap_or(0),
        channels: usage["channels"].as_u64().unwrap_or(0),
        bytes: usage["bytes_uploaded"].as_u64().unwrap_or(0),
        proxy_connections: proxy.connections() - before,
        venv: json["venv"]
            .as_array()
            .and_then(|v| v.first())
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_string(),
        steps,
        nginx_reloaded: stderr
            .lines()
            .any(|l| l.trim_end().ends_with("nginx reloaded")),
    };
    check_served(listen, tag, &d.release);
    println!(
        "  {tag:<18} {:>7} wall ({:.2}s reported)  release {}  venv {}  connections {} (proxy saw {})  channels {}  uploaded {} B{}",
        secs(d.wall),
        d.reported,
        d.release,
        d.venv,
        d.connections,
        d.proxy_connections,
        d.channels,
        d.bytes,
        if d.nginx_reloaded { "  nginx reloaded" } else { "" }
    );
    d
}

/// The page served through nginx shows `tag` (when given) and `release`.
fn check_served(listen: u16, tag: &str, release: &str) {
    let page = support::wait_for(Duration::from_secs(5), || {
        let (status, body) = http_get(listen, "/").ok()?;
        (status == 200 && body.contains(release)).then_some(body)
    });
    let Some(body) = page else {
        panic!(
            "after {tag}: nginx on :{listen} does not serve release {release}: {:?}",
            http_get(listen, "/")
        );
    };
    if tag.starts_with("change") {
        assert!(
            body.contains(&format!("hello {tag}")),
            "after {tag}: the page lacks the changed line:\n{body}"
        );
    }
}

// ------------------------------------------------------------------------------------------
// The floor
// ------------------------------------------------------------------------------------------

struct Floor {
    wall: Duration,
    /// `shipit build` of the archive (not part of the floor).
    build: Duration,
    laps: Vec<(String, f64)>,
}

/// Builds an archive for a new change (untimed), then times ONE ssh command doing the work.
#[allow(clippy::too_many_arguments)]
fn floor(
    project: &Project,
    home: &Path,
    sshd: &Sshd,
    proxy: &Proxy,
    known_hosts: &Path,
    servers: &Servers,
    listen: u16,
    tag: &str,
    last_id: &mut String,
) -> Floor {
    change_template(project, tag);
    // A release id after every existing one, in shipit's format (the archive names none: the
    // floor writes it where shipit's unpack does, and the program's environment carries it).
    let mut at = chrono::Utc::now();
    let mut id = at.format("%Y%m%d%H%M%S").to_string();
    while id <= *last_id {
        at += chrono::Duration::seconds(1);
        id = at.format("%Y%m%d%H%M%S").to_string();
    }
    *last_id = id.clone();
    let epoch = at.timestamp().to_string();
    let run = shipit(
        project,
        home,
        &["build", "--target", TARGET, "--json"],
        &[("SOURCE_DATE_EPOCH", &epoch)],
    );
    assert!(run.code == 0, "shipit build: {}", run.stderr);
    let (json, build) = (run.json(), run.elapsed);
    let archive = PathBuf::from(
        json["path"]
            .as_str()
            .unwrap_or_else(|| panic!("no archive path in shipit build --json: {json}")),
    );
    let sha = json["sha256"].as_str().expect("sha256").to_string();
    let confd = servers.supervisor.include_dir.display().to_string();
    let ctl = servers.supervisor.ctl_command();
    let script = floor_script(&FloorWork {
        deploy_to: servers.deploy_to,
        id: &id,
        sha: &sha,
        confd: &confd,
        ctl: &ctl,
        project: PROJECT,
        target: TARGET,
        settings_module: "hello.settings.selected",
        shared: &["var", ".env"],
        reuse_static: None,
    });
    let mut cmd = sshd.ssh_command_via(proxy.port, known_hosts, &script);
    cmd.stdin(std::fs::File::open(&archive).expect("open the archive"));
    let before = proxy.connections();
    let started = Instant::now();
    let out = cmd.output().expect("run ssh");
    let wall = started.elapsed();
    assert!(
        out.status.success(),
        "the floor script failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    let laps = laps(&text(&out.stderr));
    check_served(listen, tag, &id);
    println!(
        "  {tag:<18} {:>7} wall  release {id}  connections 1 (proxy saw {})  one ssh exec",
        secs(wall),
        proxy.connections() - before
    );
    Floor { wall, build, laps }
}

// ------------------------------------------------------------------------------------------
// Main
// ------------------------------------------------------------------------------------------

/// Median over deploys of each step's seconds, in first-seen order.
fn step_medians(deploys: &[&Deploy]) -> Vec<(String, f64)> {
    let runs: Vec<&[(String, f64)]> = deploys.iter().map(|d| d.steps.as_slice()).collect();
    support::bench::step_medians(&runs)
}

fn main() {
    if !support::bench::should_run("deploy") {
        return;
    }
    let delay = Duration::from_millis(env_num("SHIPIT_BENCH_DELAY_MS", 25));
    let runs = env_num("SHIPIT_BENCH_RUNS", 3).max(1) as usize;
    let bench_started = Instant::now();

    // Declared first, dropped last: the deploy directory outlives the servers using it.
    let deploy_dir = support::deploy_owned_tempdir();
    let deploy_to = deploy_dir.path().join("hello").display().to_string();
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
    let listen = free_port();
    let servers = Servers {
        proxy_port: proxy.port,
        sshd: &sshd,
        known_hosts: &known_hosts,
        deploy_to: &deploy_to,
        nginx: &nginx,
        supervisor: &supervisor,
        listen,
    };

    println!(
        "== deploy benchmark: {} ms each way through a userspace delay proxy ({} runs)",
        delay.as_millis(),
        runs
    );
    println!("   shipit {}", shipit_bin().display());
    println!(
        "   load average at start: {} (timings are only meaningful on an idle machine)",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "   sshd :{}  proxy :{}  nginx :{listen}  deploy_to {deploy_to}",
        sshd.port, proxy.port
    );

    // 1. The added round trip.
    let rtt = echo_rtt(delay);
    let ssh_direct = time_ssh_true(&sshd, sshd.port, &sshd.known_hosts);
    let ssh_proxied = time_ssh_true(&sshd, proxy.port, &known_hosts);
    println!("\n-- round trip");
    println!(
        "  TCP echo through the proxy:  {:.1} ms (added RTT; target {} ms)",
        rtt.as_secs_f64() * 1e3,
        2 * delay.as_millis()
    );
    println!(
        "  `ssh true` direct {:.0} ms, through the proxy {:.0} ms (+{:.0} ms = {:.1} RTTs)",
        ssh_direct.as_secs_f64() * 1e3,
        ssh_proxied.as_secs_f64() * 1e3,
        (ssh_proxied.saturating_sub(ssh_direct)).as_secs_f64() * 1e3,
        ssh_proxied.saturating_sub(ssh_direct).as_secs_f64() / rtt.as_secs_f64()
    );

    // 2. shipit: first deploy, then code-only redeploys.
    let project = support::project::project();
    project.write("shipit.toml", &shipit_toml(&servers, false));
    project.commit_all("bench target");
    println!("\n-- shipit deploy and the floor (one ssh command), through the proxy");
    let first = deploy(&project, home.path(), &proxy, listen, "first");
    assert!(
        first.venv.starts_with("built"),
        "the first deploy should build the venv: {}",
        first.venv
    );
    // 3. Code-only redeploys and the floor, alternating so both see the same machine load.
    let mut redeploys = Vec::new();
    let mut floors: Vec<Floor> = Vec::new();
    let mut last_id = first.release.clone();
    for i in 1..=runs {
        let tag = format!("change{i}");
        change_template(&project, &tag);
        let d = deploy(&project, home.path(), &proxy, listen, &tag);
        assert!(
            d.venv.starts_with("reused"),
            "a code-only redeploy should reuse the venv: {}",
            d.venv
        );
        last_id = last_id.max(d.release.clone());
        redeploys.push(d);
        floors.push(floor(
            &project,
            home.path(),
            &sshd,
            &proxy,
            &known_hosts,
            &servers,
            listen,
            &format!("floor{i}"),
            &mut last_id,
        ));
    }

    // 4. The same with 10 more shared dirs and 10 hooks.
    project.write("shipit.toml", &shipit_toml(&servers, true));
    change_template(&project, "wide");
    let wide = deploy(&project, home.path(), &proxy, listen, "wide (+10+10)");

    // Where the time goes.
    let redeploy_refs: Vec<&Deploy> = redeploys.iter().collect();
    let shipit_steps = step_medians(&redeploy_refs);
    let mut floor_laps: Vec<(String, f64)> = Vec::new();
    for (name, _) in &floors[0].laps {
        let mut v: Vec<f64> = floors
            .iter()
            .map(|f| {
                f.laps
                    .iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, s)| s)
                    .sum()
            })
            .collect();
        v.sort_by(f64::total_cmp);
        floor_laps.push((name.clone(), v[v.len() / 2]));
    }
    let mut walls: Vec<Duration> = redeploys.iter().map(|d| d.wall).collect();
    let redeploy_min = *walls.iter().min().unwrap();
    let redeploy_median = median(&mut walls);
    let mut floor_walls: Vec<Duration> = floors.iter().map(|f| f.wall).collect();
    let floor_min = *floor_walls.iter().min().unwrap();
    let floor_median = median(&mut floor_walls);
    let steps_total: f64 = shipit_steps.iter().map(|(_, s)| s).sum();
    let mut builds: Vec<Duration> = floors.iter().map(|f| f.build).collect();
    let build_median = median(&mut builds);
    let laps_total: f64 = floor_laps.iter().map(|(_, s)| s).sum();

    let wide_steps = step_medians(&[&wide]);
    let first_steps = step_medians(&[&first]);
    let hooks_run = wide
        .steps
        .iter()
        .filter(|(n, _)| n.starts_with("before_migrate"))
        .count();
    assert_eq!(hooks_run, 10, "the wide deploy should run 10 hooks");
    let mut names: Vec<String> = Vec::new();
    for (n, _) in first_steps.iter().chain(&shipit_steps).chain(&wide_steps) {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let cell = |steps: &[(String, f64)], n: &str| {
        steps
            .iter()
            .find(|(m, _)| m == n)
            .map_or("-".to_string(), |(_, s)| format!("{s:.2}s"))
    };
    println!("\n-- where the time goes (shipit's per-step timings from stderr, step by step)");
    println!(
        "  {:<28} {:>9} {:>14} {:>14}",
        "step", "first", "code-only (med)", "+10 dirs +10 hooks"
    );
    for n in &names {
        let shown = if n.starts_with("before_migrate") {
            format!("{n} (x{hooks_run})")
        } else {
            n.clone()
        };
        println!(
            "  {shown:<28} {:>9} {:>14} {:>14}",
            cell(&first_steps, n),
            cell(&shipit_steps, n),
            cell(&wide_steps, n)
        );
    }
    let sum = |steps: &[(String, f64)]| steps.iter().map(|(_, s)| s).sum::<f64>();
    println!(
        "  {:<28} {:>9} {:>14} {:>14}",
        "sum of steps (with connect)",
        format!("{:.2}s", sum(&first_steps)),
        format!("{:.2}s", steps_total),
        format!("{:.2}s", sum(&wide_steps))
    );
    println!(
        "  {:<28} {:>9} {:>14} {:>14}",
        "wall",
        secs(first.wall),
        secs(redeploy_median),
        secs(wide.wall)
    );
    let mut outside: Vec<f64> = redeploys
        .iter()
        .map(|d| d.wall.as_secs_f64() - d.steps.iter().map(|(_, s)| s).sum::<f64>())
        .collect();
    outside.sort_by(f64::total_cmp);
    println!(
        "  outside the steps (process start, local build {}, opening the channel): {:.2}s (median of wall - sum of steps)",
        secs(build_median),
        outside[outside.len() / 2]
    );
    println!("\n  floor (laps inside the one ssh command, medians):");
    for (name, s) in &floor_laps {
        println!("    {name:<26} {s:>6.2}s");
    }
    println!(
        "    {:<26} {:>6.2}s   (wall {}: {:.2}s outside = ssh connect, auth, session)",
        "sum of laps",
        laps_total,
        secs(floor_median),
        floor_median.as_secs_f64() - laps_total
    );

    // 5. Summary.
    let plain = &redeploys[redeploys.len() / 2];
    let ratio_median = redeploy_median.as_secs_f64() / floor_median.as_secs_f64();
    let ratio_min = redeploy_min.as_secs_f64() / floor_min.as_secs_f64();
    let rows: Vec<(String, String)> = vec![
        (
            "added RTT (TCP echo through the proxy)".into(),
            format!("{:.1} ms", rtt.as_secs_f64() * 1e3),
        ),
        (
            "`ssh true` direct / through the proxy".into(),
            format!(
                "{:.0} ms / {:.0} ms",
                ssh_direct.as_secs_f64() * 1e3,
                ssh_proxied.as_secs_f64() * 1e3
            ),
        ),
        (
            "first deploy (venv built)".into(),
            format!("{} ({})", secs(first.wall), first.venv),
        ),
        (
            format!("code-only redeploy, {runs} runs (min / median)"),
            format!("{} / {}", secs(redeploy_min), secs(redeploy_median)),
        ),
        (
            format!("floor: one ssh command, {runs} runs (min / median)"),
            format!("{} / {}", secs(floor_min), secs(floor_median)),
        ),
        (
            "ratio redeploy / floor (min / median)".into(),
            format!(
                "{ratio_min:.2}x / {ratio_median:.2}x (goal <= 1.5x: {})",
                if ratio_median <= 1.5 {
                    "met"
                } else {
                    "NOT met"
                }
            ),
        ),
        (
            "SSH connections per deploy".into(),
            format!(
                "{} (proxy saw {})",
                plain.connections, plain.proxy_connections
            ),
        ),
        (
            "SSH channels per deploy".into(),
            format!("{}", plain.channels),
        ),
        (
            "channels with +10 shared_dirs +10 hooks".into(),
            format!(
                "{} ({})",
                wide.channels,
                if wide.channels == plain.channels && wide.connections == plain.connections {
                    "constant"
                } else {
                    "GROWS"
                }
            ),
        ),
        (
            "deploy time with +10 shared_dirs +10 hooks".into(),
            secs(wide.wall),
        ),
        (
            "shipit connect / local build (median)".into(),
            format!(
                "{} / {}",
                cell(&shipit_steps, "connect"),
                secs(build_median)
            ),
        ),
    ];
    println!("\n== summary");
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    for (k, v) in &rows {
        println!("  {k:<width$}  {v}");
    }
    println!("  (benchmark took {})", secs(bench_started.elapsed()));

    assert_eq!(
        (wide.connections, wide.channels),
        (plain.connections, plain.channels),
        "round trips grew with steps and shared paths"
    );
    if std::env::var_os("SHIPIT_BENCH_KEEP").is_some() {
        // The servers stop when the bench ends; the files stay for inspection.
        let kept = [project.keep(), deploy_dir.keep(), home.keep()];
        println!("  kept (project, deploy_to, HOME): {kept:?}");
    }
    drop(proxy);
}
