//! The app server: what serves the Django app on the release's socket (`.shipit/app.sock`) as
//! the `web` process: gunicorn with WSGI, or uvicorn with ASGI. The process managers ask it
//! what they need instead of knowing either.
//!
//! uvicorn runs as gunicorn's worker class (the `uvicorn-worker` package), so both servers share
//! gunicorn's arbiter: the per-release unix socket with its umask, `--graceful-timeout` on
//! SIGTERM, the log format and the options a gunicorn version needs. At its graceful stop
//! uvicorn closes open websockets at once with code 1012 (service restart), and the arbiter
//! kills what is still running at the graceful timeout; clients reconnect through nginx, which
//! by then connects to the new release.

use crate::config::{Config, Process, Server, Target, WEB_ROLE};

/// A target's app server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppServer {
    /// gunicorn, started by the manager's template (`supervisor.conf.j2`, `systemd.run.sh.j2`).
    Gunicorn,
    /// uvicorn workers under gunicorn, started by the same templates.
    Uvicorn,
}

/// The worker class gunicorn runs for uvicorn.
const UVICORN_WORKER: &str = "uvicorn_worker.UvicornWorker";

impl AppServer {
    /// The app server of `target`.
    pub(crate) fn of(target: &Target) -> AppServer {
        match target.server {
            Server::Gunicorn => AppServer::Gunicorn,
            Server::Uvicorn => AppServer::Uvicorn,
        }
    }

    /// Its name: the shell's `server_NAME_*` family (`templates/remote/server/NAME.sh`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            AppServer::Gunicorn => "gunicorn",
            AppServer::Uvicorn => "uvicorn",
        }
    }

    /// The application gunicorn loads (`server_app` in the templates).
    pub(crate) fn app(self, config: &Config) -> &str {
        match self {
            AppServer::Gunicorn => &config.project.wsgi_app,
            AppServer::Uvicorn => &config.project.asgi_app,
        }
    }

    /// The options gunicorn gets for this server (`server_options` in the templates).
    pub(crate) fn options(self) -> String {
        match self {
            AppServer::Gunicorn => String::new(),
            AppServer::Uvicorn => format!("--worker-class {UVICORN_WORKER}"),
        }
    }

    /// The web app server as a process, for managers that run every process alike (systemd's
    /// units): its command is written by the manager's template (`run` is empty); its stop
    /// timeout is gunicorn's graceful timeout (both servers run under its arbiter) and some.
    pub(crate) fn web_process(self, target: &Target) -> Process {
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
