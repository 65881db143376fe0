//! known_hosts as OpenSSH reads it (sshd(8), "SSH_KNOWN_HOSTS FILE FORMAT"; hostfile.c), for
//! the one decision shipit makes with it: may this host key be trusted for this host and port?
//!
//! libssh2's own check disagreed with `ssh` where it matters for strict host keys: it accepted
//! keys marked `@revoked`, offered a host known only through `@cert-authority` for
//! trust-on-first-use, and one malformed line made the whole file unreadable. Here, as in
//! OpenSSH (9.2, the tests' oracle):
//!
//! - a line is read as hostfile.c reads it: fields are separated by spaces and tabs only, a
//!   marker is one word ending at the line's first space (so `@revoked<TAB>host ...` is
//!   garbage to `ssh`, and here), and a line `ssh` cannot read is skipped, here with a
//!   warning naming its file and line;
//! - a key is read as `sshkey_read` reads it ([`key`]): strict base64, a type name on the line
//!   that is one of OpenSSH's names for the blob's type (`rsa-sha2-512` for an `ssh-rsa` key),
//!   a blob of the right shape (a 32-byte ed25519 key, an uncompressed point of the named
//!   curve, an RSA modulus of 1024 bits or more, nothing after it); keys are equal when
//!   OpenSSH's encodings of them are. `ssh-dss` keys are read too, as OpenSSH 9 reads them
//!   (OpenSSH 10 no more): shipit never asks for one, so such a line only shows among a
//!   host's known types;
//! - names ([`names`]) are patterns (`*`, `?`, `!negation`, comma lists, compared in lower
//!   case) or hashes (`|1|salt|hmac-sha1`) of the exact name looked up;
//! - the name looked up is `host` on port 22, `[host]:port` on any other, in lower case; and
//!   when no line names `[host]:port` at all, a line for the bare `host` holding this very key
//!   vouches for it (`ssh`'s "checking without port identifier", sshconnect.c);
//! - a key on a `@revoked` line is refused for the hosts the line names (`*`: every host),
//!   whatever else the files say, also with `--accept-new-host-key`;
//! - a host certificate is trusted when a `@cert-authority` line for the host holds its CA and
//!   it vouches for the host ([`host_certificate`]), as `ssh` decides; a `@revoked` CA or key
//!   is refused; a certificate that does not vouch for the host leaves the decision to its
//!   plain key.
//!
//! Where shipit knowingly differs from OpenSSH (each shown by a test: the unit tests below, or
//! the `# differs:` lines of the parity tests' cases):
//!
//! - only lines holding a key of the presented key's type decide: a host known only by its
//!   ECDSA key is unknown for ed25519 ([`Verdict::Unknown`], which names the types known),
//!   where OpenSSH says HOST_CHANGED for any other key. `ssh` rarely gets there, because it
//!   asks the server for the key types it knows first; shipit asks in a fixed order, and
//!   OpenSSH's rule would then cry "changed" (the false alarm that trains people to delete
//!   real warnings) for every host known by its ECDSA key alone;
//! - a host only `@cert-authority` lines name that presents its plain key is refused, also
//!   with `--accept-new-host-key` (`ssh` would offer it for trust on first use): shipit asks
//!   such a host for a certificate first, so a plain key means it has none;
//! - a key `@revoked` for the bare `host` is refused on every port of it (`ssh` warns, then
//!   takes `[host]:port` for new);
//! - a certificate on a known_hosts line is skipped with a warning (shipit verifies no
//!   certificate signatures; to `ssh` it is a key that never equals a plain host key);
//! - an ECDSA point is not checked to lie on its curve (that needs elliptic-curve arithmetic
//!   shipit does not have): such a corrupt line, which `ssh` skips, can only make shipit
//!   refuse a key of its type, never trust one.

use std::path::{Path, PathBuf};

mod key;
mod names;
#[cfg(test)]
mod parity;

pub(crate) use key::blob_type;
use key::HostKey;
use names::Names;

use super::host_certificate::{self, HostCertificate};
pub(crate) use crate::plan::decode_base64;

/// What a line says about its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    /// The host's key.
    Plain,
    /// A CA that signs the hosts' certificates (`@cert-authority`).
    CertAuthority,
    /// A key never to accept (`@revoked`).
    Revoked,
}

#[derive(Debug, Clone)]
struct Entry {
    place: Place,
    marker: Marker,
    names: Names,
    key: HostKey,
}

