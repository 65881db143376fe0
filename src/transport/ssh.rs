//! The SSH transport: one authenticated `ssh2` session per host, one channel per script.
//!
//! Where a host leads is OpenSSH's answer ([`openssh`]: `ssh -G`, so `~/.ssh/config` means what
//! it means to `ssh`), including its jump hosts: each hop is a session of its own, reached
//! through a `direct-tcpip` channel of the previous one ([`relay`]), whose host key is checked
//! and which authenticates like the target. The first hop is reached over TCP, or through its
//! ProxyCommand ([`proxy`]).
//!
//! Safe by default: every host key, jump hosts' too, must match the known_hosts files (the
//! target's own file, then UserKnownHostsFile and GlobalKnownHostsFile), read as OpenSSH reads
//! them ([`known_hosts`]). A key unknown for its type is refused with its fingerprint and the
//! exact line that would trust it, unless the user opted into `--accept-new-host-key`; a
//! changed key and a `@revoked` key are always refused; a host certificate is trusted through
//! a `@cert-authority` line when it vouches for the host ([`host_certificate`]). Authentication
//! tries every ssh-agent identity, then the configured key, then the IdentityFile keys (each
//! with its user certificates first); an encrypted key that cannot be used says how to load it
//! into the agent.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use ssh2::{MethodType, Session};

use crate::config::HostSpec;
use crate::error::{Error, Result};
use crate::plan::{base64, quote};

use super::{for_each_line, OnLine, Transport, Usage};

mod host_certificate;
mod known_hosts;
pub(crate) mod openssh;
mod proxy;
mod relay;

use known_hosts::{KnownHosts, Verdict};
use openssh::Endpoint;
use openssh::{AgentSocket, Family};

/// How long to wait for TCP connect, handshake and authentication, unless ConnectTimeout says.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How many jump hosts a route may take (a ProxyJump loop ends here).
const MAX_HOPS: usize = 8;

/// Host key algorithms in OpenSSH's order of preference, so the key libssh2 negotiates is the
/// one `ssh` would have recorded in known_hosts.
const HOST_KEY_PREFERENCE: &str = "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256,ssh-rsa";

/// How to connect and what to trust.
#[derive(Debug, Clone, Default)]
pub struct SshOptions {
    /// Key file from the target's configuration (offered to its jump hosts too).
    pub identity_file: Option<PathBuf>,
    /// known_hosts file from the target's configuration (trusted besides the ssh config's
    /// files, for the target and its jump hosts, and where new keys go when it is set).
    pub known_hosts: Option<PathBuf>,
    /// Trust and record a host key that no known_hosts file mentions.
    pub accept_new_host_key: bool,
    /// `jump` from the target's configuration: replaces the ssh config's ProxyJump
    /// (`Some(vec![])`: connect directly).
    pub jump: Option<Vec<HostSpec>>,
}

/// An authenticated SSH session to one host (through its jump hosts, if any).
pub struct Ssh {
    name: String,
    session: Session,
    usage: Usage,
    /// The first hop's ProxyCommand, stopped when the sessions over it are gone (after
    /// `session`, which is dropped first).
    _proxy: Option<proxy::Proxy>,
}

fn home() -> Option<PathBuf> {
    openssh::home()
}

/// The hops to `spec`, first jump host first and the host itself last, each resolved as `ssh`
/// resolves it: the first jump host through its own ProxyJump, later ones directly (as
/// `ssh -J a,b` does).
fn route(spec: &HostSpec, jump: Option<&[HostSpec]>) -> Result<Vec<Endpoint>> {
    let mut hops = Vec::new();
    route_into(spec, jump, &mut hops)?;
    Ok(hops)
}

fn route_into(spec: &HostSpec, jump: Option<&[HostSpec]>, hops: &mut Vec<Endpoint>) -> Result<()> {
    let endpoint = openssh::resolve(spec, jump)?;
    if let Some((first, rest)) = endpoint.jumps.split_first() {
        if hops.len() + endpoint.jumps.len() >= MAX_HOPS {
            return Err(Error::usage(format!(
                "more than {MAX_HOPS} jump hosts on the way to `{spec}`: is there a ProxyJump loop in ~/.ssh/config?"
            )));
        }
        route_into(first, None, hops)?;
        for hop in rest {
            hops.push(openssh::resolve(hop, Some(&[]))?);
        }
    }
    hops.push(endpoint);
    Ok(())
}

