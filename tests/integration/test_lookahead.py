"""Look-ahead dispatch through a real worker: the worker's own dispatch pass claims what falls
due before the next tick, and each reminder leaves at its due instant, never before it, and
once, even when the worker holding the countdown is killed."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import pytest

from service.db import transaction
from service.models import ReminderStatus, utcnow
from tasks.app import create_app
from tasks.reminders import dispatch
from tests.factories import make_clinic, make_patient
from tests.integration.conftest import SENT, Pipeline, wait_until
from tests.integration.test_pipeline import RECOVERY, recover_through_beat

pytestmark = pytest.mark.integration


def next_minute_ahead(*, at_least: float, at_most: float) -> dt.datetime:
    """A whole minute between ``at_least`` and ``at_most`` seconds from now, waiting (at most
    a minute) until there is one: the plan's times are whole minutes."""
    while True:
        now = utcnow()
        minute = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        lead = (minute - now).total_seconds()
        if at_least <= lead <= at_most:
            return minute
        time.sleep(max(0.05, lead - at_most) if lead > at_most else 0.5)


def zone_awake_at(moment: dt.datetime) -> str:
    # Awake 00:00-23:59 local: keep the due minute clear of the window's edge at midnight.
    return "UTC" if 1 <= moment.hour <= 22 else "Asia/Tokyo"


def enroll_due_at(pipeline: Pipeline, count: int, due: dt.datetime) -> dict[str, str]:
    """``count`` patients whose daily stretch is at ``due``; returns phone -> first name."""
    zone = zone_awake_at(due)
    local = due.astimezone(ZoneInfo(zone))
    names = {}
    with transaction(pipeline.db.sessions) as session:
        clinic = make_clinic(session)
        for n in range(count):
            patient = make_patient(
                session, clinic, first_name=f"Soon{n:03d}", timezone=zone,
                wake=(dt.time(0, 0), dt.time(23, 59)), max_per_day=100,
                items=[{"kind": "stretch", "at_times": [f"{local:%H:%M}"]}],
                schedule_after=due - dt.timedelta(minutes=1),
            )  # fmt: skip
            assert patient.phone is not None
            names[patient.phone] = patient.first_name
    return names


def dispatch_on_the_worker(pipeline: Pipeline) -> None:
    """What beat does every tick: publish the dispatch task (the worker claims ahead)."""
    with create_app(pipeline.settings).producer_or_acquire() as producer:
        dispatch.apply_async(producer=producer)


def received_at(message: dict[str, object]) -> dt.datetime:
    return dt.datetime.fromisoformat(str(message["received_at"]))


def test_no_reminder_reaches_the_provider_before_its_due_time(pipeline: Pipeline) -> None:
    pipeline.overrides["PTNUDGE_TICK_SECONDS"] = "15"
    pipeline.start_worker(concurrency=2)
    due = next_minute_ahead(at_least=8, at_most=12)
    names = enroll_due_at(pipeline, 12, due)

    dispatch_on_the_worker(pipeline)
    wait_until(lambda: pipeline.open_reminders() == 0 and len(pipeline.reminders()) == 12,
               timeout=90, what="the twelve sends")  # fmt: skip

    rows = pipeline.reminders()
    assert all(r.status in SENT and r.due_at == due for r in rows)
    # Claimed by the pass before its time: queued_at is the due time only for such a claim.
    assert all(r.queued_at == due for r in rows), "the pass claimed them ahead"
    messages = pipeline.twilio.messages
    assert {m["to"] for m in messages} == set(names)
    early = [m["to"] for m in messages if received_at(m) < due]
    assert early == [], "messages the provider received before their due time"
    assert all(r.sent_at is not None and r.sent_at >= due for r in rows)


def test_a_worker_killed_while_holding_a_countdown_loses_nothing_and_sends_once_late(
    pipeline: Pipeline,
) -> None:
    pipeline.overrides["PTNUDGE_TICK_SECONDS"] = "30"
    worker = pipeline.start_worker(concurrency=2)
    due = next_minute_ahead(at_least=18, at_most=26)
    names = enroll_due_at(pipeline, 45, due)  # three send tasks, all counting down

    dispatch_on_the_worker(pipeline)
    wait_until(lambda: worker.log().count("ptnudge.send_reminders[") >= 3, timeout=15,
               what="the worker to hold the three send tasks")  # fmt: skip
    worker.kill9()
    assert pipeline.twilio.messages == [], "nothing left before its due time"
    queued = pipeline.reminders()
    assert len(queued) == 45
    assert all(r.status is ReminderStatus.QUEUED for r in queued)

    # The broker keeps the dead worker's tasks unacknowledged for its visibility timeout (an
    # hour): beat's sweep requeues them once they are requeue_after past their due time.
    pipeline.overrides.update(RECOVERY)
    pipeline.start_worker(concurrency=2)
    recovered = recover_through_beat(pipeline, timeout=120)

    assert recovered.requeued_lost >= 45, "the sweep requeued what the dead worker held"
    pipeline.assert_exactly_once(names)
    messages = pipeline.twilio.messages
    assert len(messages) == 45, "every patient got their reminder"
    assert all(received_at(m) >= due for m in messages)
