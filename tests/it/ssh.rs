//! SSH fidelity with OpenSSH, against real sshd and a real ssh-agent: `~/.ssh/config` means
//! what it means to `ssh` (shipit and `ssh -G` agree on host, port, user and jump chain, and
//! what shipit cannot honour is refused), jump hosts work for real (a deploy reaches a host
//! that only the bastion can reach; a bastion with an unknown or changed key is refused), every
//! agent identity is tried, and an encrypted key says how to load it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::fleet::ns;
use support::netns::Isolated;
use support::stack::*;
use support::*;

/// shipit.toml of `stack` with `hosts = [host]` and `extra`, without the stack's
/// `identity_file` line, committed.
fn configure(stack: &mut Stack, host: &str, extra: &str) {
    stack.set_options(|o| {
        o.hosts = vec![host.to_string()];
        o.extra = extra.to_string();
    });
    let key = format!(
        "identity_file = {:?}",
        stack.host.sshd.client_key.display().to_string()
    );
    let text: String = stack
        .project
        .read("shipit.toml")
        .lines()
        .filter(|l| *l != key)
        .map(|l| format!("{l}\n"))
        .collect();
    stack.project.write("shipit.toml", &text);
    stack.project.commit_all("no identity_file");
}

/// `shipit releases --target test` with HOME `home` and `env` added.
fn releases(stack: &Stack, home: &Path, env: &[(&str, &Path)]) -> Run {
    let mut command = stack.project.shipit_with_home(home);
    command.args(["releases", "--target", TARGET]);
    for (name, value) in env {
        command.env(name, value);
    }
    Run::of(assert_cmd::Command::from_std(command).timeout(DEPLOY_TIMEOUT))
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn copy_key(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap();
    chmod(to, 0o600);
}

/// user, hostname, port and proxyjump as `ssh -G HOST` prints them.
fn ssh_g(host: &str) -> (String, String, String, String) {
    let out = Command::new("ssh")
        .args(["-G", host])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or("none")
            .to_string()
    };
    (get("user"), get("hostname"), get("port"), get("proxyjump"))
}

/// Hosts, ports, users and jump chains from a `~/.ssh/config` that the crate shipit used before
/// got wrong (Match, Include with `~` and globs, `Host` negation, `Port ssh`,
/// `ConnectTimeout 10s`, `%h` in IdentityFile, ProxyJump): shipit goes where `ssh -G` says.
/// OpenSSH's `~` is the account's home, not `$HOME`, so the test runs in a private mount
/// namespace where a scratch directory is mounted over /root: the real /root/.ssh is neither
/// read nor changed.
#[test]
fn ssh_config_is_read_as_openssh_reads_it() {
    let mut stack = Stack::start();
    let deploy = deploy_user().name;
    let port = stack.host.sshd.port;
    let closed = free_port();
    assert!(
        port_refuses(closed) && port_refuses(22),
        "port 22 must be free"
    );
    let scratch = tempfile::tempdir().unwrap();
    let ssh = scratch.path().join(".ssh");
    copy_key(&stack.host.sshd.client_key, &ssh.join("id_127.0.0.1"));
    write(
        &ssh.join("config"),
        &format!(
            "Include ~/.ssh/conf.d/*.conf\n\
             Match originalhost web,inner\n  User {deploy}\n  IdentityFile ~/.ssh/id_%h\n\
             Host *.lan !db.lan\n  HostName 127.0.0.1\n  User ops\n  Port ssh\n\
             Host viacmd\n  CheckHostIP yes\n\
             Host *\n  HostName 127.0.0.1\n  User nobody\n  Port {closed}\n  ConnectTimeout 10s\n  ServerAliveInterval 1m\n"
        ),
    );
    write(
        &ssh.join("conf.d/10-web.conf"),
        &format!("Host web inner\n  Port {port}\nHost inner\n  ProxyJump web\n"),
    );
    // Another file that the glob does not take.
    write(&ssh.join("conf.d/web.disabled"), "Host web\n  Port 1\n");

    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                ns::enter_private_mount_namespace();
                ns::bind(scratch.path(), Path::new("/root"));
                let home = Path::new("/root");

                // Through the Include, the Match and the %h key: a real login.
                assert_eq!(
                    ssh_g("web"),
                    (
                        deploy.clone(),
                        "127.0.0.1".into(),
                        port.to_string(),
                        "none".into()
                    )
                );
                configure(&mut stack, "web", "");
                releases(&stack, home, &[]).expect_code(0);
                let before = stack.host.sshd.log().matches("Connection from").count();

                // ProxyJump: through the same sshd to itself, two connections.
                assert_eq!(
                    ssh_g("inner"),
                    (
                        deploy.clone(),
                        "127.0.0.1".into(),
                        port.to_string(),
                        "web".into()
                    )
                );
                configure(&mut stack, "inner", "");
                releases(&stack, home, &[]).expect_code(0);
                let after = stack.host.sshd.log().matches("Connection from").count();
                assert_eq!(after - before, 2, "{}", stack.host.sshd.log());

                // Negation and `Port ssh`: where shipit tried to connect is where ssh would.
                for alias in ["app.lan", "db.lan"] {
                    let (user, host, port, jump) = ssh_g(alias);
                    assert_eq!(jump, "none");
                    configure(&mut stack, alias, "");
                    releases(&stack, home, &[])
                        .expect_code(3)
                        .says_error(&[&format!("{user}@{host}:{port}: cannot connect")]);
                }
                assert_eq!(ssh_g("app.lan").2, "22");
                assert_eq!(ssh_g("db.lan").0, "nobody");

                // What shipit cannot do is refused by name, before any connection.
                configure(&mut stack, "viacmd", "");
                releases(&stack, home, &[]).expect_code(2).says_error(&[
                    "CheckHostIP yes",
                    "viacmd",
                    "~/.ssh/config",
                    "set `CheckHostIP no` for these hosts",
                ]);

                // A `jump` in shipit.toml replaces the config's ProxyJump (`none`: direct).
                configure(&mut stack, "inner", "jump = \"none\"\n");
                let before = stack.host.sshd.log().matches("Connection from").count();
                releases(&stack, home, &[]).expect_code(0);
                let after = stack.host.sshd.log().matches("Connection from").count();
                assert_eq!(after - before, 1, "{}", stack.host.sshd.log());
            })
            .join()
            .unwrap();
    });
}

