//! The target's certificate: the team's files written 0600 and replaced atomically (and put
//! back after a failed prepare), ACME's placeholder, and certbot's issuance with its failure
//! putting the previous nginx site back; certbot and nginx stubbed, openssl real.

use super::{each_shell, Host};
use std::os::unix::fs::PermissionsExt;

pub(super) const COVERS: &[&str] = &[
    "step_tls_files",
    "step_tls_placeholder",
    "step_tls_issue",
    "step_tls_status",
    "step_tls_renew",
];

const CERT: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n";

fn b64(text: &str) -> String {
    crate::plan::base64(text.as_bytes())
}

/// `deploy_to` as step_layout leaves it.
fn laid_out(host: &Host) {
    std::fs::create_dir_all(host.d(".shipit")).unwrap();
}

fn mode(host: &Host, rel: &str) -> u32 {
    std::fs::metadata(host.d(rel)).unwrap().permissions().mode() & 0o777
}

fn read(host: &Host, rel: &str) -> String {
    std::fs::read_to_string(host.d(rel)).unwrap_or_default()
}

#[test]
fn files_are_written_0600_replaced_when_they_differ_and_put_back_after_a_failure() {
    each_shell(|host| {
        laid_out(host);
        host.step("step_tls_files", &[&b64(CERT), &b64(KEY)])
            .status(0)
            .says("certificate and key installed")
            .never_says("BBBB");
        assert_eq!(read(host, "tls/fullchain.pem"), CERT);
        assert_eq!(read(host, "tls/privkey.pem"), KEY);
        assert_eq!(mode(host, "tls/privkey.pem"), 0o600);
        assert_eq!(mode(host, "tls/fullchain.pem"), 0o600);
        assert_eq!(mode(host, "tls/webroot"), 0o755);
        assert!(host.d(".shipit/tls.changed").exists());
        // The switch's reload keeps them.
        host.run("shipit_tls_keep").status(0);
        assert!(!host.d(".shipit/tls.changed").exists());

        host.step("step_tls_files", &[&b64(CERT), &b64(KEY)])
            .status(0)
            .says("certificate unchanged");
        assert!(!host.d(".shipit/tls.changed").exists());

        let new_key = KEY.replace("BBBB", "CCCC");
        host.step("step_tls_files", &[&b64(CERT), &b64(&new_key)])
            .status(0)
            .says("installed");
        assert_eq!(read(host, "tls/privkey.pem"), new_key);
        assert!(!host.d("tls/privkey.pem.next").exists());
        // A prepare that fails after it puts the previous pair back.
        host.run("shipit_tls_restore")
            .status(0)
            .says("previous certificate");
        assert_eq!(read(host, "tls/privkey.pem"), KEY);
        assert_eq!(mode(host, "tls/privkey.pem"), 0o600);
    });
}

#[test]
fn stapling_is_on_only_for_a_certificate_that_names_an_ocsp_responder() {
    each_shell(|host| {
        laid_out(host);
        host.step("step_tls_placeholder", &[]).status(0);
        let stapling = || read(host, "tls/stapling.conf");
        assert!(stapling() == "# no OCSP URL\n", "{}", stapling());
        let with_ocsp = |uri: &str| {
            let made = std::process::Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3",
                ])
                .args(["-subj", "/CN=a.example", "-keyout", "/dev/stdout"])
                .args(["-addext", &format!("authorityInfoAccess=OCSP;URI:{uri}")])
                .output()
                .unwrap();
            assert!(made.status.success(), "{made:?}");
            let pem = String::from_utf8(made.stdout).unwrap();
            let at = pem.find("-----BEGIN CERTIFICATE-----").unwrap();
            (pem[at..].to_string(), pem[..at].to_string())
        };
        let (cert, key) = with_ocsp("http://ocsp.example/");
        host.step("step_tls_files", &[&b64(&cert), &b64(&key)])
            .status(0);
        let chain = host.d("tls/fullchain.pem").display().to_string();
        assert_eq!(
            stapling(),
            format!(
                "ssl_stapling on;\nssl_stapling_verify on;\nssl_trusted_certificate {chain};\n"
            )
        );
        // A failed prepare puts the placeholder back, and with it no stapling.
        host.run("shipit_tls_restore").status(0);
        assert!(stapling() == "# no OCSP URL\n", "{}", stapling());
    });
}

