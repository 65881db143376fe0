//! systemd: a template unit per process (`<project>.<target>.<name>@<release>.service`) with a
//! run script, the singletons' units started at the switch, and the schedule as timers instead of
//! shipit's scheduler. The files travel as one text per kind, a [`UnitFiles`] bundle.

use crate::config::{Process, Target, SCHEDULER};
use crate::error::Result;
use crate::templates::{RenderContext, Templates};

use super::{ProcessManager, Rendering, ServiceConfigs};

/// The systemd process manager.
pub(crate) struct Systemd;

impl ProcessManager for Systemd {
    fn name(&self) -> &'static str {
        "systemd"
    }

    fn render(&self, rendering: &mut Rendering<'_>, configs: &mut ServiceConfigs) -> Result<()> {
        let Some(settings) = &rendering.target.app else {
            return Ok(());
        };
        let Rendering {
            templates,
            context,
            config,
            target,
            placed,
        } = rendering;
        context.set("scope", settings.systemd.scope.name());
        context.set("requires", settings.systemd.required_units().join(" "));
        context.set("hardened", settings.systemd.hardened());
        // A private /tmp would hide a deploy_to under it.
        let in_tmp = ["/tmp/", "/var/tmp/"]
            .iter()
            .any(|t| format!("{}/", target.deploy_to).starts_with(t));
        context.set("private_tmp", !in_tmp);
        let prefix = unit_prefix(&config.project.name, &target.name);
        let web = placed.web.then(|| {
            let server = super::server::AppServer::of(target);
            (
                crate::config::WEB_ROLE.to_string(),
                server.web_process(target),
            )
        });
        let mut units = UnitFiles::new(&prefix);
        for (name, process) in web.iter().chain(&placed.processes) {
            units.add(templates, context, target, name, process)?;
        }
        let mut once = UnitFiles::new(&prefix);
        // Under systemd the schedule's timers replace the scheduler.
        for (name, process) in placed.once.iter().filter(|(name, _)| name != SCHEDULER) {
            once.add(templates, context, target, name, process)?;
        }
        let mut timers = UnitFiles::new(&prefix);
        if placed.once.iter().any(|(name, _)| name == SCHEDULER) {
            for (index, (when, commands)) in placed.schedule.iter().enumerate() {
                timers.add_timer(templates, context, target, index + 1, when, commands)?;
            }
        }
        units.keep(
            configs,
            "units",
            "systemd units and run scripts",
            is_template,
        );
        once.keep(
            configs,
            "units-once",
            "systemd units started at the switch (once)",
            is_template,
        );
        timers.keep(
            configs,
            "timers",
            "systemd timers of the schedule, their services and scripts (at the switch)",
            |name| name.ends_with(".timer") || name.ends_with(".service"),
        );
        Ok(())
    }
}

/// The systemd unit name prefix of a target's units: `<project>.<target>`; a release's web app
/// server is `<project>.<target>.web@<release>.service`, a second replica of process `worker`
/// `<project>.<target>.worker.2@<release>.service`, schedule entry 1
/// `<project>.<target>.schedule-1.timer`. Project, target and process names are letters,
/// digits, `_` and `-` (`config::validate`), never a dot: the dot separates them, so two
/// targets' names never meet on one host (as nginx's upstream `<project>.<target>.app` and
/// supervisor's `<project>.<target>.<release>.conf`). With `-`, project `hello-a` target `b`
/// and project `hello` target `a-b` were both `hello-a-b-web@`.
pub(crate) fn unit_prefix(project: &str, target: &str) -> String {
    format!("{project}.{target}")
}

/// The prefix releases made before [`unit_prefix`] named their units with: `<project>-<target>`
/// (`<project>-<target>-web@<release>.service`). Such a release keeps those names in its own
/// lists; the shell reads this to tell its web unit, its processes and its journal, for a
/// rollback to it and for `shipit logs` while it is live.
pub(crate) fn legacy_unit_prefix(project: &str, target: &str) -> String {
    format!("{project}-{target}")
}

