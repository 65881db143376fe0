//! The remote side of `shipit releases` and of pruning: taking stock of a host's releases and
//! removing the ones [`crate::release::prune`] chose.
//!
//! The inventory is a shell function shared by every script that needs it, so a deploy learns
//! the host's releases in the same exec that takes the lock. Its facts are parsed back into
//! [`Release`] values here, which keeps the choices themselves pure.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::release::{Release, ReleaseId, State};

use super::deploy::{common, lock_body, DeployPlan};
use super::quote;
use super::script::Script;

/// Shell function `shipit_inventory [sizes]`: one fact per release, plus `current` and `in_use`.
///
/// `in_use` lists releases some running process has as its working directory (readable
/// processes only: the deploy user's own, which is where the app servers run).
pub const INVENTORY: &str = r#"shipit_inventory() {
  DREAL=$(cd "$D" 2>/dev/null && pwd -P) || DREAL=$D
  shipit_fact current "$(readlink "$D/current" 2>/dev/null | sed 's#.*/##')"
  shipit_fact in_use "$(find /proc -mindepth 2 -maxdepth 2 -name cwd -user "$(id -u)" -printf '%l\n' 2>/dev/null | while read -r c; do case "$c" in "$DREAL"/releases/*) r=${c#"$DREAL"/releases/}; echo "${r%%/*}";; esac; done | sort -u | tr '\n' ' ')"
  for dir in "$D"/releases/*; do
    [ -d "$dir" ] || continue
    id=${dir##*/}
    state=$(cat "$dir/.shipit/state" 2>/dev/null) || state=unknown
    size=0
    if [ "${1:-}" = sizes ]; then size=$(du -sk "$dir" 2>/dev/null | cut -f1); fi
    rev=$(sed -n 's/^  "revision": "\([^"]*\)",$/\1/p' "$dir/.shipit/manifest.json" 2>/dev/null | head -n 1)
    venv=$(readlink "$dir/.venv" 2>/dev/null | sed 's#.*/##')
    shipit_fact "release:$id" "${state:-unknown} ${size:-0} ${venv:--} ${rev:--}"
  done
}"#;

/// A release as listed by `shipit releases`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Listed {
    /// Id, state, current, in use.
    #[serde(flatten)]
    pub release: Release,
    /// Disk usage in KiB (0 when sizes were not asked for).
    pub size_kib: u64,
    /// Virtualenv key it uses.
    pub venv: Option<String>,
    /// Git revision from its manifest.
    pub revision: Option<String>,
}

/// Turns inventory facts back into releases, sorted by id.
pub fn parse_inventory(facts: &BTreeMap<String, String>) -> Vec<Listed> {
    let current = facts.get("current").and_then(|c| ReleaseId::parse(c));
    let in_use: Vec<ReleaseId> = facts
        .get("in_use")
        .map(|list| {
            list.split_whitespace()
                .filter_map(ReleaseId::parse)
                .collect()
        })
        .unwrap_or_default();
    let mut listed: Vec<Listed> = facts
        .iter()
        .filter_map(|(key, value)| {
            let id = ReleaseId::parse(key.strip_prefix("release:")?)?;
            let mut fields = value.split(' ');
            let state = State::parse(fields.next().unwrap_or(""));
            let size_kib = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let word =
                |w: Option<&str>| w.filter(|w| *w != "-" && !w.is_empty()).map(str::to_string);
            let venv = word(fields.next());
            let revision = word(fields.next());
            let is_current = current == Some(id);
            Some(Listed {
                release: Release {
                    id,
                    // `current` is the truth about what is live, whatever a state file says.
                    state: if is_current { State::Live } else { state },
                    current: is_current,
                    in_use: in_use.contains(&id),
                },
                size_kib,
                venv,
                revision,
            })
        })
        .collect();
    listed.sort_by_key(|l| l.release.id);
    listed
}

/// Shell lines removing `doomed` releases and every virtualenv no remaining release uses.
/// Prints one `removed` fact per release and the KiB freed.
pub fn removal_body(doomed: &[ReleaseId]) -> String {
    let mut body = String::from("BEFORE=$(du -sk \"$D/\" 2>/dev/null | cut -f1)\n");
    for id in doomed {
        let id = quote(&id.to_string());
        let _ = writeln!(
            body,
            "if [ -d \"$D/releases/\"{id} ] && [ \"$(readlink \"$D/current\")\" != releases/{id} ]; then rm -rf \"$D/releases/\"{id}; shipit_fact removed:{id} release; fi"
        );
    }
    body.push_str(
        "for venv in \"$D\"/venvs/*; do\n\
         \x20 [ -d \"$venv\" ] || continue\n\
         \x20 used=\n\
         \x20 for link in \"$D\"/releases/*/.venv; do target=$(readlink \"$link\"); [ \"${target##*/}\" = \"${venv##*/}\" ] && used=1; done\n\
         \x20 if [ -z \"$used\" ]; then rm -rf \"$venv\"; shipit_fact \"removed:venv:${venv##*/}\" venv; fi\n\
         done\n\
         AFTER=$(du -sk \"$D/\" 2>/dev/null | cut -f1)\n\
         shipit_fact freed_kib \"$((BEFORE - AFTER))\"",
    );
    body
}

