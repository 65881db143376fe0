//! The remote shell library: the files of `templates/remote/`, in the order a script needs them.
//!
//! Every script shipit sends starts with this library, so a phase is still one exec however the
//! shell is split on disk.

/// The remote shell library, checked by shellcheck in CI.
pub(crate) const LIBRARY: &str = concat!(
    include_str!("../../templates/remote/shipit.sh"),
    include_str!("../../templates/remote/systemd.sh")
);
