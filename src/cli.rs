//! Command-line arguments: what the user typed, validated by clap and nothing more.

use std::path::PathBuf;

use clap::{Arg, Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Exit status:
  0  success
  1  a build command, a deploy or rollback step, or a `check` failed (hosts not switched
     stay on their previous release; after a failed batch, `rollback` makes them agree)
  2  bad usage, configuration, template or project content (no host was touched)
  3  a host could not be reached, authenticated or verified
  4  another run holds the lock (or left it behind), or `shipit lock acquire` holds it
  5  refused: nothing to roll back to, hosts that disagree, unknown migrations
  130  interrupted by Ctrl-C (locks given back; nothing switched after it)

Examples:
  shipit build --target staging          build the archive for staging
  shipit deploy --target production      deploy to every production host
  shipit deploy -t staging --dry-run -v  show the remote scripts without running them
  shipit deploy -t production --hosts deploy@web1.example.com --allow-mixed   a canary
  shipit releases -t production          list releases and their states on every host
  shipit releases -t production --prune --keep 3 --dry-run
  shipit rollback -t production          back to the previous good release
  shipit rollback -t production --to 20261122010320 --migrate --yes
  shipit rollback -t production --dry-run   where each host would go, and the steps
  shipit init                               a first shipit.toml in a Django project
  shipit config -t production               settings, template variables, env (secrets redacted)
  shipit lock -t production acquire -m \"db maintenance\"   refuse every deploy until released
  shipit image -t production --push registry.example.com/hello:latest
  shipit check -t production             is every host ready for a deploy? (read-only)
  shipit logs -t production -f           follow the app logs of every host
  shipit maintenance -t production on --message \"Back at 18:00\"
";

/// Build a Django project into a reproducible release archive and deploy it atomically.
#[derive(Debug, Parser)]
#[command(name = "shipit", version = crate::provenance::LONG.as_str(), about, after_help = AFTER_HELP, max_term_width = 100)]
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
    /// Answer yes to confirmations (pruning, `rollback --migrate`): needed when stdin is not a
    /// terminal
    #[arg(short = 'y', long, global = true)]
    pub yes: bool,
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
    ///
    /// First the project's `build` commands run here, in the project (e.g.
    /// `build = ["npm ci", "npm run build"]`), and what they leave under `artifacts` (e.g.
    /// `artifacts = ["static/dist/"]`) is archived too, git-ignored or not. A failing command
    /// stops everything: `shipit build -t staging -v` shows their output.
    Build(BuildArgs),
    /// Build, upload and switch a new release on every host of a target.
    ///
    /// Each host gets the archive (skipped when that sha256 is already there), unpacks it into
    /// releases/<UTC timestamp>, links shared paths, builds the virtualenv (reused when python and
    /// the requirements file are unchanged), runs migrate and collectstatic, installs and checks
    /// the nginx site and starts the release's own app server. Only when every host is prepared
    /// does any host switch: `current` is replaced by rename(2), nginx reloads if its site
    /// changed, and the previous app server stops gracefully. A failure before the switch leaves
    /// every host serving the release it had.
    Deploy(DeployArgs),
    /// Switch `current` back to the previous good release (or --to RELEASE) on every host.
    ///
    /// Failed and rolled-back releases are skipped, so a second rollback goes further back. The
    /// switch is the same atomic rename as a deploy, with the target release's own nginx site
    /// and app server restored. Before switching, the migrations the database has applied are
    /// compared with those the target release knows: a rollback that would strand migrations is
    /// refused and they are listed; --migrate unapplies them first (with the current release's
    /// code) and --force switches anyway.
    Rollback(RollbackArgs),
    /// List every release on each host (state, age, size, revision) and prune old ones.
    ///
    /// States: live (current), previous good (where a rollback goes), good, failed, rolled back.
    /// Pruning keeps `keep_releases` good releases (failed and rolled-back ones take no slot) and
    /// never removes the current release, the rollback target, or a release a process runs in;
    /// virtualenvs no remaining release uses go too.
    Releases(ReleasesArgs),
    /// Build the release as an OCI image (no container daemon), for Kubernetes, ECS or Nomad.
    ///
    /// The image is the base image's layers (an OCI layout you fetched once, e.g. `skopeo copy
    /// docker://docker.io/library/python:3.12-slim oci:base:3.12`, named by image.base), then
    /// /venv (the requirements installed with uv from Linux x86_64 wheels; kept and reused while
    /// python and requirements are unchanged), then /app (the release archive's files). It runs
    /// `python -m gunicorn WSGI_APP` as user 10001 on 0.0.0.0:$PORT with DJANGO_SETTINGS_MODULE
    /// and the target's env set; secrets are not in the image, only their names (the
    /// io.shipit.secrets label). The same tree and SOURCE_DATE_EPOCH give the same digests.
    ///
    /// It prints the one-off commands an orchestrator runs once per rollout (migrate,
    /// collectstatic); conf/kubernetes.yaml in the shipit repository shows them as a Job next to
    /// a Deployment.
    Image(ImageArgs),
    /// Check that a target's hosts can take a deploy, changing nothing: ✓/✗ and a hint each.
    ///
    /// On this machine: the target's secrets resolve. On each host (one script, no lock): SSH
    /// reaches it and its host key is trusted, deploy_to is writable, the lock is free, python
    /// and uv are there (or installable), the process manager answers its configured command,
    /// the nginx test passes, there is disk space for an archive and a virtualenv, the shared
    /// files exist, and in the live release `manage.py check --deploy` passes and ALLOWED_HOSTS
    /// accepts the health check's Host header. Exit status 0 only when every check passes.
    ///
    /// Example: `shipit check -t production` (or `--json` for scripts).
    Check(CheckArgs),
    /// Show each web host's certificate, or renew it now (`[targets.T.tls]`).
    ///
    /// `status`: the certificate each host serves (names, issuer, days left) and the last line
    /// of its renewal log (issued, renewed, not-due, failed); exit status 1 when one has under
    /// 14 days left or lacks a name, as `shipit check`. `renew` (ACME): runs each host's
    /// renewal now, the script its timer runs, which renews only a certificate with a third of
    /// its lifetime left unless `--force`; nginx reloads gracefully. Takes no lock.
    ///
    /// Example: `shipit tls -t production status`, `shipit tls -t production renew --force`.
    Tls(TlsArgs),
    /// Show the app's logs from every host of a target, each line prefixed with its host.
    ///
    /// The logs are those of the live release's process (supervisor's log files of its
    /// program; under systemd, the journal of its units of every release): the last -n lines of each (those matching --grep, an extended regular
    /// expression, when given), then with -f every new line as the hosts write it, merged as
    /// they arrive, until Ctrl-C. Changes nothing on the hosts.
    ///
    /// Example: `shipit logs -t production -f --grep ' 500 '` follows the server errors of
    /// every host; `--json` prints one {"host", "line"} object per line.
    Logs(LogsArgs),
    /// Turn maintenance mode on or off: nginx answers 503 with a page on every host.
    ///
    /// While on, every request but the health check's path gets the page (the project's
    /// maintenance.html.j2 in its templates directory, or a built-in one showing --message)
    /// with status 503, on all hosts at once: each host gets the page ready first, then all
    /// show it. It stays on through deploys and rollbacks until turned off; the app keeps
    /// running behind it (a deploy's health checks reach the app directly).
    ///
    /// Example: `shipit maintenance -t production on --message "Back at 18:00 UTC"`, then
    /// `shipit deploy -t production` and `shipit maintenance -t production off`.
    Maintenance(MaintenanceArgs),
    /// Write a first shipit.toml, conf/deploy.map and requirements.in for a Django project.
    ///
    /// Detects manage.py, the settings module or package, the WSGI application and the
    /// requirements files, and writes what is missing: an existing file is never replaced
    /// (`skip PATH (exists)`). Then prints the next three commands.
    ///
    /// Example, from nothing to a first archive:
    ///   django-admin startproject mysite && cd mysite
    ///   shipit init
    ///   uv pip compile requirements.in -o requirements.txt
    ///   shipit build
    #[command(verbatim_doc_comment)]
    Init(InitArgs),
    /// Print the resolved configuration: every setting with its default filled in, every
    /// template variable and template file, and the app's environment, each with where it came
    /// from. Secrets are shown as [REDACTED]; no host is contacted.
    ///
    /// Examples:
    ///   shipit config -t production          settings, variables, templates and env of production
    ///   shipit config --json | jq '.targets.production.variables.server_name'
    #[command(verbatim_doc_comment)]
    Config(ConfigArgs),
    /// Print a shell completion script.
    ///
    /// Examples:
    ///   shipit completions bash > ~/.local/share/bash-completion/completions/shipit
    ///   shipit completions zsh > ~/.zfunc/_shipit      (with fpath+=~/.zfunc in ~/.zshrc)
    ///   shipit completions fish > ~/.config/fish/completions/shipit.fish
    #[command(verbatim_doc_comment)]
    Completions(CompletionsArgs),
    /// Hold, inspect or give back a target's deploy lock on every host.
    ///
    /// `acquire` takes the lock every deploy, rollback and prune takes, and keeps it after
    /// shipit exits: every run is refused (exit 4, naming who holds it and why) until
    /// `release`. `release` gives back a lock taken with `acquire`, or one left by a run that is
    /// gone; a running deploy's lock is refused. `status` changes nothing.
    ///
    /// Examples:
    ///   shipit lock -t production acquire -m "database maintenance until 14:00"
    ///   shipit lock -t production status
    ///   shipit lock -t production release
    ///   shipit deploy -t production --lock-wait 600   wait for a held lock instead of failing
    #[command(verbatim_doc_comment)]
    Lock(LockArgs),
    /// Take, list and restore database snapshots on the target's primary host.
    ///
    /// Snapshots live in deploy_to/.shipit/snapshots on the primary (`pg_dump -Fc` for
    /// PostgreSQL, the sqlite3 backup API for SQLite), taken with the live release's settings.
    /// `[targets.T.database] backup = "before-migrate"` takes one before every deploy's migrate
    /// that applies something; `keep` bounds how many are kept. `restore` overwrites the
    /// database, so it asks first (--yes confirms).
    ///
    /// Examples:
    ///   shipit db -t production backup
    ///   shipit db -t production list
    ///   shipit db -t production restore 20261122010320 --yes   that release's newest snapshot
    #[command(verbatim_doc_comment)]
    Db(DbArgs),
    /// Show what was done to a target: every host's deploy log, merged by time.
    ///
    /// One line per deploy, rollback, prune and lock: when, on which host, who ran it, the
    /// release and git revision, and how it ended (ok, failed: STEP, aborted: WHY, ...).
    /// Nothing is locked or changed.
    ///
    /// Examples:
    ///   shipit audit -t production
    ///   shipit audit -t production -n 10
    ///   shipit audit -t production --json | jq '.entries[] | select(.outcome != "ok")'
    #[command(verbatim_doc_comment)]
    Audit(AuditArgs),
    /// Run a command in the live release on the target's hosts, as its hooks run.
    ///
    /// The command runs in `current` with the release's virtualenv first on PATH, its
    /// environment (.shipit/env: the target's env and secrets), DJANGO_SETTINGS_MODULE and
    /// SHIPIT_RELEASE, as the deploy user. One argument is a shell command line (pipes,
    /// variables); several are a command and its arguments, passed as they are; a first word
    /// naming an [aliases] entry is replaced by it. Output (stdout and stderr) is streamed,
    /// prefixed by the host when there are several. Exit status: the command's; on several
    /// hosts, that of the first host (in the target's order) where it failed. -i runs it on a
    /// terminal on one host (the primary unless --hosts names one), like `shipit console`.
    ///
    /// Examples:
    ///   shipit run -t production -- ./manage.py showmigrations
    ///   shipit run -t production --primary -- ./manage.py clearsessions
    ///   shipit run -t production --hosts app2 -- 'tail -n 20 ../../shared/log/*.log'
    ///   shipit run -t production -i -- ./manage.py dbshell
    #[command(verbatim_doc_comment)]
    Run(RunArgs),
    /// An interactive `manage.py shell` (or the `console` alias, or COMMAND) in the live
    /// release on one host, on a terminal that follows this one's size: `shipit run -i`.
    ///
    /// Examples:
    ///   shipit console -t production
    ///   shipit console -t production --hosts app2 -- bash
    #[command(verbatim_doc_comment)]
    Console(ConsoleArgs),
    /// Write the man pages, one per command (`shipit.1`, `shipit-deploy.1`, ...), into DIR.
    ///
    /// Example: `shipit man ~/.local/share/man/man1 && man shipit-deploy`
    #[command(hide = true)]
    Man(ManArgs),
}

