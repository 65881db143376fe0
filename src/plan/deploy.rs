//! The remote side of `shipit deploy`, as data turned into scripts.
//!
//! A deploy runs four scripts on each host, each in one SSH exec:
//!
//! 1. **begin**: create the layout, take the lock, report facts (existing releases, `current`,
//!    whether the archive is already there, whether `uv` is installed).
//! 2. **prepare** (after the upload): verify the archive's sha256, unpack it into
//!    `releases/<id>`, link shared paths, build or reuse the virtualenv, run hooks, `migrate`,
//!    `collectstatic`, install and check the nginx site, and start the release's own app server
//!    on its own socket — all before any traffic moves.
//! 3. **switch** (only once every host is prepared): rename a fresh symlink over `current`,
//!    reload nginx if its site changed, run `after_switch` hooks, stop the previous release's app
//!    server gracefully, record the deploy and release the lock. A failure here switches back.
//! 4. **abort** (when another host failed to prepare): undo what prepare did and release the lock.
//!
//! Nothing here touches the world: [`DeployPlan`] is plain data and the scripts are strings, so
//! they are unit-tested here and printed by `--dry-run`.

use std::fmt::Write as _;

use crate::config::{Hooks, Installer};
use crate::release::ReleaseId;

use super::script::Script;
use super::{base64, quote};

/// Exit status the begin script uses when another deploy holds the lock.
pub const LOCKED_STATUS: i32 = 75;

/// The nginx part of a deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxPlan {
    /// Where the site config is installed.
    pub site: String,
    /// Command checking nginx's whole configuration.
    pub test: String,
    /// Command reloading nginx.
    pub reload: String,
    /// The rendered site config.
    pub config: String,
}

/// The app-server part of a deploy (one supervisor program per release).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPlan {
    /// Directory supervisord includes program configs from.
    pub conf_dir: String,
    /// `supervisorctl` command prefix.
    pub ctl: String,
    /// Program name of the new release, `<project>-<target>-<release>`.
    pub program: String,
    /// Glob matching every release's program config of this project and target.
    pub program_glob: String,
    /// The rendered program config.
    pub config: String,
    /// How the app server is checked before and after the switch.
    pub health: crate::config::Health,
}

/// Everything the remote scripts of one deploy need, for one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployPlan {
    /// Absolute base directory.
    pub deploy_to: String,
    /// The new release.
    pub release: ReleaseId,
    /// sha256 of the archive.
    pub archive_sha256: String,
    /// Python interpreter that creates the venv.
    pub python: String,
    /// How the venv is populated.
    pub installer: Installer,
    /// Requirements file inside the release.
    pub requirements: String,
    /// `manage.py` inside the release.
    pub manage_py: String,
    /// `DJANGO_SETTINGS_MODULE`.
    pub settings_module: String,
    /// Shared directories.
    pub shared_dirs: Vec<String>,
    /// Shared files.
    pub shared_files: Vec<String>,
    /// Hook commands.
    pub hooks: Hooks,
    /// nginx, when managed.
    pub nginx: Option<NginxPlan>,
    /// App server, when managed.
    pub app: Option<AppPlan>,
    /// Secret that proves the lock is ours.
    pub lock_token: String,
    /// Who deploys, e.g. `alice@laptop`.
    pub deployer: String,
    /// Git revision being deployed.
    pub revision: String,
    /// Remove an existing lock before taking it.
    pub break_lock: bool,
    /// Releases removed after a successful switch (chosen by [`crate::release::prune`]).
    pub prune: Vec<ReleaseId>,
}

