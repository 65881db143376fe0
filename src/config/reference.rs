//! The configuration reference: every key of `shipit.toml`, its default and what it means, with
//! the defaults taken from the model's constants. It exists for its tests, as uv's
//! `generate_options_reference` does: they render it into the tables of the book's
//! configuration pages (`docs/src/config/*.md`) and fail when a table is stale
//! (`SHIPIT_BLESS=1 cargo test --lib config::reference` rewrites them), they fail when the model
//! accepts a key the reference does not document (the model's keys are traced from its serde
//! structs, see `reference/trace.rs`), and they check `shipit config`'s rows and the commented
//! defaults of `conf/shipit.toml` against it.

use super::*;

mod trace;

/// A key's default as the reference states it.
enum Default {
    /// The key must be set.
    Required,
    /// A literal value, taken from the model.
    Value(toml::Value),
    /// Described: computed from other settings, or the absence of a value.
    Text(&'static str),
}

/// One key of the reference.
struct Key {
    /// Dotted path; `<t>` stands for a target's name.
    key: &'static str,
    default: Default,
    doc: &'static str,
    /// Whether `shipit config` shows it as a row of its own.
    shown: bool,
}

fn key(key: &'static str, default: Default, doc: &'static str) -> Key {
    Key {
        key,
        default,
        doc,
        shown: true,
    }
}

/// A key `shipit config` does not list as a setting (it shows it elsewhere, or not at all).
fn unshown(key: &'static str, default: Default, doc: &'static str) -> Key {
    Key {
        shown: false,
        ..self::key(key, default, doc)
    }
}

fn value(value: impl Into<toml::Value>) -> Default {
    Default::Value(value.into())
}

use Default::{Required, Text};

fn keys() -> Vec<Key> {
    let empty = || value(toml::value::Array::new());
    vec![
        key("project.name", Required, "letters, digits, `_`, `-`; names services and archives"),
        key("project.python", Text("`.python-version`'s version, else `python3`"), "interpreter on the hosts that creates the venv: a path or command, or a version (`\"3.12\"`) that uv finds on the host or installs (uv itself is installed with pip when missing; installing needs a host that can download from python-build-standalone, or `UV_PYTHON_INSTALL_MIRROR`)"),
        key("project.settings_module", Text("`<name>.settings.selected`"), "`DJANGO_SETTINGS_MODULE` on hosts; a template (`{{ environment }}`)"),
        key("project.wsgi_app", Text("`<name>.wsgi:application`"), "what gunicorn serves"),
        key("project.asgi_app", Text("`<name>.asgi:application`"), "what uvicorn serves (a target with `server = \"uvicorn\"`)"),
        key("project.manage_py", value(DEFAULT_MANAGE_PY), ""),
        key("project.deploy_map", value(DEFAULT_DEPLOY_MAP), "selector templates (missing file: none)"),
        key("project.templates_dir", value(DEFAULT_TEMPLATES_DIR), "project templates overriding the built-in ones"),
        key("project.exclude", empty(), "gitignore patterns never archived"),
        key("project.include", empty(), "gitignore patterns archived even if secret-looking"),
        unshown("project.build", empty(), "commands run locally in the project before archiving (`npm ci`, `npm run build`); they see `SHIPIT_TARGET`, `SHIPIT_ENVIRONMENT`; a failing one stops everything before any host is touched, with its exit status and last lines"),
        unshown("project.artifacts", empty(), "files or directories the build commands make (git-untracked) that go into the archive, under the same exclude, secret and symlink rules"),
        unshown("project.requirements.<env>", Text("`requirements/<env>.txt`; `uv.lock` when the project has one and no `requirements/`"), "what each environment installs: a pip-compiled requirements file, or a `uv.lock` (exported with `uv export --frozen` at build time, so `uv` must be installed where shipit runs; the target's `extras` and `groups` are passed on). `shipit config` shows each target's as `requirements`"),
        key("targets.<t>.transport", value(TransportKind::default().name()), "`local` runs on this machine (no hosts)"),
        key("targets.<t>.hosts", Text("required for ssh"), "`user@host:port`, or a `~/.ssh/config` alias; a host (name and port, any user) listed twice is refused"),
        key("targets.<t>.deploy_to", Required, "absolute base directory on the hosts, written normalised (no `.`, `..`, `//` or trailing `/`); not `/`, nothing under `/etc`, `/usr`, `/bin`, `/sbin`, `/boot`, `/proc`, `/sys`, `/dev`, `/run` or `/lib*`, and not a shared parent such as `/srv` or `/var/lib` itself"),
        key("targets.<t>.environment", Required, "e.g. `deployment`, `staging`: requirements and selector"),
        key("targets.<t>.extras", Text("`[]`"), "optional dependencies installed from a `uv.lock` (`uv export --extra`)"),
        key("targets.<t>.groups", Text("`[]`"), "dependency groups installed from a `uv.lock` (`uv export --group`); `dev` and the other default groups are not installed unless named"),
        key("targets.<t>.keep_releases", value(DEFAULT_KEEP_RELEASES), "good releases kept"),
        key("targets.<t>.shared_dirs", empty(), "kept in `shared/`, linked into each release; relative paths inside the release, not the release itself (`.`), not in `.shipit` or `.venv`, and none inside another or in both lists"),
        key("targets.<t>.shared_files", empty(), "as `shared_dirs`, for files"),
        key("targets.<t>.identity_file", Text(""), "SSH key, for the jump hosts too; relative paths are relative to the project directory"),
        key("targets.<t>.known_hosts", Text(""), "extra trusted known_hosts (new keys recorded there), for the jump hosts too; relative paths are relative to the project directory"),
        unshown("targets.<t>.jump", Text("ssh config's ProxyJump"), "jump hosts, `\"user@bastion:22\"` or a chain `\"a,b\"`; `\"none\"` connects directly"),
        key("targets.<t>.installer", value(Installer::default().to_string()), "`uv` when the host has it, else pip; or force `uv` / `pip`"),
        key("targets.<t>.server", value(Server::default().name()), "the app server: `gunicorn` (WSGI, `project.wsgi_app`) or `uvicorn` (ASGI, `project.asgi_app`, as gunicorn's worker class: the requirements must pin `uvicorn-worker` and, for websockets, `websockets`); see [ASGI and websockets](../asgi.md)"),
        unshown("targets.<t>.vars", Text("`{}`"), "free-form template variables (`server_name`, `listen`, `workers`, ...); one the built-in nginx, supervisor or systemd templates read is one line without `;`, `{` or `}`"),
        unshown("targets.<t>.env", Text("`{}`"), "the app's environment: plain values (shown by `--dry-run`); not a name the deploy scripts or `sh` use (`PATH`, `IFS`, `D`, `MANAGE`, `SHIPIT_*`, ...: the error names it)"),
        unshown("targets.<t>.secrets", Text("`{}`"), "`NAME = { env = \"VAR\" }`, `{ file = \"path\" }` or `{ command = \"pass show x\" }`: resolved on the deploying machine, never shown; names as for `env`"),
        key("targets.<t>.app_user", Text("the deploy user"), "account the app server runs as (supervisor `user=`, systemd `User=` of system units)"),
        key("targets.<t>.allow_root", value(false), "let the app server run as root (refused otherwise)"),
        key("targets.<t>.primary", Text("first host"), "the host that runs once-steps (`migrate`, `once` hooks, a rollback's unapply) and `once` processes"),
        key("targets.<t>.migrate", value(MigrateOn::default().name()), "`once` (one shared database) or `each-host` (a database per host, e.g. SQLite)"),
        key("targets.<t>.batch", Text("all hosts"), "hosts switched at a time, each batch health-checked before the next"),
        key("targets.<t>.prepared_timeout", value(i64::from(DEFAULT_PREPARED_TIMEOUT)), "seconds a prepared host of a fleet waits for its switch; then it abandons the new release (stops its app server) and gives its lock back, and at once when the shipit that prepared it is gone (killed): no `--break-lock` needed (1 to 86400), see [Fleets](../fleets.md#a-killed-shipit-prepared_timeout)"),
        unshown("targets.<t>.processes", Text("`{}`"), "`NAME = \"command\"` or a table of `run`, `role`, `replicas`, `stop_timeout`, `once`: processes besides gunicorn (Celery worker, beat), see [Processes and roles](../fleets.md#processes-and-roles)"),
        unshown("targets.<t>.processes.<p>.run", Required, "a process's table form: its command, run in the release with its venv and environment"),
        unshown("targets.<t>.processes.<p>.role", value(DEFAULT_PROCESS_ROLE), "the hosts of this role run it"),
        unshown("targets.<t>.processes.<p>.replicas", value(DEFAULT_REPLICAS), "copies per host"),
        unshown("targets.<t>.processes.<p>.stop_timeout", value(DEFAULT_STOP_TIMEOUT), "seconds a stopping process has to finish before it is killed"),
        unshown("targets.<t>.processes.<p>.once", value(false), "one instance across the target, on the primary, handed over at the switch"),
        unshown("targets.<t>.schedule", Text("`{}`"), "`\"CRON\" = \"command\"` (or a list): run on the primary in `current`, see [Processes and roles](../fleets.md#processes-and-roles); under systemd as timers"),
        unshown("targets.<t>.roles", Text("every host carries every role"), "`ROLE = [\"host\", ...]`: `web` hosts get nginx and gunicorn, other roles the processes that name them; a host listed under no role carries them all"),
        key("targets.<t>.nginx", Text("unmanaged"), "the table: nginx site management"),
        key("targets.<t>.nginx.site", Required, "absolute path the site is installed at"),
        key("targets.<t>.nginx.test", value(DEFAULT_NGINX_TEST), "command that checks the nginx configuration"),
        key("targets.<t>.nginx.reload", value(DEFAULT_NGINX_RELOAD), "command that reloads nginx"),
        key("targets.<t>.nginx.websocket_paths", empty(), "URL path prefixes (`[\"/ws/\"]`) whose websocket upgrades nginx passes to the app server (HTTP/1.1, `Upgrade` and `Connection` headers, one hour idle)"),
        unshown("targets.<t>.tls", Text("plain http"), "the table: the nginx site over https (needs `[nginx]`), with a certificate from files (`certificate` and `key`) or issued by ACME (the other keys); the certificate belongs to the target, in `deploy_to/tls` outside every release (never archived, never rolled back); port 80 answers ACME's challenge and redirects everything else with 308; vars `listen` (http) and `https_listen` (default: `port`) say where nginx listens"),
        unshown("targets.<t>.tls.certificate", Text("ACME"), "the certificate chain (PEM), from a secrets source: `{ file = \"...\" }`, `{ env = \"...\" }` or `{ command = \"...\" }`; written 0600 on the hosts, replaced atomically"),
        unshown("targets.<t>.tls.key", Text("ACME"), "its private key, from a secrets source as `certificate`; masked in output, never on a command line"),
        unshown("targets.<t>.tls.directory", value(DEFAULT_ACME_DIRECTORY), "ACME mode: the directory URL (Let's Encrypt's staging: `https://acme-staging-v02.api.letsencrypt.org/directory`); the hosts run Debian's `certbot`, as the deploy user, answering http-01 from `deploy_to/tls/webroot`"),
        unshown("targets.<t>.tls.email", Text("none"), "ACME mode: the account's contact email"),
        unshown("targets.<t>.tls.domains", Text("`vars.server_name`'s names"), "ACME mode: the names the certificate covers; each must resolve to the hosts"),
        unshown("targets.<t>.tls.directory_ca", Text("the system's CAs"), "ACME mode: a CA bundle on the hosts that trusts the directory's own TLS (an internal CA; pebble in tests)"),
        unshown("targets.<t>.tls.renew", Text("twice a day, at a minute and hours of the target and host"), "ACME mode: when each web host's timer runs `deploy_to/tls/renew` (cron, as `schedule`): a systemd timer, or shipit's scheduler under supervisor; it renews when a third of the lifetime is left"),
        unshown("targets.<t>.tls.port", value(i64::from(DEFAULT_HTTPS_PORT)), "the port https is served on and http redirects to"),
        unshown("targets.<t>.tls.hsts", Text("off"), "`{ max_age = N, include_subdomains = true, preload = true }` sends `Strict-Transport-Security` (`max_age` defaults to two years, the others to false)"),
        unshown("targets.<t>.tls.hsts.max_age", value(i64::try_from(DEFAULT_HSTS_MAX_AGE).unwrap()), "seconds browsers keep to https (`max-age`)"),
        unshown("targets.<t>.tls.hsts.include_subdomains", value(false), "adds `includeSubDomains`"),
        unshown("targets.<t>.tls.hsts.preload", value(false), "adds `preload`"),
        key("targets.<t>.app.manager", Text("the manager whose table is given; unmanaged without one"), "`supervisor`, `systemd` or `auto` (systemd where it runs the host)"),
        key("targets.<t>.supervisor.conf_dir", value(DEFAULT_SUPERVISOR_CONF_DIR), "included by supervisord"),
        key("targets.<t>.supervisor.ctl", value(DEFAULT_SUPERVISORCTL), "supervisorctl command prefix"),
        key("targets.<t>.systemd.scope", value(SystemdScope::default().name()), "`system` or `user`"),
        key("targets.<t>.systemd.ctl", value(DEFAULT_SYSTEMCTL[SystemdScope::System as usize]), "systemctl command prefix (`user` scope: `systemctl --user`)"),
        key("targets.<t>.systemd.journal", value(DEFAULT_JOURNALCTL[SystemdScope::System as usize]), "journalctl command prefix (`user` scope: `journalctl --user`)"),
        key("targets.<t>.systemd.requires", Text("`[]`"), "local services the units start after and want (`[\"postgresql\", \"redis-server\"]`): `After=` and `Wants=`, so after a reboot the app does not start before its database"),
        key("targets.<t>.systemd.hardening", Text("`true` for system units"), "`NoNewPrivileges`, `PrivateTmp` (unless `deploy_to` is under `/tmp` or `/var/tmp`), `ProtectSystem=strict` with `deploy_to` writable (`ReadWritePaths`), `ProtectHome=read-only`; `false` turns them off (an app that writes outside deploy_to)"),
        key("targets.<t>.health.path", value(DEFAULT_HEALTH_PATH), "path requested"),
        key("targets.<t>.health.status", Text("any 2xx or 3xx"), "status expected; a 4xx (say, a 400 for a Host header not in `ALLOWED_HOSTS`) fails the deploy at once, with a hint, instead of waiting out `timeout`"),
        key("targets.<t>.health.host", Text("the first entry of the release's `ALLOWED_HOSTS` (`*`: `localhost`; `.example.com`: `example.com`)"), "`Host` header sent (must be in `ALLOWED_HOSTS`)"),
        key("targets.<t>.health.timeout", value(DEFAULT_HEALTH_TIMEOUT), "seconds a new app server has to answer, before the switch"),
        key("targets.<t>.health.retries", value(DEFAULT_HEALTH_RETRIES), "attempts, one second apart, after the switch before it is reverted"),
        key("targets.<t>.migrations.gate", value(GateMode::default().name()), "what a migration that would break the live release until the switch does to the deploy (dropping or renaming a column or table the live code uses, NOT NULL without a database default, a type change, an index without CONCURRENTLY on PostgreSQL): `refuse` stops it before anything is migrated (exit 5), `warn` says so and goes on, `off` judges nothing; `deploy --allow-breaking-migrations` lets a refused one through, recorded in the deploy log"),
        key("targets.<t>.migrations.strict", value(false), "`true`: an operation the gate cannot judge (`RunPython`, most `RunSQL`) counts as breaking"),
        key("targets.<t>.migrations.allow", empty(), "migrations (`app_label.migration_name`) let through whatever they do, e.g. `[\"shop.0007_backfill\"]`"),
        key("targets.<t>.migrations.after_switch", empty(), "migrations (`app_label.migration_name`) applied once every host has switched, on the primary, under migrate's advisory lock: the gate does not judge them or anything after them in their app or depending on them (django-safemigrate's `Safe.after_deploy` and django-syzygy's `Stage.POST_DEPLOY` marks count as listed); a failure there is reported and the switch stands"),
        key("targets.<t>.database.backup", value(Backup::default().name()), "`before-migrate`: before a deploy's migrate applies a migration (after the gate let it through), the primary takes a snapshot of the default database into `deploy_to/.shipit/snapshots` (`pg_dump -Fc` for PostgreSQL, the sqlite3 backup API for SQLite); a failed snapshot stops the deploy before migrate. `off`: only `shipit db backup` takes one"),
        key("targets.<t>.database.keep", value(0), "how many snapshots are kept on the primary, the oldest removed first; `0` keeps them all"),
        key("targets.<t>.hooks.before_migrate", empty(), "commands run in the release with its venv and environment, plus `SHIPIT_RELEASE`, `SHIPIT_REVISION`, `SHIPIT_TARGET`, `SHIPIT_HOSTS` (space-separated) and `SHIPIT_DEPLOYER` (`user@machine`), e.g. `after_switch = [\"curl -d \\\"$SHIPIT_RELEASE by $SHIPIT_DEPLOYER\\\" $CHAT_HOOK\"]`; `{ run = \"...\", once = true }` runs on the primary only"),
        key("targets.<t>.hooks.after_migrate", empty(), "as `before_migrate`, after `migrate` and `collectstatic`, before the switch"),
        unshown("targets.<t>.hooks.<hook>[].run", Required, "a hook's table form (`{ run = \"...\", once = true }`, in any of the three lists): the command"),
        unshown("targets.<t>.hooks.<hook>[].once", value(false), "run it on the primary host only"),
        key("targets.<t>.hooks.after_switch", empty(), "as `before_migrate`, after `current` is switched and services reloaded"),
        unshown("targets.<t>.notify", Text("the top-level `[notify]`"), "the table: this target's own notification settings (the keys of `[notify]`), which replace the top-level ones; an empty table sends nothing"),
        unshown("image.base", Text("required by `shipit image`"), "the base image: an OCI layout `[oci:]DIR[:REF]` (relative to the project), e.g. made by `skopeo copy`"),
        unshown("image.python", Text("required by `shipit image`"), "the base's interpreter, an absolute path ending in `pythonX.Y` (`/usr/local/bin/python3.12`)"),
        unshown("aliases.<name>", Text("none"), "a short name for a command `shipit run` and `shipit console` run (`dbshell = \"./manage.py dbshell\"`); the alias `console` is `shipit console`'s default command"),
        unshown("image.port", value(i64::from(DEFAULT_IMAGE_PORT)), "`PORT` in the image: gunicorn listens on `0.0.0.0:$PORT`"),
        unshown("notify.timeout", value(i64::try_from(DEFAULT_NOTIFY_TIMEOUT).unwrap()), "seconds one attempt to deliver a notification may take (1 to 60)"),
        unshown("notify.retries", value(i64::from(DEFAULT_NOTIFY_RETRIES)), "attempts after a failed first one (0 to 5), a second apart; a notification that is not delivered is a warning, never a failure"),
        unshown("notify.webhooks.<name>.format", value("json"), "`json` (every field), `slack` (`{\"text\": …}`, Slack-compatible) or `ntfy` (text body, `Title`, `Tags`, `Priority`)"),
        unshown("notify.webhooks.<name>.url", Required, "an http(s) URL without a query or `user:password@`, or a secrets source (`{ env = \"VAR\" }`, `{ file = … }`, `{ command = … }`): required for `slack`, whose URL carries its token"),
        unshown("notify.webhooks.<name>.token", Text(""), "a secrets source sent as `Authorization: Bearer …`"),
        unshown("notify.webhooks.<name>.events", Text("every event"), "some of `deploy-start`, `deploy-success`, `deploy-failure`, `rollback`, `maintenance`"),
    ]
}

/// The default as the table shows it.
fn shown_default(default: &Default) -> String {
    match default {
        Required => "required".into(),
        Default::Value(toml::Value::String(text)) => format!("`{text}`"),
        Default::Value(value) => format!("`{value}`"),
        Text(text) => text.to_string(),
    }
}

/// The book's configuration pages, each holding one or more tables of the reference.
const PAGES: &str = "docs/src/config";

/// A table of the reference in a page starts with `<!-- reference: PREFIX -->` and holds the
/// keys whose longest matching prefix, among every page's tables, is PREFIX.
const START: &str = "<!-- reference: ";
const END: &str = "<!-- end of reference -->\n";

/// Whether `key` is `prefix` or below it.
fn under(key: &str, prefix: &str) -> bool {
    key == prefix
        || key
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// A table of keys as a page shows it.
fn markdown(keys: &[&Key]) -> String {
    let mut out = String::from("| key | default | meaning |\n| --- | --- | --- |\n");
    for k in keys {
        let doc = k.doc.replace('|', "\\|");
        out.push_str(&format!(
            "| `{}` | {} | {doc} |\n",
            k.key,
            shown_default(&k.default)
        ));
    }
    out
}

/// Every configuration page: its path and text.
fn pages() -> Vec<(std::path::PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(PAGES);
    let mut pages: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path, text)
        })
        .collect();
    pages.sort();
    pages
}

