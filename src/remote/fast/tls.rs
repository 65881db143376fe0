//! The target's certificate: the team's files written 0600 and replaced atomically (and put
//! back after a failed prepare), ACME's placeholder, and certbot's issuance with its failure
//! putting the previous nginx site back; certbot and nginx stubbed, openssl real.

use super::{each_shell, Host};
use std::os::unix::fs::PermissionsExt;

pub(super) const COVERS: &[&str] = &["step_tls_files", "step_tls_placeholder", "step_tls_issue"];

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

        // The host's own renewal: certbot renew on this lineage, trusting the same CA, with
        // nginx's graceful reload as the deploy hook.
        let renew = read(host, "tls/renew");
        assert!(
            renew.contains("REQUESTS_CA_BUNDLE='/etc/pebble ca.pem'"),
            "{renew}"
        );
        assert!(renew.contains("--deploy-hook 'nginx -s reload'"), "{renew}");
        assert_eq!(mode(host, "tls/renew"), 0o700);
        host.run(&format!(
            "{} --force-renewal",
            host.d("tls/renew").display()
        ))
        .status(0);
        let renewal = &host.calls("certbot")[1];
        assert!(
            renewal.starts_with("renew --non-interactive --cert-name shipit --config-dir "),
            "{renewal}"
        );
        assert!(
            renewal.ends_with("--deploy-hook nginx -s reload --force-renewal"),
            "{renewal}"
        );

        host.step("step_tls_issue", &args)
            .status(0)
            .says("already issued");
        assert_eq!(host.calls("certbot").len(), 2);
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