/// A line of a known_hosts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Place {
    /// The file.
    pub(crate) file: PathBuf,
    /// 1-based line number.
    pub(crate) line: usize,
}

/// The trust decision for a host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A line for this host holds this very key.
    Trusted,
    /// A `@revoked` line for this host holds this key.
    Revoked(Place),
    /// Lines for this host hold other keys of the same type (the first is named).
    Changed(Place),
    /// Only `@cert-authority` lines name this host (the first is named), and the server
    /// presented its plain key.
    CertificateOnly(Place),
    /// The server presented a certificate that does not vouch for this host, and its plain key
    /// is not trusted either.
    CertificateRefused {
        /// The `@cert-authority` line trusting its CA, when one does.
        place: Option<Place>,
        /// Why it does not vouch for the host.
        why: String,
    },
    /// No line for this host holds a key of this type; `known_types` are the types its lines
    /// do hold.
    Unknown {
        /// Key types known for the host, sorted, without repeats.
        known_types: Vec<String>,
    },
}

/// The lines of one or more known_hosts files.
#[derive(Debug, Default)]
pub(crate) struct KnownHosts {
    entries: Vec<Entry>,
    /// `file:line: why; line skipped`, one per malformed line.
    pub(crate) warnings: Vec<String>,
}

impl KnownHosts {
    /// Reads `files` in order; a file that does not exist is skipped.
    pub(crate) fn load(files: &[PathBuf]) -> Result<KnownHosts, (PathBuf, std::io::Error)> {
        let mut known = KnownHosts::default();
        for file in files {
            match std::fs::read(file) {
                Ok(bytes) => known.add(file, &bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err((file.clone(), e)),
            }
        }
        Ok(known)
    }

    /// Adds the lines of `text`, read from `file`. Lines end at `\n` only, and (C strings) at
    /// a NUL.
    pub(crate) fn add(&mut self, file: &Path, text: &[u8]) {
        for (index, line) in text.split(|b| *b == b'\n').enumerate() {
            let line = line.split(|b| *b == 0).next().unwrap_or_default();
            let line = skip_blanks(line);
            // A line of whitespace (a `\r` too) is no line to `ssh` either: it goes unremarked.
            if line.trim_ascii().is_empty() || line.starts_with(b"#") {
                continue;
            }
            let place = Place {
                file: file.to_path_buf(),
                line: index + 1,
            };
            match parse_line(line) {
                Ok((marker, names, key)) => self.entries.push(Entry {
                    place,
                    marker,
                    names,
                    key,
                }),
                Err(why) => self.warnings.push(format!(
                    "{}:{}: {why}; line skipped",
                    file.display(),
                    index + 1
                )),
            }
        }
    }

    /// The lines that name `name`, a name as [`lookup_name`] makes it.
    fn matching<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |e| e.names.matches(name))
    }

    /// Whether a `@cert-authority` line names `host` on `port`: then a host certificate is
    /// asked for first, as `ssh` does.
    pub(crate) fn trusts_authority_for(&self, host: &str, port: u16) -> bool {
        self.matching(&lookup_name(host, port))
            .any(|e| e.marker == Marker::CertAuthority)
    }

    /// The types of the plain keys known for `host` on `port`, sorted, without repeats.
    pub(crate) fn known_types(&self, host: &str, port: u16) -> Vec<String> {
        let mut types: Vec<String> = self
            .matching(&lookup_name(host, port))
            .filter(|e| e.marker == Marker::Plain)
            .map(|e| e.key.kind.name().to_string())
            .collect();
        types.sort();
        types.dedup();
        types
    }

    /// Whether `key` (a public key or certificate blob) may be trusted for `host` reached on
    /// `port`.
    pub(crate) fn check(&self, host: &str, port: u16, key: &[u8]) -> Verdict {
        if host_certificate::is_certificate(&blob_type(key).unwrap_or_default()) {
            return self.check_certificate(host, port, key);
        }
        let key = key::canonical(key);
        let name = lookup_name(host, port);
        let verdict = self.check_name(&name, &key);
        // sshconnect.c, check_host_key: when `[host]:port` is new to the files (not revoked,
        // and no plain line names it: "checking without port identifier"), the bare name's
        // lines may vouch for the key. OpenSSH takes only HOST_OK from them; a key revoked for
        // the bare name is refused here, where `ssh` warns and goes on.
        let known_here = self.matching(&name).any(|e| e.marker == Marker::Plain);
        if port != 22 && !known_here && !matches!(verdict, Verdict::Revoked(_)) {
            let bare = self.check_name(&lookup_name(host, 22), &key);
            if matches!(bare, Verdict::Trusted | Verdict::Revoked(_)) {
                return bare;
            }
        }
        verdict
    }

    /// The verdict of the lines that name `name` on `key`, an OpenSSH-encoded blob.
    fn check_name(&self, name: &str, key: &[u8]) -> Verdict {
        let key_type = blob_type(key).unwrap_or_default();
        let for_host: Vec<&Entry> = self.matching(name).collect();
        if let Some(revoked) = for_host
            .iter()
            .find(|e| e.marker == Marker::Revoked && e.key.blob == key)
        {
            return Verdict::Revoked(revoked.place.clone());
        }
        let plain = || for_host.iter().filter(|e| e.marker == Marker::Plain);
        if plain().any(|e| e.key.blob == key) {
            return Verdict::Trusted;
        }
        if let Some(other) = plain().find(|e| e.key.kind.name() == key_type) {
            return Verdict::Changed(other.place.clone());
        }
        if let Some(ca) = for_host.iter().find(|e| e.marker == Marker::CertAuthority) {
            return Verdict::CertificateOnly(ca.place.clone());
        }
        let mut known_types: Vec<String> = plain().map(|e| e.key.kind.name().into()).collect();
        known_types.sort();
        known_types.dedup();
        Verdict::Unknown { known_types }
    }
}