/// The prefixes of a page's tables, in order.
fn prefixes(text: &str) -> Vec<&str> {
    text.match_indices(START)
        .map(|(at, _)| {
            let rest = &text[at + START.len()..];
            rest[..rest.find(" -->").expect("a marker ends with -->")].trim()
        })
        .collect()
}

/// `text` with each of its tables rendered from `keys` (each key in the table of the longest
/// prefix that holds it, among `all` prefixes).
fn render(text: &str, keys: &[Key], all: &[&str]) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(START) {
        let line_end = at + rest[at..].find('\n').expect("a marker is a line") + 1;
        let prefix = prefixes(&rest[at..line_end])[0];
        let end = line_end
            + rest[line_end..]
                .find(END)
                .unwrap_or_else(|| panic!("the table of `{prefix}` has no end marker"));
        let mine: Vec<&Key> = keys
            .iter()
            .filter(|k| owner(k.key, all) == Some(prefix))
            .collect();
        out.push_str(&rest[..line_end]);
        out.push_str(&markdown(&mine));
        out.push_str(END);
        rest = &rest[end + END.len()..];
    }
    out.push_str(rest);
    out
}

/// The prefix whose table documents `key`: the longest that holds it.
fn owner<'a>(key: &str, all: &[&'a str]) -> Option<&'a str> {
    all.iter()
        .filter(|prefix| under(key, prefix))
        .max_by_key(|prefix| prefix.len())
        .copied()
}

