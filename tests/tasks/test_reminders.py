"""The send task's retry policy (exponential backoff with full jitter, capped, bounded), and
publishing a dispatcher batch: what is due goes at once, what was claimed ahead goes in one
group per due instant, each with its own countdown (read back from a real Redis broker)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
from pathlib import Path

import redis

from config.settings import Settings
from service.delivery.dispatch import DispatchResult
from service.models import utcnow
from tasks.app import create_app
from tasks.reminders import BACKOFF_MAX, enqueue_when_due, retry_policy
from tests.conftest import REDIS_URL, make_settings

SAMPLES = 300  # per attempt: full jitter draws anywhere in [0, cap]


def settings_for(tmp_path: Path, **overrides: object) -> Settings:
    return make_settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path=tmp_path, **overrides
    )


def waits(settings: Settings, attempts: int) -> list[dt.timedelta | None]:
    wait = retry_policy(settings)
    return [wait(attempts) for _ in range(SAMPLES)]


def test_each_retry_waits_at_least_a_second_and_at_most_its_doubling_cap(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, retry_backoff_seconds=5, send_max_retries=6)
    for attempts in range(1, 7):
        cap = 5 * 2 ** (attempts - 1)  # 5, 10, 20, 40, 80, 160 seconds
        found = waits(settings, attempts)
        seconds = [w.total_seconds() for w in found if w is not None]
        assert len(seconds) == SAMPLES, f"attempt {attempts} is retried"
        assert min(seconds) >= 1
        assert max(seconds) <= cap
        assert len(set(seconds)) > 1, "jittered, so that retries do not arrive together"


def test_no_retry_after_the_last_allowed_attempt(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, send_max_retries=3)

    assert all(wait is not None for wait in waits(settings, 3))
    assert waits(settings, 4) == [None] * SAMPLES
    assert waits(settings, 10) == [None] * SAMPLES


def test_no_retry_at_all_when_retries_are_off(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, send_max_retries=0)

    assert waits(settings, 1) == [None] * SAMPLES


def test_late_retries_never_wait_longer_than_the_cap(tmp_path: Path) -> None:
    """Well under the broker's visibility timeout: no long ETAs on Redis."""
    settings = settings_for(tmp_path, retry_backoff_seconds=300, send_max_retries=20)
    for attempts in (5, 12, 20):
        seconds = [w.total_seconds() for w in waits(settings, attempts) if w is not None]
        assert len(seconds) == SAMPLES
        assert max(seconds) <= BACKOFF_MAX
        assert max(seconds) > BACKOFF_MAX / 2  # the cap is reached, not the doubling


def published(client: redis.Redis, prefix: str) -> list[tuple[list[int], str | None]]:
    """Each send task on the queue: its reminder ids and its ETA (None: at once)."""
    found = []
    for raw in reversed(client.lrange(f"{prefix}celery", 0, -1)):
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        found.append((args[0], message["headers"]["eta"]))
    return found


def test_a_batch_claimed_ahead_is_published_per_due_instant_with_a_countdown_to_it(
    tmp_path: Path,
) -> None:
    url, prefix = f"{REDIS_URL}/1", f"t{secrets.token_hex(4)}:"
    settings = make_settings(
        database_url="sqlite://", tmp_path=tmp_path, broker_url=url, broker_key_prefix=prefix
    )
    started = utcnow()  # Celery turns a countdown into an ETA on the real clock
    minute = started + dt.timedelta(seconds=10)
    batch = DispatchResult(
        to_send=[1, 2, 3, 4],
        send_at={2: minute, 3: minute, 4: minute + dt.timedelta(seconds=5)},
    )
    client = redis.Redis.from_url(url)
    try:
        enqueue_when_due(create_app(settings), batch, now=started)
        finished = utcnow()
        tasks = published(client, prefix)
    finally:
        for key in client.scan_iter(f"{prefix}*"):  # this test's keys only
            client.delete(key)
        client.close()

    by_ids = {tuple(ids): eta for ids, eta in tasks}
    assert set(by_ids) == {(1,), (2, 3), (4,)}
    assert by_ids[1,] is None
    # Each ETA is its due instant, later by at most the time publishing took: never earlier.
    for ids, due in (((2, 3), minute), ((4,), minute + dt.timedelta(seconds=5))):
        eta = dt.datetime.fromisoformat(str(by_ids[ids]))
        assert due <= eta <= due + (finished - started)
