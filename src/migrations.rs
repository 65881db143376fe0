//! Django migrations across releases: what a rollback would strand, and how to unapply it.
//!
//! Rolling code back past a migration leaves a schema the old code does not understand. Before a
//! rollback switches, the database's applied migrations (as the live release reports them) are
//! compared with the migrations the target release knows; any the target does not know must be
//! unapplied first, with the live release's code, which knows how. Pure functions over the names
//! `showmigrations --plan` prints (`app.0002_name`).

use std::collections::BTreeSet;

/// One `migrate APP TARGET` that unapplies migrations the rollback target does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unapply {
    /// The Django app label.
    pub app: String,
    /// The last migration of `app` the target knows, or `zero`.
    pub to: String,
}

/// Applied migrations (in the live release's plan order) that the target release does not know.
pub fn unknown_to_target(applied: &[String], known: &[String]) -> Vec<String> {
    let known: BTreeSet<&String> = known.iter().collect();
    applied
        .iter()
        .filter(|m| !known.contains(m))
        .cloned()
        .collect()
}

/// The `migrate` commands that bring the schema back to what the target knows: per app with
/// unknown migrations, migrate to the last migration of that app in the target's plan.
pub fn unapply_plan(unknown: &[String], known_in_order: &[String]) -> Vec<Unapply> {
    let mut apps: Vec<&str> = Vec::new();
    for name in unknown {
        let app = name.split_once('.').map_or(name.as_str(), |(app, _)| app);
        if !apps.contains(&app) {
            apps.push(app);
        }
    }
    apps.into_iter()
        .map(|app| {
            let prefix = format!("{app}.");
            let to = known_in_order
                .iter()
                .rev()
                .find_map(|m| m.strip_prefix(&prefix))
                .unwrap_or("zero")
                .to_string();
            Unapply {
                app: app.to_string(),
                to,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn finds_migrations_the_target_does_not_know() {
        let applied = names(&[
            "contenttypes.0001_initial",
            "pages.0001_initial",
            "pages.0002_note",
        ]);
        let known = names(&["contenttypes.0001_initial", "pages.0001_initial"]);
        assert_eq!(unknown_to_target(&applied, &known), ["pages.0002_note"]);
        assert!(unknown_to_target(&known, &applied).is_empty());
    }

    #[test]
    fn unapplies_to_the_last_known_migration_or_zero() {
        let unknown = names(&["pages.0002_note", "pages.0003_more", "blog.0001_initial"]);
        let known = names(&["contenttypes.0001_initial", "pages.0001_initial"]);
        assert_eq!(
            unapply_plan(&unknown, &known),
            [
                Unapply {
                    app: "pages".into(),
                    to: "0001_initial".into()
                },
                Unapply {
                    app: "blog".into(),
                    to: "zero".into()
                },
            ]
        );
    }
}
