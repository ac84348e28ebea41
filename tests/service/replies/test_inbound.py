"""What each reply does to the database, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from config.settings import Settings
from service.enrollment import optouts
from service.models import (
    AuditEvent,
    Channel,
    CheckinAnswer,
    ClinicAlert,
    InboundMessage,
    Outcome,
    PainScore,
    Patient,
    PatientStatus,
    Reminder,
    ReminderStatus,
)
from service.replies.inbound import ANSWERS, HANDLERS, InboundResult, handle_sms
from service.replies.parser import Command
from tests.conftest import Database, make_settings
from tests.factories import make_clinic, make_patient

# 10:00 in Chicago (CST): inside every default waking window.
NOW = dt.datetime(2026, 2, 10, 16, 0, tzinfo=dt.UTC)
_sids = iter(range(1, 1_000_000))


def sms(
    session: Session,
    settings: Settings,
    patient_or_number: Patient | str,
    body: str,
    *,
    now: dt.datetime = NOW,
    sid: str | None = None,
) -> InboundResult:
    number = (
        patient_or_number if isinstance(patient_or_number, str) else patient_or_number.phone or ""
    )
    result = handle_sms(
        session=session,
        settings=settings,
        from_number=number,
        to_number="+13125550000",
        body=body,
        message_sid=sid or f"SM{next(_sids):032d}",
        now=now,
    )
    session.flush()
    return result


def add_reminder(
    session: Session,
    patient: Patient,
    *,
    kind: str = "stretch",
    due_at: dt.datetime = NOW - dt.timedelta(minutes=30),
    status: ReminderStatus = ReminderStatus.DELIVERED,
    channel: Channel = Channel.SMS,
    actionable: bool = True,
    plan_item: bool = True,
) -> Reminder:
    reminder = Reminder(
        patient_id=patient.id,
        plan_item_id=patient.plan_items[0].id if plan_item else None,
        kind=kind,
        channel=channel,
        actionable=actionable,
        due_at=due_at,
        status=status,
        status_at=due_at,
        sent_at=due_at if status in {ReminderStatus.SENT, ReminderStatus.DELIVERED} else None,
        to_address=patient.phone if channel is Channel.SMS else patient.email,
        attempts=1,
    )
    session.add(reminder)
    session.flush()
    return reminder


def inbound_rows(session: Session) -> list[InboundMessage]:
    return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


@pytest.fixture
def patient(session: Session) -> Patient:
    return make_patient(session, make_clinic(session), schedule_after=NOW)


@pytest.fixture
def quiet_twilio(database: Database, tmp_path: Path) -> Settings:
    """Settings where Twilio's own opt-out replies are off: we confirm every STOP."""
    return make_settings(
        database_url=database.url, tmp_path=tmp_path, twilio_handles_opt_out_replies=False
    )


# --- STOP ----------------------------------------------------------------------------------


def test_stop_cancels_queued_reminders_for_every_patient_on_the_number(
    session: Session, settings: Settings
) -> None:
    phone = "+13125557777"
    ana = make_patient(session, make_clinic(session), phone=phone, schedule_after=NOW)
    luis = make_patient(
        session, make_clinic(session), first_name="Luis", phone=phone, schedule_after=NOW
    )
    queued = [
        add_reminder(session, person, status=status, due_at=NOW + dt.timedelta(minutes=minutes))
        for person in (ana, luis)
        for minutes, status in ((5, ReminderStatus.QUEUED), (35, ReminderStatus.SCHEDULED))
    ]

    result = sms(session, settings, phone, "STOP")

    assert optouts.is_opted_out(session=session, address=phone, channel=Channel.SMS)
    for reminder in queued:
        session.refresh(reminder)
        assert reminder.status is ReminderStatus.CANCELED
    assert result == InboundResult(reply_text=None, alert_inbound_id=None)  # Twilio answers


def test_stop_keeps_an_audit_row_with_the_words_used(session: Session, settings: Settings) -> None:
    patient = make_patient(session, make_clinic(session))

    sms(session, settings, patient, "please stop texting me")

    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "opt_out")).one()
    assert event.patient_id == patient.id
    assert event.detail is not None
    assert event.detail["message"] == "please stop texting me"
    assert event.detail["source"] == "sms_reply"


def test_stop_in_words_gets_our_one_confirmation(session: Session, settings: Settings) -> None:
    # Twilio only answers an exact keyword; "stop texting me" is ours to confirm.
    patient = make_patient(session, make_clinic(session))

    result = sms(session, settings, patient, "stop texting me")

    assert result.reply_text is not None
    assert "unsubscribed" in result.reply_text
    assert "Lakeside Back Clinic" in result.reply_text


def test_stop_is_confirmed_when_twilio_does_not_answer_itself(
    session: Session, quiet_twilio: Settings
) -> None:
    patient = make_patient(session, make_clinic(session))

    result = sms(session, quiet_twilio, patient, "STOP")

    assert result.reply_text is not None
    assert "unsubscribed" in result.reply_text


