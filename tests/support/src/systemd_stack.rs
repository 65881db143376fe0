//! A test's world for the systemd backend: the example project under git, a private HOME for
//! shipit and a [`SystemdHost`] (a real systemd in namespaces of its own, with sshd and nginx
//! inside), and a shipit.toml whose target runs the app under that systemd. The systemd
//! counterpart of [`Stack`](crate::stack::Stack). Needs root. Two stacks may share one host
//! ([`SystemdStack::beside`]): two sites, each its own project, target and deploy_to.

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use crate::project::Project;
use crate::stack::{change_page, run_shipit, Run, SERVE_TIMEOUT, TARGET};
use crate::systemd::SystemdHost;
use crate::*;

/// The project, shipit's HOME and the first host of the target.
pub struct SystemdStack {
    /// Shared by the stacks [`SystemdStack::beside`] this one.
    pub host: Rc<SystemdHost>,
    pub project: Project,
    /// `[project] name`: `hello` (the example project's module, whatever the name).
    pub name: String,
    /// The target's name: `test`.
    pub target: String,
    /// `deploy_to` is this directory in the host's base directory: `app`.
    pub app: String,
    /// Root-owned, empty: shipit's HOME.
    pub home: tempfile::TempDir,
    /// TCP port nginx serves the site on.
    pub port: u16,
    /// The nginx site's file name in the host's sites dir: `NAME.conf`.
    pub site: String,
    /// Extra lines of `[targets.test]` (after its plain keys; may open sub-tables).
    pub extra: String,
    /// The `[targets.test.systemd]` table's lines.
    pub systemd: String,
    /// `[targets.test.app] manager`.
    pub manager: String,
    /// `hosts = [...]`: the host's own when empty.
    pub hosts: Vec<String>,
    /// `known_hosts = ...`: the host's own when `None`.
    pub known_hosts: Option<PathBuf>,
    /// The `deployment` requirements file.
    pub requirements: String,
    pub started: Instant,
}

impl Drop for SystemdStack {
    fn drop(&mut self) {
        eprintln!(
            "[timing] {}: {:.1}s (last boot {:.1}s)",
            std::thread::current().name().unwrap_or("?"),
            self.started.elapsed().as_secs_f64(),
            self.host.boot_time.as_secs_f64()
        );
    }
}

impl SystemdStack {
    /// A booted host and a project whose target `test` runs the app as system units of it.
    pub fn start() -> SystemdStack {
        SystemdStack::start_as("hello", TARGET, "app")
    }

    /// [`SystemdStack::start`] for project `name`, target `target`, deploy_to `app` in the
    /// host's base directory.
    pub fn start_as(name: &str, target: &str, app: &str) -> SystemdStack {
        prepare_host_user();
        // The README's advice for `shipit logs` of system units: deploy reads the journal as a
        // member of systemd-journal.
        static JOURNAL_GROUP: std::sync::Once = std::sync::Once::new();
        JOURNAL_GROUP.call_once(|| {
            let out = std::process::Command::new("usermod")
                .args(["-aG", "systemd-journal", "deploy"])
                .output()
                .expect("run usermod");
            assert!(out.status.success(), "usermod: {out:?}");
        });
        SystemdStack::on(Rc::new(SystemdHost::start()), name, target, app)
    }

    /// A second site on `other`'s host: project `name`, target `target`, deploy_to `app` in the
    /// host's base directory, its own nginx site (`NAME.conf`) and port.
    pub fn beside(other: &SystemdStack, name: &str, target: &str, app: &str) -> SystemdStack {
        SystemdStack::on(Rc::clone(&other.host), name, target, app)
    }

    fn on(host: Rc<SystemdHost>, name: &str, target: &str, app: &str) -> SystemdStack {
        let stack = SystemdStack {
            hosts: Vec::new(),
            known_hosts: None,
            host,
            name: name.into(),
            target: target.into(),
            app: app.into(),
            project: crate::project::project(),
            home: tempfile::Builder::new()
                .prefix("shipit-home-")
                .tempdir()
                .expect("home tempdir"),
            port: free_port(),
            site: format!("{name}.conf"),
            extra: String::new(),
            systemd: "scope = \"system\"\n".into(),
            manager: "systemd".into(),
            requirements: "requirements/deployment.txt".into(),
            started: Instant::now(),
        };
        stack.write_config();
        stack
    }

