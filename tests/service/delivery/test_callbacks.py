"""Twilio status callbacks: late, repeated and out of order."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session

from service.delivery.callbacks import apply_status_callback
from service.enrollment import optouts
from service.models import Channel, Patient, Reminder, ReminderStatus
from tests.factories import make_clinic, make_patient

NOW = dt.datetime(2026, 2, 10, 16, 0, tzinfo=dt.UTC)
SID = "SM" + "a" * 32


@pytest.fixture
def patient(session: Session) -> Patient:
    return make_patient(session, make_clinic(session))


def sent_reminder(
    session: Session,
    patient: Patient,
    *,
    status: ReminderStatus = ReminderStatus.SENT,
    provider_id: str | None = SID,
) -> Reminder:
    reminder = Reminder(
        patient_id=patient.id,
        kind="stretch",
        channel=Channel.SMS,
        due_at=NOW - dt.timedelta(minutes=1),
        status=status,
        status_at=NOW - dt.timedelta(minutes=1),
        to_address=patient.phone,
        provider_id=provider_id,
        attempts=1,
    )
    session.add(reminder)
    session.flush()
    return reminder


def callback(
    session: Session,
    status: str,
    *,
    code: str | None = None,
    sid: str = SID,
    at: dt.datetime = NOW,
    reminder_id: int | None = None,
) -> bool:
    found = apply_status_callback(
        session=session,
        message_sid=sid,
        status=status,
        error_code=code,
        now=at,
        reminder_id=reminder_id,
    )
    session.flush()
    return found


def test_delivered_moves_a_sent_reminder_forward(session: Session, patient: Patient) -> None:
    reminder = sent_reminder(session, patient)

    assert callback(session, "delivered") is True

    assert (reminder.status, reminder.status_at) == (ReminderStatus.DELIVERED, NOW)


def test_sent_after_delivered_stays_delivered(session: Session, patient: Patient) -> None:
    reminder = sent_reminder(session, patient, status=ReminderStatus.SENDING)

    callback(session, "delivered")
    callback(session, "sent", at=NOW + dt.timedelta(seconds=5))
    callback(session, "queued", at=NOW + dt.timedelta(seconds=6))

    assert (reminder.status, reminder.status_at) == (ReminderStatus.DELIVERED, NOW)


def test_a_repeated_callback_changes_nothing(session: Session, patient: Patient) -> None:
    reminder = sent_reminder(session, patient)
    callback(session, "delivered")

    callback(session, "delivered", at=NOW + dt.timedelta(minutes=1))

    assert reminder.status_at == NOW


@pytest.mark.parametrize(
    ("twilio_status", "expected"),
    [
        ("accepted", ReminderStatus.SENT),
        ("queued", ReminderStatus.SENT),
        ("sending", ReminderStatus.SENT),
        ("sent", ReminderStatus.SENT),
        ("delivered", ReminderStatus.DELIVERED),
        ("read", ReminderStatus.DELIVERED),
        ("undelivered", ReminderStatus.UNDELIVERED),
        ("failed", ReminderStatus.FAILED),
        ("canceled", ReminderStatus.FAILED),
        ("DELIVERED", ReminderStatus.DELIVERED),
    ],
)
def test_twilio_statuses_map_onto_ours(
    session: Session, patient: Patient, twilio_status: str, expected: ReminderStatus
) -> None:
    reminder = sent_reminder(session, patient, status=ReminderStatus.SENDING)

    callback(session, twilio_status)

    assert reminder.status is expected


def test_an_unknown_status_word_changes_nothing(session: Session, patient: Patient) -> None:
    reminder = sent_reminder(session, patient)

    assert callback(session, "receiving") is True

    assert reminder.status is ReminderStatus.SENT


def test_undelivered_records_the_error_code(session: Session, patient: Patient) -> None:
    reminder = sent_reminder(session, patient)

    callback(session, "undelivered", code="30003")

    assert (reminder.status, reminder.error_code) == (ReminderStatus.UNDELIVERED, "30003")
    assert not optouts.is_opted_out(
        session=session, address=patient.phone or "", channel=Channel.SMS
    )


def test_error_21610_records_an_opt_out(session: Session, patient: Patient) -> None:
    reminder = sent_reminder(session, patient)

    callback(session, "failed", code="21610")

    assert reminder.status is ReminderStatus.FAILED
    assert reminder.error_code == "21610"
    assert optouts.is_opted_out(session=session, address=patient.phone or "", channel=Channel.SMS)


def test_an_invalid_number_code_marks_the_patients_phone(
    session: Session, patient: Patient
) -> None:
    sent_reminder(session, patient)

    callback(session, "failed", code="21211")

    assert patient.phone_invalid_code == "21211"


def test_an_unknown_message_sid_is_reported_and_harmless(
    session: Session, patient: Patient
) -> None:
    reminder = sent_reminder(session, patient)

    assert callback(session, "delivered", sid="SM" + "f" * 32) is False

    assert reminder.status is ReminderStatus.SENT


def test_a_callback_that_overtakes_the_worker_finds_the_reminder_by_its_id(
    session: Session, patient: Patient
) -> None:
    # Twilio can call back before the worker has stored the MessageSid it got.
    reminder = sent_reminder(session, patient, status=ReminderStatus.SENDING, provider_id=None)

    assert callback(session, "sent", reminder_id=reminder.id) is True

    assert (reminder.status, reminder.provider_id, reminder.sent_at) == (
        ReminderStatus.SENT,
        SID,
        NOW,
    )


def test_the_reminder_id_does_not_match_another_message(session: Session, patient: Patient) -> None:
    reminder = sent_reminder(session, patient, provider_id="SM" + "b" * 32)

    assert callback(session, "delivered", reminder_id=reminder.id) is False

    assert reminder.status is ReminderStatus.SENT


@pytest.mark.parametrize(
    "status",
    [
        ReminderStatus.SCHEDULED,
        ReminderStatus.QUEUED,
        ReminderStatus.CANCELED,
        ReminderStatus.EXPIRED,
        ReminderStatus.MERGED,
    ],
)
def test_a_callback_by_id_never_touches_a_reminder_that_was_not_handed_over(
    session: Session, patient: Patient, status: ReminderStatus
) -> None:
    # A signed callback URL with a guessed ?r= must not mark a reminder delivered that
    # never left (or never will).
    reminder = sent_reminder(session, patient, status=status, provider_id=None)

    assert callback(session, "delivered", reminder_id=reminder.id) is False

    assert (reminder.status, reminder.provider_id) == (status, None)


def test_a_callback_by_id_never_touches_an_email_reminder(
    session: Session, patient: Patient
) -> None:
    reminder = sent_reminder(session, patient, status=ReminderStatus.SENDING, provider_id=None)
    reminder.channel = Channel.EMAIL

    assert callback(session, "delivered", reminder_id=reminder.id) is False

    assert (reminder.status, reminder.provider_id) == (ReminderStatus.SENDING, None)


def test_a_callback_by_id_finds_a_reminder_whose_worker_died_mid_send(
    session: Session, patient: Patient
) -> None:
    reminder = sent_reminder(session, patient, status=ReminderStatus.UNKNOWN, provider_id=None)

    assert callback(session, "delivered", reminder_id=reminder.id) is True

    assert (reminder.status, reminder.provider_id) == (ReminderStatus.DELIVERED, SID)