def test_after_stop_other_replies_get_no_answer(session: Session, settings: Settings) -> None:
    patient = make_patient(session, make_clinic(session))
    sms(session, settings, patient, "STOP")

    assert sms(session, settings, patient, "done").reply_text is None
    assert sms(session, settings, patient, "what?").reply_text is None


def test_stop_from_an_unknown_number_is_recorded(session: Session, settings: Settings) -> None:
    result = sms(session, settings, "+13125550404", "stop")

    assert optouts.is_opted_out(session=session, address="+13125550404", channel=Channel.SMS)
    assert result.reply_text is None


# --- START ---------------------------------------------------------------------------------


def test_start_opts_back_in_and_the_schedule_resumes_from_now(
    session: Session, quiet_twilio: Settings
) -> None:
    patient = make_patient(session, make_clinic(session), schedule_after=NOW)
    sms(session, quiet_twilio, patient, "STOP")
    later = NOW + dt.timedelta(days=3)

    result = sms(session, quiet_twilio, patient, "START", now=later)

    assert not optouts.is_opted_out(
        session=session, address=patient.phone or "", channel=Channel.SMS
    )
    assert patient.plan_items[0].next_due_at is not None
    assert patient.plan_items[0].next_due_at > later  # nothing missed is replayed
    assert result.reply_text is not None
    assert "Welcome back, Ana" in result.reply_text


def test_exact_start_is_left_to_twilio_to_answer(session: Session, settings: Settings) -> None:
    patient = make_patient(session, make_clinic(session))
    sms(session, settings, patient, "STOP")

    assert sms(session, settings, patient, "START").reply_text is None
    assert not optouts.is_opted_out(
        session=session, address=patient.phone or "", channel=Channel.SMS
    )


def test_yes_from_an_opted_out_number_opts_back_in(
    session: Session, quiet_twilio: Settings
) -> None:
    patient = make_patient(session, make_clinic(session))
    sms(session, quiet_twilio, patient, "STOP")

    sms(session, quiet_twilio, patient, "YES")

    assert not optouts.is_opted_out(
        session=session, address=patient.phone or "", channel=Channel.SMS
    )
    assert inbound_rows(session)[-1].command == "start"


# --- HELP ----------------------------------------------------------------------------------


def test_help_names_the_clinic_and_its_phone(
    session: Session, settings: Settings, patient: Patient
) -> None:
    result = sms(session, settings, patient, "HELP")

    assert result.reply_text is not None
    assert "Lakeside Back Clinic" in result.reply_text
    assert "312-555-0199" in result.reply_text
    assert "STOP" in result.reply_text


# --- DONE / SKIP ---------------------------------------------------------------------------


def test_done_after_a_stretch_reminder_marks_it_done(
    session: Session, settings: Settings, patient: Patient
) -> None:
    reminder = add_reminder(session, patient, kind="stretch")

    result = sms(session, settings, patient, "Done!")

    session.refresh(reminder)
    assert reminder.outcome is Outcome.DONE
    assert reminder.outcome_at == NOW
    assert result.reply_text is not None
    assert "Stretching recorded" in result.reply_text
    row = inbound_rows(session)[-1]
    assert (row.command, row.reminder_id, row.needs_attention) == ("done", reminder.id, False)


@pytest.mark.parametrize(("body", "budget"), [("Done!", 7), ("what time is my visit?", 4)])
def test_a_reply_costs_a_handful_of_statements(
    session: Session, settings: Settings, patient: Patient, body: str, budget: int
) -> None:
    """A burst of replies follows every 09:00 reminder: each statement is a round trip to
    the database while Twilio waits (bench/inbound_bench.py measures the time; this keeps
    the count from creeping back). Nothing is in the session beforehand, as in a request."""
    reminder = add_reminder(session, patient, kind="stretch")
    phone = patient.phone or ""
    session.expunge_all()
    statements: list[str] = []

    def record(*args: object) -> None:
        statements.append(str(args[2]).split("\n")[0])

    connection = session.connection()
    event.listen(connection, "before_cursor_execute", record)
    try:
        sms(session, settings, phone, body)
    finally:
        event.remove(connection, "before_cursor_execute", record)

    assert len(statements) <= budget, statements
    row = inbound_rows(session)[-1]
    assert row.reminder_id == (reminder.id if body == "Done!" else None)


def test_done_counts_for_the_latest_open_reminder_only(
    session: Session, settings: Settings, patient: Patient
) -> None:
    older = add_reminder(session, patient, due_at=NOW - dt.timedelta(hours=3))
    latest = add_reminder(session, patient, kind="posture", due_at=NOW - dt.timedelta(hours=1))

    sms(session, settings, patient, "done")

    session.refresh(older)
    session.refresh(latest)
    assert (older.outcome, latest.outcome) == (None, Outcome.DONE)


def test_done_covers_the_email_twin_of_the_same_occurrence(
    session: Session, settings: Settings, patient: Patient
) -> None:
    text = add_reminder(session, patient)
    email = add_reminder(session, patient, channel=Channel.EMAIL)

    sms(session, settings, patient, "did it")

    session.refresh(email)
    session.refresh(text)
    assert (text.outcome, email.outcome) == (Outcome.DONE, Outcome.DONE)


