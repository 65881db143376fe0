//! The `[targets.T.env]` and `[targets.T.secrets]` tables: the app's environment, plain values
//! and values resolved on the deploying machine. A name is one or the other, and never one the
//! deploy scripts or `sh` use themselves: every step loads `.shipit/env` with `set -a`, so
//! `PATH`, `D` or `MANAGE` there would change what the steps after it do.

use super::*;
use crate::remote::preamble::{reserved, Reserved};

/// Validates the names of `env` and `secrets`, and that no name is in both.
#[allow(clippy::type_complexity)]
pub(super) fn validate_env(
    source: &Source,
    target: &str,
    raw_env: BTreeMap<Spanned<String>, String>,
    raw_secrets: BTreeMap<Spanned<String>, SecretSource>,
) -> Result<(BTreeMap<String, String>, BTreeMap<String, SecretSource>)> {
    let env_name = |name: &Spanned<String>, table: &str| -> Result<String> {
        let text = name.get_ref();
        if !is_identifier(text) {
            return Err(source.error(
                name.span(),
                key_for(target, &format!("{table}.{text}")),
                "environment variable names are letters, digits and `_`, not starting with a digit",
            ));
        }
        if let Some(why) = reserved(text) {
            let key = key_for(target, &format!("{table}.{text}"));
            let (what, hint) = match why {
                Reserved::Shell => (
                    "a name `sh` itself reads",
                    "rename it; the app server's PATH is set by shipit (the release's .venv/bin first)",
                ),
                Reserved::Shipit => (
                    "in shipit's own namespace (`SHIPIT_...`)",
                    "rename it; the app sees what shipit sets there (SHIPIT_RELEASE, SHIPIT_PROCESS, ...) on its own",
                ),
                Reserved::Library if text == "DJANGO_SETTINGS_MODULE" => (
                    "a variable of shipit's deploy scripts",
                    "set it with project.settings_module, which every step, hook and app process uses",
                ),
                Reserved::Library => (
                    "a variable of shipit's deploy scripts",
                    "rename it (the app's settings can read any other name)",
                ),
            };
            return Err(source.refuse(
                name.span(),
                key,
                format!(
                    "`{text}` is {what}: every deploy step loads the app's environment with \
                     `set -a`, so it would change what the steps after it do"
                ),
                hint,
            ));
        }
        Ok(text.clone())
    };
    let mut env = BTreeMap::new();
    for (name, value) in raw_env {
        env.insert(env_name(&name, "env")?, value);
    }
    let mut secrets = BTreeMap::new();
    for (name, from) in raw_secrets {
        let text = env_name(&name, "secrets")?;
        if env.contains_key(&text) {
            return Err(source.error(
                name.span(),
                key_for(target, &format!("secrets.{text}")),
                format!("`{text}` is also in env; a name is either a plain value or a secret"),
            ));
        }
        secrets.insert(text, from);
    }
    Ok((env, secrets))
}
