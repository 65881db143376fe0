"""The `schedule` process (a `once` process on the primary, see resolve.rs): a cron for the target.

Run as `.shipit/scheduler.py SCHEDULE_TAB` (kept in the release with the supervisor
programs: src/manager/supervisor.rs). Each minute, every entry of the table (CRON<TAB>COMMAND
lines) whose five fields match the local time runs with `sh -c` in the release `current`
points at then, with that release's env file and venv, SHIPIT_RELEASE set.

Exactly once per due minute, with the state every release's scheduler shares in
shared/.schedule:
- each minute is run by one scheduler: `minute` holds the last minute a scheduler took, taken
  under `minute.lock`. A scheduler that starts (the new release's, at a switch) goes on from
  the minute after it, so the minute of a switch is the old scheduler's, entries the new
  release changed included;
- minutes no scheduler took (the old one was waiting for a run to finish at a switch,
  supervisord was restarted) are run late by the next scheduler, at most CATCH_UP minutes
  back (older ones are logged as not run). An entry due in several of them runs once for them
  all, logged `HH:MM late for HH:MM HH:MM`: its runs never overlap;
- an entry whose previous run is still running is skipped for that minute, and the log says
  so: a run holds its entry's lock (KEY.lock) for as long as it runs, whichever scheduler
  started it. Finished runs are reaped, their locks given back, before each minute is run;
- KEY.last, the last minute an entry fired, is still checked and written under that lock:
  schedulers of releases deployed before `minute` existed go by it alone.

On SIGTERM it starts nothing more and waits for the commands it started (the process's stop
timeout, 600 s, bounds that: then supervisor kills the group).
"""

import fcntl
import hashlib
import os
import signal
import subprocess
import sys
import time

RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
# Longer than the longest handover: the old scheduler's stop timeout (600 s), then the start
# of the new one.
CATCH_UP = 15


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


def hhmm(minute):
    return time.strftime("%H:%M", time.localtime(minute * 60))


def read_minute(path):
    try:
        with open(path) as f:
            return int(f.read() or 0)
    except (OSError, ValueError):
        return None


def write_minute(path, minute):
    with open(path + ".tmp", "w") as f:
        f.write(str(minute))
    os.replace(path + ".tmp", path)


class Scheduler:
    """The entries of `table` for the deploy_to `base`; `now` and `sleep` are the clock (the
    fast tests give theirs, to run minutes in an instant)."""

    def __init__(self, base, table, now=time.time, sleep=time.sleep):
        self.base = base
        self.state = os.path.join(base, "shared", ".schedule")
        os.makedirs(self.state, exist_ok=True)
        self.now = now
        self.sleep = sleep
        self.entries = []
        with open(table) as lines:
            for line in lines:
                if "\t" in line:
                    spec, command = line.rstrip("\n").split("\t", 1)
                    key = hashlib.sha256(line.encode()).hexdigest()[:16]
                    self.entries.append((spec, command, os.path.join(self.state, key)))
        self.running = []
        self.stopping = False

    def stop(self):
        self.stopping = True

    def take(self, now):
        """The first minute up to `now` that no scheduler took yet (one after `now` when every
        one was); the minutes from it to `now` are this scheduler's from then on."""
        with open(os.path.join(self.state, "minute.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            taken = read_minute(os.path.join(self.state, "minute"))
            first = now if taken is None else taken + 1
            if first <= now:
                write_minute(os.path.join(self.state, "minute"), now)
            return first

    def fire(self, spec, command, path, minutes, now):
        """Runs the entry for `minutes` (its due minutes this scheduler took; earlier than
        `now` when late), once: never while its previous run still runs."""
        lock = open(path + ".lock", "a")
        label = " ".join(hhmm(m) for m in minutes)
        if minutes != [now]:
            label = "%s late for %s" % (hhmm(now), label)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            last = read_minute(path + ".last")
            since = " since %s" % hhmm(last) if last is not None else ""
            print("%s skipped, its previous run is still running%s: %s %s"
                  % (label, since, spec, command), flush=True)
            lock.close()
            return
        last = read_minute(path + ".last")
        if last is not None and last >= minutes[-1]:
            lock.close()
            return
        write_minute(path + ".last", minutes[-1])
        current = os.path.realpath(os.path.join(self.base, "current"))
        env = dict(os.environ, SHIPIT_RELEASE=os.path.basename(current))
        script = (
            "set -a; [ -f .shipit/env ] && . ./.shipit/env; set +a; "
            "PATH=\"$PWD/.venv/bin:$PATH\"; export PATH; " + command
        )
        print("%s run in %s: %s %s" % (label, current, spec, command), flush=True)
        process = subprocess.Popen(["/bin/sh", "-c", script], cwd=current, env=env,
                                   pass_fds=[lock.fileno()])
        self.running.append((process, lock, command))

    def reap(self):
        for item in self.running[:]:
            if item[0].poll() is not None:
                print("exit %s: %s" % (item[0].returncode, item[2]), flush=True)
                item[1].close()
                self.running.remove(item)

    def run(self):
        seen = None
        while not self.stopping:
            self.reap()
            now = int(self.now() // 60)
            if seen is None or now > seen:
                seen = now
                first = self.take(now)
                if first < now - CATCH_UP:
                    print("not run: %s to %s, which no scheduler took, more than %d minutes ago"
                          % (hhmm(first), hhmm(now - CATCH_UP - 1), CATCH_UP), flush=True)
                    first = now - CATCH_UP
                for spec, command, path in self.entries:
                    minutes = [m for m in range(first, now + 1) if due(spec, time.localtime(m * 60))]
                    if minutes:
                        self.fire(spec, command, path, minutes, now)
            self.sleep(min(0.5, max(0.0, (now + 1) * 60 - self.now())))
        for process, lock, command in self.running:
            print("waiting for: %s" % command, flush=True)
            process.wait()
            print("exit %s: %s" % (process.returncode, command), flush=True)
            lock.close()


def main():
    scheduler = Scheduler(os.path.dirname(os.path.dirname(os.getcwd())), sys.argv[1])
    signal.signal(signal.SIGTERM, lambda *_: scheduler.stop())
    scheduler.run()


if __name__ == "__main__":
    main()
