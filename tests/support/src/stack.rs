//! A real deploy target for integration tests: OpenSSH sshd (logging in as `deploy`), nginx and
//! supervisord running as `deploy`, a deploy-owned `deploy_to`, and the example project under git
//! with a generated shipit.toml whose target points at all of them. Needs root.
//!
//! [`Stack::start`] gives a test its own stack on fresh ports and directories, so tests run in
//! parallel threads; [`Stack::shipit`] runs shipit against it (what it did is a [`Run`]).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::project::Project;
pub use crate::run::{Run, DEPLOY_TIMEOUT};
use crate::*;

/// How long nginx gets to apply a reload (it is asynchronous).
pub const SERVE_TIMEOUT: Duration = Duration::from_secs(15);

pub const TARGET: &str = "test";

// ---------------------------------------------------------------------------------------------
// The stack of one test.

/// How the target section of shipit.toml is written.
#[derive(Clone, Debug)]
pub struct TargetOptions {
    /// `hosts = [...]`.
    pub hosts: Vec<String>,
    /// `known_hosts = "..."`, when set.
    pub known_hosts: Option<PathBuf>,
    /// `listen` for the nginx site.
    pub listen: String,
    /// `keep_releases = N`, when set (shipit's default otherwise).
    pub keep_releases: Option<u32>,
    /// Extra lines appended inside `[targets.test]`.
    pub extra: String,
    /// `deploy_to` is this directory inside the host's base directory.
    pub app: String,
}

/// One target machine: sshd, nginx and supervisord, and where releases go.
pub struct Host {
    // Dropped in this order: programs stop before their directories go.
    pub sup: Supervisord,
    pub nginx: Nginx,
    pub sshd: Sshd,
    /// Deploy-owned base directory; `deploy_to` is `base/app`.
    pub base: tempfile::TempDir,
}

impl Host {
    pub fn start() -> Host {
        let sshd = Sshd::start();
        Host {
            sup: Supervisord::start(),
            nginx: Nginx::start(),
            sshd,
            base: deploy_owned_tempdir(),
        }
    }

    /// A host without the programs at `hidden` (absolute paths, e.g. `/usr/local/bin/uv`): its
    /// daemons, and so every SSH session, run in a private mount namespace in which each is
    /// replaced by `/dev/null` (not executable, so `command -v` finds nothing). The rest of the
    /// machine, and the test, still have them.
    pub fn start_without(hidden: &[&str]) -> Host {
        let hidden: Vec<PathBuf> = hidden.iter().map(PathBuf::from).collect();
        std::thread::spawn(move || {
            crate::fleet::ns::enter_private_mount_namespace();
            for path in &hidden {
                crate::fleet::ns::bind(Path::new("/dev/null"), path);
            }
            Host::start()
        })
        .join()
        .expect("start a host without some programs")
    }

    /// `deploy_to` with the default directory name.
    pub fn deploy_to(&self) -> PathBuf {
        self.base.path().join("app")
    }
}

/// A test's world: the example project under git, a private HOME for shipit and one host.
pub struct Stack {
    pub host: Host,
    pub project: Project,
    /// Root-owned, empty: shipit's HOME, so root's real ~/.ssh is neither used nor modified.
    pub home: tempfile::TempDir,
    /// TCP port nginx serves the site on.
    pub port: u16,
    pub options: TargetOptions,
    /// The `[project]` tables of shipit.toml: [`PROJECT_TOML`] unless the test changes them.
    pub project_toml: String,
    pub started: Instant,
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Per-test timing, visible with --nocapture.
        let test = self.started.elapsed();
        let teardown = Instant::now();
        self.host.sup.stop();
        let sup = teardown.elapsed();
        self.host.nginx.stop();
        self.host.sshd.stop();
        eprintln!(
            "[timing] {}: {:.1}s (+{:.1}s stopping daemons, supervisord {:.1}s)",
            std::thread::current().name().unwrap_or("?"),
            test.as_secs_f64(),
            teardown.elapsed().as_secs_f64(),
            sup.as_secs_f64()
        );
    }
}

