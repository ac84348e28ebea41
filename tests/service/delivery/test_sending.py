"""``send_reminder`` in-process: the real twilio client against a Twilio-compatible server on
loopback, the real SMTP transport against aiosmtpd. Record, then send, then record: at most
once, and only while the reminder is still wanted."""

from __future__ import annotations

import collections
import datetime as dt
import io
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from service.db import make_sessionmaker, transaction
from service.delivery.messages import body_digest
from service.delivery.rendering import ACTION_PHRASES
from service.delivery.sending import (
    SendOutcome,
    SendResult,
    Transports,
    send_reminder,
    send_reminders,
)
from service.delivery.ticking import run_tick
from service.enrollment import optouts
from service.models import (
    Channel,
    ChannelChoice,
    CheckinAnswer,
    Patient,
    PatientStatus,
    Reminder,
    ReminderStatus,
    utcnow,
)
from service.replies.inbound import handle_sms
from service.transports.base import Transport
from service.transports.console import ConsoleEmailTransport
from service.transports.email import SmtpEmailTransport
from service.transports.sms import TwilioSmsTransport
from service.web.urls import PublicUrls
from tests.conftest import Database, make_settings
from tests.factories import make_clinic, make_patient
from tests.fakes.smtp import smtp_server
from tests.fakes.twilio_server import FakeTwilioServer, twilio_server
from tests.service.delivery.test_ticking import side_by_side

FROM_NUMBER = "+13125550000"
ALL_DAY = (dt.time(0, 0), dt.time(23, 59))
RETRY_IN = dt.timedelta(seconds=30)
STALE_AFTER = dt.timedelta(seconds=3600)


# --- helpers shared with test_sweeping -----------------------------------------------------


def twilio_settings(
    database: Database, tmp_path: Path, twilio: FakeTwilioServer, **overrides: object
) -> Settings:
    """Settings for the real Twilio transport pointed at the fake, with a 1 s timeout."""
    values: dict[str, object] = {
        "sms_backend": "twilio",
        "twilio_account_sid": twilio.account_sid,
        "twilio_auth_token": twilio.auth_token,
        "twilio_from_number": FROM_NUMBER,
        "twilio_api_url": twilio.url,
        "twilio_timeout_seconds": 1,
        "stale_after_seconds": int(STALE_AFTER.total_seconds()),
        "min_gap_minutes": 0,
    }
    values.update(overrides)
    return make_settings(database_url=database.url, tmp_path=tmp_path, **values)


def transports_for(settings: Settings, *, email: Transport | None = None) -> Transports:
    return Transports(
        sms=TwilioSmsTransport(settings), email=email or ConsoleEmailTransport(io.StringIO())
    )


def enroll_due(
    database: Database,
    *,
    now: dt.datetime,
    kinds: tuple[str, ...] = ("stretch",),
    channel: ChannelChoice = ChannelChoice.SMS,
    email: str | None = None,
    wake: tuple[dt.time, dt.time] = ALL_DAY,
) -> Patient:
    """A patient in UTC whose every-15-minutes items are due by ``now`` (as in the pipeline
    tests: the first occurrence after now - 15 min is at or before now)."""
    with transaction(database.sessions) as session:
        clinic = make_clinic(session)
        return make_patient(
            session,
            clinic,
            first_name="Rosalind",
            email=email,
            channel=channel,
            timezone="UTC",
            wake=wake,
            items=[{"kind": kind, "every_minutes": 15} for kind in kinds],
            max_per_day=200,
            schedule_after=now - dt.timedelta(minutes=15),
        )


def dispatch(database: Database, settings: Settings, *, now: dt.datetime) -> list[int]:
    """One dispatcher pass; the ids it would enqueue."""
    return run_tick(settings=settings, sessions=database.sessions, now=now).to_send


def due_reminder(database: Database, settings: Settings, *, now: dt.datetime) -> Reminder:
    """A freshly enrolled patient's one queued reminder."""
    enroll_due(database, now=now)
    [reminder_id] = dispatch(database, settings, now=now)
    return load_reminder(database, reminder_id)


