"""The broker as every process reaches it: one set of connection options, one way to connect.

The Celery app, the health check and ``ptnudge status`` all go through here, so a key prefix
or a timeout holds for each of them alike.
"""

from __future__ import annotations

import redis
from kombu.connection import Connection

from config.settings import Settings

# Celery's default queue: the send tasks (``tasks/app.py`` routes beat's tasks and clinic
# alerts to a queue of their own).
SEND_QUEUE = "celery"

SOCKET_TIMEOUT = 5.0  # seconds: a dead Redis socket fails a call instead of hanging it
# Far longer than any send: retries are short countdowns and the schedule itself lives in the
# database, so no message waits unacknowledged this long.
VISIBILITY_TIMEOUT = 3600


def transport_options(
    settings: Settings, *, socket_timeout: float = SOCKET_TIMEOUT
) -> dict[str, object]:
    """The kombu transport options for the configured broker. The embedded SQLAlchemy broker
    passes its options to ``create_engine``, which takes none of these."""
    if settings.embedded_broker:
        return {}
    options: dict[str, object] = {
        "socket_timeout": socket_timeout,
        "visibility_timeout": VISIBILITY_TIMEOUT,
    }
    if settings.broker_key_prefix:
        options["global_keyprefix"] = settings.broker_key_prefix
    return options


def connect(settings: Settings, *, timeout: float) -> Connection:
    """A connection (not yet opened) that gives up on the broker after ``timeout`` seconds."""
    return Connection(
        settings.broker_url,
        connect_timeout=timeout,
        transport_options=transport_options(settings, socket_timeout=timeout),
    )


def redis_client(settings: Settings) -> redis.Redis:
    """A client of the Redis broker's server (locks, the shared rate limit)."""
    return redis.Redis.from_url(settings.broker_url, socket_timeout=SOCKET_TIMEOUT)
