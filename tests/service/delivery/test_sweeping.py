"""The sweeper through ``run_sweep``: lost tasks are requeued, and reminders a worker left in
``sending`` are settled by asking the (fake) provider, never by sending blindly."""

from __future__ import annotations

import datetime as dt
import email.utils
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from service.delivery.sending import SendOutcome, Transports
from service.delivery.sweeping import SweepResult
from service.delivery.ticking import run_sweep, run_tick
from service.models import ChannelChoice, ReminderStatus, utcnow
from service.transports.base import OutboundMessage, Receipt
from service.transports.console import ConsoleEmailTransport
from service.transports.sms import TwilioSmsTransport
from tests.conftest import Database
from tests.fakes.twilio_server import FakeTwilioServer, twilio_server
from tests.service.delivery.test_sending import (
    dispatch,
    due_reminder,
    enroll_due,
    load_reminder,
    send,
    transports_for,
    twilio_settings,
)

REQUEUE_AFTER = dt.timedelta(seconds=120)
RECONCILE_AFTER = dt.timedelta(seconds=300)


class WorkerDied(BaseException):
    """The worker process ending mid-send (killed, out of memory): not an error the send
    task can catch, so the reminder stays where the claim left it."""


class DiesBeforeSending:
    """A transport whose worker dies after the claim and before the request leaves: the
    provider never hears of the message."""

    def send(self, message: OutboundMessage) -> Receipt:
        raise WorkerDied


def sweep(database: Database, settings: Settings, *, now: dt.datetime) -> SweepResult:
    """One sweep as beat runs it, with the real Twilio transport as the reconciler."""
    sms = TwilioSmsTransport(settings)
    return run_sweep(settings=settings, sessions=database.sessions, sms=sms, now=now)


@pytest.fixture
def twilio() -> Iterator[FakeTwilioServer]:
    with twilio_server() as server:
        yield server


@pytest.fixture
def settings(committed_db: Database, tmp_path: Path, twilio: FakeTwilioServer) -> Settings:
    return twilio_settings(
        committed_db,
        tmp_path,
        twilio,
        requeue_after_seconds=int(REQUEUE_AFTER.total_seconds()),
        reconcile_after_seconds=int(RECONCILE_AFTER.total_seconds()),
    )


@pytest.fixture
def transports(settings: Settings) -> Transports:
    return transports_for(settings)


@pytest.fixture
def now() -> dt.datetime:
    # The real time: the fake stamps each message with it, and reconciling compares the
    # claim time with the provider's.
    return utcnow()


# --- queued for too long -----------------------------------------------------------------


def test_a_queued_reminder_older_than_requeue_after_is_requeued_and_refreshed(
    committed_db: Database, settings: Settings, now: dt.datetime
) -> None:
    reminder = due_reminder(committed_db, settings, now=now)
    later = now + REQUEUE_AFTER + dt.timedelta(seconds=1)

    result = sweep(committed_db, settings, now=later)

    assert result.requeued == [reminder.id]
    refreshed = load_reminder(committed_db, reminder.id)
    assert refreshed.status is ReminderStatus.QUEUED
    assert refreshed.queued_at == later


def test_a_requeued_reminder_is_not_requeued_again_by_the_next_sweep(
    committed_db: Database, settings: Settings, now: dt.datetime
) -> None:
    reminder = due_reminder(committed_db, settings, now=now)
    later = now + REQUEUE_AFTER + dt.timedelta(seconds=1)
    sweep(committed_db, settings, now=later)

    again = sweep(committed_db, settings, now=later + dt.timedelta(seconds=15))

    assert again.requeued == []
    assert load_reminder(committed_db, reminder.id).queued_at == later


def test_a_freshly_queued_reminder_is_left_to_its_task(
    committed_db: Database, settings: Settings, now: dt.datetime
) -> None:
    reminder = due_reminder(committed_db, settings, now=now)

    result = sweep(committed_db, settings, now=now + REQUEUE_AFTER / 2)

    assert result.requeued == []
    assert load_reminder(committed_db, reminder.id).queued_at == now