def at(moment: dt.datetime) -> Callable[[], dt.datetime]:
    """A clock stopped at ``moment``."""
    return lambda: moment


def send(
    database: Database,
    settings: Settings,
    transports: Transports,
    reminder_id: int,
    *,
    now: dt.datetime,
    retry_in: dt.timedelta | None = RETRY_IN,
    sessions: sessionmaker[Session] | None = None,
) -> SendOutcome:
    return send_reminder(
        sessions=sessions or database.sessions,
        settings=settings,
        transports=transports,
        urls=PublicUrls(settings.public_url),
        reminder_id=reminder_id,
        retry_in=retry_in,
        clock=at(now),
    )


def send_batch(
    database: Database,
    settings: Settings,
    transports: Transports,
    reminder_ids: list[int],
    *,
    now: dt.datetime | None = None,
) -> dict[int, SendResult]:
    """One send task's batch, on the real clock unless ``now`` stops it."""
    return send_reminders(
        sessions=database.sessions,
        settings=settings,
        transports=transports,
        urls=PublicUrls(settings.public_url),
        reminder_ids=reminder_ids,
        retry_policy=lambda _attempts: RETRY_IN,
        clock=utcnow if now is None else at(now),
    )


def load_reminder(database: Database, reminder_id: int) -> Reminder:
    with database.sessions() as session:
        reminder = session.get(Reminder, reminder_id)
        assert reminder is not None
        return reminder


def load_patient(database: Database, patient_id: int) -> Patient:
    with database.sessions() as session:
        patient = session.get(Patient, patient_id)
        assert patient is not None
        return patient


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def twilio() -> Iterator[FakeTwilioServer]:
    with twilio_server() as server:
        yield server


@pytest.fixture
def settings(committed_db: Database, tmp_path: Path, twilio: FakeTwilioServer) -> Settings:
    return twilio_settings(committed_db, tmp_path, twilio)


@pytest.fixture
def transports(settings: Settings) -> Transports:
    return transports_for(settings)


@pytest.fixture
def now() -> dt.datetime:
    # The real time: the fake stamps messages with it, and enrollment's created_at too.
    return utcnow()


# --- sending -----------------------------------------------------------------------------


def test_a_queued_reminder_is_sent_once_and_records_the_provider_id(
    committed_db: Database,
    settings: Settings,
    transports: Transports,
    twilio: FakeTwilioServer,
    now: dt.datetime,
) -> None:
    reminder = due_reminder(committed_db, settings, now=now)

    outcome = send(committed_db, settings, transports, reminder.id, now=now)

    assert outcome is SendOutcome.SENT
    [message] = twilio.messages
    assert message["to"] == reminder.to_address
    assert message["from"] == FROM_NUMBER
    assert "Rosalind" in message["body"]
    assert message["status_callback"] == f"{settings.public_url}/twilio/status?r={reminder.id}"
    sent = load_reminder(committed_db, reminder.id)
    assert sent.status is ReminderStatus.SENT
    assert sent.provider_id == message["sid"]
    assert sent.sent_at == now
    assert sent.claimed_at == now
    assert sent.attempts == 1
    assert sent.body_digest == body_digest(message["body"])


def test_a_second_send_of_the_same_reminder_does_nothing(
    committed_db: Database,
    settings: Settings,
    transports: Transports,
    twilio: FakeTwilioServer,
    now: dt.datetime,
) -> None:
    reminder = due_reminder(committed_db, settings, now=now)
    send(committed_db, settings, transports, reminder.id, now=now)

    again = send(committed_db, settings, transports, reminder.id, now=now)

    assert again is SendOutcome.NOT_CLAIMED
    assert len(twilio.messages) == 1
    assert load_reminder(committed_db, reminder.id).attempts == 1


