//! shipit: build a Django project into a reproducible release archive and deploy it atomically.
//!
//! The data flows one way: **config → resolve → build → plan → runner/transport → report**.
//! [`run`] is the whole program; `main.rs` only exits with its status.

pub mod build;
mod calendar;
pub mod cli;
mod commands;
pub mod config;
mod delta;
#[cfg(test)]
mod docs;
pub mod error;
mod image;
mod init;
mod interrupt;
mod manager;
mod migrations;
mod notify;
mod output;
pub mod plan;
mod provenance;
mod redact;
pub mod release;
mod remote;
mod resolve;
mod runner;
mod session;
mod templates;
mod terminal;
mod transport;

use std::ffi::OsString;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::error::{Error, EXIT_OK};
use crate::output::{Printer, Verbosity};

/// Parses `args`, runs the subcommand, prints any error and returns the exit status.
pub fn run(args: impl IntoIterator<Item = OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let verbosity = if cli.global.quiet {
        Verbosity::Quiet
    } else if cli.global.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    };
    let printer =
        Printer::new(verbosity, cli.global.json, cli.global.color).assume_yes(cli.global.yes);
    interrupt::install();
    match execute(&cli, &printer) {
        Ok(()) => EXIT_OK,
        Err(error) => {
            printer.error(&error);
            error.exit_code()
        }
    }
}

fn execute(cli: &Cli, printer: &Printer) -> Result<(), Error> {
    let dir = cli
        .global
        .project
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from("."));
    let config = || {
        Config::load(
            &Config::locate(&dir, cli.global.config.as_deref()),
            cli.global.project.as_deref(),
        )
    };
    match &cli.command {
        Command::Init(args) => commands::init::run(&dir, args, printer),
        Command::Completions(args) => {
            commands::completions::run(args);
            Ok(())
        }
        Command::Man(args) => commands::man::run(args, printer),
        Command::Config(args) => commands::config::run(&config()?, args, printer),
        Command::Build(args) => commands::build::run(&config()?, args, printer),
        Command::Deploy(args) => commands::deploy::run(&config()?, args, printer),
        Command::Rollback(args) => commands::rollback::run(&config()?, args, printer),
        Command::Releases(args) => commands::releases::run(&config()?, args, printer),
        Command::Lock(args) => commands::lock::run(&config()?, args, printer),
        Command::Db(args) => commands::db::run(&config()?, args, printer),
        Command::Audit(args) => commands::audit::run(&config()?, args, printer),
        Command::Run(args) => commands::run::run(&config()?, args, printer),
        Command::Console(args) => commands::run::run(
            &config()?,
            &cli::RunArgs {
                target: cli::TargetArg {
                    name: args.target.name.clone(),
                },
                hosts: args.hosts.clone(),
                primary: false,
                interactive: true,
                connection: cli::ConnectionArgs {
                    accept_new_host_key: args.connection.accept_new_host_key,
                },
                command: args.command.clone(),
            },
            printer,
        ),
        Command::Image(args) => commands::image::run(&config()?, args, printer),
        Command::Check(args) => commands::check::run(&config()?, args, printer),
        Command::Logs(args) => commands::logs::run(&config()?, args, printer),
        Command::Maintenance(args) => commands::maintenance::run(&config()?, args, printer),
        Command::Tls(args) => commands::tls::run(&config()?, args, printer),
    }
}
