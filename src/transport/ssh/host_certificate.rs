//! Host certificates: how teams with an SSH certificate authority (Vault, smallstep, plain
//! `ssh-keygen -s -h`) trust a fleet without recording every host's key. A known_hosts
//! `@cert-authority` line trusts a CA for a host pattern; the server presents a certificate
//! that CA signed over its host key.
//!
//! A certificate vouches for its host only when all of OpenSSH's `check_host_cert` holds: the
//! CA's signature verifies, it is a host certificate (not a user one), it is valid now, it
//! names this host among its principals (or names no principal), and it carries no critical
//! option. Whether the CA is trusted for this host, and whether it or the key is `@revoked`,
//! is known_hosts' decision ([`super::known_hosts`]).

use ssh_key::certificate::CertType;
use ssh_key::{Certificate, Fingerprint, HashAlg};

/// The suffix of every OpenSSH certificate key type.
const CERTIFICATE_SUFFIX: &str = "-cert-v01@openssh.com";

/// The host key algorithms that carry a certificate, in OpenSSH's order of preference.
pub(crate) const ALGORITHMS: &str = "ssh-ed25519-cert-v01@openssh.com,ecdsa-sha2-nistp256-cert-v01@openssh.com,ecdsa-sha2-nistp384-cert-v01@openssh.com,ecdsa-sha2-nistp521-cert-v01@openssh.com,rsa-sha2-512-cert-v01@openssh.com,rsa-sha2-256-cert-v01@openssh.com";

/// Whether a key type names a certificate.
pub(crate) fn is_certificate(key_type: &str) -> bool {
    key_type.ends_with(CERTIFICATE_SUFFIX)
}

/// A host certificate as the server presented it, not yet trusted.
pub(crate) struct HostCertificate {
    certificate: Certificate,
    /// The blob of the host key it certifies.
    pub(crate) key: Vec<u8>,
    /// The blob of the CA key that signed it.
    pub(crate) authority: Vec<u8>,
}

impl HostCertificate {
    /// Reads the certificate blob the server presented.
    pub(crate) fn parse(blob: &[u8]) -> Result<HostCertificate, String> {
        let unreadable =
            |e: ssh_key::Error| format!("the server's certificate is unreadable ({e})");
        let certificate = Certificate::from_bytes(blob).map_err(unreadable)?;
        let key = ssh_key::PublicKey::from(certificate.public_key().clone())
            .to_bytes()
            .map_err(unreadable)?;
        let authority = ssh_key::PublicKey::from(certificate.signature_key().clone())
            .to_bytes()
            .map_err(unreadable)?;
        Ok(HostCertificate {
            certificate,
            key,
            authority,
        })
    }

    /// The signing CA's fingerprint, as `ssh-keygen -l` prints it.
    pub(crate) fn authority_fingerprint(&self) -> String {
        self.certificate
            .signature_key()
            .fingerprint(HashAlg::Sha256)
            .to_string()
    }