@pytest.mark.parametrize(
    "case",
    [
        (NOW - dt.timedelta(hours=13), ReminderStatus.DELIVERED, True),  # outside the window
        (NOW - dt.timedelta(minutes=5), ReminderStatus.QUEUED, True),  # never left
        (NOW - dt.timedelta(minutes=5), ReminderStatus.FAILED, True),
        (NOW - dt.timedelta(minutes=5), ReminderStatus.DELIVERED, False),  # a welcome
        (NOW + dt.timedelta(minutes=5), ReminderStatus.SENT, True),
    ],
)
def test_done_with_nothing_open_records_nothing(
    session: Session,
    settings: Settings,
    patient: Patient,
    case: tuple[dt.datetime, ReminderStatus, bool],
) -> None:
    due_at, status, actionable = case
    reminder = add_reminder(session, patient, due_at=due_at, status=status, actionable=actionable)

    result = sms(session, settings, patient, "done")

    session.refresh(reminder)
    assert reminder.outcome is None
    assert result.reply_text is not None
    assert "nothing open" in result.reply_text


def test_a_second_done_does_not_count_twice(
    session: Session, settings: Settings, patient: Patient
) -> None:
    add_reminder(session, patient)
    sms(session, settings, patient, "done")

    result = sms(session, settings, patient, "done")

    assert result.reply_text is not None
    assert "nothing open" in result.reply_text


def test_skip_marks_the_reminder_skipped(
    session: Session, settings: Settings, patient: Patient
) -> None:
    reminder = add_reminder(session, patient)

    result = sms(session, settings, patient, "skip today")

    session.refresh(reminder)
    assert reminder.outcome is Outcome.SKIPPED
    assert result.reply_text is not None
    assert "skip this one" in result.reply_text


def test_done_with_a_comment_is_flagged_for_the_clinic(
    session: Session, settings: Settings, patient: Patient
) -> None:
    reminder = add_reminder(session, patient)

    sms(session, settings, patient, "Done, but my knee clicks")

    session.refresh(reminder)
    assert reminder.outcome is Outcome.DONE
    assert inbound_rows(session)[-1].needs_attention is True


# --- LATER ---------------------------------------------------------------------------------


def test_later_schedules_one_resend_in_30_minutes(
    session: Session, settings: Settings, patient: Patient
) -> None:
    original = add_reminder(session, patient)

    result = sms(session, settings, patient, "later")
    sms(session, settings, patient, "LATER please", now=NOW + dt.timedelta(minutes=1))

    resends = session.scalars(
        select(Reminder).where(Reminder.status == ReminderStatus.SCHEDULED)
    ).all()
    assert len(resends) == 1
    resend = resends[0]
    assert resend.due_at == NOW + dt.timedelta(minutes=30)
    assert (resend.kind, resend.plan_item_id, resend.channel) == (
        "stretch",
        original.plan_item_id,
        Channel.SMS,
    )
    assert result.reply_text is not None
    assert "30 minutes" in result.reply_text


def test_done_for_a_resend_counts_for_the_original(
    session: Session, settings: Settings, patient: Patient
) -> None:
    original = add_reminder(session, patient)
    sms(session, settings, patient, "later")
    resend = session.scalars(
        select(Reminder).where(Reminder.status == ReminderStatus.SCHEDULED)
    ).one()
    resend.status = ReminderStatus.DELIVERED
    session.flush()

    sms(session, settings, patient, "done", now=NOW + dt.timedelta(minutes=35))

    session.refresh(original)
    session.refresh(resend)
    assert (original.outcome, resend.outcome) == (Outcome.DONE, Outcome.DONE)


def test_a_resend_of_a_resend_still_points_at_the_first_reminder(
    session: Session, settings: Settings, patient: Patient
) -> None:
    original = add_reminder(session, patient)
    sms(session, settings, patient, "later")
    first = session.scalars(
        select(Reminder).where(Reminder.status == ReminderStatus.SCHEDULED)
    ).one()
    first.status = ReminderStatus.DELIVERED
    first.sent_at = first.due_at
    session.flush()

    sms(session, settings, patient, "later", now=first.due_at + dt.timedelta(minutes=1))

    second = session.scalars(
        select(Reminder).where(Reminder.status == ReminderStatus.SCHEDULED)
    ).one()
    assert (first.snooze_of_id, second.snooze_of_id) == (original.id, original.id)
    assert second.due_at == first.due_at + dt.timedelta(minutes=31)


def test_done_before_the_resend_cancels_it(
    session: Session, settings: Settings, patient: Patient
) -> None:
    add_reminder(session, patient)
    sms(session, settings, patient, "later")

    sms(session, settings, patient, "done", now=NOW + dt.timedelta(minutes=10))

    statuses = session.scalars(select(Reminder.status).where(Reminder.due_at > NOW)).all()
    assert list(statuses) == [ReminderStatus.CANCELED]


