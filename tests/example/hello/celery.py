"""
The Celery app of the hello project: `celery -A hello.celery worker` and
`celery -A hello.celery beat` run it (deployed as processes of a target, see
shipit.toml's `[targets.T.processes]`). It reads the CELERY_* settings, so the
broker is CELERY_BROKER_URL from the environment; tasks live in pages/tasks.py.

Only requirements/celery.txt installs Celery: nothing else imports this module.
"""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hello.settings.selected")

app = Celery("hello")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
