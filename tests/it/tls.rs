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
use support::systemd_stack::SystemdStack;
use support::{free_port, wait_for, Nginx, Run};

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
fn serves_over_https(nginx: &Nginx, port: u16, ca: &Path, id: &str) -> String {
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
            nginx.error_log()
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

    let page = serves_over_https(&stack.host.nginx, tls_port, &cert, &first);
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
    serves_over_https(&stack.host.nginx, tls_port, &cert2, &second);

    // A rollback moves the code back, never the certificate.
    stack.rollback(&[]).expect_code(0);
    serves_over_https(&stack.host.nginx, tls_port, &cert2, &first);
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
    let page = serves_over_https(&stack.host.nginx, tls_port, &pebble.root(), &first);
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
    // `shipit check` shows the certificate: pebble's five years, for the name asked.
    let check = stack.shipit(&["check", "--target", TARGET, "--json"]);
    let tls = tls_check(&check.json());
    assert_eq!(tls["status"], "ok", "{tls}");
    let detail = tls["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("names: localhost; issuer: CN = Pebble Intermediate CA")
            && detail.contains(" 182"),
        "{detail}"
    );

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
    serves_over_https(&stack.host.nginx, tls_port, &pebble.root(), &second);

    // Renewal on the host, without shipit: the script the deploy left, forced (certbot would
    // wait until a third of the lifetime is left), under requests that must all succeed.
    let before = served_serial(tls_port);
    let probe = HttpsProbe::start(tls_port, pebble.root());
    let renewing = Instant::now();
    stack
        .shipit(&["tls", "--target", TARGET, "renew", "--force"])
        .expect_code(0);
    let renewed = wait_for(SERVE_TIMEOUT, || {
        let serial = served_serial(tls_port);
        (serial != before).then_some(serial)
    });
    let renew_time = renewing.elapsed();
    let ok = probe.stop_without_failures();
    assert!(
        renewed.is_some(),
        "the renewed certificate is not served ({before})"
    );
    serves_over_https(&stack.host.nginx, tls_port, &pebble.root(), &second);
    eprintln!("[tls] forced renewal served after {renew_time:?}; {ok:?}");

    // A prune that removes the first release keeps the certificate: it is the target's.
    stack.change_page("marker: third");
    let third = stack.deploy_release();
    stack
        .shipit(&[
            "releases", "--target", TARGET, "--prune", "--keep", "1", "--yes",
        ])
        .expect_code(0);
    assert_eq!(stack.releases(), [second, third.clone()]);
    assert!(archive.join("cert2.pem").exists());
    assert_eq!(served_serial(tls_port), renewed.unwrap());
    serves_over_https(&stack.host.nginx, tls_port, &pebble.root(), &third);
}

/// Lifetime of the certificates pebble issues in [`renewed_by_the_timer`]: due after 220 s (a
/// third left), and the every-minute timer fires by 280 s.
const SHORT_LIFETIME: u64 = 330;

/// Pebble issuing certificates of [`SHORT_LIFETIME`], validating on `http_port`; the https port;
/// the ACME table with the renewal timer firing every minute.
fn renewing_every_minute(http_port: u16) -> (Pebble, u16, String) {
    let pebble = Pebble::short_lived(http_port, SHORT_LIFETIME);
    let tls_port = free_port();
    let table = acme_table(&pebble, tls_port) + "renew = \"* * * * *\"\n";
    (pebble, tls_port, table)
}

/// The `tls` outcome of `shipit check --json`'s (only) host.
fn tls_check(check: &serde_json::Value) -> serde_json::Value {
    let hosts = check["hosts"].as_object().unwrap();
    let outcomes = hosts.values().next().unwrap().as_array().unwrap();
    outcomes
        .iter()
        .find(|o| o["check"] == "tls")
        .unwrap()
        .clone()
}

/// A first deploy (`deploy`) has pebble issue a certificate of [`SHORT_LIFETIME`]; then, with no
/// shipit running, the renewal timer (`tls.renew` every minute) leaves it alone while it is not
/// due and renews it once it is, served after a graceful reload under the https probe with no
/// failed request. `why` says what the host ran, when it did not. Returns the figures.
fn renewed_by_the_timer(
    deploy: &dyn Fn() -> Run,
    deploy_to: &Path,
    nginx: &Nginx,
    pebble: &Pebble,
    tls_port: u16,
    why: &dyn Fn() -> String,
) -> String {
    let issuing = Instant::now();
    let run = deploy();
    if run.code != 0 {
        panic!("deploy failed:\n{}\npebble:\n{}", run.stderr, pebble.log());
    }
    let issued_in = issuing.elapsed();
    let first = run.release();
    serves_over_https(nginx, tls_port, &pebble.root(), &first);
    // shipit is done: from here only the host's timer runs the renewal, each minute.
    let before = served_serial(tls_port);
    let probe = HttpsProbe::start(tls_port, pebble.root());
    let waiting = Instant::now();
    let renewed = wait_for(std::time::Duration::from_secs(SHORT_LIFETIME), || {
        let serial = served_serial(tls_port);
        (!serial.is_empty() && serial != before).then_some(serial)
    });
    let waited = waiting.elapsed();
    // A few more requests with the renewed certificate.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let report = probe.stop_without_failures();
    let log = std::fs::read_to_string(deploy_to.join("tls/renew.log")).unwrap_or_default();
    assert!(
        renewed.is_some(),
        "no renewal served within {SHORT_LIFETIME}s ({before}); renew.log:\n{log}\n{}",
        why()
    );
    // The timer ran before the certificate was due and left it alone, then renewed it once.
    let events: Vec<&str> = log.lines().filter_map(|l| l.split(' ').nth(1)).collect();
    assert_eq!(events.first(), Some(&"issued"), "{log}");
    assert!(events.contains(&"not-due"), "{log}");
    assert_eq!(
        events.iter().filter(|e| **e == "renewed").count(),
        1,
        "{log}"
    );
    assert!(!events.contains(&"failed"), "{log}");
    serves_over_https(nginx, tls_port, &pebble.root(), &first);
    // The deploy log has both, for `shipit audit`.
    let audit = std::fs::read_to_string(deploy_to.join(".shipit/log")).unwrap();
    for action in ["\ttls-issue\t", "\ttls-renew\t"] {
        assert!(audit.contains(action), "{action:?} not in {audit}");
    }
    format!(
        "issuance deploy {issued_in:?}; the timer's renewal served {waited:?} after it (lifetime {SHORT_LIFETIME}s); https probe {report:?}"
    )
}

