//! HTTPS on the real stack (issue 24): a certificate the team brings in files, served on the
//! https port with the redirect from http and HSTS, replaced by the next deploy and left alone
//! by a rollback; and one issued by a real ACME server (pebble) to the host's certbot on the
//! first deploy, before the switch, or a failed issuance that leaves the old release serving.
//! Requests are real TLS requests by curl. Needs root, nginx, pebble, certbot, openssl, curl.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use support::pebble::Pebble;
use support::stack::*;
use support::{free_port, run_as_deploy_ok, wait_for};

/// A self-signed certificate for `localhost` and its key, in `dir` as NAME.pem and NAME.key.
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", &format!("/CN={name}")])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    (cert, key)
}

/// `curl ARGS` for `https://localhost:PORT/PATH` (localhost resolved to 127.0.0.1) trusting
/// only `ca`: the status and the headers and body, or curl's error.
fn https(port: u16, path: &str, ca: &Path) -> Result<(u16, String), String> {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "5", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, text))
}

/// The https answer once it is 200 and shows `release: ID` (nginx reloads asynchronously).
fn serves_over_https(stack: &Stack, port: u16, ca: &Path, id: &str) -> String {
    let needle = format!("release: {id}\n");
    let mut last = None;
    wait_for(SERVE_TIMEOUT, || {
        let got = https(port, "/", ca);
        let ok = matches!(&got, Ok((200, text)) if text.contains(&needle));
        last = Some(got);
        ok.then(|| last.clone().unwrap().unwrap().1)
    })
    .unwrap_or_else(|| {
        panic!(
            "https://localhost:{port}/ never served release {id}; last: {last:?}\nnginx error.log:\n{}",
            stack.host.nginx.error_log()
        )
    })
}

/// `curl` of `http://127.0.0.1:PORT/PATH`: the status and the Location header.
fn http_redirect(port: u16, path: &str) -> (String, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
        ])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, location) = text.split_once(' ').unwrap_or((&text, ""));
    (status.to_string(), location.to_string())
}

fn tls_table(lines: &str, port: u16) -> String {
    format!("\n[targets.{TARGET}.tls]\nport = {port}\n{lines}")
}

/// [`tls_table`] for ACME from `pebble`, for `localhost`, trusting pebble's listener.
fn acme_table(pebble: &Pebble, port: u16) -> String {
    tls_table(
        &format!(
            "directory = {:?}\ndomains = [\"localhost\"]\ndirectory_ca = {:?}\n",
            pebble.directory,
            pebble.listener_ca().display().to_string()
        ),
        port,
    )
}

#[test]
fn a_certificate_from_files_is_served_redirected_to_replaced_by_a_deploy_and_kept_by_a_rollback() {
    let started = Instant::now();
    let keys = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(keys.path(), "current");
    let tls_port = free_port();
    let mut stack = Stack::start();
    let table = tls_table(
        &format!(
            "certificate = {{ file = {:?} }}\nkey = {{ file = {:?} }}\nhsts = {{ max_age = 600, include_subdomains = true }}\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
        tls_port,
    );
    stack.set_options(|o| o.extra = table);
    let run = stack.deploy(&[]);
    run.expect_code(0);
    let first = run.release();
    let key_text = std::fs::read_to_string(&key).unwrap();
    let key_line = key_text.lines().nth(1).unwrap();
    assert!(!run.stderr.contains(key_line) && !run.stdout.contains(key_line));

    let page = serves_over_https(&stack, tls_port, &cert, &first);
    assert!(
        page.contains("strict-transport-security: max-age=600; includeSubDomains")
            || page.contains("Strict-Transport-Security: max-age=600; includeSubDomains"),
        "{page}"
    );
    let (status, location) = http_redirect(stack.port, "/pages/?a=1");
    assert_eq!(status, "308");
    assert_eq!(location, format!("https://127.0.0.1:{tls_port}/pages/?a=1"));

    // The key is the target's, 0600, outside every release and archive.
    let installed = stack.deploy_to().join("tls/privkey.pem");
    let mode = std::fs::metadata(&installed).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    // Nor in the run logs shipit keeps, as text or as the base64 word its step carried.
    assert!(stack.project.path(".shipit/logs").is_dir());
    let key_b64 = Command::new("base64")
        .args(["-w0"])
        .arg(&key)
        .output()
        .unwrap()
        .stdout;
    let key_b64 = String::from_utf8(key_b64).unwrap();
    for needle in [key_line, &key_b64[..40]] {
        let grep = Command::new("grep")
            .args(["-rlF", needle])
            .arg(stack.deploy_to().join("releases"))
            .arg(stack.project.path(".shipit/logs"))
            .output()
            .unwrap();
        assert!(grep.stdout.is_empty(), "{grep:?}");
    }
    let archives = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "zcat {}/.shipit/archives/*.tar.gz | grep -caF {}",
            stack.deploy_to().display(),
            support::shell_quote(key_line)
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&archives.stdout).trim(), "0");

    // A new certificate at the same paths is served after the next deploy.
    let replaced = tempfile::tempdir().unwrap();
    let (cert2, key2) = certificate(replaced.path(), "renewed");
    std::fs::copy(&cert2, &cert).unwrap();
    std::fs::copy(&key2, &key).unwrap();
    stack.change_page("marker: second");
    let second = stack.deploy_release();
    serves_over_https(&stack, tls_port, &cert2, &second);

    // A rollback moves the code back, never the certificate.
    stack.rollback(&[]).expect_code(0);
    serves_over_https(&stack, tls_port, &cert2, &first);
    eprintln!("[tls] files mode test: {:?}", started.elapsed());
}

