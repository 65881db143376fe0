//! The `[notify]` table, and a target's own `[targets.T.notify]` which replaces it for that
//! target: the webhooks told when a deploy starts, succeeds or fails, when a rollback ran and when
//! maintenance mode changed. A webhook URL often *is* a credential (Slack's carries its token in
//! the path), so a URL that may carry one comes from the secrets sources, like the app's
//! `secrets`, and never sits in `shipit.toml`.

use super::*;

/// Seconds one attempt to deliver a notification may take: `timeout` when unset.
pub(crate) const DEFAULT_NOTIFY_TIMEOUT: u64 = 5;
/// Attempts after the first one fails: `retries` when unset.
pub(crate) const DEFAULT_NOTIFY_RETRIES: u32 = 2;
/// The largest `timeout`: a notification must never hold a deploy up for long.
const MAX_TIMEOUT: i64 = 60;
/// The largest `retries`.
const MAX_RETRIES: i64 = 5;

/// What a webhook is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// Every field as a JSON object (the default).
    Json,
    /// `{"text": …}`: Slack's incoming webhooks, and Mattermost's, Rocket.Chat's and Discord's
    /// Slack-compatible ones.
    Slack,
    /// ntfy's publish: the message as the body, `Title`, `Tags` and `Priority` headers.
    Ntfy,
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyEvent {
    /// A deploy built its archive and is about to touch the hosts.
    DeployStart,
    /// A deploy switched every host.
    DeploySuccess,
    /// A deploy failed after it started.
    DeployFailure,
    /// A rollback ended, well or not.
    Rollback,
    /// `shipit maintenance on|off` ended, well or not.
    Maintenance,
}

impl NotifyEvent {
    /// Every event: what a webhook without `events` is told.
    pub const ALL: [NotifyEvent; 5] = [
        NotifyEvent::DeployStart,
        NotifyEvent::DeploySuccess,
        NotifyEvent::DeployFailure,
        NotifyEvent::Rollback,
        NotifyEvent::Maintenance,
    ];

    /// The name the config and the payload use.
    pub fn name(self) -> &'static str {
        match self {
            NotifyEvent::DeployStart => "deploy-start",
            NotifyEvent::DeploySuccess => "deploy-success",
            NotifyEvent::DeployFailure => "deploy-failure",
            NotifyEvent::Rollback => "rollback",
            NotifyEvent::Maintenance => "maintenance",
        }
    }
}

/// Where a webhook's URL comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum UrlSource {
    /// Written in `shipit.toml`: only a URL without a token (no query, no `user:password@`).
    Literal(String),
    /// A secrets source (`{ env = … }`, `{ file = … }`, `{ command = … }`), resolved when a
    /// command notifies and never shown.
    Secret(SecretSource),
}

/// One webhook, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub format: WebhookFormat,
    pub url: UrlSource,
    /// Sent as `Authorization: Bearer …` (an ntfy access token, a generic receiver's token).
    pub token: Option<SecretSource>,
    /// What it is told, in [`NotifyEvent::ALL`]'s order.
    pub events: Vec<NotifyEvent>,
}

/// The notification settings of a target, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// How long one attempt may take.
    pub timeout: std::time::Duration,
    /// Attempts after a failed first one.
    pub retries: u32,
    /// The webhooks by name.
    pub webhooks: BTreeMap<String, Webhook>,
}

