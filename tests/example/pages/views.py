import os

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render

from .models import Visit


def release_info():
    """Release and target of the running code.

    The settings SHIPIT_RELEASE / SHIPIT_TARGET (written by shipit into
    hello/settings/selected.py) win; otherwise the environment variables of the
    same name (e.g. set by the process manager); otherwise "dev".
    """
    release = getattr(settings, "SHIPIT_RELEASE", None) or os.environ.get(
        "SHIPIT_RELEASE", "dev"
    )
    target = getattr(settings, "SHIPIT_TARGET", None) or os.environ.get(
        "SHIPIT_TARGET", "dev"
    )
    return release, target


def index(request):
    Visit.objects.create()
    release, target = release_info()
    return render(
        request,
        "pages/index.html",
        {
            "release": release,
            "target": target,
            "visits": Visit.objects.count(),
            # Whether the deploy gave the app its secret, never the secret itself.
            "secret_key_length": len(os.environ.get("DJANGO_SECRET_KEY", "")),
            "greeting": os.environ.get("HELLO_GREETING", ""),
            "banner": getattr(settings, "SITE_BANNER", ""),
        },
    )


def health(request):
    """Liveness probe: no database, no templates."""
    return HttpResponse("ok", content_type="text/plain")
