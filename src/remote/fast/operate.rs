//! placeholder

pub(super) const COVERS: &[&str] = &[];
