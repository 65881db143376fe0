//! The remote side of the operator's verbs (`shipit lock`, `audit`, `run`): small phases of
//! steps that do not deploy anything.

use super::releases::Facts;
use super::step::{Cleanup, Step};
use super::Phase;

/// `shipit lock status`: who holds the lock, changing nothing.
pub(crate) fn lock_status() -> Phase {
    Phase::new(vec![Step::LockStatus], Cleanup::Lock)
}

/// `shipit lock acquire`: the layout and the lock (kept after the run: OP is `lock`).
pub(crate) fn lock_acquire() -> Phase {
    Phase::new(vec![Step::Layout, Step::Lock], Cleanup::Lock)
}

/// `shipit lock release`.
pub(crate) fn lock_release() -> Phase {
    Phase::new(vec![Step::LockRelease], Cleanup::Lock)
}

/// `shipit audit`: the deploy log, read.
pub(crate) fn audit() -> Phase {
    Phase::new(vec![Step::Audit], Cleanup::Lock)
}

/// `shipit run COMMAND`: the command in the live release.
pub(crate) fn run(command: &str) -> Phase {
    Phase::new(
        vec![Step::RequireCurrent, Step::Run(command.to_string())],
        Cleanup::Lock,
    )
}

/// One line of a host's `.shipit/log`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct LogEntry {
    /// The host whose log holds it.
    pub(crate) host: String,
    /// UTC, `YYYY-mm-ddTHH:MM:SSZ`.
    pub(crate) time: String,
    /// `user@machine` that ran shipit.
    pub(crate) who: String,
    /// deploy, rollback, prune, lock.
    pub(crate) action: String,
    pub(crate) release: String,
    pub(crate) revision: String,
    /// ok, failed: STEP, aborted: WHY, removed IDS, acquired: MSG, ...
    pub(crate) outcome: String,
    /// The shipit that wrote it, as `shipit --version` names it (`0.1.0 (f442366a1b2c
    /// 2026-05-07)`); empty in lines written before the log recorded it.
    pub(crate) shipit: String,
}

/// The log lines `step_audit` reported for `host`, in file order; a line that is not six or
/// seven tab-separated fields is kept whole as its outcome.
pub(crate) fn parse_log(host: &str, facts: &Facts) -> Vec<LogEntry> {
    crate::remote::facts::log_lines(facts)
        .map(|line| {
            let fields: Vec<&str> = line.splitn(7, '\t').collect();
            let field = |i: usize| fields.get(i).copied().unwrap_or("").to_string();
            if fields.len() >= 6 {
                LogEntry {
                    host: host.to_string(),
                    time: field(0),
                    who: field(1),
                    action: field(2),
                    release: field(3),
                    revision: field(4),
                    outcome: field(5),
                    shipit: field(6),
                }
            } else {
                LogEntry {
                    host: host.to_string(),
                    time: String::new(),
                    who: String::new(),
                    action: String::new(),
                    release: String::new(),
                    revision: String::new(),
                    outcome: line.clone(),
                    shipit: String::new(),
                }
            }
        })
        .collect()
}

/// Every host's entries merged by time (ISO times sort as text); entries of the same second
/// keep their host's order, hosts in the order given.
pub(crate) fn merge(hosts: Vec<Vec<LogEntry>>) -> Vec<LogEntry> {
    let mut all: Vec<LogEntry> = hosts.into_iter().flatten().collect();
    all.sort_by(|a, b| a.time.cmp(&b.time));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(lines: &[&str]) -> Facts {
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("log:{:09}", i + 1), l.to_string()))
            .collect()
    }

    #[test]
    fn logs_of_several_hosts_merge_by_time() {
        let a = parse_log(
            "a",
            &facts(&[
                "2026-01-01T00:00:02Z\tal@x\tdeploy\t20260101000001\tabc\tok",
                "2026-01-01T00:00:09Z\tal@x\trollback\t20260101000000\tdef\tok (from 20260101000001)",
            ]),
        );
        let b = parse_log(
            "b",
            &facts(&[
                "2026-01-01T00:00:01Z\tbo@y\tdeploy\t20260101000000\tdef\tok",
                "2026-01-01T00:00:02Z\tal@x\tdeploy\t20260101000001\tabc\tok",
                "garbage",
            ]),
        );
        assert_eq!(a[1].outcome, "ok (from 20260101000001)");
        let merged = merge(vec![a, b]);
        let order: Vec<(&str, &str)> = merged
            .iter()
            .map(|e| (e.host.as_str(), e.time.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                ("b", ""),
                ("b", "2026-01-01T00:00:01Z"),
                ("a", "2026-01-01T00:00:02Z"),
                ("b", "2026-01-01T00:00:02Z"),
                ("a", "2026-01-01T00:00:09Z"),
            ]
        );
        assert_eq!(merged[0].outcome, "garbage");
    }

    #[test]
    fn a_line_names_the_shipit_that_wrote_it_unless_it_is_older() {
        let entries = parse_log(
            "h",
            &facts(&[
                "2026-01-01T00:00:01Z\tal@x\tdeploy\t20260101000001\tabc\tok",
                "2026-01-01T00:00:02Z\tal@x\tdeploy\t20260101000002\tabc\tfailed: migrate\t0.1.0 (f442366a1b2c 2026-05-07)",
            ]),
        );
        assert_eq!(
            (entries[0].outcome.as_str(), entries[0].shipit.as_str()),
            ("ok", "")
        );
        assert_eq!(entries[1].outcome, "failed: migrate");
        assert_eq!(entries[1].shipit, "0.1.0 (f442366a1b2c 2026-05-07)");
    }

    #[test]
    fn the_log_is_read_in_file_order_by_a_real_shell() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let vars = crate::resolve::test_vars(d.to_str().unwrap());
        std::fs::create_dir_all(d.join(".shipit")).unwrap();
        let lines: Vec<String> = (0..12)
            .map(|i| format!("2026-01-01T00:00:{i:02}Z\tme@here\tdeploy\t-\t-\tline {i}"))
            .collect();
        std::fs::write(d.join(".shipit/log"), lines.join("\n") + "\n").unwrap();
        let phase = audit();
        let script = crate::plan::script::Script::new("n", vars, phase.steps, phase.cleanup);
        let (text, facts) = script.run_for_facts();
        let entries = parse_log("h", &facts);
        assert_eq!(entries.len(), 12, "{text}");
        assert_eq!(entries[10].outcome, "line 10");
        assert_eq!(entries[11].time, "2026-01-01T00:00:11Z");
    }
}
