"""Staging: the deployment settings plus a visible banner."""
from .deployment import *  # noqa: F401,F403

SITE_BANNER = "staging"
