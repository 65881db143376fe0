//! The front proxy: what takes a host's HTTP requests and hands them to the app server of
//! `current`. nginx today; a second proxy (or nginx with TLS, issue 24) is a variant here and
//! its template, and the steps that install, check and reload the site stay as they are.

use crate::config::Target;
use crate::error::Result;

use super::Rendering;

/// The site's file in the release's `.shipit/` (`step_nginx_check` installs it).
pub(crate) const SITE: &str = "nginx.conf";

/// A target's front proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrontProxy {
    /// `[targets.T.nginx]`: a site rendered from `nginx.conf.j2`.
    Nginx,
}

impl FrontProxy {
    /// The front proxy shipit manages for `target`, if any.
    pub(crate) fn of(target: &Target) -> Option<FrontProxy> {
        target.nginx.as_ref().map(|_| FrontProxy::Nginx)
    }

    /// The release's site on a host that runs what `rendering` places there: `None` on a host
    /// without the web role.
    pub(crate) fn render(self, rendering: &Rendering<'_>) -> Result<Option<String>> {
        if !rendering.placed.web {
            return Ok(None);
        }
        match self {
            FrontProxy::Nginx => rendering
                .templates
                .render("nginx.conf.j2", &rendering.context)
                .map(Some),
        }
    }
}
