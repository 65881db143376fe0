//! The subcommands: thin orchestration over config, build, plan and transport.

pub mod build;
pub mod deploy;
pub mod releases;
pub mod rollback;
