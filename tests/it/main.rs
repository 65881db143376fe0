//! The integration tests: one binary (one link of the crate and the harness instead of one per
//! file), a module per feature. Run one with `cargo test --test it deploy::`.

mod bad_input;
mod break_lock;
mod build;
mod current_link;
mod deploy;
mod faults;
mod fleet_errors;
mod fleet_locks;
mod fleet_recovery;
mod fleet_split;
mod harness;
mod image;
mod lock_race;
mod lockfile;
mod operate;
mod operate_build;
mod operate_check;
mod operate_deploy_log;
mod operate_fleet;
mod operate_hooks;
mod operate_logs;
mod operate_maintenance;
mod portability;
mod postgres;
mod processes;
mod provenance;
mod rollback;
mod runtime;
mod ssh;
mod ssh_access;
mod systemd;
mod systemd_host;
mod tls;
mod wheel;
mod zero_downtime;