impl Ssh {
    /// Connects (through the jump hosts, if any), verifies every host key and authenticates.
    pub fn connect(spec: &HostSpec, options: &SshOptions) -> Result<Ssh> {
        let hops = route(spec, options.jump.as_deref())?;
        let target = hops.last().expect("a route ends at its host");
        let name = target.display();
        let mut previous: Option<(Session, RawFd)> = None;
        let mut proxied: Option<proxy::Proxy> = None;
        for (index, hop) in hops.iter().enumerate() {
            let role = if index + 1 < hops.len() {
                "jump host "
            } else {
                ""
            };
            let fail = |message: String, hint: Option<&str>| Error::Connection {
                host: format!("{role}{}", hop.display()),
                message,
                hint: hint.map(str::to_string),
            };
            let timeout = hop.connect_timeout.unwrap_or(CONNECT_TIMEOUT);
            let session = match previous.take() {
                None if hop.proxy_command.is_some() => {
                    let command = hop.proxy_command.as_deref().unwrap_or_default();
                    let (stream, mut running) = proxy::start(command).map_err(|e| {
                        fail(
                            format!("cannot run the ProxyCommand `{command}`: {e}"),
                            None,
                        )
                    })?;
                    let fd = stream.as_raw_fd();
                    let session = open(hop, stream, timeout, options, &fail)
                        .map_err(|e| through_proxy(e, command, &mut running))?;
                    proxied = Some(running);
                    (session, fd)
                }
                None => {
                    let stream = tcp_connect(hop, timeout).map_err(|(m, h)| fail(m, Some(h)))?;
                    let fd = stream.as_raw_fd();
                    (open(hop, stream, timeout, options, &fail)?, fd)
                }
                Some((jump, jump_fd)) => {
                    let channel = jump
                        .channel_direct_tcpip(&hop.host, hop.port, None)
                        .map_err(|e| {
                            fail(
                                format!("the jump host could not open a connection here: {}", e.message()),
                                Some("is the host up, its name right as the jump host resolves it, and TCP forwarding allowed on the jump host (AllowTcpForwarding)?"),
                            )
                        })?;
                    let stream = relay::start(jump, jump_fd, channel)
                        .map_err(|e| fail(format!("cannot start the jump relay: {e}"), None))?;
                    let fd = stream.as_raw_fd();
                    (open(hop, stream, timeout, options, &fail)?, fd)
                }
            };
            previous = Some(session);
        }
        let (session, _) = previous.expect("a route has a host");
        // Long steps (pip, migrate) must not time out; TCP keepalive detects a dead peer instead.
        session.set_timeout(0);
        Ok(Ssh {
            name,
            session,
            usage: Usage {
                connections: hops.len() as u32,
                ..Usage::default()
            },
            _proxy: proxied,
        })
    }

    /// Streams the local file `local` to the path `remote` on the host, over a channel of its
    /// own (the console's script, too long for an exec request).
    fn upload(&mut self, local: &Path, remote: &str) -> Result<()> {
        self.usage.channels += 1;
        let mut file = File::open(local).map_err(|e| Error::io("read", local, e))?;
        let mut channel = self
            .session
            .channel_session()
            .map_err(|e| self.channel_error("cannot open a channel", e))?;
        channel
            .exec(&format!("cat > {}", quote(remote)))
            .map_err(|e| self.channel_error("cannot start the upload", e))?;
        let mut buffer = vec![0; 128 * 1024];
        let mut sent = 0u64;
        loop {
            let n = file
                .read(&mut buffer)
                .map_err(|e| Error::io("read", local, e))?;
            if n == 0 {
                break;
            }
            channel
                .write_all(&buffer[..n])
                .map_err(|e| self.channel_error("upload interrupted", e))?;
            sent += n as u64;
        }
        channel
            .send_eof()
            .map_err(|e| self.channel_error("upload interrupted", e))?;
        let mut output = String::new();
        let _ = channel.read_to_string(&mut output);
        let _ = channel.stderr().read_to_string(&mut output);
        channel
            .wait_close()
            .map_err(|e| self.channel_error("upload interrupted", e))?;
        let status = channel
            .exit_status()
            .map_err(|e| self.channel_error("upload interrupted", e))?;
        if status != 0 {
            return Err(Error::Connection {
                host: self.name.clone(),
                message: format!("writing {remote} failed: {}", output.trim()),
                hint: Some("is the disk full, or deploy_to not writable by this user?".into()),
            });
        }
        self.usage.bytes_uploaded += sent;
        Ok(())
    }

