//! The remote side of `shipit rollback`: four scripts per host, like a deploy.
//!
//! 1. **begin**: take the lock and report the host's releases
//!    ([`super::releases::locked_inventory`]).
//! 2. **check**: report the migrations the database has applied (asked of the live release) and
//!    those the target release knows, so shipit can refuse a rollback that would strand a schema.
//! 3. **prepare**: unapply what the target does not know (only with `--migrate`, using the live
//!    release's code), install the target's kept nginx site, start the target's kept app server
//!    and wait until it answers — nothing is switched yet.
//! 4. **switch**, once every host is prepared: rename over `current`, reload nginx if its site
//!    changed, mark the abandoned release `rolled_back` and the target `live`, record it, unlock,
//!    stop the abandoned release's app server.

use std::fmt::Write as _;

use crate::migrations::Unapply;

use super::deploy::{
    common, health_after_switch_body, nginx_check_body, one_line, start_app_body,
    stop_other_apps_body, switch_steps, undo_prepare, DeployPlan, COMMITTED_GUARD, SWITCH_BACK,
};
use super::quote;
use super::script::Script;

/// A rollback on one host. `base.release` is the release switched to; its nginx and app plans
/// name where configs go (their rendered text is unused: the target's kept configs are used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackPlan {
    /// Paths, services, lock token and the target release.
    pub base: DeployPlan,
    /// Migrations to unapply before switching (`--migrate`).
    pub unapply: Vec<Unapply>,
}

impl RollbackPlan {
    fn script(&self, nonce: &str) -> Script {
        let mut script = Script::new(nonce);
        common(&self.base, &mut script);
        script
    }

    /// Script 2: applied migrations (live release) and known migrations (target release).
    pub fn check(&self, nonce: &str) -> Script {
        let mut script = self.script(nonce);
        script.on_failure = "shipit_unlock\n".into();
        let manage = quote(&self.base.manage_py);
        script.step(
            "migrations",
            format!(
                "LIVE=$(cd \"$D/current\" && \"$D/current/.venv/bin/python\" {manage} showmigrations --plan 2>&1) || {{ printf '%s\\n' \"$LIVE\"; echo \"showmigrations failed in the live release\"; exit 1; }}\n\
                 printf '%s\\n' \"$LIVE\" | sed -n 's/^\\[X\\]  *//p' | while read -r m; do shipit_fact \"applied:$m\" 1; done\n\
                 KNOWN=$(cd \"$R\" && \"$R/.venv/bin/python\" {manage} showmigrations --plan 2>&1) || {{ printf '%s\\n' \"$KNOWN\"; echo \"showmigrations failed in release $ID\"; exit 1; }}\n\
                 printf '%s\\n' \"$KNOWN\" | sed -n 's/^\\[.\\]  *//p' | {{ n=0; while read -r m; do n=$((n + 1)); shipit_fact \"known:$(printf %06d \"$n\")\" \"$m\"; done; }}"
            ),
        );
        script
    }

    /// Script 3: unapply (if asked), install the target's nginx site, start its app server.
    pub fn prepare(&self, nonce: &str) -> Script {
        let mut script = self.script(nonce);
        script.on_failure = format!(
            "{}{}shipit_log rollback \"failed: $SHIPIT_FAILED_STEP\"\nshipit_unlock\n",
            self.remigrate(),
            undo_prepare(&self.base)
        );
        // The target's app server starts (and passes its health check) before any migration is
        // unapplied, so a target that cannot run never costs the live release its schema.
        if self.base.nginx.is_some() {
            script.step("nginx-check", nginx_check_body());
        }
        if let Some(app) = &self.base.app {
            script.step("start-app", start_app_body(app));
        }
        if !self.unapply.is_empty() {
            let manage = quote(&self.base.manage_py);
            let mut body = String::from("cd \"$D/current\"\n");
            for step in &self.unapply {
                let _ = writeln!(
                    body,
                    "\"$D/current/.venv/bin/python\" {manage} migrate {} {} --noinput",
                    quote(&step.app),
                    quote(&step.to)
                );
            }
            script.step("unapply-migrations", body.trim_end().to_string());
        }
        script
    }

    /// After unapplying migrations, a rollback that does not complete migrates the live
    /// release's schema forward again, so the release still serving keeps working.
    fn remigrate(&self) -> String {
        if self.unapply.is_empty() {
            return String::new();
        }
        format!(
            "if [ -L \"$D/current\" ]; then (cd \"$D/current\" && \"$D/current/.venv/bin/python\" {} migrate --noinput) && echo \"migrated the live release's schema forward again\"; fi\n",
            quote(&self.base.manage_py)
        )
    }

    /// Script 4: switch `current` to the target and retire the abandoned release.
    pub fn switch(&self, nonce: &str) -> Script {
        let mut script = self.script(nonce);
        script.line("PREVIOUS=$(readlink \"$D/current\" 2>/dev/null || true)");
        let mut on_failure = String::from(COMMITTED_GUARD);
        on_failure.push_str(SWITCH_BACK);
        on_failure.push_str(&undo_prepare(&self.base));
        on_failure.push_str(&self.remigrate());
        if self.base.nginx.is_some() {
            on_failure.push_str("eval \"$NGINX_RELOAD\" >/dev/null 2>&1 || true\n");
        }
        on_failure.push_str(
            "shipit_log rollback \"failed: $SHIPIT_FAILED_STEP (switched back)\"\nshipit_unlock\n",
        );
        script.on_failure = on_failure;
        switch_steps(&mut script, self.base.nginx.is_some());
        if let Some(app) = &self.base.app {
            script.step("health-check", health_after_switch_body(app));
        }
        script.step(
            "finish",
            "shipit_state live\n\
             if [ -n \"$PREVIOUS\" ] && [ -d \"$D/$PREVIOUS/.shipit\" ] && [ \"$D/$PREVIOUS\" != \"$R\" ]; then printf 'rolled_back\\n' > \"$D/$PREVIOUS/.shipit/state\"; fi\n\
             rm -f \"$D/.shipit/nginx-site.changed\" \"$D/.shipit/nginx-site.previous\"\n\
             shipit_log rollback \"ok (from ${PREVIOUS##*/})\"\n\
             shipit_unlock",
        );
        if let Some(app) = &self.base.app {
            script.step("stop-old-app", stop_other_apps_body(app));
        }
        script
    }

    /// Releases the lock without changing anything else (a refused or abandoned rollback).
    pub fn release_lock(&self, nonce: &str, reason: &str) -> Script {
        let mut script = self.script(nonce);
        script.var("REASON", &one_line(reason));
        script.step(
            "unlock",
            format!(
                "{}shipit_log rollback \"refused: $REASON\"\nshipit_unlock",
                undo_prepare(&self.base)
            ),
        );
        script
    }
}
