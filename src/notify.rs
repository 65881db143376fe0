//! Notifications: webhooks told when a deploy starts, succeeds or fails, when a rollback ran and
//! when maintenance mode changed (`[notify]`, see `config::notify`).
//!
//! A notification is a courtesy, never part of the deploy: it is sent from a thread of its own
//! per webhook, each attempt bounded by the timeout and the attempts by `retries`, and one that
//! cannot be delivered is a warning. The deploy waits for them only at its very end, so the
//! worst a webhook that is down or hangs can cost is `(retries + 1) × timeout` plus a second
//! between attempts, per notification. What is sent is built here from the run's facts (never
//! from the app's environment) and masked by the printer like everything shown, so no secret
//! leaves in one; webhook URLs and tokens from the secrets sources are masked from then on too.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};

use crate::config::{Config, Notify, NotifyEvent, UrlSource, WebhookFormat};
use crate::error::Error;
use crate::output::Printer;
use crate::resolve::{describe, secret_value, Resolved};

/// The pause between two attempts.
const BACKOFF: Duration = Duration::from_secs(1);

/// What one notification says.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Notice {
    pub(crate) event: NotifyEvent,
    pub(crate) project: String,
    pub(crate) target: String,
    /// The release deployed or rolled back to, once known.
    pub(crate) release: Option<String>,
    /// Its git revision, once known.
    pub(crate) revision: Option<String>,
    /// `user@machine` of whoever ran shipit.
    pub(crate) who: String,
    pub(crate) hosts: Vec<String>,
    /// How long the run took; `None` when it starts.
    pub(crate) seconds: Option<f64>,
    /// What failed, when the run failed.
    pub(crate) failure: Option<Failure>,
    /// Maintenance mode turned on (`true`) or off, for a maintenance change.
    pub(crate) maintenance: Option<bool>,
}

/// Where and how a run failed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    pub(crate) host: Option<String>,
    pub(crate) step: Option<String>,
    /// The error's first line.
    pub(crate) message: String,
}

impl Failure {
    fn of(error: &Error) -> Failure {
        let (host, step) = error.failed_at();
        Failure {
            host: host.map(str::to_string),
            step: step.map(str::to_string),
            message: error.to_string().lines().next().unwrap_or("").to_string(),
        }
    }
}

impl Notice {
    /// A notice of `event` for `resolved`'s target, before anything is known of the run.
    pub(crate) fn new(event: NotifyEvent, resolved: &Resolved) -> Notice {
        Notice {
            event,
            project: resolved.project.clone(),
            target: resolved.target.clone(),
            release: None,
            revision: None,
            who: resolved.deployer.clone(),
            hosts: resolved
                .hosts
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            seconds: None,
            failure: None,
            maintenance: None,
        }
    }

    /// This notice, for a run that ended after `elapsed` with `error` (none: it succeeded).
    pub(crate) fn ended(self, elapsed: Duration, error: Option<&Error>) -> Notice {
        Notice {
            seconds: Some((elapsed.as_secs_f64() * 10.0).round() / 10.0),
            failure: error.map(Failure::of),
            ..self
        }
    }

    /// `success`, `failure` or `started`.
    fn outcome(&self) -> &'static str {
        match (self.event, &self.failure) {
            (NotifyEvent::DeployStart, _) => "started",
            (NotifyEvent::DeployFailure, _) | (_, Some(_)) => "failure",
            _ => "success",
        }
    }

    /// The JSON format's body: every field.
    fn json(&self) -> Value {
        json!({
            "event": self.event.name(),
            "outcome": self.outcome(),
            "project": self.project,
            "target": self.target,
            "release": self.release,
            "revision": self.revision,
            "who": self.who,
            "hosts": self.hosts,
            "seconds": self.seconds,
            "failure": self.failure.as_ref().map(|f| json!({
                "host": f.host, "step": f.step, "message": f.message,
            })),
            "maintenance": self.maintenance,
            "shipit": crate::provenance::json(),
        })
    }

    /// A title: what happened, in a few words.
    fn title(&self) -> String {
        let what = match (self.event, self.outcome(), self.maintenance) {
            (NotifyEvent::DeployStart, ..) => "deploying",
            (NotifyEvent::Rollback, "success", _) => "rolled back",
            (NotifyEvent::Rollback, ..) => "rollback failed",
            (NotifyEvent::Maintenance, "success", Some(true)) => "maintenance on",
            (NotifyEvent::Maintenance, "success", _) => "maintenance off",
            (NotifyEvent::Maintenance, ..) => "maintenance change failed",
            (_, "failure", _) => "deploy failed",
            _ => "deployed",
        };
        format!("{} {}: {what}", self.project, self.target)
    }

    /// The chat message: the title, then one line of details.
    fn text(&self) -> String {
        let mut details = vec![format!("by {}", self.who)];
        if let Some(release) = &self.release {
            details.push(format!("release {release}"));
        }
        if let Some(revision) = &self.revision {
            details.push(format!(
                "revision {}",
                revision.get(..12).unwrap_or(revision)
            ));
        }
        details.push(format!("hosts {}", self.hosts.join(", ")));
        if let Some(seconds) = self.seconds {
            details.push(format!("{seconds:.1} s"));
        }
        details.push(format!("shipit {}", crate::provenance::VERSION));
        let mut text = format!("{}\n{}", self.title(), details.join(" · "));
        if let Some(failure) = &self.failure {
            let place = match (&failure.host, &failure.step) {
                (Some(host), Some(step)) => format!("{host}, step {step}: "),
                (Some(host), None) => format!("{host}: "),
                _ => String::new(),
            };
            text.push_str(&format!("\nfailed at {place}{}", failure.message));
        }
        text
    }

    /// This notice with every value the printer masks masked.
    fn masked(&self, printer: &Printer) -> Notice {
        let mask = |text: &String| printer.mask(text);
        Notice {
            event: self.event,
            project: mask(&self.project),
            target: mask(&self.target),
            release: self.release.as_ref().map(mask),
            revision: self.revision.as_ref().map(mask),
            who: mask(&self.who),
            hosts: self.hosts.iter().map(mask).collect(),
            seconds: self.seconds,
            failure: self.failure.as_ref().map(|f| Failure {
                host: f.host.as_ref().map(mask),
                step: f.step.as_ref().map(mask),
                message: mask(&f.message),
            }),
            maintenance: self.maintenance,
        }
    }
}