/// The `shipit releases` script: inventory with sizes, no lock (it changes nothing).
pub fn list_script(nonce: &str, deploy_to: &str) -> Script {
    let mut script = Script::new(nonce);
    script.var("D", deploy_to).line(INVENTORY);
    script.step(
        "inventory",
        "[ -d \"$D/releases\" ] || { echo \"nothing deployed under $D\"; exit 0; }\nshipit_inventory sizes",
    );
    script
}

/// Lock the host and take stock (with sizes): the first script of a prune and of a rollback.
pub fn locked_inventory(base: &DeployPlan, nonce: &str) -> Script {
    let mut script = Script::new(nonce);
    common(base, &mut script);
    script.step(
        "lock",
        format!(
            "[ -d \"$D/releases\" ] || {{ echo \"nothing is deployed under $D\"; exit 1; }}\n{}",
            lock_body(base.break_lock)
        ),
    );
    script.step("inventory", "shipit_inventory sizes");
    script
}

/// Removes `doomed` releases and unused virtualenvs, records it, and unlocks.
pub fn remove(base: &DeployPlan, nonce: &str, doomed: &[ReleaseId]) -> Script {
    let mut script = Script::new(nonce);
    common(base, &mut script);
    script.on_failure = "shipit_unlock\n".into();
    let list = doomed
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    script.step(
        "prune",
        format!(
            "{}\nshipit_log prune {}\nshipit_unlock",
            removal_body(doomed),
            quote(&format!(
                "removed {}",
                if list.is_empty() { "nothing" } else { &list }
            ))
        ),
    );
    script
}

/// Releases the lock taken by [`locked_inventory`], changing nothing else.
pub fn unlock(base: &DeployPlan, nonce: &str) -> Script {
    let mut script = Script::new(nonce);
    common(base, &mut script);
    script.step("unlock", "shipit_unlock");
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inventory_facts_become_releases() {
        let facts: BTreeMap<String, String> = [
            ("current", "20260101000002"),
            ("in_use", "20260101000002 20260101000001 "),
            ("release:20260101000001", "good 1200 abc - "),
            ("release:20260101000002", "live 800 abc 0123abcd"),
            ("release:20260101000003", "failed 10 - -"),
            ("release:junk", "good 1 - -"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let listed = parse_inventory(&facts);
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[0].release.state, State::Good);
        assert!(listed[0].release.in_use && !listed[0].release.current);
        assert_eq!(listed[0].size_kib, 1200);
        assert_eq!(listed[1].revision.as_deref(), Some("0123abcd"));
        assert!(listed[1].release.current);
        assert_eq!(listed[2].release.state, State::Failed);
        assert_eq!(listed[2].venv, None);
    }

    #[test]
    fn inventory_runs_in_a_real_shell() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (id, state) in [("20260101000001", "good"), ("20260101000002", "live")] {
            std::fs::create_dir_all(d.join("releases").join(id).join(".shipit")).unwrap();
            std::fs::write(
                d.join("releases").join(id).join(".shipit/state"),
                format!("{state}\n"),
            )
            .unwrap();
            std::fs::write(
                d.join("releases").join(id).join(".shipit/manifest.json"),
                "{\n  \"revision\": \"feedbeef\",\n}\n",
            )
            .unwrap();
        }
        std::os::unix::fs::symlink("releases/20260101000002", d.join("current")).unwrap();
        let script = list_script("n", d.to_str().unwrap());
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script.render())
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let facts: BTreeMap<String, String> = text
            .lines()
            .filter_map(|l| match crate::plan::script::parse_line("n", l) {
                crate::plan::script::Event::Fact(k, v) => Some((k, v)),
                _ => None,
            })
            .collect();
        let listed = parse_inventory(&facts);
        assert_eq!(listed.len(), 2, "{text}");
        assert!(listed[1].release.current);
        assert_eq!(listed[0].revision.as_deref(), Some("feedbeef"));
        assert!(listed[0].size_kib > 0);
    }
}
