# shellcheck shell=sh
# The app: the release's rendered service configs, starting its app server and processes
# through the process manager (pm.sh), the health checks, and stopping other releases' after
# the switch. No step here knows which manager runs them.

# Python run by the `schedule` process (a `once` process on the primary, see resolve.rs) as
# .shipit/scheduler.py SCHEDULE_TAB: a cron for the target. Each minute, every entry of the
# table (CRON<TAB>COMMAND lines) whose five fields match the local time runs with `sh -c` in the
# release `current` points at then, with that release's env file and venv, SHIPIT_RELEASE set.
# Never twice: an entry fires once per minute across schedulers (the last minute it fired is
# kept in shared/.schedule), and not while its previous run still holds its lock (a run started
# by the scheduler of the previous release included). On SIGTERM it starts nothing more and
# waits for the commands it started.
# The Python is in single quotes on purpose: nothing in it is for the shell.
# shellcheck disable=SC2016
SHIPIT_SCHEDULER='import fcntl, hashlib, os, signal, subprocess, sys, time
RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
def values(field, low, high):
    out = set()
    for part in field.split(","):
        rng, _, step = part.partition("/")
        if rng == "*":
            a, b = low, high
        elif "-" in rng:
            a, b = (int(x) for x in rng.split("-"))
        else:
            a = b = int(rng)
            if step:
                b = high
        out.update(range(a, b + 1, int(step or 1)))
    return out
def due(spec, t):
    f = spec.split()
    minute, hour, dom, month, dow = (values(x, *r) for x, r in zip(f, RANGES))
    dow = {d % 7 for d in dow}
    wday = (t.tm_wday + 1) % 7
    if not f[2].startswith("*") and not f[4].startswith("*"):
        day = t.tm_mday in dom or wday in dow
    else:
        day = t.tm_mday in dom and wday in dow
    return t.tm_min in minute and t.tm_hour in hour and t.tm_mon in month and day