/// One HTTP request to send: its headers and body (the URL is the webhook's).
#[derive(Debug, PartialEq)]
struct Request {
    headers: Vec<(&'static str, String)>,
    body: String,
}

/// What `format` sends for `notice`.
fn request(format: WebhookFormat, notice: &Notice) -> Request {
    let json_body = |value: Value| Request {
        headers: vec![("Content-Type", "application/json".into())],
        body: value.to_string(),
    };
    match format {
        WebhookFormat::Json => json_body(notice.json()),
        WebhookFormat::Slack => json_body(json!({ "text": notice.text() })),
        WebhookFormat::Ntfy => {
            let (tags, priority) = match notice.outcome() {
                "failure" => ("rotating_light", "high"),
                "started" => ("rocket", "default"),
                _ => ("white_check_mark", "default"),
            };
            Request {
                headers: vec![
                    ("Content-Type", "text/plain; charset=utf-8".into()),
                    // Header values are ASCII: ntfy reads the title as given.
                    ("Title", ascii(&notice.title())),
                    ("Tags", tags.into()),
                    ("Priority", priority.into()),
                ],
                body: notice.text(),
            }
        }
    }
}

/// `text` with what cannot go into an HTTP header value replaced by `?`.
fn ascii(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// One webhook ready to send to.
#[derive(Clone)]
struct Hook {
    name: String,
    format: WebhookFormat,
    url: String,
    token: Option<String>,
    events: Vec<NotifyEvent>,
}

/// A worker sending one webhook's notifications, in order.
struct Worker {
    events: Vec<NotifyEvent>,
    queue: mpsc::Sender<Notice>,
    thread: JoinHandle<()>,
}

/// The webhooks of one run.
pub(crate) struct Notifier {
    workers: Vec<Worker>,
    printer: Printer,
}

impl Notifier {
    /// Starts a worker for each webhook of `resolved`; a webhook whose URL or token cannot be
    /// resolved is a warning (its name and source, never a value) and is left out.
    pub(crate) fn start(config: &Config, resolved: &Resolved, printer: &Printer) -> Notifier {
        let notify = &resolved.notify;
        let mut workers = Vec::new();
        for (name, webhook) in &notify.webhooks {
            let secret = |what: &str, from| {
                secret_value(config, from).map_err(|message| {
                    format!(
                        "notification `{name}` is not sent: its {what} (from {}) cannot be resolved: {message}",
                        describe(from)
                    )
                })
            };
            let url = match &webhook.url {
                UrlSource::Literal(url) => Ok(url.clone()),
                UrlSource::Secret(from) => secret("url", from).and_then(|url| {
                    printer.redact([url.clone()]);
                    if url.starts_with("https://") || url.starts_with("http://") {
                        Ok(url)
                    } else {
                        Err(format!("notification `{name}` is not sent: its url (from {}) is not an http:// or https:// URL", describe(from)))
                    }
                }),
            };
            let token = webhook
                .token
                .as_ref()
                .map(|from| secret("token", from))
                .transpose();
            let (url, token) = match (url, token) {
                (Ok(url), Ok(token)) => (url, token),
                (Err(warning), _) | (_, Err(warning)) => {
                    printer.warn(warning);
                    continue;
                }
            };
            printer.redact(token.clone());
            let hook = Hook {
                name: name.clone(),
                format: webhook.format,
                url,
                token,
                events: webhook.events.clone(),
            };
            workers.push(spawn(hook, notify, printer.clone()));
        }
        Notifier {
            workers,
            printer: printer.clone(),
        }
    }

    /// Queues `notice` for every webhook told of its event, and returns at once.
    pub(crate) fn send(&self, notice: &Notice) {
        let notice = notice.masked(&self.printer);
        for worker in &self.workers {
            if worker.events.contains(&notice.event) {
                // A worker ends only when its queue closes (in `finish`).
                let _ = worker.queue.send(notice.clone());
            }
        }
    }

    /// Queues `notice` as [`Notifier::send`] does, then waits until every webhook has had all
    /// its notifications delivered or given up.
    pub(crate) fn finish(self, notice: &Notice) {
        self.send(notice);
        for worker in self.workers {
            drop(worker.queue);
            let _ = worker.thread.join();
        }
    }
}

/// A run's webhooks and what they were told when it started: `None` until the run is about to
/// touch the hosts (a run that fails before tells nobody).
pub(crate) type Told = Option<(Notifier, Notice)>;

/// Tells the webhooks of `told` how the run ended after `elapsed` (failed with `error`, if
/// any): the start's notice as `end` changes it. Waits for every webhook.
pub(crate) fn finish(
    told: Told,
    end: impl FnOnce(Notice) -> Notice,
    elapsed: Duration,
    error: Option<&Error>,
) {
    if let Some((notifier, start)) = told {
        notifier.finish(&end(start).ended(elapsed, error));
    }
}

/// A thread that sends `hook` what its queue brings until the queue closes.
fn spawn(hook: Hook, notify: &Notify, printer: Printer) -> Worker {
    let (queue, notices) = mpsc::channel::<Notice>();
    let events = hook.events.clone();
    let timeout = notify.timeout;
    let attempts = notify.retries + 1;
    let thread = std::thread::spawn(move || {
        let agent = agent(timeout);
        for notice in notices {
            let request = request(hook.format, &notice);
            if let Err(why) = deliver(&agent, &hook, &request, attempts) {
                printer.warn(format!(
                    "notification `{}` ({}) was not delivered after {attempts} attempt{}: {why}",
                    hook.name,
                    notice.event.name(),
                    if attempts == 1 { "" } else { "s" }
                ));
            }
        }
    });
    Worker {
        events,
        queue,
        thread,
    }
}

/// An HTTP client whose every request ends within `timeout`, whatever the server does.
fn agent(timeout: Duration) -> ureq::Agent {
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::NativeTls)
        .build();
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent(format!("shipit/{}", crate::provenance::VERSION))
        .tls_config(tls)
        .build()
        .into()
}

/// Posts `request` to `hook`, up to `attempts` times; a 2xx answer delivers it, and a 4xx one
/// (but 408 and 429) is final. `Err`: why the last attempt failed, never naming the URL.
fn deliver(
    agent: &ureq::Agent,
    hook: &Hook,
    request: &Request,
    attempts: u32,
) -> std::result::Result<(), String> {
    let mut why = String::new();
    for attempt in 0..attempts {
        if attempt > 0 {
            std::thread::sleep(BACKOFF);
        }
        let mut post = agent.post(&hook.url);
        for (name, value) in &request.headers {
            post = post.header(*name, value);
        }
        if let Some(token) = &hook.token {
            post = post.header("Authorization", format!("Bearer {token}"));
        }
        match post.send(request.body.as_bytes()) {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => {
                let status = response.status();
                why = format!("the webhook answered HTTP {}", status.as_u16());
                if status.is_client_error() && ![408, 429].contains(&status.as_u16()) {
                    break;
                }
            }
            Err(error) => why = failure(&error),
        }
    }
    Err(why)
}

/// Why a request failed, in words that never name the URL.
fn failure(error: &ureq::Error) -> String {
    match error {
        ureq::Error::Timeout(_) => "it timed out".into(),
        ureq::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "the connection was refused".into(),
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "it timed out".into(),
            kind => format!("input/output error ({kind})"),
        },
        ureq::Error::HostNotFound => "the webhook's host name was not found".into(),
        ureq::Error::ConnectionFailed => "the connection failed".into(),
        ureq::Error::Tls(_) | ureq::Error::NativeTls(_) | ureq::Error::Der(_) => {
            "the TLS handshake failed".into()
        }
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => "the URL is not valid".into(),
        _ => "the request failed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(event: NotifyEvent) -> Notice {
        Notice {
            event,
            project: "hello".into(),
            target: "production".into(),
            release: Some("20261207221500".into()),
            revision: Some("0123456789abcdef0123456789abcdef01234567".into()),
            who: "alice@laptop".into(),
            hosts: vec!["deploy@web1".into(), "deploy@web2".into()],
            seconds: Some(12.3),
            failure: None,
            maintenance: None,
        }
    }

