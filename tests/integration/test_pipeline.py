"""Due reminders leave as SMS through real workers, on time and once, through crashes,
broker restarts and a slow, flaky provider."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import select

from service.db import transaction
from service.delivery.ticking import run_tick
from service.enrollment import optouts
from service.models import Channel, Patient, Reminder, ReminderStatus, utcnow
from tasks.app import create_app
from tasks.reminders import enqueue_sends
from tests.factories import make_clinic, make_patient
from tests.integration.conftest import SENT, Pipeline, RedisServer, SweepTotals, wait_until

pytestmark = pytest.mark.integration


def enroll_due_now(pipeline: Pipeline, count: int) -> dict[str, str]:
    """``count`` patients whose stretch reminder is due now; returns phone -> first name.
    Their item is daily, at this minute: beat's dispatcher, running through a test, finds
    nothing more of theirs due (an item every 15 minutes would come due again on the
    quarter hour)."""
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
                items=[due_this_minute(now)],
                max_per_day=100,
                schedule_after=now - dt.timedelta(minutes=1),
            )
            assert patient.phone is not None
            names[patient.phone] = patient.first_name
    return names


def due_this_minute(now: dt.datetime) -> dict[str, object]:
    """A daily stretch at ``now``'s minute (UTC)."""
    return {"kind": "stretch", "at_times": [now.strftime("%H:%M")]}


# Beat's periods for the recovery tests, through the environment as in production.
RECOVERY = {"PTNUDGE_TICK_SECONDS": "1", "PTNUDGE_SWEEP_SECONDS": "2"}


def tick_and_enqueue(pipeline: Pipeline) -> list[int]:
    settings = pipeline.settings
    result = run_tick(settings=settings, sessions=pipeline.db.sessions)
    enqueue_sends(create_app(settings), result.to_send)
    return result.to_send


def recover_through_beat(pipeline: Pipeline, *, timeout: float) -> SweepTotals:
    """Start beat, as in production: it publishes ``ptnudge.dispatch`` every second and
    ``ptnudge.sweep`` every 2 s (``RECOVERY``) to the workers, which run them with the real
    lock and the broker's queue depth. Wait until every reminder reached a terminal state;
    return what the sweeps did."""
    pipeline.start_beat("beat")
    wait_until(lambda: pipeline.open_reminders() == 0, timeout=timeout, what="every reminder")
    # A sweep commits what it settled and then logs it: let the sweeps under way finish.
    wait_until(lambda: pipeline.sweeps_running() == 0, timeout=30, what="the sweeps to finish")
    return pipeline.sweeps()


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
    for message in messages:
        assert names[message["to"]] in message["body"]
        assert message["from"] == "+13125550000"
    pipeline.assert_exactly_once(names)
    assert all(r.status is ReminderStatus.SENT and r.provider_id for r in pipeline.reminders())


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
    pipeline.assert_exactly_once(set(names) - set(stopped))
    canceled = [r for r in pipeline.reminders() if r.status is ReminderStatus.CANCELED]
    assert sorted(r.to_address or "" for r in canceled) == stopped  # each once


def test_a_stop_sent_while_a_claimed_batch_is_in_flight_wins(pipeline: Pipeline) -> None:
    """20 patients in one send task, the provider answering slowly: the last patient's STOP
    arrives after the claim, while the first messages are leaving."""
    names = enroll_due_now(pipeline, 20)
    pipeline.twilio.slow(0.5)
    last_id = max(tick_and_enqueue(pipeline))
    last_phone = next(r.to_address for r in pipeline.reminders() if r.id == last_id)
    assert last_phone is not None
    pipeline.start_worker(concurrency=1)
    wait_until(lambda: len(pipeline.twilio.messages) >= 1, timeout=60, what="the batch to start")
    with transaction(pipeline.db.sessions) as session:
        assert session.get_one(Reminder, last_id).status is ReminderStatus.SENDING  # claimed
        optouts.opt_out(
            session=session,
            address=last_phone,
            channel=Channel.SMS,
            source="sms_keyword",
            actor="t",
        )
    wait_until(lambda: pipeline.open_reminders() == 0, timeout=60, what="the batch to finish")

    pipeline.assert_exactly_once(set(names) - {last_phone})  # the 19 others, once each
    last = next(r for r in pipeline.reminders() if r.id == last_id)
    assert last.status is ReminderStatus.CANCELED
    assert last.error_detail == "opted out while the batch was being sent"