    fn channel_error(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::Connection {
            host: self.name.clone(),
            message: format!("{what}: {e}"),
            hint: Some("the connection was lost. A deploy that did not switch left `current` as it was; run it again. If the host could not give its lock back (the connection dropped between steps), the next run says another deploy is running: add --break-lock".into()),
        }
    }
}

/// A connection that failed over a ProxyCommand says what the command did and how to try it.
fn through_proxy(error: Error, command: &str, running: &mut proxy::Proxy) -> Error {
    match error {
        Error::Connection { host, message, .. } => Error::Connection {
            host,
            message: format!("{message} ({})", running.explain()),
            hint: Some(format!(
                "the session runs over ProxyCommand `{command}` (from the ssh config); run it yourself to see what it does, and check the config's HostName and Port"
            )),
        },
        other => other,
    }
}

/// A TCP connection to the first hop, trying each address of its name in turn.
fn tcp_connect(
    hop: &Endpoint,
    timeout: Duration,
) -> std::result::Result<TcpStream, (String, &'static str)> {
    let addresses: Vec<_> = (hop.host.as_str(), hop.port)
        .to_socket_addrs()
        .map_err(|e| {
            (
                format!("cannot resolve {}: {e}", hop.host),
                "check the host name in `hosts` or ~/.ssh/config",
            )
        })?
        .filter(|a| match hop.family {
            Family::Any => true,
            Family::Inet => a.is_ipv4(),
            Family::Inet6 => a.is_ipv6(),
        })
        .collect();
    let mut last_error = None;
    for address in &addresses {
        match TcpStream::connect_timeout(address, timeout) {
            Ok(stream) => {
                keep_alive(&stream);
                return Ok(stream);
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err((
        format!(
            "cannot connect: {}",
            last_error.map_or_else(|| "no address".to_string(), |e| e.to_string())
        ),
        "is the host up and sshd listening on that port? check `hosts` in shipit.toml",
    ))
}

/// Runs SSH over `stream` to `hop`: handshake, host key check, authentication.
fn open(
    hop: &Endpoint,
    stream: impl AsRawFd + 'static,
    timeout: Duration,
    options: &SshOptions,
    fail: &dyn Fn(String, Option<&str>) -> Error,
) -> Result<Session> {
    let known = load_known_hosts(hop, options)?;
    let mut session = Session::new().map_err(|e| fail(format!("cannot start ssh: {e}"), None))?;
    session.set_tcp_stream(stream);
    session.set_timeout(timeout.as_millis().min(u128::from(u32::MAX)) as u32);
    let _ = session.method_pref(MethodType::HostKey, &host_key_preference(&known, hop));
    session.handshake().map_err(|e| {
        fail(
            format!("ssh handshake failed: {}", e.message()),
            Some("is this an SSH server? check the port"),
        )
    })?;
    verify_host_key(&session, &known, hop, options)?;
    authenticate(&session, hop, options)
        .map_err(|failure| fail(failure.message, Some(&failure.hint)))?;
    Ok(session)
}

/// Turns on TCP keepalive so a dead connection fails within about a minute instead of hanging.
fn keep_alive(stream: &TcpStream) {
    let socket = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(20))
        .with_interval(Duration::from_secs(5))
        .with_retries(6);
    let _ = socket.set_tcp_keepalive(&keepalive);
    let _ = socket.set_nodelay(true);
}

/// `SHA256:...` as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &[u8]) -> String {
    let digest = Sha256::digest(key);
    format!("SHA256:{}", base64(&digest).trim_end_matches('='))
}

/// The known_hosts files that decide for `endpoint`, read (warning about malformed lines).
fn load_known_hosts(endpoint: &Endpoint, options: &SshOptions) -> Result<KnownHosts> {
    let files: Vec<PathBuf> = options
        .known_hosts
        .iter()
        .chain(&endpoint.user_known_hosts)
        .chain(&endpoint.global_known_hosts)
        .cloned()
        .collect();
    let known = KnownHosts::load(&files).map_err(|(file, e)| Error::Connection {
        host: endpoint.display(),
        message: format!("cannot read {}: {e}", file.display()),
        hint: None,
    })?;
    for warning in &known.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(known)
}

/// The host key algorithms to offer, as `ssh` orders them: certificates first when a CA is
/// trusted for the host, then the types known_hosts holds a key of, then the rest; so the key
/// negotiated is one known_hosts can decide on.
fn host_key_preference(known: &KnownHosts, endpoint: &Endpoint) -> String {
    let (lookup, port) = endpoint.known_hosts_key();
    let known_types = known.known_types(lookup, port);
    let is_known = |algorithm: &&str| {
        let key_type = match *algorithm {
            "rsa-sha2-512" | "rsa-sha2-256" => "ssh-rsa",
            other => other,
        };
        known_types.iter().any(|t| t == key_type)
    };
    let (first, rest): (Vec<&str>, Vec<&str>) = HOST_KEY_PREFERENCE.split(',').partition(is_known);
    let mut order = Vec::new();
    if known.trusts_authority_for(lookup, port) {
        order.push(host_certificate::ALGORITHMS);
    }
    order.extend(first);
    order.extend(rest);
    order.join(",")
}

fn verify_host_key(
    session: &Session,
    known: &KnownHosts,
    endpoint: &Endpoint,
    options: &SshOptions,
) -> Result<()> {
    let (key, _) = session.host_key().ok_or_else(|| Error::Connection {
        host: endpoint.display(),
        message: "the server sent no host key".into(),
        hint: None,
    })?;
    let record_in = options
        .known_hosts
        .clone()
        .or_else(|| endpoint.user_known_hosts.first().cloned())
        .or_else(|| home().map(|h| h.join(".ssh/known_hosts")))
        .unwrap_or_else(|| PathBuf::from("known_hosts"));
    let (lookup, port) = endpoint.known_hosts_key();
    decide(
        known.check(lookup, port, key),
        endpoint,
        key,
        options.accept_new_host_key,
        &record_in,
    )
}

/// Turns the known_hosts verdict into a connection (recording a new key when asked to) or the
/// error that refuses it.
fn decide(
    verdict: Verdict,
    endpoint: &Endpoint,
    key: &[u8],
    accept_new: bool,
    record_in: &Path,
) -> Result<()> {
    let host = format!("{}:{}", endpoint.host, endpoint.port);
    match verdict {
        Verdict::Trusted => Ok(()),
        Verdict::Revoked(place) => Err(Error::HostKeyRevoked {
            host,
            fingerprint: fingerprint(key),
            known_hosts: place.file,
            line: place.line,
        }),
        Verdict::Changed(place) => Err(Error::HostKeyChanged {
            host,
            fingerprint: fingerprint(key),
            known_hosts: place.file,
            line: place.line,
        }),
        Verdict::CertificateOnly(place) => Err(Error::HostCertificate {
            host,
            problem: format!(
                "{}:{} trusts this host only through a @cert-authority key, and the server presented its plain {} key, not a certificate",
                place.file.display(),
                place.line,
                known_hosts::blob_type(key).unwrap_or_else(|| "unknown".into())
            ),
            plain: true,
        }),
        Verdict::CertificateRefused { place, why } => Err(Error::HostCertificate {
            host,
            problem: match place {
                Some(place) => format!(
                    "the host certificate is refused: {why} (its CA is trusted by {}:{})",
                    place.file.display(),
                    place.line
                ),
                None => format!("the host certificate is refused: {why}"),
            },
            plain: false,
        }),
        Verdict::Unknown { known_types } => {
            let key_type = known_hosts::blob_type(key).unwrap_or_else(|| "unknown".into());
            let line = format!("{} {key_type} {}", endpoint.known_hosts_name(), base64(key));
            // Only a host known_hosts knows nothing of is trusted on first use: shipit asked
            // for the types it knows first, so another type means the server lacks the known
            // key (as `ssh`, which calls it changed).
            if accept_new && known_types.is_empty() {
                append_line(record_in, &line).map_err(|e| Error::io("write", record_in, e))?;
                eprintln!(
                    "warning: trusting the new host key of {host} ({key_type} {}) and recording it in {}",
                    fingerprint(key),
                    record_in.display()
                );
                Ok(())
            } else {
                Err(Error::HostKeyUnknown {
                    host,
                    fingerprint: fingerprint(key),
                    known_types,
                    line,
                    known_hosts: record_in.to_path_buf(),
                })
            }
        }
    }
}

fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(file, "{line}")
}