#[test]
fn the_configuration_pages_show_the_reference() {
    let pages = pages();
    let all: Vec<&str> = pages.iter().flat_map(|(_, text)| prefixes(text)).collect();
    let keys = keys();
    let homeless: Vec<&str> = keys
        .iter()
        .map(|k| k.key)
        .filter(|key| owner(key, &all).is_none())
        .collect();
    assert!(
        homeless.is_empty(),
        "no page of {PAGES} has a table for {homeless:?}"
    );
    let mut stale = Vec::new();
    for (path, text) in &pages {
        let wanted = render(text, &keys, &all);
        if *text == wanted {
            continue;
        }
        if std::env::var_os("SHIPIT_BLESS").is_some() {
            std::fs::write(path, wanted).unwrap();
        } else {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "configuration tables are stale in {stale:?}; rewrite them with \
         `SHIPIT_BLESS=1 cargo test --lib config::reference`"
    );
}

/// Every key the model accepts: traced from [`RawConfig`], plus the table forms of its untagged
/// values.
fn accepted() -> std::collections::BTreeSet<String> {
    let found = trace::keys::<RawConfig>("");
    let mut keys = found.keys;
    for path in &found.any {
        keys.extend(table_form(path));
    }
    keys
}

/// The keys of the table form of the untagged value at `path` (free-form values have none).
fn table_form(path: &str) -> std::collections::BTreeSet<String> {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().unwrap_or_default();
    let parent = parts.last().copied().unwrap_or_default();
    match (parent, last) {
        // `NAME = "command"` or `{ run = ..., role = ... }`.
        ("processes", "<p>") => trace::keys::<processes::RawProcessTable>(path).keys,
        // `"command"` or `{ run = ..., once = true }`, in any of the hook lists.
        ("hooks", _) if last.ends_with("[]") => {
            trace::keys::<HookTable>(&format!("{}.<hook>[]", parts.join("."))).keys
        }
        // Template variables are any TOML value; a schedule entry is a command or a list.
        ("vars" | "schedule", "<name>") => std::collections::BTreeSet::new(),
        // A webhook's URL: a literal URL, or a secrets source (`{ env = ... }`) documented
        // with the key.
        (_, "url") if path.contains("notify.webhooks.") => std::collections::BTreeSet::new(),
        _ => panic!(
            "`{path}` takes an untagged value: trace its table form in config::reference::table_form"
        ),
    }
}

/// A key of the reference that the tracer cannot see: an entry of a map, named by a
/// placeholder (`project.requirements.<env>`), whose map the model accepts.
fn is_entry_of(key: &str, accepted: &std::collections::BTreeSet<String>) -> bool {
    key.rsplit_once('.')
        .is_some_and(|(map, entry)| entry.starts_with('<') && accepted.contains(map))
}

#[test]
fn every_key_the_model_accepts_is_documented_and_no_other() {
    let accepted = accepted();
    assert!(
        accepted.len() > 60,
        "only {} keys were traced",
        accepted.len()
    );
    let documented: Vec<&str> = keys().iter().map(|k| k.key).collect();
    // A table or a map is documented by the keys below it.
    // A target's own `notify` table has the keys of the top-level one.
    let documented_as = |key: &str| -> String {
        key.strip_prefix("targets.<t>.")
            .filter(|k| k.starts_with("notify."))
            .unwrap_or(key)
            .to_string()
    };
    let undocumented: Vec<&String> = accepted
        .iter()
        .filter(|key| !documented.iter().any(|d| under(d, &documented_as(key))))
        .collect();
    assert!(
        undocumented.is_empty(),
        "shipit.toml accepts keys the reference (config/reference.rs, shown in {PAGES}) does not \
         document: {undocumented:?}"
    );
    let unknown: Vec<&&str> = documented
        .iter()
        .filter(|key| !accepted.contains(**key) && !is_entry_of(key, &accepted))
        .collect();
    assert!(
        unknown.is_empty(),
        "the reference documents keys shipit.toml does not accept: {unknown:?}"
    );
}

/// The tracer sees a field added to a nested table, and an untagged value's table form.
#[test]
fn the_tracer_finds_nested_and_untagged_keys() {
    let accepted = accepted();
    for key in [
        "project.name",
        "targets.<t>.health.retries",
        "targets.<t>.tls.hsts.max_age",
        "targets.<t>.processes.<p>.stop_timeout",
        "targets.<t>.hooks.<hook>[].once",
        "image.port",
        "aliases",
    ] {
        assert!(accepted.contains(key), "{key} in {accepted:?}");
    }
    assert!(!accepted.iter().any(|key| key.contains("serde_spanned")));
}

/// `shipit config`'s rows of `text` (a configuration with one target, `t`), by dotted key, with
/// their sources.
fn config_rows(text: &str) -> Vec<(String, serde_json::Value, String)> {
    let config = Config::parse(Path::new("shipit.toml"), Path::new("."), text).unwrap();
    let explicit = show::Explicit(text.parse().unwrap());
    let project = show::project(&config, &explicit, "shipit.toml");
    let settings = show::settings(&config, &config.targets["t"], &explicit, "shipit.toml");
    let rows = |prefix: &'static str, rows: Vec<show::Row>| {
        rows.into_iter()
            .map(move |r| (format!("{prefix}.{}", r.key), r.value, r.source))
    };
    rows("project", project)
        .chain(rows("targets.<t>", settings))
        .collect()
}

