//! What the benches (`benches/deploy.rs`, `benches/load.rs`, both `harness = false`) share
//! besides the stack: whether this run should benchmark at all, and their knobs from the
//! environment.

use std::path::Path;
use std::time::Duration;

/// Whether the bench `name` should run now; prints why not otherwise. It runs only under
/// `cargo bench` (`cargo test --benches` runs bench executables without `--bench`: they only
/// print how to run them then), as root, with the daemons installed.
pub fn should_run(name: &str) -> bool {
    if !std::env::args().any(|a| a == "--bench") {
        println!("{name} benchmark: run it with `cargo bench --bench {name}` (as root)");
        return false;
    }
    if !crate::is_root() {
        eprintln!("{name} benchmark skipped: it must run as root (it creates the `deploy` account and runs sshd, nginx and supervisord)");
        return false;
    }
    for tool in ["/usr/sbin/sshd", "/usr/sbin/nginx", "/usr/bin/supervisord"] {
        if !Path::new(tool).exists() {
            eprintln!(
                "{name} benchmark skipped: {tool} is missing (install the test packages: .ci/setup)"
            );
            return false;
        }
    }
    true
}

/// The number in the environment variable `name`, or `default` when it is unset or not a
/// number.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median of `v` (sorts it).
pub fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `1.23s`.
pub fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// `(step, seconds)` from the ✓ lines `shipit -v` prints on stderr, plus `connect` from its
/// `connected in` line.
pub fn step_times(stderr: &str) -> Vec<(String, f64)> {
    let mut steps = Vec::new();
    for line in stderr.lines() {
        if let Some(rest) = line.trim_start().strip_prefix("connected in ") {
            if let Ok(v) = rest.trim().trim_end_matches('s').parse::<f64>() {
                steps.push(("connect".to_string(), v));
            }
        }
        let Some((_, rest)) = line.split_once('✓') else {
            continue;
        };
        let rest = rest.trim();
        // `upload   0.03s  (9.9 KiB, ...)` or `migrate   0.52s`
        let rest = rest.split("  (").next().unwrap_or(rest).trim();
        if let Some((name, time)) = rest.rsplit_once(char::is_whitespace) {
            if let Ok(v) = time.trim_end_matches('s').parse::<f64>() {
                steps.push((name.trim().to_string(), v));
            }
        }
    }
    steps
}

/// `(name, seconds)` from `lap NAME MILLISECONDS` lines (the floor scripts' laps) or
/// `step NAME SECONDS` lines (the Fabric peer's).
pub fn laps(stderr: &str) -> Vec<(String, f64)> {
    stderr
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let scale = match f.next()? {
                "lap" => 1000.0,
                "step" => 1.0,
                _ => return None,
            };
            let name = f.next()?.to_string();
            let n: f64 = f.next()?.parse().ok()?;
            Some((name, n / scale))
        })
        .collect()
}

/// Median over runs of each step's seconds (a step that ran several times in one run counts
/// its sum), in first-seen order.
pub fn step_medians(runs: &[&[(String, f64)]]) -> Vec<(String, f64)> {
    let mut names: Vec<String> = Vec::new();
    for run in runs {
        for (n, _) in run.iter() {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
    }
    names
        .into_iter()
        .map(|n| {
            let mut v: Vec<f64> = runs
                .iter()
                .map(|run| run.iter().filter(|(m, _)| *m == n).map(|(_, s)| s).sum())
                .collect();
            v.sort_by(f64::total_cmp);
            (n, v[v.len() / 2])
        })
        .collect()
}

/// Same probe as shipit's start-app step: GET / over the app's unix socket.
const PROBE: &str = "import socket,sys
s=socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(b'GET / HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n')
line=s.recv(256).split(b'\\r\\n')[0].decode()
sys.exit(0 if line.startswith('HTTP/') and int(line.split()[1]) < 500 else 1)
";

/// What the floor of a code-only redeploy works on.
pub struct Floor<'a> {
    pub deploy_to: &'a str,
    pub id: &'a str,
    pub sha: &'a str,
    pub confd: &'a str,
    pub ctl: &'a str,
    pub project: &'a str,
    pub target: &'a str,
    pub settings_module: &'a str,
    /// Shared directories and files linked into the release.
    pub shared: &'a [&'a str],
    /// `Some(STATIC_ROOT)` (relative to the release): the floor of connect + upload + unpack +
    /// app start. No migrate and no collectstatic (the live release's collected files are
    /// hard-linked, as when nothing static changed), and the old app server is stopped in the
    /// background. `None`: migrate and collectstatic run, and the stop is waited for.
    pub reuse_static: Option<&'a str>,
}

