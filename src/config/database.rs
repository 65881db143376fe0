//! The `[targets.T.database]` table: database snapshots on the primary, taken before a migrate
//! that applies something so that the data a migration drops can be had back (see
//! `templates/remote/snapshot.sh`).

use super::*;

/// When the primary takes a snapshot by itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backup {
    /// Never (`shipit db backup` still takes one).
    #[default]
    Off,
    /// Before a deploy's migrate that applies a migration, after the gate let it through.
    BeforeMigrate,
}

impl Backup {
    /// The name the config and the shell (`DB_BACKUP`) use.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Backup::Off => "off",
            Backup::BeforeMigrate => "before-migrate",
        }
    }
}

/// The database snapshots of a target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    /// When a snapshot is taken by itself.
    #[serde(default)]
    pub backup: Backup,
    /// How many snapshots are kept, the oldest removed first; 0 keeps them all.
    #[serde(default)]
    pub keep: u32,
}
