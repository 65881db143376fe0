//! The key of a known_hosts line, read as OpenSSH's `sshkey_read` reads it (OpenSSH 9.2:
//! sshkey.c, ssh-ed25519.c, ssh-ecdsa.c, ssh-rsa.c, ssh-dss.c and their `-sk` variants).
//!
//! A line OpenSSH cannot read is skipped by `ssh`, so it must be skipped here too: a
//! truncated or garbled key that shipit took for a key would call a host "changed" that `ssh`
//! calls new. And keys are compared the way OpenSSH compares them, by their numbers rather
//! than by their bytes: each key is kept in the one encoding OpenSSH writes (its canonical
//! blob), so `0x00 0x00 0xb5...` and `0x00 0xb5...` are the same RSA modulus, as for `ssh`.

/// What kind of key a blob holds: OpenSSH's key types, without certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Ed25519,
    /// FIDO `sk-ssh-ed25519@openssh.com`.
    Ed25519Sk,
    Ecdsa(Curve),
    /// FIDO `sk-ecdsa-sha2-nistp256@openssh.com`.
    EcdsaSk,
    Rsa,
    Dsa,
}

/// The curves of ECDSA keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    /// The curve's name inside a key blob.
    fn name(self) -> &'static [u8] {
        match self {
            Curve::P256 => b"nistp256",
            Curve::P384 => b"nistp384",
            Curve::P521 => b"nistp521",
        }
    }

    /// The length of an uncompressed point, the only form OpenSSH reads.
    fn point_len(self) -> usize {
        match self {
            Curve::P256 => 65,
            Curve::P384 => 97,
            Curve::P521 => 133,
        }
    }
}

impl Kind {
    /// The name OpenSSH writes for the type (and the one a server's blob carries).
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Ed25519 => "ssh-ed25519",
            Kind::Ed25519Sk => "sk-ssh-ed25519@openssh.com",
            Kind::Ecdsa(Curve::P256) => "ecdsa-sha2-nistp256",
            Kind::Ecdsa(Curve::P384) => "ecdsa-sha2-nistp384",
            Kind::Ecdsa(Curve::P521) => "ecdsa-sha2-nistp521",
            Kind::EcdsaSk => "sk-ecdsa-sha2-nistp256@openssh.com",
            Kind::Rsa => "ssh-rsa",
            Kind::Dsa => "ssh-dss",
        }
    }
}

/// OpenSSH's names of key types (sshkey.c's `keyimpls`, 9.2), in its order, which decides
/// what a short name means: the full name, the short name, and the kind (`None`: a certificate
/// type). `rsa-sha2-*` and `webauthn-*` name signature algorithms, which OpenSSH also takes for
/// names of the key type.
#[rustfmt::skip]
const TYPE_NAMES: &[(&str, &str, Option<Kind>)] = &[
    ("ssh-ed25519",                                 "ED25519",         Some(Kind::Ed25519)),
    ("ssh-ed25519-cert-v01@openssh.com",            "ED25519-CERT",    None),
    ("sk-ssh-ed25519@openssh.com",                  "ED25519-SK",      Some(Kind::Ed25519Sk)),
    ("sk-ssh-ed25519-cert-v01@openssh.com",         "ED25519-SK-CERT", None),
    ("ecdsa-sha2-nistp256",                         "ECDSA",           Some(Kind::Ecdsa(Curve::P256))),
    ("ecdsa-sha2-nistp256-cert-v01@openssh.com",    "ECDSA-CERT",      None),
    ("ecdsa-sha2-nistp384",                         "ECDSA",           Some(Kind::Ecdsa(Curve::P384))),
    ("ecdsa-sha2-nistp384-cert-v01@openssh.com",    "ECDSA-CERT",      None),
    ("ecdsa-sha2-nistp521",                         "ECDSA",           Some(Kind::Ecdsa(Curve::P521))),
    ("ecdsa-sha2-nistp521-cert-v01@openssh.com",    "ECDSA-CERT",      None),
    ("sk-ecdsa-sha2-nistp256@openssh.com",          "ECDSA-SK",        Some(Kind::EcdsaSk)),
    ("sk-ecdsa-sha2-nistp256-cert-v01@openssh.com", "ECDSA-SK-CERT",   None),
    ("webauthn-sk-ecdsa-sha2-nistp256@openssh.com", "ECDSA-SK",        Some(Kind::EcdsaSk)),
    ("ssh-dss",                                     "DSA",             Some(Kind::Dsa)),
    ("ssh-dss-cert-v01@openssh.com",                "DSA-CERT",        None),
    ("ssh-rsa",                                     "RSA",             Some(Kind::Rsa)),
    ("ssh-rsa-cert-v01@openssh.com",                "RSA-CERT",        None),
    ("rsa-sha2-256",                                "RSA",             Some(Kind::Rsa)),
    ("rsa-sha2-512",                                "RSA",             Some(Kind::Rsa)),
    ("rsa-sha2-256-cert-v01@openssh.com",           "RSA-CERT",        None),
    ("rsa-sha2-512-cert-v01@openssh.com",           "RSA-CERT",        None),
];

