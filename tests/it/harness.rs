//! Tests of the test harness itself (the `support` crate, `tests/support`): real sshd, nginx
//! and supervisord on loopback, checked by their observable behaviour. Needs root.

use std::time::Duration;
use support::*;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn deploy_user_exists_and_can_log_in() {
    let u = deploy_user();
    assert_eq!(u.name, "deploy");
    assert_ne!(u.uid, 0);
    assert!(u.home.is_dir(), "home {} missing", u.home.display());
    // Idempotent, also under concurrent callers.
    let handles: Vec<_> = (0..4).map(|_| std::thread::spawn(deploy_user)).collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), u);
    }
    // Not locked (a '!' password field makes sshd refuse even key logins with UsePAM no).
    let shadow = std::process::Command::new("getent")
        .args(["shadow", "deploy"])
        .output()
        .unwrap();
    let field = text(&shadow.stdout)
        .split(':')
        .nth(1)
        .unwrap_or("")
        .to_string();
    assert!(!field.starts_with('!'), "deploy is locked: {field:?}");
    assert_eq!(run_as_deploy_ok("id -un").trim(), "deploy");
}

#[test]
fn deploy_owned_tempdir_is_writable_by_deploy_and_removed() {
    use std::os::unix::fs::MetadataExt;
    let dir = deploy_owned_tempdir();
    let path = dir.path().to_path_buf();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.uid(), deploy_user().uid);
    assert_eq!(meta.mode() & 0o777, 0o755);
    let file = path.join("made-by-deploy");
    run_as_deploy_ok(&format!("echo hi > {}", file.display()));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "hi\n");
    drop(dir);
    assert!(!path.exists());
}

#[test]
fn sshd_logs_in_detects_changed_host_key_and_stops() {
    let mut sshd = Sshd::start();
    let port = sshd.port;
    assert_eq!(sshd.host_spec(), format!("deploy@127.0.0.1:{port}"));
    let known = std::fs::read_to_string(&sshd.known_hosts).unwrap();
    assert_eq!(known, format!("{}\n", sshd.known_hosts_line()));
    assert!(
        known.starts_with(&format!("[127.0.0.1]:{port} ssh-ed25519 AAAA")),
        "{known}"
    );

    let out = sshd.ssh_command("id -un").output().unwrap();
    assert!(
        out.status.success(),
        "ssh failed: {}\nsshd log:\n{}",
        text(&out.stderr),
        sshd.log()
    );
    assert_eq!(text(&out.stdout), "deploy\n");
    // Sessions get the plain OpenSSH PATH: /usr/sbin is not on it.
    let out = sshd.ssh_command("echo $PATH").output().unwrap();
    assert_eq!(text(&out.stdout).trim(), DEPLOY_PATH);

    // The sftp subsystem works (libssh2/ssh2 SFTP and OpenSSH scp use it); scp's legacy
    // protocol needs /usr/bin/scp on the server, which openssh-client provides.
    let out = std::process::Command::new("sftp")
        .args(["-F", "/dev/null", "-b", "-", "-i"])
        .arg(&sshd.client_key)
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", sshd.known_hosts.display()))
        .args(["-o", "StrictHostKeyChecking=yes", "-P"])
        .arg(port.to_string())
        .arg("deploy@127.0.0.1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"pwd\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "sftp: {}", text(&out.stderr));
    let home = deploy_user().home.display().to_string();
    assert!(text(&out.stdout).contains(&home), "{}", text(&out.stdout));

    let old_line = sshd.known_hosts_line();
    sshd.regenerate_host_key();
    assert_eq!(sshd.port, port);
    assert_ne!(sshd.known_hosts_line(), old_line);
    assert_eq!(std::fs::read_to_string(&sshd.known_hosts).unwrap(), known);
    let out = sshd.ssh_command("id -un").output().unwrap();
    assert!(
        !out.status.success(),
        "login succeeded despite a changed host key"
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "stderr: {err}"
    );
    assert!(
        err.contains("Host key verification failed"),
        "stderr: {err}"
    );
    assert!(out.stdout.is_empty());

    drop(sshd);
    assert!(port_refuses(port), "port {port} still accepts after drop");
}

#[test]
fn two_sshd_share_one_client_key() {
    let a = Sshd::start();
    let b = Sshd::start_with_client_key(&a.client_key);
    assert_eq!(b.client_key, a.client_key);
    assert_ne!(a.port, b.port);
    for s in [&a, &b] {
        let out = s.ssh_command("id -un").output().unwrap();
        assert_eq!(
            text(&out.stdout),
            "deploy\n",
            "{}\n{}",
            text(&out.stderr),
            s.log()
        );
    }
    // Each server has its own host key: a's known_hosts does not vouch for b.
    let out = a
        .ssh_command_via(b.port, &a.known_hosts, "true")
        .output()
        .unwrap();
    assert!(!out.status.success(), "b accepted with a's known_hosts");
}

