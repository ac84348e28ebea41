"""The send task's retry policy: exponential backoff with full jitter, capped, bounded."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from config.settings import Settings
from tasks.reminders import BACKOFF_MAX, retry_policy
from tests.conftest import make_settings

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