#[test]
fn acme_issues_the_certificate_on_the_first_deploy_before_the_switch() {
    let mut stack = Stack::start();
    let pebble = Pebble::start(stack.port);
    let tls_port = free_port();
    let table = acme_table(&pebble, tls_port);
    stack.set_options(|o| o.extra = table);
    let started = Instant::now();
    let run = stack.deploy(&[]);
    if run.code != 0 {
        panic!(
            "deploy failed:\n{}\npebble:\n{}\nnginx:\n{}",
            run.stderr,
            pebble.log(),
            stack.host.nginx.error_log()
        );
    }
    let deploy_time = started.elapsed();
    let first = run.release();
    let page = serves_over_https(&stack, tls_port, &pebble.root(), &first);
    assert!(
        !page.to_lowercase().contains("strict-transport-security"),
        "{page}"
    );
    let (status, _) = http_redirect(stack.port, "/");
    assert_eq!(status, "308");
    // The challenge path is served from the webroot, not redirected.
    let (status, _) = http_redirect(stack.port, "/.well-known/acme-challenge/nothing");
    assert_eq!(status, "404");
    eprintln!("[tls] first deploy with ACME issuance: {deploy_time:?}");

    // The next deploy does not ask the CA again.
    stack.change_page("marker: second");
    let run = stack.deploy(&[]);
    run.expect_code(0);
    let second = run.release();
    let archive = stack.deploy_to().join("tls/certbot/archive/shipit");
    assert!(archive.join("cert1.pem").exists());
    assert!(
        !archive.join("cert2.pem").exists(),
        "the second deploy issued again"
    );
    serves_over_https(&stack, tls_port, &pebble.root(), &second);

    // Renewal on the host, without shipit: the script the deploy left, forced (certbot would
    // wait until a third of the lifetime is left), under requests that must all succeed.
    let before = served_serial(tls_port);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, root) = (stop.clone(), pebble.root());
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match https(tls_port, "/", &root) {
                    Ok((200, _)) => ok += 1,
                    other => failed.push(format!("{other:?}")),
                }
            }
            (ok, failed)
        })
    };
    let renewing = Instant::now();
    let renew = stack.deploy_to().join("tls/renew");
    // certbot renew sleeps up to 8 minutes first when run without a terminal (so a timer on
    // every host does not hit the CA at once); by hand, or here, that is skipped.
    run_as_deploy_ok(&format!(
        "{} --force-renewal --no-random-sleep-on-renew",
        renew.display()
    ));
    let renewed = wait_for(SERVE_TIMEOUT, || {
        let serial = served_serial(tls_port);
        (serial != before).then_some(serial)
    });
    let renew_time = renewing.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = load.join().unwrap();
    assert!(
        renewed.is_some(),
        "the renewed certificate is not served ({before})"
    );
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {failed:?}",
        failed.len(),
        ok + failed.len()
    );
    serves_over_https(&stack, tls_port, &pebble.root(), &second);
    eprintln!("[tls] forced renewal served after {renew_time:?}; {ok} requests, 0 failed");
}

/// The serial number of the certificate served on `port` (for `localhost`).
fn served_serial(port: u16) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -serial"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_failed_issuance_stops_the_deploy_before_the_switch_and_the_old_release_keeps_serving() {
    let mut stack = Stack::start();
    let old = stack.deploy_release();
    stack.serves_release(&old);
    // Pebble validates on a port where nothing listens: the challenge cannot be answered.
    let pebble = Pebble::start(free_port());
    let tls_port = free_port();
    let table = acme_table(&pebble, tls_port);
    stack.set_options(|o| o.extra = table);
    stack.change_page("marker: never served");
    let run = stack.deploy(&[]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    run.says(&[
        "issued no certificate for localhost",
        "hint: every name must resolve",
    ]);
    assert!(
        run.stderr.contains("Detail") || run.stderr.contains("connection refused"),
        "the CA's words are missing:\n{}",
        run.stderr
    );
    assert_eq!(stack.current_id(), old);
    let body = stack.serves_release(&old);
    assert!(!body.contains("never served"), "{body}");
}
