//! known_hosts as OpenSSH reads it (sshd(8), "SSH_KNOWN_HOSTS FILE FORMAT"), for the one
//! decision shipit makes with it: may this host key be trusted for this host and port?
//!
//! libssh2's own check disagreed with `ssh` where it matters for strict host keys: it accepted
//! keys marked `@revoked`, offered a host known only through `@cert-authority` for
//! trust-on-first-use, said "HAS CHANGED" for a host whose files hold only a key of another
//! type (the false alarm that trains people to delete real warnings), and one malformed line
//! made the whole file unreadable. Here, as in OpenSSH:
//!
//! - a key on a `@revoked` line is refused for the hosts the line names (`*`: every host),
//!   whatever else the files say, also with `--accept-new-host-key`;
//! - a host certificate is trusted when a `@cert-authority` line for the host holds its CA and
//!   it vouches for the host ([`host_certificate`]); a `@revoked` CA or key is refused; a host
//!   only `@cert-authority` lines name that presents its plain key is refused, never offered
//!   for trust on first use;
//! - only lines holding a key of the presented key's type decide: a host known only by its
//!   ECDSA key is unknown for ed25519, not changed;
//! - names match the way `ssh` writes them: `host` on port 22, `[host]:port` on any other, so a
//!   plain `host` line does not vouch for another port; patterns (`*`, `?`, `!negation`,
//!   comma lists) and hashed names (`|1|salt|hmac-sha1`) work;
//! - a malformed line is skipped with a warning naming its file and line.

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::host_certificate::{self, HostCertificate};

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

/// The host names of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Names {
    /// Comma-separated patterns.
    Patterns(String),
    /// `|1|salt|hash`: HMAC-SHA1 of the name, keyed by the salt.
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