/// Shell functions and variables every deploy script starts with.
pub(super) fn common(plan: &DeployPlan, script: &mut Script) {
    script
        .var("D", &plan.deploy_to)
        .var("ID", &plan.release.to_string())
        .line("R=\"$D/releases/$ID\"")
        .line("LOCK=\"$D/.shipit/lock\"")
        .var("SHA", &plan.archive_sha256)
        .line("A=\"$D/.shipit/archives/$SHA.tar.gz\"")
        .var("TOKEN", &plan.lock_token)
        .var("DEPLOYER", &one_line(&plan.deployer))
        .var("REVISION", &one_line(&plan.revision))
        .var("DJANGO_SETTINGS_MODULE", &plan.settings_module)
        .line("SHIPIT_RELEASE=\"$ID\"")
        .line("export DJANGO_SETTINGS_MODULE SHIPIT_RELEASE")
        .line(
            "shipit_log() { printf '%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\" \"$DEPLOYER\" \"$1\" \"$ID\" \"$REVISION\" \"$2\" >> \"$D/.shipit/log\"; }",
        )
        .line("shipit_state() { [ -d \"$R/.shipit\" ] && printf '%s\\n' \"$1\" > \"$R/.shipit/state\"; true; }")
        .line("shipit_unlock() { if grep -qx \"token=$TOKEN\" \"$LOCK/info\" 2>/dev/null; then rm -rf \"$LOCK\"; fi; }")
        .line(super::releases::INVENTORY);
    if let Some(app) = &plan.app {
        script
            .var("CTL", &app.ctl)
            .var("CONFD", &app.conf_dir)
            .var("PROGRAM", &app.program)
            .line("PROGRAM_CONF=\"$CONFD/$PROGRAM.conf\"")
            .line("shipit_ctl() { eval \"$CTL\" '\"$@\"'; }");
    }
    if let Some(nginx) = &plan.nginx {
        script
            .var("SITE", &nginx.site)
            .var("NGINX_TEST", &nginx.test)
            .var("NGINX_RELOAD", &nginx.reload)
            .line("SITE_BACKUP=\"$D/.shipit/nginx-site.previous\"")
            .line("SITE_CHANGED=\"$D/.shipit/nginx-site.changed\"")
            .line(
                "shipit_restore_site() { if [ -f \"$SITE_CHANGED\" ]; then if [ -f \"$SITE_BACKUP\" ]; then mv -f \"$SITE_BACKUP\" \"$SITE\"; else rm -f \"$SITE\"; fi; rm -f \"$SITE_CHANGED\"; fi; }",
            );
    }
}

/// Undo of prepare's effects that outlive the script: the new app server and the nginx site.
pub(super) fn undo_prepare(plan: &DeployPlan) -> String {
    let mut undo = String::new();
    if plan.app.is_some() {
        undo.push_str(
            "if [ -f \"$PROGRAM_CONF\" ]; then rm -f \"$PROGRAM_CONF\"; shipit_ctl update \"$PROGRAM\" >/dev/null 2>&1; echo \"stopped the new app server $PROGRAM\"; fi\n",
        );
    }
    if plan.nginx.is_some() {
        undo.push_str("shipit_restore_site\n");
    }
    undo
}

impl DeployPlan {
    /// Sets `settings_module` by rendering the project's template for `target`.
    pub fn with_settings(
        mut self,
        config: &crate::config::Config,
        target: &crate::config::Target,
        info: &crate::templates::BuildInfo,
    ) -> DeployPlan {
        self.settings_module = crate::templates::RenderContext::new(config, target, info)
            .ok()
            .and_then(|c| c.get("settings_module"))
            .unwrap_or_else(|| config.project.settings_module.clone());
        self
    }

    /// Script 1: layout, lock, facts.
    pub fn begin(&self, nonce: &str) -> Script {
        let mut script = Script::new(nonce);
        common(self, &mut script);
        script.step(
            "layout",
            "mkdir -p \"$D/releases\" \"$D/shared\" \"$D/venvs\" \"$D/.shipit/archives\" || { echo \"cannot create the layout under $D as $(id -un)\"; exit 1; }\n\
             [ -w \"$D\" ] || { echo \"$D is not writable by $(id -un)\"; exit 1; }",
        );
        // A begin cut short after taking the lock gives it back (the token check makes this a
        // no-op when the lock is someone else's).
        script.on_failure = "shipit_unlock\n".into();
        script.step("lock", lock_body(self.break_lock));
        script.step(
            "facts",
            "shipit_inventory\n\
             if [ -f \"$A\" ]; then shipit_fact archive present; else shipit_fact archive missing; fi\n\
             if command -v uv >/dev/null 2>&1; then shipit_fact uv \"$(command -v uv)\"; fi",
        );
        script
    }