/// `[project]` section shared by every configuration.
pub const PROJECT_TOML: &str = r#"[project]
name = "hello"
python = "/usr/bin/python3"

[project.requirements]
deployment = "requirements/deployment.txt"
"#;

/// The `[targets.test]` tables for a target whose paths are those of `host` (the deploy_to,
/// nginx and supervisor of `host` are the paths every host of the target is given).
pub fn target_toml(host: &Host, options: &TargetOptions) -> String {
    target_toml_named(TARGET, "hello.conf", host, options)
}

/// [`target_toml`] for a target called `name` whose nginx site is `site` in the sites dir.
pub fn target_toml_named(name: &str, site: &str, host: &Host, options: &TargetOptions) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap(); // a TOML basic string
    let hosts: Vec<String> = options.hosts.iter().map(|h| quote(h)).collect();
    let mut text = format!(
        "\n[targets.{name}]\n\
         hosts = [{hosts}]\n\
         deploy_to = {deploy_to}\n\
         environment = \"deployment\"\n\
         shared_dirs = [\"var\"]\n\
         identity_file = {key}\n",
        hosts = hosts.join(", "),
        deploy_to = quote(&host.base.path().join(&options.app).display().to_string()),
        key = quote(&host.sshd.client_key.display().to_string()),
    );
    if let Some(known) = &options.known_hosts {
        text.push_str(&format!(
            "known_hosts = {}\n",
            quote(&known.display().to_string())
        ));
    }
    if let Some(keep) = options.keep_releases {
        text.push_str(&format!("keep_releases = {keep}\n"));
    }
    text.push_str(&options.extra);
    text.push_str(&format!(
        "\n[targets.{name}.vars]\n\
         listen = {listen}\n\
         \n[targets.{name}.nginx]\n\
         site = {site}\n\
         test = {test}\n\
         reload = {reload}\n\
         \n[targets.{name}.supervisor]\n\
         conf_dir = {conf_dir}\n\
         ctl = {ctl}\n",
        listen = quote(&options.listen),
        site = quote(&host.nginx.sites_dir.join(site).display().to_string()),
        test = quote(&host.nginx.test_command()),
        reload = quote(&host.nginx.reload_command()),
        conf_dir = quote(&host.sup.include_dir.display().to_string()),
        ctl = quote(&host.sup.ctl_command()),
    ));
    text
}

impl Stack {
    /// A stack whose target trusts the sshd's host key through `known_hosts`.
    pub fn start() -> Stack {
        Stack::start_on(Host::start)
    }

    /// A single-host stack whose app uses `pg`'s database: the example's PostgreSQL requirements,
    /// and `DATABASE_URL` as a secret read from a file in the returned directory (keep it).
    pub fn start_with_postgres(pg: &Postgres) -> (Stack, tempfile::TempDir) {
        let mut stack = Stack::start();
        let secrets = tempfile::tempdir().unwrap();
        let url = secrets.path().join("database-url");
        std::fs::write(&url, format!("{}\n", pg.url())).unwrap();
        stack.set_requirements("requirements/postgres.txt");
        stack.set_options(|o| {
            o.extra = format!(
                "secrets = {{ DATABASE_URL = {{ file = {:?} }} }}\n",
                url.display().to_string()
            )
        });
        (stack, secrets)
    }

    /// [`Stack::start`] on a host without the programs at `hidden` ([`Host::start_without`]).
    pub fn start_without(hidden: &[&str]) -> Stack {
        Stack::start_on(|| Host::start_without(hidden))
    }

    fn start_on(host: impl FnOnce() -> Host) -> Stack {
        prepare_host_user();
        let host = host();
        let port = free_port();
        let options = TargetOptions {
            hosts: vec![host.sshd.host_spec()],
            known_hosts: Some(host.sshd.known_hosts.clone()),
            listen: format!("127.0.0.1:{port}"),
            keep_releases: None,
            extra: String::new(),
            app: "app".into(),
        };
        Stack::new(host, port, options)
    }

