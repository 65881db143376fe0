//! The app server: what serves the Django app on the release's socket (`.shipit/app.sock`) as
//! the `web` process. gunicorn today; an ASGI server (issue 25) is a variant here, and the
//! process managers ask it what they need instead of knowing gunicorn.

use crate::config::{Process, Target, WEB_ROLE};

/// A target's app server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppServer {
    /// gunicorn, started by the manager's template (`supervisor.conf.j2`, `systemd.run.sh.j2`).
    Gunicorn,
}

impl AppServer {
    /// The app server of `target`.
    pub(crate) fn of(_target: &Target) -> AppServer {
        AppServer::Gunicorn
    }

    /// Its name: the shell's `server_NAME_*` family (`templates/remote/server/NAME.sh`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            AppServer::Gunicorn => "gunicorn",
        }
    }

    /// The web app server as a process, for managers that run every process alike (systemd's
    /// units): its command is written by the manager's template (`run` is empty); its stop
    /// timeout is the server's graceful timeout and some.
    pub(crate) fn web_process(self, target: &Target) -> Process {
        match self {
            AppServer::Gunicorn => {
                let graceful = target
                    .vars
                    .get("graceful_timeout")
                    .and_then(toml::Value::as_integer)
                    .unwrap_or(30);
                Process {
                    run: String::new(),
                    role: WEB_ROLE.to_string(),
                    replicas: 1,
                    stop_timeout: u32::try_from(graceful).unwrap_or(30).saturating_add(5),
                    once: false,
                }
            }
        }
    }
}