impl Default for Notify {
    /// No webhook: nothing is sent.
    fn default() -> Notify {
        Notify {
            timeout: std::time::Duration::from_secs(DEFAULT_NOTIFY_TIMEOUT),
            retries: DEFAULT_NOTIFY_RETRIES,
            webhooks: BTreeMap::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    timeout: Option<Spanned<i64>>,
    retries: Option<Spanned<i64>>,
    #[serde(default)]
    webhooks: BTreeMap<Spanned<String>, Spanned<RawWebhook>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    #[serde(default = "default_format")]
    format: WebhookFormat,
    url: UrlSource,
    token: Option<SecretSource>,
    events: Option<Vec<NotifyEvent>>,
}

fn default_format() -> WebhookFormat {
    WebhookFormat::Json
}

/// Validates a `notify` table whose dotted key is `table` (`notify` or `targets.T.notify`).
pub(super) fn validate_notify(source: &Source, table: &str, raw: RawNotify) -> Result<Notify> {
    let key = |k: &str| format!("{table}.{k}");
    let mut notify = Notify::default();
    if let Some(timeout) = raw.timeout {
        if !(1..=MAX_TIMEOUT).contains(timeout.get_ref()) {
            return Err(source.error(
                timeout.span(),
                key("timeout"),
                format!("must be 1 to {MAX_TIMEOUT} seconds"),
            ));
        }
        notify.timeout = std::time::Duration::from_secs(timeout.into_inner().unsigned_abs());
    }
    if let Some(retries) = raw.retries {
        if !(0..=MAX_RETRIES).contains(retries.get_ref()) {
            return Err(source.error(
                retries.span(),
                key("retries"),
                format!("must be 0 to {MAX_RETRIES}"),
            ));
        }
        notify.retries = u32::try_from(retries.into_inner()).unwrap_or(0);
    }
    for (name, hook) in raw.webhooks {
        let span = hook.span();
        let hook = hook.into_inner();
        let key = |k: &str| key(&format!("webhooks.{}.{k}", name.get_ref()));
        if !is_name(name.get_ref()) {
            return Err(source.error(
                name.span(),
                format!("{table}.webhooks.{}", name.get_ref()),
                "a webhook's name is letters, digits, `_` and `-`",
            ));
        }
        if let UrlSource::Literal(url) = &hook.url {
            literal_url(url, hook.format).map_err(|(message, hint)| {
                source.refuse(span.clone(), key("url"), message, hint)
            })?;
        }
        let events = match hook.events {
            Some(events) if events.is_empty() => {
                return Err(source.refuse(
                    span,
                    key("events"),
                    "names no event",
                    "leave `events` out to be told of every event, or remove the webhook",
                ))
            }
            Some(events) => NotifyEvent::ALL
                .into_iter()
                .filter(|e| events.contains(e))
                .collect(),
            None => NotifyEvent::ALL.to_vec(),
        };
        notify.webhooks.insert(
            name.into_inner(),
            Webhook {
                format: hook.format,
                url: hook.url,
                token: hook.token,
                events,
            },
        );
    }
    Ok(notify)
}

/// Whether `url`, written in `shipit.toml`, may stay there: an http(s) URL that carries no
/// credential. `Err((message, hint))` otherwise.
fn literal_url(url: &str, format: WebhookFormat) -> std::result::Result<(), (String, String)> {
    let from_secrets = "give it from a secrets source instead, e.g. `url = { env = \"DEPLOY_WEBHOOK_URL\" }`, so that it stays out of the repository";
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return Err((
            "must be an http:// or https:// URL".into(),
            "write the webhook's full URL".into(),
        ));
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err((
            "holds a space or a control character".into(),
            "write the URL percent-encoded".into(),
        ));
    }
    if format == WebhookFormat::Slack {
        return Err((
            "a Slack-compatible webhook's URL carries its token".into(),
            from_secrets.into(),
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    if authority.contains('@') || url.contains('?') {
        return Err((
            "a URL with `user:password@` or a query may carry a token".into(),
            from_secrets.into(),
        ));
    }
    if authority.is_empty() {
        return Err((
            "names no host".into(),
            "write the webhook's full URL".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{message, parse, GOOD};
    use super::*;

    #[test]
    fn notify_webhooks_are_read_and_a_target_table_replaces_the_top_level_one() {
        let config = parse(&format!(
            "{GOOD}\n[notify]\ntimeout = 3\nretries = 1\n\
             [notify.webhooks.chat]\nformat = \"slack\"\nurl = {{ env = \"SLACK_URL\" }}\n\
             [notify.webhooks.phone]\nformat = \"ntfy\"\nurl = \"https://ntfy.example/deploys\"\n\
             token = {{ file = \"ntfy-token\" }}\nevents = [\"deploy-failure\", \"deploy-start\"]\n\
             [targets.staging.notify]\n"
        ))
        .unwrap();
        assert_eq!(config.notify.timeout, std::time::Duration::from_secs(3));
        assert_eq!(config.notify.retries, 1);
        let chat = &config.notify.webhooks["chat"];
        assert_eq!(chat.format, WebhookFormat::Slack);
        assert_eq!(
            chat.url,
            UrlSource::Secret(SecretSource::Env("SLACK_URL".into()))
        );
        assert_eq!(chat.events, NotifyEvent::ALL);
        let phone = &config.notify.webhooks["phone"];
        assert_eq!(phone.token, Some(SecretSource::File("ntfy-token".into())));
        // In NotifyEvent::ALL's order, whatever the order written.
        assert_eq!(
            phone.events,
            [NotifyEvent::DeployStart, NotifyEvent::DeployFailure]
        );
        assert_eq!(config.target("production").unwrap().notify, None);
        // staging's own (empty) table: no webhook, the defaults.
        assert_eq!(
            config.target("staging").unwrap().notify,
            Some(Notify::default())
        );
        assert_eq!(Notify::default().timeout.as_secs(), DEFAULT_NOTIFY_TIMEOUT);
        assert_eq!(Notify::default().retries, DEFAULT_NOTIFY_RETRIES);
    }

    #[test]
    fn a_webhook_url_that_may_carry_a_token_must_come_from_a_secrets_source() {
        let hook = |body: &str| message(&format!("{GOOD}\n[notify.webhooks.w]\n{body}\n"));
        let msg =
            hook("format = \"slack\"\nurl = \"https://hooks.slack.example/services/T0/B0/xyz\"");
        assert!(
            msg.contains("`notify.webhooks.w.url`") && msg.contains("carries its token"),
            "{msg}"
        );
        for url in [
            "https://ntfy.example/t?auth=abc",
            "https://user:pass@hooks.example/x",
        ] {
            let msg = hook(&format!("url = \"{url}\""));
            assert!(msg.contains("may carry a token"), "{url}: {msg}");
        }
        let msg = hook("url = \"ftp://hooks.example/x\"");
        assert!(msg.contains("http:// or https://"), "{msg}");
        let msg = hook("url = \"https://hooks.example/x\"\nevents = []");
        assert!(msg.contains("names no event"), "{msg}");
        let msg = hook("url = \"https://hooks.example/x\"\nevents = [\"deploy\"]");
        assert!(msg.contains("unknown variant `deploy`"), "{msg}");
        let msg = message(&format!("{GOOD}\n[notify]\ntimeout = 0\n"));
        assert!(
            msg.contains("`notify.timeout`: must be 1 to 60 seconds"),
            "{msg}"
        );
        let msg = message(&format!("{GOOD}\n[targets.staging.notify]\nretries = 9\n"));
        assert!(
            msg.contains("`targets.staging.notify.retries`: must be 0 to 5"),
            "{msg}"
        );
    }
}