    /// A stack for `host` (whose paths the target names) configured with `options`.
    pub fn new(host: Host, port: u16, options: TargetOptions) -> Stack {
        let stack = Stack {
            host,
            project: crate::project::project(),
            home: tempfile::Builder::new()
                .prefix("shipit-home-")
                .tempdir()
                .expect("home tempdir"),
            port,
            options,
            project_toml: PROJECT_TOML.to_string(),
            started: Instant::now(),
        };
        stack.write_config();
        stack
    }

    /// Rewrites shipit.toml from `self.project_toml` and `self.options` and commits it.
    pub fn write_config(&self) {
        let text = format!(
            "{}{}",
            self.project_toml,
            target_toml(&self.host, &self.options)
        );
        self.project.write("shipit.toml", &text);
        self.project.git(&["add", "-A"]);
        self.project.git(&[
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "shipit.toml for the test",
        ]);
    }

    pub fn set_options(&mut self, change: impl FnOnce(&mut TargetOptions)) {
        change(&mut self.options);
        self.write_config();
    }

    /// Installs the `deployment` environment from `file` (e.g. `requirements/postgres.txt`)
    /// instead of `requirements/deployment.txt`.
    pub fn set_requirements(&mut self, file: &str) {
        let from = "deployment = \"requirements/deployment.txt\"";
        assert!(self.project_toml.contains(from), "{}", self.project_toml);
        let to = format!("deployment = {}", serde_json::to_string(file).unwrap());
        self.project_toml = self.project_toml.replace(from, &to);
        self.write_config();
    }

    pub fn deploy_to(&self) -> PathBuf {
        self.host.base.path().join(&self.options.app)
    }