def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(pipeline: Pipeline) -> None:
    pipeline.overrides.update(RECOVERY)
    names = enroll_due_now(pipeline, 150)
    pipeline.twilio.slow(0.1)
    tick_and_enqueue(pipeline)
    worker = pipeline.start_worker(concurrency=2)
    # Two batches of 20 leave side by side: at 50 messages both of the second pair are
    # half-way through, claimed and not yet recorded.
    wait_until(lambda: len(pipeline.twilio.messages) >= 50, timeout=60, what="sending to start")
    worker.kill9()
    rows = pipeline.reminders()
    in_flight = [r.id for r in rows if r.status is ReminderStatus.SENDING]
    waiting = [r.id for r in rows if r.status is ReminderStatus.QUEUED]
    assert in_flight, "the kill left reminders mid-send"
    assert waiting, "the kill left reminders waiting for a send"
    pipeline.twilio.slow(0)
    pipeline.start_worker(concurrency=2)

    sweeps = recover_through_beat(pipeline, timeout=180)

    pipeline.assert_exactly_once(names)
    # What the kill left mid-send was settled by asking the provider: each in-flight reminder
    # once, as sent when the provider had it, queued again when it had not.
    assert sweeps.reconciled_sent > 0
    assert sweeps.reconciled_sent + sweeps.reconciled_unsent == len(in_flight)
    settled = {r.id: r.status for r in pipeline.reminders()}
    assert all(settled[rid] in SENT for rid in in_flight)
    # The dead worker's prefetched tasks never come back from Redis before the visibility
    # timeout: the sweeper queued their reminders again, having seen an empty send queue.
    assert sweeps.requeued_lost > 0
    assert "0" in sweeps.depths


def test_a_broker_restart_mid_run_loses_and_duplicates_nothing(pipeline: Pipeline) -> None:
    pipeline.overrides.update(RECOVERY)
    broker = RedisServer(pipeline.tmp_path)
    broker.start()
    pipeline.broker_url = broker.url
    try:
        names = enroll_due_now(pipeline, 120)
        pipeline.twilio.slow(0.05)
        tick_and_enqueue(pipeline)
        pipeline.start_worker(concurrency=2)
        pipeline.start_beat("beat")  # beat runs through the outage, as in production
        wait_until(lambda: len(pipeline.twilio.messages) >= 30, timeout=60, what="sending")
        broker.stop()  # no persistence: every queued task is gone
        time.sleep(2)
        broker.start()
        pipeline.twilio.slow(0)
        wait_until(lambda: pipeline.open_reminders() == 0, timeout=180, what="every reminder")
    finally:
        pipeline.stop_beats()
        for worker in pipeline.workers:
            worker.stop()
        broker.stop()
    pipeline.assert_exactly_once(names)
    sweeps = pipeline.sweeps()
    assert sweeps.requeued_lost > 0, "the tasks the restart lost were queued again"
    assert "0" in sweeps.depths


def test_a_slow_and_flaky_provider_gets_each_reminder_once_after_retries(
    pipeline: Pipeline,
) -> None:
    pipeline.overrides.update(RECOVERY)
    names = enroll_due_now(pipeline, 60)
    pipeline.twilio.fail_next(10, status=429, code=20429)
    pipeline.twilio.fail_rate(0.3, status=500, code=20500, seed=7)
    tick_and_enqueue(pipeline)
    pipeline.start_worker(concurrency=2)
    sweeps = recover_through_beat(pipeline, timeout=240)
    pipeline.assert_exactly_once(names)
    assert any(r.attempts > 1 for r in pipeline.reminders()), "retries happened"
    # A 500 may hide an accepted message: each was settled against the provider's list (it
    # had none of them) before being sent again.
    assert sweeps.reconciled_unsent > 0
    assert sweeps.reconciled_sent == 0


def test_a_proxy_error_after_the_provider_took_the_message_is_not_resent(
    pipeline: Pipeline,
) -> None:
    pipeline.overrides.update(RECOVERY)
    names = enroll_due_now(pipeline, 30)
    pipeline.twilio.fail_after_accept(6, status=502)
    pipeline.twilio.fail_after_accept(6, status=504)
    tick_and_enqueue(pipeline)
    pipeline.start_worker(concurrency=2)
    sweeps = recover_through_beat(pipeline, timeout=120)
    pipeline.assert_exactly_once(names)
    assert sweeps.reconciled_sent == 12  # found at the provider, each marked sent
    assert sweeps.reconciled_unsent == 0


def test_answers_slower_than_the_timeout_are_reconciled_not_resent(pipeline: Pipeline) -> None:
    pipeline.overrides.update(RECOVERY)
    names = enroll_due_now(pipeline, 6)
    pipeline.twilio.slow(3)  # longer than PTNUDGE_TWILIO_TIMEOUT_SECONDS=2: Twilio has them
    tick_and_enqueue(pipeline)
    pipeline.start_worker(concurrency=2)
    wait_until(lambda: len(pipeline.twilio.messages) == 6, timeout=60, what="six messages")
    pipeline.twilio.slow(0)
    sweeps = recover_through_beat(pipeline, timeout=60)
    pipeline.assert_exactly_once(names)
    assert sweeps.reconciled_sent == 6


def test_a_permanent_opt_out_error_records_the_opt_out(pipeline: Pipeline) -> None:
    names = enroll_due_now(pipeline, 3)
    refused = sorted(names)[0]
    pipeline.twilio.fail_for(refused, status=400, code=21610)
    tick_and_enqueue(pipeline)
    pipeline.start_worker(concurrency=1)
    wait_until(lambda: pipeline.open_reminders() == 0, timeout=60, what="sends")
    pipeline.assert_exactly_once(set(names) - {refused})
    with pipeline.db.sessions() as session:
        assert optouts.is_opted_out(session=session, address=refused, channel=Channel.SMS)
        failed = session.scalars(
            select(Reminder).join(Patient).where(Patient.phone == refused)
        ).one()
        assert failed.status is ReminderStatus.FAILED
        assert failed.error_code == "21610"
