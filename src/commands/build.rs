//! `shipit build`.

use serde_json::json;

use crate::build::{self, BuildRequest};
use crate::cli::BuildArgs;
use crate::config::Config;
use crate::error::Result;
use crate::output::{human_bytes, Printer};

/// Builds the archive and prints where it is, its size, file count and sha256.
pub(crate) fn run(config: &Config, args: &BuildArgs, printer: &Printer) -> Result<()> {
    let target = config.target_or_only(args.target.as_deref())?;
    let started = std::time::Instant::now();
    build::commands::run(config, target, printer)?;
    let artifact = build::build(&BuildRequest {
        config,
        target,
        output: args.output.clone(),
        source_date_epoch: build::source_date_epoch_from_env()?,
    })?;
    if !artifact.secrets_skipped.is_empty() {
        printer.info(format!(
            "left out {} secret-looking file(s): {} (name them in project.include to ship them)",
            artifact.secrets_skipped.len(),
            artifact.secrets_skipped.join(", ")
        ));
    }
    let files = artifact.files;
    printer.info(format!(
        "built {} for {} in {:.2}s",
        &artifact.sha256[..12],
        target.name,
        started.elapsed().as_secs_f64()
    ));
    printer.result(format!(
        "{}\n  size    {} ({} bytes)\n  files   {files}\n  sha256  {}",
        artifact.path.display(),
        human_bytes(artifact.size),
        artifact.size,
        artifact.sha256
    ));
    printer.json_result(&json!({
        "path": artifact.path,
        "size": artifact.size,
        "files": files,
        "sha256": artifact.sha256,
        "target": target.name,
        "revision": artifact.manifest.revision,
        "dirty": artifact.manifest.dirty,
        "build_time": artifact.manifest.build_time,
        "secrets_skipped": artifact.secrets_skipped,
    }));
    Ok(())
}