#[test]
fn the_placeholder_is_made_once_and_only_without_a_certificate() {
    each_shell(|host| {
        laid_out(host);
        host.step("step_tls_placeholder", &[])
            .status(0)
            .says("placeholder");
        assert!(read(host, "tls/fullchain.pem").contains("BEGIN CERTIFICATE"));
        assert_eq!(mode(host, "tls/privkey.pem"), 0o600);
        let first = read(host, "tls/fullchain.pem");
        host.step("step_tls_placeholder", &[])
            .status(0)
            .never_says("a placeholder lets");
        assert_eq!(read(host, "tls/fullchain.pem"), first);
    });
}

/// certbot, stubbed: records its CA bundle and makes the lineage (or fails as a CA would).
fn certbot(host: &mut Host, fail: bool) {
    let body = if fail {
        "echo 'Certbot failed to authenticate some domains (authenticator: webroot).'\n\
         echo '  Detail: DNS problem: NXDOMAIN looking up A for a.example'\n\
         exit 1"
    } else {
        "while [ $# -gt 0 ]; do case $1 in --config-dir) c=$2 ;; esac; shift; done\n\
         mkdir -p \"$c/live/shipit\"\n\
         printf '%s\\n' \"${REQUESTS_CA_BUNDLE-unset}\" > \"$c/ca-seen\"\n\
         echo CHAIN > \"$c/live/shipit/fullchain.pem\"\n\
         echo KEY > \"$c/live/shipit/privkey.pem\""
    };
    host.stub("certbot", body);
    host.stub("nginx", "exit 0");
    let site = host.path("etc/nginx/hello.conf");
    host.set("NGINX", "1")
        .set("SITE", site.to_str().unwrap())
        .set("NGINX_TEST", "nginx -t")
        .set("NGINX_RELOAD", "nginx -s reload");
}

