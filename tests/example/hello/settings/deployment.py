"""
Settings for deployed releases (production; staging builds on this).

SECRET_KEY comes from, in order:
  1. the environment variable DJANGO_SECRET_KEY;
  2. a DJANGO_SECRET_KEY=... line in the file BASE_DIR/.env;
  3. a fixed, NON-SECRET placeholder, so that collectstatic/migrate/check
     work in tests and during a build.  Never serve real traffic with it.

ALLOWED_HOSTS comes from DJANGO_ALLOWED_HOSTS (comma separated), default ["*"].

The database is PostgreSQL when DATABASE_URL (the environment variable, else a
DATABASE_URL=... line in BASE_DIR/.env) is a postgres:// or postgresql://
URL, e.g. postgres://USER:PASSWORD@HOST:PORT/NAME?sslmode=require (query
parameters become connection OPTIONS; needs requirements/postgres.txt).
Otherwise it is the SQLite file of base.py, in var/.
"""
import os
import urllib.parse

from .base import *  # noqa: F401,F403
from .base import BASE_DIR

DEBUG = False

INSECURE_PLACEHOLDER_SECRET_KEY = (
    "shipit-example-PLACEHOLDER-not-secret-set-DJANGO_SECRET_KEY-"
    "0123456789abcdefghijklmnopqrstuvwxyz"
)


def read_env_file(path):
    """Parse a minimal KEY=VALUE file.

    Blank lines and lines starting with '#' are skipped, an optional leading
    'export ' is ignored, and one pair of matching surrounding quotes is
    stripped from the value.  Returns {} if the file does not exist.
    """
    values = {}
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.readlines()
    except FileNotFoundError:
        return values
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if key:
            values[key] = value
    return values


_dotenv = read_env_file(BASE_DIR / ".env")

SECRET_KEY = (
    os.environ.get("DJANGO_SECRET_KEY")
    or _dotenv.get("DJANGO_SECRET_KEY")
    or INSECURE_PLACEHOLDER_SECRET_KEY
)


def database_from_url(url):
    """DATABASES["default"] for a postgres:// or postgresql:// URL, else None.

    User, password, host and database name are percent-decoded, so a unix
    socket directory can be given as the host: postgres://u@%2Frun%2Fpostgresql/db.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        return None
    try:
        port = parts.port
    except ValueError:
        # Not the URL itself: it holds the password.
        raise ValueError("DATABASE_URL has an invalid port") from None
    unquote = urllib.parse.unquote
    host = parts.hostname or ""
    host_port = parts.netloc.rpartition("@")[2]
    if host_port.startswith("%"):
        # A percent-encoded socket directory (.hostname would not decode it).
        host = unquote(host_port.partition(":")[0])
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(port or ""),
        "OPTIONS": dict(urllib.parse.parse_qsl(parts.query)),
    }


_database = database_from_url(
    os.environ.get("DATABASE_URL") or _dotenv.get("DATABASE_URL") or ""
)
if _database is not None:
    DATABASES = {"default": _database}

_hosts = os.environ.get("DJANGO_ALLOWED_HOSTS", "")
ALLOWED_HOSTS = [h.strip() for h in _hosts.split(",") if h.strip()] or ["*"]