base = os.path.dirname(os.path.dirname(os.getcwd()))
state = os.path.join(base, "shared", ".schedule")
os.makedirs(state, exist_ok=True)
entries = []
with open(sys.argv[1]) as table:
    for line in table:
        if "\t" in line:
            spec, command = line.rstrip("\n").split("\t", 1)
            key = hashlib.sha256(line.encode()).hexdigest()[:16]
            entries.append((spec, command, os.path.join(state, key)))
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
running = []
def fire(spec, command, path, minute):
    lock = open(path + ".lock", "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print("%s: still running from before, not started again: %s" % (spec, command), flush=True)
        lock.close()
        return
    try:
        with open(path + ".last") as last:
            if int(last.read() or 0) >= minute:
                lock.close()
                return
    except (OSError, ValueError):
        pass
    with open(path + ".last.tmp", "w") as last:
        last.write(str(minute))
    os.replace(path + ".last.tmp", path + ".last")
    current = os.path.realpath(os.path.join(base, "current"))
    env = dict(os.environ, SHIPIT_RELEASE=os.path.basename(current))
    script = "set -a; [ -f .shipit/env ] && . ./.shipit/env; set +a; PATH=\"$PWD/.venv/bin:$PATH\"; export PATH; " + command
    print("%s: running in %s: %s" % (spec, current, command), flush=True)
    running.append((subprocess.Popen(["/bin/sh", "-c", script], cwd=current, env=env, pass_fds=[lock.fileno()]), lock, command))
minute = int(time.time() // 60)
while not stopping:
    for spec, command, path in entries:
        if due(spec, time.localtime(minute * 60)):
            fire(spec, command, path, minute)
    for item in running[:]:
        if item[0].poll() is not None:
            print("exit %s: %s" % (item[0].returncode, item[2]), flush=True)
            item[1].close()
            running.remove(item)
    while not stopping and int(time.time() // 60) == minute:
        time.sleep(0.5)
    minute = int(time.time() // 60)
for process, lock, command in running:
    print("waiting for: %s" % command, flush=True)
    process.wait()
'

# The health probe: an HTTP GET over the release's unix socket with the venv's python (always
# there, unlike curl). Prints the status line; fails unless the status is HEALTH_STATUS (or,
# for `any`, below 500).
SHIPIT_PROBE='import socket, sys
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
'

# Stops this run's new app server and processes, unless `current` points at its release.
shipit_stop_new_app() {
  [ "$APP" = 1 ] || return 0
  if [ "$(readlink "$D/current" 2>/dev/null)" = "releases/$ID" ]; then return 0; fi
  shipit_pm stop_new
}

shipit_probe() {
  "$R/.venv/bin/python" -c "$SHIPIT_PROBE" "$HEALTH_PATH" "$HEALTH_HOST" "$HEALTH_STATUS" "$1"
}

# step_configs NGINX APP ONCE SCHEDULE UNITS UNITS_ONCE TIMERS (each base64): keeps the
# release's rendered service configs in $R/.shipit (`-` for what this host does not run): the
# nginx site, the supervisor programs started before the switch and the singletons started at
# it, the schedule with the scheduler that runs it (supervisor), the systemd units of both kinds,
# and the schedule's systemd timers (listed in .shipit/timers, started at the switch).
step_configs() {
  mkdir -p "$R/.shipit"
  if [ "$1" != - ]; then printf %s "$1" | base64 -d > "$R/.shipit/nginx.conf"; fi
  if [ "$2" != - ]; then printf %s "$2" | base64 -d > "$R/.shipit/supervisor.conf"; fi
  if [ "$3" != - ]; then printf %s "$3" | base64 -d > "$R/.shipit/supervisor-once.conf"; fi
  if [ "${5:--}" != - ]; then shipit_unit_files "$5" "$R/.shipit/units"; fi
  if [ "${6:--}" != - ]; then shipit_unit_files "$6" "$R/.shipit/units-once"; fi
  if [ "${7:--}" != - ]; then shipit_unit_files "$7" "$R/.shipit/timers" '\.(timer|service)$'; fi
  if [ "$4" != - ]; then
    printf %s "$4" | base64 -d > "$R/.shipit/schedule.tab"
    printf '%s' "$SHIPIT_SCHEDULER" > "$R/.shipit/scheduler.py"
    mkdir -p "$D/shared/.schedule"
    if [ -n "$APP_USER" ] && [ "$APP_USER" != "$(id -un)" ]; then
      chgrp "$(id -gn "$APP_USER")" "$D/shared/.schedule" 2>/dev/null && chmod 2770 "$D/shared/.schedule" ||
        echo "warning: cannot give $APP_USER's group write access to $D/shared/.schedule"
    fi
  fi
  echo "rendered service configs kept in $R/.shipit"
}

# Starts the release's app server and processes through the process manager and waits until
# the web app server (on a web host) answers and every process runs; fails as soon as the
# process manager reports one dead.
step_start_app() {
  shipit_require_lock
  shipit_server prepare
  shipit_pm start
  DEADLINE=$(($(date +%s) + HEALTH_TIMEOUT))
  if [ "$WEB" = 1 ]; then shipit_wait_web; fi
  shipit_pm wait
}

shipit_wait_web() {
  polls=0
  SEEN_PID=
  while :; do
    if STATUS=$(shipit_probe "$R/.shipit/app.sock" 2>&1); then
      echo "health check before the switch: $STATUS"
      return 0
    fi
    if shipit_migrate_pending; then return 0; fi
    polls=$((polls + 1))
    if [ $((polls % 5)) -eq 0 ]; then
      if DEAD=$(shipit_pm dead); then
        shipit_pm log
        echo "the new app server died before answering: $DEAD"
        exit 1
      fi
      if [ -z "$SEEN_PID" ]; then SEEN_PID=$(shipit_pm seen) || SEEN_PID=; fi
    fi
    if [ "$(date +%s)" -ge "$DEADLINE" ]; then
      shipit_pm status
      shipit_pm log
      echo "the new app server failed its health check on $R/.shipit/app.sock within ${HEALTH_TIMEOUT}s: $STATUS"
      exit 1
    fi
    sleep 0.1
  done
}

# Checks the live release through `current`; a failure makes the switch script switch back.
step_health_check() {
  TRIES=$HEALTH_RETRIES
  while :; do
    if STATUS=$(shipit_probe "$D/current/.shipit/app.sock" 2>&1); then
      echo "health check after the switch: $STATUS"
      return 0
    fi
    TRIES=$((TRIES - 1))
    if [ "$TRIES" -le 0 ]; then
      echo "release $ID failed its health check after the switch: $STATUS"
      exit 1
    fi
    sleep 1
  done
}

# After the switch, every process manager shipit knows (a target moved from one to another
# stops the old one's programs at its first switch under the new one) stops every other
# release's app server and processes of this project and target gracefully, each within its
# stop timeout, and the live release's singletons (`once` processes, on the primary) start:
# never two of them at once. Never fails: the release that matters is already live.
step_stop_old_app() {
  LIVE=$(readlink "$D/current" 2>/dev/null | sed 's#.*/##')
  shipit_pms stop_old
}