def test_later_near_bedtime_says_so_and_schedules_nothing(
    session: Session, settings: Settings
) -> None:
    patient = make_patient(session, make_clinic(session), wake=(dt.time(8), dt.time(20)))
    evening = dt.datetime(2026, 2, 10, 1, 45, tzinfo=dt.UTC) + dt.timedelta(days=1)  # 19:45 CST
    add_reminder(session, patient, due_at=evening - dt.timedelta(minutes=15))

    result = sms(session, settings, patient, "later", now=evening)

    scheduled = session.scalars(
        select(Reminder).where(Reminder.status == ReminderStatus.SCHEDULED)
    ).all()
    assert scheduled == []
    assert result.reply_text is not None
    assert "late in your day" in result.reply_text


# --- PAUSE ---------------------------------------------------------------------------------


def test_pause_n_pauses_for_n_days_and_cancels_what_is_queued(
    session: Session, settings: Settings, patient: Patient
) -> None:
    queued = add_reminder(
        session, patient, status=ReminderStatus.QUEUED, due_at=NOW + dt.timedelta(minutes=1)
    )

    result = sms(session, settings, patient, "PAUSE 3")

    session.refresh(queued)
    assert patient.status is PatientStatus.PAUSED
    assert patient.paused_until == dt.date(2026, 2, 13)
    assert queued.status is ReminderStatus.CANCELED
    next_due = patient.plan_items[0].next_due_at
    assert next_due is not None
    assert next_due.date() == dt.date(2026, 2, 13)  # 09:00 Chicago on the day it ends
    assert result.reply_text is not None
    assert "paused for 3 days" in result.reply_text


def test_pause_by_reply_is_audited_like_a_clinic_pause_with_the_reply_that_asked(
    session: Session, settings: Settings, patient: Patient
) -> None:
    add_reminder(
        session, patient, status=ReminderStatus.QUEUED, due_at=NOW + dt.timedelta(minutes=1)
    )

    sms(session, settings, patient, "PAUSE 3")

    inbound_id = session.scalars(select(InboundMessage.id)).one()
    detail = session.scalars(
        select(AuditEvent.detail).where(
            AuditEvent.action == "pause", AuditEvent.patient_id == patient.id
        )
    ).one()
    assert detail == {"until": "2026-02-13", "canceled": 1, "days": 3, "inbound_id": inbound_id}


def test_pause_without_a_number_changes_nothing(
    session: Session, settings: Settings, patient: Patient
) -> None:
    result = sms(session, settings, patient, "pause 100")

    assert patient.status is PatientStatus.ACTIVE
    assert result.reply_text is not None
    assert "PAUSE" in result.reply_text  # the keyword list


# --- PAIN ----------------------------------------------------------------------------------


def test_pain_n_records_a_score(session: Session, settings: Settings, patient: Patient) -> None:
    result = sms(session, settings, patient, "pain 4/10")

    score = session.scalars(select(PainScore)).one()
    assert (score.patient_id, score.score, score.recorded_at) == (patient.id, 4, NOW)
    assert result.reply_text is not None
    assert "4 out of 10" in result.reply_text


def test_a_bare_number_after_a_pain_question_is_a_score(
    session: Session, settings: Settings, patient: Patient
) -> None:
    add_reminder(session, patient, kind="pain_question", actionable=False, plan_item=False)

    sms(session, settings, patient, "6")

    assert session.scalars(select(PainScore.score)).all() == [6]
    assert inbound_rows(session)[-1].command == "pain"


def test_a_bare_number_without_a_pain_question_is_for_the_clinic(
    session: Session, settings: Settings, patient: Patient
) -> None:
    result = sms(session, settings, patient, "6")

    assert session.scalars(select(PainScore)).all() == []
    row = inbound_rows(session)[-1]
    assert (row.command, row.needs_attention) == ("number", True)
    assert result.reply_text is not None
    assert "didn't get that" in result.reply_text


def test_a_pain_question_takes_one_answer(
    session: Session, settings: Settings, patient: Patient
) -> None:
    add_reminder(session, patient, kind="pain_question", actionable=False, plan_item=False)
    sms(session, settings, patient, "6")

    sms(session, settings, patient, "2", now=NOW + dt.timedelta(minutes=1))

    assert session.scalars(select(PainScore.score)).all() == [6]


# --- the weekly check-in and the pain question -------------------------------------------


def ask(session: Session, patient: Patient, kind: str, *, ago: dt.timedelta) -> Reminder:
    """A question as the dispatcher sends it: not actionable (it asks for a number)."""
    return add_reminder(session, patient, kind=kind, due_at=NOW - ago, actionable=False)


def checkins(session: Session) -> list[tuple[int, int | None, int | None, int, dt.datetime]]:
    rows = session.execute(
        select(
            CheckinAnswer.patient_id,
            CheckinAnswer.reminder_id,
            CheckinAnswer.inbound_id,
            CheckinAnswer.days,
            CheckinAnswer.received_at,
        )
    )
    return [tuple(row) for row in rows]  # type: ignore[misc]


def test_a_bare_number_after_the_weekly_check_in_is_the_days_of_exercise(
    session: Session, settings: Settings, patient: Patient
) -> None:
    question = ask(session, patient, "weekly_checkin", ago=dt.timedelta(hours=2))

    result = sms(session, settings, patient, "5")

    row = inbound_rows(session)[-1]
    assert checkins(session) == [(patient.id, question.id, row.id, 5, NOW)]
    assert (row.command, row.reminder_id, row.needs_attention) == ("checkin", question.id, False)
    assert session.scalars(select(PainScore)).all() == []
    assert result.reply_text is not None
    assert "5 of 7 days" in result.reply_text