const EVERY_TABLE: &str = r#"
[project]
name = "hello"
[targets.t]
hosts = ["deploy@one"]
deploy_to = "/srv/hello"
environment = "production"
[targets.t.nginx]
site = "/etc/nginx/sites-enabled/hello.conf"
[targets.t.app]
manager = "auto"
"#;

#[test]
fn shipit_config_shows_every_key_of_the_reference_and_only_those() {
    let shown: Vec<String> = config_rows(EVERY_TABLE)
        .into_iter()
        .map(|(key, _, _)| key)
        // Not a key of the target's own: its environment's entry of [project.requirements].
        .filter(|key| key != "targets.<t>.requirements")
        .collect();
    let reference: Vec<String> = keys()
        .into_iter()
        .filter(|k| k.shown && k.key != "targets.<t>.nginx")
        .map(|k| k.key.to_string())
        .collect();
    assert_eq!(
        shown, reference,
        "shipit config (config/show.rs) and the reference disagree"
    );
}

#[test]
fn shipit_config_shows_the_reference_defaults() {
    let rows = config_rows(EVERY_TABLE);
    let mut checked = 0;
    for k in keys() {
        let Default::Value(default) = &k.default else {
            continue;
        };
        let Some((_, value, source)) = rows.iter().find(|(key, _, _)| key == k.key) else {
            continue;
        };
        assert_eq!(source, "default", "{}", k.key);
        assert_eq!(*value, serde_json::to_value(default).unwrap(), "{}", k.key);
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} defaults were checked");
}