impl KnownHosts {
    /// A host certificate is trusted when a `@cert-authority` line for the host holds the CA
    /// that signed it and the certificate vouches for the host now; refused when a `@revoked`
    /// line holds its CA or its key. As in OpenSSH, a certificate that does not vouch for the
    /// host leaves the decision to its plain key.
    fn check_certificate(&self, host: &str, port: u16, blob: &[u8]) -> Verdict {
        let certificate = match HostCertificate::parse(blob) {
            Ok(certificate) => certificate,
            Err(why) => return Verdict::CertificateRefused { place: None, why },
        };
        let name = lookup_name(host, port);
        let (authority, certified) = (
            key::canonical(&certificate.authority),
            key::canonical(&certificate.key),
        );
        if let Some(revoked) = self.matching(&name).find(|e| {
            e.marker == Marker::Revoked && (e.key.blob == authority || e.key.blob == certified)
        }) {
            return Verdict::Revoked(revoked.place.clone());
        }
        let authority = self
            .matching(&name)
            .find(|e| e.marker == Marker::CertAuthority && e.key.blob == authority);
        let refused = match authority {
            Some(line) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                match certificate.check(&host.to_ascii_lowercase(), now) {
                    Ok(()) => return Verdict::Trusted,
                    Err(why) => Verdict::CertificateRefused {
                        place: Some(line.place.clone()),
                        why,
                    },
                }
            }
            None => Verdict::CertificateRefused {
                place: None,
                why: format!(
                    "no @cert-authority line for this host holds the CA that signed its certificate ({})",
                    certificate.authority_fingerprint()
                ),
            },
        };
        match self.check(host, port, &certificate.key) {
            Verdict::Trusted => Verdict::Trusted,
            _ => refused,
        }
    }
}

/// The name a known_hosts line must match: `host` on port 22, `[host]:port` elsewhere, in
/// lower case (as `ssh` writes and hashes it).
pub(crate) fn lookup_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// Reads a line that is no comment, as hostfile.c's `hostkeys_foreach_file` does.
fn parse_line(line: &[u8]) -> Result<(Marker, Names, HostKey), String> {
    let (marker, rest) = marker(line)?;
    let (names, rest) = field(rest);
    let rest = skip_blanks(rest.ok_or("no key type")?);
    let names = Names::parse(names)?;
    if rest.first().map_or(true, |c| *c == b'#') {
        return Err("no key type".into());
    }
    // sshkey_read: the type, then the key in base64; the rest is a comment.
    let (line_type, rest) = field(rest);
    let line_kind = key::line_kind(line_type)?;
    let rest = skip_blanks(rest.ok_or("no key")?);
    if rest.is_empty() {
        return Err("no key".into());
    }
    let (blob, _comment) = field(rest);
    let blob = decode_base64(blob).ok_or("the key is not base64")?;
    let key = HostKey::parse(&blob)?;
    if key.kind != line_kind {
        return Err(format!(
            "key type `{}` does not match its key (`{}`)",
            String::from_utf8_lossy(line_type),
            key.kind.name()
        ));
    }
    Ok((marker, names, key))
}