def test_a_bare_number_answers_the_question_that_went_out_last(
    session: Session, settings: Settings, patient: Patient
) -> None:
    ask(session, patient, "pain_question", ago=dt.timedelta(hours=3))
    ask(session, patient, "weekly_checkin", ago=dt.timedelta(hours=1))

    sms(session, settings, patient, "3")

    assert [answer[3] for answer in checkins(session)] == [3]
    assert session.scalars(select(PainScore)).all() == []


def test_pain_n_after_the_weekly_check_in_is_still_a_pain_score(
    session: Session, settings: Settings, patient: Patient
) -> None:
    ask(session, patient, "weekly_checkin", ago=dt.timedelta(hours=1))

    sms(session, settings, patient, "pain 3")

    assert session.scalars(select(PainScore.score)).all() == [3]
    assert checkins(session) == []


def test_a_number_after_the_reply_window_of_a_question_is_no_answer(
    session: Session, settings: Settings, patient: Patient
) -> None:
    ask(session, patient, "weekly_checkin", ago=dt.timedelta(hours=13))  # the window: 12 h
    ask(session, patient, "pain_question", ago=dt.timedelta(hours=14))

    result = sms(session, settings, patient, "4")

    assert checkins(session) == []
    assert session.scalars(select(PainScore)).all() == []
    assert (inbound_rows(session)[-1].command, inbound_rows(session)[-1].needs_attention) == (
        "number",
        True,
    )
    assert result.reply_text is not None
    assert "didn't get that" in result.reply_text


@pytest.mark.parametrize(
    ("asked", "told"),
    [
        (("weekly_checkin", "9"), "from 0 to 7"),
        (("weekly_checkin", "12"), "from 0 to 7"),
        (("pain_question", "11"), "from 0 (no pain) to 10"),
    ],
)
def test_an_answer_out_of_range_is_corrected_and_nothing_is_stored(
    session: Session, settings: Settings, patient: Patient, asked: tuple[str, str], told: str
) -> None:
    kind, body = asked
    question = ask(session, patient, kind, ago=dt.timedelta(hours=1))

    result = sms(session, settings, patient, body)

    assert checkins(session) == []
    assert session.scalars(select(PainScore)).all() == []
    assert inbound_rows(session)[-1].reminder_id == question.id
    assert result.reply_text is not None
    assert told in result.reply_text
    assert "Nothing was recorded" in result.reply_text
    # As PAIN 11 is: answered with the range, not left for the clinic.
    assert inbound_rows(session)[-1].needs_attention is False
    # The question is still open: the corrected answer counts.
    sms(session, settings, patient, "2", now=NOW + dt.timedelta(minutes=1))
    assert len(checkins(session)) + len(session.scalars(select(PainScore)).all()) == 1


def test_a_weekly_check_in_takes_one_answer(
    session: Session, settings: Settings, patient: Patient
) -> None:
    ask(session, patient, "weekly_checkin", ago=dt.timedelta(hours=1))
    sms(session, settings, patient, "6")

    sms(session, settings, patient, "2", now=NOW + dt.timedelta(minutes=1))

    assert [answer[3] for answer in checkins(session)] == [6]
    assert inbound_rows(session)[-1].command == "number"


def test_done_is_never_credited_to_a_question(
    session: Session, settings: Settings, patient: Patient
) -> None:
    question = ask(session, patient, "weekly_checkin", ago=dt.timedelta(minutes=5))

    result = sms(session, settings, patient, "DONE")

    session.refresh(question)
    assert question.outcome is None
    assert inbound_rows(session)[-1].reminder_id is None
    assert result.reply_text is not None
    assert checkins(session) == []


def test_the_check_in_is_acknowledged_in_spanish(session: Session, settings: Settings) -> None:
    patient = make_patient(session, make_clinic(session), locale="es", schedule_after=NOW)
    ask(session, patient, "weekly_checkin", ago=dt.timedelta(hours=1))

    result = sms(session, settings, patient, "7")

    assert result.reply_text is not None
    assert "7 de 7 dias" in result.reply_text


def test_a_replayed_check_in_answer_gets_the_same_answer_and_stores_nothing_more(
    session: Session, settings: Settings, patient: Patient
) -> None:
    ask(session, patient, "weekly_checkin", ago=dt.timedelta(hours=1))
    first = sms(session, settings, patient, "4", sid="SMcheckin")

    again = sms(session, settings, patient, "4", sid="SMcheckin")

    assert again == first
    assert len(checkins(session)) == 1


# --- warning signs -------------------------------------------------------------------------


