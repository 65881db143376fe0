//! The host contract: everything shipit and the remote shell must agree on, owned in one place.
//!
//! Rust renders values and calls; the shell in `templates/remote/` does the work on a host. What
//! crosses between them (the shell library itself, the variables a script is given, the facts it
//! reports, the names of files inside `deploy_to`) is defined here, so neither side repeats the
//! other's strings and a test can check the two against each other.

pub(crate) mod facts;
#[cfg(test)]
mod fast;
pub(crate) mod layout;
pub(crate) mod library;
pub(crate) mod preamble;
pub(crate) mod protocol;
pub(crate) mod python;