/// The marker that starts `line`, if any, and the rest (hostfile.c `check_markers`).
fn marker(mut line: &[u8]) -> Result<(Marker, &[u8]), String> {
    let mut marker = Marker::Plain;
    while line.first() == Some(&b'@') {
        if marker != Marker::Plain {
            return Err("more than one marker".into());
        }
        // OpenSSH ends the marker at the line's first space, and only failing one, at its
        // first tab.
        let end = line
            .iter()
            .position(|b| *b == b' ')
            .or_else(|| line.iter().position(|b| *b == b'\t'))
            .ok_or("no host names after the marker")?;
        let word = &line[..end];
        marker = match word {
            b"@cert-authority" => Marker::CertAuthority,
            b"@revoked" => Marker::Revoked,
            _ if word.contains(&b'\t') => {
                return Err("a tab after a marker (OpenSSH takes only a space there)".into())
            }
            _ => {
                return Err(format!(
                    "unknown marker `{}`",
                    String::from_utf8_lossy(word)
                ))
            }
        };
        line = skip_blanks(&line[end..]);
    }
    Ok((marker, line))
}

/// The field `text` starts with, up to its first space or tab, and what follows from there
/// (`None`: the field ends the line).
fn field(text: &[u8]) -> (&[u8], Option<&[u8]>) {
    match text.iter().position(|b| *b == b' ' || *b == b'\t') {
        Some(end) => (&text[..end], Some(&text[end..])),
        None => (text, None),
    }
}