def test_warning_sign_pauses_and_returns_an_alert_id(
    session: Session, settings: Settings, patient: Patient
) -> None:
    queued = add_reminder(
        session, patient, status=ReminderStatus.QUEUED, due_at=NOW + dt.timedelta(minutes=2)
    )

    result = sms(session, settings, patient, "My legs went numb this morning")

    row = inbound_rows(session)[-1]
    session.refresh(queued)
    assert result.alert_inbound_id == row.id
    assert (row.command, row.needs_attention, row.patient_id) == ("warning", True, patient.id)
    assert (patient.status, patient.paused_until) == (PatientStatus.PAUSED, None)
    assert patient.plan_items[0].next_due_at is None
    assert queued.status is ReminderStatus.CANCELED
    assert result.reply_text is not None
    assert "911" in result.reply_text
    assert "312-555-0199" in result.reply_text


def test_the_warning_answer_gives_the_emergency_number_of_the_clinics_country(
    session: Session, settings: Settings
) -> None:
    clinic = make_clinic(session)
    clinic.region, clinic.phone, clinic.timezone = "GB", "+442079460000", "Europe/London"
    patient = make_patient(session, clinic, phone="+447700900123", timezone="Europe/London")

    result = sms(session, settings, patient, "I slipped in the shower")

    assert result.reply_text is not None
    assert "call 999" in result.reply_text
    assert "911" not in result.reply_text


def test_help_states_the_message_frequency_and_the_rates_notice(
    session: Session, settings: Settings, patient: Patient
) -> None:
    result = sms(session, settings, patient, "HELP")

    assert result.reply_text is not None
    assert f"up to {patient.max_per_day} msgs/day" in result.reply_text
    assert "Msg & data rates may apply" in result.reply_text


def test_stop_with_a_warning_sign_does_both(
    session: Session, settings: Settings, patient: Patient
) -> None:
    result = sms(session, settings, patient, "numbness in legs, stop")

    assert optouts.is_opted_out(session=session, address=patient.phone or "", channel=Channel.SMS)
    assert patient.status is PatientStatus.PAUSED
    assert result.alert_inbound_id == inbound_rows(session)[-1].id
    assert result.reply_text is not None
    assert "911" in result.reply_text
    assert "unsubscribed" in result.reply_text


# --- anything else, and strangers ------------------------------------------------------------


def test_free_text_is_stored_for_the_clinic_and_answered_with_the_keywords(
    session: Session, settings: Settings, patient: Patient
) -> None:
    result = sms(session, settings, patient, "Can I do the stretches in bed?")

    row = inbound_rows(session)[-1]
    assert (row.body, row.command, row.needs_attention) == (
        "Can I do the stretches in bed?",
        "other",
        True,
    )
    assert (row.patient_id, row.clinic_id) == (patient.id, patient.clinic_id)
    assert result.reply_text is not None
    assert "DONE" in result.reply_text


def test_an_unknown_number_gets_a_polite_reply_and_nothing_else(
    session: Session, settings: Settings
) -> None:
    result = sms(session, settings, "+13125550999", "done")

    row = inbound_rows(session)[-1]
    assert (row.patient_id, row.clinic_id, row.body) == (None, None, "done")
    assert result.reply_text is not None
    assert "don't have this number" in result.reply_text
    assert result.alert_inbound_id is None


def test_any_reply_updates_last_reply_at(
    session: Session, settings: Settings, patient: Patient
) -> None:
    sms(session, settings, patient, "hello")

    assert patient.last_reply_at == NOW


def test_a_retried_webhook_does_nothing_twice_and_answers_the_same(
    session: Session, settings: Settings, patient: Patient
) -> None:
    reminder = add_reminder(session, patient)
    first = sms(session, settings, patient, "done", sid="SM-retried")

    again = sms(
        session, settings, patient, "done", sid="SM-retried", now=NOW + dt.timedelta(seconds=15)
    )

    assert again == first
    assert session.scalar(select(func.count()).select_from(InboundMessage)) == 1
    session.refresh(reminder)
    assert reminder.outcome_at == NOW


def test_a_retried_warning_sign_asks_for_the_alert_again(
    session: Session, settings: Settings, patient: Patient
) -> None:
    first = sms(session, settings, patient, "I fell", sid="SM-fell")

    again = sms(session, settings, patient, "I fell", sid="SM-fell")

    assert again == first
    assert first.alert_inbound_id is not None


