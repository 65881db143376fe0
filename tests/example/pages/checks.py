from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def placeholder_secret_key(app_configs, **kwargs):
    """Warn under `check --deploy` when the non-secret placeholder key is used."""
    placeholder = getattr(settings, "INSECURE_PLACEHOLDER_SECRET_KEY", None)
    if placeholder and settings.SECRET_KEY == placeholder:
        return [
            Warning(
                "SECRET_KEY is the built-in non-secret placeholder.",
                hint="Set DJANGO_SECRET_KEY in the environment or in the .env file.",
                id="pages.W001",
            )
        ]
    return []
