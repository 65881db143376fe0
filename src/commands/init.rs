//! `shipit init`: a first `shipit.toml`, `conf/deploy.map` and requirements input for a Django
//! project, from what the project already says about itself.
//!
//! Detection and rendering live in [`crate::init`]; this command writes what is missing, never
//! replacing an existing file (`skip PATH (exists)`), so `init` is safe to run in a project that
//! is already set up, and says what to run next.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::cli::InitArgs;
use crate::error::{Error, Result};
use crate::init::{detect, files};
use crate::output::Printer;

/// Adds `.shipit/` to the project's `.gitignore` (made when missing) unless a line ignores it
/// already; whether it did (or, dry, would).
fn ignore_shipit(dir: &Path, dry_run: bool) -> Result<bool> {
    let path = dir.join(".gitignore");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    let ignored = text
        .lines()
        .any(|l| matches!(l.trim(), ".shipit" | ".shipit/" | "/.shipit" | "/.shipit/"));
    if ignored {
        return Ok(false);
    }
    if !dry_run {
        let separator = if text.is_empty() || text.ends_with('\n') {
            ""
        } else {
            "\n"
        };
        std::fs::write(&path, format!("{text}{separator}.shipit/\n"))
            .map_err(|e| Error::io("write", &path, e))?;
    }
    Ok(true)
}

/// Detects, writes what is missing, prints what was written and the next three commands.
pub(crate) fn run(dir: &Path, args: &InitArgs, printer: &Printer) -> Result<()> {
    let detected = detect(dir, crate::config::DEFAULT_MANAGE_PY)?;
    let mut written = Vec::new();
    let mut skipped = Vec::new();
    for (path, text) in files(&detected, crate::config::DEFAULT_DEPLOY_MAP) {
        let full: PathBuf = dir.join(&path);
        if full.exists() || full.is_symlink() {
            printer.info(format!("skip {path} (exists)"));
            skipped.push(path);
            continue;
        }
        if args.dry_run {
            printer.info(format!("would write {path}"));
            written.push(path);
            continue;
        }
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
        }
        // create_new: a file that appeared since the check is still never replaced.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&full)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
            .map_err(|e| Error::io("write", &full, e))?;
        printer.info(format!("wrote {path}"));
        written.push(path);
    }
    if ignore_shipit(dir, args.dry_run)? {
        printer.info(if args.dry_run {
            "would add .shipit/ to .gitignore"
        } else {
            "added .shipit/ to .gitignore (archives, logs and caches stay out of git)"
        });
    }
    let d = &detected;
    // A configuration that was already there names its own targets.
    let target = crate::config::Config::load(&dir.join(crate::config::CONFIG_FILE), Some(dir))
        .ok()
        .and_then(|c| c.targets.keys().next().cloned())
        .unwrap_or_else(|| "production".into());
    let mut next = Vec::new();
    if !d.requirements_found {
        next.push(format!(
            "uv pip compile {} -o {}",
            d.requirements_in, d.requirements
        ));
    } else {
        next.push(format!("shipit config -t {target}"));
    }
    next.push(format!("shipit build -t {target}"));
    next.push(format!("shipit deploy -t {target}"));
    let mut text = format!(
        "project {} (settings {} on the hosts, selecting {} by environment; wsgi {}, environment {}, requirements {}{})\n",
        d.name,
        d.selector_module(),
        d.settings,
        d.wsgi_app,
        d.environment,
        d.requirements,
        if d.requirements_found {
            ""
        } else {
            ", to be compiled"
        }
    );
    text.push_str(&format!(
        "check hosts and deploy_to of target {target} in shipit.toml, then:\n"
    ));
    for command in &next {
        text.push_str(&format!("  {command}\n"));
    }
    printer.result(text.trim_end());
    printer.json_result(&json!({
        "project": d.name,
        "settings": d.manage_settings,
        "settings_module": d.selector_module(),
        "wsgi_app": d.wsgi_app,
        "environment": d.environment,
        "requirements": d.requirements,
        "requirements_found": d.requirements_found,
        "requirements_files": d.requirements_files,
        "written": written,
        "skipped": skipped,
        "next": next,
    }));
    Ok(())
}