def test_the_body_and_the_full_number_never_reach_the_log(
    session: Session, settings: Settings, patient: Patient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    sms(session, settings, patient, "my secret knee question")

    assert "secret knee" not in caplog.text
    assert (patient.phone or "") not in caplog.text


# --- the reading table ---------------------------------------------------------------------


def test_every_reading_has_one_handler_and_one_answer() -> None:
    # A command the parser can return but no table names would fail at the first such text.
    assert set(HANDLERS) == set(Command)
    assert set(ANSWERS) == set(Command)


# --- acknowledgements, symptoms, leaving in other words, numbers out of range -------------


def test_an_acknowledgement_credits_nothing_and_gets_no_answer(
    session: Session, settings: Settings
) -> None:
    patient = make_patient(session, make_clinic(session))
    reminder = add_reminder(session, patient)

    result = sms(session, settings, patient, "ok 👍 thanks")

    assert result.reply_text is None
    assert reminder.outcome is None
    stored = session.scalars(select(InboundMessage)).one()
    assert (stored.command, stored.needs_attention) == ("ack", False)


def test_a_symptom_is_flagged_for_the_clinic_without_a_pause(
    session: Session, settings: Settings
) -> None:
    patient = make_patient(session, make_clinic(session))

    result = sms(session, settings, patient, "tingling in my feet again today")

    assert result.reply_text is not None
    assert "care team" in result.reply_text
    assert patient.status is PatientStatus.ACTIVE
    assert result.alert_inbound_id is None
    assert session.scalars(select(InboundMessage)).one().needs_attention is True


def test_wanting_to_quit_in_other_words_is_told_how_to_stop_and_stays_subscribed(
    session: Session, settings: Settings
) -> None:
    patient = make_patient(session, make_clinic(session))

    result = sms(session, settings, patient, "I want to quit the program")

    assert result.reply_text is not None
    assert "reply STOP" in result.reply_text
    assert not optouts.is_opted_out(
        session=session, address=patient.phone or "", channel=Channel.SMS
    )
    assert session.scalars(select(InboundMessage)).one().needs_attention is True


@pytest.mark.parametrize(
    ("body", "expected"), [("PAUSE -1", "from 1 to 60"), ("PAIN 11", "from 0 (no pain) to 10")]
)
def test_a_number_out_of_range_is_refused_with_the_range(
    session: Session, settings: Settings, body: str, expected: str
) -> None:
    patient = make_patient(session, make_clinic(session))

    result = sms(session, settings, patient, body)

    assert result.reply_text is not None
    assert expected in result.reply_text
    assert patient.status is PatientStatus.ACTIVE
    assert session.scalars(select(PainScore)).all() == []


def test_a_huge_body_is_stored_cut_to_two_thousand_characters_and_marked(
    session: Session, settings: Settings, patient: Patient
) -> None:
    sms(session, settings, patient, "Done! " + "x" * 1_000_000)

    (row,) = inbound_rows(session)
    assert len(row.body) == 2000
    assert row.body.startswith("Done! xxx")
    assert row.body.endswith("… [cut]")


def test_a_body_of_exactly_two_thousand_characters_is_kept_whole(
    session: Session, settings: Settings, patient: Patient
) -> None:
    body = "is this ok? " + "y" * 1988

    sms(session, settings, patient, body)

    assert inbound_rows(session)[0].body == body


# --- a phone shared by several patients ----------------------------------------------------


def _shared_phone(session: Session) -> tuple[Patient, Patient]:
    """Ana and Luis on one phone, each with their own clinic (Luis's enrolled last)."""
    phone = "+13125556060"
    riverside = make_clinic(session)
    riverside.name, riverside.phone = "Riverside Spine", "+13125550123"
    ana = make_patient(session, riverside, phone=phone, schedule_after=NOW)
    luis = make_patient(
        session, make_clinic(session), first_name="Luis", phone=phone, schedule_after=NOW
    )
    return ana, luis


def test_done_from_a_shared_phone_credits_the_reminder_that_went_out_last(
    session: Session, settings: Settings
) -> None:
    ana, luis = _shared_phone(session)
    # Luis's reminder was due later, but Ana's was held up and went out after it.
    late = add_reminder(session, ana, due_at=NOW - dt.timedelta(minutes=50))
    late.sent_at = NOW - dt.timedelta(minutes=5)
    luis_reminder = add_reminder(session, luis, due_at=NOW - dt.timedelta(minutes=20))

    sms(session, settings, ana, "DONE")

    session.refresh(late)
    session.refresh(luis_reminder)
    assert (late.outcome, luis_reminder.outcome) == (Outcome.DONE, None)
    assert inbound_rows(session)[-1].patient_id == ana.id


def test_a_pain_score_from_a_shared_phone_answers_the_question_that_went_out_last(
    session: Session, settings: Settings
) -> None:
    ana, luis = _shared_phone(session)
    asked_ana = add_reminder(
        session, ana, kind="pain_question", due_at=NOW - dt.timedelta(minutes=50)
    )
    asked_ana.sent_at = NOW - dt.timedelta(minutes=5)
    add_reminder(session, luis, kind="pain_question", due_at=NOW - dt.timedelta(minutes=20))

    sms(session, settings, ana, "4")

    scores = list(session.scalars(select(PainScore.patient_id)))
    assert scores == [ana.id]


def test_a_check_in_answer_from_a_shared_phone_goes_to_whoever_was_asked_last(
    session: Session, settings: Settings
) -> None:
    ana, luis = _shared_phone(session)
    asked_ana = ask(session, ana, "weekly_checkin", ago=dt.timedelta(minutes=30))
    ask(session, luis, "weekly_checkin", ago=dt.timedelta(minutes=50))

    sms(session, settings, luis, "3")

    assert [(a[0], a[1]) for a in checkins(session)] == [(ana.id, asked_ana.id)]
    assert inbound_rows(session)[-1].patient_id == ana.id


def test_help_from_a_shared_phone_names_the_clinic_of_the_last_reminder(
    session: Session, settings: Settings
) -> None:
    ana, luis = _shared_phone(session)
    add_reminder(session, luis, due_at=NOW - dt.timedelta(minutes=40))
    add_reminder(session, ana, due_at=NOW - dt.timedelta(minutes=10))

    result = sms(session, settings, ana, "HELP")

    assert result.reply_text is not None
    assert "Riverside Spine" in result.reply_text
    assert "312-555-0123" in result.reply_text
    assert inbound_rows(session)[-1].clinic_id == ana.clinic_id


def test_free_text_from_a_shared_phone_goes_to_the_clinic_of_the_last_reminder(
    session: Session, settings: Settings
) -> None:
    ana, _luis = _shared_phone(session)
    add_reminder(session, ana, due_at=NOW - dt.timedelta(minutes=10))

    sms(session, settings, ana, "can I swim instead this week?")

    row = inbound_rows(session)[-1]
    assert (row.patient_id, row.clinic_id, row.needs_attention) == (ana.id, ana.clinic_id, True)


def test_stop_from_a_shared_phone_opts_out_for_every_clinic_and_names_them_all(
    session: Session, quiet_twilio: Settings
) -> None:
    ana, _luis = _shared_phone(session)

    result = sms(session, quiet_twilio, ana, "STOP")

    assert optouts.is_opted_out(session=session, address=ana.phone or "", channel=Channel.SMS)
    assert result.reply_text is not None
    assert "Riverside Spine" in result.reply_text
    assert "Lakeside Back Clinic" in result.reply_text


def test_two_family_members_at_one_clinic_done_credits_whose_reminder_went_out_last(
    session: Session, settings: Settings
) -> None:
    phone = "+13125556070"
    clinic = make_clinic(session)
    ana = make_patient(session, clinic, phone=phone, schedule_after=NOW)
    luis = make_patient(session, clinic, first_name="Luis", phone=phone, schedule_after=NOW)
    luis_reminder = add_reminder(session, luis, due_at=NOW - dt.timedelta(minutes=40))
    ana_reminder = add_reminder(session, ana, due_at=NOW - dt.timedelta(minutes=50))
    ana_reminder.sent_at = NOW - dt.timedelta(minutes=3)

    sms(session, settings, phone, "done")

    session.refresh(ana_reminder)
    session.refresh(luis_reminder)
    assert (ana_reminder.outcome, luis_reminder.outcome) == (Outcome.DONE, None)
    assert inbound_rows(session)[-1].patient_id == ana.id


def test_a_warning_from_a_family_phone_writes_one_alert_per_clinic_for_whom_it_was_read(
    session: Session, settings: Settings
) -> None:
    phone = "+13125556071"
    clinic = make_clinic(session)
    ana = make_patient(session, clinic, phone=phone, schedule_after=NOW)
    luis = make_patient(session, clinic, first_name="Luis", phone=phone, schedule_after=NOW)
    other = make_clinic(session)
    rosa = make_patient(session, other, first_name="Rosa", phone=phone, schedule_after=NOW)
    luis_reminder = add_reminder(session, luis, due_at=NOW - dt.timedelta(minutes=40))
    luis_reminder.sent_at = NOW - dt.timedelta(minutes=3)

    sms(session, settings, phone, "I fell and cannot get up")

    alerts = session.scalars(select(ClinicAlert).order_by(ClinicAlert.clinic_id)).all()
    assert [(a.clinic_id, a.patient_id) for a in alerts] == [
        (clinic.id, luis.id),
        (other.id, rosa.id),
    ]
    assert {p.status for p in (ana, luis, rosa)} == {PatientStatus.PAUSED}


# --- LATER as the patient asks -------------------------------------------------------------


def _snoozed(session: Session) -> Reminder:
    return session.scalars(
        select(Reminder).where(Reminder.status == ReminderStatus.SCHEDULED)
    ).one()


def test_later_in_an_hour_comes_back_in_an_hour(session: Session, settings: Settings) -> None:
    patient = make_patient(session, make_clinic(session))
    add_reminder(session, patient)

    result = sms(session, settings, patient, "in an hour please")

    assert _snoozed(session).due_at == NOW + dt.timedelta(hours=1)
    assert result.reply_text is not None
    assert "60 minutes" in result.reply_text


def test_later_tomorrow_comes_back_at_the_start_of_the_next_waking_day(
    session: Session, settings: Settings
) -> None:
    patient = make_patient(session, make_clinic(session))  # Chicago, awake 08:00-20:00
    add_reminder(session, patient)

    result = sms(session, settings, patient, "tomorrow")

    # 10:00 CST on 10 February: again at 08:00 CST on the 11th.
    assert _snoozed(session).due_at == dt.datetime(2026, 2, 11, 14, 0, tzinfo=dt.UTC)
    assert result.reply_text is not None
    assert "tomorrow at 08:00" in result.reply_text


def test_later_for_a_time_past_the_waking_day_is_let_go(
    session: Session, settings: Settings
) -> None:
    patient = make_patient(session, make_clinic(session))
    add_reminder(session, patient)

    result = sms(session, settings, patient, "in 12 hours")

    assert (
        session.scalars(select(Reminder).where(Reminder.status == ReminderStatus.SCHEDULED)).all()
        == []
    )
    assert result.reply_text is not None
    assert "late in your day" in result.reply_text
