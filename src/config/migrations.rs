//! The `[targets.T.migrations]` table: the migration gate, which judges the migrations a deploy
//! applies against the release still live while they run (see `templates/remote/py/gate.py`).

use super::*;

/// What the gate does about a migration that would break the live release.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GateMode {
    /// Stop the deploy before anything is migrated (exit 5).
    #[default]
    Refuse,
    /// Say so, and go on.
    Warn,
    /// Judge nothing.
    Off,
}

impl GateMode {
    /// The name the shell reads (`GATE`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            GateMode::Refuse => "refuse",
            GateMode::Warn => "warn",
            GateMode::Off => "off",
        }
    }
}

/// The migration gate of a target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Migrations {
    /// What a breaking migration does to the deploy.
    #[serde(default)]
    pub gate: GateMode,
    /// Whether an operation the gate cannot judge (RunPython, most RunSQL) counts as breaking.
    #[serde(default)]
    pub strict: bool,
    /// Migrations (`app.name`) allowed whatever they do.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Migrations (`app.name`) applied after every host has switched, on the primary.
    #[serde(default)]
    pub after_switch: Vec<String>,
}

/// Whether `name` is a migration as Django names it: `app_label.migration_name` (a module name,
/// which may start with a digit).
fn is_migration_name(name: &str) -> bool {
    name.split_once('.').is_some_and(|(app, migration)| {
        is_identifier(app)
            && !migration.is_empty()
            && migration
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// Validates `[targets.T.migrations]`: every listed migration named `app.name`.
pub(super) fn validate_migrations(
    source: &Source,
    target: &str,
    m: Spanned<Migrations>,
) -> Result<Migrations> {
    let span = m.span();
    let m = m.into_inner();
    for (key, names) in [("allow", &m.allow), ("after_switch", &m.after_switch)] {
        let Some(bad) = names.iter().find(|n| !is_migration_name(n)) else {
            continue;
        };
        return Err(source.error(
            span,
            key_for(target, &format!("migrations.{key}")),
            format!(
                "`{bad}` is not a migration: name it as `app_label.migration_name`, e.g. `shop.0002_remove_item_note`"
            ),
        ));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{message, parse, GOOD};
    use super::*;

    #[test]
    fn the_migration_gate_refuses_by_default_and_names_migrations_as_django_does() {
        let config = parse(GOOD).unwrap();
        assert_eq!(
            config.targets["staging"].migrations,
            Migrations {
                gate: GateMode::Refuse,
                strict: false,
                allow: vec![],
                after_switch: vec![],
            }
        );
        let text = format!(
            "{GOOD}\n[targets.staging.migrations]\ngate = \"warn\"\nstrict = true\nallow = [\"shop.0002_remove_item_note\"]\n"
        );
        let m = &parse(&text).unwrap().targets["staging"].migrations;
        assert_eq!(
            (m.gate, m.strict, m.allow.clone()),
            (
                GateMode::Warn,
                true,
                vec!["shop.0002_remove_item_note".into()]
            )
        );
        let bad =
            format!("{GOOD}\n[targets.staging.migrations]\nallow = [\"0002_remove_item_note\"]\n");
        let said = message(&bad);
        assert!(
            said.contains("targets.staging.migrations.allow")
                && said.contains("name it as `app_label.migration_name`"),
            "{said}"
        );
        let typo = format!("{GOOD}\n[targets.staging.migrations]\ngate = \"block\"\n");
        assert!(message(&typo).contains("refuse"), "{}", message(&typo));
    }
}
