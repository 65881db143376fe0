"""ASGI config for the hello project (see wsgi.py for the settings module).

Django serves HTTP. Websockets on /ws/ are answered by a small plain-ASGI echo (no Channels):
each text message comes back as `RELEASE TEXT`, so a client sees which release answered it.
"""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hello.settings.selected")

django_application = get_asgi_application()

WEBSOCKET_PREFIX = "/ws/"


async def echo(scope, receive, send):
    """Accept the websocket and echo each text message, prefixed with the release."""
    from django.conf import settings

    release = getattr(settings, "SHIPIT_RELEASE", "") or os.environ.get("SHIPIT_RELEASE", "")
    while True:
        event = await receive()
        if event["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif event["type"] == "websocket.receive" and event.get("text") is not None:
            await send({"type": "websocket.send", "text": f"{release} {event['text']}"})
        elif event["type"] == "websocket.disconnect":
            return


async def application(scope, receive, send):
    if scope["type"] == "websocket" and scope["path"].startswith(WEBSOCKET_PREFIX):
        await echo(scope, receive, send)
    elif scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
    else:
        await django_application(scope, receive, send)