#[test]
fn issuance_answers_from_the_new_site_links_the_lineage_and_is_not_repeated() {
    each_shell(|host| {
        laid_out(host);
        certbot(host, false);
        host.step("step_tls_placeholder", &[]).status(0);
        // The site changed this run: nginx takes it before certbot asks for the challenge.
        host.write(host.d(".shipit/nginx-site.changed"), "");
        let args = [
            "https://127.0.0.1:14000/dir",
            "",
            "/etc/pebble ca.pem",
            "a.example",
            "b.example",
        ];
        host.step("step_tls_issue", &args)
            .status(0)
            .says("nginx reloaded with the new site")
            .says("certificate for a.example b.example issued");
        let calls = host.calls("certbot");
        assert_eq!(calls.len(), 1, "{calls:?}");
        for arg in [
            "certonly",
            "--server https://127.0.0.1:14000/dir",
            "-d a.example -d b.example",
            "--register-unsafely-without-email",
            "--webroot -w ",
        ] {
            assert!(calls[0].contains(arg), "{arg} not in {calls:?}");
        }
        assert_eq!(read(host, "tls/certbot/ca-seen"), "/etc/pebble ca.pem\n");
        assert_eq!(
            std::fs::read_link(host.d("tls/fullchain.pem")).unwrap(),
            std::path::Path::new("certbot/live/shipit/fullchain.pem")
        );
        assert_eq!(read(host, "tls/privkey.pem"), "KEY\n");
        assert_eq!(mode(host, "tls/certbot"), 0o700);
        // Early reload, then the reload with the issued certificate.
        assert_eq!(
            host.calls("nginx")
                .iter()
                .filter(|c| *c == "-s reload")
                .count(),
            2
        );

        // The host's own renewal, trusting the same CA, logged.
        let renew = read(host, "tls/renew");
        assert!(
            renew.contains("REQUESTS_CA_BUNDLE='/etc/pebble ca.pem'"),
            "{renew}"
        );
        assert!(renew.contains("reload='nginx -s reload'"), "{renew}");
        assert_eq!(mode(host, "tls/renew"), 0o700);
        assert!(read(host, "tls/renew.log")
            .contains(" issued a.example b.example by https://127.0.0.1:14000/dir\n"));
        // A certificate with more than a third of its lifetime left is not due: the CA is
        // not asked, nginx not reloaded.
        let cert = host.d("tls/certbot/live/shipit/cert.pem");
        let made = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3",
            ])
            .args(["-subj", "/CN=a.example", "-keyout", "/dev/null", "-out"])
            .arg(&cert)
            .output()
            .unwrap();
        assert!(made.status.success(), "{made:?}");
        let renew = host.d("tls/renew").display().to_string();
        host.run(&renew).status(0).says("not-due ");
        assert_eq!(host.calls("certbot").len(), 1);
        let reloads = host.calls("nginx").len();
        // Forced: certbot renews this lineage now, without its random sleep, then nginx
        // reloads gracefully.
        host.run(&format!("{renew} --force"))
            .status(0)
            .says("renewed serial=");
        let renewal = &host.calls("certbot")[1];
        assert!(
            renewal.starts_with("renew --non-interactive --no-random-sleep-on-renew --force-renewal --cert-name shipit --config-dir "),
            "{renewal}"
        );
        assert_eq!(host.calls("nginx")[reloads..], ["-s reload".to_string()]);
        let log = read(host, "tls/renew.log");
        let events: Vec<&str> = log.lines().filter_map(|l| l.split(' ').nth(1)).collect();
        assert_eq!(events, ["issued", "not-due", "renewed"], "{log}");
        // The deploy log has the issuance and the renewal, not the runs that were not due.
        let audit = read(host, ".shipit/log");
        let actions: Vec<(&str, &str)> = audit
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f[2], f[5].split(' ').next().unwrap())
            })
            .collect();
        assert_eq!(
            actions,
            [("tls-issue", "issued"), ("tls-renew", "renewed")],
            "{audit}"
        );
        // A failing CA: the run fails, says certbot's words, and logs it.
        host.stub("certbot", "echo 'Detail: rate limited'; exit 1");
        host.run(&format!("{renew} --force || echo \"failed: $?\""))
            .says("Detail: rate limited")
            .says("failed: 1");
        assert!(read(host, "tls/renew.log")
            .lines()
            .last()
            .unwrap()
            .contains(" failed certbot renew"));
        certbot(host, false);

        host.step("step_tls_issue", &args)
            .status(0)
            .says("already issued");
        assert_eq!(host.calls("certbot").len(), 3);
    });
}

#[test]
fn a_failed_issuance_says_the_cas_words_and_puts_the_previous_site_back() {
    each_shell(|host| {
        laid_out(host);
        certbot(host, true);
        host.step("step_tls_placeholder", &[]).status(0);
        host.write(host.path("etc/nginx/hello.conf"), "new site\n");
        host.write(host.d(".shipit/nginx-site.previous"), "old site\n");
        host.write(host.d(".shipit/nginx-site.changed"), "");
        host.step(
            "step_tls_issue",
            &["https://ca.example/dir", "ops@a.example", "", "a.example"],
        )
        .status(1)
        .says("Detail: DNS problem: NXDOMAIN")
        .says("issued no certificate for a.example")
        .says("hint: every name must resolve to this host")
        .says("previous nginx site is back");
        assert!(host.calls("certbot")[0].contains("--email ops@a.example"));
        assert_eq!(
            std::fs::read_to_string(host.path("etc/nginx/hello.conf")).unwrap(),
            "old site\n"
        );
        assert_eq!(
            host.calls("nginx")
                .iter()
                .filter(|c| *c == "-s reload")
                .count(),
            2
        );
        // The prepare's failure then removes the placeholder: nothing names it any more.
        host.run("shipit_tls_restore").status(0);
        assert!(!host.d("tls/fullchain.pem").exists());
    });
}

