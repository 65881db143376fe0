"""
Settings for deployed releases (production; staging builds on this).

SECRET_KEY comes from, in order:
  1. the environment variable DJANGO_SECRET_KEY;
  2. a DJANGO_SECRET_KEY=... line in the file BASE_DIR/.env;
  3. a fixed, NON-SECRET placeholder, so that collectstatic/migrate/check
     work in tests and during a build.  Never serve real traffic with it.

ALLOWED_HOSTS comes from DJANGO_ALLOWED_HOSTS (comma separated), default ["*"].
"""
import os

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

_hosts = os.environ.get("DJANGO_ALLOWED_HOSTS", "")
ALLOWED_HOSTS = [h.strip() for h in _hosts.split(",") if h.strip()] or ["*"]