def test_a_reminder_claimed_ahead_is_not_requeued_before_its_due_time_plus_requeue_after(
    committed_db: Database, settings: Settings, now: dt.datetime
) -> None:
    patient = enroll_due(committed_db, now=now)
    due = patient.plan_items[0].next_due_at
    assert due is not None
    claimed_at = due - dt.timedelta(minutes=10)
    [reminder_id] = run_tick(
        settings=settings,
        sessions=committed_db.sessions,
        now=claimed_at,
        ahead=dt.timedelta(minutes=10),
    ).to_send

    # Long enough after the claim to count as lost, were the wait counted from the claim.
    before_due = sweep(committed_db, settings, now=claimed_at + REQUEUE_AFTER * 2)
    overdue = sweep(committed_db, settings, now=due + REQUEUE_AFTER + dt.timedelta(seconds=1))

    assert before_due.requeued == []
    assert overdue.requeued == [reminder_id]


def test_a_reminder_waiting_for_its_retry_is_not_requeued_before_the_retry_is_due(
    committed_db: Database,
    settings: Settings,
    transports: Transports,
    twilio: FakeTwilioServer,
    now: dt.datetime,
) -> None:
    reminder = due_reminder(committed_db, settings, now=now)
    twilio.fail_next(1, status=429, code=20429)
    retry_in = dt.timedelta(minutes=5)
    send(committed_db, settings, transports, reminder.id, now=now, retry_in=retry_in)

    early = sweep(committed_db, settings, now=now + REQUEUE_AFTER * 2)
    overdue = now + retry_in + REQUEUE_AFTER + dt.timedelta(seconds=1)
    late = sweep(committed_db, settings, now=overdue)

    assert early.requeued == []
    assert late.requeued == [reminder.id]


# --- sending for too long ----------------------------------------------------------------


def test_a_stuck_sms_that_twilio_has_is_settled_as_sent_and_not_sent_again(
    committed_db: Database,
    settings: Settings,
    transports: Transports,
    twilio: FakeTwilioServer,
    now: dt.datetime,
) -> None:
    reminder = due_reminder(committed_db, settings, now=now)
    twilio.slow(2.0)  # past the 1 s timeout: Twilio took it, the worker does not know
    assert send(committed_db, settings, transports, reminder.id, now=now) is SendOutcome.UNCERTAIN
    twilio.slow(0)
    [message] = twilio.messages
    later = now + RECONCILE_AFTER + dt.timedelta(seconds=1)

    result = sweep(committed_db, settings, now=later)

    assert result.reconciled_sent == 1
    assert result.requeued == []
    settled = load_reminder(committed_db, reminder.id)
    assert settled.status is ReminderStatus.SENT
    assert settled.provider_id == message["sid"]
    assert settled.sent_at == email.utils.parsedate_to_datetime(message["date_created"])
    assert send(committed_db, settings, transports, reminder.id, now=later) is (
        SendOutcome.NOT_CLAIMED
    )
    assert len(twilio.messages) == 1


def test_a_stuck_sms_is_left_alone_until_reconcile_after_has_passed(
    committed_db: Database,
    settings: Settings,
    transports: Transports,
    twilio: FakeTwilioServer,
    now: dt.datetime,
) -> None:
    reminder = due_reminder(committed_db, settings, now=now)
    twilio.slow(2.0)
    send(committed_db, settings, transports, reminder.id, now=now)
    twilio.slow(0)

    result = sweep(committed_db, settings, now=now + RECONCILE_AFTER / 2)

    assert result == SweepResult()
    assert load_reminder(committed_db, reminder.id).status is ReminderStatus.SENDING


def test_a_stuck_sms_that_twilio_never_got_is_queued_again_and_then_sent_once(
    committed_db: Database,
    settings: Settings,
    twilio: FakeTwilioServer,
    now: dt.datetime,
) -> None:
    reminder = due_reminder(committed_db, settings, now=now)
    dying = Transports(sms=DiesBeforeSending(), email=ConsoleEmailTransport(io.StringIO()))
    with pytest.raises(WorkerDied):
        send(committed_db, settings, dying, reminder.id, now=now)
    assert load_reminder(committed_db, reminder.id).status is ReminderStatus.SENDING
    later = now + RECONCILE_AFTER + dt.timedelta(seconds=1)

    result = sweep(committed_db, settings, now=later)

    assert result.reconciled_unsent == 1
    assert result.requeued == [reminder.id]
    requeued = load_reminder(committed_db, reminder.id)
    assert requeued.status is ReminderStatus.QUEUED
    assert requeued.queued_at == later
    assert twilio.messages == []
    outcome = send(committed_db, settings, transports_for(settings), reminder.id, now=later)
    assert outcome is SendOutcome.SENT
    assert len(twilio.messages) == 1
    assert load_reminder(committed_db, reminder.id).status is ReminderStatus.SENT


