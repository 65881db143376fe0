"""
WSGI config for the hello project.

Deployed releases run ``gunicorn hello.wsgi:application``.  The settings
module defaults to ``hello.settings.selected``, which shipit renders into
each release archive (it is not committed).
"""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hello.settings.selected")

application = get_wsgi_application()