    /// Where the upload goes (the prepare script verifies and renames it).
    pub fn upload_path(&self) -> String {
        format!(
            "{}/.shipit/archives/{}.tar.gz.part",
            self.deploy_to, self.archive_sha256
        )
    }

    /// Script 2: everything up to a running, unexposed new release.
    pub fn prepare(&self, nonce: &str) -> Script {
        let mut script = Script::new(nonce);
        common(self, &mut script);
        script.on_failure = format!(
            "{}if [ \"$SHIPIT_FAILED_STEP\" = unpack ]; then rm -rf \"$R\"; else shipit_state failed; fi\n\
             shipit_log deploy \"failed: $SHIPIT_FAILED_STEP\"\n\
             shipit_unlock\n",
            undo_prepare(self)
        );
        script.step(
            "verify",
            "if [ -f \"$A.part\" ]; then mv -f \"$A.part\" \"$A\"; fi\n\
             [ -f \"$A\" ] || { echo \"the archive $A is missing\"; exit 1; }\n\
             GOT=$(sha256sum \"$A\" | cut -d' ' -f1)\n\
             if [ \"$GOT\" != \"$SHA\" ]; then rm -f \"$A\"; echo \"the uploaded archive is corrupt: sha256 $GOT, expected $SHA\"; exit 1; fi\n\
             echo \"sha256 $SHA verified\"",
        );
        script.step(
            "unpack",
            "if [ -e \"$R\" ]; then echo \"release $ID already exists on this host\"; exit 1; fi\n\
             mkdir -p \"$R\"\n\
             tar -xzf \"$A\" -C \"$R\" --no-same-owner\n\
             shipit_state preparing\n\
             echo \"unpacked into $R\"",
        );
        script.step("shared", self.shared_body());
        script.step("virtualenv", self.venv_body());
        for hook in &self.hooks.before_migrate {
            script.step(format!("before_migrate: {hook}"), hook_body(hook));
        }
        script.step(
            "migrate",
            format!(
                "cd \"$R\"\n\
                 [ -f {manage} ] || {{ echo \"{manage_text} not found in the release\"; exit 1; }}\n\
                 \"$R/.venv/bin/python\" {manage} migrate --noinput",
                manage = quote(&self.manage_py),
                manage_text = self.manage_py.replace(['"', '$', '`', '\\'], "")
            ),
        );
        script.step(
            "collectstatic",
            format!(
                "cd \"$R\"\n\"$R/.venv/bin/python\" {} collectstatic --noinput",
                quote(&self.manage_py)
            ),
        );
        for hook in &self.hooks.after_migrate {
            script.step(format!("after_migrate: {hook}"), hook_body(hook));
        }
        script.step("configs", self.configs_body());
        if self.nginx.is_some() {
            script.step("nginx-check", nginx_check_body());
        }
        if let Some(app) = &self.app {
            script.step("start-app", start_app_body(app));
        }
        script.step("prepared", "shipit_state prepared");
        script
    }

    fn shared_body(&self) -> String {
        let mut body = String::from("mkdir -p \"$D/shared/log\"\n");
        for dir in &self.shared_dirs {
            let q = quote(dir);
            let _ = writeln!(
                body,
                "mkdir -p \"$D/shared/\"{q}\n\
                 rm -rf \"$R/\"{q}\n\
                 mkdir -p \"$(dirname \"$R/\"{q})\"\n\
                 ln -s \"$D/shared/\"{q} \"$R/\"{q}"
            );
        }
        for file in &self.shared_files {
            let q = quote(file);
            let _ = writeln!(
                body,
                "mkdir -p \"$(dirname \"$D/shared/\"{q})\"\n\
                 if [ ! -e \"$D/shared/\"{q} ]; then (umask 077; : > \"$D/shared/\"{q}); echo \"created empty shared file \"{q}; fi\n\
                 rm -rf \"$R/\"{q}\n\
                 mkdir -p \"$(dirname \"$R/\"{q})\"\n\
                 ln -s \"$D/shared/\"{q} \"$R/\"{q}"
            );
        }
        body.push_str("echo \"linked shared paths\"");
        body
    }