def test_a_reminder_handed_over_before_its_due_time_waits_for_it_and_is_not_sent(
    committed_db: Database,
    settings: Settings,
    transports: Transports,
    twilio: FakeTwilioServer,
    now: dt.datetime,
) -> None:
    patient = enroll_due(committed_db, now=now)
    due = patient.plan_items[0].next_due_at
    assert due is not None
    claimed = run_tick(
        settings=settings,
        sessions=committed_db.sessions,
        now=due - dt.timedelta(seconds=10),
        ahead=dt.timedelta(seconds=15),
    )
    [reminder_id] = claimed.to_send
    early = due - dt.timedelta(seconds=4)

    [result] = send_batch(committed_db, settings, transports, [reminder_id], now=early).values()

    assert result.outcome is SendOutcome.EARLY
    assert result.retry_in == dt.timedelta(seconds=4)
    assert twilio.messages == []
    waiting = load_reminder(committed_db, reminder_id)
    assert (waiting.status, waiting.attempts) == (ReminderStatus.QUEUED, 0)
    # At its time (the real now is past it) it goes out, once.
    assert send(committed_db, settings, transports, reminder_id, now=now) is SendOutcome.SENT
    assert len(twilio.messages) == 1


def test_an_opt_out_recorded_after_dispatch_stops_the_queued_reminder(
    committed_db: Database,
    settings: Settings,
    transports: Transports,
    twilio: FakeTwilioServer,
    now: dt.datetime,
) -> None:
    reminder = due_reminder(committed_db, settings, now=now)
    assert reminder.to_address is not None
    with transaction(committed_db.sessions) as session:
        optouts.opt_out(
            session=session,
            address=reminder.to_address,
            channel=Channel.SMS,
            source="sms_keyword",
            actor="test",
        )

    outcome = send(committed_db, settings, transports, reminder.id, now=now)

    # The opt-out itself canceled the queued row, so the send task finds nothing to claim.
    assert outcome is SendOutcome.NOT_CLAIMED
    assert load_reminder(committed_db, reminder.id).status is ReminderStatus.CANCELED
    assert twilio.messages == []


def test_a_stop_recorded_while_a_send_is_in_flight_cancels_its_retry(
    committed_db: Database,
    settings: Settings,
    transports: Transports,
    twilio: FakeTwilioServer,
    now: dt.datetime,
) -> None:
    reminder = due_reminder(committed_db, settings, now=now)
    address = reminder.to_address
    assert address is not None
    # A session factory of its own, so the hook sees only this send's transactions: the
    # first commit is the claim, and the STOP is recorded right after it, while the request
    # is on its way to Twilio (which answers 429).
    sessions = make_sessionmaker(committed_db.engine)
    stops: list[int] = []

    @event.listens_for(sessions, "after_commit")
    def stop_after_claim(session: Session) -> None:
        if stops:
            return
        with transaction(committed_db.sessions) as other:
            stops.append(
                optouts.opt_out(
                    session=other,
                    address=address,
                    channel=Channel.SMS,
                    source="sms_keyword",
                    actor="test",
                )
            )

    twilio.fail_next(1, status=429, code=20429)
    first = send(committed_db, settings, transports, reminder.id, now=now, sessions=sessions)
    retry = send(committed_db, settings, transports, reminder.id, now=now + RETRY_IN)

    assert stops == [0], "the opt-out leaves a claimed reminder to the send task"
    assert first is SendOutcome.RETRY
    assert retry is SendOutcome.CANCELED
    canceled = load_reminder(committed_db, reminder.id)
    assert canceled.status is ReminderStatus.CANCELED
    assert canceled.error_detail == "opted out"
    assert twilio.messages == []


def test_a_paused_patients_reminder_is_canceled(
    committed_db: Database,
    settings: Settings,
    transports: Transports,
    twilio: FakeTwilioServer,
    now: dt.datetime,
) -> None:
    reminder = due_reminder(committed_db, settings, now=now)
    with transaction(committed_db.sessions) as session:
        patient = session.get(Patient, reminder.patient_id)
        assert patient is not None
        patient.status = PatientStatus.PAUSED
        patient.paused_until = None

    outcome = send(committed_db, settings, transports, reminder.id, now=now)

    assert outcome is SendOutcome.CANCELED
    canceled = load_reminder(committed_db, reminder.id)
    assert canceled.status is ReminderStatus.CANCELED
    assert canceled.error_detail == "patient paused"
    assert twilio.messages == []


