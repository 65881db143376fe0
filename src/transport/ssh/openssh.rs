//! What OpenSSH's client configuration says about a host, as OpenSSH itself resolves it.
//!
//! `ssh web` and `shipit deploy` must reach the same server through the same jump hosts with
//! the same trust decision. Rather than re-implement ssh_config (first match wins, `Host`
//! negation, `Match`, `Include` with `~` and globs, `%h` tokens, durations, service names...),
//! shipit asks the installed OpenSSH client: `ssh -G [-p PORT] [-l USER] -- HOST` prints every
//! option fully resolved. Of that answer:
//!
//! - honoured: HostName, User, Port, IdentityFile, CertificateFile, IdentitiesOnly,
//!   IdentityAgent, UserKnownHostsFile, GlobalKnownHostsFile, HostKeyAlias, ProxyJump,
//!   ProxyCommand, ConnectTimeout, AddressFamily;
//! - refused, naming the option (shipit cannot do what they ask, and connecting anyway would
//!   reach another server or trust another way than `ssh`): KnownHostsCommand,
//!   PKCS11Provider, BindAddress, BindInterface, CanonicalizeHostname, ProxyUseFdpass,
//!   CheckHostIP;
//! - everything else does not change where shipit connects or what it trusts (forwardings,
//!   ControlMaster, SendEnv, ServerAlive*: shipit opens no forwardings and detects dead
//!   connections with TCP keepalive). `StrictHostKeyChecking no` or `accept-new` is not
//!   honoured: shipit always checks strictly, and `--accept-new-host-key` is the explicit way
//!   to trust a new host.
//!
//! Which configuration: shipit's `~` is `$HOME`. When `$HOME` is the account's home directory
//! (the normal case) `ssh -G` runs as `ssh` would, reading `~/.ssh/config` and
//! `/etc/ssh/ssh_config`. When `$HOME` points elsewhere (OpenSSH ignores `$HOME`), shipit
//! passes `-F $HOME/.ssh/config` (or `-F /dev/null` when there is none) so that the config
//! beside the keys and known_hosts shipit uses is the one read.
//!
//! Without an `ssh` client shipit cannot read a config the way OpenSSH would: it refuses when
//! `$HOME/.ssh/config` exists, and otherwise uses OpenSSH's defaults.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::config::{parse_jumps, HostSpec};
use crate::error::{Error, Result};

/// Options read and refused because shipit cannot honour them: `(ssh -G key, option name, why)`.
const REFUSED: &[(&str, &str, &str)] = &[
    (
        "knownhostscommand",
        "KnownHostsCommand",
        "shipit reads known_hosts files only",
    ),
    (
        "pkcs11provider",
        "PKCS11Provider",
        "shipit cannot use PKCS#11 tokens; load the key into ssh-agent",
    ),
    (
        "bindaddress",
        "BindAddress",
        "shipit cannot choose the local address",
    ),
    (
        "bindinterface",
        "BindInterface",
        "shipit cannot choose the local interface",
    ),
];

/// Yes/no options refused when on: `(ssh -G key, option name, why)`.
const REFUSED_WHEN_ON: &[(&str, &str, &str)] = &[
    ("canonicalizehostname", "CanonicalizeHostname", "shipit does not canonicalize host names"),
    ("proxyusefdpass", "ProxyUseFdpass", "shipit carries the session over the proxy command's stdin and stdout, and cannot take a passed descriptor"),
    ("checkhostip", "CheckHostIP", "shipit checks the host key by the host's name only (OpenSSH's default since 8.5); set `CheckHostIP no` for these hosts"),
];

