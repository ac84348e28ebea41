"""``single_flight``: one holder at a time across processes, and a holder that crashed
without releasing blocks the task only until the lock's time-to-live runs out."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from config.settings import Settings
from tasks.locks import single_flight
from tests.conftest import redis_broker_settings
from tests.integration.conftest import REPO_ROOT, wait_until

TTL = 1.0  # seconds: short, so the test waits little for the expiry

# A process that takes the lock and dies inside it: os._exit skips every finally, as a
# kill -9 or the OOM killer would, so the lock is never released.
CRASHING_HOLDER = """
import json, os, sys
from pathlib import Path
from tasks.locks import single_flight
from tests.conftest import make_settings
args = json.loads(sys.argv[1])
settings = make_settings(database_url=args["db"], tmp_path=Path(args["tmp"]), **args["settings"])
with single_flight(settings, "dispatch", ttl=args["ttl"]) as mine:
    print("held" if mine else "refused", flush=True)
    os._exit(0)
"""


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    with redis_broker_settings(tmp_path) as settings:
        yield settings


def crash_while_holding(settings: Settings, tmp_path: Path) -> str:
    args = {
        "db": settings.database_url,
        "tmp": str(tmp_path),
        "ttl": TTL,
        "settings": {
            "broker_url": settings.broker_url,
            "broker_key_prefix": settings.broker_key_prefix,
        },
    }
    done = subprocess.run(
        [sys.executable, "-c", CRASHING_HOLDER, json.dumps(args)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def lock_is_mine(settings: Settings) -> bool:
    with single_flight(settings, "dispatch", ttl=TTL) as mine:
        return mine


def test_a_second_pass_is_refused_while_the_first_holds_the_lock(settings: Settings) -> None:
    with single_flight(settings, "dispatch", ttl=30) as first:
        assert first
        assert not lock_is_mine(settings)
    assert lock_is_mine(settings)  # released at the end of the first pass


def test_a_holder_that_crashed_blocks_the_next_pass_only_until_the_lock_expires(
    settings: Settings, tmp_path: Path
) -> None:
    assert crash_while_holding(settings, tmp_path) == "held"
    key = f"{settings.broker_key_prefix}ptnudge:lock:dispatch"
    client = redis.Redis.from_url(settings.broker_url)
    left = client.pttl(key)
    client.close()
    assert 0 < left <= TTL * 1000, "the dead holder's lock carries its time-to-live"
    assert not lock_is_mine(settings), "the dead holder still holds it"

    wait_until(lambda: lock_is_mine(settings), timeout=10 * TTL, what="the lock to expire")