def test_a_reminder_due_longer_ago_than_stale_after_is_expired_not_sent(
    committed_db: Database,
    settings: Settings,
    transports: Transports,
    twilio: FakeTwilioServer,
    now: dt.datetime,
) -> None:
    reminder = due_reminder(committed_db, settings, now=now)
    late = reminder.due_at + STALE_AFTER + dt.timedelta(seconds=1)

    outcome = send(committed_db, settings, transports, reminder.id, now=late)

    assert outcome is SendOutcome.EXPIRED
    expired = load_reminder(committed_db, reminder.id)
    assert expired.status is ReminderStatus.EXPIRED
    assert expired.status_at == late
    assert twilio.messages == []


def test_a_reminder_sent_after_the_waking_window_closed_is_expired(
    committed_db: Database,
    settings: Settings,
    transports: Transports,
    twilio: FakeTwilioServer,
    now: dt.datetime,
) -> None:
    # Today's last nudge of a window that ends at 20:00 UTC, and a send at 20:30: still
    # fresh by stale_after (an hour), but the patient is asleep.
    last_nudge = dt.datetime.combine(now.date(), dt.time(19, 45), dt.UTC)
    enroll_due(committed_db, now=last_nudge, wake=(dt.time(8, 0), dt.time(20, 0)))
    [reminder_id] = dispatch(committed_db, settings, now=last_nudge)
    night = last_nudge + dt.timedelta(minutes=45)

    outcome = send(committed_db, settings, transports, reminder_id, now=night)

    assert outcome is SendOutcome.EXPIRED
    expired = load_reminder(committed_db, reminder_id)
    assert expired.status is ReminderStatus.EXPIRED
    assert expired.error_detail == "outside the waking window"
    assert twilio.messages == []


def test_a_welcome_claimed_at_night_waits_for_the_next_waking_minute(
    committed_db: Database,
    settings: Settings,
    transports: Transports,
    twilio: FakeTwilioServer,
    now: dt.datetime,
) -> None:
    # A welcome queued just before the window closed and picked up after it: not dropped,
    # not sent into the night, but scheduled again for 08:00 the next morning.
    evening = dt.datetime.combine(now.date(), dt.time(19, 59), dt.UTC)
    patient = enroll_due(committed_db, now=evening, wake=(dt.time(8, 0), dt.time(20, 0)))
    with transaction(committed_db.sessions) as session:
        welcome = Reminder(
            patient_id=patient.id,
            kind="welcome",
            channel=Channel.SMS,
            actionable=False,
            due_at=evening,
            status=ReminderStatus.QUEUED,
            queued_at=evening,
        )
        session.add(welcome)
        session.flush()
        welcome_id = welcome.id
    night = evening + dt.timedelta(minutes=31)

    outcome = send(committed_db, settings, transports, welcome_id, now=night)

    assert outcome is SendOutcome.RESCHEDULED
    waiting = load_reminder(committed_db, welcome_id)
    assert waiting.status is ReminderStatus.SCHEDULED
    morning = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(8, 0), dt.UTC)
    assert waiting.due_at == morning
    assert twilio.messages == []
    assert dispatch(committed_db, settings, now=morning - dt.timedelta(seconds=1)) == []
    assert welcome_id in dispatch(committed_db, settings, now=morning + dt.timedelta(seconds=5))
    later = morning + dt.timedelta(seconds=6)
    assert send(committed_db, settings, transports, welcome_id, now=later) is SendOutcome.SENT
    [message] = twilio.messages
    assert "Rosalind" in message["body"]