#[test]
fn the_renewal_timer_renews_a_due_certificate_with_no_shipit_running() {
    let mut stack = Stack::start();
    let (pebble, tls_port, table) = renewing_every_minute(stack.port);
    stack.set_options(|o| o.extra = table);
    let deploy_to = stack.deploy_to();
    let figures = renewed_by_the_timer(
        &|| stack.deploy(&[]),
        &deploy_to,
        &stack.host.nginx,
        &pebble,
        tls_port,
        &|| {
            std::fs::read_to_string(deploy_to.join("shared/log/hello-schedule.log"))
                .unwrap_or_default()
        },
    );
    eprintln!("[tls] supervisor's scheduler: {figures}");
    // `shipit tls status` and `shipit check` say the certificate has under 14 days left.
    let status = stack.shipit(&["tls", "--target", TARGET, "status"]);
    status.expect_code(1);
    status.prints(&[
        "names: localhost; issuer: CN = Pebble Intermediate CA",
        " 0 days left (under 14)",
        "last renewal run: ",
    ]);
    let check = stack.shipit(&["check", "--target", TARGET, "--json"]);
    let tls = tls_check(&check.json());
    assert_eq!(tls["status"], "fail", "{tls}");
    // And `audit` shows the issuance and the renewal.
    stack
        .shipit(&["audit", "--target", TARGET])
        .expect_code(0)
        .prints(&[
            "tls-issue",
            "issued localhost by",
            "tls-renew",
            "renewed serial=",
        ]);
}

#[test]
fn the_systemd_timer_renews_a_due_certificate_with_no_shipit_running() {
    let mut stack = SystemdStack::start();
    let (pebble, tls_port, table) = renewing_every_minute(stack.port);
    stack.configure(|s| s.extra = table);
    let deploy_to = stack.deploy_to();
    let figures = renewed_by_the_timer(
        &|| stack.deploy(&[]),
        &deploy_to,
        &stack.host.nginx,
        &pebble,
        tls_port,
        &|| stack.journal(),
    );
    eprintln!("[tls] systemd timer: {figures}");
    // It is the schedule's timer that ran it: the timer is installed, and its service's
    // journal has the renewal.
    let timer = format!("{}schedule-1", stack.unit_prefix());
    let listed = stack
        .host
        .systemctl_ok(&["list-timers", "--all", "--plain", "--no-legend"]);
    assert!(listed.contains(&format!("{timer}.timer")), "{listed}");
    let unit = format!("{timer}.service");
    let said = wait_for(std::time::Duration::from_secs(20), || {
        let journal = stack.host.journalctl(&["-u", &unit, "-o", "cat"]);
        journal.contains("renewed serial=").then_some(())
    });
    assert!(
        said.is_some(),
        "no renewal in the journal of {unit}; the journal's last lines:\n{}",
        stack.host.journalctl(&["-n", "60", "-o", "short"])
    );
}

/// https requests to `localhost:PORT` one after another (curl, a new TLS connection each, HTTP/2
/// as browsers speak it), trusting `ca`, until stopped: the zero-downtime probe across a
/// renewal. At nginx's graceful reload an old worker may close a connection it accepted but had
/// not read yet with an HTTP/2 GOAWAY that says no stream was processed (curl: code 16). RFC
/// 9113 (6.8) makes such a request safe to retry and browsers retry it at once; curl does not,
/// so the probe does, once, and counts it apart. Anything else, or a retry that fails, fails.
/// It asks for `/health`, which touches no database: the example's `/` writes a row to SQLite
/// on every request, and on this shared machine a slow disk once turned that into Django 500s
/// for seconds, which says nothing of TLS.
struct HttpsProbe {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    load: std::thread::JoinHandle<ProbeReport>,
}

/// What an [`HttpsProbe`] saw.
#[derive(Debug, Default)]
struct ProbeReport {
    ok: usize,
    /// Refused unprocessed (GOAWAY) and answered 200 when retried.
    retried: usize,
    failed: Vec<String>,
}

impl HttpsProbe {
    fn start(port: u16, ca: PathBuf) -> HttpsProbe {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let load = std::thread::spawn(move || {
            let mut report = ProbeReport::default();
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                match https(port, "/health", &ca) {
                    Ok((200, _)) => report.ok += 1,
                    Err(refused) if refused.starts_with("curl: (16)") => {
                        match https(port, "/health", &ca) {
                            Ok((200, _)) => report.retried += 1,
                            again => report.failed.push(format!("{refused} then {again:?}")),
                        }
                    }
                    other => report.failed.push(format!("{other:?}")),
                }
            }
            report
        });
        HttpsProbe { stop, load }
    }

    /// Stops it; panics naming the failed requests, if any.
    fn stop_without_failures(self) -> ProbeReport {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let report = self.load.join().unwrap();
        assert!(
            report.failed.is_empty(),
            "{} of {} requests failed: {:?}",
            report.failed.len(),
            report.ok + report.retried + report.failed.len(),
            report.failed
        );
        report
    }
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
