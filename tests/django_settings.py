"""Django settings for herdcache's Django tests (DJANGO_SETTINGS_MODULE=django_settings).

Each test class swaps CACHES with override_settings, as Django's own cache tests do.
"""

SECRET_KEY = "herdcache-tests"
INSTALLED_APPS: list[str] = []
DATABASES: dict = {}
USE_TZ = True
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
