//! The `[targets.T.tls]` table: the site served over HTTPS, with a certificate the team brings
//! (files mode: the chain and the key from the secrets sources) or one an ACME CA issues to
//! the hosts (ACME mode, http-01). Certificates belong to the target, not to a release: they
//! live in `deploy_to/tls` (see `remote::layout::TLS_DIR`), outside every release and archive,
//! so a rollback never touches them.

use super::*;

/// Let's Encrypt's production directory: `directory` when unset.
pub(crate) const DEFAULT_ACME_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// The port https is served on (and redirected to): `port` when unset.
pub(crate) const DEFAULT_HTTPS_PORT: u16 = 443;
/// HSTS's `max-age` when `hsts` is on without one: two years, as the preload list asks.
pub(crate) const DEFAULT_HSTS_MAX_AGE: u64 = 63_072_000;

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// The team's certificate chain and private key, resolved on the deploying machine.
    Files {
        certificate: SecretSource,
        key: SecretSource,
    },
    /// Issued on each host by certbot from an ACME directory, answering http-01 on port 80.
    Acme {
        /// The ACME directory URL.
        directory: String,
        /// The account's contact email; `None` registers without one.
        email: Option<String>,
        /// The names the certificate covers (the site's `server_name`s by default).
        domains: Vec<String>,
        /// A CA bundle on the hosts that trusts the directory's TLS (an internal CA), if any.
        directory_ca: Option<String>,
        /// When each web host's timer runs `deploy_to/tls/renew`: five cron fields, or `None`
        /// for [`default_renew`]'s twice a day.
        renew: Option<String>,
    },
}

/// When host `host` of a target runs its renewal, unless `tls.renew` says: twice a day, at a
/// minute and hours taken from `seed` (the target's deploy_to and name) and moved on by the
/// host's index, so that the targets of one CA and the hosts of one fleet do not all ask at
/// once. The run costs nothing when the certificate is not due (a local check).
pub(crate) fn default_renew(seed: &str, host: usize) -> String {
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let hash = seed.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let minute = (hash % 60 + 17 * host as u64) % 60;
    let hour = (hash / 60 + host as u64) % 12;
    format!("{minute} {hour},{} * * *", hour + 12)
}

/// `Strict-Transport-Security`, when on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hsts {
    /// Seconds browsers remember to use https only.
    #[serde(default = "default_max_age")]
    pub max_age: u64,
    /// Whether subdomains are covered too.
    #[serde(default)]
    pub include_subdomains: bool,
    /// Whether the site asks to be on browsers' preload lists.
    #[serde(default)]
    pub preload: bool,
}

fn default_max_age() -> u64 {
    DEFAULT_HSTS_MAX_AGE
}

impl Hsts {
    /// The header's value.
    pub(crate) fn header(&self) -> String {
        let mut value = format!("max-age={}", self.max_age);
        if self.include_subdomains {
            value.push_str("; includeSubDomains");
        }
        if self.preload {
            value.push_str("; preload");
        }
        value
    }
}

/// A target's TLS, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub mode: TlsMode,
    /// The names the served certificate must cover (`shipit check` fails without one): ACME's
    /// domains, or in files mode the site's `server_name`s (none: not checked).
    pub names: Vec<String>,
    /// The port https is served on, for the redirect from http (`vars.https_listen` says where
    /// nginx listens, this port by default).
    pub port: u16,
    /// `Strict-Transport-Security`; `None`: not sent.
    pub hsts: Option<Hsts>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    certificate: Option<SecretSource>,
    key: Option<SecretSource>,
    directory: Option<String>,
    email: Option<String>,
    domains: Option<Vec<String>>,
    directory_ca: Option<String>,
    renew: Option<String>,
    port: Option<u16>,
    hsts: Option<Hsts>,
}

