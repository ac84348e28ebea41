"""Builders for adherence data: reminders with statuses and outcomes, replies, pain scores,
and a realistic clinic month for the report and browser tests."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import insert
from sqlalchemy.orm import Session

from service.models import (
    Channel,
    CheckinAnswer,
    Clinic,
    InboundMessage,
    Outcome,
    PainScore,
    Patient,
    Reminder,
    ReminderStatus,
)
from service.reporting.adherence import AdherenceReport, build_report
from tests.factories import make_clinic, make_patient

CHICAGO = ZoneInfo("America/Chicago")
NOW = dt.datetime(2026, 11, 26, 20, 0, tzinfo=dt.UTC)
SINCE = NOW - dt.timedelta(days=28)
SCRIPT_NAME = '<script>alert("x")</script>'
FORMULA_NAME = '=HYPERLINK("http://evil.example","x")'
MARKUP_NAME = "[bold red]Zoe[/bold red]"


def local(day: dt.date, hour: int, minute: int = 0, zone: ZoneInfo = CHICAGO) -> dt.datetime:
    """An aware instant at a local wall time, in UTC (as the database hands it back)."""
    return dt.datetime.combine(day, dt.time(hour, minute), zone).astimezone(dt.UTC)


def add_reminder(
    session: Session,
    patient: Patient,
    *,
    due_at: dt.datetime,
    kind: str = "stretch",
    status: ReminderStatus = ReminderStatus.DELIVERED,
    outcome: Outcome | None = None,
    actionable: bool = True,
    answered_after: dt.timedelta = dt.timedelta(minutes=20),
) -> Reminder:
    reminder = Reminder(
        patient_id=patient.id,
        kind=kind,
        channel=Channel.SMS,
        actionable=actionable,
        due_at=due_at,
        status=status,
        status_at=due_at,
        sent_at=due_at if status in {ReminderStatus.SENT, ReminderStatus.DELIVERED} else None,
        outcome=outcome,
        outcome_at=due_at + answered_after if outcome else None,
    )
    session.add(reminder)
    return reminder


def add_reply(
    session: Session,
    patient: Patient,
    *,
    at: dt.datetime,
    command: str,
    body: str = "DONE",
    needs_attention: bool = False,
) -> InboundMessage:
    message = InboundMessage(
        channel=Channel.SMS,
        from_address=patient.phone or "",
        clinic_id=patient.clinic_id,
        patient_id=patient.id,
        body=body,
        command=command,
        needs_attention=needs_attention,
        received_at=at,
    )
    session.add(message)
    return message


def add_pain(session: Session, patient: Patient, *, at: dt.datetime, score: int) -> PainScore:
    pain = PainScore(patient_id=patient.id, score=score, recorded_at=at)
    session.add(pain)
    return pain


# --- a realistic month ----------------------------------------------------------------------

# (kind, local hour, minute, weekdays or None for every day): the core program, trimmed.
DAY_PLAN = (
    ("stretch", 9, 0, None),
    ("pelvic_tilt", 10, 30, None),
    ("leg_strength", 11, 0, {0, 2, 4}),
    ("position_change", 12, 0, None),
    ("stretch", 13, 0, None),
    ("walk_or_cycle", 16, 0, {1, 3, 5}),
    ("position_change", 17, 0, None),
    ("stretch", 18, 30, None),
)


@dataclass(frozen=True)
class Profile:
    first_name: str
    start: float  # chance of DONE in the first week
    end: float  # ... and in the last
    pain: tuple[int, int] | None = None  # first and last pain score of the month
    reply: tuple[str, str, bool] | None = None  # command, body, needs_attention
    quiet_days: int = 0  # no answers at all in the last days
    said: tuple[int, int] | None = None  # first and last weekly check-in answer (days, 0-7)


PROFILES = (
    Profile("Ana", 0.85, 0.95, pain=(7, 3), said=(5, 7)),
    Profile("Marcus", 0.6, 0.2, pain=(4, 7), quiet_days=4, said=(4, 1)),
    Profile("Priya", 0.9, 0.9),
    Profile("Tom", 0.4, 0.35, reply=("other", "Is it ok to swim instead?", True)),
    Profile("Grace", 0.75, 0.8, pain=(6, 5)),
    Profile("Luis", 0.3, 0.6, pain=(8, 5)),
    Profile("Mei", 0.95, 0.85),
    Profile("Daniel", 0.5, 0.1, reply=("warning", "Legs numb since this morning", True)),
    Profile("Fatima", 0.7, 0.75, pain=(5, 5)),
    Profile("Olga", 0.55, 0.65),
)


def realistic_clinic(
    session: Session,
    *,
    now: dt.datetime,
    days: int = 28,
    profiles: tuple[Profile, ...] = PROFILES,
    seed: int = 7,
) -> Clinic:
    """A clinic with a month of reminders, answers, pain scores and replies (deterministic)."""
    rng = random.Random(seed)
    clinic = make_clinic(session)
    today = now.astimezone(CHICAGO).date()
    first_day = today - dt.timedelta(days=days - 1)
    for profile in profiles:
        patient = make_patient(session, clinic, first_name=profile.first_name)
        _month(session, patient, profile, rng=rng, first_day=first_day, days=days, now=now)
    session.flush()
    return clinic


def _month(
    session: Session,
    patient: Patient,
    profile: Profile,
    *,
    rng: random.Random,
    first_day: dt.date,
    days: int,
    now: dt.datetime,
) -> None:
    # One multi-row INSERT per table: a month is a few thousand rows per test.
    reminders: list[dict[str, object]] = []
    pains: list[dict[str, object]] = []
    checkins = _checkins(patient, profile, first_day=first_day, days=days, now=now)
    reminders += [_checkin_question(patient, answer["received_at"]) for answer in checkins]
    last_done: dt.datetime | None = None
    for offset in range(days):
        day = first_day + dt.timedelta(days=offset)
        chance = profile.start + (profile.end - profile.start) * offset / max(days - 1, 1)
        quiet = offset >= days - profile.quiet_days
        for kind, hour, minute, weekdays in DAY_PLAN:
            due = local(day, hour, minute)
            if due > now or (weekdays is not None and day.weekday() not in weekdays):
                continue
            roll = rng.random()
            outcome = None
            if not quiet and roll < chance:
                outcome = Outcome.DONE
            elif not quiet and roll > 0.95:
                outcome = Outcome.SKIPPED
            status = ReminderStatus.FAILED if rng.random() < 0.02 else ReminderStatus.DELIVERED
            reminders.append(
                _reminder_row(patient, kind=kind, due=due, status=status, outcome=outcome)
            )
            if outcome is Outcome.DONE and status is ReminderStatus.DELIVERED:
                last_done = due
        if profile.pain and offset % 3 == 0:
            first, last = profile.pain
            score = round(first + (last - first) * offset / max(days - 1, 1))
            pains.append({"patient_id": patient.id, "score": score, "recorded_at": local(day, 19)})
    if reminders:
        session.connection().execute(insert(Reminder), reminders)
    if pains:
        session.connection().execute(insert(PainScore), pains)
    if checkins:
        session.connection().execute(insert(CheckinAnswer), checkins)
    if last_done is not None:  # the DONE reply that answered it (earlier ones left out)
        add_reply(session, patient, at=last_done + dt.timedelta(minutes=20), command="done")
    if profile.reply:
        command, body, attention = profile.reply
        add_reply(
            session,
            patient,
            at=now - dt.timedelta(days=2),
            command=command,
            body=body,
            needs_attention=attention,
        )


def _checkins(
    patient: Patient, profile: Profile, *, first_day: dt.date, days: int, now: dt.datetime
) -> list[dict[str, object]]:
    """An answer to each Sunday's weekly check-in (asked 17:30, answered 18:00), moving from
    the profile's first answer to its last."""
    if profile.said is None:
        return []
    sundays = [
        first_day + dt.timedelta(days=offset)
        for offset in range(days)
        if (first_day + dt.timedelta(days=offset)).weekday() == 6
        and local(first_day + dt.timedelta(days=offset), 18) <= now
    ]
    first, last = profile.said
    return [
        {
            "patient_id": patient.id,
            "days": round(first + (last - first) * n / max(len(sundays) - 1, 1)),
            "received_at": local(sunday, 18),
        }
        for n, sunday in enumerate(sundays)
    ]