/// Whether `name` is a template unit (what the switch installs and starts instances of).
fn is_template(name: &str) -> bool {
    name.ends_with("@.service")
}

/// The systemd files of one release's processes on one host: a template unit per process
/// (per replica, for several) and a run script per process, kept in the release's
/// `.shipit/systemd/`, and the list of those `pm_systemd_*` installs.
#[derive(Debug)]
pub(crate) struct UnitFiles {
    /// The target's [`unit_prefix`].
    prefix: String,
    files: Vec<(String, String)>,
}

impl UnitFiles {
    /// No file yet, for the units named `PREFIX.…`.
    fn new(prefix: &str) -> UnitFiles {
        UnitFiles {
            prefix: prefix.to_string(),
            files: Vec::new(),
        }
    }

    /// Renders process `name`'s run script and template unit(s); `context` has the release's
    /// values and `scope`.
    fn add(
        &mut self,
        templates: &Templates,
        context: &mut RenderContext,
        target: &Target,
        name: &str,
        process: &Process,
    ) -> Result<()> {
        let web = name == crate::config::WEB_ROLE && process.run.is_empty();
        let script = format!("{name}.sh");
        let prefix = &self.prefix;
        for replica in 1..=process.replicas {
            let unit = match process.replicas {
                1 => format!("{prefix}.{name}"),
                _ => format!("{prefix}.{name}.{replica}"),
            };
            let values = std::collections::BTreeMap::from([
                ("name", minijinja::Value::from(unit.as_str())),
                ("process", minijinja::Value::from(name)),
                ("web", minijinja::Value::from(web)),
                ("command", minijinja::Value::from(process.exec())),
                ("shell", minijinja::Value::from(process.needs_shell())),
                ("script", minijinja::Value::from(script.as_str())),
                ("replica", minijinja::Value::from(replica)),
                ("replicas", minijinja::Value::from(process.replicas)),
                ("stop_timeout", minijinja::Value::from(process.stop_timeout)),
                (
                    "start_timeout",
                    minijinja::Value::from(target.health.timeout.saturating_add(30)),
                ),
            ]);
            context.set("unit", minijinja::Value::from_serialize(&values));
            if replica == 1 {
                let text = templates.render("systemd.run.sh.j2", context)?;
                self.files.push((script.clone(), text));
            }
            let text = templates.render("systemd.service.j2", context)?;
            self.files.push((format!("{unit}@.service"), text));
        }
        Ok(())
    }

    /// Renders schedule entry `entry` (from 1): `PREFIX.schedule-N.timer` firing at the entry's
    /// times, the oneshot `PREFIX.schedule-N.service` it starts, and the release's
    /// `schedule-N.sh` that service runs (the entry's commands, in `current`). `context` has
    /// the release's values and `scope`.
    fn add_timer(
        &mut self,
        templates: &Templates,
        context: &mut RenderContext,
        target: &Target,
        entry: usize,
        when: &str,
        commands: &[String],
    ) -> Result<()> {
        let name = format!("{}.{SCHEDULER}-{entry}", self.prefix);
        let script = format!("{SCHEDULER}-{entry}.sh");
        let quoted: Vec<String> = commands.iter().map(|c| crate::plan::quote(c)).collect();
        let values = std::collections::BTreeMap::from([
            ("name", minijinja::Value::from(name.as_str())),
            ("entry", minijinja::Value::from(entry)),
            ("schedule", minijinja::Value::from(when)),
            (
                "calendar",
                minijinja::Value::from_serialize(crate::calendar::on_calendar(when)),
            ),
            ("script", minijinja::Value::from(script.as_str())),
            ("commands", minijinja::Value::from_serialize(&quoted)),
            (
                "current",
                minijinja::Value::from(crate::plan::quote(&format!(
                    "{}/current",
                    target.deploy_to
                ))),
            ),
        ]);
        context.set("timer", minijinja::Value::from_serialize(&values));
        for (file, template) in [
            (script, "systemd.schedule.sh.j2"),
            (format!("{name}.service"), "systemd.schedule.service.j2"),
            (format!("{name}.timer"), "systemd.timer.j2"),
        ] {
            let text = templates.render(template, context)?;
            self.files.push((file, text));
        }
        Ok(())
    }

