//! `shipit image`.

use serde_json::json;

use crate::build;
use crate::cli::ImageArgs;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::image::{self, BasePython, BaseRef, ImageRequest};
use crate::output::{human_bytes, Printer};
use crate::resolve::Resolved;

/// Builds the release archive, then the image layout from it; optionally an oci-archive and a
/// push. Prints the digests and the one-off release commands.
pub(crate) fn run(config: &Config, args: &ImageArgs, printer: &Printer) -> Result<()> {
    let target = config.target(&args.target.name)?;
    let resolved = Resolved::new(config, target)?;
    let base = args
        .base
        .as_deref()
        .or(config.image.base.as_deref())
        .ok_or_else(|| Error::Usage {
            message: "no base image: set image.base in shipit.toml or pass --base".into(),
            hint: Some("fetch one once, pinned by digest: `skopeo copy docker://docker.io/library/python:3.12-slim@sha256:DIGEST oci:images/python:3.12`, then image.base = \"images/python:3.12\" and image.python = \"/usr/local/bin/python3.12\"".into()),
        })?;
    let python = args
        .python
        .as_deref()
        .or(config.image.python.as_deref())
        .ok_or_else(|| Error::Usage {
            message: "the base image's python is not named: set image.python in shipit.toml or pass --python".into(),
            hint: Some("e.g. /usr/local/bin/python3.12 for the python:3.12 images, /usr/bin/python3.11 for Debian 12's python3".into()),
        })?;
    let python = BasePython::parse(python).map_err(|message| Error::Usage {
        message,
        hint: None,
    })?;

    let started = std::time::Instant::now();
    let (artifact, _) = build::build_deployable(config, target, None, printer)?;
    let output = args.output.clone().unwrap_or_else(|| {
        config
            .root
            .join(".shipit")
            .join("image")
            .join(format!("{}-{}", config.project.name, target.name))
    });
    let process = match args.process.as_str() {
        "web" => None,
        name => Some(
            target
                .processes
                .get_key_value(name)
                .ok_or_else(|| Error::Usage {
                    message: format!(
                        "`--process {name}`: target {} has no such process",
                        target.name
                    ),
                    hint: Some(format!(
                        "`web` (gunicorn) or one of [targets.{}.processes]: {}",
                        target.name,
                        if target.processes.is_empty() {
                            "none is configured".to_string()
                        } else {
                            target
                                .processes
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    )),
                })?,
        ),
    };
    let built = image::build(&ImageRequest {
        config,
        target,
        resolved: &resolved,
        artifact: &artifact,
        base: BaseRef::parse(base, &config.root),
        python,
        port: config
            .image
            .port
            .unwrap_or(crate::config::DEFAULT_IMAGE_PORT),
        output,
        process: process.map(|(name, p)| (name.as_str(), p.exec())),
    })?;
    printer.info(format!(
        "built image {} for {} in {:.2}s (virtualenv {} {})",
        &built.manifest_digest["sha256:".len()..][..12],
        target.name,
        started.elapsed().as_secs_f64(),
        built.venv_key,
        if built.venv_reused { "reused" } else { "built" },
    ));
    if let Some(path) = &args.archive {
        image::write_archive(&built.dir, path, built.mtime)?;
    }
    let pushed = match &args.push {
        Some(destination) => Some(image::push(
            &built.dir,
            &built.reference,
            destination,
            args.insecure_registry,
        )?),
        None => None,
    };

    let mut text = format!(
        "{}:{}\n  manifest  {}\n  config    {}\n  base      {}\n",
        built.dir.display(),
        built.reference,
        built.manifest_digest,
        built.config_digest,
        built.base_digest
    );
    for layer in &built.layers {
        text.push_str(&format!(
            "  layer     {} {:<4} {}\n",
            layer.digest,
            layer.role,
            human_bytes(layer.size)
        ));
    }
    if let Some(path) = &args.archive {
        text.push_str(&format!("  archive   {}\n", path.display()));
    }
    if let (Some(destination), Some(digest)) = (&args.push, &pushed) {
        text.push_str(&format!("  pushed    {destination}@{digest}\n"));
    }
    text.push_str("run once per rollout, before the new version serves (e.g. a Kubernetes Job):");
    for (_, argv) in &built.release_commands {
        text.push_str(&format!("\n  {}", argv.join(" ")));
    }
    printer.result(text);
    printer.json_result(&json!({
        "layout": built.dir,
        "reference": built.reference,
        "manifest_digest": built.manifest_digest,
        "config_digest": built.config_digest,
        "base_digest": built.base_digest,
        "layers": built.layers,
        "venv": {"key": built.venv_key, "reused": built.venv_reused},
        "archive": args.archive,
        "pushed": args.push.as_ref().map(|d| json!({"reference": d, "digest": pushed})),
        "release_commands": built.release_commands.iter().map(|(name, argv)| json!({"name": name, "command": argv})).collect::<Vec<_>>(),
        "target": target.name,
        "revision": artifact.manifest.revision,
    }));
    Ok(())
}
