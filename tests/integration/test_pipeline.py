"""Due reminders leave as SMS through real workers, on time and once, through crashes,
broker restarts and a slow, flaky provider."""

from __future__ import annotations

import collections
import datetime as dt
import time

import pytest
from sqlalchemy import select

from service.db import transaction
from service.delivery.ticking import run_sweep, run_tick
from service.enrollment import optouts
from service.models import Channel, Patient, Reminder, ReminderStatus, utcnow
from service.transports.registry import sms_transport
from tasks.app import create_app
from tasks.reminders import enqueue_sends
from tests.factories import make_clinic, make_patient
from tests.integration.conftest import Pipeline, RedisServer, wait_until

pytestmark = pytest.mark.integration

SENT = {ReminderStatus.SENT, ReminderStatus.DELIVERED}


def enroll_due_now(pipeline: Pipeline, count: int) -> dict[str, str]:
    """``count`` patients whose stretch reminder is due now; returns phone -> first name."""
    now = utcnow()
    names = {}
    with transaction(pipeline.db.sessions) as session:
        clinic = make_clinic(session)
        for n in range(count):
            patient = make_patient(
                session,
                clinic,
                first_name=f"Pat{n:04d}",
                timezone="UTC",
                wake=(dt.time(0, 0), dt.time(23, 59)),
                items=[{"kind": "stretch", "every_minutes": 15}],
                max_per_day=100,
                schedule_after=now - dt.timedelta(minutes=15),
            )
            assert patient.phone is not None
            names[patient.phone] = patient.first_name
    return names


def tick_and_enqueue(pipeline: Pipeline) -> list[int]:
    settings = pipeline.settings
    result = run_tick(settings=settings, sessions=pipeline.db.sessions)
    enqueue_sends(create_app(settings), result.to_send)
    return result.to_send


def sweep_until_settled(pipeline: Pipeline, *, timeout: float) -> None:
    """Run the sweeper (as beat would) until every reminder reached a terminal state."""
    settings = pipeline.settings
    celery = create_app(settings)
    sms = sms_transport(settings)
    deadline = time.monotonic() + timeout
    while pipeline.open_reminders() and time.monotonic() < deadline:
        result = run_sweep(settings=settings, sessions=pipeline.db.sessions, sms=sms)
        enqueue_sends(celery, result.requeued)
        time.sleep(1)
    assert pipeline.open_reminders() == 0, "some reminders never reached a terminal state"


def reminders(pipeline: Pipeline) -> list[Reminder]:
    with pipeline.db.sessions() as session:
        return list(session.scalars(select(Reminder)))


def assert_exactly_once(pipeline: Pipeline, names: dict[str, str]) -> None:
    """No phone got a message twice, and each sent reminder is one message at the provider."""
    sent_to = collections.Counter(message["to"] for message in pipeline.twilio.messages)
    duplicates = {to: n for to, n in sent_to.items() if n > 1}
    assert not duplicates, f"phones that got the same reminder more than once: {len(duplicates)}"
    rows = reminders(pipeline)
    assert {r.to_address for r in rows if r.status in SENT} == set(sent_to)
    assert set(sent_to) <= set(names)


def test_500_patients_due_in_the_same_minute_each_get_one_sms_with_their_first_name(
    pipeline: Pipeline,
) -> None:
    names = enroll_due_now(pipeline, 500)
    queued = tick_and_enqueue(pipeline)
    assert len(queued) == 500
    pipeline.start_worker()
    wait_until(lambda: pipeline.open_reminders() == 0, timeout=180, what="500 sends")
    messages = pipeline.twilio.messages
    assert len(messages) == 500
    assert {m["to"] for m in messages} == set(names)
    for message in messages:
        assert names[message["to"]] in message["body"]
        assert message["from"] == "+13125550000"
    assert_exactly_once(pipeline, names)
    assert all(r.status is ReminderStatus.SENT and r.provider_id for r in reminders(pipeline))


def test_a_stop_recorded_while_reminders_sit_in_the_queue_stops_all_of_them(
    pipeline: Pipeline,
) -> None:
    names = enroll_due_now(pipeline, 30)
    tick_and_enqueue(pipeline)  # queued in Redis; no worker yet
    stopped = sorted(names)[:10]
    with transaction(pipeline.db.sessions) as session:
        for phone in stopped:
            optouts.opt_out(
                session=session, address=phone, channel=Channel.SMS, source="sms_keyword", actor="t"
            )
    pipeline.start_worker()
    wait_until(lambda: pipeline.open_reminders() == 0, timeout=60, what="the queue to drain")
    sent_to = {message["to"] for message in pipeline.twilio.messages}
    assert not sent_to & set(stopped)
    assert sent_to == set(names) - set(stopped)
    canceled = [r for r in reminders(pipeline) if r.status is ReminderStatus.CANCELED]
    assert {r.to_address for r in canceled} == set(stopped)


