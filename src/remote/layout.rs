//! The names shipit's parts share inside `deploy_to` and a release, and the exit status of a
//! refused lock: defined here once, handed to the shell in the preamble and to the templates
//! in their context, so that no part spells them again.

/// The web app server's unix socket, inside a release (nginx reaches `current`'s).
pub(crate) const APP_SOCKET: &str = ".shipit/app.sock";

/// The release's environment file: the target's env and secrets, `NAME='value'` lines.
pub(crate) const ENV_FILE: &str = ".shipit/env";

/// The exit status of a script refused because another run holds the lock (EX_TEMPFAIL).
pub(crate) const LOCKED_STATUS: i32 = 75;

/// The sh that enters a release as its app runs, in the release's directory: its environment
/// loaded and exported, its venv first on PATH. Every process shipit starts (programs, units,
/// the schedule's runs) begins with it; the shell's `shipit_load_env` and
/// `shipit_enter_current` do the same for steps and operator commands.
pub(crate) fn enter_release() -> String {
    format!("set -a; [ -f {ENV_FILE} ] && . ./{ENV_FILE}; set +a; PATH=\"$PWD/.venv/bin:$PATH\"; export PATH")
}

/// A target's TLS state, inside `deploy_to` and outside every release (certificates belong to
/// the target: a rollback never touches them, an archive never holds them): the key material
/// under 0700/0600, the ACME client's account and lineages.
pub(crate) const TLS_DIR: &str = "tls";

/// The certificate chain nginx serves, inside `deploy_to` (files mode: written there; ACME:
/// a symlink to certbot's current lineage, so a renewal needs only a reload).
pub(crate) const TLS_CERTIFICATE: &str = "tls/fullchain.pem";

/// The certificate's private key, beside it (0600).
pub(crate) const TLS_KEY: &str = "tls/privkey.pem";

/// What the site includes for OCSP stapling: `ssl_stapling on` when the certificate names an
/// OCSP responder, nothing otherwise (written on the host whenever a certificate is installed).
pub(crate) const TLS_STAPLING: &str = "tls/stapling.conf";

/// The host's renewal command (written at issuance, run by the timer the schedule installs on
/// every web host, and by `shipit tls renew`); it logs each run, as the issuance does, in
/// `tls/renew.log` (`TIME EVENT DETAIL`), which `shipit tls status` reads.
pub(crate) const TLS_RENEW: &str = "tls/renew";

/// The directory nginx serves `/.well-known/acme-challenge/` from (certbot's `--webroot`): it
/// must be readable by nginx's workers, unlike the rest of [`TLS_DIR`].
pub(crate) const TLS_WEBROOT: &str = "tls/webroot";