/// A real certificate for `names` (subjectAltName DNS), valid `days`, at `tls/fullchain.pem`.
fn served(host: &Host, names: &[&str], days: &str) {
    std::fs::create_dir_all(host.d("tls")).unwrap();
    let san: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", days,
        ])
        .args(["-subj", "/CN=Test Issuer", "-keyout", "/dev/null"])
        .args(["-addext", &format!("subjectAltName={}", san.join(","))])
        .arg("-out")
        .arg(host.d("tls/fullchain.pem"))
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
}

#[test]
fn check_shows_the_certificates_names_issuer_and_days_and_fails_near_expiry_or_without_a_name() {
    each_shell(|host| {
        laid_out(host);
        host.step("step_check", &[])
            .fact_is("check:tls", "skip no [tls]: the site is plain http");
        host.set("SHIPIT_TLS", "1")
            .set("WEB", "1")
            .set("SHIPIT_TLS_NAMES", "a.example www.b.example");
        host.step("step_check", &[]).fact_is(
            "check:tls",
            "skip no certificate yet: the first deploy installs it",
        );
        // Days are whole days left: one less once a second has passed since it was made.
        let fact = |host: &Host| {
            host.step("step_check", &[])
                .fact("check:tls")
                .unwrap()
                .to_string()
        };
        let either = |fact: String, one: &str, other: &str| {
            assert!(fact == one || fact == other, "{fact}");
        };
        served(host, &["a.example", "*.b.example"], "90");
        let names = "names: a.example *.b.example; issuer: CN = Test Issuer";
        either(
            fact(host),
            &format!("ok {names}; 90 days left"),
            &format!("ok {names}; 89 days left"),
        );
        served(host, &["a.example", "*.b.example"], "10");
        either(
            fact(host),
            &format!("fail {names}; 10 days left (under 14)"),
            &format!("fail {names}; 9 days left (under 14)"),
        );
        served(host, &["a.example"], "30");
        let names = "names: a.example; issuer: CN = Test Issuer";
        either(
            fact(host),
            &format!("fail {names}; 30 days left; missing: www.b.example"),
            &format!("fail {names}; 29 days left; missing: www.b.example"),
        );
        host.set("WEB", "0");
        host.step("step_check", &[])
            .fact_is("check:tls", "skip this host serves no site");
    });
}

#[test]
fn status_reports_the_certificate_and_the_last_renewal_run_and_renew_runs_the_hosts_script() {
    each_shell(|host| {
        laid_out(host);
        host.set("SHIPIT_TLS", "1")
            .set("WEB", "1")
            .set("SHIPIT_TLS_NAMES", "a.example");
        // Before any deploy: nothing to renew, nothing to show.
        host.step("step_tls_renew", &["--force"])
            .status(1)
            .says("an ACME deploy writes it");
        served(host, &["a.example"], "90");
        std::fs::write(
            host.d("tls/renew.log"),
            "2026-12-01T04:17:02Z issued a.example by x\n2026-12-07T04:17:02Z not-due 5s left of 9s\n",
        )
        .unwrap();
        let run = host.step("step_tls_status", &[]);
        run.status(0);
        assert!(
            run.fact("check:tls")
                .unwrap()
                .starts_with("ok names: a.example; "),
            "{:?}",
            run.fact("check:tls")
        );
        assert_eq!(
            run.fact("tls_last"),
            Some("2026-12-07T04:17:02Z not-due 5s left of 9s")
        );
        // renew runs the script the timer runs, with its arguments; a host that serves no
        // site has none to run.
        host.script(
            host.d("tls/renew"),
            &format!("echo \"renew $*\" >> {}", host.d("tls/ran").display()),
        );
        host.step("step_tls_renew", &["--force"]).status(0);
        assert_eq!(read(host, "tls/ran"), "renew --force\n");
        host.set("WEB", "0");
        host.step("step_tls_renew", &[]).status(0);
        assert_eq!(read(host, "tls/ran"), "renew --force\n");
    });
}