/// Why authentication failed, for the error.
struct AuthFailure {
    message: String,
    hint: String,
}

/// Tries every ssh-agent identity, then the key files; says what was tried when nothing worked
/// (and how to fix an encrypted key that no agent holds).
fn authenticate(
    session: &Session,
    endpoint: &Endpoint,
    options: &SshOptions,
) -> std::result::Result<(), AuthFailure> {
    let user = endpoint.user.as_str();
    let mut files: Vec<PathBuf> = options.identity_file.iter().cloned().collect();
    files.extend(endpoint.identity_files.iter().cloned());
    files.dedup();
    let mut tried = Vec::new();
    let socket = match &endpoint.agent {
        AgentSocket::None => None,
        AgentSocket::Environment => std::env::var_os("SSH_AUTH_SOCK").map(|_| None),
        AgentSocket::Path(path) => Some(Some(path.clone())),
    };
    if let Some(socket) = socket {
        // IdentitiesOnly: only agent keys whose public half is beside a key file.
        let wanted: Vec<Vec<u8>> = files.iter().filter_map(|f| public_blob(f)).collect();
        match agent_identities(session, socket.as_deref()) {
            Ok((agent, identities)) => {
                let usable: Vec<_> = identities
                    .into_iter()
                    .filter(|id| !endpoint.identities_only || wanted.iter().any(|w| w == id.blob()))
                    .collect();
                tried.push(format!("{} ssh-agent key(s)", usable.len()));
                for identity in &usable {
                    if agent.userauth(user, identity).is_ok() && session.authenticated() {
                        return Ok(());
                    }
                }
            }
            Err(e) => tried.push(format!("ssh-agent ({e})")),
        }
    }
    let mut encrypted = Vec::new();
    for key in &files {
        let explicit = options.identity_file.as_ref() == Some(key);
        if !key.is_file() {
            if explicit {
                tried.push(format!("{} (no such file)", key.display()));
            }
            continue;
        }
        for certificate in certificates_for(key, &endpoint.certificate_files) {
            tried.push(format!("{} with {}", key.display(), certificate.display()));
            if session
                .userauth_pubkey_file(user, Some(&certificate), key, None)
                .is_ok()
                && session.authenticated()
            {
                return Ok(());
            }
        }
        tried.push(key.display().to_string());
        if session.userauth_pubkey_file(user, None, key, None).is_ok() && session.authenticated() {
            return Ok(());
        }
        if is_encrypted(key) {
            encrypted.push(key.display().to_string());
        }
    }
    if tried.is_empty() {
        tried.push("no agent and no key file".into());
    }
    let mut message = format!(
        "authentication as `{user}` failed (tried {})",
        tried.join(", ")
    );
    let hint = if encrypted.is_empty() {
        "check the user in `hosts`, set `identity_file` in the target, or load the key into ssh-agent".to_string()
    } else {
        message.push_str(&format!(
            "; {} is encrypted (protected by a passphrase) and shipit never asks for passphrases",
            encrypted.join(", ")
        ));
        format!(
            "load the key into ssh-agent once, then run shipit again in the same shell: `eval \"$(ssh-agent)\"` (unless an agent runs already) and `ssh-add {}`",
            encrypted[0]
        )
    };
    Err(AuthFailure { message, hint })
}

