"""A per-sender rate limit shared by every worker: at most N SMS a second from one number.

A long code takes about one message a second; what goes faster is queued by a Messaging
Service, or refused with 429 by a plain number. Several workers on several hosts share the
limit through Redis (one counter per sender and second); with the embedded broker there is
one machine, and the limit is kept in the process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis

from config.settings import Settings
from service import broker


class RateLimiter(Protocol):
    def acquire(self) -> None:
        """Return when one more message may leave (sleeping if the second is full)."""


class NoLimit:
    def acquire(self) -> None:
        return None


class RedisRateLimiter:
    """Fixed one-second windows: INCR a counter named for the sender and the second; the
    message that finds it over the limit waits for the next second and tries again."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        key: str,
        per_second: int,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.key = key
        self.per_second = per_second
        self.clock = clock
        self.sleep = sleep

    def acquire(self) -> None:
        while True:
            now = self.clock()
            second = int(now)
            name = f"{self.key}:{second}"
            pipe = self.client.pipeline()
            pipe.incr(name)
            pipe.expire(name, 5)
            count = int(pipe.execute()[0])
            if count <= self.per_second:
                return
            self.sleep(second + 1 - now)


class LocalRateLimiter:
    """The same windows in one process (the embedded setup runs one worker process)."""

    def __init__(
        self,
        *,
        per_second: int,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.per_second = per_second
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._second = -1
        self._count = 0

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self.clock()
                if int(now) != self._second:
                    self._second, self._count = int(now), 0
                if self._count < self.per_second:
                    self._count += 1
                    return
            self.sleep(int(now) + 1 - now)


def sms_rate_limiter(settings: Settings) -> RateLimiter:
    """The limiter for the configured sender, or none when no limit is set."""
    rate = settings.sms_per_second
    if not rate:
        return NoLimit()
    sender = settings.twilio_messaging_service_sid or settings.twilio_from_number or "console"
    if settings.redis_broker:
        client = broker.redis_client(settings)
        key = f"{settings.broker_key_prefix}ptnudge:rate:{sender}"
        return RedisRateLimiter(client, key=key, per_second=rate)
    return LocalRateLimiter(per_second=rate)