@pytest.mark.parametrize("status", [502, 504])
def test_a_proxy_error_after_twilio_took_the_sms_is_settled_as_sent_not_resent(
    committed_db: Database,
    settings: Settings,
    twilio: FakeTwilioServer,
    now: dt.datetime,
    status: int,
) -> None:
    reminder = due_reminder(committed_db, settings, now=now)
    twilio.fail_after_accept(status=status)  # recorded at Twilio, then a proxy's 5xx
    outcome = send(committed_db, settings, transports_for(settings), reminder.id, now=now)
    assert outcome is SendOutcome.UNCERTAIN
    assert load_reminder(committed_db, reminder.id).status is ReminderStatus.SENDING
    [message] = twilio.messages
    later = now + RECONCILE_AFTER + dt.timedelta(seconds=1)

    result = sweep(committed_db, settings, now=later)

    assert (result.reconciled_sent, result.requeued) == (1, [])
    settled = load_reminder(committed_db, reminder.id)
    assert settled.status is ReminderStatus.SENT
    assert settled.provider_id == message["sid"]
    assert len(twilio.messages) == 1


def test_a_server_error_before_twilio_took_the_sms_is_settled_as_unsent_then_sent_once(
    committed_db: Database,
    settings: Settings,
    transports: Transports,
    twilio: FakeTwilioServer,
    now: dt.datetime,
) -> None:
    reminder = due_reminder(committed_db, settings, now=now)
    twilio.fail_next(status=500, code=20500)  # nothing recorded
    assert send(committed_db, settings, transports, reminder.id, now=now) is SendOutcome.UNCERTAIN
    later = now + RECONCILE_AFTER + dt.timedelta(seconds=1)

    result = sweep(committed_db, settings, now=later)

    assert (result.reconciled_unsent, result.requeued) == (1, [reminder.id])
    assert twilio.messages == []
    assert send(committed_db, settings, transports, reminder.id, now=later) is SendOutcome.SENT
    assert len(twilio.messages) == 1


def test_a_stuck_email_becomes_unknown(
    committed_db: Database, settings: Settings, now: dt.datetime
) -> None:
    enroll_due(committed_db, now=now, channel=ChannelChoice.EMAIL, email="rosalind@example.com")
    [reminder_id] = dispatch(committed_db, settings, now=now)
    dying = Transports(sms=TwilioSmsTransport(settings), email=DiesBeforeSending())
    with pytest.raises(WorkerDied):
        send(committed_db, settings, dying, reminder_id, now=now)
    later = now + RECONCILE_AFTER + dt.timedelta(seconds=1)

    result = sweep(committed_db, settings, now=later)

    assert result.unknown == 1
    assert result.requeued == []
    unknown = load_reminder(committed_db, reminder_id)
    assert unknown.status is ReminderStatus.UNKNOWN
    assert unknown.status_at == later
    assert unknown.error_detail is not None


def test_a_stuck_sms_stays_sending_while_twilio_is_unreachable(
    committed_db: Database, tmp_path: Path, now: dt.datetime
) -> None:
    with twilio_server() as twilio:
        settings = twilio_settings(
            committed_db,
            tmp_path,
            twilio,
            reconcile_after_seconds=int(RECONCILE_AFTER.total_seconds()),
        )
        reminder = due_reminder(committed_db, settings, now=now)
        twilio.slow(2.0)
        outcome = send(committed_db, settings, transports_for(settings), reminder.id, now=now)
        twilio.slow(0)
    assert outcome is SendOutcome.UNCERTAIN
    later = now + RECONCILE_AFTER + dt.timedelta(seconds=1)

    result = sweep(committed_db, settings, now=later)

    assert result == SweepResult()
    stuck = load_reminder(committed_db, reminder.id)
    assert stuck.status is ReminderStatus.SENDING
    assert stuck.provider_id is None