/// Where a host spec leads and how to trust and log into it, once the OpenSSH client
/// configuration has been applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Login user.
    pub user: String,
    /// Host name or address to connect to (HostName).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Key files, in order (missing ones are skipped when authenticating).
    pub identity_files: Vec<PathBuf>,
    /// Only keys named by `identity_files` may be used, also from the agent.
    pub identities_only: bool,
    /// Which agent to ask.
    pub agent: AgentSocket,
    /// UserKnownHostsFile: trusted; a newly accepted key goes into the first.
    pub user_known_hosts: Vec<PathBuf>,
    /// GlobalKnownHostsFile: trusted, never written.
    pub global_known_hosts: Vec<PathBuf>,
    /// HostKeyAlias: the name known_hosts knows the host by, instead of `host` and `port`.
    pub host_key_alias: Option<String>,
    /// ProxyJump: the jump hosts, first to last (empty: direct).
    pub jumps: Vec<HostSpec>,
    /// ProxyCommand, its tokens expanded: run to reach the host (when there are no jumps).
    pub proxy_command: Option<String>,
    /// CertificateFile: user certificates to offer with the matching keys.
    pub certificate_files: Vec<PathBuf>,
    /// ConnectTimeout, when set.
    pub connect_timeout: Option<Duration>,
    /// AddressFamily.
    pub family: Family,
}

/// Which ssh-agent authentication asks (IdentityAgent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentSocket {
    /// `$SSH_AUTH_SOCK`, when set.
    Environment,
    /// No agent.
    None,
    /// This socket.
    Path(PathBuf),
}

/// AddressFamily.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Any,
    Inet,
    Inet6,
}

impl Endpoint {
    /// `user@host:port`, `user@[v6]:port`.
    pub fn display(&self) -> String {
        if self.host.contains(':') {
            format!("{}@[{}]:{}", self.user, self.host, self.port)
        } else {
            format!("{}@{}:{}", self.user, self.host, self.port)
        }
    }

    /// The host as known_hosts writes it: `host` on port 22, `[host]:port` elsewhere; the
    /// HostKeyAlias alone when there is one (as `ssh` does).
    pub fn known_hosts_name(&self) -> String {
        match &self.host_key_alias {
            Some(alias) => alias.clone(),
            None if self.port == 22 => self.host.clone(),
            None => format!("[{}]:{}", self.host, self.port),
        }
    }

    /// The name and port known_hosts lines are matched against.
    pub fn known_hosts_key(&self) -> (&str, u16) {
        match &self.host_key_alias {
            Some(alias) => (alias, 22),
            None => (&self.host, self.port),
        }
    }
}

/// shipit's home directory (`$HOME`).
pub fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

