"""At most one run at a time of a periodic task, across processes and machines.

Two beat processes by mistake (or a slow tick overlapping the next) must not double work.
The dispatcher and sweeper are already safe to run twice (row locks, conditional updates);
the lock keeps them from doing the same work twice at once. With the embedded broker there
is one machine and no Redis: the database's own locking is enough there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis

from config.settings import Settings
from service import broker


@contextlib.contextmanager
def single_flight(settings: Settings, name: str, *, ttl: float) -> Iterator[bool]:
    """Yield True when this process holds the lock ``name`` (held at most ``ttl`` seconds,
    so a killed holder cannot block the task for ever), False when another one does."""
    if not settings.redis_broker:
        yield True
        return
    client = broker.redis_client(settings)
    lock = client.lock(
        f"{settings.broker_key_prefix}ptnudge:lock:{name}", timeout=ttl, blocking=False
    )
    acquired = bool(lock.acquire())
    try:
        yield acquired
    finally:
        if acquired:
            with contextlib.suppress(redis.exceptions.LockError):
                lock.release()
        client.close()