def test_a_rate_limited_send_goes_back_to_the_queue_until_its_retry_is_due(
    committed_db: Database,
    settings: Settings,
    transports: Transports,
    twilio: FakeTwilioServer,
    now: dt.datetime,
) -> None:
    reminder = due_reminder(committed_db, settings, now=now)
    twilio.fail_next(1, status=429, code=20429)

    outcome = send(committed_db, settings, transports, reminder.id, now=now, retry_in=RETRY_IN)

    assert outcome is SendOutcome.RETRY
    waiting = load_reminder(committed_db, reminder.id)
    assert waiting.status is ReminderStatus.QUEUED
    assert waiting.queued_at == now + RETRY_IN
    assert waiting.error_code == "20429"
    assert twilio.messages == []


def test_a_retried_reminder_is_sent_once_on_its_next_attempt(
    committed_db: Database,
    settings: Settings,
    transports: Transports,
    twilio: FakeTwilioServer,
    now: dt.datetime,
) -> None:
    reminder = due_reminder(committed_db, settings, now=now)
    twilio.fail_next(1, status=429, code=20429)
    send(committed_db, settings, transports, reminder.id, now=now)

    outcome = send(committed_db, settings, transports, reminder.id, now=now + RETRY_IN)

    assert outcome is SendOutcome.SENT
    assert len(twilio.messages) == 1
    sent = load_reminder(committed_db, reminder.id)
    assert sent.status is ReminderStatus.SENT
    assert sent.attempts == 2


def test_a_rate_limited_last_attempt_fails_the_reminder(
    committed_db: Database,
    settings: Settings,
    transports: Transports,
    twilio: FakeTwilioServer,
    now: dt.datetime,
) -> None:
    reminder = due_reminder(committed_db, settings, now=now)
    twilio.fail_next(1, status=429, code=20429)

    outcome = send(committed_db, settings, transports, reminder.id, now=now, retry_in=None)

    assert outcome is SendOutcome.FAILED
    failed = load_reminder(committed_db, reminder.id)
    assert failed.status is ReminderStatus.FAILED
    assert failed.error_code == "20429"
    assert twilio.messages == []


def test_twilio_refusing_an_unsubscribed_number_fails_it_and_records_the_opt_out(
    committed_db: Database,
    settings: Settings,
    transports: Transports,
    twilio: FakeTwilioServer,
    now: dt.datetime,
) -> None:
    reminder = due_reminder(committed_db, settings, now=now)
    assert reminder.to_address is not None
    twilio.fail_for(reminder.to_address, status=400, code=21610)

    outcome = send(committed_db, settings, transports, reminder.id, now=now)

    assert outcome is SendOutcome.FAILED
    failed = load_reminder(committed_db, reminder.id)
    assert failed.status is ReminderStatus.FAILED
    assert failed.error_code == "21610"
    with committed_db.sessions() as session:
        assert optouts.is_opted_out(
            session=session, address=reminder.to_address, channel=Channel.SMS
        )


def test_twilio_calling_the_number_invalid_fails_it_and_marks_the_patients_phone(
    committed_db: Database,
    settings: Settings,
    transports: Transports,
    twilio: FakeTwilioServer,
    now: dt.datetime,
) -> None:
    reminder = due_reminder(committed_db, settings, now=now)
    assert reminder.to_address is not None
    twilio.fail_for(reminder.to_address, status=400, code=21211)

    outcome = send(committed_db, settings, transports, reminder.id, now=now)

    assert outcome is SendOutcome.FAILED
    failed = load_reminder(committed_db, reminder.id)
    assert failed.status is ReminderStatus.FAILED
    assert failed.error_code == "21211"
    assert load_patient(committed_db, reminder.patient_id).phone_invalid_code == "21211"
    with committed_db.sessions() as session:
        assert not optouts.is_opted_out(
            session=session, address=reminder.to_address, channel=Channel.SMS
        )


