//! The `[targets.T.hooks]` table: commands run in the new release around the switch.

use super::*;

/// Hook commands run inside the new release directory: on each host, or with `once = true`
/// only on the target's primary host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// Before `migrate`.
    #[serde(default)]
    pub before_migrate: Vec<Hook>,
    /// After `migrate` (and `collectstatic`), before the switch.
    #[serde(default)]
    pub after_migrate: Vec<Hook>,
    /// After `current` has been switched and services reloaded.
    #[serde(default)]
    pub after_switch: Vec<Hook>,
}

/// One hook: a command (`"./manage.py compilemessages"`) or a table
/// (`{ run = "./manage.py createcachetable", once = true }`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Hook {
    /// Runs on every host.
    Command(String),
    /// `once = true` runs it on the primary host only.
    Table(HookTable),
}

/// A hook's table form. A struct of its own (not a struct variant) so that an unknown key in it
/// is refused, and so the configuration reference can list its keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookTable {
    /// The shell command.
    pub run: String,
    /// Run on the primary host only.
    #[serde(default)]
    pub once: bool,
}

impl Hook {
    /// The shell command.
    pub fn command(&self) -> &str {
        match self {
            Hook::Command(run) | Hook::Table(HookTable { run, .. }) => run,
        }
    }

    /// Whether it runs on the primary host only.
    pub fn once(&self) -> bool {
        matches!(self, Hook::Table(HookTable { once: true, .. }))
    }
}
