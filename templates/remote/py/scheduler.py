"""The `schedule` process (a `once` process on the primary, see resolve.rs): a cron for the target.

Run as `.shipit/scheduler.py SCHEDULE_TAB` (kept in the release with the supervisor
programs: src/manager/supervisor.rs). Each minute, every entry of the table (CRON<TAB>COMMAND
lines) whose five fields match the local time runs with `sh -c` in the release `current`
points at then, with that release's env file and venv, SHIPIT_RELEASE set. Never twice: an
entry fires once per minute across schedulers (the last minute it fired is kept in
shared/.schedule), and not while its previous run still holds its lock (a run started by the
scheduler of the previous release included). On SIGTERM it starts nothing more and waits for
the commands it started.
"""

import fcntl
import hashlib
import os
import signal
import subprocess
import sys
import time

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
    script = (
        "set -a; [ -f .shipit/env ] && . ./.shipit/env; set +a; "
        "PATH=\"$PWD/.venv/bin:$PATH\"; export PATH; " + command
    )
    print("%s: running in %s: %s" % (spec, current, command), flush=True)
    process = subprocess.Popen(["/bin/sh", "-c", script], cwd=current, env=env, pass_fds=[lock.fileno()])
    running.append((process, lock, command))
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
for process, _lock, command in running:
    print("waiting for: %s" % command, flush=True)
    process.wait()