def test_an_answer_slower_than_the_timeout_leaves_the_reminder_sending(
    committed_db: Database,
    settings: Settings,
    transports: Transports,
    twilio: FakeTwilioServer,
    now: dt.datetime,
) -> None:
    reminder = due_reminder(committed_db, settings, now=now)
    twilio.slow(2.0)  # past twilio_timeout_seconds=1: Twilio has it, we do not know

    outcome = send(committed_db, settings, transports, reminder.id, now=now)

    assert outcome is SendOutcome.UNCERTAIN
    assert len(twilio.messages) == 1
    pending = load_reminder(committed_db, reminder.id)
    assert pending.status is ReminderStatus.SENDING
    assert pending.provider_id is None
    assert pending.claimed_at == now


def test_a_connection_dropped_after_twilio_took_the_message_leaves_it_sending(
    committed_db: Database,
    settings: Settings,
    transports: Transports,
    twilio: FakeTwilioServer,
    now: dt.datetime,
) -> None:
    reminder = due_reminder(committed_db, settings, now=now)
    twilio.drop_next(1)  # recorded, then the connection closes without an answer

    outcome = send(committed_db, settings, transports, reminder.id, now=now)

    assert outcome is SendOutcome.UNCERTAIN
    assert len(twilio.messages) == 1
    assert load_reminder(committed_db, reminder.id).status is ReminderStatus.SENDING


def test_an_email_patient_gets_a_multipart_email_with_one_click_unsubscribe(
    committed_db: Database, tmp_path: Path, twilio: FakeTwilioServer, now: dt.datetime
) -> None:
    with smtp_server() as smtp:
        settings = twilio_settings(
            committed_db,
            tmp_path,
            twilio,
            smtp_url=smtp.url,
            email_from="clinic@ptnudge.example",
        )
        transports = transports_for(settings, email=SmtpEmailTransport(settings))
        enroll_due(committed_db, now=now, channel=ChannelChoice.EMAIL, email="rosalind@example.com")
        [reminder_id] = dispatch(committed_db, settings, now=now)

        outcome = send(committed_db, settings, transports, reminder_id, now=now)

        [mail] = smtp.mails
    assert outcome is SendOutcome.SENT
    assert mail.rcpt_tos == ("rosalind@example.com",)
    message = mail.message
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    # The long link is folded onto its own line; unfolding keeps the folding space.
    unsubscribe = str(message["List-Unsubscribe"]).strip()
    assert unsubscribe.startswith(f"<{settings.public_url}/e/")
    assert unsubscribe.endswith(">")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = message.get_body(("plain",))
    assert text is not None
    assert "Rosalind" in str(text.get_content())
    sent = load_reminder(committed_db, reminder_id)
    assert sent.status is ReminderStatus.SENT
    assert sent.provider_id == message["Message-ID"]
    assert twilio.messages == []


def test_two_items_due_in_the_same_minute_leave_as_one_message_naming_both(
    committed_db: Database, tmp_path: Path, twilio: FakeTwilioServer, now: dt.datetime
) -> None:
    settings = twilio_settings(committed_db, tmp_path, twilio, min_gap_minutes=10)
    enroll_due(committed_db, now=now, kinds=("stretch", "pelvic_tilt"))
    [head_id] = dispatch(committed_db, settings, now=now)

    outcome = send(committed_db, settings, transports_for(settings), head_id, now=now)

    assert outcome is SendOutcome.SENT
    [message] = twilio.messages
    phrases = ACTION_PHRASES["en"]
    assert phrases["stretch"] in message["body"]
    assert phrases["pelvic_tilt"] in message["body"]
    with committed_db.sessions() as session:
        [merged] = session.scalars(select(Reminder).where(Reminder.id != head_id)).all()
    assert merged.status is ReminderStatus.MERGED
    assert merged.merged_into_id == head_id
    assert load_reminder(committed_db, head_id).status is ReminderStatus.SENT


