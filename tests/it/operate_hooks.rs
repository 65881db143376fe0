//! What a hook knows about the run it is part of: `SHIPIT_RELEASE`, `SHIPIT_REVISION`,
//! `SHIPIT_TARGET`, `SHIPIT_HOSTS` and `SHIPIT_DEPLOYER`, seen by real hooks on the real stack.
//! Needs root.

use std::collections::BTreeMap;

use support::stack::*;

/// The `SHIPIT_*` variables a hook wrote to `file` (one `NAME=value` line each).
fn shipit_vars(file: &std::path::Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn hooks_see_the_release_revision_target_hosts_and_deployer() {
    let mut stack = Stack::start();
    stack.set_options(|o| {
        o.extra = "hooks = { before_migrate = [\"env | grep ^SHIPIT_ > var/before-migrate.env\"], \
                   after_switch = [\"env | grep ^SHIPIT_ > var/after-switch.env\"] }\n"
            .into()
    });
    let release = stack.deploy_release();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    for hook in ["before-migrate", "after-switch"] {
        let vars = shipit_vars(&stack.deploy_to().join(format!("shared/var/{hook}.env")));
        assert_eq!(vars["SHIPIT_RELEASE"], release, "{hook}: {vars:?}");
        assert_eq!(
            vars["SHIPIT_REVISION"],
            stack.project.head(),
            "{hook}: {vars:?}"
        );
        assert_eq!(vars["SHIPIT_TARGET"], TARGET, "{hook}: {vars:?}");
        assert_eq!(
            vars["SHIPIT_HOSTS"],
            stack.host.sshd.host_spec(),
            "{hook}: {vars:?}"
        );
        assert_eq!(
            vars["SHIPIT_DEPLOYER"],
            format!("tester@{}", hostname.trim()),
            "{hook}: {vars:?}"
        );
    }
}
