"""Publishing a dispatcher batch: what is due goes at once, what was claimed ahead goes in one
group per due instant, each with its own countdown (read back from a real Redis broker)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
from pathlib import Path

import redis

from service.delivery.dispatch import DispatchResult
from service.models import utcnow
from tasks.app import create_app
from tasks.reminders import enqueue_when_due
from tests.conftest import REDIS_URL, make_settings


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
