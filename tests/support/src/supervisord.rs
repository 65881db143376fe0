//! supervisord with a private config and unix socket, running as the deploy user: the process
//! manager a deploy hands each release's gunicorn to, without touching the machine's own.

use super::process::{self, stop_tree};
use super::{deploy_command, deploy_owned_tempdir_with_prefix, mkdir_as_deploy, read_lossy};
use super::{shell_quote, wait_for, write_as_deploy};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SUPERVISORD: &str = "/usr/bin/supervisord";
const SUPERVISORCTL: &str = "/usr/bin/supervisorctl";
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A supervisord (nodaemon, so it is our direct child) running as deploy; its programs run as
/// deploy too (no `user=` needed) and inherit HOME/USER/PATH of the deploy user.
pub struct Supervisord {
    /// Owned by deploy, mode 0755: supervisord.conf, supervisor.sock, pid, logs/, conf.d/.
    pub dir: tempfile::TempDir,
    /// The config (`supervisorctl -c CONF`).
    pub conf: PathBuf,
    /// `[include] files = include_dir/*.conf`; owned by deploy, mode 0755.
    pub include_dir: PathBuf,
    child: Option<Child>,
}

impl Supervisord {
    /// Start supervisord as deploy; returns once `supervisorctl status` answers (exit 0 or 3).
    pub fn start() -> Supervisord {
        let dir = deploy_owned_tempdir_with_prefix("shipit-supervisor-");
        let d = dir.path().to_path_buf();
        let conf = d.join("supervisord.conf");
        let include_dir = d.join("conf.d");
        let log_dir = d.join("logs");
        mkdir_as_deploy(&include_dir);
        mkdir_as_deploy(&log_dir);
        let sock = d.join("supervisor.sock");
        let text = format!(
            "; Private supervisord for shipit integration tests (runs as the deploy user).\n\
             [unix_http_server]\n\
             file={sock}\n\
             chmod=0700\n\
             \n\
             [supervisord]\n\
             nodaemon=true\n\
             pidfile={pid}\n\
             logfile={log}\n\
             childlogdir={log_dir}\n\
             directory={dir}\n\
             minfds=256\n\
             minprocs=64\n\
             \n\
             [rpcinterface:supervisor]\n\
             supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\
             \n\
             [supervisorctl]\n\
             serverurl=unix://{sock}\n\
             \n\
             [include]\n\
             files = {include}/*.conf\n",
            sock = sock.display(),
            pid = d.join("supervisord.pid").display(),
            log = log_dir.join("supervisord.log").display(),
            log_dir = log_dir.display(),
            dir = d.display(),
            include = include_dir.display(),
        );
        write_as_deploy(&conf, text);
        write_as_deploy(&d.join("supervisord.out"), "");

        let out = std::fs::File::create(d.join("supervisord.out")).expect("supervisord.out");
        let child = deploy_command(SUPERVISORD)
            .arg("-n")
            .arg("-c")
            .arg(&conf)
            .current_dir(&d)
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("spawn supervisord as deploy");
        let mut sup = Supervisord {
            dir,
            conf,
            include_dir,
            child: Some(child),
        };
        let ctl = sup.ctl_command();
        let ready = wait_for(START_TIMEOUT, || {
            if let Some(status) = sup.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Some(Err(format!("supervisord exited with {status}")));
            }
            // Asked as deploy, like the deploy tool will.
            let code = deploy_command("/bin/sh")
                .arg("-c")
                .arg(format!("{ctl} status"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .ok()?
                .code();
            matches!(code, Some(0) | Some(3)).then_some(Ok(()))
        });
        if !matches!(ready, Some(Ok(()))) {
            sup.stop();
            panic!(
                "supervisord did not start ({ready:?})\nsupervisord.out: {}\nlog: {}",
                read_lossy(&d.join("supervisord.out")),
                read_lossy(&log_dir.join("supervisord.log"))
            );
        }
        sup
    }

    /// `/usr/bin/supervisorctl -c CONF` — append a subcommand (`reread`, `update`,
    /// `status NAME`, `restart NAME`, ...) and run it as deploy (root can too).
    pub fn ctl_command(&self) -> String {
        format!(
            "{SUPERVISORCTL} -c {}",
            shell_quote(&self.conf.display().to_string())
        )
    }

    /// supervisord's own log.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join("logs").join("supervisord.log"))
    }

    /// `supervisorctl shutdown` (supervisord stops its programs, SIGTERM then SIGKILL after
    /// each program's `stopwaitsecs`), wait up to 15 s, then SIGKILL supervisord and every
    /// process that was under it. Idempotent.
    pub fn stop(&mut self) {
        let ctl = self.conf.clone();
        if let Some(mut child) = self.child.take() {
            stop_tree(&mut child, Duration::from_secs(15), |pid| {
                let asked = Command::new(SUPERVISORCTL)
                    .arg("-c")
                    .arg(&ctl)
                    .arg("shutdown")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if !asked {
                    process::signal(pid, "TERM");
                }
            });
        }
    }
}

impl Drop for Supervisord {
    fn drop(&mut self) {
        self.stop();
    }
}
