//! The `[targets.T.health]` table: how a release's app server is checked before it goes live.

use super::*;

/// The health check of a release's app server, through its own unix socket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Path requested.
    #[serde(default = "default_health_path")]
    pub path: String,
    /// Status expected; `None` accepts any 2xx or 3xx.
    #[serde(default)]
    pub status: Option<u16>,
    /// `Host` header sent (must be in Django's ALLOWED_HOSTS); `None`: the first entry of the
    /// release's ALLOWED_HOSTS (`localhost` for `*`).
    #[serde(default)]
    pub host: Option<String>,
    /// Seconds a new app server has to answer before the deploy fails.
    #[serde(default = "default_health_timeout")]
    pub timeout: u32,
    /// Attempts, one second apart, after the switch before it is reverted.
    #[serde(default = "default_health_retries")]
    pub retries: u32,
}

impl Default for Health {
    fn default() -> Health {
        Health {
            path: default_health_path(),
            status: None,
            host: None,
            timeout: default_health_timeout(),
            retries: default_health_retries(),
        }
    }
}

/// `path` when unset.
pub(crate) const DEFAULT_HEALTH_PATH: &str = "/";
/// `timeout` when unset, in seconds.
pub(crate) const DEFAULT_HEALTH_TIMEOUT: u32 = 30;
/// `retries` when unset.
pub(crate) const DEFAULT_HEALTH_RETRIES: u32 = 3;

fn default_health_path() -> String {
    DEFAULT_HEALTH_PATH.into()
}
fn default_health_timeout() -> u32 {
    DEFAULT_HEALTH_TIMEOUT
}
fn default_health_retries() -> u32 {
    DEFAULT_HEALTH_RETRIES
}

/// Validates `[targets.T.health]`: a plain path and host, and bounded status, timeout and retries.
pub(super) fn validate_health(source: &Source, target: &str, h: Spanned<Health>) -> Result<Health> {
    let span = h.span();
    let h = h.into_inner();
    let bad = |key: &str, why: &str| Err(source.error(span.clone(), key_for(target, key), why));
    if !h.path.starts_with('/') || h.path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("health.path", "must start with `/` and contain no spaces");
    }
    if h.host.as_ref().is_some_and(|host| {
        host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control())
    }) {
        return bad("health.host", "must be a host name without spaces");
    }
    if h.status.is_some_and(|s| !(100..=599).contains(&s)) {
        return bad(
            "health.status",
            "must be an HTTP status between 100 and 599",
        );
    }
    if !(1..=600).contains(&h.timeout) {
        return bad("health.timeout", "must be between 1 and 600 seconds");
    }
    if !(1..=100).contains(&h.retries) {
        return bad("health.retries", "must be between 1 and 100");
    }
    Ok(h)
}