/// Resolves `spec` the way `ssh` would. `jump_override` (from shipit.toml, or the chain a
/// later hop is reached through) replaces the config's ProxyJump, as `ssh -J` does.
pub fn resolve(spec: &HostSpec, jump_override: Option<&[HostSpec]>) -> Result<Endpoint> {
    let home = home();
    let user_config = home.as_ref().map(|h| h.join(".ssh/config"));
    let Some(ssh) = find_in_path("ssh") else {
        if let Some(config) = user_config.as_ref().filter(|c| c.exists()) {
            return Err(Error::config(
                config,
                "no OpenSSH client (`ssh`) is installed to read this file the way `ssh` does (shipit asks `ssh -G`); install the OpenSSH client (Debian: openssh-client), or move the file away if it has nothing to say about these hosts",
            ));
        }
        return Ok(defaults(spec, home.as_deref(), jump_override));
    };
    let mut command = Command::new(ssh);
    command.arg("-G");
    let config_file = match (&home, &user_config, account_home()) {
        (Some(h), Some(c), Some(account)) if !same_dir(h, &account) => {
            let file = if c.exists() {
                c.clone()
            } else {
                PathBuf::from("/dev/null")
            };
            command.arg("-F").arg(&file);
            Some(file)
        }
        _ => None,
    };
    if let Some(port) = spec.port {
        command.arg("-p").arg(port.to_string());
    }
    if let Some(user) = &spec.user {
        command.arg("-l").arg(user);
    }
    command
        .arg("--")
        .arg(&spec.host)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown_file = config_file
        .clone()
        .or(user_config)
        .unwrap_or_else(|| PathBuf::from("~/.ssh/config"));
    let output = command
        .output()
        .map_err(|e| Error::config(&shown_file, format!("cannot run `ssh -G`: {e}")))?;
    if !output.status.success() {
        return Err(Error::config(
            &shown_file,
            format!(
                "`ssh -G {}` failed: {}",
                spec.host,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let where_from = match &config_file {
        Some(file) => file.display().to_string(),
        None => "~/.ssh/config, a file it includes or /etc/ssh/ssh_config".into(),
    };
    interpret(
        spec,
        &text,
        home.as_deref(),
        jump_override,
        &shown_file,
        &where_from,
    )
}

/// OpenSSH's defaults for `spec`, for a machine without an `ssh` client and no config.
fn defaults(spec: &HostSpec, home: Option<&Path>, jump_override: Option<&[HostSpec]>) -> Endpoint {
    let in_home = |names: &[&str]| -> Vec<PathBuf> {
        home.map(|h| names.iter().map(|n| h.join(".ssh").join(n)).collect())
            .unwrap_or_default()
    };
    Endpoint {
        user: spec
            .user
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "root".into()),
        host: spec.host.clone(),
        port: spec.port.unwrap_or(22),
        identity_files: in_home(&["id_rsa", "id_ecdsa", "id_ed25519"]),
        identities_only: false,
        agent: AgentSocket::Environment,
        user_known_hosts: in_home(&["known_hosts", "known_hosts2"]),
        global_known_hosts: vec![
            PathBuf::from("/etc/ssh/ssh_known_hosts"),
            PathBuf::from("/etc/ssh/ssh_known_hosts2"),
        ],
        host_key_alias: None,
        jumps: jump_override.map(<[HostSpec]>::to_vec).unwrap_or_default(),
        proxy_command: None,
        certificate_files: vec![],
        connect_timeout: None,
        family: Family::Any,
    }
}

/// Turns `ssh -G` output into an [`Endpoint`], refusing what shipit cannot honour.
/// `file` is the config file errors name; `where_from` says where the option may come from.
fn interpret(
    spec: &HostSpec,
    text: &str,
    home: Option<&Path>,
    jump_override: Option<&[HostSpec]>,
    file: &Path,
    where_from: &str,
) -> Result<Endpoint> {
    let mut values: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        values.push((key.to_ascii_lowercase(), value.trim().to_string()));
    }
    let get = |key: &str| -> Option<&str> {
        values
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let all = |key: &str| -> Vec<&str> {
        values
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let refuse = |option: &str, value: &str, why: &str| {
        Error::config(
            file,
            format!(
                "`{option} {value}` applies to host `{}` (from {where_from}), and {why}; refusing to connect rather than ignore it",
                spec.host
            ),
        )
    };
    let bad = |option: &str, value: &str| {
        Error::config(
            file,
            format!(
                "`ssh -G {}` gave `{option} {value}`, which shipit cannot read",
                spec.host
            ),
        )
    };
    let unset = |v: &str| v.is_empty() || v.eq_ignore_ascii_case("none");
    for (key, option, why) in REFUSED {
        if let Some(value) = get(key).filter(|v| !unset(v)) {
            return Err(refuse(option, value, why));
        }
    }
    for (key, option, why) in REFUSED_WHEN_ON {
        if let Some(value) =
            get(key).filter(|v| !matches!(v.to_ascii_lowercase().as_str(), "false" | "no"))
        {
            return Err(refuse(option, value, why));
        }
    }

    let user = get("user")
        .map(str::to_string)
        .or_else(|| spec.user.clone())
        .ok_or_else(|| bad("user", ""))?;
    let host = get("hostname").unwrap_or(&spec.host).to_string();
    let port = match get("port") {
        Some(p) => p.parse::<u16>().map_err(|_| bad("port", p))?,
        None => spec.port.unwrap_or(22),
    };
    let local_user = std::env::var("USER").unwrap_or_default();
    let tokens = Tokens {
        home,
        host: &host,
        alias: &spec.host,
        port,
        user: &user,
        local_user: &local_user,
    };
    let mut identity_files = Vec::new();
    for value in all("identityfile") {
        identity_files.push(
            tokens
                .expand(value)
                .map_err(|why| Error::config(file, format!("`IdentityFile {value}`: {why}")))?,
        );
    }
    let known_hosts = |key: &str| -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for value in all(key) {
            for one in value.split_whitespace() {
                if unset(one) {
                    continue;
                }
                files.push(
                    tokens
                        .expand(one)
                        .map_err(|why| Error::config(file, format!("`{key} {one}`: {why}")))?,
                );
            }
        }
        Ok(files)
    };
    let user_known_hosts = rehome(known_hosts("userknownhostsfile")?, home);
    let global_known_hosts = known_hosts("globalknownhostsfile")?;
    let jumps = match jump_override {
        Some(jumps) => jumps.to_vec(),
        None => match get("proxyjump") {
            Some(value) if !unset(value) => parse_jumps(value)
                .map_err(|why| Error::config(file, format!("`ProxyJump {value}`: {why}")))?,
            _ => Vec::new(),
        },
    };
    // A jump given on the command line (or shipit.toml) replaces ProxyCommand, as `ssh -J` does.
    let proxy_command = match get("proxycommand") {
        Some(value) if !unset(value) && jump_override.is_none() && jumps.is_empty() => Some(
            tokens
                .expand_command(value)
                .map_err(|why| Error::config(file, format!("`ProxyCommand {value}`: {why}")))?,
        ),
        _ => None,
    };
    let mut certificate_files = Vec::new();
    for value in all("certificatefile") {
        certificate_files.push(
            tokens
                .expand(value)
                .map_err(|why| Error::config(file, format!("`CertificateFile {value}`: {why}")))?,
        );
    }
    let connect_timeout = match get("connecttimeout") {
        Some(v) if !unset(v) => Some(Duration::from_secs(
            v.parse::<u64>().map_err(|_| bad("connecttimeout", v))?,
        )),
        _ => None,
    };
    let agent = match get("identityagent") {
        None => AgentSocket::Environment,
        Some(v) if v.eq_ignore_ascii_case("none") => AgentSocket::None,
        Some("SSH_AUTH_SOCK") | Some("$SSH_AUTH_SOCK") => AgentSocket::Environment,
        Some(v) => {
            let path = match v.strip_prefix('$') {
                Some(var) => PathBuf::from(std::env::var_os(var).unwrap_or_default()),
                None => tokens
                    .expand(v)
                    .map_err(|why| Error::config(file, format!("`IdentityAgent {v}`: {why}")))?,
            };
            AgentSocket::Path(path)
        }
    };
    let family = match get("addressfamily").map(str::to_ascii_lowercase).as_deref() {
        Some("inet") => Family::Inet,
        Some("inet6") => Family::Inet6,
        _ => Family::Any,
    };
    Ok(Endpoint {
        user,
        host,
        port,
        identity_files,
        identities_only: get("identitiesonly").is_some_and(|v| v.eq_ignore_ascii_case("yes")),
        agent,
        user_known_hosts,
        global_known_hosts,
        host_key_alias: get("hostkeyalias")
            .filter(|v| !unset(v))
            .map(str::to_string),
        jumps,
        proxy_command,
        certificate_files,
        connect_timeout,
        family,
    })
}

/// OpenSSH expands `~` in known_hosts paths with the account's home; shipit's `~` is `$HOME`.
fn rehome(files: Vec<PathBuf>, home: Option<&Path>) -> Vec<PathBuf> {
    let (Some(home), Some(account)) = (home, account_home()) else {
        return files;
    };
    files
        .into_iter()
        .map(|f| match f.strip_prefix(&account) {
            Ok(rest) if !same_dir(home, &account) => home.join(rest),
            _ => f,
        })
        .collect()
}

/// The values `%` tokens and `~` stand for in paths (ssh_config(5), "TOKENS").
struct Tokens<'a> {
    home: Option<&'a Path>,
    host: &'a str,
    alias: &'a str,
    port: u16,
    user: &'a str,
    local_user: &'a str,
}

impl Tokens<'_> {
    /// A path: `~`, `%` tokens and `${VAR}`, as ssh_config(5) expands IdentityFile and its
    /// kind.
    fn expand(&self, value: &str) -> std::result::Result<PathBuf, String> {
        let mut out = String::new();
        let mut rest = value;
        if let Some(after) = rest.strip_prefix('~') {
            if after.is_empty() || after.starts_with('/') {
                out.push_str(&self.home()?);
                rest = after;
            } else {
                return Err("`~user` paths are not supported".into());
            }
        }
        self.substitute(rest, true, &mut out)?;
        Ok(PathBuf::from(out))
    }

    /// A command (ProxyCommand): `%` tokens only; the shell that runs it does the rest.
    fn expand_command(&self, value: &str) -> std::result::Result<String, String> {
        let mut out = String::new();
        self.substitute(value, false, &mut out)?;
        Ok(out)
    }

    fn home(&self) -> std::result::Result<String, String> {
        self.home
            .map(|h| h.display().to_string())
            .ok_or_else(|| "HOME is not set".to_string())
    }

    /// Appends `text` to `out` with its `%` tokens (and, when `variables`, `${VAR}`) replaced.
    fn substitute(
        &self,
        text: &str,
        variables: bool,
        out: &mut String,
    ) -> std::result::Result<(), String> {
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '%' => match chars.next() {
                    Some('%') => out.push('%'),
                    Some('d') => out.push_str(&self.home()?),
                    Some('h') => out.push_str(self.host),
                    Some('n') => out.push_str(self.alias),
                    Some('p') => out.push_str(&self.port.to_string()),
                    Some('r') => out.push_str(self.user),
                    Some('u') => out.push_str(self.local_user),
                    Some(other) => return Err(format!("the token `%{other}` is not supported")),
                    None => return Err("ends with `%`".into()),
                },
                '$' if variables && chars.as_str().starts_with('{') => {
                    let inner = &chars.as_str()[1..];
                    let end = inner.find('}').ok_or("unclosed `${`")?;
                    let name = &inner[..end];
                    let value = std::env::var(name)
                        .map_err(|_| format!("environment variable `{name}` is not set"))?;
                    out.push_str(&value);
                    chars = inner[end + 1..].chars();
                }
                c => out.push(c),
            }
        }
        Ok(())
    }
}

