//! `shipit completions`: the shell completion script clap_complete generates from the same clap
//! definitions `--help` comes from, so completions never drift from the commands.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::{generate, shells};

use crate::cli::{Cli, CompletionsArgs, Shell};

/// Writes the completion script for `args.shell` to stdout.
pub(crate) fn run(args: &CompletionsArgs) {
    let mut command = Cli::command();
    // Generated into memory first: clap_complete panics on a failed write, and a closed stdout
    // (`shipit completions bash | head`) is not an error worth a panic.
    let mut script = Vec::new();
    match args.shell {
        Shell::Bash => generate(shells::Bash, &mut command, "shipit", &mut script),
        Shell::Zsh => generate(shells::Zsh, &mut command, "shipit", &mut script),
        Shell::Fish => generate(shells::Fish, &mut command, "shipit", &mut script),
    }
    let _ = std::io::stdout().lock().write_all(&script);
}