def _checkin_question(patient: Patient, answered_at: object) -> dict[str, object]:
    """The check-in that answer answered: delivered, not actionable (no DONE asked)."""
    assert isinstance(answered_at, dt.datetime)
    due = answered_at - dt.timedelta(minutes=30)
    row = _reminder_row(
        patient, kind="weekly_checkin", due=due, status=ReminderStatus.DELIVERED, outcome=None
    )
    return row | {"actionable": False}


def _reminder_row(
    patient: Patient,
    *,
    kind: str,
    due: dt.datetime,
    status: ReminderStatus,
    outcome: Outcome | None,
) -> dict[str, object]:
    return {
        "patient_id": patient.id,
        "kind": kind,
        "channel": Channel.SMS,
        "actionable": True,
        "due_at": due,
        "status": status,
        "status_at": due,
        "sent_at": due,
        "attempts": 1,
        "outcome": outcome,
        "outcome_at": due + dt.timedelta(minutes=20) if outcome else None,
    }


def report_with_hostile_names(session: Session) -> AdherenceReport:
    """The realistic month up to NOW, plus three patients whose first names are a script, a
    spreadsheet formula and Rich markup (each with one reminder done and one pain score)."""
    clinic = realistic_clinic(session, now=NOW)
    for name in (SCRIPT_NAME, FORMULA_NAME, MARKUP_NAME):
        patient = make_patient(session, clinic, first_name=name)
        add_reminder(session, patient, due_at=local(dt.date(2026, 11, 25), 9), outcome=Outcome.DONE)
        add_pain(session, patient, at=local(dt.date(2026, 11, 25), 19), score=4)
    session.flush()
    return build_report(session=session, clinic=clinic, since=SINCE, now=NOW)
