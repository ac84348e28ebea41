"""What a worker process needs, built once per process (after the prefork fork, never before:
a database connection pool must not be shared across processes)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from service.db import make_engine, make_sessionmaker
from service.delivery.links import UrlBuilder
from service.delivery.ratelimit import RateLimiter, sms_rate_limiter
from service.transports.base import Transport
from service.transports.registry import email_transport, sms_transport
from tasks.app import settings_of
from tasks.urls import public_urls


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    sessions: sessionmaker[Session]
    sms: Transport
    email: Transport
    sms_limit: RateLimiter
    urls: UrlBuilder


def get_runtime(app: Celery) -> Runtime:
    """What the tasks of ``app`` use in this process, built on first use after the fork."""
    return _runtime_for(os.getpid(), app)


@cache
def _runtime_for(pid: int, app: Celery) -> Runtime:
    settings = settings_of(app)
    engine = make_engine(settings.database_url, pre_ping=False)
    return Runtime(
        settings=settings,
        sessions=make_sessionmaker(engine),
        sms=sms_transport(settings),
        email=email_transport(settings),
        sms_limit=sms_rate_limiter(settings),
        urls=public_urls(settings),
    )