    fn failed() -> Notice {
        Notice {
            failure: Some(Failure {
                host: Some("deploy@web2".into()),
                step: Some("migrate".into()),
                message: "deploy@web2: step migrate failed (exit status 1)".into(),
            }),
            ..notice(NotifyEvent::DeployFailure)
        }
    }

    #[test]
    fn the_json_format_sends_every_field() {
        let sent = request(WebhookFormat::Json, &failed());
        assert_eq!(
            sent.headers,
            vec![("Content-Type", "application/json".into())]
        );
        let body: Value = serde_json::from_str(&sent.body).unwrap();
        assert_eq!(body["event"], "deploy-failure");
        assert_eq!(body["outcome"], "failure");
        assert_eq!(body["target"], "production");
        assert_eq!(body["release"], "20261207221500");
        assert_eq!(body["revision"], "0123456789abcdef0123456789abcdef01234567");
        assert_eq!(body["who"], "alice@laptop");
        assert_eq!(body["hosts"], json!(["deploy@web1", "deploy@web2"]));
        assert_eq!(body["seconds"], 12.3);
        assert_eq!(body["failure"]["host"], "deploy@web2");
        assert_eq!(body["failure"]["step"], "migrate");
        assert_eq!(body["shipit"], crate::provenance::json());
        assert_eq!(body["maintenance"], Value::Null);
    }

