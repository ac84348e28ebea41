"""Nothing but an answer leaves outside the patient's waking window: a welcome for a patient
enrolled at 03:00 their time goes out when their window opens, through the real dispatcher,
a real worker and the real twilio client.

The clock is driven as in the other pipeline tests: the patient's zone is chosen so that the
real time now is just after 08:00 for them, and the dispatcher is run at the earlier
instants (enrollment at 03:00, the small hours) by passing them in; the worker sends at the
real time."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from service.db import transaction
from service.delivery.ticking import run_tick
from service.enrollment.patients import welcome_values
from service.models import ChannelChoice, Reminder, ReminderStatus, utcnow
from tasks.app import create_app
from tasks.reminders import enqueue_sends
from tests.factories import make_clinic, make_patient
from tests.integration.conftest import Pipeline, wait_until

pytestmark = pytest.mark.integration


def zone_where_it_is_eight(now: dt.datetime) -> str:
    """A whole-hour zone in which ``now`` reads 08:mm (Etc/GMT-N is UTC+N)."""
    offset = (8 - now.hour) % 24
    if offset > 14:
        offset -= 24
    return f"Etc/GMT{-offset:+d}"


def welcome(pipeline: Pipeline) -> Reminder:
    with pipeline.db.sessions() as session:
        return session.scalars(select(Reminder).where(Reminder.kind == "welcome")).one()


def test_a_patient_enrolled_at_three_in_the_morning_gets_the_welcome_when_their_window_opens(
    pipeline: Pipeline,
) -> None:
    pipeline.overrides["PTNUDGE_STALE_AFTER_SECONDS"] = "7200"  # 08:59 is still fresh
    now = utcnow()
    zone = ZoneInfo(zone_where_it_is_eight(now))
    opening = now.astimezone(zone).replace(minute=0, second=0, microsecond=0)
    enrolled = opening - dt.timedelta(hours=5)  # 03:00 for the patient
    with transaction(pipeline.db.sessions) as session:
        patient = make_patient(
            session, make_clinic(session), first_name="Haruki", timezone=str(zone)
        )
        for values in welcome_values(
            patient_id=patient.id, channel=ChannelChoice.SMS, now=enrolled
        ):
            session.add(Reminder(**values))
    settings = pipeline.settings
    celery = create_app(settings)
    pipeline.start_worker(concurrency=1)

    # The small hours: the dispatcher holds the welcome for the window's first minute.
    for moment in (enrolled, enrolled + dt.timedelta(hours=2), opening - dt.timedelta(seconds=1)):
        result = run_tick(settings=settings, sessions=pipeline.db.sessions, now=moment)
        enqueue_sends(celery, result.to_send)
        assert result.to_send == []
        assert welcome(pipeline).status is ReminderStatus.SCHEDULED
    assert welcome(pipeline).due_at == opening.astimezone(dt.UTC)

    result = run_tick(settings=settings, sessions=pipeline.db.sessions)  # the real time
    enqueue_sends(celery, result.to_send)
    # The fake has the message a moment before the worker records it: wait for both.
    wait_until(
        lambda: len(pipeline.twilio.messages) == 1 and pipeline.open_reminders() == 0,
        timeout=60,
        what="the welcome, sent and recorded",
    )

    [message] = pipeline.twilio.messages
    assert message["to"] == patient.phone
    assert "Haruki" in message["body"]
    sent = welcome(pipeline)
    assert sent.status in {ReminderStatus.SENT, ReminderStatus.DELIVERED}
    assert sent.sent_at is not None
    assert sent.sent_at >= opening