/// The remote work of a code-only redeploy as one shell command reading the archive on stdin,
/// as a person would type it: `supervisorctl update NAME` alone (it rereads the config itself),
/// the app polled every 50 ms, no inventory, no pruning, no health check, nginx left alone (a
/// code-only change does not change the site).
/// `lap NAME` prints the milliseconds since the previous lap on stderr.
pub fn floor_script(f: &Floor) -> String {
    let q = crate::shell_quote;
    let links: String = f
        .shared
        .iter()
        .map(|p| format!("ln -s \"$D/shared/\"{p} \"$R/\"{p}; ", p = q(p)))
        .collect();
    let (django, stop_old) = match f.reuse_static {
        None => (
            ".venv/bin/python manage.py migrate --noinput >/dev/null; lap migrate\n\
             .venv/bin/python manage.py collectstatic --noinput >/dev/null; lap collectstatic"
                .to_string(),
            format!("$CTL update \"{}.{}.$OLD\" >/dev/null", f.project, f.target),
        ),
        Some(root) => (
            format!(
                "cp -al \"$D/releases/$OLD/\"{root} \"$R/\"{root}; lap static",
                root = q(root)
            ),
            format!(
                "($CTL update \"{}.{}.$OLD\" </dev/null >/dev/null 2>&1 &)",
                f.project, f.target
            ),
        ),
    };
    format!(
        r#"set -e
t0=$(date +%s%N); lap() {{ t=$(date +%s%N); echo "lap $1 $(( (t - t0) / 1000000 ))" >&2; t0=$t; }}
D={d}; ID={id}; SHA={sha}; CONFD={confd}; CTL={ctl}
R="$D/releases/$ID"; A="$D/.shipit/archives/$SHA.tar.gz"; P="{project}.{target}.$ID"
mkdir "$D/.shipit/lock"
cat > "$A.part"; lap upload
echo "$SHA  $A.part" | sha256sum -c --quiet; mv -f "$A.part" "$A"; lap verify
mkdir -p "$R"; tar -xzf "$A" -C "$R" --no-same-owner; lap unpack
{links}
OLD=$(readlink "$D/current"); OLD=${{OLD##*/}}
ln -s "$(readlink "$D/releases/$OLD/.venv")" "$R/.venv"; lap link
cd "$R"; DJANGO_SETTINGS_MODULE={settings}; SHIPIT_RELEASE=$ID
export DJANGO_SETTINGS_MODULE SHIPIT_RELEASE
{django}
mkdir -p "$R/.shipit"; printf '%s\n' "$ID" > "$R/.shipit/release"
cp "$D/releases/$OLD/.shipit/gunicorn.args" "$R/.shipit/" 2>/dev/null || true
cp "$D/releases/$OLD/.shipit/env" "$R/.shipit/" 2>/dev/null || true
sed "s/$OLD/$ID/g" "$D/releases/$OLD/.shipit/supervisor.conf" > "$R/.shipit/supervisor.conf"
cp "$R/.shipit/supervisor.conf" "$CONFD/$P.conf"
$CTL update "$P" >/dev/null; lap start-app:supervisorctl
until .venv/bin/python -c {probe} "$R/.shipit/app.sock" 2>/dev/null; do sleep 0.05; done; lap start-app:answers
ln -sfn "releases/$ID" "$D/.current.$ID"; mv -T "$D/.current.$ID" "$D/current"
echo live > "$R/.shipit/state"; echo good > "$D/releases/$OLD/.shipit/state"; lap switch
rm -f "$CONFD/{project}.{target}.$OLD.conf"; {stop_old}; lap stop-old-app
rmdir "$D/.shipit/lock"
"#,
        d = q(f.deploy_to),
        id = q(f.id),
        sha = q(f.sha),
        confd = q(f.confd),
        ctl = q(f.ctl),
        project = f.project,
        target = f.target,
        settings = q(f.settings_module),
        probe = q(PROBE),
    )
}
