"""Embedded mode, for one machine with no Redis: SQLite holds the schedule and, through
kombu's SQLAlchemy transport, the task queue. Real beat and worker processes deliver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Database, dispose_database, new_database
from tests.fakes.twilio_server import RemoteTwilioServer
from tests.integration.conftest import Pipeline, wait_until
from tests.integration.test_pipeline import enroll_due_now

pytestmark = pytest.mark.integration


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    db = new_database("sqlite", tmp_path)
    yield db
    dispose_database(db)


@pytest.fixture
def embedded(
    sqlite_db: Database, fake_twilio: RemoteTwilioServer, tmp_path: Path
) -> Iterator[Pipeline]:
    pipe = Pipeline(
        db=sqlite_db,
        broker_url=f"sqla+sqlite:///{tmp_path / 'broker.db'}",
        twilio=fake_twilio,
        tmp_path=tmp_path,
        overrides={"PTNUDGE_TICK_SECONDS": "1", "PTNUDGE_BROKER_KEY_PREFIX": ""},
    )
    yield pipe
    pipe.stop_beats()
    for worker in pipe.workers:
        worker.stop()


def test_with_the_embedded_broker_beat_and_a_worker_deliver_each_due_reminder_once(
    embedded: Pipeline,
) -> None:
    assert embedded.settings.embedded_broker
    names = enroll_due_now(embedded, 5)
    embedded.start_worker(concurrency=2)
    embedded.start_beat("beat")  # its dispatcher finds them due and queues them in SQLite

    wait_until(lambda: len(embedded.reminders()) == 5, timeout=60, what="the dispatcher")
    wait_until(lambda: embedded.open_reminders() == 0, timeout=60, what="the sends")

    embedded.assert_exactly_once(names)
    for message in embedded.twilio.messages:
        assert names[message["to"]] in message["body"]
