"""Local development settings: DEBUG on, insecure key, var/ created on demand."""
import os

from .base import *  # noqa: F401,F403
from .base import VAR_DIR

DEBUG = True
SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]

# In development nothing provides var/, so create it here.  Deployments must
# provide it (shared directory symlinked into each release).
os.makedirs(VAR_DIR, exist_ok=True)

# Per-developer overrides, never committed (see .gitignore).
try:
    from .local import *  # noqa: F401,F403
except ImportError:
    pass