/// `-t/--target`: the target a command acts on. Each command says in its own words what the
/// target is to it (`mut_args(help("target", ...))` on its arguments), so the flag is declared
/// once and its help stays specific.
#[derive(Debug, Args)]
pub struct TargetArg {
    /// The target
    #[arg(id = "target", short = 't', long = "target", value_name = "TARGET")]
    pub name: String,
}

/// How a command that connects reaches the hosts.
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// Trust and record host keys that known_hosts does not have yet (never a changed or @revoked key)
    #[arg(long)]
    pub accept_new_host_key: bool,
}

/// Taking over the deploy lock a run left behind: `deploy` and `releases --prune` (`rollback`'s
/// `--force` also switches past unknown migrations, so it declares its own).
#[derive(Debug, Args)]
pub struct BreakLockArgs {
    /// Remove a lock left by a run that is no longer connected
    #[arg(long)]
    pub break_lock: bool,
    /// With --break-lock: take the lock even from a run that is still connected
    #[arg(long, requires = "break_lock")]
    pub force: bool,
}

/// Sets the help of the flag `id` of a flattened group, where it stands: clap's `mut_arg` would
/// move the flag last, reordering the completion scripts.
fn help(id: &'static str, text: &'static str) -> impl FnMut(Arg) -> Arg {
    move |arg| {
        if arg.get_id() == id {
            arg.help(text)
        } else {
            arg
        }
    }
}