def test_a_weekly_check_in_goes_out_as_a_question_and_a_bare_number_answers_it(
    committed_db: Database,
    settings: Settings,
    transports: Transports,
    twilio: FakeTwilioServer,
    now: dt.datetime,
) -> None:
    patient = enroll_due(committed_db, now=now, kinds=("weekly_checkin",))
    [question_id] = dispatch(committed_db, settings, now=now)

    outcome = send(committed_db, settings, transports, question_id, now=now)

    assert outcome is SendOutcome.SENT
    [message] = twilio.messages
    assert "how many days did you do your exercises this week" in message["body"]
    question = load_reminder(committed_db, question_id)
    assert (question.kind, question.actionable) == ("weekly_checkin", False)
    with transaction(committed_db.sessions) as session:
        result = handle_sms(
            session=session,
            settings=settings,
            from_number=patient.phone or "",
            to_number=FROM_NUMBER,
            body="4",
            message_sid="SM" + "4" * 32,
            now=now + dt.timedelta(minutes=5),
        )
    assert result.reply_text is not None
    assert "4 of 7 days" in result.reply_text
    with committed_db.sessions() as session:
        answers = session.execute(select(CheckinAnswer.reminder_id, CheckinAnswer.days)).all()
    assert [tuple(answer) for answer in answers] == [(question_id, 4)]


def test_a_patient_removed_while_their_batch_is_in_flight_gets_nothing(
    committed_db: Database,
    settings: Settings,
    transports: Transports,
    twilio: FakeTwilioServer,
    now: dt.datetime,
) -> None:
    for _ in range(3):
        enroll_due(committed_db, now=now)
    ids = sorted(dispatch(committed_db, settings, now=now))
    last = load_reminder(committed_db, ids[-1])
    twilio.slow(0.4)

    def remove_last_patient_once_sending_starts() -> None:
        deadline = time.monotonic() + 10
        while not twilio.messages and time.monotonic() < deadline:
            time.sleep(0.01)
        with transaction(committed_db.sessions) as session:
            session.get_one(Patient, last.patient_id).status = PatientStatus.REMOVED

    remover = threading.Thread(target=remove_last_patient_once_sending_starts)
    remover.start()
    results = send_batch(committed_db, settings, transports, ids)
    remover.join()

    assert [results[i].outcome for i in ids] == [
        SendOutcome.SENT,
        SendOutcome.SENT,
        SendOutcome.CANCELED,
    ]
    assert len(twilio.messages) == 2
    canceled = load_reminder(committed_db, ids[-1])
    assert canceled.status is ReminderStatus.CANCELED
    assert canceled.error_detail == "patient removed while the batch was being sent"


def test_two_sends_of_the_same_batch_side_by_side_on_postgresql_send_each_reminder_once(
    postgres_db: Database, tmp_path: Path, twilio: FakeTwilioServer, now: dt.datetime
) -> None:
    """A task delivered twice at once (broker redelivery, the sweeper's requeue): no Redis
    lock, only the claim's ``FOR UPDATE SKIP LOCKED`` and conditional update."""
    settings = twilio_settings(postgres_db, tmp_path, twilio)
    for _ in range(40):
        enroll_due(postgres_db, now=now)
    batch = dispatch(postgres_db, settings, now=now)
    assert len(batch) == 40

    def send_the_batch() -> dict[int, SendOutcome]:
        results = send_reminders(
            sessions=postgres_db.sessions,
            settings=settings,
            transports=transports_for(settings),
            urls=PublicUrls(settings.public_url),
            reminder_ids=batch,
            retry_policy=lambda _attempts: RETRY_IN,
        )
        return {rid: result.outcome for rid, result in results.items()}

    first, second = side_by_side(2, send_the_batch)

    for rid in batch:
        assert {first[rid], second[rid]} == {SendOutcome.SENT, SendOutcome.NOT_CLAIMED}
    sent_to = collections.Counter(message["to"] for message in twilio.messages)
    assert len(sent_to) == 40
    assert set(sent_to.values()) == {1}
    with postgres_db.sessions() as session:
        statuses = session.scalars(select(Reminder.status).where(Reminder.id.in_(batch)))
        assert set(statuses) == {ReminderStatus.SENT}
