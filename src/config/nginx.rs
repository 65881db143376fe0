//! The `[targets.T.nginx]` table: where the site goes and how nginx is checked and reloaded.

use super::*;

/// Where the nginx site goes and how nginx is checked and reloaded.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nginx {
    /// Absolute path the rendered site is installed at, e.g. `/etc/nginx/sites-enabled/hello.conf`.
    pub site: String,
    /// Command that checks the whole nginx configuration.
    #[serde(default = "default_nginx_test")]
    pub test: String,
    /// Command that reloads nginx.
    #[serde(default = "default_nginx_reload")]
    pub reload: String,
    /// URL path prefixes whose websocket upgrades nginx passes to the app server, e.g. `/ws/`.
    #[serde(default)]
    pub websocket_paths: Vec<String>,
}

/// `test` when unset.
pub(crate) const DEFAULT_NGINX_TEST: &str = "nginx -t";
/// `reload` when unset.
pub(crate) const DEFAULT_NGINX_RELOAD: &str = "nginx -s reload";

fn default_nginx_test() -> String {
    DEFAULT_NGINX_TEST.into()
}
fn default_nginx_reload() -> String {
    DEFAULT_NGINX_RELOAD.into()
}

/// Validates the site path: absolute, and plain enough for nginx's config.
pub(super) fn validate_nginx(source: &Source, target: &str, n: Spanned<Nginx>) -> Result<Nginx> {
    let key = key_for(target, "nginx.site");
    if !n.get_ref().site.starts_with('/') {
        return Err(source.error(n.span(), key, "must be an absolute path"));
    }
    safe_service_path(&n.get_ref().site).map_err(|why| source.error(n.span(), key, why))?;
    for path in &n.get_ref().websocket_paths {
        websocket_path(path)
            .map_err(|why| source.error(n.span(), key_for(target, "nginx.websocket_paths"), why))?;
    }
    Ok(n.into_inner())
}

/// A websocket path becomes an nginx `location` prefix: it starts with `/` and holds nothing
/// nginx's config would read as syntax.
fn websocket_path(path: &str) -> std::result::Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` must start with `/`"));
    }
    if let Some(c) = path
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || ";{}\"'\\#$".contains(*c))
    {
        return Err(format!(
            "`{path}` has {c:?}, which nginx's config cannot hold"
        ));
    }
    Ok(())
}