    fn venv_body(&self) -> String {
        let choose = match self.installer {
            Installer::Uv => "INSTALLER=uv\n",
            Installer::Pip => "INSTALLER=pip\n",
            Installer::Auto => {
                "if command -v uv >/dev/null 2>&1; then INSTALLER=uv; else INSTALLER=pip; fi\n"
            }
        };
        format!(
            "PY={py}\n\
             REQ=\"$R/\"{req}\n\
             [ -f \"$REQ\" ] || {{ echo \"requirements file {req_text} is missing from the release\"; exit 1; }}\n\
             PYVER=$(\"$PY\" -c 'import sys; print(sys.version)') || {{ echo \"cannot run python $PY on this host\"; exit 1; }}\n\
             KEY=$( {{ printf '%s\\n' \"$PYVER\"; cat \"$REQ\"; }} | sha256sum | cut -c1-16)\n\
             V=\"$D/venvs/$KEY\"\n\
             {choose}\
             if [ -f \"$V/.shipit-complete\" ]; then\n\
             \x20 echo \"reusing virtualenv $KEY: python and requirements unchanged\"\n\
             \x20 shipit_fact venv \"reused $KEY\"\n\
             else\n\
             \x20 rm -rf \"$V\"\n\
             \x20 UV_PYTHON_DOWNLOADS=never\n\
             \x20 UV_NATIVE_TLS=1\n\
             \x20 export UV_PYTHON_DOWNLOADS UV_NATIVE_TLS\n\
             \x20 echo \"building virtualenv $KEY with $INSTALLER\"\n\
             \x20 if [ \"$INSTALLER\" = uv ]; then\n\
             \x20   uv venv --quiet --python \"$PY\" \"$V\"\n\
             \x20   uv pip sync --quiet --python \"$V/bin/python\" \"$REQ\"\n\
             \x20 else\n\
             \x20   \"$PY\" -m venv \"$V\"\n\
             \x20   \"$V/bin/pip\" install --quiet --disable-pip-version-check --no-input -r \"$REQ\"\n\
             \x20 fi\n\
             \x20 : > \"$V/.shipit-complete\"\n\
             \x20 shipit_fact venv \"built $KEY\"\n\
             fi\n\
             ln -sfn \"../../venvs/$KEY\" \"$R/.venv\"",
            py = quote(&self.python),
            req = quote(&self.requirements),
            req_text = self.requirements.replace(['"', '$', '`', '\\'], ""),
        )
    }

    fn configs_body(&self) -> String {
        let mut body = String::from("mkdir -p \"$R/.shipit\"\n");
        if let Some(nginx) = &self.nginx {
            let _ = writeln!(
                body,
                "printf %s {} | base64 -d > \"$R/.shipit/nginx.conf\"",
                base64(nginx.config.as_bytes())
            );
        }
        if let Some(app) = &self.app {
            let _ = writeln!(
                body,
                "printf %s {} | base64 -d > \"$R/.shipit/supervisor.conf\"",
                base64(app.config.as_bytes())
            );
        }
        body.push_str("echo \"rendered service configs kept in $R/.shipit\"");
        body
    }

