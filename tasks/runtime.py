"""What a worker process needs, built once per process (after the prefork fork, never before:
a database connection pool must not be shared across processes)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from service.db import make_engine, make_sessionmaker
from service.delivery.links import UrlBuilder
from service.delivery.ratelimit import RateLimiter, sms_rate_limiter
from service.transports.base import Transport
from service.transports.registry import email_transport, sms_transport
from service.web.urls import PublicUrls


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    sessions: sessionmaker[Session]
    sms: Transport
    email: Transport
    sms_limit: RateLimiter
    urls: UrlBuilder


def public_urls(settings: Settings) -> UrlBuilder:
    """The web app's URLs for the messages this process sends or shows (the web layer owns
    the paths). The worker and the admin script (demo, preview) both take them from here."""
    return PublicUrls(settings.public_url)


def get_runtime() -> Runtime:
    return _runtime_for(os.getpid())


@cache
def _runtime_for(pid: int) -> Runtime:
    from tasks.app import app  # noqa: PLC0415 - the app module imports the task modules

    settings: Settings = app.ptnudge_settings
    engine = make_engine(settings.database_url, pre_ping=False)
    return Runtime(
        settings=settings,
        sessions=make_sessionmaker(engine),
        sms=sms_transport(settings),
        email=email_transport(settings),
        sms_limit=sms_rate_limiter(settings),
        urls=public_urls(settings),
    )