def test_a_stop_sent_while_a_claimed_batch_is_in_flight_wins(pipeline: Pipeline) -> None:
    """20 patients in one send task, the provider answering slowly: the last patient's STOP
    arrives after the claim, while the first messages are leaving."""
    names = enroll_due_now(pipeline, 20)
    pipeline.twilio.slow(0.5)
    last_id = max(tick_and_enqueue(pipeline))
    last_phone = next(r.to_address for r in reminders(pipeline) if r.id == last_id)
    pipeline.start_worker(concurrency=1)
    wait_until(lambda: len(pipeline.twilio.messages) >= 1, timeout=60, what="the batch to start")
    with transaction(pipeline.db.sessions) as session:
        assert session.get_one(Reminder, last_id).status is ReminderStatus.SENDING  # claimed
        optouts.opt_out(
            session=session,
            address=last_phone or "",
            channel=Channel.SMS,
            source="sms_keyword",
            actor="t",
        )
    wait_until(lambda: pipeline.open_reminders() == 0, timeout=60, what="the batch to finish")

    sent_to = collections.Counter(message["to"] for message in pipeline.twilio.messages)
    assert last_phone not in sent_to
    assert sent_to == collections.Counter(set(names) - {last_phone})  # the 19 others, once
    last = next(r for r in reminders(pipeline) if r.id == last_id)
    assert last.status is ReminderStatus.CANCELED
    assert last.error_detail == "opted out while the batch was being sent"


def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(pipeline: Pipeline) -> None:
    names = enroll_due_now(pipeline, 150)
    pipeline.twilio.slow(0.05)
    tick_and_enqueue(pipeline)
    worker = pipeline.start_worker(concurrency=2)
    wait_until(lambda: len(pipeline.twilio.messages) >= 40, timeout=60, what="sending to start")
    worker.kill9()
    in_flight = [r for r in reminders(pipeline) if r.status is ReminderStatus.SENDING]
    pipeline.twilio.slow(0)
    pipeline.start_worker(concurrency=2)
    sweep_until_settled(pipeline, timeout=180)
    assert_exactly_once(pipeline, names)
    assert len(pipeline.twilio.messages) == 150, "every patient got their reminder"
    # Whatever the kill left mid-send was settled by asking the provider, not by resending.
    settled = {r.id: r for r in reminders(pipeline)}
    assert all(settled[r.id].status in SENT for r in in_flight)


def test_a_broker_restart_mid_run_loses_and_duplicates_nothing(pipeline: Pipeline) -> None:
    broker = RedisServer(pipeline.tmp_path)
    broker.start()
    pipeline.broker_url = broker.url
    try:
        names = enroll_due_now(pipeline, 120)
        pipeline.twilio.slow(0.05)
        tick_and_enqueue(pipeline)
        pipeline.start_worker(concurrency=2)
        wait_until(lambda: len(pipeline.twilio.messages) >= 30, timeout=60, what="sending")
        broker.stop()  # no persistence: every queued task is gone
        time.sleep(2)
        broker.start()
        pipeline.twilio.slow(0)
        sweep_until_settled(pipeline, timeout=180)
    finally:
        for worker in pipeline.workers:
            worker.stop()
        broker.stop()
    assert_exactly_once(pipeline, names)
    assert len(pipeline.twilio.messages) == 120


def test_a_slow_and_flaky_provider_gets_each_reminder_once_after_retries(
    pipeline: Pipeline,
) -> None:
    names = enroll_due_now(pipeline, 60)
    pipeline.twilio.fail_next(10, status=429, code=20429)
    pipeline.twilio.fail_rate(0.3, status=500, code=20500, seed=7)
    tick_and_enqueue(pipeline)
    pipeline.start_worker(concurrency=2)
    sweep_until_settled(pipeline, timeout=240)
    assert_exactly_once(pipeline, names)
    assert len(pipeline.twilio.messages) == 60
    assert any(r.attempts > 1 for r in reminders(pipeline)), "retries happened"


def test_answers_slower_than_the_timeout_are_reconciled_not_resent(pipeline: Pipeline) -> None:
    names = enroll_due_now(pipeline, 6)
    pipeline.twilio.slow(3)  # longer than PTNUDGE_TWILIO_TIMEOUT_SECONDS=2: Twilio has them
    tick_and_enqueue(pipeline)
    pipeline.start_worker(concurrency=2)
    wait_until(lambda: len(pipeline.twilio.messages) == 6, timeout=60, what="six messages")
    pipeline.twilio.slow(0)
    sweep_until_settled(pipeline, timeout=60)
    assert_exactly_once(pipeline, names)
    assert all(r.status in SENT for r in reminders(pipeline))


def test_a_permanent_opt_out_error_records_the_opt_out(pipeline: Pipeline) -> None:
    names = enroll_due_now(pipeline, 3)
    refused = sorted(names)[0]
    pipeline.twilio.fail_for(refused, status=400, code=21610)
    tick_and_enqueue(pipeline)
    pipeline.start_worker(concurrency=1)
    wait_until(lambda: pipeline.open_reminders() == 0, timeout=60, what="sends")
    with pipeline.db.sessions() as session:
        assert optouts.is_opted_out(session=session, address=refused, channel=Channel.SMS)
        failed = session.scalars(
            select(Reminder).join(Patient).where(Patient.phone == refused)
        ).one()
        assert failed.status is ReminderStatus.FAILED
        assert failed.error_code == "21610"