/// The agent (at `socket`, or `$SSH_AUTH_SOCK`) and the identities it holds, in its order.
fn agent_identities(
    session: &Session,
    socket: Option<&Path>,
) -> std::result::Result<(ssh2::Agent, Vec<ssh2::PublicKey>), String> {
    let mut agent = session.agent().map_err(|e| e.message().to_string())?;
    if let Some(socket) = socket {
        agent
            .set_identity_path(socket)
            .map_err(|e| e.message().to_string())?;
    }
    agent
        .connect()
        .map_err(|e| format!("cannot connect: {}", e.message()))?;
    agent
        .list_identities()
        .map_err(|e| format!("cannot list keys: {}", e.message()))?;
    let identities = agent.identities().map_err(|e| e.message().to_string())?;
    Ok((agent, identities))
}

/// The user certificates to offer with the key file `private`, as `ssh` pairs them: the
/// CertificateFile certificates and `private-cert.pub`, those that certify its public key
/// (all of them when `private.pub` is missing and the key cannot be told).
fn certificates_for(private: &Path, configured: &[PathBuf]) -> Vec<PathBuf> {
    let mut beside = private.as_os_str().to_owned();
    beside.push("-cert.pub");
    let public = public_blob(private);
    let mut certificates = Vec::new();
    for path in configured.iter().chain([&PathBuf::from(beside)]) {
        let Ok(certificate) = ssh_key::Certificate::read_file(path) else {
            continue;
        };
        let certified = ssh_key::PublicKey::from(certificate.public_key().clone()).to_bytes();
        let fits = match (&public, certified) {
            (Some(public), Ok(certified)) => *public == certified,
            (None, _) => true,
            (Some(_), Err(_)) => false,
        };
        if fits && !certificates.contains(path) {
            certificates.push(path.clone());
        }
    }
    certificates
}

