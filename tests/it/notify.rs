//! Notifications on the real stack: real webhook receivers on loopback (one answering, one where
//! nothing listens, one that accepts and never answers) told of real deploys, a failure, a
//! rollback and maintenance changes. The deploy succeeds whatever the webhooks do, within the
//! timeout and retry bounds, with a warning; no secret reaches a receiver or the output.
//! Needs root.

use support::stack::*;
use support::webhook::{refused_url, Receiver};

/// The app secret the target resolves (it must reach no receiver).
const APP_SECRET: &str = "app-secret-Zq7wYx3Kp9";
/// The webhook URLs' token (it must appear in no output).
const URL_TOKEN: &str = "url-token-Mv2Lr8Tn4";
/// The bearer token (sent only as the Authorization header).
const BEARER: &str = "bearer-Hs5Jd1Wc6";

/// `[notify]`: `timeout` seconds an attempt, one retry, and `hooks` (TOML tables).
fn notify_toml(timeout: u64, hooks: &str) -> String {
    format!("\n[notify]\ntimeout = {timeout}\nretries = 1\n{hooks}")
}

/// A `[notify.webhooks.NAME]` table.
fn hook(name: &str, body: &str) -> String {
    format!("\n[notify.webhooks.{name}]\n{body}\n")
}

/// Every output of `run` and every body and path `receivers` got hold none of the secrets but
/// where they belong (the URL token in the path, the bearer token in its header).
fn assert_no_secret_leaked(run: &Run, receivers: &[&Receiver]) {
    for secret in [APP_SECRET, URL_TOKEN, BEARER] {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "{secret} in the output:\n{}\n{}",
            run.stdout,
            run.stderr
        );
        for receiver in receivers {
            for got in receiver.received() {
                assert!(!got.body.contains(secret), "{secret} sent: {}", got.body);
            }
        }
    }
}

#[test]
fn deploys_are_told_to_every_webhook_and_one_down_or_hanging_only_warns() {
    let mut stack = Stack::start();
    let receiver = Receiver::answering(200);
    let hanging = Receiver::hanging();
    let timeout = 2;
    stack.project_toml.push_str(&notify_toml(
        timeout,
        &[
            hook(
                "team",
                "url = { env = \"TEAM_HOOK_URL\" }\ntoken = { env = \"TEAM_HOOK_TOKEN\" }",
            ),
            hook(
                "phone",
                &format!(
                    "format = \"ntfy\"\nurl = \"{}\"\nevents = [\"deploy-failure\"]",
                    receiver.url("/deploys")
                ),
            ),
            hook("down", &format!("url = \"{}\"", refused_url("/x"))),
            hook("stuck", &format!("url = \"{}\"", hanging.url("/x"))),
        ]
        .concat(),
    ));
    stack.set_options(|o| {
        o.extra = "secrets = { NOTIFY_TEST_SECRET = { env = \"APP_SECRET\" } }\n\
                   hooks = { before_migrate = [\"test ! -e var/fail-next || exit 3\"] }\n"
            .into()
    });
    let team_url = receiver.url(&format!("/hooks/{URL_TOKEN}"));
    let env = [
        ("TEAM_HOOK_URL", team_url.as_str()),
        ("TEAM_HOOK_TOKEN", BEARER),
        ("APP_SECRET", APP_SECRET),
    ];
    let deploy = stack.shipit_env(&env, &["deploy", "--target", TARGET, "--json"]);
    deploy.expect_code(0).says(&[
        "warning: notification `down` (deploy-start) was not delivered after 2 attempts: the connection was refused",
        "warning: notification `down` (deploy-success) was not delivered after 2 attempts",
        "warning: notification `stuck` (deploy-success) was not delivered after 2 attempts: it timed out",
    ]);
    let result = deploy.json();
    // What the deploy waits for after its result: the hanging webhook's last notification
    // (two attempts of `timeout`, a second between them), not more.
    let waited = deploy.elapsed.as_secs_f64() - result["seconds"].as_f64().unwrap();
    let bound = (2 * timeout + 1) as f64;
    eprintln!("[notify] the deploy waited {waited:.1} s for its webhooks after its result (bound {bound} s)");
    assert!(
        waited < bound + 3.0,
        "the deploy ended {waited:.1} s after its result (bound {bound} s)"
    );
    assert!(hanging.received().is_empty());

    let team: Vec<_> = receiver
        .received()
        .into_iter()
        .filter(|r| r.path.starts_with("/hooks/"))
        .collect();
    let events: Vec<_> = team.iter().map(|r| r.json()["event"].clone()).collect();
    assert_eq!(events, ["deploy-start", "deploy-success"], "{team:?}");
    for got in &team {
        assert_eq!(got.method, "POST");
        assert_eq!(got.path, format!("/hooks/{URL_TOKEN}"));
        assert_eq!(
            got.header("authorization"),
            Some(&*format!("Bearer {BEARER}"))
        );
        assert_eq!(got.header("content-type"), Some("application/json"));
    }
    let start = team[0].json();
    assert_eq!(start["outcome"], "started");
    assert_eq!(start["release"], serde_json::Value::Null);
    let done = team[1].json();
    assert_eq!(done["outcome"], "success");
    assert_eq!(done["target"], TARGET);
    assert_eq!(done["project"], "hello");
    assert_eq!(done["release"], result["release"]);
    assert_eq!(done["revision"], stack.project.head());
    assert_eq!(start["revision"], stack.project.head());
    assert_eq!(
        done["hosts"],
        serde_json::json!([stack.host.sshd.host_spec()])
    );
    assert!(
        done["who"].as_str().unwrap().starts_with("tester@"),
        "{done}"
    );
    assert!(done["seconds"].as_f64().unwrap() > 0.0, "{done}");
    assert_eq!(done["failure"], serde_json::Value::Null);
    assert_eq!(done["shipit"]["version"], env!("CARGO_PKG_VERSION"));
    // `phone` hears of failures only.
    assert!(receiver
        .received()
        .iter()
        .all(|r| r.path.starts_with("/hooks/")));
    assert_no_secret_leaked(&deploy, &[&receiver]);

    // A deploy that fails at a step: the failure, its host and step, to `team` and `phone`.
    let flag = stack.deploy_to().join("shared/var/fail-next");
    std::fs::write(&flag, "").unwrap();
    let failed = stack.shipit_env(&env, &["deploy", "--target", TARGET, "--json"]);
    failed.expect_code(1);
    let received = receiver.received();
    let failure = received
        .iter()
        .find(|r| r.path.starts_with("/hooks/") && r.json()["event"] == "deploy-failure")
        .unwrap_or_else(|| panic!("no deploy-failure: {received:?}"))
        .json();
    assert_eq!(failure["outcome"], "failure");
    assert_eq!(failure["failure"]["host"], stack.host.sshd.host_spec());
    let step = failure["failure"]["step"].as_str().unwrap();
    assert!(
        failed.stderr.contains(step) && step.contains("migrate"),
        "step {step:?}, stderr:\n{}",
        failed.stderr
    );
    let phone = received
        .iter()
        .find(|r| r.path == "/deploys")
        .unwrap_or_else(|| panic!("ntfy got nothing: {received:?}"));
    assert_eq!(phone.header("priority"), Some("high"));
    assert_eq!(phone.header("title"), Some("hello test: deploy failed"));
    assert!(
        phone.body.contains(&format!(
            "failed at {}, step {step}",
            stack.host.sshd.host_spec()
        )),
        "{}",
        phone.body
    );
    assert_no_secret_leaked(&failed, &[&receiver]);
}