/// `shipit image`.
#[derive(Debug, Args)]
#[command(mut_args(help(
    "target",
    "Target whose release is built (its settings module, env and shared dirs)"
)))]
pub struct ImageArgs {
    #[command(flatten)]
    pub target: TargetArg,
    /// OCI image layout directory to write [default: .shipit/image/PROJECT-TARGET]
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Also write the layout as one oci-archive tarball (`skopeo copy oci-archive:FILE ...`)
    #[arg(long, value_name = "FILE")]
    pub archive: Option<PathBuf>,
    /// Push the image to a registry with skopeo, e.g. registry.example.com/hello:1.2
    #[arg(long, value_name = "REF")]
    pub push: Option<String>,
    /// With --push: the registry speaks plain HTTP or has an unverified certificate
    #[arg(long, requires = "push")]
    pub insecure_registry: bool,
    /// Base image, an OCI layout `[oci:]DIR[:REF]` [default: image.base]
    #[arg(long, value_name = "LAYOUT")]
    pub base: Option<String>,
    /// The base image's python, e.g. /usr/local/bin/python3.12 [default: image.python]
    #[arg(long, value_name = "PATH")]
    pub python: Option<String>,
    /// What the container runs: `web` (gunicorn, the default) or a process of
    /// [targets.T.processes], e.g. `worker` for a Celery worker image
    #[arg(long, value_name = "NAME", default_value = "web")]
    pub process: String,
}

