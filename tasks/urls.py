"""The web app's URLs for the processes that are not the web app: the worker's messages, and
the admin script's demo and preview. The web layer owns the paths (``service.web.urls``).

Imports no Celery: the admin script takes its URL builder from here without building a
Celery app."""

from __future__ import annotations

from config.settings import Settings
from service.delivery.links import UrlBuilder
from service.web.urls import PublicUrls


def public_urls(settings: Settings) -> UrlBuilder:
    return PublicUrls(settings.public_url)
