//! The access paths larger teams use, against real sshd: a ProxyCommand carrying the session
//! (here `ssh -W` through a bastion, the shape of AWS SSM, cloudflared and Teleport), user
//! certificates signed by a CA the server trusts (`TrustedUserCAKeys`), and host certificates
//! checked against a known_hosts `@cert-authority` line alone. Every host-certificate verdict
//! is compared with the real `ssh` client's on the same known_hosts file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::netns::Isolated;
use support::stack::*;
use support::*;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `shipit ARGS` with the stack's HOME (whose `.ssh/config` shipit reads through `ssh -G`),
/// inside `isolated` when given.
fn shipit(stack: &Stack, isolated: Option<&Isolated>, args: &[&str]) -> Run {
    let mut command = stack.project.shipit_with_home(stack.home.path());
    if let Some(isolated) = isolated {
        isolated.enter(&mut command);
    }
    command.args(args);
    Run::of(assert_cmd::Command::from_std(command).timeout(DEPLOY_TIMEOUT))
}

/// `shipit releases`: a session that must be verified and authenticated, and nothing more.
fn connects(stack: &Stack) -> Run {
    shipit(stack, None, &["releases", "--target", TARGET])
}

/// Whether a process whose command line contains `needle` is running.
fn running(needle: &str) -> bool {
    Command::new("pgrep")
        .args(["-f", needle])
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// A deploy through `ProxyCommand ssh -W %h:%p bastion` (from ~/.ssh/config) to a host that
/// shipit, in a network namespace whose one way out is the bastion, cannot reach itself. The
/// command is stopped when shipit is done. A command that fails says what it printed.
#[test]
fn a_deploy_through_a_proxy_command_reaches_a_host_only_the_command_can_reach() {
    let mut stack = Stack::start();
    let bastion = Sshd::start_with_client_key(&stack.host.sshd.client_key);
    let isolated = Isolated::new(bastion.port);
    let home = stack.home.path().to_path_buf();
    let bastion_hosts = home.join("bastion_hosts");
    write(
        &bastion_hosts,
        &format!("{}\n", bastion.known_hosts_line_for(isolated.port)),
    );
    // A script of its own, so the test can see whether the command is still running.
    let relay = home.join("shipit-test-relay.sh");
    write(
        &relay,
        &format!(
            "ssh -F /dev/null -i {key} -o UserKnownHostsFile={known} -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes -p {port} -W \"$1:$2\" {user}@127.0.0.1\n",
            key = stack.host.sshd.client_key.display(),
            known = bastion_hosts.display(),
            port = isolated.port,
            user = deploy_user().name,
        ),
    );
    let config = home.join(".ssh/config");
    let target_port = stack.host.sshd.port;
    let host = |proxy: &str| {
        format!(
            "Host web\n  HostName 127.0.0.1\n  Port {target_port}\n  User {}\n  ProxyCommand {proxy}\n",
            deploy_user().name
        )
    };
    write(&config, &host(&format!("sh {} %h %p", relay.display())));
    stack.set_options(|o| o.hosts = vec!["web".into()]);

    let run = shipit(
        &stack,
        Some(&isolated),
        &["deploy", "--target", TARGET, "--json"],
    );
    run.expect_code(0);
    let release = run.release();
    stack.serves_release(&release);
    assert!(
        bastion.log().contains("Accepted publickey"),
        "the relay did not log in to the bastion:\n{}",
        bastion.log()
    );
    assert!(
        !running("shipit-test-relay"),
        "the ProxyCommand outlived shipit"
    );

    // Without the command, the host cannot be reached from the namespace at all.
    write(&config, &host("none"));
    shipit(&stack, Some(&isolated), &["releases", "--target", TARGET])
        .expect_code(3)
        .says_error(&["cannot connect"]);

    // A command that fails: its exit status and what it printed, and how to try it.
    write(
        &config,
        &host("sh -c 'echo tunnel refused: no route to %h >&2; exit 7'"),
    );
    shipit(&stack, Some(&isolated), &["releases", "--target", TARGET])
        .expect_code(3)
        .says_error(&[
            "the ProxyCommand exited (exit status: 7) saying: tunnel refused: no route to 127.0.0.1",
        ])
        .says(&["run it yourself"]);
    assert_eq!(stack.current_id(), release);
}

/// A CA (private key at the returned path, public at `.pub`) in the stack's sshd dir.
fn new_ca(stack: &Stack, name: &str) -> PathBuf {
    let ca = stack.host.sshd.dir.path().join(name);
    new_ed25519_key(&ca, name);
    ca
}

/// shipit.toml's identity_file replaced by `key`.
fn use_key(stack: &Stack, key: &Path) {
    let text = stack.project.read("shipit.toml");
    let old = format!(
        "identity_file = {:?}",
        stack.host.sshd.client_key.display().to_string()
    );
    assert!(text.contains(&old), "{text}");
    let new = format!("identity_file = {:?}", key.display().to_string());
    stack
        .project
        .write("shipit.toml", &text.replace(&old, &new));
    stack.project.commit_all("another key");
}

/// A key the server does not authorise logs in with a certificate from a CA it trusts
/// (`TrustedUserCAKeys`): the certificate beside the key (`KEY-cert.pub`, as `ssh` finds it),
/// or one a CertificateFile names, or held by ssh-agent. A certificate for another principal, an expired one or one
/// from another CA is not enough, and the error names what was tried.
#[test]
fn a_user_certificate_from_a_trusted_ca_logs_in_and_a_wrong_one_does_not() {
    let mut stack = Stack::start();
    let ca = new_ca(&stack, "user_ca");
    let other_ca = new_ca(&stack, "other_ca");
    stack
        .host
        .sshd
        .restart_with_config(&format!("TrustedUserCAKeys {}.pub\n", ca.display()));
    let dir = stack.home.path().join("keys");
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("id_ed25519");
    new_ed25519_key(&key, "certified");
    use_key(&stack, &key);
    let deploy = deploy_user().name;
    let sign = |signer: &Path, principal: &str, validity: &str, out: &Path| {
        let public = dir.join("sign.pub");
        std::fs::copy(format!("{}.pub", key.display()), &public).unwrap();
        let ca = signer.to_str().unwrap();
        ssh_keygen(&[
            "-q",
            "-s",
            ca,
            "-I",
            "tester",
            "-n",
            principal,
            "-V",
            validity,
            public.to_str().unwrap(),
        ]);
        std::fs::rename(dir.join("sign-cert.pub"), out).unwrap();
    };

    // No certificate: the key alone is not authorised.
    connects(&stack)
        .expect_code(3)
        .says_error(&["authentication as"]);

    // Beside the key.
    let beside = dir.join("id_ed25519-cert.pub");
    sign(&ca, &deploy, "+1h", &beside);
    connects(&stack).expect_code(0);
    assert!(
        stack.host.sshd.log().contains("Accepted publickey")
            && stack.host.sshd.log().contains("ED25519-CERT"),
        "{}",
        stack.host.sshd.log()
    );

    // Refused: another principal, expired, another CA. The error names the certificate.
    for (signer, principal, validity) in [
        (&ca, "somebody-else", "+1h"),
        (&ca, deploy.as_str(), "20200101:20200102"),
        (&other_ca, deploy.as_str(), "+1h"),
    ] {
        sign(signer, principal, validity, &beside);
        connects(&stack)
            .expect_code(3)
            .says_error(&["authentication as", &format!("with {}", beside.display())]);
    }

    // Through CertificateFile in ~/.ssh/config, kept elsewhere.
    std::fs::remove_file(&beside).unwrap();
    let elsewhere = stack.home.path().join("certs/deploy-cert.pub");
    std::fs::create_dir_all(elsewhere.parent().unwrap()).unwrap();
    sign(&ca, &deploy, "+1h", &elsewhere);
    write(
        &stack.home.path().join(".ssh/config"),
        &format!(
            "Host 127.0.0.1\n  CertificateFile {}\n",
            elsewhere.display()
        ),
    );
    connects(&stack).expect_code(0);

    // Held by ssh-agent (`ssh-add KEY` loads `KEY-cert.pub` with it), with no key file left.
    std::fs::remove_file(stack.home.path().join(".ssh/config")).unwrap();
    sign(&ca, &deploy, "+1h", &beside);
    let socket = dir.join("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let added = wait_for(std::time::Duration::from_secs(10), || {
        let out = Command::new("ssh-add")
            .arg(&key)
            .env("SSH_AUTH_SOCK", &socket)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        out.status.success().then_some(said)
    });
    let added = added.expect("ssh-add reached the agent");
    assert!(added.contains("Certificate added"), "{added}");
    for file in [&key, &beside] {
        std::fs::remove_file(file).unwrap();
    }
    let mut command = stack.project.shipit_with_home(stack.home.path());
    command
        .env("SSH_AUTH_SOCK", &socket)
        .args(["releases", "--target", TARGET]);
    Run::of(assert_cmd::Command::from_std(command).timeout(DEPLOY_TIMEOUT)).expect_code(0);
    let _ = agent.kill();
    let _ = agent.wait();
}

