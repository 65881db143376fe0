//! The `[targets.T.vars]` table: free-form template variables, which must not shadow the names
//! shipit gives every template. A variable the nginx, supervisor or systemd templates read
//! (`server_name`, `listen`, `workers`, ...) is one line without `;`, `{` or `}`: those configs
//! have no quoting that holds, so `server_name = "x; return 200"` would add a directive. Any
//! other variable is data for the project's own deploy.map templates, which quote it themselves
//! (`| tojson`), and may hold anything.

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
    "tls",
    "release_dir",
    "settings_module",
    "wsgi_app",
    "asgi_app",
    "server_app",
    "server_options",
    "websocket_paths",
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
        if let Some(templates) = crate::templates::service_variables().get(var.get_ref()) {
            if let Some(why) = unsafe_in_service_config(&value) {
                return Err(source.refuse(
                    var.span(),
                    key,
                    format!(
                        "`{}` is written into {} and holds {why}, which would end a directive there and start another",
                        var.get_ref(),
                        templates.join(", "),
                    ),
                    "write one line without `;`, `{` or `}` (list several server names with spaces); a value for your own deploy.map templates goes under another name",
                ));
            }
        }
        vars.insert(var.into_inner(), value);
    }
    Ok(vars)
}

/// What in `value` (every string inside it) a service config cannot take: a line break or other
/// control character, `;`, `{` or `}`.
fn unsafe_in_service_config(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(text) => text
            .chars()
            .find(|c| c.is_control() || matches!(c, ';' | '{' | '}'))
            .map(|c| match c {
                '\n' | '\r' => "a line break".to_string(),
                c if c.is_control() => format!("the control character {c:?}"),
                c => format!("`{c}`"),
            }),
        toml::Value::Array(items) => items.iter().find_map(unsafe_in_service_config),
        toml::Value::Table(table) => table.values().find_map(unsafe_in_service_config),
        _ => None,
    }
}
