"""The per-sender SMS rate limit: never more than N a second, across workers sharing Redis."""

from __future__ import annotations

import collections
import secrets
from collections.abc import Iterator

import pytest
import redis

from service.delivery.ratelimit import LocalRateLimiter, RateLimiter, RedisRateLimiter
from tests.conftest import REDIS_URL


class Clock:
    """Time that moves only when the limiter sleeps (or a test says so)."""

    def __init__(self, start: float) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(f"{REDIS_URL}/1")
    yield connection
    connection.close()


def seconds_used(limiter: RateLimiter, clock: Clock, messages: int) -> collections.Counter[int]:
    per_second: collections.Counter[int] = collections.Counter()
    for _ in range(messages):
        limiter.acquire()
        per_second[int(clock.now)] += 1
    return per_second


def test_two_workers_sharing_redis_send_at_most_the_limit_each_second(
    client: redis.Redis,
) -> None:
    clock = Clock(1_000_000.25)
    key = f"test:{secrets.token_hex(4)}"
    workers = [
        RedisRateLimiter(client, key=key, per_second=3, clock=clock, sleep=clock.sleep)
        for _ in range(2)
    ]
    per_second: collections.Counter[int] = collections.Counter()
    for n in range(10):
        workers[n % 2].acquire()
        per_second[int(clock.now)] += 1
    assert max(per_second.values()) == 3
    assert sum(per_second.values()) == 10
    assert len(per_second) == 4  # 3 + 3 + 3 + 1
    assert clock.slept[0] == pytest.approx(0.75)


def test_the_in_process_limiter_keeps_the_same_limit() -> None:
    clock = Clock(500.5)
    limiter = LocalRateLimiter(per_second=2, clock=clock, sleep=clock.sleep)
    per_second = seconds_used(limiter, clock, 5)
    assert list(per_second.values()) == [2, 2, 1]
