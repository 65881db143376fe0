//! The process managers' families (`pm_supervisor_*`, `pm_systemd_*`), each verb run on its own
//! with supervisorctl or systemctl stubbed.

pub(super) const COVERS: &[&str] = &[];

/// Verbs with no fast test yet: each one is work left, listed so the meta-test stays honest.
pub(super) const NOT_YET: &[&str] = &[
    "pm_supervisor_here",
    "pm_supervisor_init",
    "pm_supervisor_start",
    "pm_supervisor_seen",
    "pm_supervisor_dead",
    "pm_supervisor_status",
    "pm_supervisor_log",
    "pm_supervisor_wait",
    "pm_supervisor_stop_new",
    "pm_supervisor_stop_old",
    "pm_supervisor_reap",
    "pm_supervisor_draining",
    "pm_supervisor_installed",
    "pm_supervisor_check",
    "pm_supervisor_logs",
    "pm_systemd_here",
    "pm_systemd_init",
    "pm_systemd_dead",
    "pm_systemd_seen",
    "pm_systemd_status",
    "pm_systemd_log",
    "pm_systemd_start",
    "pm_systemd_wait",
    "pm_systemd_stop_new",
    "pm_systemd_stop_old",
    "pm_systemd_reap",
    "pm_systemd_check",
    "pm_systemd_logs",
    "pm_systemd_installed",
    "pm_systemd_draining",
];
