//! Unit tests of loading and validating `shipit.toml`.

use super::*;

pub(super) const GOOD: &str = r#"
[project]
name = "hello"

[targets.production]
hosts = ["deploy@app1.example.com", "app2.example.com:2222"]
deploy_to = "/srv/hello"
environment = "deployment"
shared_dirs = ["var", "media/"]

[targets.production.vars]
server_name = "example.com"

[targets.staging]
hosts = ["deploy@staging.example.com"]
deploy_to = "/srv/hello-staging"
environment = "staging"
keep_releases = 3
"#;

pub(super) fn parse(text: &str) -> Result<Config> {
    Config::parse(Path::new("shipit.toml"), Path::new("."), text)
}

#[test]
fn relative_key_paths_belong_to_the_project_not_the_current_directory() {
    let text = GOOD.replace(
        "keep_releases = 3\n",
        "keep_releases = 3\nidentity_file = \"keys/deploy\"\nknown_hosts = \"conf/known_hosts\"\n",
    );
    let config = Config::parse(
        Path::new("/elsewhere/shipit.toml"),
        Path::new("/srv/proj"),
        &text,
    )
    .unwrap();
    let staging = config.target("staging").unwrap();
    assert_eq!(
        staging.identity_file.as_deref(),
        Some(Path::new("/srv/proj/keys/deploy"))
    );
    assert_eq!(
        staging.known_hosts.as_deref(),
        Some(Path::new("/srv/proj/conf/known_hosts"))
    );
}

