"""Builders for test data: clinics, patients with plan items and their reminders, straight
through the models (the enrollment service has its own tests)."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from sqlalchemy.orm import Session

from service.enrollment.plans import refresh_next_due
from service.models import (
    Channel,
    ChannelChoice,
    Clinic,
    Patient,
    PlanItem,
    Reminder,
    ReminderStatus,
)

_numbers = itertools.count(1)

# The items of config/programs/stenosis-core.yaml, in the file's order: its reminders, then
# its two questions.
CORE_KINDS = (
    "position_change",
    "stretch",
    "pelvic_tilt",
    "leg_strength",
    "walk_or_cycle",
    "pain_question",
    "weekly_checkin",
)


def make_clinic(session: Session, *, slug: str | None = None, email: str | None = None) -> Clinic:
    number = next(_numbers)
    clinic = Clinic(
        slug=slug or f"clinic-{number}",
        name="Lakeside Back Clinic",
        phone="+13125550199",
        email=email or "staff@lakeside.example",
        timezone="America/Chicago",
        region="US",
    )
    session.add(clinic)
    session.flush()
    return clinic


def phone_number(n: int) -> str:
    """Distinct, valid US numbers: +1 312 55x xxxx (555 numbers are reserved for fiction)."""
    return f"+1312555{n:04d}" if n < 10_000 else f"+1773555{n - 10_000:04d}"


def make_patient(
    session: Session,
    clinic: Clinic,
    *,
    first_name: str = "Ana",
    phone: str | None = None,
    email: str | None = None,
    channel: ChannelChoice = ChannelChoice.SMS,
    timezone: str = "America/Chicago",
    wake: tuple[dt.time, dt.time] = (dt.time(8, 0), dt.time(20, 0)),
    items: list[dict[str, Any]] | None = None,
    max_per_day: int = 10,
    locale: str = "en",
    start_date: dt.date = dt.date(2026, 1, 1),
    schedule_after: dt.datetime | None = None,
) -> Patient:
    """A patient with plan items (default: one stretch at 09:00). ``schedule_after`` sets each
    item's next due time to its first occurrence after that instant."""
    patient = Patient(
        clinic=clinic,
        first_name=first_name,
        phone=phone if phone is not None else phone_number(next(_numbers)),
        email=email,
        timezone=timezone,
        locale=locale,
        channel=channel,
        wake_start=wake[0],
        wake_end=wake[1],
        program_id="stenosis-core",
        start_date=start_date,
        max_per_day=max_per_day,
    )
    for position, spec in enumerate(items or [{"kind": "stretch", "at_times": ["09:00"]}]):
        patient.plan_items.append(PlanItem(position=position, **spec))
    session.add(patient)
    session.flush()
    if schedule_after is not None:
        refresh_next_due(patient=patient, after=schedule_after)
        session.flush()
    return patient


def make_reminder(
    session: Session,
    patient: Patient,
    *,
    kind: str,
    due_at: dt.datetime,
    status: ReminderStatus,
    **values: Any,
) -> Reminder:
    """One reminder by text for the patient, with no plan item unless given."""
    values.setdefault("channel", Channel.SMS)
    reminder = Reminder(patient_id=patient.id, kind=kind, due_at=due_at, status=status, **values)
    session.add(reminder)
    session.flush()
    return reminder
