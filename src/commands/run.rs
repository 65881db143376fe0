//! `shipit run` and `shipit console`: a command in the live release of a target's hosts, with
//! the release's virtualenv and environment, as its hooks ran — output streamed (prefixed by the
//! host when there are several), or, with a terminal, interactively on one host.
//!
//! Exit status: the command's. On several hosts it runs everywhere, and shipit exits with the
//! status of the first host, in the target's order, where it failed (the others are named).

use serde_json::json;

use crate::cli::RunArgs;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::output::Printer;
use crate::plan::operate::run as run_phase;
use crate::resolve::{AppEnv, BreakLock, Op, Resolved, RunVars};

/// The command line the hosts run: an alias expanded (its extra arguments quoted), one
/// argument as a shell command line, several as one command and its arguments.
pub(crate) fn command_line(config: &Config, words: &[String]) -> Option<String> {
    let (first, rest) = words.split_first()?;
    let quoted = |words: &[String]| {
        words
            .iter()
            .map(|w| crate::plan::quote(w))
            .collect::<Vec<_>>()
    };
    if let Some(alias) = config.aliases.get(first) {
        return Some(
            std::iter::once(alias.clone())
                .chain(quoted(rest))
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    if rest.is_empty() {
        return Some(first.clone());
    }
    Some(quoted(words).join(" "))
}

/// Runs `args.command` (interactively with `-i`).
pub(crate) fn run(config: &Config, args: &RunArgs, printer: &Printer) -> Result<()> {
    let target = config.target(&args.target.name)?;
    let interactive = args.interactive;
    let selected = target.only(args.hosts.as_deref(), args.primary || interactive)?;
    if interactive && selected.hosts.len() > 1 {
        return Err(Error::Usage {
            message: "an interactive command runs on one host".into(),
            hint: Some("name it with --hosts HOST (or leave it out: the primary)".into()),
        });
    }
    let command = match command_line(config, &args.command) {
        Some(command) => command,
        None if interactive => match config.aliases.get("console") {
            Some(alias) => alias.clone(),
            None => format!(
                "python {} shell",
                crate::plan::quote(&config.project.manage_py)
            ),
        },
        None => {
            return Err(Error::Usage {
                message: "no command to run".into(),
                hint: Some(format!(
                    "shipit run -t {} -- ./manage.py showmigrations",
                    target.name
                )),
            })
        }
    };
    let resolved = Resolved::new(config, &selected)?;
    // The command may print the app's environment: secrets are resolved here, as for a
    // deploy, so that none is shown.
    let env = AppEnv::resolve(config, target)?;
    printer.redact(env.secrets.iter().cloned());
    let vars = resolved.vars(Op::Run, BreakLock::No, &RunVars::default());
    let mut fleet = super::connect(
        &selected,
        &resolved,
        args.connection.accept_new_host_key,
        printer,
    )?;
    let names = fleet.names();

    if interactive {
        printer.info(format!("{} on {}: {command}", target.name, names[0]));
        let script = crate::plan::script::console(&vars, &command);
        let status = fleet.sessions[0].transport.interactive(&script)?;
        if status != 0 {
            return Err(Error::Command {
                host: names[0].clone(),
                status,
                others: Vec::new(),
            });
        }
        return Ok(());
    }

    let several = names.len() > 1;
    let outputs = std::sync::Mutex::new(vec![Vec::<String>::new(); names.len()]);
    let runs = fleet.each_streaming(
        &run_phase(&command),
        &vec![vars; names.len()],
        &|i, line| {
            if printer.json {
                outputs.lock().unwrap_or_else(|e| e.into_inner())[i].push(line.to_string());
            } else if several {
                printer.result(format!("{}: {line}", names[i]));
            } else {
                printer.result(line);
            }
        },
    );
    let outputs = outputs.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut statuses = Vec::new();
    for (i, run) in runs.into_iter().enumerate() {
        let run = run?;
        let status = match &run.failed {
            None if run.succeeded() => 0,
            Some((step, status)) if step == "run" => *status,
            _ => return Err(run.error(&names[i], "nothing was run there")),
        };
        statuses.push(status);
    }
    printer.json_result(&json!({
        "target": target.name,
        "command": command,
        "hosts": names.iter().zip(&statuses).zip(&outputs).map(|((host, status), output)| json!({
            "host": host,
            "status": status,
            "output": output,
        })).collect::<Vec<_>>(),
    }));
    let failed: Vec<usize> = (0..statuses.len()).filter(|i| statuses[*i] != 0).collect();
    match failed.split_first() {
        None => Ok(()),
        Some((first, others)) => Err(Error::Command {
            host: names[*first].clone(),
            status: statuses[*first],
            others: others.iter().map(|i| names[*i].clone()).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(aliases: &str) -> Config {
        let text = format!(
            "[project]\nname = \"hello\"\n[targets.t]\nhosts = [\"a@one:2222\", \"b@two\", \"c@three\"]\ndeploy_to = \"/srv/h\"\nenvironment = \"e\"\nprimary = \"b@two\"\n{aliases}"
        );
        Config::parse(
            std::path::Path::new("shipit.toml"),
            std::path::Path::new("."),
            &text,
        )
        .unwrap()
    }

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn commands_aliases_and_shell_lines() {
        let c = config("[aliases]\ndbshell = \"./manage.py dbshell\"\n");
        assert_eq!(
            command_line(&c, &words(&["dbshell", "--", "-c", "select 1"])).unwrap(),
            "./manage.py dbshell -- -c 'select 1'"
        );
        assert_eq!(
            command_line(&c, &words(&["echo $HOME | wc -c"])).unwrap(),
            "echo $HOME | wc -c"
        );
        assert_eq!(
            command_line(
                &c,
                &words(&["./manage.py", "shell", "-c", "print(1); print(2)"])
            )
            .unwrap(),
            "./manage.py shell -c 'print(1); print(2)'"
        );
        assert_eq!(command_line(&c, &[]), None);
    }

    #[test]
    fn aliases_are_checked() {
        let text = "[project]\nname = \"hello\"\n[aliases]\n\"9x\" = \"ls\"\n";
        let error = Config::parse(
            std::path::Path::new("shipit.toml"),
            std::path::Path::new("."),
            text,
        )
        .unwrap_err();
        assert!(error.to_string().contains("aliases.9x"), "{error}");
    }
}