    /// Whether the certificate vouches for `host` at `now` (seconds since the epoch), given
    /// that its CA is trusted for it; why not, otherwise.
    pub(crate) fn check(&self, host: &str, now: u64) -> Result<(), String> {
        let cert = &self.certificate;
        let authority: Fingerprint = cert.signature_key().fingerprint(HashAlg::Sha256);
        cert.verify_signature()
            .map_err(|_| "its CA signature does not verify".to_string())?;
        if cert.cert_type() != CertType::Host {
            return Err("it is a user certificate, not a host certificate".into());
        }
        if now < cert.valid_after() {
            return Err(format!(
                "it is not valid yet (valid from {})",
                timestamp(cert.valid_after())
            ));
        }
        if now >= cert.valid_before() {
            return Err(format!(
                "it has expired (valid until {})",
                timestamp(cert.valid_before())
            ));
        }
        // Signature and window again, through the library's own check, keyed by the CA.
        cert.validate_at(now, [&authority])
            .map_err(|_| "it does not validate".to_string())?;
        let principals = cert.valid_principals();
        if !principals.is_empty() && !principals.iter().any(|p| p == host) {
            return Err(format!(
                "it is for {}, not `{host}`",
                principals
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if let Some((option, _)) = cert.critical_options().iter().next() {
            return Err(format!("it carries the critical option `{option}`"));
        }
        Ok(())
    }
}

/// `2026-12-07 18:13:51 UTC`, or "forever" for OpenSSH's "no end".
fn timestamp(seconds: u64) -> String {
    i64::try_from(seconds)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or_else(
            || "forever".into(),
            |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::ssh::known_hosts::{decode_base64, KnownHosts, Place, Verdict};
    use std::path::{Path, PathBuf};
    use std::process::Command;

    const NOW: u64 = 1_796_000_000; // 2026-11-30

    fn keygen(dir: &Path, args: &[&str]) {
        let out = Command::new("ssh-keygen")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("ssh-keygen (OpenSSH) is needed for these tests");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The blob of a certificate over a new host key, signed by a new CA with `options`.
    fn certificate(options: &[&str]) -> Vec<u8> {
        issue(options).0
    }

    /// [`certificate`], with the CA's and the host's public keys (`TYPE BASE64`).
    fn issue(options: &[&str]) -> (Vec<u8>, String, String) {
        let dir = tempfile::tempdir().unwrap();
        for key in ["ca", "host"] {
            keygen(dir.path(), &["-q", "-t", "ed25519", "-N", "", "-f", key]);
        }
        let mut args = vec!["-q", "-s", "ca", "-I", "test"];
        args.extend_from_slice(options);
        args.push("host.pub");
        keygen(dir.path(), &args);
        let read = |name: &str| {
            let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
            text.split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        };
        let certificate = read("host-cert.pub");
        let blob = decode_base64(certificate.split_whitespace().nth(1).unwrap()).unwrap();
        (blob, read("ca.pub"), read("host.pub"))
    }

    fn check(options: &[&str], host: &str) -> Result<(), String> {
        let blob = certificate(options);
        assert!(is_certificate(
            &crate::transport::ssh::known_hosts::blob_type(&blob).unwrap()
        ));
        HostCertificate::parse(&blob).unwrap().check(host, NOW)
    }

    #[test]
    fn a_host_certificate_vouches_only_for_its_principals_within_its_window() {
        let window = ["-V", "20261101:20261231"];
        fn with<'a>(window: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
            [&["-h"][..], window, extra].concat()
        }
        assert_eq!(
            check(&with(&window, &["-n", "web,10.0.0.5"]), "10.0.0.5"),
            Ok(())
        );
        assert_eq!(
            check(&with(&window, &[]), "anything"),
            Ok(()),
            "no principals: any host"
        );
        assert_eq!(
            check(&with(&window, &["-n", "web,db"]), "mail"),
            Err("it is for `web`, `db`, not `mail`".into())
        );
        let expired = check(&["-h", "-n", "web", "-V", "20200101:20200102"], "web").unwrap_err();
        assert_eq!(
            expired,
            "it has expired (valid until 2020-01-02 00:00:00 UTC)"
        );
        let early = check(&["-h", "-n", "web", "-V", "20270101:20270102"], "web").unwrap_err();
        assert!(
            early.starts_with("it is not valid yet (valid from 2027-01-01"),
            "{early}"
        );
        assert_eq!(
            check(&["-n", "web", "-V", "20261101:20261231"], "web"),
            Err("it is a user certificate, not a host certificate".into())
        );
    }

    #[test]
    fn a_certificate_whose_signature_does_not_verify_is_refused() {
        let mut blob = certificate(&["-h", "-n", "web", "-V", "20261101:20261231"]);
        let last = blob.len() - 1;
        blob[last] ^= 1; // the end of the CA's signature
        let certificate = HostCertificate::parse(&blob).unwrap();
        assert_eq!(
            certificate.check("web", NOW),
            Err("its CA signature does not verify".into())
        );
        assert!(HostCertificate::parse(&blob[..40]).is_err());
    }

    /// known_hosts' decision on a certificate, as OpenSSH's `check_host_key` makes it.
    #[test]
    fn known_hosts_trusts_a_certificate_through_its_ca_line_and_falls_back_to_the_plain_key() {
        let (valid, ca, host_key) = issue(&["-h", "-n", "web", "-V", "-5m:+1h"]);
        let known = |text: &str| {
            let mut known = KnownHosts::default();
            known.add(Path::new("kh"), text.as_bytes());
            known
        };
        let place = |line| Place {
            file: PathBuf::from("kh"),
            line,
        };
        let trusting = known(&format!("@cert-authority web,db {ca}\n"));
        assert!(trusting.trusts_authority_for("web", 22));
        assert!(!trusting.trusts_authority_for("web", 2222));
        assert_eq!(trusting.check("web", 22, &valid), Verdict::Trusted);
        // The principal is the name known_hosts knows the host by.
        assert!(matches!(
            trusting.check("db", 22, &valid),
            Verdict::CertificateRefused { place: Some(p), .. } if p == place(1)
        ));
        assert!(matches!(
            known(&format!("@cert-authority mail {ca}\n")).check("web", 22, &valid),
            Verdict::CertificateRefused { place: None, .. }
        ));
        for revoked in [&ca, &host_key] {
            let text = format!("@cert-authority web {ca}\n@revoked * {revoked}\n");
            assert_eq!(
                known(&text).check("web", 22, &valid),
                Verdict::Revoked(place(2))
            );
        }
        // An expired certificate: refused, unless the host's plain key is trusted itself.
        let (expired, ca, host_key) = issue(&["-h", "-n", "web", "-V", "20200101:20200102"]);
        let text = format!("@cert-authority web {ca}\n");
        assert!(matches!(
            known(&text).check("web", 22, &expired),
            Verdict::CertificateRefused { place: Some(_), why } if why.contains("expired")
        ));
        let text = format!("{text}web {host_key}\n");
        assert_eq!(known(&text).check("web", 22, &expired), Verdict::Trusted);
    }
}
