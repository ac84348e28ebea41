"""The Celery app factory: the settings an app was built for travel with it, in its config."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery import Celery

from service.broker import SEND_QUEUE
from tasks.app import CONTROL_QUEUE, CONTROL_TASKS, create_app, settings_of
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


def test_beats_passes_and_clinic_alerts_have_a_queue_of_their_own(tmp_path: Path) -> None:
    # Behind a burst of sends, the next dispatcher pass and a warning-sign alert must not wait.
    settings = make_settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path=tmp_path)
    app = create_app(settings)
    app.loader.import_default_modules()

    def queue_of(task: str) -> str:
        return str(app.amqp.router.route({}, task)["queue"].name)

    periodic = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert {queue_of(task) for task in periodic} == {CONTROL_QUEUE}
    assert queue_of("ptnudge.clinic_alert") == CONTROL_QUEUE
    ours = {name for name in app.tasks if name.startswith("ptnudge.")}
    assert ours >= periodic | {"ptnudge.clinic_alert", "ptnudge.send_reminders"}
    for task in ours - set(CONTROL_TASKS):
        assert queue_of(task) == SEND_QUEUE, task


def test_a_worker_started_without_queues_consumes_both(tmp_path: Path) -> None:
    # `celery -A tasks.app worker` with no -Q (development, `ptnudge run`, the tests) takes
    # what the app declares: every task still runs somewhere.
    settings = make_settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path=tmp_path)

    declared = create_app(settings).amqp.queues

    assert set(declared) == {SEND_QUEUE, CONTROL_QUEUE}
