"""
Celery tasks of the example project, which record in var/tasks.log (a shared
directory: the same file for every release of a host) which release and process
ran them, so a test can tell which worker did the work.
"""
import os
import time

from celery import shared_task
from django.conf import settings


def _append(line):
    with open(settings.VAR_DIR / "tasks.log", "a", encoding="utf-8") as log:
        log.write(line + "\n")


@shared_task
def record(tag, hold=""):
    """Append `done TAG RELEASE PID`; with `hold`, first `started TAG ...`, then wait
    (up to two minutes) until the file var/HOLD exists: a task in flight."""
    who = "%s %s" % (os.environ.get("SHIPIT_RELEASE", "dev"), os.getpid())
    if hold:
        _append("started %s %s" % (tag, who))
        deadline = time.monotonic() + 120
        while not (settings.VAR_DIR / hold).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    _append("done %s %s" % (tag, who))
