//! The SSH transport: one authenticated `ssh2` session per host, one channel per script.
//!
//! Safe by default: the host key must match `~/.ssh/known_hosts` (or the target's own
//! known_hosts file), read as OpenSSH reads it ([`known_hosts`]). A key unknown for its type is
//! refused with its fingerprint and the exact line that would trust it, unless the user opted
//! into `--accept-new-host-key`; a changed key, a `@revoked` key and a host trusted only
//! through `@cert-authority` are always refused. `~/.ssh/config` Host aliases (HostName, User, Port, IdentityFile) are honoured.
//! Authentication tries ssh-agent, then the configured key, then the usual `~/.ssh/id_*`.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use ssh2::{MethodType, Session};

use crate::config::HostSpec;
use crate::error::{Error, Result};
use crate::plan::{base64, quote};

use super::{for_each_line, OnLine, Transport, Usage};

mod known_hosts;

use known_hosts::{KnownHosts, Verdict};

/// How long to wait for TCP connect, handshake and authentication.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Host key algorithms in OpenSSH's order of preference, so the key libssh2 negotiates is the
/// one `ssh` would have recorded in known_hosts.
const HOST_KEY_PREFERENCE: &str = "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256,ssh-rsa";

/// How to connect and what to trust.
#[derive(Debug, Clone, Default)]
pub struct SshOptions {
    /// Key file from the target's configuration.
    pub identity_file: Option<PathBuf>,
    /// known_hosts file from the target's configuration (trusted besides ~/.ssh/known_hosts,
    /// and where new keys go when it is set).
    pub known_hosts: Option<PathBuf>,
    /// Trust and record a host key that no known_hosts file mentions.
    pub accept_new_host_key: bool,
}

/// Where a host spec leads once `~/.ssh/config` has been applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Login user.
    pub user: String,
    /// Host name or address to connect to.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Key files named by ssh config, in order.
    pub identity_files: Vec<PathBuf>,
}

impl Endpoint {
    /// Resolves `spec` against the parsed `~/.ssh/config`, if there is one. Values in the spec
    /// win over the config, as on the `ssh` command line.
    pub fn resolve(spec: &HostSpec, config: Option<&ssh2_config::SshConfig>) -> Endpoint {
        let params = config.map(|c| c.query(&spec.host));
        let user = spec
            .user
            .clone()
            .or_else(|| params.as_ref().and_then(|p| p.user.clone()))
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "root".into());
        let host = params
            .as_ref()
            .and_then(|p| p.host_name.clone())
            .unwrap_or_else(|| spec.host.clone());
        let port = spec
            .port
            .or_else(|| params.as_ref().and_then(|p| p.port))
            .unwrap_or(22);
        let identity_files = params.and_then(|p| p.identity_file).unwrap_or_default();
        Endpoint {
            user,
            host,
            port,
            identity_files,
        }
    }

    fn display(&self) -> String {
        if self.host.contains(':') {
            format!("{}@[{}]:{}", self.user, self.host, self.port)
        } else {
            format!("{}@{}:{}", self.user, self.host, self.port)
        }
    }

    /// The host as known_hosts writes it: `host` on port 22, `[host]:port` elsewhere.
    pub fn known_hosts_name(&self) -> String {
        if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        }
    }
}

/// An authenticated SSH session to one host.
pub struct Ssh {
    name: String,
    session: Session,
    usage: Usage,
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

fn user_ssh_config() -> Option<ssh2_config::SshConfig> {
    let path = home()?.join(".ssh/config");
    let file = File::open(path).ok()?;
    let mut reader = std::io::BufReader::new(file);
    ssh2_config::SshConfig::default()
        .parse(&mut reader, ssh2_config::ParseRule::ALLOW_UNKNOWN_FIELDS)
        .ok()
}

impl Ssh {
    /// Connects, verifies the host key and authenticates.
    pub fn connect(spec: &HostSpec, options: &SshOptions) -> Result<Ssh> {
        let config = user_ssh_config();
        let endpoint = Endpoint::resolve(spec, config.as_ref());
        let name = endpoint.display();
        let fail = |message: String, hint: Option<&str>| Error::Connection {
            host: name.clone(),
            message,
            hint: hint.map(str::to_string),
        };

        let addresses: Vec<_> = (endpoint.host.as_str(), endpoint.port)
            .to_socket_addrs()
            .map_err(|e| {
                fail(
                    format!("cannot resolve {}: {e}", endpoint.host),
                    Some("check the host name in `hosts` or ~/.ssh/config"),
                )
            })?
            .collect();
        let mut last_error = None;
        let mut stream = None;
        for address in &addresses {
            match TcpStream::connect_timeout(address, CONNECT_TIMEOUT) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last_error = Some(e),
            }
        }
        let stream = stream.ok_or_else(|| {
            fail(
                format!(
                    "cannot connect: {}",
                    last_error.map_or_else(|| "no address".to_string(), |e| e.to_string())
                ),
                Some(
                    "is the host up and sshd listening on that port? check `hosts` in shipit.toml",
                ),
            )
        })?;
        keep_alive(&stream);

        let mut session =
            Session::new().map_err(|e| fail(format!("cannot start ssh: {e}"), None))?;
        session.set_tcp_stream(stream);
        session.set_timeout(CONNECT_TIMEOUT.as_millis() as u32);
        let _ = session.method_pref(MethodType::HostKey, HOST_KEY_PREFERENCE);
        session.handshake().map_err(|e| {
            fail(
                format!("ssh handshake failed: {}", e.message()),
                Some("is this an SSH server? check the port"),
            )
        })?;

