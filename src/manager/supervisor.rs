//! supervisor: one program file per release (`<project>.<target>.<release>.conf`) with the web
//! app server and the processes, another with the singletons, and the schedule run by
//! shipit's scheduler as a singleton. The host side is `step_*` + supervisorctl in the shell.

use crate::config::{Process, SCHEDULER};
use crate::error::Result;
use crate::release::ReleaseId;

use super::{ProcessManager, Rendering, ServiceConfigs};

/// The supervisor process manager.
pub(crate) struct Supervisor;

impl ProcessManager for Supervisor {
    fn name(&self) -> &'static str {
        "supervisor"
    }

    /// The web app server and the processes of every release in one file, the singletons in
    /// another (installed at the switch), and the schedule on the host that runs the scheduler.
    fn render(&self, rendering: &mut Rendering<'_>, configs: &mut ServiceConfigs) -> Result<()> {
        let placed = rendering.placed;
        if placed.web || !placed.processes.is_empty() {
            let text = programs(rendering, placed.web, &placed.processes)?;
            configs.add("supervisor.conf", "supervisor programs", text);
        }
        if !placed.once.is_empty() {
            let text = programs(rendering, false, &placed.once)?;
            configs.add(
                "supervisor-once.conf",
                "supervisor programs started at the switch (once)",
                text,
            );
        }
        if placed.once.iter().any(|(name, _)| name == SCHEDULER) {
            let table = placed
                .schedule
                .iter()
                .flat_map(|(when, commands)| commands.iter().map(move |c| format!("{when}\t{c}\n")))
                .collect();
            configs.add("schedule.tab", "the schedule its scheduler runs", table);
            configs.add(
                "scheduler.py",
                "shipit's scheduler",
                crate::remote::python::SCHEDULER.to_string(),
            );
        }
        Ok(())
    }
}

/// Renders `supervisor.conf.j2` for `processes` (and the web app server when `web`).
fn programs(
    rendering: &mut Rendering<'_>,
    web: bool,
    processes: &[(String, Process)],
) -> Result<String> {
    rendering
        .context
        .set("web", web)
        .set("processes", program_values(processes));
    rendering
        .templates
        .render("supervisor.conf.j2", &rendering.context)
}

/// The supervisor program of one release: `<project>.<target>.<release>`. Project and target
/// names cannot contain a dot (see `config.rs`), so two projects on one host never share a
/// program name or a [`program_glob`] (`hello` + `a-b` and `hello-a` + `b` did, with dashes).
pub(crate) fn program_name(project: &str, target: &str, release: &ReleaseId) -> String {
    format!("{project}.{target}.{release}")
}

/// The supervisor config files of every release of `project` and `target`, and of nothing else
/// (exactly the 14 digits of a release id after the second dot).
pub(crate) fn program_glob(project: &str, target: &str) -> String {
    format!("{project}.{target}.{}.conf", "[0-9]".repeat(14))
}

/// The processes as the program template sees them: `command` is the whole supervisor
/// `command=` value (`sh -c` loading the release's environment, then exec'ing the process's
/// command, [`Process::exec`], with the release's venv first on PATH), quoted for supervisor's
/// shell-like parser and with `%` doubled (supervisor expands `%(name)s` in every value);
/// `shell` says that command is a shell of its own, which is stopped with its process group.
fn program_values(processes: &[(String, Process)]) -> minijinja::Value {
    let values: Vec<std::collections::BTreeMap<&str, minijinja::Value>> = processes
        .iter()
        .map(|(name, process)| {
            let script = format!(
                "{}; exec {}",
                crate::remote::layout::enter_release(),
                process.exec()
            );
            let command = format!("/bin/sh -c {}", crate::plan::quote(&script)).replace('%', "%%");
            std::collections::BTreeMap::from([
                ("name", minijinja::Value::from(name.as_str())),
                ("command", minijinja::Value::from(command)),
                ("shell", minijinja::Value::from(process.needs_shell())),
                ("replicas", minijinja::Value::from(process.replicas)),
                ("stop_timeout", minijinja::Value::from(process.stop_timeout)),
            ])
        })
        .collect();
    minijinja::Value::from_serialize(&values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_command_that_needs_a_shell_runs_in_one_stopped_with_its_group() {
        let process = Process {
            run: "while true; do echo '50%'; sleep 1; done".into(),
            role: "worker".into(),
            replicas: 1,
            stop_timeout: 30,
            once: false,
        };
        let values = program_values(&[("w".into(), process)]);
        let value = values.get_item(&minijinja::Value::from(0)).unwrap();
        assert_eq!(
            value.get_attr("command").unwrap().to_string(),
            r#"/bin/sh -c 'set -a; [ -f .shipit/env ] && . ./.shipit/env; set +a; PATH="$PWD/.venv/bin:$PATH"; export PATH; exec /bin/sh -c '\''while true; do echo '\''\'\'''\''50%%'\''\'\'''\''; sleep 1; done'\'''"#
        );
        assert!(value.get_attr("shell").unwrap().is_true());
    }

    #[test]
    fn a_process_command_loads_the_env_and_escapes_supervisor_expansions() {
        let process = Process {
            run: "echo '50%'".into(),
            role: "worker".into(),
            replicas: 1,
            stop_timeout: 30,
            once: false,
        };
        let values = program_values(&[("w".into(), process)]);
        let command = values
            .get_item(&minijinja::Value::from(0))
            .unwrap()
            .get_attr("command")
            .unwrap()
            .to_string();
        assert_eq!(
            command,
            r#"/bin/sh -c 'set -a; [ -f .shipit/env ] && . ./.shipit/env; set +a; PATH="$PWD/.venv/bin:$PATH"; export PATH; exec echo '\''50%%'\'''"#
        );
    }
}
