//! The `[targets.T.vars]` table: free-form template variables, which must not shadow the names
//! shipit gives every template.

use super::*;

/// Names the templates see that a target's `vars` must not shadow.
pub const RESERVED_VARS: &[&str] = &[
    "project",
    "target",
    "environment",
    "release",
    "build_time",
    "revision",
    "dirty",
    "deploy_to",
    "release_dir",
    "settings_module",
    "wsgi_app",
    "program",
    "vars",
];

/// Validates the names of `vars`.
pub(super) fn validate_vars(
    source: &Source,
    target: &str,
    raw: BTreeMap<Spanned<String>, toml::Value>,
) -> Result<BTreeMap<String, toml::Value>> {
    let mut vars = BTreeMap::new();
    for (var, value) in raw {
        let key = key_for(target, &format!("vars.{}", var.get_ref()));
        if !is_identifier(var.get_ref()) {
            return Err(source.error(
                var.span(),
                key,
                "variable names are letters, digits and `_`, not starting with a digit",
            ));
        }
        if RESERVED_VARS.contains(&var.get_ref().as_str()) {
            return Err(source.error(
                var.span(),
                key,
                format!(
                    "`{}` is set by shipit for every template; choose another name",
                    var.get_ref()
                ),
            ));
        }
        vars.insert(var.into_inner(), value);
    }
    Ok(vars)
}
