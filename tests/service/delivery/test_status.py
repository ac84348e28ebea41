"""``collect_status``: what ``ptnudge status`` reports, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import Settings
from service.broker import SEND_QUEUE
from service.delivery.status import broker_queue_depth, collect_status
from service.models import AlertStatus, ClinicAlert
from tasks.app import create_app
from tasks.reminders import enqueue_sends
from tests.conftest import redis_broker_settings
from tests.factories import make_clinic, make_patient
from tests.service.replies.test_inbound import NOW, sms


def test_status_counts_the_clinic_alerts_not_yet_sent(session: Session, settings: Settings) -> None:
    clinic = make_clinic(session)
    for name, phone in (("Ana", "+13125556201"), ("Luis", "+13125556202")):
        sms(
            session, settings, make_patient(session, clinic, first_name=name, phone=phone), "I fell"
        )
    sent = session.scalars(select(ClinicAlert).order_by(ClinicAlert.id)).first()
    assert sent is not None
    sent.status = AlertStatus.SENT
    session.flush()

    found = collect_status(session=session, settings=settings, now=NOW)

    assert found["clinic_alerts_unsent"] == 1


@pytest.fixture
def prefixed_broker(tmp_path: Path) -> Iterator[Settings]:
    """Settings for a Redis broker whose keys carry a prefix, on a Redis database emptied
    before and after."""
    with redis_broker_settings(tmp_path) as settings:
        yield settings


def test_the_queue_depth_counts_the_tasks_in_the_prefixed_send_queue(
    prefixed_broker: Settings,
) -> None:
    celery = create_app(prefixed_broker)
    enqueue_sends(celery, list(range(1, 20 * 7 + 1)))  # seven send tasks of 20

    assert broker_queue_depth(prefixed_broker) == 7
    client = redis.Redis.from_url(prefixed_broker.broker_url)
    assert client.llen(f"{prefixed_broker.broker_key_prefix}{SEND_QUEUE}") == 7
    client.close()


def test_an_empty_prefixed_queue_is_zero_deep_and_another_deployments_queue_does_not_count(
    prefixed_broker: Settings,
) -> None:
    assert broker_queue_depth(prefixed_broker) == 0  # empty is 0 deep, not "unknown"
    # Another deployment on the same Redis, without a prefix, has a backlog of its own.
    neighbour = prefixed_broker.model_copy(update={"broker_key_prefix": ""})
    enqueue_sends(create_app(neighbour), list(range(1, 61)))
    assert broker_queue_depth(neighbour) == 3

    assert broker_queue_depth(prefixed_broker) == 0
