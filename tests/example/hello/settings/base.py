"""
Settings shared by every environment of the hello project.

Environment modules (development, deployment, staging) import everything
from here and override what they need.

The SQLite database lives in ``BASE_DIR / "var"``.  In a deployment ``var/``
is a shared directory symlinked into each release; it is NOT created here and
must already exist before ``migrate`` runs (development.py creates it for
local work).
"""
import os
from pathlib import Path

# tests/example/ (the directory holding manage.py)
BASE_DIR = Path(__file__).resolve().parent.parent.parent

# Overridden by every environment module.
SECRET_KEY = None
DEBUG = False
ALLOWED_HOSTS = []

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "pages",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "hello.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
            ],
        },
    },
]

WSGI_APPLICATION = "hello.wsgi.application"

VAR_DIR = BASE_DIR / "var"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": VAR_DIR / "db.sqlite3",
    }
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Shown on the index page; staging overrides it.
SITE_BANNER = ""

# Celery (requirements/celery.txt, hello/celery.py): the broker comes from the
# environment. HELLO_BEAT_SECONDS makes beat send pages.tasks.record("beat")
# that often.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "memory://")
CELERY_BEAT_SCHEDULE = {}
if os.environ.get("HELLO_BEAT_SECONDS"):
    CELERY_BEAT_SCHEDULE["tick"] = {
        "task": "pages.tasks.record",
        "schedule": float(os.environ["HELLO_BEAT_SECONDS"]),
        "args": ("beat",),
    }
