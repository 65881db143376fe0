//! nginx with a private main config, running as the deploy user: the web server a deploy
//! installs its site into, tests (`nginx -t`) and reloads over SSH, as on a real host, without
//! touching the machine's own nginx.

use super::process::{self, stop_tree};
use super::{deploy_command, deploy_owned_tempdir_with_prefix, mkdir_as_deploy, read_lossy};
use super::{shell_quote, wait_for, write_as_deploy};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

const NGINX: &str = "/usr/sbin/nginx"; // not on the deploy user's PATH
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// An nginx master (and workers) running as deploy, listening on nothing until a site in
/// `sites_dir` says so. Everything (pid, logs, temp paths) lives in `dir`, which deploy owns.
pub struct Nginx {
    /// Owned by deploy, mode 0755: nginx.conf, nginx.pid, error.log, access.log, tmp/, sites/.
    pub dir: tempfile::TempDir,
    /// The main config (`nginx -c`).
    pub conf: PathBuf,
    /// `include`d as `sites_dir/*.conf` inside `http {}`; owned by deploy, mode 0755.
    pub sites_dir: PathBuf,
    child: Option<Child>,
    error_log: PathBuf,
}

impl Nginx {
    /// Start nginx as deploy and return once its pid file names the master we started.
    pub fn start() -> Nginx {
        let mut nginx = Nginx::configure();
        nginx.spawn();
        nginx
    }

    /// nginx's files (config, logs, temp paths, an empty sites dir), without the daemon:
    /// [`Nginx::start`] runs it as a child of the test; a
    /// [`SystemdHost`](crate::systemd::SystemdHost) runs [`Nginx::daemon_command`] as a unit.
    pub(crate) fn configure() -> Nginx {
        let dir = deploy_owned_tempdir_with_prefix("shipit-nginx-");
        let d = dir.path().to_path_buf();
        let conf = d.join("nginx.conf");
        let sites_dir = d.join("sites");
        let error_log = d.join("error.log");
        let pid_file = d.join("nginx.pid");
        mkdir_as_deploy(&sites_dir);
        mkdir_as_deploy(&d.join("tmp"));
        let tmp = |name: &str| {
            let p = d.join("tmp").join(name);
            mkdir_as_deploy(&p);
            p.display().to_string()
        };
        // No `user` directive (non-root nginx warns about it); no server here, so nginx
        // listens nowhere until a site conf is added.
        let text = format!(
            "# Private nginx for shipit integration tests (runs as the deploy user).\n\
             daemon off;\n\
             master_process on;\n\
             worker_processes 1;\n\
             pid {pid};\n\
             error_log {error_log} notice;\n\
             \n\
             events {{\n    worker_connections 256;\n}}\n\
             \n\
             http {{\n\
             \x20   include /etc/nginx/mime.types;\n\
             \x20   default_type application/octet-stream;\n\
             \x20   access_log {access_log};\n\
             \x20   client_body_temp_path {client_body};\n\
             \x20   proxy_temp_path {proxy};\n\
             \x20   fastcgi_temp_path {fastcgi};\n\
             \x20   uwsgi_temp_path {uwsgi};\n\
             \x20   scgi_temp_path {scgi};\n\
             \x20   include {sites}/*.conf;\n\
             }}\n",
            pid = pid_file.display(),
            error_log = error_log.display(),
            access_log = d.join("access.log").display(),
            client_body = tmp("client_body"),
            proxy = tmp("proxy"),
            fastcgi = tmp("fastcgi"),
            uwsgi = tmp("uwsgi"),
            scgi = tmp("scgi"),
            sites = sites_dir.display(),
        );
        write_as_deploy(&conf, text);
        for f in ["error.log", "access.log", "nginx.out"] {
            write_as_deploy(&d.join(f), "");
        }
        Nginx {
            dir,
            conf,
            sites_dir,
            child: None,
            error_log,
        }
    }

    fn spawn(&mut self) {
        let d = self.dir.path().to_path_buf();
        let out = std::fs::File::create(d.join("nginx.out")).expect("nginx.out");
        let mut child = deploy_command(NGINX)
            .arg("-e")
            .arg(&self.error_log)
            .arg("-c")
            .arg(&self.conf)
            .current_dir(&d)
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("spawn nginx as deploy");
        let pid = child.id().to_string();
        let pid_file = self.pid_file();
        // The pid file is written after the config is parsed and sockets are bound.
        let ready = wait_for(START_TIMEOUT, || match child.try_wait() {
            Ok(Some(status)) => Some(Err(format!("nginx exited with {status}"))),
            Err(e) => Some(Err(e.to_string())),
            Ok(None) => (read_lossy(&pid_file).trim() == pid).then_some(Ok(())),
        });
        self.child = Some(child);
        if !matches!(ready, Some(Ok(()))) {
            self.stop();
            panic!(
                "nginx did not start ({ready:?})\nnginx.out: {}\nerror.log: {}",
                read_lossy(&d.join("nginx.out")),
                self.error_log()
            );
        }
    }

    /// The master's pid file (written once the config is parsed and the sockets are bound).
    pub(crate) fn pid_file(&self) -> PathBuf {
        self.dir.path().join("nginx.pid")
    }

    /// The command line of the master in the foreground (`daemon off` is in the config):
    /// `nginx -e LOG -c CONF`. Run it as deploy.
    pub(crate) fn daemon_command(&self) -> String {
        format!(
            "{NGINX} -e {} -c {}",
            shell_quote(&self.error_log.display().to_string()),
            shell_quote(&self.conf.display().to_string())
        )
    }

    /// Shell command testing the config (`nginx -e LOG -q -t -c CONF`); run it as deploy
    /// (as root it would create root-owned files in `dir`). Exits non-zero on a broken config.
    pub fn test_command(&self) -> String {
        format!("{} -q -t", self.daemon_command())
    }

    /// Shell command reloading the config (`nginx -e LOG -c CONF -s reload`); run it as deploy.
    /// It only sends SIGHUP: the new config is live shortly AFTER it returns (poll), and a
    /// broken config is logged to `error.log` and ignored, so run `test_command()` first.
    pub fn reload_command(&self) -> String {
        format!("{} -s reload", self.daemon_command())
    }

    /// Path of nginx's error log.
    pub fn error_log_path(&self) -> &Path {
        &self.error_log
    }

    /// Contents of nginx's error log.
    pub fn error_log(&self) -> String {
        read_lossy(&self.error_log)
    }

    /// Graceful quit (SIGQUIT), wait up to 5 s, then SIGKILL master and workers. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_tree(&mut child, Duration::from_secs(5), |pid| {
                process::signal(pid, "QUIT");
            });
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}
