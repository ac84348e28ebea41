"""The Celery app factory: the settings an app was built for travel with it, in its config."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery import Celery

from tasks.app import create_app, settings_of
from tasks.runtime import get_runtime
from tests.conftest import make_settings


def test_an_app_carries_the_settings_it_was_built_for(tmp_path: Path) -> None:
    settings = make_settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path=tmp_path)

    app = create_app(settings)

    assert settings_of(app) is settings
    assert app.conf.broker_url == settings.broker_url


def test_the_runtime_of_an_app_is_built_from_that_apps_settings(tmp_path: Path) -> None:
    settings = make_settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path=tmp_path, tick_seconds=7.0
    )
    app = create_app(settings)

    runtime = get_runtime(app)

    assert runtime.settings is settings
    assert get_runtime(app) is runtime  # once per process
    runtime.sessions.kw["bind"].dispose()


def test_an_app_not_built_by_the_factory_is_refused() -> None:
    with pytest.raises(LookupError, match=r"not built by tasks\.app\.create_app"):
        settings_of(Celery("elsewhere"))


def test_beat_sweeps_every_sweep_seconds_but_never_more_often_than_it_ticks(
    tmp_path: Path,
) -> None:
    def sweep_period(**overrides: object) -> object:
        settings = make_settings(
            database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path=tmp_path, **overrides
        )
        return create_app(settings).conf.beat_schedule["sweep-unfinished-reminders"]["schedule"]

    assert sweep_period() == 30.0
    assert sweep_period(tick_seconds=1, sweep_seconds=2) == 2.0
    assert sweep_period(tick_seconds=60, sweep_seconds=2) == 60.0