    /// Rewrites shipit.toml and commits it.
    pub fn write_config(&self) {
        let quote = |s: &str| serde_json::to_string(s).unwrap();
        let hosts = match self.hosts.is_empty() {
            true => vec![quote(&self.host.sshd.host_spec())],
            false => self.hosts.iter().map(|h| quote(h)).collect(),
        };
        let text = format!(
            "[project]\nname = {name}\npython = \"/usr/bin/python3\"\n\
             settings_module = \"hello.settings.selected\"\nwsgi_app = \"hello.wsgi:application\"\n\n\
             [project.requirements]\ndeployment = {requirements}\n\n\
             [targets.{target}]\n\
             hosts = [{hosts}]\n\
             deploy_to = {deploy_to}\n\
             environment = \"deployment\"\n\
             shared_dirs = [\"var\"]\n\
             identity_file = {key}\n\
             known_hosts = {known}\n\
             {extra}\n\
             \n[targets.{target}.vars]\nlisten = {listen}\n\
             \n[targets.{target}.nginx]\nsite = {site}\ntest = {test}\nreload = {reload}\n\
             \n[targets.{target}.app]\nmanager = {manager}\n\
             \n[targets.{target}.systemd]\n{systemd}",
            name = quote(&self.name),
            target = self.target,
            requirements = quote(&self.requirements),
            hosts = hosts.join(", "),
            deploy_to = quote(&self.deploy_to().display().to_string()),
            key = quote(&self.host.sshd.client_key.display().to_string()),
            known = quote(
                &self
                    .known_hosts
                    .as_ref()
                    .unwrap_or(&self.host.sshd.known_hosts)
                    .display()
                    .to_string()
            ),
            extra = self.extra,
            listen = quote(&format!("127.0.0.1:{}", self.port)),
            site = quote(
                &self
                    .host
                    .nginx
                    .sites_dir
                    .join(&self.site)
                    .display()
                    .to_string()
            ),
            test = quote(&self.host.nginx.test_command()),
            reload = quote(&self.host.nginx.reload_command()),
            systemd = self.systemd,
            manager = quote(&self.manager),
        );
        self.project.write("shipit.toml", &text);
        self.project.commit_all("shipit.toml for the test");
    }

    /// Changes what shipit.toml says and commits it.
    pub fn configure(&mut self, change: impl FnOnce(&mut SystemdStack)) {
        change(self);
        self.write_config();
    }

    pub fn deploy_to(&self) -> PathBuf {
        self.host.base.path().join(&self.app)
    }

    /// Reboots the host (not one two stacks share).
    pub fn reboot(&mut self) {
        Rc::get_mut(&mut self.host)
            .expect("a host two stacks share is not rebooted")
            .reboot();
    }

    /// `shipit COMMAND --target TARGET --json ARGS`.
    pub fn on_target(&self, command: &str, args: &[&str]) -> Run {
        let mut all = vec![command, "--target", &self.target, "--json"];
        all.extend_from_slice(args);
        self.shipit(&all)
    }

    /// `shipit -C PROJECT ARGS` with the private HOME.
    pub fn shipit(&self, args: &[&str]) -> Run {
        run_shipit(&self.project, self.home.path(), args)
    }

    /// `shipit deploy --target TARGET --json ARGS`.
    pub fn deploy(&self, args: &[&str]) -> Run {
        self.on_target("deploy", args)
    }

    /// A deploy that must succeed; the id of the release it made.
    pub fn deploy_release(&self) -> String {
        let run = self.deploy(&[]);
        if run.code != 0 {
            panic!(
                "deploy failed ({}) after {:?}\nstderr:\n{}\njournal:\n{}\nnginx error.log:\n{}",
                run.code,
                run.elapsed,
                run.stderr,
                self.journal(),
                self.host.nginx.error_log()
            );
        }
        run.json()["release"]
            .as_str()
            .expect("json has a release")
            .to_string()
    }

    /// `shipit rollback --target TARGET --json ARGS`.
    pub fn rollback(&self, args: &[&str]) -> Run {
        self.on_target("rollback", args)
    }

    /// The prefix of the target's units: `PROJECT.TARGET.`.
    pub fn unit_prefix(&self) -> String {
        format!("{}.{}.", self.name, self.target)
    }

    /// The last lines of the host's journal of the test's units (named either way).
    pub fn journal(&self) -> String {
        let (new, legacy) = (
            format!("{}*", self.unit_prefix()),
            format!("{}-{}-*", self.name, self.target),
        );
        self.host
            .journalctl(&["-u", &new, "-u", &legacy, "-n", "60", "-o", "cat"])
    }

    /// The id of the release `current` points at.
    pub fn current_id(&self) -> String {
        crate::stack::current_of(&self.deploy_to())
            .and_then(|c| c.strip_prefix("releases/").map(str::to_string))
            .expect("`current` points into releases/")
    }

    /// The index page through nginx once it shows `release: ID`.
    pub fn serves_release(&self, id: &str) -> String {
        let needle = format!("release: {id}\n");
        let mut last = None;
        wait_for(SERVE_TIMEOUT, || {
            let answer = http_get(self.port, "/");
            let ok = matches!(&answer, Ok((200, body)) if body.contains(&needle));
            last = Some(answer);
            ok.then(|| last.as_ref().unwrap().as_ref().unwrap().1.clone())
        })
        .unwrap_or_else(|| {
            panic!(
                "the site on port {} never served release {id}; last: {last:?}\njournal:\n{}\nnginx error.log:\n{}",
                self.port,
                self.journal(),
                self.host.nginx.error_log()
            )
        })
    }

    /// The test target's running units (`PROJECT.TARGET.*`), sorted.
    pub fn units(&self) -> Vec<String> {
        self.host.running_units(&format!("{}*", self.unit_prefix()))
    }

    /// Commits a visible change to the index page so the next deploy differs.
    pub fn change_page(&self, marker: &str) {
        change_page(&self.project, marker);
    }

    /// A unit's `systemctl is-enabled` answer.
    pub fn enabled(&self, unit: &str) -> String {
        let out = self.host.systemctl(&["is-enabled", unit]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}