/// The public key blob of `private` from `private.pub`, when there is one.
fn public_blob(private: &Path) -> Option<Vec<u8>> {
    let mut name = private.as_os_str().to_owned();
    name.push(".pub");
    let text = std::fs::read_to_string(PathBuf::from(name)).ok()?;
    known_hosts::decode_base64(text.split_whitespace().nth(1)?)
}

/// Whether the private key file `path` is protected by a passphrase: an OpenSSH key whose
/// cipher is not `none`, or an encrypted PEM / PKCS#8 key.
fn is_encrypted(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    if text.contains("Proc-Type: 4,ENCRYPTED") || text.contains("BEGIN ENCRYPTED PRIVATE KEY") {
        return true;
    }
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let Some(blob) = known_hosts::decode_base64(body.trim()) else {
        return false;
    };
    // "openssh-key-v1\0", then the cipher name as an SSH string.
    let Some(rest) = blob.strip_prefix(b"openssh-key-v1\0") else {
        return false;
    };
    let Some(len) = rest
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    else {
        return false;
    };
    rest.get(4..4 + len).is_some_and(|cipher| cipher != b"none")
}

impl Transport for Ssh {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(&mut self, script: &str, on_line: &mut OnLine<'_>) -> Result<i32> {
        self.usage.channels += 1;
        let mut channel = self
            .session
            .channel_session()
            .map_err(|e| self.channel_error("cannot open a channel", e))?;
        channel
            .exec("sh -s")
            .map_err(|e| self.channel_error("cannot start sh", e))?;
        channel
            .write_all(script.as_bytes())
            .map_err(|e| self.channel_error("cannot send the script", e))?;
        // stdin stays open: the script exits by itself, and may wait for an answer at a gate.
        let mut input = channel.stream(0);
        self.usage.bytes_uploaded += for_each_line(channel.stream(0), &mut input, on_line)
            .map_err(|e| self.channel_error("connection lost while running", e))?;
        let mut stderr = String::new();
        let _ = channel.stderr().read_to_string(&mut stderr);
        for line in stderr.lines() {
            on_line(line);
        }
        channel
            .wait_close()
            .map_err(|e| self.channel_error("connection lost while running", e))?;
        channel
            .exit_status()
            .map_err(|e| self.channel_error("no exit status", e))
    }

    fn usage(&self) -> Usage {
        self.usage
    }

    /// Uploads `script` to a file in the login directory (an exec request is too small for
    /// it, and stdin is the terminal), then runs `sh FILE` on a pty the size of the local
    /// terminal; the script removes its file first. Keys and output are copied both ways,
    /// and the pty follows the local terminal's size.
    fn interactive(&mut self, script: &str) -> Result<i32> {
        let file = format!(".shipit-console-{}.sh", crate::resolve::random_hex());
        let mut local = tempfile::NamedTempFile::new()
            .map_err(|e| Error::io("create", "a temporary file", e))?;
        local
            .write_all(script.as_bytes())
            .map_err(|e| Error::io("write", local.path(), e))?;
        self.upload(local.path(), &file)?;
        self.usage.channels += 1;
        let mut channel = self
            .session
            .channel_session()
            .map_err(|e| self.channel_error("cannot open a channel", e))?;
        let (cols, rows) = crate::terminal::size();
        channel
            .request_pty(&crate::terminal::term(), None, Some((cols, rows, 0, 0)))
            .map_err(|e| self.channel_error("cannot get a terminal", e))?;
        channel
            .exec(&format!("sh {}", quote(&file)))
            .map_err(|e| self.channel_error("cannot start sh", e))?;
        let raw = crate::terminal::Raw::enter();
        let result = self.copy_both_ways(&mut channel, (cols, rows));
        drop(raw);
        result
    }
}