/// Without an `ssh` client, an existing `~/.ssh/config` is refused (shipit cannot read it the
/// way `ssh` would) rather than ignored; without one, OpenSSH's defaults apply.
#[test]
fn without_an_ssh_client_an_ssh_config_is_refused() {
    let stack = Stack::start();
    // A PATH with git and sh but no ssh.
    let bin = tempfile::tempdir().unwrap();
    for tool in ["git", "sh"] {
        let path = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .unwrap();
        let path = String::from_utf8(path.stdout).unwrap();
        std::os::unix::fs::symlink(path.trim(), bin.path().join(tool)).unwrap();
    }
    let path: &Path = bin.path();
    releases(&stack, stack.home.path(), &[("PATH", path)]).expect_code(0);
    let config = stack.home.path().join(".ssh/config");
    write(&config, "Host *\n  User somebody\n");
    releases(&stack, stack.home.path(), &[("PATH", path)])
        .expect_code(2)
        .says_error(&[&config.display().to_string(), "no OpenSSH client"]);
}

/// A real ssh-agent holding two keys, only the second authorised: shipit logs in with it.
#[test]
fn every_agent_identity_is_tried() {
    let mut stack = Stack::start();
    let spec = stack.host.sshd.host_spec();
    configure(&mut stack, &spec, "");
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let other = dir.path().join("other_key");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(status.success());
    let mut agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // The socket exists before the agent listens on it: ready once `ssh-add -l` reaches it
    // (exit 1, no identity; 2 is "cannot connect").
    let listening = || {
        let status = Command::new("ssh-add")
            .arg("-l")
            .env("SSH_AUTH_SOCK", &socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        (status.code() != Some(2)).then_some(())
    };
    assert!(wait_for(Duration::from_secs(10), listening).is_some());
    let add = |key: &Path| {
        let out = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &socket)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    add(&other);
    // With only the unauthorised key, authentication fails and says what it tried.
    releases(&stack, stack.home.path(), &[("SSH_AUTH_SOCK", &socket)])
        .expect_code(3)
        .says_error(&["authentication", "1 ssh-agent key(s)"]);
    add(&stack.host.sshd.client_key);
    let listed = Command::new("ssh-add")
        .arg("-l")
        .env("SSH_AUTH_SOCK", &socket)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    releases(&stack, stack.home.path(), &[("SSH_AUTH_SOCK", &socket)]).expect_code(0);
    let _ = agent.kill();
    let _ = agent.wait();
}

/// An encrypted identity_file and no agent: the error says the key is encrypted and how to
/// load it with ssh-add.
#[test]
fn an_encrypted_key_without_an_agent_says_to_ssh_add_it() {
    let mut stack = Stack::start();
    let spec = stack.host.sshd.host_spec();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("encrypted_key");
    copy_key(&stack.host.sshd.client_key, &key);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-p", "-P", "", "-N", "correct horse battery", "-f"])
        .arg(&key)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    configure(
        &mut stack,
        &spec,
        &format!("identity_file = {:?}\n", key.display().to_string()),
    );
    let run = releases(&stack, stack.home.path(), &[]);
    run.expect_code(3).says_error(&[
        &spec,
        &format!("{} is encrypted", key.display()),
        &format!("ssh-add {}", key.display()),
    ]);
    assert!(!run.stderr.contains("correct horse"));
}

/// A target whose sshd only a bastion can reach: shipit runs in a network namespace whose one
/// way out leads to the bastion's sshd (see support::netns), so the target's port does not
/// exist for it. Returns the stack (target trusted), the bastion, the namespace and the
/// known_hosts file trusting both.
fn behind_a_bastion() -> (Stack, Sshd, Isolated, PathBuf) {
    let stack = Stack::start();
    let bastion = Sshd::start_with_client_key(&stack.host.sshd.client_key);
    let isolated = Isolated::new(bastion.port);
    let known_hosts = stack.home.path().join("trusted_hosts");
    write(
        &known_hosts,
        &format!(
            "{}\n{}\n",
            stack.host.sshd.known_hosts_line(),
            bastion.known_hosts_line_for(isolated.port)
        ),
    );
    (stack, bastion, isolated, known_hosts)
}

fn shipit_isolated(stack: &Stack, isolated: &Isolated, args: &[&str]) -> Run {
    let mut command = stack.project.shipit_with_home(stack.home.path());
    isolated.enter(&mut command);
    command.args(args);
    Run::of(assert_cmd::Command::from_std(command).timeout(DEPLOY_TIMEOUT))
}

/// A full deploy of the example project through a bastion (`jump` in shipit.toml) to a host
/// shipit cannot reach directly; the same deploy without the jump cannot connect.
#[test]
fn a_deploy_through_a_bastion_reaches_a_host_only_the_bastion_can_reach() {
    let (mut stack, bastion, isolated, known_hosts) = behind_a_bastion();
    let jump = format!("{}@127.0.0.1:{}", deploy_user().name, isolated.port);
    stack.set_options(|o| {
        o.known_hosts = Some(known_hosts.clone());
        o.extra = "jump = \"none\"\n".into();
    });
    let direct = shipit_isolated(&stack, &isolated, &["deploy", "--target", TARGET]);
    direct.expect_code(3).says_error(&["cannot connect"]);

    stack.set_options(|o| o.extra = format!("jump = {jump:?}\n"));
    let run = shipit_isolated(&stack, &isolated, &["deploy", "--target", TARGET, "--json"]);
    run.expect_code(0);
    let release = run.release();
    stack.serves_release(&release);
    assert_eq!(stack.current_id(), release);
    assert!(
        bastion.log().contains("Accepted publickey"),
        "{}",
        bastion.log()
    );

    // A chain: the bastion, then the bastion again on its own port (only reachable from the
    // first hop), then the target.
    let mut trusted = std::fs::read_to_string(&known_hosts).unwrap();
    trusted.push_str(&format!("{}\n", bastion.known_hosts_line()));
    write(&known_hosts, &trusted);
    let second = format!("{}@127.0.0.1:{}", deploy_user().name, bastion.port);
    stack.set_options(|o| o.extra = format!("jump = \"{jump},{second}\"\n"));
    let logins = bastion.log().matches("Accepted publickey").count();
    shipit_isolated(&stack, &isolated, &["releases", "--target", TARGET]).expect_code(0);
    assert_eq!(
        bastion.log().matches("Accepted publickey").count() - logins,
        2,
        "{}",
        bastion.log()
    );
}

/// The bastion's host key is checked like the target's: unknown, then changed, it is refused
/// and nothing is deployed.
#[test]
fn a_bastion_with_an_unknown_or_changed_host_key_is_refused() {
    let (mut stack, mut bastion, isolated, known_hosts) = behind_a_bastion();
    let jump = format!("{}@127.0.0.1:{}", deploy_user().name, isolated.port);
    let only_target = stack.home.path().join("only_target");
    write(
        &only_target,
        &format!("{}\n", stack.host.sshd.known_hosts_line()),
    );
    stack.set_options(|o| {
        o.known_hosts = Some(only_target.clone());
        o.extra = format!("jump = {jump:?}\n");
    });
    shipit_isolated(&stack, &isolated, &["deploy", "--target", TARGET])
        .expect_code(3)
        .says_error(&[&format!("127.0.0.1:{}: host key is unknown", isolated.port)]);
    assert_eq!(
        std::fs::read_to_string(&only_target).unwrap(),
        format!("{}\n", stack.host.sshd.known_hosts_line())
    );

    stack.set_options(|o| o.known_hosts = Some(known_hosts.clone()));
    bastion.regenerate_host_key();
    shipit_isolated(
        &stack,
        &isolated,
        &["deploy", "--target", TARGET, "--accept-new-host-key"],
    )
    .expect_code(3)
    .says_error(&[&format!(
        "127.0.0.1:{}: HOST KEY HAS CHANGED",
        isolated.port
    )]);
    assert!(!stack.deploy_to().exists());
}