    /// Runs `shipit -C PROJECT ARGS -v` like [`Stack::shipit`], calling `on_line` with each line
    /// of its stderr as it comes (and shipit's pid).
    pub fn watched(&self, args: &[&str], on_line: &mut (dyn FnMut(&str, u32) + Send)) -> Run {
        let mut command = self.project.shipit_with_home(self.home.path());
        command
            .args(args)
            .arg("-v")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = command.spawn().expect("spawn shipit");
        let pid = child.id();
        let mut stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (code, stdout, stderr) = std::thread::scope(|scope| {
            let out = scope.spawn(move || {
                let mut text = String::new();
                let _ = stdout.read_to_string(&mut text);
                text
            });
            let err = scope.spawn(move || {
                let mut text = String::new();
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    on_line(&line, pid);
                    text.push_str(&line);
                    text.push('\n');
                }
                text
            });
            let deadline = started + DEPLOY_TIMEOUT;
            let code = loop {
                if let Some(status) = child.try_wait().expect("wait for shipit") {
                    break status.code().unwrap_or(-1);
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break -1;
                }
                std::thread::sleep(Duration::from_millis(10));
            };
            (code, out.join().unwrap(), err.join().unwrap())
        });
        Run {
            code,
            stdout,
            stderr,
            elapsed: started.elapsed(),
        }
    }

    /// Runs `shipit -C PROJECT ARGS` with the private HOME and no agent.
    pub fn shipit(&self, args: &[&str]) -> Run {
        run_shipit(&self.project, self.home.path(), args)
    }

    /// [`Stack::shipit`] with `env` set too (secrets a target reads from the environment).
    pub fn shipit_env(&self, env: &[(&str, &str)], args: &[&str]) -> Run {
        let mut command = self.project.shipit_with_home(self.home.path());
        command.envs(env.iter().copied());
        Run::of(
            assert_cmd::Command::from_std(command)
                .args(args)
                .timeout(DEPLOY_TIMEOUT),
        )
    }

    /// `shipit deploy --target test --json ARGS`.
    pub fn deploy(&self, args: &[&str]) -> Run {
        run_on_target(&self.project, self.home.path(), "deploy", args)
    }

    /// A deploy that must succeed; returns its JSON.
    pub fn deploy_ok(&self) -> Value {
        let run = self.deploy(&[]);
        if run.code != 0 {
            panic!(
                "deploy failed ({}) after {:?}\nstderr:\n{}\nsupervisord log:\n{}\napp log:\n{}\nnginx error.log:\n{}",
                run.code,
                run.elapsed,
                run.stderr,
                self.host.sup.log(),
                app_log(&self.deploy_to()),
                self.host.nginx.error_log()
            );
        }
        run.json()
    }

    /// What `current` points at (e.g. `releases/20260102030405`), if anything.
    pub fn current(&self) -> Option<String> {
        current_of(&self.deploy_to())
    }

    /// The id of the release `current` points at; panics unless `current` exists and points
    /// into `releases/`.
    pub fn current_id(&self) -> String {
        let current = self.current().expect("`current` exists");
        current
            .strip_prefix("releases/")
            .unwrap_or_else(|| panic!("`current` -> {current}"))
            .to_string()
    }

    pub fn releases(&self) -> Vec<String> {
        list_dir(&self.deploy_to().join("releases"))
    }

    pub fn venvs(&self) -> Vec<String> {
        list_dir(&self.deploy_to().join("venvs"))
    }

    /// `GET path` through nginx once `accept` likes the answer (nginx reloads asynchronously);
    /// panics with the last answer otherwise.
    pub fn page(&self, path: &str, accept: impl Fn(u16, &str) -> bool) -> String {
        let mut last = None;
        let got = wait_for(SERVE_TIMEOUT, || {
            let answer = http_get(self.port, path);
            let ok = matches!(&answer, Ok((status, body)) if accept(*status, body));
            last = Some(answer);
            ok.then(|| last.as_ref().unwrap().as_ref().unwrap().1.clone())
        });
        got.unwrap_or_else(|| {
            panic!(
                "GET {path} on port {} never gave the expected answer; last: {last:?}\n\
                 nginx error.log:\n{}\nsupervisord log:\n{}\napp log:\n{}",
                self.port,
                self.host.nginx.error_log(),
                self.host.sup.log(),
                app_log(&self.deploy_to())
            )
        })
    }

    /// The index page once it shows `release: ID`.
    pub fn serves_release(&self, id: &str) -> String {
        let needle = format!("release: {id}\n");
        self.page("/", |status, body| status == 200 && body.contains(&needle))
    }

    /// `supervisorctl status` as deploy.
    pub fn programs(&self) -> String {
        supervisor_status(&self.host.sup)
    }

    /// A deploy that must succeed; returns the id of the release it made.
    pub fn deploy_release(&self) -> String {
        self.deploy_ok()["release"]
            .as_str()
            .expect("json has a release")
            .to_string()
    }

    /// `shipit rollback --target test --json ARGS`.
    pub fn rollback(&self, args: &[&str]) -> Run {
        run_on_target(&self.project, self.home.path(), "rollback", args)
    }

    /// `shipit releases --target test --json ARGS`.
    pub fn list_releases(&self, args: &[&str]) -> Run {
        run_on_target(&self.project, self.home.path(), "releases", args)
    }

    /// Release `id`'s recorded state (`.shipit/state`).
    pub fn state(&self, id: &str) -> String {
        state_of(&self.deploy_to(), id)
    }

    /// Whether `deploy_to/.shipit/lock` exists.
    pub fn locked(&self) -> bool {
        self.deploy_to().join(".shipit/lock").exists()
    }

    /// The lines of the deploy log `deploy_to/.shipit/log`, each split at its tabs: time, who,
    /// action, release, revision, outcome, shipit (its `--version` without the name).
    pub fn log(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.deploy_to().join(".shipit/log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    }

    /// Commits a visible change to the index page so the next deploy differs.
    pub fn change_page(&self, marker: &str) {
        change_page(&self.project, marker);
    }
}

/// Commits a visible change to `project`'s index page (`<p>MARKER</p>` under its heading).
pub fn change_page(project: &Project, marker: &str) {
    let page = "pages/templates/pages/index.html";
    let text = project.read(page);
    project.write(
        page,
        &text.replace(
            "<h1>hello</h1>",
            &format!("<h1>hello</h1>\n<p>{marker}</p>"),
        ),
    );
    project.commit_all(marker);
}

/// `shipit -C PROJECT ARGS` as [`Project::shipit_with_home`] runs it, killed after
/// [`DEPLOY_TIMEOUT`].
pub fn run_shipit(project: &Project, home: &Path, args: &[&str]) -> Run {
    let mut command = assert_cmd::Command::from_std(project.shipit_with_home(home));
    Run::of(command.args(args).timeout(DEPLOY_TIMEOUT))
}

/// `shipit COMMAND --target test --json ARGS` as [`run_shipit`] runs it.
pub fn run_on_target(project: &Project, home: &Path, command: &str, args: &[&str]) -> Run {
    let mut all = vec![command, "--target", TARGET, "--json"];
    all.extend_from_slice(args);
    run_shipit(project, home, &all)
}

pub fn current_of(deploy_to: &Path) -> Option<String> {
    std::fs::read_link(deploy_to.join("current"))
        .ok()
        .map(|p| p.display().to_string())
}

/// Entry names of `dir`, sorted; empty when it does not exist.
pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The release's `.shipit/state`, trimmed.
pub fn state_of(deploy_to: &Path, id: &str) -> String {
    std::fs::read_to_string(deploy_to.join("releases").join(id).join(".shipit/state"))
        .unwrap_or_else(|e| format!("<no state file: {e}>"))
        .trim()
        .to_string()
}

/// Settings text that collects static files into `BASE_DIR / static_root` (a path of `/`-joined
/// parts) with hashed names (ManifestStaticFilesStorage), to append to the deployment settings.
pub fn hashed_static_settings(static_root: &str) -> String {
    let root: String = static_root
        .split('/')
        .map(|part| format!(" / \"{part}\""))
        .collect();
    format!(
        "\nSTATIC_ROOT = BASE_DIR{root}\n\
         STORAGES = {{\n    \"default\": {{\"BACKEND\": \"django.core.files.storage.FileSystemStorage\"}},\n    \
         \"staticfiles\": {{\"BACKEND\": \"django.contrib.staticfiles.storage.ManifestStaticFilesStorage\"}},\n}}\n"
    )
}

/// The stylesheet URL the example's index page links to (a hashed name with
/// ManifestStaticFilesStorage).
pub fn stylesheet_url(page: &str) -> String {
    let start = page.find("href=\"").expect("a stylesheet link") + 6;
    let end = start + page[start..].find('"').expect("a closing quote");
    page[start..end].to_string()
}

/// Asserts that no request of the load `report` failed `during` what the test did, showing
/// nginx's error log and the app's log when some did.
pub fn assert_no_request_failed(stack: &Stack, report: &crate::load::LoadReport, during: &str) {
    eprintln!("[load] {report}");
    assert_eq!(
        report.failed,
        0,
        "requests failed{during}: {report}\nnginx error.log:\n{}\napp log:\n{}",
        stack.host.nginx.error_log(),
        app_log(&stack.deploy_to())
    );
}

pub fn app_log(deploy_to: &Path) -> String {
    std::fs::read_to_string(deploy_to.join("shared/log/hello-app.log")).unwrap_or_default()
}

pub fn supervisor_status(sup: &Supervisord) -> String {
    let out = run_as_deploy(&format!("{} status", sup.ctl_command()));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `visits: N` count on the example project's index page (each view of it adds one, in the
/// project's database).
pub fn visits(body: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix("visits: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no visit count in {body}"))
}

/// The program name of release `id` of the test target.
pub fn program(id: &str) -> String {
    format!("hello.{TARGET}.{id}")
}