/// Validates the table; `server_name` is the target's `vars.server_name`, the default domains.
pub(super) fn validate_tls(
    source: &Source,
    target: &str,
    raw: Spanned<RawTls>,
    server_name: Option<&str>,
) -> Result<Tls> {
    let span = raw.span();
    let raw = raw.into_inner();
    let key = |k: &str| key_for(target, &format!("tls.{k}"));
    let server_names: Vec<String> = server_name
        .unwrap_or("")
        .split_whitespace()
        .filter(|name| *name != "_")
        .map(str::to_string)
        .collect();
    let acme_keys = raw.directory.is_some()
        || raw.email.is_some()
        || raw.domains.is_some()
        || raw.directory_ca.is_some()
        || raw.renew.is_some();
    let mode = match (raw.certificate, raw.key) {
        (Some(certificate), Some(key)) if !acme_keys => TlsMode::Files { certificate, key },
        (Some(_), Some(_)) => {
            return Err(source.refuse(
                span,
                key("certificate"),
                "a certificate from files and ACME's directory, email, domains, directory_ca or renew are both set",
                "keep `certificate` and `key` for a certificate you bring, or the ACME keys to have one issued",
            ))
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(source.error(
                span,
                key("key"),
                "`certificate` and `key` go together: set both (the chain and its private key)",
            ))
        }
        (None, None) => {
            let domains = raw.domains.unwrap_or_else(|| server_names.clone());
            if domains.is_empty() {
                return Err(source.refuse(
                    span,
                    key("domains"),
                    "an ACME certificate needs at least one domain",
                    "set tls.domains, or vars.server_name (the domains default to its names)",
                ));
            }
            for domain in &domains {
                if domain.is_empty()
                    || !domain
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
                {
                    return Err(source.error(
                        span.clone(),
                        key("domains"),
                        format!("`{domain}` is not a DNS name (letters, digits, `-`, `.`; http-01 issues no wildcard)"),
                    ));
                }
            }
            let directory = raw
                .directory
                .unwrap_or_else(|| DEFAULT_ACME_DIRECTORY.to_string());
            if !directory.starts_with("https://") {
                return Err(source.error(
                    span,
                    key("directory"),
                    format!("`{directory}` is not an https:// URL (ACME directories are served over https)"),
                ));
            }
            if let Some(ca) = &raw.directory_ca {
                if !ca.starts_with('/') {
                    return Err(source.error(span, key("directory_ca"), "must be an absolute path on the hosts"));
                }
            }
            let renew = match raw.renew {
                Some(when) => Some(
                    super::schedule::cron_fields(&when)
                        .map_err(|why| source.error(span.clone(), key("renew"), why))?,
                ),
                None => None,
            };
            TlsMode::Acme {
                directory,
                email: raw.email,
                domains,
                directory_ca: raw.directory_ca,
                renew,
            }
        }
    };
    if raw.port == Some(0) {
        return Err(source.error(span, key("port"), "must be a port number, not 0"));
    }
    let names = match &mode {
        TlsMode::Acme { domains, .. } => domains.clone(),
        TlsMode::Files { .. } => server_names,
    };
    Ok(Tls {
        mode,
        names,
        port: raw.port.unwrap_or(DEFAULT_HTTPS_PORT),
        hsts: raw.hsts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[project]
name = "hello"

[targets.p]
hosts = ["a"]
deploy_to = "/srv/hello"
environment = "deployment"

[targets.p.vars]
server_name = "example.com www.example.com"

[targets.p.nginx]
site = "/etc/nginx/sites-enabled/hello.conf"
"#;

    fn tls(table: &str) -> Result<Option<Tls>> {
        let text = format!("{BASE}\n[targets.p.tls]\n{table}");
        let config = Config::parse(Path::new("shipit.toml"), Path::new("."), &text)?;
        Ok(config.targets["p"].tls.clone())
    }

    #[test]
    fn acme_is_the_default_for_the_sites_names_from_lets_encrypt() {
        let t = tls("email = \"ops@example.com\"\n").unwrap().unwrap();
        assert_eq!(
            t.mode,
            TlsMode::Acme {
                directory: DEFAULT_ACME_DIRECTORY.into(),
                email: Some("ops@example.com".into()),
                domains: vec!["example.com".into(), "www.example.com".into()],
                directory_ca: None,
                renew: None,
            }
        );
        assert_eq!((t.port, t.hsts), (443, None));
    }

    #[test]
    fn files_mode_takes_both_secrets_sources_and_nothing_of_acme() {
        let t = tls("certificate = { file = \"c.pem\" }\nkey = { env = \"TLS_KEY\" }\n")
            .unwrap()
            .unwrap();
        assert!(matches!(t.mode, TlsMode::Files { .. }));
        assert_eq!(t.names, ["example.com", "www.example.com"]);
        let alone = tls("key = { env = \"TLS_KEY\" }\n").unwrap_err();
        assert!(alone.to_string().contains("go together"), "{alone}");
        let both =
            tls("certificate = { file = \"c\" }\nkey = { file = \"k\" }\nemail = \"a@b.c\"\n")
                .unwrap_err();
        assert!(both.to_string().contains("both set"), "{both}");
    }

    #[test]
    fn the_names_tls_uses_on_the_hosts_leave_the_apps_environment_alone() {
        // The app may name its own TLS_KEY or REQUESTS_CA_BUNDLE: the library's are
        // SHIPIT_TLS_*, and certbot alone gets the bundle.
        let text = BASE.replace(
            "environment = \"deployment\"\n",
            "environment = \"deployment\"\nenv = { REQUESTS_CA_BUNDLE = \"/etc/ca.pem\", TLS_CHANGED = \"1\" }\nsecrets = { TLS_KEY = { env = \"K\" }, TLS_CERT = { env = \"C\" } }\n",
        );
        Config::parse(Path::new("shipit.toml"), Path::new("."), &text).unwrap();
    }

    #[test]
    fn renewal_runs_when_renew_says_or_twice_a_day_at_a_time_of_the_target_and_host() {
        let t = tls("renew = \"@hourly\"\n").unwrap().unwrap();
        assert!(
            matches!(&t.mode, TlsMode::Acme { renew: Some(r), .. } if r == "0 * * * *"),
            "{t:?}"
        );
        let (a, b) = (default_renew("/srv/a p", 0), default_renew("/srv/a p", 1));
        assert_eq!(a, default_renew("/srv/a p", 0));
        assert_ne!(a, b);
        assert_ne!(a, default_renew("/srv/b p", 0));
        for when in [a, b] {
            let fields: Vec<&str> = when.split(' ').collect();
            let minute: u32 = fields[0].parse().unwrap();
            let hours: Vec<u32> = fields[1].split(',').map(|h| h.parse().unwrap()).collect();
            assert!(
                minute < 60 && hours[0] < 12 && hours[1] == hours[0] + 12,
                "{when}"
            );
            assert_eq!(&fields[2..], ["*", "*", "*"]);
            super::super::schedule::cron_fields(&when).unwrap();
        }
    }

    #[test]
    fn hsts_is_one_setting_with_its_three_parts() {
        let t = tls("hsts = { include_subdomains = true, preload = true }\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            t.hsts.unwrap().header(),
            "max-age=63072000; includeSubDomains; preload"
        );
        let t = tls("hsts = { max_age = 300 }\n").unwrap().unwrap();
        assert_eq!(t.hsts.unwrap().header(), "max-age=300");
    }

    #[test]
    fn bad_acme_settings_and_tls_without_nginx_are_refused() {
        for (table, needle) in [
            ("domains = []\n", "at least one domain"),
            ("domains = [\"*.example.com\"]\n", "not a DNS name"),
            ("directory = \"http://ca/dir\"\n", "not an https:// URL"),
            ("directory_ca = \"ca.pem\"\n", "absolute path"),
            ("port = 0\n", "not 0"),
            ("renew = \"61 * * * *\"\n", "tls.renew"),
        ] {
            let error = tls(table).unwrap_err().to_string();
            assert!(error.contains(needle), "{table}: {error}");
        }
        let text = BASE.replace(
            "[targets.p.nginx]\nsite = \"/etc/nginx/sites-enabled/hello.conf\"\n",
            "",
        ) + "\n[targets.p.tls]\n";
        let error = Config::parse(Path::new("shipit.toml"), Path::new("."), &text)
            .unwrap_err()
            .to_string();
        assert!(error.contains("has no [nginx]"), "{error}");
    }
}
