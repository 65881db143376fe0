//! `shipit man DIR`: the man pages clap_mangen generates from the same clap definitions as
//! `--help`, one for shipit and one per command (`shipit-deploy.1`, `shipit-lock-acquire.1`),
//! so they never drift from the commands. Hidden itself: it is for packagers and the book.

use clap::CommandFactory;

use crate::cli::{Cli, ManArgs};
use crate::error::{Error, Result};
use crate::output::Printer;

/// Writes every page into `args.dir`, creating it when missing.
pub(crate) fn run(args: &ManArgs, printer: &Printer) -> Result<()> {
    std::fs::create_dir_all(&args.dir).map_err(|e| Error::io("create", &args.dir, e))?;
    clap_mangen::generate_to(Cli::command(), &args.dir)
        .map_err(|e| Error::io("write man pages into", &args.dir, e))?;
    printer.result(format!("man pages written to {}", args.dir.display()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use crate::cli::Cli;

    /// A page per command, each naming its command and its options.
    #[test]
    fn writes_a_page_per_command() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("man1");
        let status = crate::run(["shipit", "man", out.to_str().unwrap()].map(Into::into));
        assert_eq!(status, 0);
        let command = Cli::command();
        let mut names = vec!["shipit".to_string()];
        for sub in command.get_subcommands().filter(|c| !c.is_hide_set()) {
            names.push(format!("shipit-{}", sub.get_name()));
        }
        assert!(names.len() > 10, "{names:?}");
        for name in &names {
            let page = std::fs::read_to_string(out.join(format!("{name}.1")))
                .unwrap_or_else(|e| panic!("{name}.1: {e}"));
            assert!(page.starts_with(".ie \\n(.g .ds Aq"), "{name}.1 is roff");
            assert!(page.contains(&format!(".TH {name} 1")), "{name}.1: {page}");
        }
        let deploy = std::fs::read_to_string(out.join("shipit-deploy.1")).unwrap();
        assert!(deploy.contains("lock\\-wait"), "{deploy}");
        assert!(
            !out.join("shipit-man.1").exists(),
            "the hidden command has no page"
        );
    }
}
