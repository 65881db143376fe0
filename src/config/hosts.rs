//! Host specs (`[user@]host[:port]`) as used by `hosts` and `jump`: parsed once, printed back the
//! same.

use super::*;

/// A host as written in `hosts`: `[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// Login user, when given.
    pub user: Option<String>,
    /// Host name, address or `~/.ssh/config` alias.
    pub host: String,
    /// Port, when given.
    pub port: Option<u16>,
}

impl HostSpec {
    /// Parses `[user@]host[:port]`, with `[v6addr]:port` for IPv6.
    pub fn parse(text: &str) -> std::result::Result<HostSpec, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty host".into());
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("host `{text}` contains whitespace"));
        }
        let (user, rest) = match text.rsplit_once('@') {
            Some((user, rest)) if !user.is_empty() => (Some(user.to_string()), rest),
            Some(_) => return Err(format!("host `{text}` has an empty user")),
            None => (None, text),
        };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (addr, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("host `{text}` has an unclosed `[`"))?;
            match after.strip_prefix(':') {
                Some(port) => (addr.to_string(), Some(port)),
                None if after.is_empty() => (addr.to_string(), None),
                None => return Err(format!("host `{text}` is not `[address]:port`")),
            }
        } else {
            match rest.split_once(':') {
                Some((host, port)) => (host.to_string(), Some(port)),
                None => (rest.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(format!("host `{text}` has no host name"));
        }
        // `ssh -G` is given the host and user as arguments: never let one read as an option.
        if host.starts_with('-') || user.as_deref().is_some_and(|u| u.starts_with('-')) {
            return Err(format!(
                "host `{text}` starts with `-`; host names and users never do"
            ));
        }
        let port = match port {
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("host `{text}` has an invalid port `{p}`"))?,
            ),
            None => None,
        };
        Ok(HostSpec { user, host, port })
    }
}

/// Parses a ProxyJump value (or shipit.toml's `jump`): `none`, or comma-separated
/// `[user@]host[:port]` / `ssh://[user@]host[:port]`.
pub(crate) fn parse_jumps(value: &str) -> std::result::Result<Vec<HostSpec>, String> {
    if value.trim().eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    value
        .split(',')
        .map(|hop| {
            let hop = hop.trim();
            HostSpec::parse(hop.strip_prefix("ssh://").unwrap_or(hop))
        })
        .collect()
}

impl HostSpec {
    /// Whether `self` and `other` reach the same sshd: the same host name (any case) and port
    /// (none is 22), whatever the user. Two such entries share one `deploy_to` and its lock.
    pub fn same_machine(&self, other: &HostSpec) -> bool {
        self.host.eq_ignore_ascii_case(&other.host)
            && self.port.unwrap_or(22) == other.port.unwrap_or(22)
    }
}

impl fmt::Display for HostSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// Validates `hosts`: each parsed, none listed twice; an ssh target needs one, a local target
/// takes none.
pub(super) fn validate_hosts(
    source: &Source,
    target: &str,
    raw: &Spanned<Vec<Spanned<String>>>,
    transport: TransportKind,
    target_span: Range<usize>,
) -> Result<Vec<HostSpec>> {
    let key = key_for(target, "hosts");
    let mut hosts: Vec<HostSpec> = Vec::new();
    for host in raw.get_ref() {
        let spec = HostSpec::parse(host.get_ref())
            .map_err(|why| source.error(host.span(), key.clone(), why))?;
        if let Some(earlier) = hosts.iter().find(|h| h.same_machine(&spec)) {
            return Err(source.error(
                host.span(),
                key,
                format!(
                    "`{spec}` is listed twice (also as `{earlier}`): one run would lock itself out of the host; list each host once"
                ),
            ));
        }
        hosts.push(spec);
    }
    match transport {
        TransportKind::Ssh if hosts.is_empty() => {
            let span = if raw.span() == (0..0) {
                target_span
            } else {
                raw.span()
            };
            Err(source.error(
                span,
                key,
                "an ssh target needs at least one host, e.g. hosts = [\"deploy@example.com\"]",
            ))
        }
        TransportKind::Local if !hosts.is_empty() => Err(source.error(
            raw.span(),
            key,
            "a local target runs on this machine and takes no hosts",
        )),
        _ => Ok(hosts),
    }
}

/// Validates `jump`: jump hosts (or `"none"`) for an ssh target.
pub(super) fn validate_jump(
    source: &Source,
    target: &str,
    raw: Option<&Spanned<String>>,
    transport: TransportKind,
) -> Result<Option<Vec<HostSpec>>> {
    let key = key_for(target, "jump");
    match raw {
        None => Ok(None),
        Some(value) if transport == TransportKind::Local => Err(source.error(
            value.span(),
            key,
            "a local target runs on this machine and takes no jump host",
        )),
        Some(value) => parse_jumps(value.get_ref())
            .map(Some)
            .map_err(|why| source.error(value.span(), key, why)),
    }
}