/// `conf/shipit.toml` shows optional keys commented out; where a key has a literal default in
/// the model, the commented line must state it.
#[test]
fn the_example_configuration_states_the_models_defaults() {
    let example = include_str!("../../conf/shipit.toml");
    let reference = keys();
    let mut table = String::new();
    let mut checked = 0;
    for line in example.lines() {
        let line = line.trim();
        let uncommented = line.trim_start_matches('#').trim();
        if uncommented.starts_with('[') && uncommented.ends_with(']') {
            table = uncommented.trim_matches(['[', ']']).to_string();
            continue;
        }
        let Some(text) = line.strip_prefix("# ") else {
            continue;
        };
        let Ok(parsed) = text.parse::<toml::Table>() else {
            continue;
        };
        let Some((name, value)) = parsed.into_iter().next() else {
            continue;
        };
        let dotted = format!("{table}.{name}");
        let dotted = match dotted.strip_prefix("targets.") {
            Some(rest) => format!("targets.<t>.{}", rest.split_once('.').map_or("", |r| r.1)),
            None => dotted,
        };
        let Some(Default::Value(default)) = reference
            .iter()
            .find(|k| k.key == dotted)
            .map(|k| &k.default)
        else {
            continue;
        };
        if value.is_array() || value.is_table() {
            continue;
        }
        assert_eq!(&value, default, "conf/shipit.toml: `{line}` ({dotted})");
        checked += 1;
    }
    assert!(
        checked >= 8,
        "only {checked} commented defaults were checked"
    );
}
