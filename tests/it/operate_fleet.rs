//! The operator commands on a fleet of two hosts (support::fleet): `logs` merges both hosts'
//! app logs, each line prefixed with its host; `maintenance` goes on and off on both, and when
//! one host cannot show the page, neither does. Needs root.

use support::fleet::TwoHosts;
use support::stack::*;
use support::*;

#[test]
fn logs_merge_the_hosts_and_maintenance_switches_them_together() {
    let mut two = TwoHosts::start();
    two.add_target_toml("migrate = \"each-host\"\nhealth = { path = \"/health\" }\n");
    // gunicorn writes an access log line per request into supervisor's log file.
    let listen = format!("listen = \"{}\"", two.stack.options.listen);
    two.stack.project.edit_config(
        &listen,
        &format!("{listen}\ngunicorn_args = \"--access-logfile -\""),
    );
    two.stack.project.commit_all("access log");
    let id = two.stack.deploy_release();

    // A request on each host, then the merged logs name each line's host.
    for ((_, host, http), marker) in two.hosts().into_iter().zip(["on-a", "on-b"]) {
        support::fleet::serves_release_on(host, http, &id);
        let (status, _) = http_get_unix(http, &format!("/health?marker={marker}")).unwrap();
        assert_eq!(status, 200);
    }
    let found = wait_for(SERVE_TIMEOUT, || {
        let run = two
            .stack
            .shipit(&["logs", "-t", TARGET, "-n", "100", "--grep", "marker="]);
        run.expect_code(0);
        let a = format!("{} | ", two.a_spec);
        let b = format!("{} | ", two.b_spec);
        let lines: Vec<&str> = run.stdout.lines().collect();
        (lines
            .iter()
            .any(|l| l.starts_with(&a) && l.contains("marker=on-a"))
            && lines
                .iter()
                .any(|l| l.starts_with(&b) && l.contains("marker=on-b")))
        .then(|| run.stdout.clone())
    });
    let logs = found.expect("both hosts' request lines, each with its host");
    assert!(
        logs.lines()
            .all(|l| (l.contains("on-a") && l.starts_with(&two.a_spec))
                || (l.contains("on-b") && l.starts_with(&two.b_spec))),
        "a line under the wrong host:\n{logs}"
    );

    // On, on both hosts; the health path still answers on both.
    two.stack
        .shipit(&[
            "maintenance",
            "-t",
            TARGET,
            "on",
            "--message",
            "fleet upgrade",
        ])
        .expect_code(0);
    for (_, _, http) in two.hosts() {
        let (status, body) = http_get_unix(http, "/").unwrap();
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("fleet upgrade"), "{body}");
        assert_eq!(http_get_unix(http, "/health").unwrap(), (200, "ok".into()));
    }
    two.stack
        .shipit(&["maintenance", "-t", TARGET, "off"])
        .expect_code(0);
    for (_, host, http) in two.hosts() {
        support::fleet::serves_release_on(host, http, &id);
    }

    // B's site no longer knows maintenance mode (say, an operator replaced it): turning it on
    // fails on B before A shows anything.
    let b_site = two.b.nginx.sites_dir.join("hello.conf");
    let site = std::fs::read_to_string(&b_site).unwrap();
    let without: String = site
        .lines()
        .filter(|l| !l.contains("maintenance"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&b_site, without).unwrap();
    let run = two.stack.shipit(&["maintenance", "-t", TARGET, "on"]);
    run.expect_code(1)
        .says_error(&[&two.b_spec, "does not know maintenance mode"]);
    assert!(!two.a_to.join(".shipit/maintenance.html").exists());
    let (status, _) = http_get_unix(&two.a_http, "/").unwrap();
    assert_eq!(status, 200);
}