    /// Script 3: switch `current`, reload, stop the old app server, record, unlock.
    pub fn switch(&self, nonce: &str) -> Script {
        let mut script = Script::new(nonce);
        common(self, &mut script);
        script.line("PREVIOUS=$(readlink \"$D/current\" 2>/dev/null || true)");
        let mut on_failure = String::from(COMMITTED_GUARD);
        on_failure.push_str(SWITCH_BACK);
        on_failure.push_str(&undo_prepare(self));
        if self.nginx.is_some() {
            on_failure.push_str("eval \"$NGINX_RELOAD\" >/dev/null 2>&1 || true\n");
        }
        on_failure.push_str(
            "shipit_state failed\nshipit_log deploy \"failed: $SHIPIT_FAILED_STEP (switched back)\"\nshipit_unlock\n",
        );
        script.on_failure = on_failure;
        switch_steps(&mut script, self.nginx.is_some());
        if let Some(app) = &self.app {
            script.step("health-check", health_after_switch_body(app));
        }
        for hook in &self.hooks.after_switch {
            script.step(format!("after_switch: {hook}"), hook_body(hook));
        }
        script.step(
            "finish",
            "shipit_state live\n\
             if [ -n \"$PREVIOUS\" ] && [ -d \"$D/$PREVIOUS/.shipit\" ] && [ \"$D/$PREVIOUS\" != \"$R\" ]; then printf 'good\\n' > \"$D/$PREVIOUS/.shipit/state\"; fi\n\
             rm -f \"$D/.shipit/nginx-site.changed\" \"$D/.shipit/nginx-site.previous\"\n\
             for dir in \"$D\"/releases/*; do\n\
             \x20 [ \"$dir\" != \"$R\" ] && [ -f \"$dir/.shipit/state\" ] || continue\n\
             \x20 case $(cat \"$dir/.shipit/state\") in preparing|prepared) echo failed > \"$dir/.shipit/state\"; echo \"marked ${dir##*/} failed: a deploy of it never finished\";; esac\n\
             done\n\
             ls -1t \"$D/.shipit/archives\" | tail -n +4 | while read -r old; do rm -f \"$D/.shipit/archives/$old\"; done\n\
             shipit_log deploy ok",
        );
        script.step(
            "prune",
            format!(
                "{}\n{}shipit_unlock",
                super::releases::removal_body(&self.prune),
                if self.prune.is_empty() {
                    String::new()
                } else {
                    format!(
                        "shipit_log prune \"removed {}\"\n",
                        self.prune
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(" ")
                    )
                }
            ),
        );
        if let Some(app) = &self.app {
            // After the lock is released, and never fatal: the new release is live either way.
            script.step("stop-old-app", stop_other_apps_body(app));
        }
        script
    }

    /// Gives the lock back before anything was prepared (another host was locked, or the
    /// rebuild failed): touches no release, since `$ID` may not even be this deploy's yet.
    pub fn release_lock(&self, nonce: &str, reason: &str) -> Script {
        let mut script = Script::new(nonce);
        common(self, &mut script);
        script.var("REASON", &one_line(reason));
        script.step(
            "unlock",
            "if grep -qx \"token=$TOKEN\" \"$LOCK/info\" 2>/dev/null; then shipit_log deploy \"aborted: $REASON\"; shipit_unlock; fi",
        );
        script
    }

    /// Script 4: undo a prepared release on this host because another host failed.
    pub fn abort(&self, nonce: &str, reason: &str) -> Script {
        let mut script = Script::new(nonce);
        common(self, &mut script);
        script.var("REASON", &one_line(reason));
        script.step(
            "abort",
            format!(
                "{}shipit_state failed\nshipit_log deploy \"aborted: $REASON\"\nshipit_unlock\necho \"release $ID abandoned: $REASON\"",
                undo_prepare(self)
            ),
        );
        script
    }
}

/// Once `finish` has recorded the new release as live, the switch is committed: a later failure
/// (pruning, stopping the old app server, a lost connection) must not switch back, since the
/// previous release's app server may already be gone.
pub(super) const COMMITTED_GUARD: &str = "if [ \"$(cat \"$R/.shipit/state\" 2>/dev/null)\" = live ] && [ \"$(readlink \"$D/current\" 2>/dev/null)\" = \"releases/$ID\" ]; then\n\
\x20 echo \"release $ID is live; step $SHIPIT_FAILED_STEP failed after the switch, nothing is undone\"\n\
\x20 shipit_unlock\n\
\x20 return 0 2>/dev/null || exit 0\n\
fi\n";

/// Puts `current` back where it pointed before the switch script (`$PREVIOUS`), by the same
/// rename; after a first deploy there was nothing, so the new `current` is removed.
pub(super) const SWITCH_BACK: &str = "if [ -n \"$PREVIOUS\" ] && [ \"$(readlink \"$D/current\" 2>/dev/null)\" != \"$PREVIOUS\" ]; then\n\
\x20 ln -sfn \"$PREVIOUS\" \"$D/.current.back\" && mv -fT \"$D/.current.back\" \"$D/current\" && echo \"switched current back to $PREVIOUS\"\n\
elif [ -z \"$PREVIOUS\" ] && [ -L \"$D/current\" ]; then\n\
\x20 rm -f \"$D/current\"; echo \"removed current: this was the first deploy\"\n\
fi\n";