    #[test]
    fn the_slack_format_sends_one_text() {
        let sent = request(WebhookFormat::Slack, &failed());
        assert_eq!(
            sent.body,
            json!({ "text": format!(
                "hello production: deploy failed\n\
                 by alice@laptop · release 20261207221500 · revision 0123456789ab · hosts deploy@web1, deploy@web2 · 12.3 s · shipit {}\n\
                 failed at deploy@web2, step migrate: deploy@web2: step migrate failed (exit status 1)",
                crate::provenance::VERSION
            )})
            .to_string()
        );
    }

    #[test]
    fn the_ntfy_format_sends_the_text_with_a_title_tags_and_a_priority() {
        let start = Notice {
            release: None,
            seconds: None,
            ..notice(NotifyEvent::DeployStart)
        };
        let sent = request(WebhookFormat::Ntfy, &start);
        assert_eq!(
            sent.headers,
            vec![
                ("Content-Type", "text/plain; charset=utf-8".into()),
                ("Title", "hello production: deploying".into()),
                ("Tags", "rocket".into()),
                ("Priority", "default".into()),
            ]
        );
        assert!(
            sent.body.starts_with(
                "hello production: deploying\nby alice@laptop · revision 0123456789ab · hosts"
            ),
            "{}",
            sent.body
        );
        let failure = request(WebhookFormat::Ntfy, &failed());
        assert!(failure.headers.contains(&("Priority", "high".into())));
        assert!(failure.headers.contains(&("Tags", "rotating_light".into())));
    }

    #[test]
    fn titles_say_what_happened() {
        let title = |n: Notice| n.title();
        assert_eq!(
            title(notice(NotifyEvent::DeploySuccess)),
            "hello production: deployed"
        );
        assert_eq!(
            title(notice(NotifyEvent::Rollback)),
            "hello production: rolled back"
        );
        let failed_rollback = Notice {
            event: NotifyEvent::Rollback,
            ..failed()
        };
        assert_eq!(title(failed_rollback), "hello production: rollback failed");
        let on = Notice {
            maintenance: Some(true),
            ..notice(NotifyEvent::Maintenance)
        };
        assert_eq!(title(on), "hello production: maintenance on");
        let off = Notice {
            maintenance: Some(false),
            ..notice(NotifyEvent::Maintenance)
        };
        assert_eq!(title(off), "hello production: maintenance off");
    }

    #[test]
    fn a_notice_is_masked_like_output() {
        let printer = Printer::new(
            crate::output::Verbosity::Quiet,
            false,
            crate::cli::ColorChoice::Never,
        );
        printer.redact(["hunter2-secret".to_string()]);
        let leaky = Notice {
            failure: Some(Failure {
                host: None,
                step: None,
                message: "the hook printed hunter2-secret".into(),
            }),
            ..notice(NotifyEvent::DeployFailure)
        };
        let masked = leaky.masked(&printer);
        assert_eq!(
            masked.failure.unwrap().message,
            format!("the hook printed {}", crate::redact::MASK)
        );
    }

    #[test]
    fn header_values_are_ascii() {
        assert_eq!(ascii("héllo\nworld"), "h?llo?world");
    }
}
