//! Django migrations across releases: what a rollback would strand, and how to unapply it.
//!
//! Rolling code back past a migration leaves a schema the old code does not understand. Before a
//! rollback switches, the database's applied migrations (as the live release reports them) are
//! compared with the migrations the target release knows; any the target does not know must be
//! unapplied first, with the live release's code, which knows how ([`decide`], from
//! `rollback --migrate`/`--force`). Pure functions over the names `showmigrations --plan`
//! prints (`app.0002_name`).

use std::collections::BTreeSet;

use crate::error::Error;

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

/// What a rollback does about applied migrations its target does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Choice {
    /// Neither `--migrate` nor `--force`: refuse.
    Refuse,
    /// `--migrate`: unapply them first, with the live release's code.
    Migrate,
    /// `--force`: switch anyway, leaving them applied.
    Force,
}

/// The applied migrations release `to` does not know (from each host's `(applied, known)`),
/// and what to unapply: nothing unless `choice` is `Migrate`; a refusal unless `choice` says
/// what to do about them, or when only the code of a live release that is gone (`live` false)
/// could unapply them.
pub(crate) fn decide(
    hosts: &[(Vec<String>, Vec<String>)],
    choice: Choice,
    live: bool,
    to: &str,
) -> Result<(Vec<String>, Vec<Unapply>), Error> {
    let mut unknown: Vec<String> = Vec::new();
    let mut known: Vec<String> = Vec::new();
    for (applied, host_known) in hosts {
        for m in unknown_to_target(applied, host_known) {
            if !unknown.contains(&m) {
                unknown.push(m);
            }
        }
        if known.is_empty() {
            known = host_known.clone();
        }
    }
    if unknown.is_empty() || choice == Choice::Force {
        return Ok((unknown, Vec::new()));
    }
    if choice == Choice::Migrate && !live {
        return Err(Error::Refused {
            message: format!(
                "cannot unapply {} before switching to {to}: only the code of the release `current` pointed at knows how, and it is gone",
                unknown.join(", ")
            ),
            hint: "--force switches anyway, leaving those migrations applied".into(),
        });
    }
    if choice == Choice::Migrate {
        let unapply = unapply_plan(&unknown, &known);
        return Ok((unknown, unapply));
    }
    Err(Error::Refused {
        message: format!(
            "refusing to roll back to {to}: the database has migrations it does not know: {}",
            unknown.join(", ")
        ),
        hint: "--migrate unapplies them first with the current release's code (data in dropped columns or tables is lost); --force switches anyway".into(),
    })
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

    #[test]
    fn a_rollback_refuses_unknown_migrations_unless_told_what_to_do() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let hosts = vec![(names(&["app.0001_a", "app.0002_b"]), names(&["app.0001_a"]))];
        let refused = decide(&hosts, Choice::Refuse, true, "2").unwrap_err();
        assert_eq!(refused.exit_code(), 5, "{refused}");
        assert_eq!(
            decide(&hosts, Choice::Force, true, "2").unwrap(),
            (names(&["app.0002_b"]), Vec::new())
        );
        let (_, unapply) = decide(&hosts, Choice::Migrate, true, "2").unwrap();
        assert_eq!(
            unapply,
            [Unapply {
                app: "app".into(),
                to: "0001_a".into()
            }]
        );
        assert!(decide(&hosts, Choice::Migrate, false, "2").is_err());
        let known = vec![(names(&["app.0001_a"]), names(&["app.0001_a"]))];
        assert_eq!(
            decide(&known, Choice::Refuse, true, "2").unwrap(),
            (vec![], vec![])
        );
    }
}