/// Takes the deploy lock atomically (mkdir), recording who, when, which release and pid; exits
/// with [`LOCKED_STATUS`] and a `locked` fact naming the holder when someone else has it.
pub(super) fn lock_body(break_lock: bool) -> String {
    let mut lock = String::new();
    if break_lock {
        lock.push_str(
            "if [ -d \"$LOCK\" ]; then echo \"breaking the lock held $(tr '\\n' ' ' < \"$LOCK/info\" 2>/dev/null)\"; rm -rf \"$LOCK\"; fi\n",
        );
    }
    let _ = write!(
        lock,
        "mkdir -p \"$D/.shipit\" 2>/dev/null\n\
         if ! mkdir \"$LOCK\" 2>/dev/null; then\n\
         \x20 [ -d \"$LOCK\" ] || {{ echo \"cannot create $LOCK as $(id -un): is $D writable?\"; exit 1; }}\n\
         \x20 shipit_fact locked \"$(tr '\\n' ' ' < \"$LOCK/info\" 2>/dev/null | sed 's/token=[^ ]* //')\"\n\
         \x20 exit {LOCKED_STATUS}\n\
         fi\n\
         printf 'token=%s\\nby=%s\\nsince=%s\\nrelease=%s\\npid=%s\\n' \"$TOKEN\" \"$DEPLOYER\" \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\" \"$ID\" \"$$\" > \"$LOCK/info\""
    );
    lock
}

/// Removes every other release's program config of this project and target and has supervisor
/// stop those programs gracefully. Never fails: the release that matters is already live.
pub(super) fn stop_other_apps_body(app: &AppPlan) -> String {
    format!(
        "OLD=\n\
         for conf in \"$CONFD\"/{glob}; do\n\
         \x20 [ -e \"$conf\" ] && [ \"$conf\" != \"$PROGRAM_CONF\" ] || continue\n\
         \x20 rm -f \"$conf\"\n\
         \x20 OLD=\"$OLD $(basename \"$conf\" .conf)\"\n\
         done\n\
         if [ -n \"$OLD\" ]; then\n\
         \x20 shipit_ctl update $OLD || echo \"warning: supervisor could not stop$OLD\"\n\
         else\n\
         \x20 echo \"no other app server to stop\"\n\
         fi",
        glob = app.program_glob
    )
}

/// The steps every switch shares: check the lock is still ours, rename a fresh symlink over
/// `current` (rename(2): readers see the old or the new release, never nothing), and reload
/// nginx when its site changed.
pub(super) fn switch_steps(script: &mut Script, nginx: bool) {
    script.step(
        "check-lock",
        "grep -qx \"token=$TOKEN\" \"$LOCK/info\" 2>/dev/null || { echo \"the lock on $D is no longer ours; not switching\"; exit 1; }",
    );
    script.step(
        "switch",
        "ln -sfn \"releases/$ID\" \"$D/.current.$ID\"\n\
         mv -fT \"$D/.current.$ID\" \"$D/current\"\n\
         echo \"current -> releases/$ID (was ${PREVIOUS:-nothing})\"",
    );
    if nginx {
        script.step(
            "reload-nginx",
            "if [ -f \"$SITE_CHANGED\" ]; then eval \"$NGINX_RELOAD\"; echo \"nginx reloaded\"; else echo \"nginx site unchanged; no reload needed\"; fi",
        );
    }
}

fn hook_body(command: &str) -> String {
    format!("cd \"$R\"\nPATH=\"$R/.venv/bin:$PATH\"\nexport PATH\n{command}")
}