#[test]
fn rollbacks_and_maintenance_changes_are_told_and_a_missing_url_secret_only_warns() {
    let mut stack = Stack::start();
    let receiver = Receiver::answering(200);
    stack.project_toml.push_str(&notify_toml(
        5,
        &[
            hook(
                "chat",
                "format = \"slack\"\nurl = { env = \"CHAT_URL\" }\nevents = [\"rollback\", \"maintenance\"]",
            ),
            hook("unset", "url = { env = \"NOT_SET_ANYWHERE\" }"),
        ]
        .concat(),
    ));
    stack.write_config();
    let chat_url = receiver.url(&format!("/chat/{URL_TOKEN}"));
    let env = [("CHAT_URL", chat_url.as_str())];
    let first = stack.shipit_env(&env, &["deploy", "--target", TARGET, "--json"]);
    first.expect_code(0).says(&[
        "warning: notification `unset` is not sent: its url (from environment variable NOT_SET_ANYWHERE) cannot be resolved",
    ]);
    let first = first.release();
    stack.change_page("second");
    stack
        .shipit_env(&env, &["deploy", "--target", TARGET, "--json"])
        .expect_code(0);
    // Deploys are not among chat's events.
    assert!(receiver.received().is_empty(), "{:?}", receiver.received());

    let rollback = stack.shipit_env(&env, &["rollback", "--target", TARGET, "--json"]);
    rollback.expect_code(0);
    for state in ["on", "off"] {
        stack
            .shipit_env(&env, &["maintenance", "-t", TARGET, state])
            .expect_code(0);
    }
    let texts: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| {
            assert_eq!(r.path, format!("/chat/{URL_TOKEN}"));
            r.json()["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert!(
        texts[0].starts_with("hello test: rolled back\nby tester@"),
        "{}",
        texts[0]
    );
    assert!(
        texts[0].contains(&format!("release {first}")),
        "{}",
        texts[0]
    );
    assert!(
        texts[1].starts_with("hello test: maintenance on\n"),
        "{}",
        texts[1]
    );
    assert!(
        texts[2].starts_with("hello test: maintenance off\n"),
        "{}",
        texts[2]
    );
    assert!(!rollback.stderr.contains(URL_TOKEN), "{}", rollback.stderr);

    // A rollback that is refused is told as a failure.
    let refused = stack.shipit_env(
        &env,
        &["rollback", "--target", TARGET, "--to", "20000101000000"],
    );
    assert_ne!(refused.code, 0);
    let last = receiver.received().pop().unwrap().json();
    assert!(
        last["text"]
            .as_str()
            .unwrap()
            .starts_with("hello test: rollback failed\n"),
        "{last}"
    );
}