#[test]
fn nginx_serves_a_site_after_reload_by_deploy_and_tests_config() {
    let nginx = Nginx::start();
    let sshd = Sshd::start();
    let port = free_port();
    let body = "hello from the shipit harness\n";
    assert!(port_refuses(port));

    // As deploy over SSH (like shipit would): write the site, test, reload.
    let site = nginx.sites_dir.join("app.conf");
    let conf = format!(
        "server {{\n    listen 127.0.0.1:{port};\n    location / {{\n        \
         default_type text/plain;\n        return 200 \"{}\";\n    }}\n}}\n",
        body.replace('\n', "\\n")
    );
    let script = format!(
        "set -e; cat > {site} <<'EOF'\n{conf}EOF\n{test}\n{reload}\n",
        site = site.display(),
        test = nginx.test_command(),
        reload = nginx.reload_command()
    );
    let out = sshd.ssh_command(&script).output().unwrap();
    assert!(
        out.status.success(),
        "reload over ssh failed: {}\n{}",
        text(&out.stderr),
        nginx.error_log()
    );
    let got = wait_for(Duration::from_secs(10), || {
        http_get(port, "/").ok().filter(|(s, _)| *s == 200)
    });
    assert_eq!(
        got,
        Some((200, body.to_string())),
        "error.log: {}",
        nginx.error_log()
    );

    // test_command() as deploy: OK now, fails on a broken site.
    run_as_deploy_ok(&nginx.test_command());
    write_as_deploy(
        &nginx.sites_dir.join("broken.conf"),
        "server { listen 127.0.0.1:1; no_such_directive on; }\n",
    );
    let out = run_as_deploy(&nginx.test_command());
    assert!(!out.status.success(), "nginx -t accepted a broken config");
    assert!(
        text(&out.stderr).contains("no_such_directive"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_file(nginx.sites_dir.join("broken.conf")).unwrap();
    run_as_deploy_ok(&nginx.test_command());

    // Reload via runuser too, after removing the site: the port closes.
    std::fs::remove_file(&site).unwrap();
    let out = std::process::Command::new("runuser")
        .args(["-u", "deploy", "--", "sh", "-c", &nginx.reload_command()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        wait_for(Duration::from_secs(10), || port_refuses(port).then_some(())).is_some(),
        "site still served after removal + reload"
    );
    drop(nginx);
}

#[test]
fn nginx_stops_on_drop() {
    let nginx = Nginx::start();
    let port = free_port();
    write_as_deploy(
        &nginx.sites_dir.join("s.conf"),
        format!("server {{ listen 127.0.0.1:{port}; return 204; }}\n"),
    );
    run_as_deploy_ok(&nginx.reload_command());
    let got = wait_for(Duration::from_secs(10), || {
        http_get(port, "/").ok().filter(|(s, _)| *s == 204)
    });
    assert!(got.is_some(), "{}", nginx.error_log());
    drop(nginx);
    assert!(port_refuses(port));
}

#[test]
fn supervisord_runs_a_program_added_by_deploy_and_stops_it() {
    let mut sup = Supervisord::start();
    let port = free_port();
    let conf = format!(
        "[program:web]\n\
         command=/usr/bin/python3 -m http.server {port} --bind 127.0.0.1\n\
         directory={dir}\n\
         autostart=true\n\
         autorestart=true\n\
         startsecs=1\n\
         stopwaitsecs=5\n",
        dir = sup.dir.path().display()
    );
    let ctl = sup.ctl_command();
    // Written and activated as deploy.
    run_as_deploy_ok(&format!(
        "cat > {}/web.conf <<'EOF'\n{conf}EOF\n{ctl} reread && {ctl} update",
        sup.include_dir.display()
    ));
    let got = wait_for(Duration::from_secs(10), || {
        http_get(port, "/").ok().filter(|(s, _)| *s == 200)
    });
    assert!(got.is_some(), "program not serving; log:\n{}", sup.log());
    // RUNNING once it has stayed up for startsecs=1.
    let running = wait_for(Duration::from_secs(10), || {
        let out = run_as_deploy(&format!("{ctl} status web"));
        text(&out.stdout).contains("RUNNING").then_some(())
    });
    assert!(running.is_some(), "web never RUNNING; log:\n{}", sup.log());
    // The program runs as deploy.
    let pid: u32 = run_as_deploy_ok(&format!("{ctl} pid web"))
        .trim()
        .parse()
        .unwrap();
    let uid_line = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .to_string();
    assert!(
        uid_line.split_whitespace().nth(1) == Some(&deploy_user().uid.to_string()),
        "{uid_line}"
    );

    sup.stop();
    assert!(port_refuses(port), "program still serving after stop()");
    // The program's process is gone (at most a zombie awaiting its reaper).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit(')').next().unwrap_or("").trim_start();
    assert!(
        state.is_empty() || state.starts_with('Z'),
        "program {pid} survived stop(): {state}"
    );
}

#[test]
fn http_get_and_wait_for() {
    assert!(http_get(free_port(), "/").is_err());
    let start = std::time::Instant::now();
    assert_eq!(wait_for(Duration::from_millis(200), || None::<()>), None);
    assert!(start.elapsed() >= Duration::from_millis(200));
    let mut n = 0;
    assert_eq!(
        wait_for(Duration::from_secs(5), || {
            n += 1;
            (n == 3).then_some(n)
        }),
        Some(3)
    );
}