/// Installs `$R/.shipit/nginx.conf` at `$SITE` (atomically, keeping the previous one) when it
/// differs, and checks nginx's configuration; a rejected site is replaced by the previous one.
pub(super) fn nginx_check_body() -> String {
    "[ -f \"$R/.shipit/nginx.conf\" ] || { echo \"release $ID keeps no nginx site; nginx is left as it is\"; exit 0; }\n\
     if [ -f \"$SITE\" ] && cmp -s \"$SITE\" \"$R/.shipit/nginx.conf\"; then\n\
     \x20 echo \"nginx site unchanged\"\n\
     else\n\
     \x20 SITE_DIR=$(dirname \"$SITE\")\n\
     \x20 SITE_TMP=\"$SITE_DIR/.$(basename \"$SITE\").shipit-tmp\"\n\
     \x20 if [ -f \"$SITE\" ]; then cp -p \"$SITE\" \"$SITE_BACKUP\"; else rm -f \"$SITE_BACKUP\"; fi\n\
     \x20 cp \"$R/.shipit/nginx.conf\" \"$SITE_TMP\"\n\
     \x20 : > \"$SITE_CHANGED\"\n\
     \x20 mv -f \"$SITE_TMP\" \"$SITE\"\n\
     \x20 if ! eval \"$NGINX_TEST\"; then echo \"nginx rejected the new site $SITE; the previous one is restored\"; shipit_restore_site; exit 1; fi\n\
     \x20 echo \"nginx site installed at $SITE and checked\"\n\
     fi"
    .to_string()
}

/// Starts the program kept in `$R/.shipit/supervisor.conf` and waits until it answers.
pub(super) fn start_app_body(app: &AppPlan) -> String {
    format!(
        "[ -f \"$R/.shipit/supervisor.conf\" ] || {{ echo \"release $ID keeps no supervisor program\"; exit 1; }}\n\
         TMP=\"$CONFD/.$PROGRAM.conf.tmp\"\n\
         cp \"$R/.shipit/supervisor.conf\" \"$TMP\"\n\
         mv -f \"$TMP\" \"$PROGRAM_CONF\"\n\
         shipit_ctl update \"$PROGRAM\"\n\
         DEADLINE=$(( $(date +%s) + {timeout} ))\n\
         while :; do\n\
         \x20 if STATUS=$({probe} \"$R/.shipit/app.sock\" 2>&1); then echo \"health check before the switch: $STATUS\"; break; fi\n\
         \x20 if [ \"$(date +%s)\" -ge \"$DEADLINE\" ]; then\n\
         \x20   shipit_ctl status \"$PROGRAM\" || true\n\
         \x20   shipit_ctl tail \"$PROGRAM\" 2>/dev/null | grep -v '\\] \\[INFO\\] ' | tail -n 15 || true\n\
         \x20   echo \"the new app server failed its health check on $R/.shipit/app.sock within {timeout}s: $STATUS\"\n\
         \x20   exit 1\n\
         \x20 fi\n\
         \x20 sleep 0.1\n\
         done",
        timeout = app.health.timeout,
        probe = probe_command(&app.health),
    )
}

/// Checks the live release through `current` after the switch; a failure makes the switch
/// script switch back.
pub(super) fn health_after_switch_body(app: &AppPlan) -> String {
    format!(
        "TRIES={retries}\n\
         while :; do\n\
         \x20 if STATUS=$({probe} \"$D/current/.shipit/app.sock\" 2>&1); then echo \"health check after the switch: $STATUS\"; break; fi\n\
         \x20 TRIES=$((TRIES - 1))\n\
         \x20 if [ \"$TRIES\" -le 0 ]; then echo \"release $ID failed its health check after the switch: $STATUS\"; exit 1; fi\n\
         \x20 sleep 1\n\
         done",
        retries = app.health.retries,
        probe = probe_command(&app.health),
    )
}

/// The health probe as a shell command taking the socket path as its last argument: an HTTP
/// GET over the unix socket with the venv's python (always there, unlike curl).
fn probe_command(health: &crate::config::Health) -> String {
    format!(
        "\"$R/.venv/bin/python\" -c {} {} {} {}",
        quote(PROBE),
        quote(&health.path),
        quote(&health.host),
        health
            .status
            .map_or_else(|| "any".to_string(), |s| s.to_string())
    )
}

