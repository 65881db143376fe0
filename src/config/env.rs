//! The `[targets.T.env]` and `[targets.T.secrets]` tables: the app's environment, plain values
//! and values resolved on the deploying machine. A name is one or the other.

use super::*;

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