/// `shipit maintenance`.
#[derive(Debug, Args)]
#[command(mut_args(help("target", "Target whose hosts go into (or out of) maintenance")))]
pub struct MaintenanceArgs {
    #[command(flatten)]
    pub target: TargetArg,
    /// on or off
    #[arg(value_enum)]
    pub state: MaintenanceState,
    /// What the built-in page says (the page's `message` variable)
    #[arg(long, value_name = "TEXT")]
    pub message: Option<String>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// `shipit maintenance on|off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MaintenanceState {
    /// nginx answers 503 with the page
    On,
    /// nginx serves the app again
    Off,
}

/// `shipit logs`.
#[derive(Debug, Args)]
#[command(mut_args(help("target", "Target whose hosts' logs are shown")))]
pub struct LogsArgs {
    #[command(flatten)]
    pub target: TargetArg,
    /// Keep printing new lines until Ctrl-C
    #[arg(short, long)]
    pub follow: bool,
    /// Lines to show from the end of each log first (before --grep filters them)
    #[arg(short = 'n', long, value_name = "N", default_value_t = 50)]
    pub lines: u32,
    /// Whose logs: `web` (the app server), or a process of [targets.T.processes] (or
    /// `schedule`, the scheduler)
    #[arg(long, value_name = "NAME", default_value = "web")]
    pub process: String,
    /// Only lines matching this extended regular expression (grep -E)
    #[arg(long, value_name = "RE")]
    pub grep: Option<String>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// `shipit check`.
#[derive(Debug, Args)]
#[command(mut_args(help("target", "Target whose hosts are checked")))]
pub struct CheckArgs {
    #[command(flatten)]
    pub target: TargetArg,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// `shipit tls`.
#[derive(Debug, Args)]
#[command(mut_args(help("target", "Target whose hosts' certificates are shown or renewed")))]
pub struct TlsArgs {
    #[command(flatten)]
    pub target: TargetArg,
    /// status or renew
    #[arg(value_enum)]
    pub action: TlsAction,
    /// With renew: renew even when the certificate is not due
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// `shipit tls status|renew`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TlsAction {
    /// each host's certificate and its last renewal
    Status,
    /// run each host's renewal now
    Renew,
}

/// `shipit run`.
#[derive(Debug, Args)]
#[command(mut_args(help("target", "Target whose live release runs the command")))]
pub struct RunArgs {
    #[command(flatten)]
    pub target: TargetArg,
    /// Only these hosts (comma-separated: as written in `hosts`, a host name, or host:port)
    #[arg(long, value_name = "HOSTS", conflicts_with = "primary")]
    pub hosts: Option<String>,
    /// Only the primary host
    #[arg(long)]
    pub primary: bool,
    /// Interactively, on a terminal, on one host
    #[arg(short, long)]
    pub interactive: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The command (after `--`)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

/// `shipit console`.
#[derive(Debug, Args)]
#[command(mut_args(help("target", "Target whose live release runs the console")))]
pub struct ConsoleArgs {
    #[command(flatten)]
    pub target: TargetArg,
    /// The host [default: the primary]
    #[arg(long, value_name = "HOST")]
    pub hosts: Option<String>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The command [default: the `console` alias, or `python manage.py shell`]
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

/// `shipit audit`.
#[derive(Debug, Args)]
#[command(mut_args(help("target", "Target whose hosts' logs are read")))]
pub struct AuditArgs {
    #[command(flatten)]
    pub target: TargetArg,
    /// Only the last N entries
    #[arg(short = 'n', long = "last", value_name = "N")]
    pub last: Option<u32>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// `shipit lock`.
#[derive(Debug, Args)]
#[command(mut_args(help("target", "Target whose hosts are locked")))]
pub struct LockArgs {
    #[command(flatten)]
    pub target: TargetArg,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(subcommand)]
    pub action: LockAction,
}

/// `shipit db`.
#[derive(Debug, Args)]
#[command(mut_args(help("target", "Target whose primary host keeps the snapshots")))]
pub struct DbArgs {
    #[command(flatten)]
    pub target: TargetArg,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(subcommand)]
    pub action: DbAction,
}

/// What `shipit db` does.
#[derive(Debug, Subcommand)]
pub enum DbAction {
    /// Take a snapshot of the database now, with the live release's settings
    Backup,
    /// The snapshots on the primary, newest first
    List,
    /// Restore a snapshot into the database (asks first; --yes confirms)
    Restore {
        /// A snapshot's name as `list` shows it, or a release id: its newest snapshot
        #[arg(value_name = "SNAPSHOT")]
        name: String,
    },
}

/// What `shipit lock` does.
#[derive(Debug, Subcommand)]
pub enum LockAction {
    /// Who holds the lock on each host, since when and why
    Status,
    /// Take the lock on every host (all or none) and keep it until `release`
    Acquire {
        /// Why it is held: shown to everyone the lock refuses
        #[arg(short, long, value_name = "MSG")]
        message: String,
    },
    /// Give back a held lock (or one left by a run that is gone) on every host
    Release,
}

/// `shipit config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Target to show [default: every target]
    #[arg(short, long)]
    pub target: Option<String>,
}

/// `shipit completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Shells `shipit completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// `shipit init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Print what would be written, write nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// `shipit man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory the pages are written into (created when missing)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// `shipit rollback`.
#[derive(Debug, Args)]
#[command(mut_args(help("target", "Target to roll back")))]
pub struct RollbackArgs {
    #[command(flatten)]
    pub target: TargetArg,
    /// Release id to switch to [default: the previous good release]
    #[arg(long, value_name = "RELEASE")]
    pub to: Option<String>,
    /// Unapply migrations the target release does not know before switching
    #[arg(long, conflicts_with = "force")]
    pub migrate: bool,
    /// Switch even if the database has migrations the target release does not know (with
    /// --break-lock: also take the lock from a run that is still connected)
    #[arg(long)]
    pub force: bool,
    /// Remove a lock left by a run that is no longer connected, then roll back
    #[arg(long)]
    pub break_lock: bool,
    /// Say where each host would go, what the migrations check finds and the remote steps,
    /// changing nothing (hosts are read, not locked)
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// `shipit releases`.
#[derive(Debug, Args)]
#[command(
    mut_args(help("target", "Target whose hosts are listed")),
    mut_args(help("break_lock", "With --prune: remove a lock left by a run that is no longer connected")),
    mut_args(|a| if a.get_id() == "break_lock" { a.requires("prune") } else { a }),
)]
pub struct ReleasesArgs {
    #[command(flatten)]
    pub target: TargetArg,
    /// Remove old releases (and unused virtualenvs)
    #[arg(long)]
    pub prune: bool,
    /// Good releases to keep when pruning [default: the target's keep_releases]
    #[arg(long, value_name = "N", requires = "prune", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: Option<u32>,
    /// With --prune: print what would be removed, remove nothing
    #[arg(long, requires = "prune")]
    pub dry_run: bool,
    #[command(flatten)]
    pub lock: BreakLockArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
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

/// `shipit deploy`.
#[derive(Debug, Args)]
#[command(
    mut_args(help("target", "Target to deploy to")),
    mut_args(help(
        "break_lock",
        "Remove a lock left by a run that is no longer connected, then deploy"
    ))
)]
pub struct DeployArgs {
    #[command(flatten)]
    pub target: TargetArg,
    #[command(flatten)]
    pub lock: BreakLockArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Build the archive and print the remote steps without connecting to any host
    #[arg(long)]
    pub dry_run: bool,
    /// When another run (or `shipit lock acquire`) holds the lock, wait up to SECS seconds for
    /// it instead of failing at once
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub lock_wait: Option<u32>,
    /// Deploy to these hosts of the target only (a canary), comma-separated
    #[arg(long, value_delimiter = ',', value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Deploy to the hosts carrying these roles only, comma-separated
    #[arg(long, value_delimiter = ',', value_name = "ROLE")]
    pub roles: Vec<String>,
    /// Let --hosts/--roles leave the target's hosts on different releases
    #[arg(long)]
    pub allow_mixed: bool,
    /// When to run migrate: `auto` skips it when no migration file (of the project or of the
    /// venv's packages) changed since the live release migrated the same, unchanged database;
    /// `always` runs it anyway
    #[arg(long, value_enum, value_name = "WHEN", default_value = "auto")]
    pub migrate: MigrateWhen,
    /// Apply migrations the migration gate finds would break the live release until the switch
    /// (dropped or renamed columns, NOT NULL without a default, ...); the deploy log records it
    #[arg(long)]
    pub allow_breaking_migrations: bool,
}