/// `text` without the spaces and tabs it starts with.
fn skip_blanks(text: &[u8]) -> &[u8] {
    let start = text
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .unwrap_or(text.len());
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAICFBZAaMj0Px4RIIdLfJHyeaQM/5dJsiQoMhspD8ucz9";
    const ED_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIPhQ9xPMTC5K+2Uma//Nqw15btz09+a3RUngp/2lIXbR";
    const ECDSA: &str = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBJ3CTYogcSBj3pNLhJBThbl/5lfLfsnAIPMXbf89xO8qndWv0j1/qVvBfqUa4DH1a5Tp3nAjn+qUj0cAk3ZtWXs=";

    fn key(text: &str) -> Vec<u8> {
        decode_base64(text).unwrap()
    }

    fn known(text: &str) -> KnownHosts {
        let mut known = KnownHosts::default();
        known.add(Path::new("kh"), text.as_bytes());
        known
    }

    fn at(line: usize) -> Place {
        Place {
            file: PathBuf::from("kh"),
            line,
        }
    }

    const UNKNOWN: Verdict = Verdict::Unknown {
        known_types: vec![],
    };

    #[test]
    fn the_presented_key_is_trusted_only_where_a_line_holds_it() {
        let known = known(&format!(
            "# comment\n\nweb.example.com ssh-ed25519 {ED_A} root@web\n"
        ));
        assert_eq!(
            known.check("web.example.com", 22, &key(ED_A)),
            Verdict::Trusted
        );
        assert_eq!(
            known.check("WEB.Example.com", 22, &key(ED_A)),
            Verdict::Trusted
        );
        assert_eq!(
            known.check("web.example.com", 22, &key(ED_B)),
            Verdict::Changed(at(3))
        );
        assert_eq!(known.check("db.example.com", 22, &key(ED_A)), UNKNOWN);
        assert!(known.warnings.is_empty(), "{:?}", known.warnings);
    }

    #[test]
    fn a_key_of_another_type_makes_the_host_unknown_for_this_type_not_changed() {
        let known = known(&format!("web.example.com ecdsa-sha2-nistp256 {ECDSA}\n"));
        assert_eq!(
            known.check("web.example.com", 22, &key(ED_A)),
            Verdict::Unknown {
                known_types: vec!["ecdsa-sha2-nistp256".into()]
            }
        );
        assert_eq!(
            known.check("web.example.com", 22, &key(ECDSA)),
            Verdict::Trusted
        );
    }

    #[test]
    fn the_name_looked_up_is_the_one_ssh_writes() {
        // sshconnect.c get_hostfile_hostname_ipaddr and misc.c put_host_port, on the name ssh.c
        // has lower-cased.
        assert_eq!(lookup_name("Web.Example.COM", 22), "web.example.com");
        assert_eq!(
            lookup_name("Web.Example.COM", 2222),
            "[web.example.com]:2222"
        );
        assert_eq!(lookup_name("2001:DB8::1", 22), "2001:db8::1");
        assert_eq!(lookup_name("2001:db8::1", 2222), "[2001:db8::1]:2222");
    }

    #[test]
    fn a_port_unknown_to_the_files_is_vouched_for_by_the_bare_host_name_as_in_ssh() {
        // sshconnect.c check_host_key, "checking without port identifier": `[host]:port`
        // unknown, so the bare name's line holding the key trusts it.
        let known = known(&format!("web.example.com ssh-ed25519 {ED_A}\n"));
        assert_eq!(
            known.check("web.example.com", 2200, &key(ED_A)),
            Verdict::Trusted
        );
        // ...only that key: another stays unknown for the port (ssh: new), not changed.
        assert_eq!(known.check("web.example.com", 2200, &key(ED_B)), UNKNOWN);

        // A line for the port decides alone, whatever its key type.
        let known_port = |line: &str| {
            self::known(&format!(
                "web.example.com ssh-ed25519 {ED_A}\n[web.example.com]:2222 {line}\n"
            ))
        };
        assert_eq!(
            known_port(&format!("ssh-ed25519 {ED_B}")).check("web.example.com", 2222, &key(ED_A)),
            Verdict::Changed(at(2))
        );
        assert_eq!(
            known_port(&format!("ecdsa-sha2-nistp256 {ECDSA}")).check(
                "web.example.com",
                2222,
                &key(ED_A)
            ),
            Verdict::Unknown {
                known_types: vec!["ecdsa-sha2-nistp256".into()]
            }
        );
        // `@cert-authority` lines for the port are no plain key of it: the bare name vouches.
        let ca = self::known(&format!(
            "@cert-authority [web.example.com]:2222 ssh-ed25519 {ED_B}\nweb.example.com ssh-ed25519 {ED_A}\n"
        ));
        assert_eq!(
            ca.check("web.example.com", 2222, &key(ED_A)),
            Verdict::Trusted
        );
        assert_eq!(
            ca.check("web.example.com", 2222, &key(ED_B)),
            Verdict::CertificateOnly(at(1))
        );

        // A key revoked for the port is revoked, whatever the bare name says; one revoked for
        // the bare name is refused on its other ports too (ssh warns, then takes it for new).
        let revoked = self::known(&format!(
            "web.example.com ssh-ed25519 {ED_A}\n@revoked [web.example.com]:2222 ssh-ed25519 {ED_A}\n@revoked web.example.com ssh-ed25519 {ED_B}\n"
        ));
        assert_eq!(
            revoked.check("web.example.com", 2222, &key(ED_A)),
            Verdict::Revoked(at(2))
        );
        assert_eq!(
            revoked.check("web.example.com", 2200, &key(ED_B)),
            Verdict::Revoked(at(3))
        );

        // `[host]:22` is how nobody writes port 22, and it does not match it either.
        let bracketed = known_text_for("[web.example.com]:22");
        assert_eq!(bracketed.check("web.example.com", 22, &key(ED_A)), UNKNOWN);
    }

    fn known_text_for(names: &str) -> KnownHosts {
        known(&format!("{names} ssh-ed25519 {ED_A}\n"))
    }

    #[test]
    fn patterns_negations_and_lists_match_as_in_openssh() {
        let trusted = |names: &str, host: &str, port: u16| {
            known_text_for(names).check(host, port, &key(ED_A)) == Verdict::Trusted
        };
        assert!(trusted("*.example.com", "web.example.com", 22));
        assert!(!trusted("*.example.com", "example.com", 22));
        assert!(trusted("web?.example.com", "web1.example.com", 22));
        assert!(!trusted("web?.example.com", "web12.example.com", 22));
        assert!(trusted("db,web.example.com,10.0.0.5", "10.0.0.5", 22));
        assert!(trusted(
            "*.example.com,!db.example.com",
            "web.example.com",
            22
        ));
        assert!(!trusted(
            "*.example.com,!db.example.com",
            "db.example.com",
            22
        ));
        assert!(!trusted(
            "!db.example.com,*.example.com",
            "db.example.com",
            22
        ));
        assert!(!trusted("!db.example.com", "web.example.com", 22));
        assert!(trusted("[*.example.com]:2222", "web.example.com", 2222));
        assert!(trusted("*", "web.example.com", 2222));
        assert!(trusted("[10.0.0.5]:2222", "10.0.0.5", 2222));
        assert!(!trusted("10.0.0.6", "10.0.0.5", 2222));
    }

    #[test]
    fn hashed_names_match_the_host_and_port_they_hash() {
        // `ssh-keygen -H` of `web.example.com ...` and `[web.example.com]:2222 ...`.
        let port_22 = "|1|tSlpa2iTfiJhlf297C0ToEXpf0o=|+iojt4QKJ/8PRLMCt5NGmefSJQ8=";
        let port_2222 = "|1|K7QSOErNRbSwswXMaAwDwCj3JjY=|9vw6X5nkfCb/rmyg9yv89p5AKes=";
        let check = |names: &str, host: &str, port: u16| {
            known_text_for(names).check(host, port, &key(ED_A))
        };
        assert_eq!(check(port_22, "web.example.com", 22), Verdict::Trusted);
        assert_eq!(check(port_22, "Web.Example.COM", 22), Verdict::Trusted);
        assert_ne!(check(port_22, "db.example.com", 22), Verdict::Trusted);
        assert_eq!(check(port_2222, "web.example.com", 2222), Verdict::Trusted);
        assert_ne!(check(port_2222, "web.example.com", 22), Verdict::Trusted);
        assert_ne!(check(port_2222, "web.example.com", 2200), Verdict::Trusted);
    }

    #[test]
    fn keys_are_equal_as_openssh_compares_them_not_byte_for_byte() {
        // An RSA modulus with a needless leading zero is the same modulus (ssh-rsa.c compares
        // the numbers); the line may name the type `rsa-sha2-512`.
        let rsa = "AAAAB3NzaC1yc2EAAAADAQABAAAAgQDg4hB4vAZHJ0PVRiJajOv/GlytFWNpv5/9xgB9+5BIbvp8LOrFZ5D9K0Gsmwpd4G4rfaAz8j896DhMArg0vtkilIPPGt/6VzWMERgvaIQPJ/IE99X3+fjcAG56oAWwy29JX10lQMzBPU6XJIaN/zqpkb6qUBiAHBdLpxrFBBU0/w==";
        let mut padded = key(rsa);
        // e (3 bytes) sits at 11..18; n's length at 18..22, then n.
        assert_eq!(&padded[18..22], &[0, 0, 0, 0x81]);
        padded.splice(18..22, [0, 0, 0, 0x82, 0]);
        let known = known(&format!(
            "web.example.com rsa-sha2-512 {}\n",
            crate::plan::base64(&padded)
        ));
        assert!(known.warnings.is_empty(), "{:?}", known.warnings);
        assert_eq!(
            known.check("web.example.com", 22, &key(rsa)),
            Verdict::Trusted
        );
        assert_eq!(
            known.check("web.example.com", 22, &padded),
            Verdict::Trusted
        );
    }

    #[test]
    fn a_revoked_key_is_refused_whatever_else_trusts_it() {
        let known = known(&format!(
            "web.example.com ssh-ed25519 {ED_A}\n@revoked * ssh-ed25519 {ED_A}\n@revoked db.example.com ssh-ed25519 {ED_B}\n"
        ));
        assert_eq!(
            known.check("web.example.com", 22, &key(ED_A)),
            Verdict::Revoked(at(2))
        );
        assert_eq!(
            known.check("new.example.com", 2222, &key(ED_A)),
            Verdict::Revoked(at(2))
        );
        assert_eq!(
            known.check("db.example.com", 22, &key(ED_B)),
            Verdict::Revoked(at(3))
        );
        // Revoking a key for db says nothing about web, whose line holds another key.
        assert_eq!(
            known.check("web.example.com", 22, &key(ED_B)),
            Verdict::Changed(at(1))
        );
    }

    #[test]
    fn a_host_named_only_by_a_cert_authority_is_not_offered_for_trust_on_first_use() {
        let known = known(&format!(
            "@cert-authority *.example.com ssh-ed25519 {ED_B}\nweb.example.com ssh-ed25519 {ED_A}\n"
        ));
        assert_eq!(
            known.check("db.example.com", 22, &key(ED_A)),
            Verdict::CertificateOnly(at(1))
        );
        // Not even the CA's own key, presented as a plain host key.
        assert_eq!(
            known.check("db.example.com", 22, &key(ED_B)),
            Verdict::CertificateOnly(at(1))
        );
        // A plain line for the host still decides.
        assert_eq!(
            known.check("web.example.com", 22, &key(ED_A)),
            Verdict::Trusted
        );
        assert_eq!(known.check("other.org", 22, &key(ED_A)), UNKNOWN);
    }

    #[test]
    fn malformed_lines_are_skipped_with_a_warning_naming_the_line() {
        let known = known(&format!(
            "bad.example.com ssh-ed25519\n\
             @marker web.example.com ssh-ed25519 {ED_A}\n\
             broken.example.com ssh-ed25519 not*base64\n\
             typo.example.com ssh-rsa {ED_A}\n\
             |1|bm90|bm90 ssh-ed25519 {ED_A}\n\
             @revoked\n\
             @revoked\tweb.example.com ssh-ed25519 {ED_A}\n\
             web.example.com\u{a0}ssh-ed25519 {ED_A}\n\
             \r\n\
             web.example.com ssh-ed25519 {ED_A}\r\n"
        ));
        assert_eq!(
            known.check("web.example.com", 22, &key(ED_A)),
            Verdict::Trusted
        );
        assert_eq!(
            known.warnings,
            [
                "kh:1: no key; line skipped",
                "kh:2: unknown marker `@marker`; line skipped",
                "kh:3: the key is not base64; line skipped",
                "kh:4: key type `ssh-rsa` does not match its key (`ssh-ed25519`); line skipped",
                "kh:5: malformed hashed host name; line skipped",
                "kh:6: no host names after the marker; line skipped",
                "kh:7: a tab after a marker (OpenSSH takes only a space there); line skipped",
                "kh:8: unknown key type `AAAAC3NzaC1lZDI1NTE5AAAAICFBZAaMj0Px4RIIdLfJHyeaQM/5dJsiQoMhspD8ucz9`; line skipped",
            ]
        );
    }

    #[test]
    fn base64_is_decoded_as_openssh_decodes_it() {
        // b64_pton: padding required, zero bits after the last byte, whitespace skipped.
        assert_eq!(decode_base64("Zm9vYmE=").as_deref(), Some(&b"fooba"[..]));
        assert_eq!(decode_base64("Zm9vYg==").as_deref(), Some(&b"foob"[..]));
        assert_eq!(
            decode_base64("Zm9v\r\nYg=\x0b=").as_deref(),
            Some(&b"foob"[..])
        );
        assert_eq!(decode_base64("").as_deref(), Some(&b""[..]));
        for bad in [
            "Zm9vYmE", "Zm9vYg", "Zm9vYg=", "Zm9vYmF=", "Zm9vYh==", "Zm9v=", "Zm9vY===",
            "Zg==Zg==", "Zm9*",
        ] {
            assert_eq!(decode_base64(bad), None, "{bad}");
        }
    }

    #[test]
    fn files_are_read_in_order_and_a_missing_one_is_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first");
        let second = dir.path().join("second");
        std::fs::write(
            &second,
            format!("h ssh-ed25519 {ED_B}\nh ssh-ed25519 {ED_A}\n"),
        )
        .unwrap();
        let known = KnownHosts::load(&[first, second.clone()]).unwrap();
        assert_eq!(known.check("h", 22, &key(ED_A)), Verdict::Trusted);
        assert_eq!(
            known.check("h", 22, &key(ECDSA)),
            Verdict::Unknown {
                known_types: vec!["ssh-ed25519".into()]
            }
        );
        let other = key(ED_A).into_iter().rev().collect::<Vec<_>>();
        assert_eq!(
            known.check("h", 22, &other),
            Verdict::Unknown {
                known_types: vec!["ssh-ed25519".into()]
            },
            "a blob that is no key has no type of its own"
        );
        assert_eq!(
            known.check("h", 22, &{
                let mut k = key(ED_A);
                *k.last_mut().unwrap() ^= 1;
                k
            }),
            Verdict::Changed(Place {
                file: second,
                line: 1
            })
        );
    }
}