/// shipit verifies no certificate signatures, and a certificate is never a host's plain key.
const CERTIFICATE: &str =
    "a certificate is not a host key (shipit reads none on known_hosts lines)";

/// The kind named by the key type field of a line: a full name, exactly (sshkey.c's
/// `peek_type_nid`).
pub(super) fn line_kind(field: &[u8]) -> Result<Kind, String> {
    match TYPE_NAMES
        .iter()
        .find(|(name, ..)| name.as_bytes() == field)
    {
        Some((_, _, Some(kind))) => Ok(*kind),
        Some((_, _, None)) => Err(CERTIFICATE.into()),
        None => Err(format!(
            "unknown key type `{}`",
            String::from_utf8_lossy(field)
        )),
    }
}

/// The kind named inside a blob: a full name, or (OpenSSH's `sshkey_type_from_name`) the short
/// name of a plain type in any case. An ECDSA blob must say its full name, which OpenSSH
/// takes the curve from.
fn blob_kind(name: &[u8]) -> Result<Kind, String> {
    let found = TYPE_NAMES.iter().find(|(full, short, kind)| {
        full.as_bytes() == name || (kind.is_some() && short.as_bytes().eq_ignore_ascii_case(name))
    });
    match found {
        Some((full, _, Some(Kind::Ecdsa(_) | Kind::EcdsaSk))) if full.as_bytes() != name => {
            Err(format!(
                "the key names its type `{}`, without its curve",
                String::from_utf8_lossy(name)
            ))
        }
        Some((_, _, Some(kind))) => Ok(*kind),
        Some((_, _, None)) => Err(CERTIFICATE.into()),
        None => Err(format!(
            "the key is of unknown type `{}`",
            String::from_utf8_lossy(name)
        )),
    }
}

/// A public key as OpenSSH reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HostKey {
    pub(super) kind: Kind,
    /// The blob as OpenSSH writes this key: equal blobs, equal keys.
    pub(super) blob: Vec<u8>,
}

/// The smallest RSA modulus OpenSSH reads (sshkey.h, `SSH_RSA_MINIMUM_MODULUS_SIZE`).
const RSA_MIN_BITS: usize = 1024;

/// The longest number OpenSSH reads, in bytes (sshbuf.h, `SSHBUF_MAX_BIGNUM`).
const MAX_BIGNUM: usize = 16384 / 8;