impl Ssh {
    /// The console's loop: the channel's output to stdout, stdin (read by a thread) to the
    /// channel, and the local terminal's size to the pty, until the remote program exits.
    fn copy_both_ways(&mut self, channel: &mut ssh2::Channel, mut size: (u32, u32)) -> Result<i32> {
        use std::sync::mpsc;
        use std::time::Instant;
        let (keys, typed) = mpsc::channel::<Vec<u8>>();
        // Blocking reads of stdin; the thread is left behind when the console ends (the next
        // key, or the process exiting, ends it).
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin();
            let mut buffer = [0u8; 1024];
            loop {
                match stdin.read(&mut buffer) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if keys.send(buffer[..n].to_vec()).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        self.session.set_blocking(false);
        let mut stdout = std::io::stdout();
        let mut buffer = vec![0u8; 32 * 1024];
        let mut checked = Instant::now();
        let outcome = loop {
            let mut busy = false;
            match channel.read(&mut buffer) {
                Ok(0) if channel.eof() => break Ok(()),
                Ok(0) => {}
                Ok(n) => {
                    busy = true;
                    let _ = stdout.write_all(&buffer[..n]);
                    let _ = stdout.flush();
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => break Err(e),
            }
            if channel.eof() {
                break Ok(());
            }
            while let Ok(bytes) = typed.try_recv() {
                busy = true;
                let mut rest = &bytes[..];
                while !rest.is_empty() {
                    match channel.write(rest) {
                        Ok(n) => rest = &rest[n..],
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(2))
                        }
                        Err(_) => break,
                    }
                }
            }
            if checked.elapsed() > Duration::from_millis(200) {
                checked = Instant::now();
                let now = crate::terminal::size();
                if now != size {
                    // A window resize: the remote pty follows (its program gets SIGWINCH).
                    let mut tries = 0;
                    while let Err(e) = channel.request_pty_size(now.0, now.1, None, None) {
                        tries += 1;
                        if e.code() != ssh2::ErrorCode::Session(-37) || tries > 100 {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    size = now;
                }
            }
            if !busy {
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        self.session.set_blocking(true);
        if let Err(e) = outcome {
            return Err(Error::Connection {
                host: self.name.clone(),
                message: format!("connection lost during the console: {e}"),
                hint: None,
            });
        }
        channel
            .wait_close()
            .map_err(|e| self.channel_error("connection lost", e))?;
        channel
            .exit_status()
            .map_err(|e| self.channel_error("no exit status", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `deploy@web.example.com:2222`, nothing else configured.
    fn endpoint() -> Endpoint {
        Endpoint {
            user: "deploy".into(),
            host: "web.example.com".into(),
            port: 2222,
            identity_files: vec![],
            identities_only: false,
            agent: AgentSocket::None,
            user_known_hosts: vec![],
            global_known_hosts: vec![],
            host_key_alias: None,
            jumps: vec![],
            proxy_command: None,
            certificate_files: vec![],
            connect_timeout: None,
            family: Family::Any,
        }
    }

    #[test]
    fn fingerprints_match_ssh_keygen() {
        // `ssh-keygen -lf` of this public key printed the fingerprint below.
        let key = "AAAAC3NzaC1lZDI1NTE5AAAAIPhQ9xPMTC5K+2Uma//Nqw15btz09+a3RUngp/2lIXbR";
        let raw = decode(key);
        assert_eq!(base64(&raw), key);
        assert_eq!(
            fingerprint(&raw),
            "SHA256:rOrayjfdJ79T9DdmSQ5KgKhRlJLgvc+nxAPNwl19LwQ"
        );
    }

    fn decode(text: &str) -> Vec<u8> {
        const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut bits = 0u32;
        let mut count = 0;
        let mut out = Vec::new();
        for c in text.chars().filter(|c| *c != '=') {
            bits = (bits << 6) | ALPHABET.find(c).unwrap() as u32;
            count += 6;
            if count >= 8 {
                count -= 8;
                out.push((bits >> count) as u8);
                bits &= (1 << count) - 1;
            }
        }
        out
    }

    /// What each known_hosts verdict does with and without `--accept-new-host-key`: only an
    /// unknown key is ever recorded; revoked keys, changed keys and certificate-only hosts are
    /// refused (exit 3) and nothing is written.
    #[test]
    fn only_an_unknown_key_is_offered_for_trust_on_first_use() {
        let key = decode("AAAAC3NzaC1lZDI1NTE5AAAAIPhQ9xPMTC5K+2Uma//Nqw15btz09+a3RUngp/2lIXbR");
        let endpoint = endpoint();
        let dir = tempfile::tempdir().unwrap();
        let record_in = dir.path().join("known_hosts");
        let place = known_hosts::Place {
            file: PathBuf::from("/home/me/.ssh/known_hosts"),
            line: 7,
        };
        for accept_new in [false, true] {
            let refused = |verdict: Verdict| {
                let err = decide(verdict, &endpoint, &key, accept_new, &record_in).unwrap_err();
                assert_eq!(err.exit_code(), crate::error::EXIT_CONNECTION);
                assert!(!record_in.exists(), "a refused key was recorded");
                err.to_string()
            };
            let msg = refused(Verdict::Revoked(place.clone()));
            assert_eq!(
                msg,
                "web.example.com:2222: host key SHA256:rOrayjfdJ79T9DdmSQ5KgKhRlJLgvc+nxAPNwl19LwQ is REVOKED (/home/me/.ssh/known_hosts:7); refusing to connect"
            );
            let msg = refused(Verdict::Changed(place.clone()));
            assert!(msg.contains("HOST KEY HAS CHANGED"), "{msg}");
            assert!(msg.contains("/home/me/.ssh/known_hosts:7"), "{msg}");
            let msg = refused(Verdict::CertificateOnly(place.clone()));
            assert!(
                msg.starts_with("web.example.com:2222: /home/me/.ssh/known_hosts:7 trusts this host only through a @cert-authority key, and the server presented its plain ssh-ed25519 key"),
                "{msg}"
            );
        }
        let unknown = Verdict::Unknown {
            known_types: vec!["ecdsa-sha2-nistp256".into()],
        };
        let err = decide(unknown.clone(), &endpoint, &key, false, &record_in).unwrap_err();
        assert_eq!(
            err.to_string(),
            "web.example.com:2222: host key is unknown for ssh-ed25519 (SHA256:rOrayjfdJ79T9DdmSQ5KgKhRlJLgvc+nxAPNwl19LwQ); known_hosts holds only its ecdsa-sha2-nistp256 key; refusing to connect"
        );
        let line = "[web.example.com]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPhQ9xPMTC5K+2Uma//Nqw15btz09+a3RUngp/2lIXbR";
        assert!(err.hint().unwrap().contains(line), "{:?}", err.hint());
        assert!(!record_in.exists());
        // Another type known: not trusted on first use either (`ssh` says "changed").
        let err = decide(unknown, &endpoint, &key, true, &record_in).unwrap_err();
        assert!(
            err.hint().unwrap().contains("ssh-keygen -R"),
            "{:?}",
            err.hint()
        );
        assert!(!record_in.exists());
        let new = Verdict::Unknown {
            known_types: vec![],
        };
        decide(new, &endpoint, &key, true, &record_in).unwrap();
        assert_eq!(
            std::fs::read_to_string(&record_in).unwrap(),
            format!("{line}\n")
        );
    }

    /// As `ssh` orders them: certificates when a CA is trusted, then the types known_hosts
    /// holds a key of, then the rest.
    #[test]
    fn host_key_algorithms_ask_for_what_known_hosts_can_decide_on_first() {
        let endpoint = Endpoint {
            host: "web".into(),
            port: 22,
            ..endpoint()
        };
        let known = |text: &str| {
            let mut known = KnownHosts::default();
            known.add(Path::new("kh"), text.as_bytes());
            known
        };
        let rsa = "AAAAB3NzaC1yc2EAAAADAQABAAAAgQDQYOgnDKkYNDxaCnXNXgpdz0ahxNMAAXhEqxz5mOlCXAsRwrJ8cZwYhOn3YeVoynzGumq1mZqHpuyM0ny0gjDXtvoYeuqkJWrmR05HZUafP8w63OHrfIZN0Ddom0yLtRlpYwmAnM9hY6spc2fG8w99mZ8MpuAbwVB0mc8GbYAJ2w==";
        assert_eq!(
            host_key_preference(&known(""), &endpoint),
            HOST_KEY_PREFERENCE
        );
        let ecdsa = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBJ3CTYogcSBj3pNLhJBThbl/5lfLfsnAIPMXbf89xO8qndWv0j1/qVvBfqUa4DH1a5Tp3nAjn+qUj0cAk3ZtWXs=";
        assert_eq!(
            host_key_preference(&known(&format!("web {ecdsa}\nweb ssh-rsa {rsa}\n")), &endpoint),
            "ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256,ssh-rsa,ssh-ed25519,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521"
        );
        let preference =
            host_key_preference(&known(&format!("@cert-authority * {ecdsa}\n")), &endpoint);
        assert!(
            preference.starts_with("ssh-ed25519-cert-v01@openssh.com,"),
            "{preference}"
        );
        assert!(preference.ends_with(HOST_KEY_PREFERENCE), "{preference}");
    }
}