/// `deploy --migrate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MigrateWhen {
    /// Skip migrate when provably nothing changed.
    Auto,
    /// Always run migrate.
    Always,
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{Cli, Command};

    #[test]
    fn the_arguments_are_consistent() {
        Cli::command().debug_assert();
    }

    /// A command that flattens `TargetArg` says what the target is to it.
    #[test]
    fn every_target_flag_has_its_commands_own_help() {
        for command in Cli::command().get_subcommands() {
            for arg in command.get_arguments().filter(|a| a.get_id() == "target") {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                assert_ne!(help, "The target", "shipit {}", command.get_name());
            }
        }
    }

    fn command(args: &[&str]) -> Vec<String> {
        match Cli::try_parse_from(args).unwrap().command {
            Command::Run(run) => run.command,
            Command::Console(console) => console.command,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn everything_after_the_command_is_its_own() {
        assert_eq!(
            command(&[
                "shipit",
                "run",
                "-t",
                "t",
                "--",
                "./manage.py",
                "check",
                "-v",
                "2"
            ]),
            ["./manage.py", "check", "-v", "2"]
        );
        assert_eq!(
            command(&["shipit", "run", "-t", "t", "dbshell", "--", "-c", "select 1"]),
            ["dbshell", "--", "-c", "select 1"]
        );
        assert_eq!(
            command(&["shipit", "console", "-t", "t"]),
            Vec::<String>::new()
        );
    }
}
