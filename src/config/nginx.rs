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
}

pub(super) fn default_nginx_test() -> String {
    "nginx -t".into()
}
pub(super) fn default_nginx_reload() -> String {
    "nginx -s reload".into()
}
