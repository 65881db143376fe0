//! Command-line arguments: what the user typed, validated by clap and nothing more.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Exit status:
  0  success
  1  a build, deploy or rollback step failed (hosts stay on their previous release)
  2  bad usage, configuration, template or project content (no host was touched)
  3  a host could not be reached, authenticated or verified
  4  another deploy holds the lock

Examples:
  shipit build --target staging          build the archive for staging
  shipit build --target production --json
";

/// Build a Django project into a reproducible release archive and deploy it atomically.
#[derive(Debug, Parser)]
#[command(name = "shipit", version, about, after_help = AFTER_HELP, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Project directory holding shipit.toml [default: current directory]
    #[arg(short = 'C', long = "project", global = true, value_name = "DIR")]
    pub project: Option<PathBuf>,
    /// Configuration file [default: DIR/shipit.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print only errors (and the result)
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print remote output as it happens
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Print the result as one JSON object on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// When to use colours
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// When to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// When stderr is a terminal and NO_COLOR is unset.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the release archive: tracked files, rendered deploy.map files and a manifest.
    ///
    /// The archive holds what git tracks in the project (or, outside git, what an ignore-aware
    /// walk finds), minus `exclude` patterns and secret-looking files (.env, local.py, *.pem, ...),
    /// plus the deploy.map templates rendered for the target, plus .shipit/manifest.json with the
    /// sha256 of every file. The same tree, target and SOURCE_DATE_EPOCH (default: the commit
    /// time) give a byte-identical archive.
    Build(BuildArgs),
}

/// `shipit build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Target whose selector files are rendered [default: the only target]
    #[arg(short, long)]
    pub target: Option<String>,
    /// Where to write the archive [default: .shipit/dist/PROJECT-TARGET-RELEASE.tar.gz]
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
}