/// What the real `ssh` client decides about the stack's sshd with `known_hosts` alone: whether
/// it gets past host-key verification (it logs in with the stack's key and runs `true`).
fn ssh_trusts(stack: &Stack, known_hosts: &Path) -> bool {
    let out = stack
        .host
        .sshd
        .ssh_command_via(stack.host.sshd.port, known_hosts, "true")
        .output()
        .unwrap();
    out.status.success()
}

/// A host known only through `@cert-authority`: its certificate is checked as `ssh` checks it,
/// and every verdict agrees with the real `ssh` client's on the same known_hosts: trusted when
/// valid for the host; refused, naming why and the CA's line, when expired, not yet valid, for
/// another host, signed by another CA, or when the CA is `@revoked`; a server with no
/// certificate is refused rather than offered for trust on first use.
#[test]
fn a_host_certificate_is_checked_against_its_cert_authority_line_as_ssh_checks_it() {
    let mut stack = Stack::start();
    let ca = new_ca(&stack, "host_ca");
    let other_ca = new_ca(&stack, "other_host_ca");
    let ca_public = std::fs::read_to_string(format!("{}.pub", ca.display())).unwrap();
    let ca_key: Vec<&str> = ca_public.split_whitespace().take(2).collect();
    let ca_key = ca_key.join(" ");
    let known_hosts = stack.host.sshd.known_hosts.clone();
    let port = stack.host.sshd.port;
    let authority = format!("@cert-authority [127.0.0.1]:{port} {ca_key}\n");
    std::fs::write(&known_hosts, &authority).unwrap();
    let trusted = |stack: &Stack| {
        let run = connects(stack);
        assert_eq!(
            ssh_trusts(stack, &known_hosts),
            run.code == 0,
            "shipit and ssh disagree (shipit exit {}):\n{}",
            run.code,
            run.stderr
        );
        run
    };

    // No certificate yet: the plain key is not trusted on first use, even when asked.
    let run = trusted(&stack);
    run.expect_code(3).says_error(&[
        &format!(
            "{}:1 trusts this host only through a @cert-authority key",
            known_hosts.display()
        ),
        "presented its plain ssh-ed25519 key",
    ]);
    shipit(
        &stack,
        None,
        &["releases", "--target", TARGET, "--accept-new-host-key"],
    )
    .expect_code(3);
    assert_eq!(std::fs::read_to_string(&known_hosts).unwrap(), authority);

    stack
        .host
        .sshd
        .certify_host_key(&ca, &["-n", "127.0.0.1", "-V", "-5m:+1h"]);
    trusted(&stack).expect_code(0);

    for (signer, options, why) in [
        (
            &ca,
            ["-n", "127.0.0.1", "-V", "20200101:20200102"],
            "it has expired (valid until 2020-01-02",
        ),
        (
            &ca,
            ["-n", "127.0.0.1", "-V", "+1d:+2d"],
            "it is not valid yet",
        ),
        (
            &ca,
            ["-n", "web.example.com", "-V", "+0:+1h"],
            "it is for `web.example.com`, not `127.0.0.1`",
        ),
        (
            &other_ca,
            ["-n", "127.0.0.1", "-V", "+0:+1h"],
            "no @cert-authority line for this host holds the CA",
        ),
    ] {
        stack.host.sshd.certify_host_key(signer, &options);
        trusted(&stack)
            .expect_code(3)
            .says_error(&["the host certificate is refused", why]);
    }

    // A valid certificate whose CA is revoked.
    stack
        .host
        .sshd
        .certify_host_key(&ca, &["-n", "127.0.0.1", "-V", "-5m:+1h"]);
    std::fs::write(&known_hosts, format!("{authority}@revoked * {ca_key}\n")).unwrap();
    trusted(&stack)
        .expect_code(3)
        .says_error(&["is REVOKED", &format!("{}:2", known_hosts.display())]);
    assert!(!stack.deploy_to().join("releases").exists());
}
