//! Pebble, Let's Encrypt's test ACME server (Debian's `pebble`), on free loopback ports: the CA
//! the HTTPS tests have certbot on the target host ask for certificates. Its own listener has a
//! self-signed certificate made here with openssl ([`Pebble::listener_ca`], which certbot is
//! told to trust), it validates http-01 by connecting to the domain on `http_port` (the site's
//! port 80, so use a name that resolves to 127.0.0.1: `localhost`), without the random sleeps
//! (`PEBBLE_VA_NOSLEEP`), and its root, which signs what it issues, is [`Pebble::root`].

use super::process::stop_tree;
use super::{free_port, wait_for};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running pebble; stopped when dropped.
pub struct Pebble {
    /// World-readable: the config, the listener's certificate and key, the root, pebble.out.
    pub dir: tempfile::TempDir,
    /// The ACME directory URL (`https://127.0.0.1:PORT/dir`).
    pub directory: String,
    /// The management port (`/roots/0`).
    pub management_port: u16,
    child: Option<Child>,
}

impl Pebble {
    /// Starts pebble validating http-01 challenges on `http_port`, issuing certificates valid
    /// for pebble's default (five years).
    pub fn start(http_port: u16) -> Pebble {
        Pebble::start_with(http_port, None)
    }

    /// [`Pebble::start`] issuing certificates valid for `seconds` only: a renewal falls due
    /// (a third of the lifetime left) within the test.
    pub fn short_lived(http_port: u16, seconds: u64) -> Pebble {
        Pebble::start_with(http_port, Some(seconds))
    }

    fn start_with(http_port: u16, validity: Option<u64>) -> Pebble {
        let dir = tempfile::Builder::new()
            .prefix("shipit-pebble-")
            .tempdir()
            .expect("pebble tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let d = dir.path();
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=pebble listener"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .arg("-keyout")
            .arg(d.join("listener.key"))
            .arg("-out")
            .arg(d.join("listener.pem"))
            .output()
            .expect("run openssl");
        assert!(made.status.success(), "openssl: {made:?}");
        for file in ["listener.key", "listener.pem"] {
            std::fs::set_permissions(d.join(file), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let port = free_port();
        let management_port = free_port();
        let mut config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{port}"),
                "managementListenAddress": format!("127.0.0.1:{management_port}"),
                "certificate": d.join("listener.pem"),
                "privateKey": d.join("listener.key"),
                "httpPort": http_port,
                "tlsPort": free_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        if let Some(seconds) = validity {
            config["pebble"]["certificateValidityPeriod"] = seconds.into();
        }
        std::fs::write(d.join("pebble.json"), config.to_string()).unwrap();
        let out = std::fs::File::create(d.join("pebble.out")).unwrap();
        let child = Command::new("pebble")
            .arg("-config")
            .arg(d.join("pebble.json"))
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn pebble (apt-get install pebble)");
        let mut pebble = Pebble {
            dir,
            directory: format!("https://127.0.0.1:{port}/dir"),
            management_port,
            child: Some(child),
        };
        let up = wait_for(Duration::from_secs(15), || {
            [port, management_port]
                .iter()
                .all(|p| {
                    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, *p));
                    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                })
                .then_some(())
        });
        if up.is_none() {
            pebble.stop();
            panic!("pebble did not start: {}", pebble.log());
        }
        pebble
    }

    /// The certificate of pebble's own listener, for certbot (`REQUESTS_CA_BUNDLE`).
    pub fn listener_ca(&self) -> PathBuf {
        self.dir.path().join("listener.pem")
    }

    /// The root that signs what pebble issues (a new one each start), fetched from the
    /// management port.
    pub fn root(&self) -> PathBuf {
        let path = self.dir.path().join("root.pem");
        if !path.exists() {
            let got = Command::new("curl")
                .args(["-sSf", "--cacert"])
                .arg(self.listener_ca())
                .arg("-o")
                .arg(&path)
                .arg(format!(
                    "https://127.0.0.1:{}/roots/0",
                    self.management_port
                ))
                .output()
                .expect("run curl");
            assert!(got.status.success(), "GET /roots/0: {got:?}");
        }
        path
    }

    /// What pebble printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.out")).unwrap_or_default()
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_tree(&mut child, Duration::from_secs(5), |pid| {
                super::process::signal(pid, "TERM");
            });
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
    }
}