/// The home directory of the account running shipit (what OpenSSH calls `~`).
fn account_home() -> Option<PathBuf> {
    use std::ffi::CStr;
    use std::os::unix::ffi::OsStrExt;
    let mut buffer = vec![0u8; 16 * 1024];
    // SAFETY: getpwuid_r writes into `pwd` and `buffer`, whose sizes we pass; `result` is
    // null or points to `pwd`, whose pw_dir points into `buffer`, both alive while read.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            libc::getuid(),
            &mut pwd,
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() || pwd.pw_dir.is_null() {
            return None;
        }
        let dir = CStr::from_ptr(pwd.pw_dir);
        Some(PathBuf::from(std::ffi::OsStr::from_bytes(dir.to_bytes())))
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// The first executable `name` in `$PATH`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> HostSpec {
        HostSpec::parse(text).unwrap()
    }

    fn read(text: &str) -> Result<Endpoint> {
        interpret(
            &spec("web"),
            text,
            Some(Path::new("/home/me")),
            None,
            Path::new("/home/me/.ssh/config"),
            "~/.ssh/config",
        )
    }

    const BASE: &str = "host web\nuser alice\nhostname 10.0.0.5\nport 2222\nidentityfile ~/.ssh/id_%h\nidentityfile /keys/%r@%n\nuserknownhostsfile /srv/kh %d/.ssh/kh2\nglobalknownhostsfile /etc/ssh/ssh_known_hosts\nconnecttimeout 10\ncanonicalizehostname false\nproxyjump bob@bastion:2200,ssh://carol@b2\n";

    #[test]
    fn reads_what_ssh_g_prints() {
        let e = read(BASE).unwrap();
        assert_eq!(e.display(), "alice@10.0.0.5:2222");
        assert_eq!(
            e.identity_files,
            vec![
                PathBuf::from("/home/me/.ssh/id_10.0.0.5"),
                PathBuf::from("/keys/alice@web")
            ]
        );
        assert_eq!(
            e.user_known_hosts,
            vec![PathBuf::from("/srv/kh"), PathBuf::from("/home/me/.ssh/kh2")]
        );
        assert_eq!(e.connect_timeout, Some(Duration::from_secs(10)));
        assert_eq!(e.jumps, vec![spec("bob@bastion:2200"), spec("carol@b2")]);
        assert_eq!(e.known_hosts_name(), "[10.0.0.5]:2222");
        let aliased = read(&format!("{BASE}hostkeyalias webkey\n")).unwrap();
        assert_eq!(aliased.known_hosts_name(), "webkey");
        assert_eq!(aliased.known_hosts_key(), ("webkey", 22));
    }

    #[test]
    fn proxy_command_and_certificate_files_are_read_with_their_tokens() {
        let direct = BASE.replace("proxyjump bob@bastion:2200,ssh://carol@b2\n", "");
        let text = format!(
            "{direct}proxycommand ssh -W %h:%p gate -l %r # 100%% ${{HOME}} ~\ncertificatefile ~/.ssh/id-cert.pub\ncertificatefile /ca/%r@%h.pub\n"
        );
        let e = read(&text).unwrap();
        assert_eq!(
            e.proxy_command.as_deref(),
            Some("ssh -W 10.0.0.5:2222 gate -l alice # 100% ${HOME} ~")
        );
        assert_eq!(
            e.certificate_files,
            vec![
                PathBuf::from("/home/me/.ssh/id-cert.pub"),
                PathBuf::from("/ca/alice@10.0.0.5.pub")
            ]
        );
        // ProxyJump wins where both apply (ssh uses the first it reads; `ssh -G` prints one).
        let both = read(&format!("{BASE}proxycommand nc %h %p\n")).unwrap();
        assert_eq!(both.proxy_command, None);
        let err = read(&format!("{direct}proxycommand nc %C\n")).unwrap_err();
        assert!(err.to_string().contains("`%C` is not supported"), "{err}");
    }

    #[test]
    fn a_jump_from_shipit_toml_replaces_proxy_jump_and_proxy_command() {
        let hops = [spec("ops@gate")];
        let text = format!("{BASE}proxycommand nc %h %p\n");
        let e = interpret(
            &spec("web"),
            &text,
            Some(Path::new("/home/me")),
            Some(&hops),
            Path::new("c"),
            "c",
        )
        .unwrap();
        assert_eq!(e.jumps, hops.to_vec());
        assert_eq!(e.proxy_command, None);
        assert!(parse_jumps("none").unwrap().is_empty());
        assert!(parse_jumps("a,-oProxyCommand=x").is_err());
    }

    #[test]
    fn options_shipit_cannot_honour_are_refused_by_name() {
        for (line, name) in [
            ("knownhostscommand /bin/kh", "KnownHostsCommand"),
            ("pkcs11provider /usr/lib/p11.so", "PKCS11Provider"),
            ("bindaddress 10.0.0.1", "BindAddress"),
            ("canonicalizehostname yes", "CanonicalizeHostname"),
            ("proxyusefdpass yes", "ProxyUseFdpass"),
            ("checkhostip yes", "CheckHostIP"),
        ] {
            let err = read(&format!("{line}\n{BASE}")).unwrap_err();
            assert_eq!(err.exit_code(), crate::error::EXIT_USAGE);
            let msg = err.to_string();
            assert!(msg.contains(name), "{msg}");
            assert!(msg.starts_with("/home/me/.ssh/config: "), "{msg}");
        }
        assert!(read(&format!("proxycommand none\n{BASE}")).is_ok());
        assert!(read(&format!("checkhostip no\nproxyusefdpass no\n{BASE}")).is_ok());
        let err = read(&format!("{BASE}identityfile ~/.ssh/%C\n")).unwrap_err();
        assert!(err.to_string().contains("`%C` is not supported"), "{err}");
    }
}