pub(super) fn message(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn the_image_table_is_optional_and_checked() {
    assert_eq!(parse(GOOD).unwrap().image, ImageSettings::default());
    let example = parse(include_str!("../../conf/shipit.toml")).unwrap();
    assert_eq!(
        example.image,
        ImageSettings {
            base: Some("images/python:3.12".into()),
            python: Some("/usr/local/bin/python3.12".into()),
            port: Some(8000),
        }
    );
    let bad = |table: &str| message(&format!("{GOOD}\n[image]\n{table}\n"));
    let msg = bad("python = \"/usr/bin/python3\"");
    assert!(
        msg.contains("`image.python`") && msg.contains("pythonX.Y"),
        "{msg}"
    );
    let msg = bad("port = 70000");
    assert!(msg.contains("`image.port`: must be 1..65535"), "{msg}");
    let msg = bad("bases = \"x\"");
    assert!(msg.contains("unknown field `bases`"), "{msg}");
}

#[test]
fn schedule_entries_keep_their_commands_and_read_names_as_numbers() {
    let config = parse(&format!(
        "{GOOD}\n[targets.staging.schedule]\n\"0 3 * Jan-mar mon-FRI\" = \"a\"\n\"@daily\" = [\"b\", \"c\"]\n"
    ))
    .unwrap();
    assert_eq!(
        config.target("staging").unwrap().schedule,
        [
            ("0 3 * 1-3 1-5".to_string(), vec!["a".to_string()]),
            (
                "0 0 * * *".to_string(),
                vec!["b".to_string(), "c".to_string()]
            ),
        ]
    );
    let msg = message(&format!(
        "{GOOD}\n[targets.staging.schedule]\n\"0 3 * * fry\" = \"a\"\n"
    ));
    assert!(
        msg.contains("the day of week is a number from 0 to 7"),
        "{msg}"
    );
}

#[test]
fn parses_targets_with_defaults() {
    let config = parse(GOOD).unwrap();
    assert_eq!(config.project.settings_module, "hello.settings.selected");
    assert_eq!(config.project.wsgi_app, "hello.wsgi:application");
    assert_eq!(
        config.project.requirements_for("deployment"),
        "requirements/deployment.txt"
    );
    let production = config.target("production").unwrap();
    assert_eq!(production.keep_releases, 5);
    assert_eq!(production.shared_dirs, vec!["var", "media"]);
    assert_eq!(production.hosts[1].port, Some(2222));
    assert_eq!(production.hosts[1].user, None);
    let staging = config.target("staging").unwrap();
    assert_eq!(staging.deploy_to, "/srv/hello-staging");
    assert_eq!(staging.keep_releases, 3);
}

#[test]
fn unknown_target_lists_known_ones_and_suggests() {
    let config = parse(GOOD).unwrap();
    let err = config.target("prodution").unwrap_err();
    assert_eq!(err.to_string(), "unknown target `prodution`");
    let hint = err.hint().unwrap();
    assert!(hint.contains("did you mean `production`"), "{hint}");
    assert!(hint.contains("production, staging"), "{hint}");
}

#[test]
fn unknown_key_names_file_and_line() {
    let text = GOOD.replace("keep_releases = 3", "keep_relases = 3");
    let msg = message(&text);
    assert!(msg.starts_with("shipit.toml:18: "), "{msg}");
    assert!(msg.contains("unknown field `keep_relases`"), "{msg}");
}

#[test]
fn malformed_toml_names_line() {
    let msg = message("[project]\nname = \"x\n");
    assert!(msg.starts_with("shipit.toml:2: "), "{msg}");
}

#[test]
fn invalid_values_name_line_and_key() {
    let msg = message(&GOOD.replace("\"/srv/hello\"", "\"srv/hello\""));
    assert!(
        msg.starts_with(
            "shipit.toml:7: `targets.production.deploy_to`: `srv/hello` must be an absolute path"
        ),
        "{msg}"
    );
    let msg = message(&GOOD.replace("app2.example.com:2222", "app2.example.com:99999"));
    assert!(msg.contains(":6: `targets.production.hosts`"), "{msg}");
    assert!(msg.contains("invalid port `99999`"), "{msg}");
    let msg = message(&GOOD.replace("keep_releases = 3", "keep_releases = 0"));
    assert!(
        msg.contains(":18: `targets.staging.keep_releases`"),
        "{msg}"
    );
    let msg = message(&GOOD.replace("\"media/\"", "\"../media\""));
    assert!(
        msg.contains("`targets.production.shared_dirs`: `../media` must not contain `..`"),
        "{msg}"
    );
}

#[test]
fn paths_written_into_service_configs_are_plain() {
    for bad in [
        "/srv/my app",
        "/srv/a;b",
        "/srv/$(id)",
        "/srv/a'b",
        "/srv/a{b}",
    ] {
        let msg = message(&GOOD.replace("\"/srv/hello\"", &format!("{bad:?}")));
        assert!(
            msg.contains("`targets.production.deploy_to`"),
            "{bad}: {msg}"
        );
        assert!(
            msg.contains("written into nginx and supervisor configs"),
            "{msg}"
        );
    }
}

#[test]
fn vars_may_not_shadow_builtins() {
    let msg = message(&GOOD.replace("server_name =", "release ="));
    assert!(
        msg.contains(":12: `targets.production.vars.release`"),
        "{msg}"
    );
}

#[test]
fn ssh_target_needs_hosts_and_local_takes_none() {
    let msg = message(
        "[project]\nname = \"x\"\n[targets.a]\ndeploy_to = \"/srv/x\"\nenvironment = \"e\"\n",
    );
    assert!(
        msg.contains("`targets.a.hosts`: an ssh target needs at least one host"),
        "{msg}"
    );
    let ok = parse(
        "[project]\nname = \"x\"\n[targets.a]\ntransport = \"local\"\ndeploy_to = \"/srv/x\"\nenvironment = \"e\"\n",
    )
    .unwrap();
    assert_eq!(ok.targets["a"].transport, TransportKind::Local);
}

#[test]
fn host_specs_round_trip() {
    for text in ["h", "u@h", "u@h:22", "[::1]:2222", "u@[fe80::1]"] {
        assert_eq!(HostSpec::parse(text).unwrap().to_string(), text);
    }
    for bad in ["", "@h", "u@", "h:0", "h:x", "a b", "[::1"] {
        assert!(HostSpec::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_same_host_twice_is_refused() {
    for (first, second) in [
        ("deploy@app1.example.com", "deploy@app1.example.com"),
        ("deploy@app1.example.com", "other@APP1.example.com:22"),
        ("app2.example.com:2222", "deploy@app2.example.com:2222"),
    ] {
        let text = GOOD.replace(
            "hosts = [\"deploy@app1.example.com\", \"app2.example.com:2222\"]",
            &format!("hosts = [\n  \"{first}\",\n  \"{second}\",\n]"),
        );
        let msg = message(&text);
        assert!(
            msg.starts_with("shipit.toml:8: `targets.production.hosts`: "),
            "{msg}"
        );
        assert!(msg.contains("listed twice"), "{msg}");
    }
    // Another port is another sshd (a container, a forwarded port): allowed.
    let text = GOOD.replace("app2.example.com:2222", "app1.example.com:2222");
    assert_eq!(parse(&text).unwrap().targets["production"].hosts.len(), 2);
}

#[test]
fn shared_paths_stay_inside_the_release_and_apart() {
    let shared = |dirs: &str, files: &str| {
        let text = GOOD.replace(
            "shared_dirs = [\"var\", \"media/\"]",
            &format!("shared_dirs = {dirs}\nshared_files = {files}"),
        );
        parse(&text).map(|c| {
            let t = &c.targets["production"];
            (t.shared_dirs.clone(), t.shared_files.clone())
        })
    };
    let ok = shared(r#"["./var/", "media//up"]"#, r#"["conf/local.ini"]"#).unwrap();
    assert_eq!(ok.0, vec!["var", "media/up"]);
    assert_eq!(ok.1, vec!["conf/local.ini"]);
    for (dirs, files, line, key, needle) in [
        (
            r#"["."]"#,
            "[]",
            9,
            "shared_dirs",
            "the release directory itself",
        ),
        (
            r#"["./"]"#,
            "[]",
            9,
            "shared_dirs",
            "the release directory itself",
        ),
        ("[]", r#"[""]"#, 10, "shared_files", "must not be empty"),
        (r#"[".shipit"]"#, "[]", 9, "shared_dirs", "inside `.shipit`"),
        (
            "[]",
            r#"["./.shipit/env"]"#,
            10,
            "shared_files",
            "inside `.shipit`",
        ),
        (r#"[".venv"]"#, "[]", 9, "shared_dirs", "inside `.venv`"),
        (
            r#"["var", "var/"]"#,
            "[]",
            9,
            "shared_dirs",
            "`var` is already shared",
        ),
        (
            r#"["var", "var/log"]"#,
            "[]",
            9,
            "shared_dirs",
            "inside `var`",
        ),
        (
            r#"["var/log", "var"]"#,
            "[]",
            9,
            "shared_dirs",
            "contains `var/log`",
        ),
        (
            r#"["var"]"#,
            r#"["var"]"#,
            10,
            "shared_files",
            "already shared (in targets.production.shared_dirs)",
        ),
        (
            r#"["var"]"#,
            r#"["var/db.sqlite3"]"#,
            10,
            "shared_files",
            "inside `var`",
        ),
        (
            "[]",
            r#"["a", "a"]"#,
            10,
            "shared_files",
            "`a` is already shared",
        ),
    ] {
        let msg = shared(dirs, files).unwrap_err().to_string();
        let prefix = format!("shipit.toml:{line}: `targets.production.{key}`: ");
        assert!(msg.starts_with(&prefix), "{dirs} {files}: {msg}");
        assert!(msg.contains(needle), "{dirs} {files}: {msg}");
    }
    // Names that merely share a prefix do not overlap.
    assert!(shared(r#"["var", "variable"]"#, r#"["var2"]"#).is_ok());
}

#[test]
fn only_target_is_chosen_without_flag() {
    let config = parse(GOOD).unwrap();
    let err = config.target_or_only(None).unwrap_err();
    assert!(err.to_string().contains("defines 2 targets"));
}

#[test]
fn processes_and_roles_place_work_on_hosts() {
    let text = GOOD.replace(
        "[targets.production.vars]",
        r#"[targets.production.processes]
worker = "celery -A hello worker"
beat = { run = "celery -A hello beat", once = true }
mail = { run = "./manage.py send_queued_mail --loop", role = "mail", replicas = 2, stop_timeout = 90 }

[targets.production.roles]
web = ["deploy@app1.example.com"]
worker = ["app2.example.com:2222"]
mail = ["app2.example.com:2222"]

[targets.production.vars]"#,
    );
    let config = parse(&text).unwrap();
    let production = config.target("production").unwrap();
    let worker = &production.processes["worker"];
    assert_eq!(
        (
            worker.role.as_str(),
            worker.replicas,
            worker.stop_timeout,
            worker.once
        ),
        ("worker", 1, 30, false)
    );
    assert!(production.processes["beat"].once);
    let mail = &production.processes["mail"];
    assert_eq!((mail.replicas, mail.stop_timeout), (2, 90));
    assert!(production.carries(0, "web") && !production.carries(0, "worker"));
    assert!(production.carries(1, "worker") && production.carries(1, "mail"));
    assert!(!production.carries(1, "web"));
    // Without roles every host carries every role.
    let staging = config.target("staging").unwrap();
    assert!(staging.carries(0, "web") && staging.carries(0, "anything"));
}

/// A `run` that needs a shell (a list, a pipeline, a loop) runs under `sh -c` of its own; a
/// simple command, however it is quoted, redirected or expanded, is exec'd as it is.
#[test]
fn a_process_command_that_needs_a_shell_gets_one_and_a_simple_one_is_execd() {
    let process = |run: &str| Process {
        run: run.into(),
        role: "worker".into(),
        replicas: 1,
        stop_timeout: 30,
        once: false,
    };
    for simple in [
        "celery -A hello worker",
        r#"./manage.py run --name 'a; b' "c && d" e\;f"#,
        "gunicorn --bind unix:$PWD/x.sock 2>&1 >|log <&0",
        "sh -c 'while true; do sleep 1; done'",
        "echo $(date; uptime) `a | b` $((1 + (2)))",
        "python -m x --opt=a=b",
    ] {
        assert!(!process(simple).needs_shell(), "{simple}");
        assert_eq!(process(simple).exec(), simple);
    }
    for compound in [
        "while true; do ./manage.py tick; sleep 60; done",
        "./manage.py wait_for_db && celery -A hello worker",
        "a || b",
        "tail -F log | grep x",
        "worker &",
        "(cd sub && exec run)",
        "{ a; b; }",
        "if x; then y; fi",
        "for i in 1 2; do x; done",
        "FOO=bar celery worker",
        "! false",
        r#"echo "$(date)"; run"#,
    ] {
        assert!(process(compound).needs_shell(), "{compound}");
    }
    assert_eq!(
        process("a && echo 'it'").exec(),
        r#"/bin/sh -c 'a && echo '\''it'\'''"#
    );
}

#[test]
fn bad_processes_and_roles_name_their_key() {
    for (table, needle) in [
        (
            "[targets.staging.processes]\nweb = \"x\"",
            "`targets.staging.processes.web`",
        ),
        (
            "[targets.staging.processes]\n\"a.b\" = \"x\"",
            "letters, digits",
        ),
        ("[targets.staging.processes]\nw = \"\"", "non-empty"),
        (
            "[targets.staging.processes]\nw = { run = \"x\", replicas = 0 }",
            "replicas",
        ),
        (
            "[targets.staging.processes]\nw = { run = \"x\", once = true, replicas = 2 }",
            "drop replicas",
        ),
        (
            "[targets.staging.processes]\nw = { run = \"x\", stop_timeout = 0 }",
            "stop_timeout",
        ),
        (
            "[targets.staging.roles]\nweb = [\"elsewhere\"]",
            "not one of the target's hosts",
        ),
    ] {
        let msg = message(&format!("{GOOD}\n{table}\n"));
        assert!(msg.contains(needle), "{table}: {msg}");
    }
}

#[test]
fn hosts_and_roles_select_a_canary_and_the_subset_keeps_roles_and_singletons_right() {
    let text = r#"
[project]
name = "hello"

[targets.prod]
hosts = ["deploy@a", "deploy@b", "deploy@c"]
deploy_to = "/srv/hello"
environment = "deployment"

[targets.prod.processes]
worker = "celery -A hello worker"
beat = { run = "celery -A hello beat", once = true }

[targets.prod.schedule]
"* * * * *" = "./manage.py clearsessions"

[targets.prod.roles]
web = ["deploy@a", "deploy@b"]
worker = ["deploy@c"]
"#;
    let config = parse(text).unwrap();
    let prod = config.target("prod").unwrap();
    let none: Vec<String> = Vec::new();
    assert_eq!(prod.select(&none, &none).unwrap(), [0, 1, 2]);
    assert_eq!(prod.select(&["deploy@b".into()], &none).unwrap(), [1]);
    // Another user on the same machine is the same host.
    assert_eq!(prod.select(&["root@c".into()], &none).unwrap(), [2]);
    assert_eq!(prod.select(&none, &["worker".into()]).unwrap(), [2]);
    assert_eq!(
        prod.select(&["deploy@c".into()], &["web".into()]).unwrap(),
        [0, 1, 2]
    );
    let err = prod.select(&["deploy@d".into()], &none).unwrap_err();
    assert!(
        err.to_string().contains("not a host of target prod"),
        "{err}"
    );
    let err = prod.select(&none, &["mail".into()]).unwrap_err();
    assert!(err.to_string().contains("no role `mail`"), "{err}");

    // Without the primary (a): b migrates, nobody starts beat or a scheduler (the deploy says
    // so), roles follow their hosts.
    let sub = prod.subset(&[1, 2]);
    assert_eq!(sub.hosts.len(), 2);
    assert_eq!(sub.primary, 0);
    assert!(!sub.processes.contains_key("beat"));
    assert!(sub.schedule.is_empty());
    let said = prod.singletons_left(&sub).unwrap();
    assert!(
        said.contains("no `once` process or schedule changes: beat, schedule keep running on the primary deploy@a"),
        "{said}"
    );
    assert!(sub.carries(0, "web") && !sub.carries(0, "worker"));
    assert!(sub.carries(1, "worker") && !sub.carries(1, "web"));
    // With it, the primary stays the primary and keeps its singletons.
    let sub = prod.subset(&[0, 2]);
    assert_eq!(sub.primary, 0);
    assert!(sub.processes.contains_key("beat"));
    assert_eq!(sub.schedule, prod.schedule);
    assert_eq!(prod.singletons_left(&sub), None);
}

#[test]
fn the_process_manager_is_the_one_named_or_the_one_configured() {
    let target = |tables: &str| {
        let text = format!(
            "[project]\nname = \"hello\"\n\n[targets.prod]\nhosts = [\"a\"]\ndeploy_to = \"/srv/hello\"\nenvironment = \"deployment\"\n{tables}"
        );
        parse(&text).map(|c| c.targets["prod"].app.clone())
    };
    assert_eq!(target("").unwrap(), None);
    let app = target("[targets.prod.supervisor]\n").unwrap().unwrap();
    assert_eq!(app.manager, Manager::Supervisor);
    assert_eq!(app.supervisor.conf_dir, "/etc/supervisor/conf.d");
    let app = target("[targets.prod.systemd]\nscope = \"user\"\n")
        .unwrap()
        .unwrap();
    assert_eq!(app.manager, Manager::Systemd);
    assert_eq!(app.systemd.ctl(), "systemctl --user");
    assert_eq!(app.systemd.journal(), "journalctl --user");
    let app = target("[targets.prod.app]\nmanager = \"systemd\"\n")
        .unwrap()
        .unwrap();
    assert_eq!(app.systemd.scope, SystemdScope::System);
    assert_eq!(app.systemd.ctl(), "sudo -n systemctl");
    let app = target(
        "[targets.prod.app]\nmanager = \"auto\"\n[targets.prod.supervisor]\nctl = \"sudo supervisorctl\"\n[targets.prod.systemd]\nctl = \"systemctl\"\n",
    )
    .unwrap()
    .unwrap();
    assert_eq!(app.manager, Manager::Auto);
    assert_eq!(app.supervisor.ctl, "sudo supervisorctl");
    assert_eq!(app.systemd.ctl(), "systemctl");

    for (tables, expected) in [
        (
            "[targets.prod.supervisor]\n[targets.prod.systemd]\n",
            "say which runs the app",
        ),
        (
            "[targets.prod.app]\nmanager = \"supervisor\"\n[targets.prod.systemd]\n",
            "drop [systemd]",
        ),
        (
            "[targets.prod.app]\nmanager = \"systemd\"\n[targets.prod.supervisor]\n",
            "drop [supervisor]",
        ),
        (
            "[targets.prod.app]\nmanager = \"runit\"\n",
            "unknown variant",
        ),
        ("[targets.prod.systemd]\nctl = \" \"\n", "must not be empty"),
        (
            "[targets.prod.systemd]\nscope = \"session\"\n",
            "unknown variant",
        ),
    ] {
        let err = target(tables).unwrap_err().to_string();
        assert!(err.contains(expected), "{tables}: {err}");
    }
}

#[test]
fn deploy_to_is_a_normal_directory_of_its_own() {
    let ok = parse(&GOOD.replace("\"/srv/hello\"", "\"/srv/www/hello-1.0\"")).unwrap();
    assert_eq!(ok.targets["production"].deploy_to, "/srv/www/hello-1.0");
    for (bad, needle, hint) in [
        ("/", "is the root directory", "a directory of its own"),
        ("/srv/../srv/x", "not a normalised path", "`/srv/x`"),
        ("/srv/x/", "not a normalised path", "`/srv/x`"),
        ("/srv//x", "not a normalised path", "`/srv/x`"),
        ("/srv/./x", "not a normalised path", "`/srv/x`"),
        ("/srv/x/..", "not a normalised path", "`/srv`"),
        (
            "/etc/hello",
            "inside `/etc`, which belongs to the system",
            "/srv/PROJECT",
        ),
        ("/usr/local/hello", "inside `/usr`", "/srv/PROJECT"),
        ("/lib64/x", "inside `/lib64`", "/srv/PROJECT"),
        ("/proc/1", "inside `/proc`", "/srv/PROJECT"),
        ("/boot", "inside `/boot`", "/srv/PROJECT"),
        (
            "/var/lib",
            "shared with everything else",
            "`/var/lib/PROJECT`",
        ),
        ("/srv", "shared with everything else", "`/srv/PROJECT`"),
    ] {
        let err = parse(&GOOD.replace("\"/srv/hello\"", &format!("{bad:?}"))).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("shipit.toml:7: `targets.production.deploy_to`: "),
            "{bad}: {msg}"
        );
        assert!(msg.contains(needle), "{bad}: {msg}");
        let advice = err.hint().unwrap_or_default();
        assert!(advice.contains(hint), "{bad}: {advice}");
        assert_eq!(err.exit_code(), 2);
    }
}

#[test]
fn variables_a_service_config_reads_are_one_plain_line() {
    let read = crate::templates::service_variables();
    for name in [
        "server_name",
        "listen",
        "client_max_body_size",
        "workers",
        "gunicorn_args",
    ] {
        assert!(read.contains_key(name), "{name} not found in {read:?}");
    }
    assert_eq!(read["server_name"], ["nginx.conf.j2"]);
    for (var, value, needle) in [
        ("server_name", r#""x; return 200""#, "holds `;`"),
        (
            "server_name",
            r#""x\nlocation / { }""#,
            "holds a line break",
        ),
        ("client_max_body_size", r#""1m }""#, "holds `}`"),
        ("listen", r#"["80", "{"]"#, "holds `{`"),
        ("workers", r#""2\r""#, "holds a line break"),
    ] {
        let text = GOOD.replace("server_name = \"example.com\"", &format!("{var} = {value}"));
        let err = parse(&text).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "shipit.toml:12: `targets.production.vars.{var}`: `{var}` is written into "
            )),
            "{msg}"
        );
        assert!(msg.contains(needle), "{var} = {value}: {msg}");
        assert!(err.hint().unwrap().contains("one line"), "{err:?}");
    }
    // What only the project's own templates read is data, quoted where it lands.
    let text = GOOD.replace(
        "server_name = \"example.com\"",
        "server_name = \"a.example.com b.example.com\"\nnote = \"x; {y}\\nz\"\nworkers = 4",
    );
    let vars = &parse(&text).unwrap().targets["production"].vars;
    assert_eq!(vars["note"].as_str(), Some("x; {y}\nz"));
}

#[test]
fn env_names_the_deploy_scripts_use_are_refused() {
    let with = |table: &str, name: &str| {
        GOOD.replace(
            "[targets.staging]",
            &format!(
                "[targets.production.{table}]\n{name} = {}\n\n[targets.staging]",
                if table == "env" {
                    "\"x\""
                } else {
                    "{ env = \"X\" }"
                }
            ),
        )
    };
    for (table, name, needle, hint) in [
        (
            "env",
            "D",
            "a variable of shipit's deploy scripts",
            "rename it",
        ),
        (
            "env",
            "R",
            "a variable of shipit's deploy scripts",
            "rename it",
        ),
        (
            "secrets",
            "MANAGE",
            "a variable of shipit's deploy scripts",
            "rename it",
        ),
        (
            "env",
            "ID",
            "a variable of shipit's deploy scripts",
            "rename it",
        ),
        (
            "env",
            "PATH",
            "a name `sh` itself reads",
            "PATH is set by shipit",
        ),
        ("env", "IFS", "a name `sh` itself reads", "rename it"),
        ("secrets", "PS4", "a name `sh` itself reads", "rename it"),
        ("env", "ENV", "a name `sh` itself reads", "rename it"),
        (
            "env",
            "SHIPIT_RELEASE",
            "in shipit's own namespace",
            "SHIPIT_PROCESS",
        ),
        (
            "env",
            "SHIPIT_ANYTHING",
            "in shipit's own namespace",
            "rename it",
        ),
        (
            "env",
            "DJANGO_SETTINGS_MODULE",
            "a variable of shipit's deploy scripts",
            "project.settings_module",
        ),
    ] {
        let err = parse(&with(table, name)).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "shipit.toml:15: `targets.production.{table}.{name}`: `{name}` is {needle}"
            )),
            "{msg}"
        );
        assert!(msg.contains("set -a"), "{msg}");
        assert!(err.hint().unwrap().contains(hint), "{name}: {err:?}");
        assert_eq!(err.exit_code(), 2);
    }
    // The app's own names, lower-case ones included, are its own.
    let ok = parse(&with("env", "DJANGO_DEBUG")).unwrap();
    assert_eq!(ok.targets["production"].env["DJANGO_DEBUG"], "x");
    parse(&with("secrets", "DATABASE_URL")).unwrap();
}

/// The reserved names come from the library itself: a name it starts to use is reserved with it.
#[test]
fn reserved_env_names_follow_the_shell_library() {
    use crate::remote::preamble::{library_names, read_names, set_names};
    for name in [
        "D",
        "R",
        "ID",
        "MANAGE",
        "TOKEN",
        "SHIPIT_NONCE",
        "DJANGO_SETTINGS_MODULE",
    ] {
        assert!(
            library_names().contains(name),
            "{name}: {:?}",
            library_names()
        );
    }
    let gained = "step_x() {\n  NEW_NAME=1\n  echo \"$OTHER_NAME\"\n}\n";
    assert!(set_names(gained).contains("NEW_NAME"));
    assert!(read_names(gained).contains("OTHER_NAME"));
}

/// A project that locks with uv installs from `uv.lock` unless it keeps a `requirements/`
/// directory or maps the environment; `.python-version` names the default interpreter.
#[test]
fn the_projects_own_files_set_the_lockfile_and_python_defaults() {
    let root = tempfile::tempdir().unwrap();
    let load = || Config::parse(Path::new("shipit.toml"), root.path(), GOOD).unwrap();
    let config = load();
    assert_eq!(
        config.project.requirements_for("deployment"),
        "requirements/deployment.txt"
    );
    assert_eq!(config.project.python, "python3");
    std::fs::write(root.path().join("uv.lock"), "version = 1\n").unwrap();
    assert!(
        !load().project.uv_lock_default,
        "uv.lock without pyproject.toml"
    );
    std::fs::write(root.path().join("pyproject.toml"), "[project]\n").unwrap();
    std::fs::write(root.path().join(".python-version"), "# pinned\n3.12\n").unwrap();
    let config = load();
    assert_eq!(config.project.requirements_for("deployment"), "uv.lock");
    assert_eq!(config.project.python, "3.12");
    assert!(config.project.python_from_file);
    let mapped = GOOD.replace(
        "name = \"hello\"\n",
        "name = \"hello\"\npython = \"/usr/bin/python3\"\n[project.requirements]\nstaging = \"req/staging.txt\"\n",
    );
    let config = Config::parse(Path::new("shipit.toml"), root.path(), &mapped).unwrap();
    assert_eq!(
        config.project.requirements_for("staging"),
        "req/staging.txt"
    );
    assert_eq!(config.project.python, "/usr/bin/python3");
    std::fs::create_dir(root.path().join("requirements")).unwrap();
    assert_eq!(
        load().project.requirements_for("deployment"),
        "requirements/deployment.txt"
    );
    let groups = GOOD.replace(
        "keep_releases = 3\n",
        "keep_releases = 3\ngroups = [\"prod\"]\nextras = [\"s3\", \"bad name\"]\n",
    );
    let err = parse(&groups).unwrap_err().to_string();
    assert!(err.contains("targets.staging.extras"), "{err}");
    assert!(err.contains("`bad name` is not an extra"), "{err}");
}

/// A table written as its own header inside a table that has no header of its own (an implicit
/// table, `[targets.p.tls.certificate]` without `[targets.p.tls]`) loads like the inline form:
/// toml 0.8 failed it with "invalid type: string \"certificate\", expected a borrowed string".
#[test]
fn tables_under_implicit_tables_load() {
    let text = format!(
        "{GOOD}\n[targets.staging.nginx]\nsite = \"/etc/nginx/sites-enabled/x.conf\"\n\n\
         [targets.staging.vars]\nserver_name = \"example.com\"\n\n\
         [targets.staging.tls.certificate]\nenv = \"CERT\"\n\n[targets.staging.tls.key]\nenv = \"KEY\"\n"
    );
    let tls = parse(&text).unwrap().targets["staging"]
        .tls
        .clone()
        .unwrap();
    assert_eq!(
        tls.mode,
        TlsMode::Files {
            certificate: SecretSource::Env("CERT".into()),
            key: SecretSource::Env("KEY".into()),
        }
    );
}

#[test]
fn the_app_server_is_gunicorn_or_uvicorn_and_others_are_refused_by_name() {
    let config = parse(GOOD).unwrap();
    assert_eq!(config.project.asgi_app, "hello.asgi:application");
    assert_eq!(
        config.target("production").unwrap().server,
        Server::Gunicorn
    );
    let uvicorn = GOOD.replace(
        "keep_releases = 3\n",
        "keep_releases = 3\nserver = \"uvicorn\"\n",
    );
    let config = parse(&uvicorn).unwrap();
    assert_eq!(config.target("staging").unwrap().server, Server::Uvicorn);
    assert_eq!(
        config.target("production").unwrap().server,
        Server::Gunicorn
    );
    for other in ["granian", "daphne", "Uvicorn"] {
        let err = parse(&uvicorn.replace("\"uvicorn\"", &format!("{other:?}"))).unwrap_err();
        let (msg, hint) = (err.to_string(), err.hint().unwrap_or_default());
        assert!(
            msg.contains(":19: `targets.staging.server`")
                && msg.contains(&format!("shipit does not run `{other}` as the app server")),
            "{msg}"
        );
        assert!(hint.contains("use `gunicorn` or `uvicorn`"), "{hint}");
    }
}

#[test]
fn websocket_paths_are_location_prefixes_nginx_can_hold() {
    let with = |paths: &str| {
        GOOD.replace(
            "[targets.production.vars]",
            &format!(
                "[targets.production.nginx]\nsite = \"/etc/nginx/sites-enabled/hello.conf\"\n\
                 websocket_paths = {paths}\n\n[targets.production.vars]"
            ),
        )
    };
    let config = parse(&with(r#"["/ws/", "/live"]"#)).unwrap();
    let nginx = config.target("production").unwrap().nginx.clone().unwrap();
    assert_eq!(nginx.websocket_paths, ["/ws/", "/live"]);
    for (bad, why) in [
        ("ws/", "must start with `/`"),
        ("/ws return", "has ' '"),
        ("/ws;return", "has ';'"),
        ("/ws{", "has '{'"),
        ("/$host", "has '$'"),
    ] {
        let msg = message(&with(&format!("[{bad:?}]")));
        assert!(
            msg.contains("`targets.production.nginx.websocket_paths`") && msg.contains(why),
            "{bad}: {msg}"
        );
    }
}