#[derive(Debug, Clone)]
struct Entry {
    place: Place,
    marker: Marker,
    names: Names,
    /// The key's type, as its blob names it (`ssh-ed25519`, `ecdsa-sha2-nistp256`, ...).
    key_type: String,
    /// The public key blob.
    key: Vec<u8>,
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
                Ok(bytes) => known.add(file, &String::from_utf8_lossy(&bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err((file.clone(), e)),
            }
        }
        Ok(known)
    }

    /// Adds the lines of `text`, read from `file`.
    pub(crate) fn add(&mut self, file: &Path, text: &str) {
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let place = Place {
                file: file.to_path_buf(),
                line: index + 1,
            };
            match parse_line(line) {
                Ok((marker, names, key_type, key)) => self.entries.push(Entry {
                    place,
                    marker,
                    names,
                    key_type,
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

    /// The lines that name `host` reached on `port`.
    fn for_host(&self, host: &str, port: u16) -> Vec<&Entry> {
        let name = lookup_name(host, port);
        self.entries
            .iter()
            .filter(|e| names_match(&e.names, &name))
            .collect()
    }

    /// Whether a `@cert-authority` line names `host` on `port`: then a host certificate is
    /// asked for first, as `ssh` does.
    pub(crate) fn trusts_authority_for(&self, host: &str, port: u16) -> bool {
        self.for_host(host, port)
            .iter()
            .any(|e| e.marker == Marker::CertAuthority)
    }

    /// Whether `key` (a public key or certificate blob) may be trusted for `host` reached on
    /// `port`.
    pub(crate) fn check(&self, host: &str, port: u16, key: &[u8]) -> Verdict {
        let key_type = blob_type(key).unwrap_or_default();
        if host_certificate::is_certificate(&key_type) {
            return self.check_certificate(host, port, key);
        }
        let for_host = self.for_host(host, port);
        if let Some(revoked) = for_host
            .iter()
            .find(|e| e.marker == Marker::Revoked && e.key == key)
        {
            return Verdict::Revoked(revoked.place.clone());
        }
        let plain = || for_host.iter().filter(|e| e.marker == Marker::Plain);
        if plain().any(|e| e.key == key) {
            return Verdict::Trusted;
        }
        if let Some(other) = plain().find(|e| e.key_type == key_type) {
            return Verdict::Changed(other.place.clone());
        }
        if let Some(ca) = for_host.iter().find(|e| e.marker == Marker::CertAuthority) {
            return Verdict::CertificateOnly(ca.place.clone());
        }
        let mut known_types: Vec<String> = plain().map(|e| e.key_type.clone()).collect();
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
        let for_host = self.for_host(host, port);
        if let Some(revoked) = for_host.iter().find(|e| {
            e.marker == Marker::Revoked
                && (e.key == certificate.authority || e.key == certificate.key)
        }) {
            return Verdict::Revoked(revoked.place.clone());
        }
        let authority = for_host
            .iter()
            .find(|e| e.marker == Marker::CertAuthority && e.key == certificate.authority);
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

/// The type a public key blob names (its first SSH string).
pub(crate) fn blob_type(blob: &[u8]) -> Option<String> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    let name = blob.get(4..4usize.checked_add(len)?)?;
    let name = std::str::from_utf8(name).ok()?;
    (!name.is_empty()).then(|| name.to_string())
}

type Parsed = (Marker, Names, String, Vec<u8>);

fn parse_line(line: &str) -> Result<Parsed, String> {
    let mut fields = line.split_whitespace();
    let mut first = fields.next().unwrap_or_default();
    let marker = match first {
        "@cert-authority" => Marker::CertAuthority,
        "@revoked" => Marker::Revoked,
        other if other.starts_with('@') => return Err(format!("unknown marker `{other}`")),
        _ => Marker::Plain,
    };
    if marker != Marker::Plain {
        first = fields.next().ok_or("no host names after the marker")?;
    }
    let names = match first.strip_prefix("|1|") {
        Some(hashed) => {
            let (salt, hash) = hashed
                .split_once('|')
                .and_then(|(s, h)| Some((decode_base64(s)?, decode_base64(h)?)))
                .ok_or("malformed hashed host name")?;
            if hash.len() != 20 {
                return Err("malformed hashed host name".into());
            }
            Names::Hashed { salt, hash }
        }
        None if first.starts_with('|') => return Err("unknown hashed host name format".into()),
        None => Names::Patterns(first.to_string()),
    };
    let key_type = fields.next().ok_or("no key type")?;
    let key = fields.next().ok_or("no key")?;
    let key = decode_base64(key).ok_or("the key is not base64")?;
    match blob_type(&key) {
        Some(inner) if inner == key_type => {}
        Some(inner) => {
            return Err(format!(
                "key type `{key_type}` does not match its key (`{inner}`)"
            ))
        }
        None => return Err("the key is malformed".into()),
    }
    Ok((marker, names, key_type.to_string(), key))
}

/// Whether `names` (a line's host names) cover `name`, the lower-case lookup name.
fn names_match(names: &Names, name: &str) -> bool {
    match names {
        Names::Hashed { salt, hash } => {
            let mut mac = Hmac::<Sha1>::new_from_slice(salt).expect("HMAC takes any key length");
            mac.update(name.as_bytes());
            mac.verify_slice(hash).is_ok()
        }
        Names::Patterns(list) => {
            // OpenSSH's match_hostname: a matching negated pattern excludes the host whatever
            // else matches; otherwise one matching pattern is enough.
            let mut positive = false;
            for pattern in list.split(',') {
                let (negated, pattern) = match pattern.strip_prefix('!') {
                    Some(p) => (true, p),
                    None => (false, pattern),
                };
                if wildcard(pattern.to_ascii_lowercase().as_bytes(), name.as_bytes()) {
                    if negated {
                        return false;
                    }
                    positive = true;
                }
            }
            positive
        }
    }
}

/// `*` (any run of characters) and `?` (any one character) glob matching.
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

/// Standard base64 with optional padding; `None` for anything else.
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for c in text.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    (count < 6).then_some(out)
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
        known.add(Path::new("kh"), text);
        known
    }

    fn at(line: usize) -> Place {
        Place {
            file: PathBuf::from("kh"),
            line,
        }
    }

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
        assert_eq!(
            known.check("db.example.com", 22, &key(ED_A)),
            Verdict::Unknown {
                known_types: vec![]
            }
        );
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
    fn a_plain_host_entry_covers_port_22_only() {
        let known = known(&format!(
            "web.example.com ssh-ed25519 {ED_A}\n[web.example.com]:2222 ssh-ed25519 {ED_B}\n"
        ));
        assert_eq!(
            known.check("web.example.com", 22, &key(ED_A)),
            Verdict::Trusted
        );
        assert_eq!(
            known.check("web.example.com", 2200, &key(ED_A)),
            Verdict::Unknown {
                known_types: vec![]
            }
        );
        assert_eq!(
            known.check("web.example.com", 2222, &key(ED_B)),
            Verdict::Trusted
        );
        assert_eq!(
            known.check("web.example.com", 2222, &key(ED_A)),
            Verdict::Changed(at(2))
        );
        // `[host]:22` is how nobody writes port 22, and it does not match it either.
        let bracketed = known_text_for("[web.example.com]:22");
        assert_eq!(
            bracketed.check("web.example.com", 22, &key(ED_A)),
            Verdict::Unknown {
                known_types: vec![]
            }
        );
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
        assert!(!trusted("10.0.0.5", "10.0.0.5", 2222));
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
        assert_ne!(check(port_22, "web.example.com", 2222), Verdict::Trusted);
        assert_ne!(check(port_22, "db.example.com", 22), Verdict::Trusted);
        assert_eq!(check(port_2222, "web.example.com", 2222), Verdict::Trusted);
        assert_ne!(check(port_2222, "web.example.com", 22), Verdict::Trusted);
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
        assert_eq!(
            known.check("other.org", 22, &key(ED_A)),
            Verdict::Unknown {
                known_types: vec![]
            }
        );
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
             web.example.com ssh-ed25519 {ED_A}\n"
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
            ]
        );
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
