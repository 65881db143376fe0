"""ASGI config for the hello project (see wsgi.py for the settings module)."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hello.settings.selected")

application = get_asgi_application()