/// Python: `probe PATH HOST STATUS SOCKET`; prints the status line, fails unless the status is
/// STATUS (or, for `any`, below 500).
const PROBE: &str = r#"import socket, sys
path, host, want, sock = sys.argv[1:5]
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
try:
    s.connect(sock)
    s.sendall(("GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (path, host)).encode())
    line = s.recv(256).split(b"\r\n")[0].decode()
except OSError as e:
    print("%s: %s" % (sock, e))
    sys.exit(1)
print("GET %s -> %s" % (path, line))
code = int(line.split()[1]) if line.startswith("HTTP/") else 0
ok = 0 < code < 500 if want == "any" else code == int(want)
sys.exit(0 if ok else 1)
"#;

pub(super) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> DeployPlan {
        DeployPlan {
            deploy_to: "/srv/my app".into(),
            release: ReleaseId::parse("20261122010320").unwrap(),
            archive_sha256: "ab".repeat(32),
            python: "python3".into(),
            installer: Installer::Auto,
            requirements: "requirements/deployment.txt".into(),
            manage_py: "manage.py".into(),
            settings_module: "hello.settings.selected".into(),
            shared_dirs: vec!["var".into(), "media files".into()],
            shared_files: vec![".env".into()],
            hooks: Hooks {
                before_migrate: vec!["echo before".into()],
                after_migrate: vec![],
                after_switch: vec!["echo after".into()],
            },
            nginx: Some(NginxPlan {
                site: "/etc/nginx/sites-enabled/hello.conf".into(),
                test: "nginx -t".into(),
                reload: "nginx -s reload".into(),
                config: "server {}\n".into(),
            }),
            app: Some(AppPlan {
                conf_dir: "/etc/supervisor/conf.d".into(),
                ctl: "supervisorctl".into(),
                program: "hello-production-20261122010320".into(),
                program_glob: "hello-production-*.conf".into(),
                config: "[program:x]\n".into(),
                health: crate::config::Health::default(),
            }),
            lock_token: "token".into(),
            deployer: "alice@laptop".into(),
            revision: "abc\tdef".into(),
            break_lock: false,
            prune: vec![],
        }
    }

    fn names(script: &Script) -> Vec<&str> {
        script.steps.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn prepare_runs_every_step_before_the_switch() {
        assert_eq!(
            names(&plan().prepare("n")),
            [
                "verify",
                "unpack",
                "shared",
                "virtualenv",
                "before_migrate: echo before",
                "migrate",
                "collectstatic",
                "configs",
                "nginx-check",
                "start-app",
                "prepared"
            ]
        );
        assert_eq!(
            names(&plan().switch("n")),
            [
                "check-lock",
                "switch",
                "reload-nginx",
                "health-check",
                "after_switch: echo after",
                "finish",
                "prune",
                "stop-old-app"
            ]
        );
    }

    #[test]
    fn unmanaged_services_have_no_steps() {
        let mut plan = plan();
        plan.nginx = None;
        plan.app = None;
        let prepare = plan.prepare("n");
        assert!(!names(&prepare).contains(&"nginx-check"));
        assert!(!names(&prepare).contains(&"start-app"));
        assert!(!prepare.render().contains("shipit_ctl"));
    }

    #[test]
    fn values_are_quoted_and_scripts_parse() {
        let plan = plan();
        for script in [
            plan.begin("n"),
            plan.prepare("n"),
            plan.switch("n"),
            plan.abort("n", "host b failed"),
        ] {
            let text = script.render();
            assert!(text.contains("D='/srv/my app'"), "{text}");
            assert!(text.contains("REVISION='abc def'"));
            let check = std::process::Command::new("sh")
                .arg("-n")
                .arg("-c")
                .arg(&text)
                .status()
                .unwrap();
            assert!(check.success(), "sh -n rejects the script:\n{text}");
        }
    }

    #[test]
    fn the_switch_is_a_rename_never_rm_and_ln() {
        let script = plan().switch("n");
        let switch = &script
            .steps
            .iter()
            .find(|s| s.name == "switch")
            .unwrap()
            .body;
        assert!(switch.contains("mv -fT \"$D/.current.$ID\" \"$D/current\""));
        assert!(!switch.contains("rm "));
        assert!(!script
            .render()
            .contains("ln -sfn \"releases/$ID\" \"$D/current\""));
    }

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