        verify_host_key(&session, &endpoint, options)?;
        authenticate(&session, &endpoint, options).map_err(|tried| {
            fail(
                format!("authentication as `{}` failed (tried {tried})", endpoint.user),
                Some("check the user in `hosts`, set `identity_file` in the target, or load the key into ssh-agent"),
            )
        })?;
        // Long steps (pip, migrate) must not time out; TCP keepalive detects a dead peer instead.
        session.set_timeout(0);
        Ok(Ssh {
            name,
            session,
            usage: Usage {
                connections: 1,
                ..Usage::default()
            },
        })
    }

    fn channel_error(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::Connection {
            host: self.name.clone(),
            message: format!("{what}: {e}"),
            hint: Some("the connection was lost. A deploy that did not switch left `current` as it was; run it again. If the host could not give its lock back (the connection dropped between steps), the next run says another deploy is running: add --break-lock".into()),
        }
    }
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

fn verify_host_key(session: &Session, endpoint: &Endpoint, options: &SshOptions) -> Result<()> {
    let name = endpoint.display();
    let (key, _) = session.host_key().ok_or_else(|| Error::Connection {
        host: name.clone(),
        message: "the server sent no host key".into(),
        hint: None,
    })?;
    let user_file = home().map(|h| h.join(".ssh/known_hosts"));
    let files: Vec<PathBuf> = options
        .known_hosts
        .iter()
        .cloned()
        .chain(user_file.clone())
        .collect();
    let known = KnownHosts::load(&files).map_err(|(file, e)| Error::Connection {
        host: name.clone(),
        message: format!("cannot read {}: {e}", file.display()),
        hint: None,
    })?;
    for warning in &known.warnings {
        eprintln!("warning: {warning}");
    }
    let record_in = options
        .known_hosts
        .clone()
        .or(user_file)
        .unwrap_or_else(|| PathBuf::from("known_hosts"));
    decide(
        known.check(&endpoint.host, endpoint.port, key),
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
            known_hosts: place.file,
            line: place.line,
        }),
        Verdict::Unknown { known_types } => {
            let key_type = known_hosts::blob_type(key).unwrap_or_else(|| "unknown".into());
            let line = format!("{} {key_type} {}", endpoint.known_hosts_name(), base64(key));
            if accept_new {
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

/// Tries the agent, then key files; returns what was tried when nothing worked.
fn authenticate(
    session: &Session,
    endpoint: &Endpoint,
    options: &SshOptions,
) -> std::result::Result<(), String> {
    let mut tried = Vec::new();
    if std::env::var_os("SSH_AUTH_SOCK").is_some() {
        tried.push("ssh-agent".to_string());
        if session.userauth_agent(&endpoint.user).is_ok() && session.authenticated() {
            return Ok(());
        }
    }
    let mut candidates: Vec<PathBuf> = options.identity_file.iter().cloned().collect();
    candidates.extend(endpoint.identity_files.iter().cloned());
    if let Some(home) = home() {
        for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
            candidates.push(home.join(".ssh").join(name));
        }
    }
    for key in candidates {
        let explicit = options.identity_file.as_ref() == Some(&key);
        if !key.is_file() {
            if explicit {
                tried.push(format!("{} (no such file)", key.display()));
            }
            continue;
        }
        tried.push(key.display().to_string());
        if session
            .userauth_pubkey_file(&endpoint.user, None, &key, None)
            .is_ok()
            && session.authenticated()
        {
            return Ok(());
        }
    }
    if tried.is_empty() {
        tried.push("no agent and no key file".into());
    }
    Err(tried.join(", "))
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
        for_each_line(channel.stream(0), &mut input, on_line)
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

    fn upload(&mut self, local: &Path, remote: &str, progress: &mut dyn FnMut(u64)) -> Result<()> {
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
            progress(sent);
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

    fn usage(&self) -> Usage {
        self.usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let endpoint = Endpoint {
            user: "deploy".into(),
            host: "web.example.com".into(),
            port: 2222,
            identity_files: vec![],
        };
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
                msg.starts_with("web.example.com:2222: host certificates are not supported: /home/me/.ssh/known_hosts:7"),
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
        decide(unknown, &endpoint, &key, true, &record_in).unwrap();
        assert_eq!(
            std::fs::read_to_string(&record_in).unwrap(),
            format!("{line}\n")
        );
    }

    #[test]
    fn endpoint_prefers_spec_over_ssh_config() {
        let text =
            "Host web\n  HostName 10.0.0.5\n  User alice\n  Port 2222\n  IdentityFile /keys/web\n";
        let config = ssh2_config::SshConfig::default()
            .parse(
                &mut text.as_bytes(),
                ssh2_config::ParseRule::ALLOW_UNKNOWN_FIELDS,
            )
            .unwrap();
        let alias = Endpoint::resolve(&HostSpec::parse("web").unwrap(), Some(&config));
        assert_eq!(alias.user, "alice");
        assert_eq!(alias.host, "10.0.0.5");
        assert_eq!(alias.port, 2222);
        assert_eq!(alias.identity_files, vec![PathBuf::from("/keys/web")]);
        let explicit = Endpoint::resolve(&HostSpec::parse("bob@web:22").unwrap(), Some(&config));
        assert_eq!((explicit.user.as_str(), explicit.port), ("bob", 22));
        assert_eq!(explicit.known_hosts_name(), "10.0.0.5");
        assert_eq!(alias.known_hosts_name(), "[10.0.0.5]:2222");
    }
}
