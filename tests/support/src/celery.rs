//! A Celery-shaped project for the process tests (tests/it/processes.rs under supervisor,
//! tests/it/systemd.rs under systemd): the example project's worker and its `pages.tasks.record`
//! task (requirements/celery.txt, hello/celery.py, pages/tasks.py), sent through a real Redis,
//! and what the task leaves in `shared/var/tasks.log`.

use std::path::Path;
use std::time::Duration;

use crate::*;

/// How long a task may take to show up in var/tasks.log.
pub const TASK_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a per-minute schedule entry may take to fire (up to a minute, plus a start).
pub const MINUTE_TIMEOUT: Duration = Duration::from_secs(90);

/// A worker that takes one task at a time and talks to no other worker.
pub const WORKER: &str =
    "celery -A hello.celery worker -l info --concurrency 1 --without-gossip --without-mingle --without-heartbeat";

/// The target's env (the broker) and processes, as lines of `[targets.test]`.
pub fn celery_toml(redis: &Redis, env: &str, processes: &str) -> String {
    format!(
        "env = {{ CELERY_BROKER_URL = {:?}{env} }}\n\n[targets.test.processes]\n{processes}",
        redis.url()
    )
}

/// Sends `pages.tasks.record(tag, hold)` with the code and environment of `current`.
pub fn send(deploy_to: &Path, tag: &str, hold: &str) {
    let args = serde_json::to_string(&[tag, hold]).unwrap();
    run_as_deploy_ok(&format!(
        "cd {}/current && set -a && . ./.shipit/env && set +a && \
         DJANGO_SETTINGS_MODULE=hello.settings.selected \
         .venv/bin/celery -A hello.celery call pages.tasks.record --args {}",
        shell_quote(&deploy_to.display().to_string()),
        shell_quote(&args)
    ));
}

pub fn task_log(deploy_to: &Path) -> String {
    std::fs::read_to_string(deploy_to.join("shared/var/tasks.log")).unwrap_or_default()
}

/// Waits until var/tasks.log has a line starting with `prefix`; panics with the log and the
/// worker's output otherwise.
pub fn wait_line(deploy_to: &Path, prefix: &str) -> String {
    wait_for(TASK_TIMEOUT, || {
        task_log(deploy_to)
            .lines()
            .find(|l| l.starts_with(prefix))
            .map(str::to_string)
    })
    .unwrap_or_else(|| {
        panic!(
            "no line `{prefix}` in tasks.log:\n{}\nworker log:\n{}",
            task_log(deploy_to),
            std::fs::read_to_string(deploy_to.join("shared/log/hello-worker.log"))
                .unwrap_or_default()
        )
    })
}

/// Processes on this machine whose command line contains `needle` and that run in a release
/// of `deploy_to` (their working directory is below it: a fleet's hosts all use its path), so
/// that tests running at the same time do not count each other's.
pub fn processes_running(needle: &str, deploy_to: &Path) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .chars()
            .all(|c| c.is_ascii_digit())
        {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let line = String::from_utf8_lossy(&raw).replace('\0', " ");
        let here = std::fs::read_link(entry.path().join("cwd"))
            .is_ok_and(|cwd| cwd.starts_with(deploy_to));
        if line.contains(needle) && here {
            count += 1;
        }
    }
    count
}
