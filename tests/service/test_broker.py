"""One set of broker connection options for the Celery app, the health check and status."""

from __future__ import annotations

from pathlib import Path

from config.settings import Settings
from service import broker
from tests.conftest import REDIS_URL, make_settings


def settings_for(tmp_path: Path, **overrides: object) -> Settings:
    return make_settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path=tmp_path, **overrides
    )


def test_the_embedded_broker_gets_no_transport_options(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)

    assert settings.broker_kind == "embedded"
    assert broker.transport_options(settings) == {}


def test_redis_gets_a_socket_timeout_a_long_visibility_timeout_and_the_key_prefix(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path, broker_url=f"{REDIS_URL}/3", broker_key_prefix="t1:")

    assert settings.redis_broker
    assert broker.transport_options(settings) == {
        "socket_timeout": 5.0,
        "visibility_timeout": 3600,
        "global_keyprefix": "t1:",
    }


def test_a_connection_gives_up_after_its_timeout(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, broker_url=f"{REDIS_URL}/3", broker_key_prefix="t1:")

    connection = broker.connect(settings, timeout=3.0)

    assert connection.connect_timeout == 3.0
    assert connection.transport_options["socket_timeout"] == 3.0
    assert connection.transport_options["global_keyprefix"] == "t1:"
    connection.release()


def test_rediss_is_redis_and_memory_is_neither_kind(tmp_path: Path) -> None:
    assert settings_for(tmp_path, broker_url="rediss://cache.example:6380/0").redis_broker
    memory = settings_for(tmp_path, broker_url="memory://")
    assert (memory.broker_kind, memory.redis_broker, memory.embedded_broker) == (
        "other",
        False,
        False,
    )
