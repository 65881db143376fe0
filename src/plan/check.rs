//! The remote side of `shipit check`: one read-only script per host whose facts are the checks'
//! outcomes, and the checks themselves as data — their order, names and hints — so the command
//! only prints them.

use super::releases::Facts;
use super::step::{Cleanup, Step};
use super::Phase;

/// The checks a host reports, in the order they are shown: id (the `check:ID` fact), label,
/// and the hint shown when it fails.
pub(crate) const HOST_CHECKS: &[(&str, &str, &str)] = &[
    (
        "deploy_to",
        "deploy_to writable",
        "create it and give it to the deploy user: `install -d -o DEPLOY_USER DEPLOY_TO`",
    ),
    (
        "lock",
        "lock free",
        "wait for that run to finish; a lock whose run is gone is cleared by `shipit deploy --break-lock`",
    ),
    (
        "python",
        "python",
        "install the interpreter (Debian: `apt install python3 python3-venv`), or set project.python to one the host has, or to a version (\"3.12\") for uv to install",
    ),
    (
        "uv",
        "uv",
        "install uv (`pip install uv`, or https://docs.astral.sh/uv/), or set installer = \"pip\"",
    ),
    (
        "app",
        "process manager",
        "supervisor: start supervisord with conf_dir included and check that [targets.T.supervisor] ctl works as the deploy user; systemd: add the sudo rule of the book's systemd page, docs/src/process-managers.md (system units) or `loginctl enable-linger` (user units)",
    ),
    (
        "nginx",
        "nginx config",
        "fix what nginx reports (run the test command on the host), and make the site's directory writable by the deploy user",
    ),
    (
        "tls",
        "certificate",
        "ACME: run `shipit tls renew -t T` and read what the CA says (deploy_to/tls/renew.log and renew.out on the host); files: bring a certificate for every name and deploy",
    ),
    (
        "disk",
        "disk space",
        "free some space: `shipit releases -t T --prune --keep 2` removes old releases and unused virtualenvs",
    ),
    (
        "shared",
        "shared files",
        "create them in deploy_to/shared on the host before deploying (a deploy would link an empty file)",
    ),
    (
        "django",
        "manage.py check --deploy",
        "run `manage.py check --deploy` with the deployed settings and fix the errors it lists",
    ),
    (
        "allowed_hosts",
        "ALLOWED_HOSTS",
        "add the health check's Host header to ALLOWED_HOSTS, or set [targets.T.health] host to a name it allows",
    ),
];

/// The script every host runs: the checks, touching nothing and taking no lock.
pub(crate) fn check(shared_files: &[String]) -> Phase {
    Phase::new(vec![Step::Check(shared_files.to_vec())], Cleanup::Lock)
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    Ok,
    Fail,
    /// Does not apply (nothing deployed yet, a service shipit does not manage).
    Skip,
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Outcome {
    pub(crate) check: String,
    pub(crate) label: String,
    pub(crate) status: Status,
    pub(crate) detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) hint: Option<String>,
}

impl Outcome {
    /// An outcome of `check` (labelled `label`), with `hint` kept only for a failure.
    pub(crate) fn new(
        check: &str,
        label: &str,
        status: Status,
        detail: String,
        hint: &str,
    ) -> Outcome {
        Outcome {
            check: check.into(),
            label: label.into(),
            status,
            detail,
            hint: (status == Status::Fail).then(|| hint.to_string()),
        }
    }
}

/// The host checks' outcomes from a check script's facts, in [`HOST_CHECKS`] order, their hints
/// naming `target`; a check the host did not report is a failure (the script stopped early).
pub(crate) fn outcomes(facts: &Facts, target: &str) -> Vec<Outcome> {
    HOST_CHECKS
        .iter()
        .map(|(id, label, hint)| outcome(facts, target, id, label, hint))
        .collect()
}

/// The outcome of host check `id` alone (`shipit tls status` reports the `tls` one).
pub(crate) fn host_check(facts: &Facts, target: &str, id: &str) -> Outcome {
    let (id, label, hint) = HOST_CHECKS
        .iter()
        .find(|(known, _, _)| *known == id)
        .expect("a host check");
    outcome(facts, target, id, label, hint)
}

fn outcome(facts: &Facts, target: &str, id: &str, label: &str, hint: &str) -> Outcome {
    let (status, detail) = match crate::remote::facts::check(facts, id) {
        Some(value) => {
            let (word, detail) = value.split_once(' ').unwrap_or((value, ""));
            let status = match word {
                "ok" => Status::Ok,
                "skip" => Status::Skip,
                _ => Status::Fail,
            };
            (status, detail.to_string())
        }
        None => (Status::Fail, "the host did not report it".to_string()),
    };
    let hint = hint
        .replace("targets.T.", &format!("targets.{target}."))
        .replace("-t T ", &format!("-t {target} "))
        .replace("-t T`", &format!("-t {target}`"));
    Outcome::new(id, label, status, detail, &hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_become_outcomes_in_order_with_hints_for_failures() {
        let mut facts = Facts::new();
        facts.insert(
            "check:deploy_to".into(),
            "ok /srv/app is writable by deploy".into(),
        );
        facts.insert("check:nginx".into(), "fail `nginx -t` failed: emerg".into());
        facts.insert("check:django".into(), "skip nothing deployed yet".into());
        let got = outcomes(&facts, "production");
        assert_eq!(got.len(), HOST_CHECKS.len());
        assert_eq!(got[0].check, "deploy_to");
        assert_eq!(got[0].status, Status::Ok);
        assert_eq!(got[0].detail, "/srv/app is writable by deploy");
        assert_eq!(got[0].hint, None);
        let nginx = got.iter().find(|o| o.check == "nginx").unwrap();
        assert_eq!(nginx.status, Status::Fail);
        assert!(nginx.hint.as_deref().unwrap().contains("nginx"));
        let django = got.iter().find(|o| o.check == "django").unwrap();
        assert_eq!(django.status, Status::Skip);
        let lock = got.iter().find(|o| o.check == "lock").unwrap();
        assert_eq!(lock.status, Status::Fail, "not reported");
        let disk = got.iter().find(|o| o.check == "disk").unwrap();
        assert!(
            disk.hint
                .as_deref()
                .unwrap()
                .contains("`shipit releases -t production --prune"),
            "{disk:?}"
        );
    }
}