    /// Adds the files to `configs` under `systemd/`, and the names of those `listed` picks
    /// to the list file `list` (nothing when there is no file).
    fn keep(
        self,
        configs: &mut ServiceConfigs,
        list: &str,
        what: &'static str,
        listed: impl Fn(&str) -> bool,
    ) {
        if self.files.is_empty() {
            return;
        }
        let names: String = self
            .files
            .iter()
            .filter(|(name, _)| listed(name))
            .map(|(name, _)| format!("{name}\n"))
            .collect();
        for (name, text) in self.files {
            configs.add(format!("systemd/{name}"), what, text);
        }
        configs.add(list, what, names);
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::release::ReleaseId;
    use crate::resolve::placement;
    use crate::templates::BuildInfo;

    fn parse(text: &str) -> Config {
        Config::parse(
            std::path::Path::new("shipit.toml"),
            std::path::Path::new("."),
            text,
        )
        .unwrap()
    }

    /// The systemd files of `target`'s first host in `text`, by path.
    fn rendered(text: &str, target: &str) -> super::super::ServiceConfigs {
        let config = parse(text);
        let target = config.target(target).unwrap();
        let info = BuildInfo {
            build_time: String::new(),
            revision: String::new(),
            dirty: false,
        };
        let release = ReleaseId::parse("20261122010320").unwrap();
        super::super::service_configs(
            &config,
            target,
            &info,
            release,
            "app",
            &placement(target, 0),
        )
        .unwrap()
    }

    /// A project `project` whose target `target` runs web, a worker of two replicas and a
    /// schedule under systemd on one host.
    fn site(project: &str, target: &str) -> String {
        format!(
            r#"
[project]
name = "{project}"

[targets.{target}]
hosts = ["a"]
deploy_to = "/srv/{project}-{target}"
environment = "deployment"

[targets.{target}.app]
manager = "systemd"

[targets.{target}.processes]
worker = {{ run = "celery worker", replicas = 2 }}

[targets.{target}.schedule]
"@daily" = "true"
"#
        )
    }

    /// The unit names each of the release's lists names, and the timers' units.
    fn unit_names(configs: &super::super::ServiceConfigs) -> Vec<String> {
        ["units", "units-once", "timers"]
            .iter()
            .filter_map(|list| configs.get(list))
            .flat_map(str::lines)
            .map(str::to_string)
            .collect()
    }

    /// A process whose `run` needs a shell runs `sh -c` of its own, and its whole unit gets
    /// the stop signal (a shell passes none on); a simple one is exec'd, and only it gets it.
    #[test]
    fn a_process_that_needs_a_shell_runs_one_and_its_unit_is_stopped_whole() {
        let text = site("hello", "prod").replace(
            "worker = { run = \"celery worker\", replicas = 2 }",
            "worker = \"celery worker\"\nticker = \"while true; do ./manage.py tick; sleep 60; done\"",
        );
        let configs = rendered(&text, "prod");
        let file = |name: &str| {
            configs
                .get(&format!("systemd/{name}"))
                .unwrap_or_else(|| panic!("no {name}"))
                .to_string()
        };
        assert!(
            file("ticker.sh")
                .contains("\nexec /bin/sh -c 'while true; do ./manage.py tick; sleep 60; done'\n"),
            "{}",
            file("ticker.sh")
        );
        assert!(file("worker.sh").contains("\nexec celery worker\n"));
        let unit = file("hello.prod.ticker@.service");
        assert!(unit.contains("\nKillMode=control-group\n"), "{unit}");
        let unit = file("hello.prod.worker@.service");
        assert!(unit.contains("\nKillMode=mixed\n"), "{unit}");
    }

    /// System units start after the services the target names and are sandboxed unless told
    /// not to; user units are not (their manager cannot set most of it up).
    #[test]
    fn system_units_want_the_required_services_and_are_hardened() {
        let unit = |text: &str| {
            rendered(text, "prod")
                .get("systemd/hello.prod.web@.service")
                .unwrap()
                .to_string()
        };
        let plain = unit(&site("hello", "prod"));
        assert!(plain.contains("\nAfter=network.target\n"), "{plain}");
        assert!(!plain.contains("Wants="), "{plain}");
        for line in [
            "NoNewPrivileges=yes",
            "PrivateTmp=yes",
            "ProtectSystem=strict",
            "ProtectHome=read-only",
            "ReadWritePaths=/srv/hello-prod",
        ] {
            assert!(plain.contains(&format!("\n{line}\n")), "{line}: {plain}");
        }
        let tuned = site("hello", "prod").replace(
            "manager = \"systemd\"\n",
            "manager = \"systemd\"\n[targets.prod.systemd]\nrequires = [\"postgresql\", \"redis-server.service\"]\nhardening = false\n",
        );
        let tuned = unit(&tuned);
        assert!(
            tuned.contains("\nAfter=network.target postgresql.service redis-server.service\nWants=postgresql.service redis-server.service\n"),
            "{tuned}"
        );
        assert!(!tuned.contains("ProtectSystem"), "{tuned}");
        let user = site("hello", "prod").replace(
            "manager = \"systemd\"\n",
            "manager = \"systemd\"\n[targets.prod.systemd]\nscope = \"user\"\n",
        );
        assert!(!unit(&user).contains("ProtectSystem"));
    }

    #[test]
    fn unit_names_join_project_target_and_process_with_a_dot_no_name_can_hold() {
        let configs = rendered(&site("hello", "prod"), "prod");
        assert_eq!(
            unit_names(&configs),
            [
                "hello.prod.web@.service",
                "hello.prod.worker.1@.service",
                "hello.prod.worker.2@.service",
                "hello.prod.schedule-1.service",
                "hello.prod.schedule-1.timer",
            ]
        );
        assert_eq!(super::unit_prefix("hello", "prod"), "hello.prod");
        assert_eq!(super::legacy_unit_prefix("hello", "prod"), "hello-prod");
    }

    /// Issue 22, defect 5: with `-` between them, both were `hello-a-b-web@.service`, and two
    /// sites on one host replaced each other's units.
    #[test]
    fn project_hello_a_target_b_and_project_hello_target_a_b_name_no_unit_alike() {
        let one = unit_names(&rendered(&site("hello-a", "b"), "b"));
        let other = unit_names(&rendered(&site("hello", "a-b"), "a-b"));
        assert_eq!(one[0], "hello-a.b.web@.service");
        assert_eq!(other[0], "hello.a-b.web@.service");
        let shared: Vec<&String> = one.iter().filter(|name| other.contains(name)).collect();
        assert!(shared.is_empty(), "both name {shared:?}");
    }

    #[test]
    fn under_systemd_the_schedule_is_timers_on_the_primary_and_no_scheduler() {
        let text = r#"
[project]
name = "hello"

[targets.prod]
hosts = ["a", "b"]
deploy_to = "/srv/hello"
environment = "deployment"
app_user = "app"

[targets.prod.app]
manager = "systemd"

[targets.prod.schedule]
"0 4 1,15 * mon" = ["./manage.py clearsessions", "echo 'done'"]

[targets.prod.roles]
web = ["a", "b"]
"#;
        let config = parse(text);
        let target = config.target("prod").unwrap();
        let info = BuildInfo {
            build_time: String::new(),
            revision: String::new(),
            dirty: false,
        };
        let release = ReleaseId::parse("20261122010320").unwrap();
        let configs = |host| {
            super::super::service_configs(
                &config,
                target,
                &info,
                release,
                "app",
                &placement(target, host),
            )
            .unwrap()
        };
        let (primary, other) = (configs(0), configs(1));
        assert_eq!(other.get("timers"), None);
        assert_eq!(primary.get("schedule.tab"), None);
        assert!(!primary
            .get("units-once")
            .unwrap_or_default()
            .contains("schedule"));
        assert_eq!(
            primary.get("timers"),
            Some("hello.prod.schedule-1.service\nhello.prod.schedule-1.timer\n")
        );
        let timers: String = primary
            .files()
            .iter()
            .filter(|f| f.path.contains("schedule"))
            .map(|f| f.text.as_str())
            .collect();
        let files: Vec<&str> = primary
            .files()
            .iter()
            .filter_map(|f| f.path.strip_prefix("systemd/"))
            .filter(|name| name.contains("schedule"))
            .collect();
        assert_eq!(
            files,
            [
                "schedule-1.sh",
                "hello.prod.schedule-1.service",
                "hello.prod.schedule-1.timer"
            ]
        );
        for line in [
            // cron ORs the two day fields: one calendar event each.
            "OnCalendar=*-*-01,15 04:00:00\nOnCalendar=Mon *-*-* 04:00:00\n",
            "AccuracySec=1s\nUnit=hello.prod.schedule-1.service\n",
            "WantedBy=timers.target\n",
            "Type=oneshot\nUser=app\n",
            "ExecStart=/bin/sh /srv/hello/releases/20261122010320/.shipit/systemd/schedule-1.sh\n",
            "\ncd -P /srv/hello/current || exit 1\n",
            "\n/bin/sh -c './manage.py clearsessions' || exit\n",
            r#"
/bin/sh -c 'echo '\''done'\''' || exit
"#,
        ] {
            assert!(timers.contains(line), "no {line:?} in:\n{timers}");
        }
    }

    /// An ASGI target: gunicorn runs uvicorn's worker class on the ASGI app under either
    /// manager, and the nginx site passes websocket upgrades on the target's paths only.
    #[test]
    fn an_asgi_target_runs_uvicorn_workers_and_its_site_passes_websockets() {
        let text = "[project]\nname = \"hello\"\n\n[targets.t]\nhosts = [\"a\"]\n\
                    deploy_to = \"/srv/hello\"\nenvironment = \"deployment\"\n\
                    server = \"uvicorn\"\n\n[targets.t.app]\nmanager = \"auto\"\n\n\
                    [targets.t.nginx]\nsite = \"/etc/nginx/sites-enabled/hello.conf\"\n\
                    websocket_paths = [\"/ws/\", \"/live/\"]\n";
        let configs = rendered(text, "t");
        let release = "/srv/hello/releases/20261122010320";
        let command = format!(
            "{release}/.venv/bin/gunicorn hello.asgi:application --bind unix:{release}/.shipit/app.sock \
             --umask 007 --workers 2 --graceful-timeout 30 --worker-class uvicorn_worker.UvicornWorker \
             $(cat .shipit/gunicorn.args 2>/dev/null) \n"
        );
        let supervisor = configs.get("supervisor.conf").unwrap();
        assert!(
            supervisor.contains(&command.replace('\n', "'\n")),
            "{supervisor}"
        );
        let unit = configs
            .files()
            .iter()
            .find(|f| f.path.starts_with("systemd/") && f.text.contains("bin/gunicorn"))
            .unwrap_or_else(|| panic!("no systemd web script: {:?}", configs.files()));
        assert!(
            unit.text.contains(&format!("exec {command}")),
            "{}",
            unit.text
        );

        let site = configs.get("nginx.conf").unwrap();
        for path in ["/ws/", "/live/"] {
            let location = format!(
                "    location {path} {{\n        proxy_http_version 1.1;\n        \
                 proxy_set_header Upgrade $http_upgrade;\n        \
                 proxy_set_header Connection \"upgrade\";\n"
            );
            assert!(site.contains(&location), "{site}");
        }
        assert_eq!(site.matches("$http_upgrade").count(), 2, "{site}");

        let wsgi = rendered(&text.replace("server = \"uvicorn\"\n", ""), "t");
        let supervisor = wsgi.get("supervisor.conf").unwrap();
        assert!(
            supervisor.contains("gunicorn hello.wsgi:application --bind")
                && !supervisor.contains("worker-class"),
            "{supervisor}"
        );
    }
}