impl HostKey {
    /// Reads a public key blob; why OpenSSH would not, otherwise.
    pub(super) fn parse(blob: &[u8]) -> Result<HostKey, String> {
        let mut from = Reader(blob);
        let malformed = || "the key is malformed".to_string();
        let kind = blob_kind(from.cstring().ok_or_else(malformed)?)?;
        let mut out = Vec::with_capacity(blob.len());
        put_string(&mut out, kind.name().as_bytes());
        match kind {
            Kind::Ed25519 | Kind::Ed25519Sk => {
                let key = from.string().ok_or_else(malformed)?;
                if key.len() != 32 {
                    return Err(format!("an ed25519 key of {} bytes", key.len()));
                }
                put_string(&mut out, key);
            }
            Kind::Ecdsa(_) | Kind::EcdsaSk => {
                let curve = match kind {
                    Kind::Ecdsa(curve) => curve,
                    _ => Curve::P256,
                };
                if from.cstring().ok_or_else(malformed)? != curve.name() {
                    return Err("the key's curve is not its type's".into());
                }
                let point = from.string().ok_or_else(malformed)?;
                // Uncompressed (0x04, x, y). Whether the point lies on the curve is not
                // checked: see the module doc of known_hosts.
                if point.len() != curve.point_len() || point[0] != 4 {
                    return Err("the key's point is malformed".into());
                }
                put_string(&mut out, curve.name());
                put_string(&mut out, point);
            }
            Kind::Rsa => {
                let e = from.mpint().ok_or_else(malformed)?;
                let n = from.mpint().ok_or_else(malformed)?;
                let bits = n
                    .first()
                    .map_or(0, |top| 8 * n.len() - top.leading_zeros() as usize);
                if bits < RSA_MIN_BITS {
                    return Err(format!(
                        "an RSA key of {bits} bits (OpenSSH reads none under {RSA_MIN_BITS})"
                    ));
                }
                put_mpint(&mut out, e);
                put_mpint(&mut out, n);
            }
            Kind::Dsa => {
                for _ in ["p", "q", "g", "y"] {
                    put_mpint(&mut out, from.mpint().ok_or_else(malformed)?);
                }
            }
        }
        if matches!(kind, Kind::Ed25519Sk | Kind::EcdsaSk) {
            put_string(&mut out, from.cstring().ok_or_else(malformed)?);
        }
        if !from.0.is_empty() {
            return Err("bytes follow the key".into());
        }
        Ok(HostKey { kind, blob: out })
    }
}

/// The blob OpenSSH would compare `blob` as: its canonical form, or the blob itself when it is
/// no key OpenSSH reads (it then equals no line's key).
pub(super) fn canonical(blob: &[u8]) -> Vec<u8> {
    HostKey::parse(blob).map_or_else(|_| blob.to_vec(), |key| key.blob)
}

/// The type a public key blob names (its first SSH string).
pub(crate) fn blob_type(blob: &[u8]) -> Option<String> {
    let name = Reader(blob).string()?;
    let name = std::str::from_utf8(name).ok()?;
    (!name.is_empty()).then(|| name.to_string())
}

/// SSH wire format (RFC 4251), read as OpenSSH's sshbuf reads it.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    /// A length-prefixed string.
    fn string(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_be_bytes(self.0.get(..4)?.try_into().ok()?) as usize;
        let value = self.0.get(4..4usize.checked_add(len)?)?;
        self.0 = &self.0[4 + len..];
        Some(value)
    }

    /// A string that holds text: no NUL, but one ending it, which is not part of it
    /// (`sshbuf_get_cstring`).
    fn cstring(&mut self) -> Option<&'a [u8]> {
        let value = self.string()?;
        let value = value.strip_suffix(b"\0").unwrap_or(value);
        (!value.contains(&0)).then_some(value)
    }

    /// A non-negative multiple-precision integer, without its leading zeros
    /// (`sshbuf_get_bignum2_bytes_direct`).
    fn mpint(&mut self) -> Option<&'a [u8]> {
        let value = self.string()?;
        if value.first().is_some_and(|top| top & 0x80 != 0)
            || value.len() > MAX_BIGNUM + 1
            || (value.len() == MAX_BIGNUM + 1 && value[0] != 0)
        {
            return None;
        }
        let zeros = value.iter().take_while(|b| **b == 0).count();
        Some(&value[zeros..])
    }
}

fn put_string(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(value);
}

/// `magnitude` (no leading zeros) as OpenSSH writes an mpint: a zero byte first when the top
/// bit is set.
fn put_mpint(out: &mut Vec<u8>, magnitude: &[u8]) {
    let sign = magnitude.first().is_some_and(|top| top & 0x80 != 0);
    out.extend_from_slice(&((magnitude.len() + usize::from(sign)) as u32).to_be_bytes());
    if sign {
        out.push(0);
    }
    out.extend_from_slice(magnitude);
}
